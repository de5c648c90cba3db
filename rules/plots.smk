rule plot_correlation:
    """Scatter + regression of NNGP LOOD vs MIA AUC and mean-distance LOOD vs prediction difference."""
    input:
        unpack(correlation_inputs),
    output:
        stats=report(
            f"{RESULTS}/{{experiment}}/correlation.csv",
            caption="../workflow/report/correlation_table.rst",
            category="{experiment}",
            subcategory="correlation",
        ),
        figures=report(
            figure_paths(f"{RESULTS}/{{experiment}}/figures/correlation"),
            caption="../workflow/report/correlation.rst",
            category="{experiment}",
            subcategory="correlation",
        ),
    params:
        plots=section("plots"),
    log:
        f"{RESULTS}/{{experiment}}/logs/plot_correlation.log",
    threads: sized("plot_correlation").threads
    resources:
        **sized("plot_correlation").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/plot_correlation.py"


rule plot_lood_all:
    """Histogram of the LOOD of every training record, the differing records marked."""
    input:
        lood_all=rules.lood_all.output[0],
        lood=rules.lood.output[0],
    output:
        figures=report(
            figure_paths(f"{RESULTS}/{{experiment}}/figures/lood_all_hist"),
            caption="../workflow/report/lood_all.rst",
            category="{experiment}",
            subcategory="all records",
        ),
    params:
        plots=section("plots"),
    log:
        f"{RESULTS}/{{experiment}}/logs/plot_lood_all.log",
    threads: sized("plot_lood_all").threads
    resources:
        **sized("plot_lood_all").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/plot_lood_all.py"

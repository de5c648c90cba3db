# NNGP / NTK kernels, sigma^2 by the evidence, LOOD of the differing (and all) records, the
# privacy onion, and the LOOD-vs-MIA correlation and LOOD plots.


rule nngp_kernel:
    """NNGP kernel of the training set (float64). Depends on data and architecture, not on sigma2."""
    input:
        split=rules.split.output.split,
    output:
        kernel=f"{RESULTS}/{{experiment}}/nngp/kernel.npz",
    params:
        model=kernel_model,
        batch_size=section("nngp.kernel_batch_size"),
    log:
        f"{RESULTS}/{{experiment}}/logs/nngp_kernel.log",
    benchmark:
        f"{RESULTS}/{{experiment}}/benchmarks/nngp_kernel.tsv"
    threads: sized("nngp_kernel").threads
    resources:
        **sized("nngp_kernel").resources,
    conda:
        "../envs/jax.yaml"
    script:
        "../workflow/scripts/nngp_kernel.py"


rule ntk_kernel:
    """NTK of the training set (float64), when an experiment's GP is the NTK-GP (nngp.kernel: ntk)."""
    input:
        split=rules.split.output.split,
        kernel=rules.nngp_kernel.output.kernel,
    output:
        ntk=f"{RESULTS}/{{experiment}}/nngp/ntk.npz",
    params:
        model=kernel_model,
        batch_size=section("nngp.kernel_batch_size"),
    log:
        f"{RESULTS}/{{experiment}}/logs/ntk_kernel.log",
    benchmark:
        f"{RESULTS}/{{experiment}}/benchmarks/ntk_kernel.tsv"
    threads: sized("ntk_kernel").threads
    resources:
        **sized("ntk_kernel").resources,
    conda:
        "../envs/jax.yaml"
    script:
        "../workflow/scripts/ntk_kernel.py"


rule nngp_sigma2:
    """nngp.sigma2: auto: the sigma2 maximising the evidence of the GP (nngp or ntk kernel)."""
    input:
        unpack(gp_kernels),
        split=rules.split.output.split,
    output:
        f"{RESULTS}/{{experiment}}/nngp/sigma2_{{gp}}.json",
    log:
        f"{RESULTS}/{{experiment}}/logs/nngp_sigma2_{{gp}}.log",
    benchmark:
        f"{RESULTS}/{{experiment}}/benchmarks/nngp_sigma2_{{gp}}.tsv"
    threads: sized("nngp_sigma2").threads
    resources:
        **sized("nngp_sigma2").resources,
    conda:
        "../envs/jax.yaml"
    script:
        "../workflow/scripts/nngp_sigma2.py"


rule lood:
    """KL LOOD, mean-distance LOOD and GP AUC of each differing record (query = the record)."""
    input:
        unpack(gp_inputs()),
        split=rules.split.output.split,
        differ=rules.split.output.differ,
    output:
        report(
            f"{RESULTS}/{{experiment}}/lood.csv",
            caption="../workflow/report/lood_table.rst",
            category="{experiment}",
            subcategory="tables",
        ),
    params:
        nngp=section("nngp", only=("sigma2", "kernel")),
        mode="differ",
    log:
        f"{RESULTS}/{{experiment}}/logs/lood.log",
    benchmark:
        f"{RESULTS}/{{experiment}}/benchmarks/lood.tsv"
    threads: sized("lood").threads
    resources:
        **sized("lood").resources,
    conda:
        "../envs/jax.yaml"
    script:
        "../workflow/scripts/lood.py"


use rule lood as lood_all with:
    output:
        f"{RESULTS}/{{experiment}}/lood_all.csv",
    params:
        nngp=section("nngp", only=("sigma2", "kernel")),
        mode="all",
    log:
        f"{RESULTS}/{{experiment}}/logs/lood_all.log",
    benchmark:
        f"{RESULTS}/{{experiment}}/benchmarks/lood_all.tsv"
    threads: sized("lood_all").threads
    resources:
        **sized("lood_all").resources,


rule onion:
    """The privacy onion: peel the records of highest KL LOOD, recompute the rest's (no refit)."""
    input:
        unpack(gp_inputs()),
        split=rules.split.output.split,
        differ=rules.split.output.differ,
    output:
        report(
            f"{RESULTS}/{{experiment}}/onion.csv",
            caption="../workflow/report/onion_table.rst",
            category="{experiment}",
            subcategory="privacy onion",
        ),
    params:
        onion=section("onion", ignore=("enabled", "n_show")),
        nngp=section("nngp", only=("sigma2", "kernel")),
    log:
        f"{RESULTS}/{{experiment}}/logs/onion.log",
    benchmark:
        f"{RESULTS}/{{experiment}}/benchmarks/onion.tsv"
    threads: sized("onion").threads
    resources:
        **sized("onion").resources,
    conda:
        "../envs/jax.yaml"
    script:
        "../workflow/scripts/onion.py"


rule plot_onion:
    """KL LOOD of the remaining records before and after peeling; the records that rise most."""
    input:
        onion=rules.onion.output[0],
    output:
        figures=report(
            figure_paths(f"{RESULTS}/{{experiment}}/figures/onion"),
            caption="../workflow/report/onion.rst",
            category="{experiment}",
            subcategory="privacy onion",
        ),
    params:
        plots=section("plots"),
        n_show=section("onion.n_show"),
    log:
        f"{RESULTS}/{{experiment}}/logs/plot_onion.log",
    threads: sized("plot_onion").threads
    resources:
        **sized("plot_onion").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/plot_onion.py"


rule plot_correlation:
    """Scatter + regression of NNGP LOOD vs MIA AUC and mean-distance LOOD vs prediction difference,
    with the ground truth's noise ceiling (from the MIA on two halves of the models)."""
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
        mia=section("mia"),
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

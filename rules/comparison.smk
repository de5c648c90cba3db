# Cross-experiment rules: outputs about all experiments of a config together, in
# results/<comparison>/ (the same differing records compared across activations, DP settings,
# audits and inversions; PANORAMIA beside the other privacy measurements).

if len(EXPERIMENTS) >= 2 and config["comparison"] in EXPERIMENTS:
    raise WorkflowError(
        f"experiments: {config['comparison']!r} is the comparison folder (config key comparison)"
    )


COMPARISON = f"{RESULTS}/{config['comparison']}"  # outputs about all experiments together


rule plot_activation:
    """LOOD and MIA AUC of the same records across experiments (e.g. relu vs gelu)."""
    input:
        **same_record_inputs(),
    output:
        table=f"{COMPARISON}/activation.csv",
        stats=f"{COMPARISON}/activation_correlation.csv",
        figures=report(
            figure_paths(f"{COMPARISON}/figures/activation"),
            caption="../workflow/report/activation.rst",
            category="comparison",
        ),
    params:
        experiments=EXPERIMENTS,
        activations={e: section("model.activation")(e) for e in EXPERIMENTS},
        plots=section("plots"),
    log:
        f"{COMPARISON}/logs/plot_activation.log",
    threads: sized("plot_activation").threads
    resources:
        **sized("plot_activation").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/plot_activation.py"


rule plot_dp:
    """MIA AUC, empirical and NNGP LOOD of the same records under non-DP and DP-SGD training."""
    input:
        **same_record_inputs(),
        **{f"in_{e}": p for e, p in per_experiment(rules.train_in.output.models).items()},
    output:
        table=f"{COMPARISON}/dp.csv",
        summary=report(
            f"{COMPARISON}/dp_summary.csv",
            caption="../workflow/report/dp_table.rst",
            category="comparison",
        ),
        figures=report(
            figure_paths(f"{COMPARISON}/figures/dp"),
            caption="../workflow/report/dp.rst",
            category="comparison",
        ),
    params:
        experiments=EXPERIMENTS,
        plots=section("plots"),
    log:
        f"{COMPARISON}/logs/plot_dp.log",
    threads: sized("plot_dp").threads
    resources:
        **sized("plot_dp").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/plot_dp.py"


rule plot_audit:
    """Audit epsilon lower bounds beside the accountant's epsilon, for every experiment."""
    input:
        **per_experiment(rules.audit.output.table),
    output:
        table=report(
            f"{COMPARISON}/audit.csv",
            caption="../workflow/report/audit_table.rst",
            category="comparison",
        ),
        figures=report(
            figure_paths(f"{COMPARISON}/figures/audit"),
            caption="../workflow/report/audit.rst",
            category="comparison",
        ),
    params:
        plots=section("plots"),
    log:
        f"{COMPARISON}/logs/plot_audit.log",
    threads: sized("plot_audit").threads
    resources:
        **sized("plot_audit").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/plot_audit.py"


rule plot_inversion:
    """Class averages beside the MI-FACE reconstructions of every experiment (and NNGP queries)."""
    input:
        unpack(inversion_plot_inputs),
    output:
        table=report(
            f"{COMPARISON}/inversion.csv",
            caption="../workflow/report/inversion_table.rst",
            category="comparison",
        ),
        figures=report(
            figure_paths(f"{COMPARISON}/figures/inversion"),
            caption="../workflow/report/inversion.rst",
            category="comparison",
        ),
    params:
        experiments=EXPERIMENTS,
        plots=section("plots"),
    log:
        f"{COMPARISON}/logs/plot_inversion.log",
    threads: sized("plot_inversion").threads
    resources:
        **sized("plot_inversion").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/plot_inversion.py"


rule plot_panoramia_comparison:
    """PANORAMIA's eps_tilde beside the one-run audit, the accountant, the MIA AUC and KL LOOD."""
    input:
        unpack(panoramia_comparison_inputs),
    output:
        table=report(
            f"{COMPARISON}/panoramia.csv",
            caption="../workflow/report/panoramia_comparison_table.rst",
            category="comparison",
        ),
        figures=report(
            figure_paths(f"{COMPARISON}/figures/panoramia"),
            caption="../workflow/report/panoramia_comparison.rst",
            category="comparison",
        ),
    params:
        experiments=EXPERIMENTS,
        audit=config["audit"]["enabled"],
        plots=section("plots"),
    log:
        f"{COMPARISON}/logs/plot_panoramia_comparison.log",
    threads: sized("plot_panoramia_comparison").threads
    resources:
        **sized("plot_panoramia_comparison").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/plot_panoramia_comparison.py"

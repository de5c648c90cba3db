# Differential privacy and privacy audits: DP-SGD experiments side by side, the one-run audit
# (Steinke et al. 2023) and MI-FACE model inversion. DP-SGD itself is train.dp of an experiment.


rule audit:
    """One-run audit of the experiment's training: canaries in with probability 1/2, epsilon lower bound."""
    input:
        split=rules.split.output.split,
    output:
        table=f"{RESULTS}/{{experiment}}/audit/audit.csv",
        scores=f"{RESULTS}/{{experiment}}/audit/scores.npz",
    params:
        model=section("model"),
        train=train_section,
        audit={k: v for k, v in config["audit"].items() if k != "enabled"},
    log:
        f"{RESULTS}/{{experiment}}/logs/audit.log",
    benchmark:
        f"{RESULTS}/{{experiment}}/benchmarks/audit.tsv"
    threads: sized("audit").threads
    resources:
        **sized("audit").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/audit.py"


rule inversion:
    """MI-FACE: gradient descent on each class's confidence of the first in models."""
    input:
        split=rules.split.output.split,
        weights=rules.train_in.output.weights,
    output:
        arrays=f"{RESULTS}/{{experiment}}/inversion/inversion.npz",
        metrics=f"{RESULTS}/{{experiment}}/inversion/metrics.csv",
    params:
        model=section("model"),
        inversion={k: v for k, v in config["inversion"].items() if k != "enabled"},
    log:
        f"{RESULTS}/{{experiment}}/logs/inversion.log",
    benchmark:
        f"{RESULTS}/{{experiment}}/benchmarks/inversion.tsv"
    threads: sized("inversion").threads
    resources:
        **sized("inversion").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/inversion.py"


rule plot_dp:
    """MIA AUC, empirical and NNGP LOOD of the same records under non-DP and DP-SGD training."""
    input:
        **same_record_inputs(),
        **{f"in_{e}": p for e, p in per_experiment("{results}/{experiment}/models/in.npz").items()},
    output:
        table=f"{COMPARISON}/dp.csv",
        summary=report(
            f"{COMPARISON}/dp_summary.csv",
            caption="../report/dp_table.rst",
            category="comparison",
        ),
        figures=report(
            figure_paths(f"{COMPARISON}/figures/dp"),
            caption="../report/dp.rst",
            category="comparison",
        ),
    params:
        experiments=EXPERIMENTS,
        plots=config["plots"],
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
        **{e: p for e, p in per_experiment("{results}/{experiment}/audit/audit.csv").items()},
    output:
        table=report(
            f"{COMPARISON}/audit.csv",
            caption="../report/audit_table.rst",
            category="comparison",
        ),
        figures=report(
            figure_paths(f"{COMPARISON}/figures/audit"),
            caption="../report/audit.rst",
            category="comparison",
        ),
    params:
        plots=config["plots"],
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
            caption="../report/inversion_table.rst",
            category="comparison",
        ),
        figures=report(
            figure_paths(f"{COMPARISON}/figures/inversion"),
            caption="../report/inversion.rst",
            category="comparison",
        ),
    params:
        experiments=EXPERIMENTS,
        plots=config["plots"],
    log:
        f"{COMPARISON}/logs/plot_inversion.log",
    threads: sized("plot_inversion").threads
    resources:
        **sized("plot_inversion").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/plot_inversion.py"

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
        train=section("train"),
        audit=section("audit", ignore=("enabled",)),
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
        inversion=section("inversion", ignore=("enabled",)),
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

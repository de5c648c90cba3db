# PANORAMIA (Kazmi et al. 2024): privacy measurement of each experiment's in models with
# generated non-members, in results/<experiment>/panoramia/. Optional: panoramia.enabled.

PANORAMIA = f"{RESULTS}/{{experiment}}/panoramia"

# train settings that change the helper model (trained without DP: it is the auditor's model)
PANORAMIA_HELPER_TRAIN_KEYS = ("epochs", "batch_size", "lr", "optimizer", "momentum",
                               "weight_decay", "loss", "lr_schedule", "lr_milestones", "lr_gamma",
                               "shuffle", "seed", "device")


rule panoramia_split:
    """Split D (seeded) into the generator, attack-train and attack-test members."""
    input:
        split=rules.split.output.split,
    output:
        f"{PANORAMIA}/split.npz",
    params:
        panoramia=section("panoramia", only=("fractions", "seed")),
    log:
        f"{RESULTS}/{{experiment}}/logs/panoramia_split.log",
    threads: sized("panoramia_split").threads
    resources:
        **sized("panoramia_split").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/panoramia_split.py"


rule panoramia_generator:
    """Train the class-conditional VAE on the generator part; draw every non-member from it."""
    input:
        split=rules.split.output.split,
        members=rules.panoramia_split.output[0],
    output:
        generator=f"{PANORAMIA}/generator.safetensors",
        sets=f"{PANORAMIA}/attack_sets.npz",
        samples=f"{PANORAMIA}/samples.npz",
        metrics=report(
            f"{PANORAMIA}/generator.csv",
            caption="../workflow/report/panoramia_generator.rst",
            category="{experiment}",
            subcategory="panoramia",
        ),
    params:
        panoramia=section(
            "panoramia", only=("fractions", "n_helper", "generator", "n_examples", "seed")
        ),
    log:
        f"{RESULTS}/{{experiment}}/logs/panoramia_generator.log",
    benchmark:
        f"{RESULTS}/{{experiment}}/benchmarks/panoramia_generator.tsv"
    threads: sized("panoramia_generator").threads
    resources:
        **sized("panoramia_generator").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/panoramia_generator.py"


rule panoramia_helper:
    """Train the helper model (the experiment's architecture and optimisation, no DP) on
    generated data only; its outputs on the attack sets."""
    input:
        split=rules.split.output.split,
        sets=rules.panoramia_generator.output.sets,
    output:
        f"{PANORAMIA}/helper.npz",
    params:
        model=section("model"),
        train=section("train", only=PANORAMIA_HELPER_TRAIN_KEYS),
        panoramia=section("panoramia", only=("seed",)),
    log:
        f"{RESULTS}/{{experiment}}/logs/panoramia_helper.log",
    benchmark:
        f"{RESULTS}/{{experiment}}/benchmarks/panoramia_helper.tsv"
    threads: sized("panoramia_helper").threads
    resources:
        **sized("panoramia_helper").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/panoramia_helper.py"


rule panoramia_audit:
    """Baseline (helper features) and MIA (plus the target's features) classifiers for the first
    in models: c_lb, {c+eps}_lb and eps_tilde per target, bounds and curves per threshold."""
    input:
        split=rules.split.output.split,
        sets=rules.panoramia_generator.output.sets,
        helper=rules.panoramia_helper.output[0],
        weights=rules.train_in.output.weights,
    output:
        table=report(
            f"{PANORAMIA}/panoramia.csv",
            caption="../workflow/report/panoramia_table.rst",
            category="{experiment}",
            subcategory="panoramia",
        ),
        thresholds=f"{PANORAMIA}/thresholds.csv",
        curves=f"{PANORAMIA}/curves.csv",
    params:
        model=section("model"),
        loss=section("train.loss"),
        panoramia=section("panoramia", ignore=("enabled", "fractions", "n_helper", "generator",
                                               "n_examples")),
    log:
        f"{RESULTS}/{{experiment}}/logs/panoramia_audit.log",
    benchmark:
        f"{RESULTS}/{{experiment}}/benchmarks/panoramia_audit.tsv"
    threads: sized("panoramia_audit").threads
    resources:
        **sized("panoramia_audit").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/panoramia_audit.py"


rule plot_panoramia:
    """Real beside generated images; precision / recall and bounds per threshold."""
    input:
        samples=rules.panoramia_generator.output.samples,
        table=rules.panoramia_audit.output.table,
        thresholds=rules.panoramia_audit.output.thresholds,
        curves=rules.panoramia_audit.output.curves,
    output:
        samples=report(
            figure_paths(f"{PANORAMIA}/figures/samples"),
            caption="../workflow/report/panoramia_samples.rst",
            category="{experiment}",
            subcategory="panoramia",
        ),
        curves=report(
            figure_paths(f"{PANORAMIA}/figures/curves"),
            caption="../workflow/report/panoramia_curves.rst",
            category="{experiment}",
            subcategory="panoramia",
        ),
    params:
        plots=section("plots"),
    log:
        f"{RESULTS}/{{experiment}}/logs/plot_panoramia.log",
    threads: sized("plot_panoramia").threads
    resources:
        **sized("plot_panoramia").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/plot_panoramia.py"

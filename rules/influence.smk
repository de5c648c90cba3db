# Influence comparison: TracIn and influence functions vs prediction difference and LOOD.

# train settings that change the influence model (n_in, n_out, shards ... do not)
INFLUENCE_TRAIN_KEYS = ("epochs", "batch_size", "lr", "optimizer", "momentum", "weight_decay",
                        "loss", "lr_schedule", "lr_milestones", "lr_gamma", "shuffle", "seed", "device",
                        "dp")


rule train_influence:
    """One model on all of D (the experiment's arch and train settings), checkpointed every k epochs."""
    input:
        split=rules.split.output.split,
    output:
        checkpoints=f"{RESULTS}/{{experiment}}/influence/checkpoints.safetensors",
    params:
        model=section("model"),
        train=section("train", only=INFLUENCE_TRAIN_KEYS),
        checkpoint_every=section("influence.checkpoint_every"),
    log:
        f"{RESULTS}/{{experiment}}/logs/train_influence.log",
    benchmark:
        f"{RESULTS}/{{experiment}}/benchmarks/train_influence.tsv"
    threads: sized("train_influence").threads
    resources:
        **sized("train_influence").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/train_influence.py"


rule tracin:
    """TracIn self-influence of each differing record: sum over checkpoints of lr * |grad loss|^2."""
    input:
        split=rules.split.output.split,
        differ=rules.split.output.differ,
        checkpoints=rules.train_influence.output.checkpoints,
    output:
        f"{RESULTS}/{{experiment}}/influence/tracin.csv",
    params:
        device=section("train.device"),
    log:
        f"{RESULTS}/{{experiment}}/logs/tracin.log",
    benchmark:
        f"{RESULTS}/{{experiment}}/benchmarks/tracin.tsv"
    threads: sized("tracin").threads
    resources:
        **sized("tracin").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/tracin.py"


rule influence_function:
    """Koh-Liang self-influence g^T (H + damping I)^-1 g of each differing record (CG or LiSSA)."""
    input:
        split=rules.split.output.split,
        differ=rules.split.output.differ,
        checkpoints=rules.train_influence.output.checkpoints,
    output:
        f"{RESULTS}/{{experiment}}/influence/influence_function.csv",
    params:
        influence=section("influence", ignore=("enabled", "checkpoint_every")),
        device=section("train.device"),
    log:
        f"{RESULTS}/{{experiment}}/logs/influence_function.log",
    benchmark:
        f"{RESULTS}/{{experiment}}/benchmarks/influence_function.tsv"
    threads: sized("influence_function").threads
    resources:
        **sized("influence_function").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/influence_function.py"


rule plot_influence:
    """Prediction difference vs TracIn, influence function and mean-distance LOOD (normalised)."""
    input:
        mia=rules.mia.output[0],
        lood=rules.lood.output[0],
        tracin=rules.tracin.output[0],
        influence=rules.influence_function.output[0],
    output:
        scores=f"{RESULTS}/{{experiment}}/influence_scores.csv",
        stats=f"{RESULTS}/{{experiment}}/influence_correlation.csv",
        figures=report(
            figure_paths(f"{RESULTS}/{{experiment}}/figures/influence"),
            caption="../workflow/report/influence.rst",
            category="{experiment}",
            subcategory="influence",
        ),
    params:
        plots=section("plots"),
    log:
        f"{RESULTS}/{{experiment}}/logs/plot_influence.log",
    threads: sized("plot_influence").threads
    resources:
        **sized("plot_influence").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/plot_influence.py"

rule train_in:
    """Train the in models on all of D as one batched ensemble; outputs on differing + test records."""
    input:
        split=rules.split.output.split,
        differ=rules.split.output.differ,
    output:
        models=f"{RESULTS}/{{experiment}}/models/in.npz",
        weights=f"{RESULTS}/{{experiment}}/models/in_weights.safetensors",
    params:
        role="in",
        model=section("model"),
        train=section("train"),
    log:
        f"{RESULTS}/{{experiment}}/logs/train_in.log",
    benchmark:
        f"{RESULTS}/{{experiment}}/benchmarks/train_in.tsv"
    threads: sized("train_in").threads
    resources:
        **sized("train_in").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/train.py"


rule train_out:
    """Train n_out models per differing record of one shard, each on D minus that record."""
    input:
        split=rules.split.output.split,
        differ=rules.split.output.differ,
    output:
        models=f"{RESULTS}/{{experiment}}/models/out_{{shard}}.npz",
    params:
        role="out",
        model=section("model"),
        train=section("train"),
    log:
        f"{RESULTS}/{{experiment}}/logs/train_out_{{shard}}.log",
    benchmark:
        f"{RESULTS}/{{experiment}}/benchmarks/train_out_{{shard}}.tsv"
    threads: sized("train_out").threads
    resources:
        **sized("train_out").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/train.py"

rule split:
    """Load the dataset, draw the class-balanced split and choose the differing records."""
    input:
        unpack(user_files),
    output:
        split=f"{RESULTS}/{{experiment}}/data/split.npz",
        differ=f"{RESULTS}/{{experiment}}/differ.csv",
    params:
        data=section("data"),
        differ=section("differ"),
    log:
        f"{RESULTS}/{{experiment}}/logs/split.log",
    threads: sized("split").threads
    resources:
        **sized("split").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/split.py"

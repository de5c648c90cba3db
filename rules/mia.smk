rule mia:
    """Per differing record: Gaussian likelihood-ratio MIA AUC (mean, std) and prediction difference;
    mia_halves.csv: the same on two halves of the models (the noise ceiling of correlation.csv)."""
    input:
        split=rules.split.output.split,
        differ=rules.split.output.differ,
        models_in=rules.train_in.output.models,
        models_out=out_shards,
    output:
        report(
            f"{RESULTS}/{{experiment}}/mia.csv",
            caption="../workflow/report/mia_table.rst",
            category="{experiment}",
            subcategory="tables",
        ),
        halves=f"{RESULTS}/{{experiment}}/mia_halves.csv",
    params:
        mia=section("mia"),
    log:
        f"{RESULTS}/{{experiment}}/logs/mia.log",
    threads: sized("mia").threads
    resources:
        **sized("mia").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/mia.py"

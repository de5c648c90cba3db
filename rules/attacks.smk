# Membership-inference attacks (LiRA online/offline, RMIA online/offline) on the same in and out
# models as mia.csv, evaluated per record and pooled over records.


rule attacks:
    """LiRA and RMIA of every in and out model (leave-one-out references), per record and pooled."""
    input:
        split=rules.split.output.split,
        differ=rules.split.output.differ,
        models_in=rules.train_in.output.models,
        models_out=out_shards,
    output:
        per_record=report(
            f"{RESULTS}/{{experiment}}/attacks/per_record.csv",
            caption="../workflow/report/attacks_table.rst",
            category="{experiment}",
            subcategory="attacks",
        ),
        pooled=report(
            f"{RESULTS}/{{experiment}}/attacks/pooled.csv",
            caption="../workflow/report/attacks_pooled.rst",
            category="{experiment}",
            subcategory="attacks",
        ),
        roc=f"{RESULTS}/{{experiment}}/attacks/roc.npz",
        free_in=f"{RESULTS}/{{experiment}}/attacks/free_in.csv",
        free_in_summary=report(
            f"{RESULTS}/{{experiment}}/attacks/free_in_summary.csv",
            caption="../workflow/report/attacks_free_in.rst",
            category="{experiment}",
            subcategory="attacks",
        ),
    params:
        attacks=section("attacks", ignore=("enabled",)),
    log:
        f"{RESULTS}/{{experiment}}/logs/attacks.log",
    benchmark:
        f"{RESULTS}/{{experiment}}/benchmarks/attacks.tsv"
    threads: sized("attacks").threads
    resources:
        **sized("attacks").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/attacks.py"


rule plot_attacks:
    """Pooled ROC of every attack (log-log) and per-record attack AUC vs KL LOOD."""
    input:
        per_record=rules.attacks.output.per_record,
        pooled=rules.attacks.output.pooled,
        roc=rules.attacks.output.roc,
        lood=rules.lood.output[0],
    output:
        roc=report(
            figure_paths(f"{RESULTS}/{{experiment}}/figures/attacks_roc"),
            caption="../workflow/report/attacks_roc.rst",
            category="{experiment}",
            subcategory="attacks",
        ),
        lood=report(
            figure_paths(f"{RESULTS}/{{experiment}}/figures/attacks_lood"),
            caption="../workflow/report/attacks_lood.rst",
            category="{experiment}",
            subcategory="attacks",
        ),
    params:
        plots=section("plots"),
        score=section("attacks.score"),
    log:
        f"{RESULTS}/{{experiment}}/logs/plot_attacks.log",
    threads: sized("plot_attacks").threads
    resources:
        **sized("plot_attacks").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/plot_attacks.py"

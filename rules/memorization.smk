# Memorization and influence from random-subset models (Feldman & Zhang's heldout estimator).


rule train_subsets:
    """Train memorization.n_models models, each on a seeded random subset of D (ratio r)."""
    input:
        split=rules.split.output.split,
    output:
        subsets=f"{RESULTS}/{{experiment}}/models/subsets.npz",
    params:
        model=section("model"),
        train=section("train"),
        memorization=section("memorization", only=("n_models", "ratio", "seed", "save_outputs")),
    log:
        f"{RESULTS}/{{experiment}}/logs/train_subsets.log",
    benchmark:
        f"{RESULTS}/{{experiment}}/benchmarks/train_subsets.tsv"
    threads: sized("train_subsets").threads
    resources:
        **sized("train_subsets").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/train_subsets.py"


rule memorization:
    """Memorization of every training record and the top-k influences on each test record."""
    input:
        split=rules.split.output.split,
        differ=rules.split.output.differ,
        subsets=rules.train_subsets.output.subsets,
    output:
        memorization=report(
            f"{RESULTS}/{{experiment}}/memorization.csv",
            caption="../workflow/report/memorization_table.rst",
            category="{experiment}",
            subcategory="memorization",
        ),
        influence=f"{RESULTS}/{{experiment}}/influence_topk.csv",
    params:
        top_k=section("memorization.top_k"),
    log:
        f"{RESULTS}/{{experiment}}/logs/memorization.log",
    threads: sized("memorization").threads
    resources:
        **sized("memorization").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/memorization.py"


rule plot_memorization:
    """Memorization histogram, most/least memorized images, and memorization vs LOOD and MIA."""
    input:
        split=rules.split.output.split,
        memorization=rules.memorization.output.memorization,
        lood=mem_lood_table,
        mia=rules.mia.output[0],
    output:
        stats=f"{RESULTS}/{{experiment}}/memorization_correlation.csv",
        hist=report(
            figure_paths(f"{RESULTS}/{{experiment}}/figures/memorization_hist"),
            caption="../workflow/report/memorization_hist.rst",
            category="{experiment}",
            subcategory="memorization",
        ),
        examples=report(
            figure_paths(f"{RESULTS}/{{experiment}}/figures/memorization_examples"),
            caption="../workflow/report/memorization_examples.rst",
            category="{experiment}",
            subcategory="memorization",
        ),
        lood=report(
            figure_paths(f"{RESULTS}/{{experiment}}/figures/memorization_lood"),
            caption="../workflow/report/memorization_lood.rst",
            category="{experiment}",
            subcategory="memorization",
        ),
        mia=report(
            figure_paths(f"{RESULTS}/{{experiment}}/figures/memorization_mia"),
            caption="../workflow/report/memorization_mia.rst",
            category="{experiment}",
            subcategory="memorization",
        ),
    params:
        plots=section("plots"),
        n_examples=section("memorization.n_examples"),
    log:
        f"{RESULTS}/{{experiment}}/logs/plot_memorization.log",
    threads: sized("plot_memorization").threads
    resources:
        **sized("plot_memorization").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/plot_memorization.py"



# LOOD / MIA landscapes around differing records and query optimisation (reconstruction).


rule landscape_queries:
    """Queries x + (t / scale) d along a seeded random direction around the landscape records."""
    input:
        split=rules.split.output.split,
        differ=rules.split.output.differ,
    output:
        queries=f"{RESULTS}/{{experiment}}/landscape/queries.npz",
    params:
        landscape=section("landscape", ignore=("enabled", "mia")),
    log:
        f"{RESULTS}/{{experiment}}/logs/landscape_queries.log",
    threads: sized("landscape_queries").threads
    resources:
        **sized("landscape_queries").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/landscape_queries.py"


rule lood_landscape:
    """KL / mean-distance LOOD and NNGP AUC of each landscape record at its queries."""
    input:
        unpack(gp_inputs("nngp")),
        split=rules.split.output.split,
        queries=rules.landscape_queries.output.queries,
    output:
        report(
            f"{RESULTS}/{{experiment}}/landscape/lood.csv",
            caption="../workflow/report/landscape_table.rst",
            category="{experiment}",
            subcategory="landscape",
        ),
    params:
        model=kernel_model,
        sigma2=section("nngp.sigma2"),
    log:
        f"{RESULTS}/{{experiment}}/logs/lood_landscape.log",
    benchmark:
        f"{RESULTS}/{{experiment}}/benchmarks/lood_landscape.tsv"
    threads: sized("lood_landscape").threads
    resources:
        **sized("lood_landscape").resources,
    conda:
        "../envs/jax.yaml"
    script:
        "../workflow/scripts/lood_landscape.py"


rule train_landscape:
    """The landscape records' out models, re-trained (same masks and seeds as train_out), at the
    landscape queries; checked against models/out_*.npz on the differing records."""
    input:
        split=rules.split.output.split,
        differ=rules.split.output.differ,
        queries=rules.landscape_queries.output.queries,
        models_out=out_shards,
    output:
        outputs=f"{RESULTS}/{{experiment}}/landscape/out_outputs.npz",
    params:
        model=section("model"),
        train=section("train"),
    log:
        f"{RESULTS}/{{experiment}}/logs/train_landscape.log",
    benchmark:
        f"{RESULTS}/{{experiment}}/benchmarks/train_landscape.tsv"
    threads: sized("train_landscape").threads
    resources:
        **sized("train_landscape").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/train_landscape.py"


rule mia_landscape:
    """MIA AUC at the landscape queries: saved in models, the re-trained out models' outputs."""
    input:
        split=rules.split.output.split,
        differ=rules.split.output.differ,
        queries=rules.landscape_queries.output.queries,
        weights_in=rules.train_in.output.weights,
        out_outputs=rules.train_landscape.output.outputs,
    output:
        table=f"{RESULTS}/{{experiment}}/landscape/mia.csv",
        outputs=f"{RESULTS}/{{experiment}}/landscape/mia_outputs.npz",
    params:
        model=section("model"),
        train=section("train"),
        mia=section("mia"),
    log:
        f"{RESULTS}/{{experiment}}/logs/mia_landscape.log",
    benchmark:
        f"{RESULTS}/{{experiment}}/benchmarks/mia_landscape.tsv"
    threads: sized("mia_landscape").threads
    resources:
        **sized("mia_landscape").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/mia_landscape.py"


rule plot_landscape:
    """One column per record: LOOD landscape (top) and MIA AUC vs NNGP AUC landscape (bottom)."""
    input:
        unpack(landscape_plot_inputs),
    output:
        figures=report(
            figure_paths(f"{RESULTS}/{{experiment}}/figures/landscape"),
            caption="../workflow/report/landscape.rst",
            category="{experiment}",
            subcategory="landscape",
        ),
    params:
        plots=section("plots"),
        scale=section("landscape.scale"),
    log:
        f"{RESULTS}/{{experiment}}/logs/plot_landscape.log",
    threads: sized("plot_landscape").threads
    resources:
        **sized("plot_landscape").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/plot_landscape.py"


rule optimize_query:
    """Adam ascent on KL LOOD over a query set per record; reconstruction quality vs a baseline."""
    input:
        unpack(gp_inputs("nngp")),
        split=rules.split.output.split,
        differ=rules.split.output.differ,
    output:
        queries=f"{RESULTS}/{{experiment}}/query/optimized.npz",
        history=f"{RESULTS}/{{experiment}}/query/history.csv",
        table=report(
            f"{RESULTS}/{{experiment}}/query/reconstruction.csv",
            caption="../workflow/report/query_table.rst",
            category="{experiment}",
            subcategory="query optimisation",
        ),
    params:
        model=kernel_model,
        sigma2=section("nngp.sigma2"),
        query=section("query", ignore=("enabled",)),
    log:
        f"{RESULTS}/{{experiment}}/logs/optimize_query.log",
    benchmark:
        f"{RESULTS}/{{experiment}}/benchmarks/optimize_query.tsv"
    threads: sized("optimize_query").threads
    resources:
        **sized("optimize_query").resources,
    conda:
        "../envs/jax.yaml"
    script:
        "../workflow/scripts/optimize_query.py"


rule plot_query:
    """Differing records beside their optimised queries (with LOOD), and LOOD per Adam step."""
    input:
        split=rules.split.output.split,
        queries=rules.optimize_query.output.queries,
        history=rules.optimize_query.output.history,
        table=rules.optimize_query.output.table,
    output:
        reconstruction=report(
            figure_paths(f"{RESULTS}/{{experiment}}/figures/query_reconstruction"),
            caption="../workflow/report/query_reconstruction.rst",
            category="{experiment}",
            subcategory="query optimisation",
        ),
        history=report(
            figure_paths(f"{RESULTS}/{{experiment}}/figures/query_history"),
            caption="../workflow/report/query_history.rst",
            category="{experiment}",
            subcategory="query optimisation",
        ),
    params:
        plots=section("plots"),
    log:
        f"{RESULTS}/{{experiment}}/logs/plot_query.log",
    threads: sized("plot_query").threads
    resources:
        **sized("plot_query").resources,
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow/scripts/plot_query.py"



rule nngp_kernel:
    """NNGP kernel of the training set (float64). Depends on data and architecture, not on sigma2."""
    input:
        split=rules.split.output.split,
    output:
        kernel=f"{RESULTS}/{{experiment}}/nngp/kernel.npz",
    params:
        model=section("model"),
        batch_size=section("nngp.kernel_batch_size"),
    log:
        f"{RESULTS}/{{experiment}}/logs/nngp_kernel.log",
    benchmark:
        f"{RESULTS}/{{experiment}}/benchmarks/nngp_kernel.tsv"
    threads: sized("nngp_kernel").threads
    resources:
        **sized("nngp_kernel").resources,
    conda:
        "../envs/jax.yaml"
    script:
        "../workflow/scripts/nngp_kernel.py"


rule lood:
    """KL LOOD, mean-distance LOOD and NNGP AUC of each differing record (query = the record)."""
    input:
        split=rules.split.output.split,
        differ=rules.split.output.differ,
        kernel=rules.nngp_kernel.output.kernel,
    output:
        report(
            f"{RESULTS}/{{experiment}}/lood.csv",
            caption="../workflow/report/lood_table.rst",
            category="{experiment}",
            subcategory="tables",
        ),
    params:
        sigma2=section("nngp.sigma2"),
        mode="differ",
    log:
        f"{RESULTS}/{{experiment}}/logs/lood.log",
    benchmark:
        f"{RESULTS}/{{experiment}}/benchmarks/lood.tsv"
    threads: sized("lood").threads
    resources:
        **sized("lood").resources,
    conda:
        "../envs/jax.yaml"
    script:
        "../workflow/scripts/lood.py"


use rule lood as lood_all with:
    output:
        f"{RESULTS}/{{experiment}}/lood_all.csv",
    params:
        sigma2=section("nngp.sigma2"),
        mode="all",
    log:
        f"{RESULTS}/{{experiment}}/logs/lood_all.log",
    benchmark:
        f"{RESULTS}/{{experiment}}/benchmarks/lood_all.tsv"
    threads: sized("lood_all").threads
    resources:
        **sized("lood_all").resources,

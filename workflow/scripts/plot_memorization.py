"""Snakemake entry point: memorization histogram, example images, correlation with LOOD and MIA."""

from dataclasses import replace

import pandas as pd

from lood.data.split import Split
from lood.figures.correlation import Panel, correlation_figure, histogram_figure
from lood.figures.memorization import memorization_images_figure
from lood.figures.spec import PlotSpec
from lood.io import write_csv
from lood.logs import setup_logging

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.plot_memorization")
p = PlotSpec.from_config(sm.params.plots)
name = sm.wildcards.experiment
mem = pd.read_csv(sm.input.memorization)
histogram_figure(
    mem["mem"].to_numpy(),
    sm.output.hist,
    xlabel="memorization  P[correct | in] - P[correct | out]",
    title=f"{name}: memorization of {len(mem)} training records",
    logx=False,
    highlight=mem.loc[mem.is_differ, "mem"].to_numpy(),
    plots=p,
)
memorization_images_figure(
    Split.load(sm.input.split),
    mem,
    sm.params.n_examples,
    sm.output.examples,
    title=f"{name}: most (top) and least (bottom) memorized training images",
    plots=replace(p, style="white"),
)

# lood_all.csv (idx) in the all-records mode, else lood.csv (differ_idx)
lood = pd.read_csv(sm.input.lood).rename(columns={"differ_idx": "idx"})
df = mem.merge(lood[["idx", "kl_lood", "mean_dist_lood"]], on="idx")
rows = correlation_figure(
    df,
    [
        Panel("kl_lood", "mem", "NNGP KL LOOD", "memorization (subset models)", logx=True),
        Panel("mean_dist_lood", "mem", "NNGP mean-distance LOOD", "memorization (subset models)"),
    ],
    sm.output.lood,
    title=f"{name}: memorization vs NNGP LOOD ({len(df)} records)",
    plots=p,
)
rows = [r | {"records": "all" if len(df) == len(mem) else "differ"} for r in rows]
mia = pd.read_csv(sm.input.mia).rename(columns={"differ_idx": "idx"})
dm = mem.merge(mia[["idx", "mia_auc", "pred_diff"]], on="idx")
rows += [
    r | {"records": "differ"}
    for r in correlation_figure(
        dm,
        [
            Panel("mia_auc", "mem", "MIA AUC (retrained NNs)", "memorization (subset models)"),
            Panel(
                "pred_diff", "mem", "prediction difference (NNs)", "memorization (subset models)"
            ),
        ],
        sm.output.mia,
        title=f"{name}: memorization vs leave-one-out retraining ({len(dm)} records)",
        plots=p,
    )
]
stats = pd.DataFrame(rows)
write_csv(stats, sm.output.stats, allow_nan=["pearson_r", "pearson_p", "spearman_r", "spearman_p"])
for r in rows:
    log.info(
        "mem vs %s (%s records, n=%d): Pearson r=%.3f (p=%.2g), Spearman %.3f (p=%.2g)",
        r["x"],
        r["records"],
        r["n"],
        r["pearson_r"],
        r["pearson_p"],
        r["spearman_r"],
        r["spearman_p"],
    )

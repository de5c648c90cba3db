"""Snakemake entry point: influence estimates vs the retrained-model prediction difference."""

import pandas as pd

from lood.comparison import influence_figure, influence_table
from lood.io import write_csv
from lood.logs import setup_logging

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.plot_influence")
df = influence_table(
    pd.read_csv(sm.input.mia),
    pd.read_csv(sm.input.lood),
    pd.read_csv(sm.input.tracin),
    pd.read_csv(sm.input.influence),
)
write_csv(df, sm.output.scores)
p = sm.params.plots
rows = influence_figure(
    df,
    sm.output.figures,
    title=f"{sm.wildcards.experiment}: influence vs prediction difference ({len(df)} records)",
    style=p["style"],
    context=p["context"],
    dpi=p["dpi"],
)
stats = pd.DataFrame(rows)
write_csv(stats, sm.output.stats, allow_nan=["pearson_r", "pearson_p", "spearman_r", "spearman_p"])
for r in rows:
    log.info("%s vs %s: Pearson r=%.3f (p=%.2g), Spearman %.3f (p=%.2g)",
             r["y"], r["x"], r["pearson_r"], r["pearson_p"], r["spearman_r"], r["spearman_p"])  # fmt: skip

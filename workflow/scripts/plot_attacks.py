"""Snakemake entry point: pooled ROC curves of the attacks, and their per-record AUC vs KL LOOD."""

import pandas as pd

from lood.figures.attacks import attacks_lood_figure, roc_figure
from lood.figures.spec import PlotSpec
from lood.io import load_npz
from lood.logs import setup_logging
from lood.stats import STAT_COLUMNS

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.plot_attacks")
p = PlotSpec.from_config(sm.params.plots)
experiment = sm.wildcards.experiment
pooled = pd.read_csv(sm.input.pooled)
roc_figure(
    load_npz(sm.input.roc),
    pooled,
    sm.output.roc,
    score=sm.params.score,
    title=f"{experiment}: pooled ROC ({int(pooled.n_pos.iloc[0])} in, "
    f"{int(pooled.n_neg.iloc[0])} out (model, record) pairs)",
    plots=p,
)
per_record = pd.read_csv(sm.input.per_record)
rows = attacks_lood_figure(
    per_record,
    pd.read_csv(sm.input.lood),
    sm.output.lood,
    score=sm.params.score,
    title=f"{experiment}: per-record attack AUC vs NNGP LOOD ({len(per_record)} records)",
    plots=p,
)
for r in rows:
    log.info("%s vs %s: %s", r["x"], r["y"], ", ".join(f"{k} {r[k]:.3g}" for k in STAT_COLUMNS))

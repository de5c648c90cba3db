"""Snakemake entry point: correlation of NNGP LOOD with the retrained-model ground truth."""

import pandas as pd

from lood.figures.correlation import Panel, correlation_figure
from lood.figures.spec import PlotSpec
from lood.logs import setup_logging
from lood.stats import write_correlation_stats

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.plot_correlation")
df = pd.read_csv(sm.input.mia).merge(pd.read_csv(sm.input.lood), on=["differ_idx", "label"])
p = PlotSpec.from_config(sm.params.plots)
rows = correlation_figure(
    df,
    [
        Panel("kl_lood", "mia_auc", "NNGP KL LOOD", "MIA AUC (retrained NNs)", logx=True),
        Panel(
            "mean_dist_lood", "pred_diff", "NNGP mean-distance LOOD", "prediction difference (NNs)"
        ),
        Panel("nngp_auc", "mia_auc", "NNGP AUC", "MIA AUC (retrained NNs)"),
    ],
    sm.output.figures,
    title=f"{sm.wildcards.experiment}: LOOD vs leave-one-out retraining ({len(df)} records)",
    style=p.style,
    context=p.context,
    dpi=p.dpi,
)
write_correlation_stats(rows, sm.output.stats, log)

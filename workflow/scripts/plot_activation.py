"""Snakemake entry point: LOOD and MIA AUC of the same records across experiments."""

import pandas as pd

from lood.compare import activation_stats, activation_table, check_same_records
from lood.figures.comparison import activation_figure
from lood.figures.spec import PlotSpec
from lood.io import load_npz, write_csv
from lood.logs import setup_logging

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.plot_activation")
names = list(sm.params.experiments)
if len(names) < 2:
    raise ValueError(f"plot_activation needs at least two experiments, got {names}")
check_same_records(
    {e: pd.read_csv(sm.input[f"differ_{e}"]) for e in names},
    {e: load_npz(sm.input[f"split_{e}"]) for e in names},
)
log.info("experiments %s share the data split and the differing records", names)
long = activation_table(
    {
        e: (
            sm.params.activations[e],
            pd.read_csv(sm.input[f"mia_{e}"]),
            pd.read_csv(sm.input[f"lood_{e}"]),
        )
        for e in names
    }
)
write_csv(long, sm.output.table)
stats = activation_stats(long)
write_csv(stats, sm.output.stats, allow_nan=["pearson_r", "pearson_p", "spearman_r", "spearman_p"])
p = PlotSpec.from_config(sm.params.plots)
activation_figure(long, sm.output.figures, plots=p)
for r in stats.itertuples():
    log.info(
        "%s %s/%s %s vs %s: Pearson r=%.3f (p=%.2g), means %.4g / %.4g",
        r.comparison,
        r.experiment_a,
        r.experiment_b,
        r.metric_a,
        r.metric_b,
        r.pearson_r,
        r.pearson_p,
        r.mean_a,
        r.mean_b,
    )

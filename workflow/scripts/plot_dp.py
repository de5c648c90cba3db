"""Snakemake entry point: MIA AUC and LOOD of the same records under non-DP and DP-SGD training."""

import pandas as pd

from lood.compare import check_same_records
from lood.figures.privacy import dp_figure
from lood.figures.spec import PlotSpec
from lood.io import load_npz, write_csv
from lood.logs import setup_logging
from lood.privacy.audit import dp_summary, dp_table, models_epsilon

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.plot_dp")
names = list(sm.params.experiments)
check_same_records(
    {e: pd.read_csv(sm.input[f"differ_{e}"]) for e in names},
    {e: load_npz(sm.input[f"split_{e}"]) for e in names},
)
eps = {e: models_epsilon(load_npz(sm.input[f"in_{e}"])) for e in names}
long = dp_table(
    {
        e: (eps[e], pd.read_csv(sm.input[f"mia_{e}"]), pd.read_csv(sm.input[f"lood_{e}"]))
        for e in names
    }
)
# empirical LOOD is inf where one side's scores are all equal (a point mass; lood.stats.gaussian_kl)
write_csv(long, sm.output.table, allow_nan=["epsilon"], allow_inf=["empirical_lood"])
summary = dp_summary(long)
write_csv(summary, sm.output.summary, allow_nan=list(summary.columns))
p = PlotSpec.from_config(sm.params.plots)
dp_figure(long, sm.output.figures, plots=p)
for r in summary.itertuples():
    log.info(
        "%s (epsilon %.3g): test accuracy %.3f, MIA AUC %.3f +- %.3f, empirical LOOD %.3g, "
        "KL LOOD vs MIA AUC r=%.2f",
        r.experiment,
        r.epsilon,
        r.test_acc,
        r.mia_auc_mean,
        r.mia_auc_sd,
        r.empirical_lood_mean,
        r.kl_lood_vs_mia_pearson_r,
    )

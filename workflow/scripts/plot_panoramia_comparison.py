"""Snakemake entry point: PANORAMIA beside the one-run audit, the DP accountant, the retrained-model
MIA and LOOD, for every experiment."""

import pandas as pd

from lood.figures.panoramia import panoramia_comparison_figure
from lood.figures.spec import PlotSpec
from lood.io import load_npz, write_csv
from lood.logs import setup_logging
from lood.privacy.audit import models_epsilon
from lood.privacy.panoramia import panoramia_comparison

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.plot_panoramia_comparison")
names = list(sm.params.experiments)
audit = None
if sm.params.audit:
    audit = {e: pd.read_csv(sm.input[f"audit_{e}"]) for e in names}
table = panoramia_comparison(
    epsilon={e: models_epsilon(load_npz(sm.input[f"in_{e}"])) for e in names},
    panoramia={e: pd.read_csv(sm.input[f"panoramia_{e}"]) for e in names},
    mia={e: pd.read_csv(sm.input[f"mia_{e}"]) for e in names},
    lood={e: pd.read_csv(sm.input[f"lood_{e}"]) for e in names},
    audit=audit,
)
write_csv(
    table,
    sm.output.table,
    allow_nan=["eps_accountant", "audit_eps_lb_max", "audit_eps_lb_mean", "audit_ceiling"],
)
p = PlotSpec.from_config(sm.params.plots)
panoramia_comparison_figure(table, sm.output.figures, plots=p)
for r in table.itertuples():
    log.info(
        "%s: accountant epsilon %.3g, audit bound %.3f (best of %d runs), PANORAMIA eps_tilde "
        "%.3f [%.3f, %.3f] (c_lb %.3f), MIA AUC %.3f, KL LOOD %.3g",
        r.experiment,
        r.eps_accountant,
        r.audit_eps_lb_max,
        r.audit_runs,
        r.eps_tilde_mean,
        r.eps_tilde_min,
        r.eps_tilde_max,
        r.c_lb,
        r.mia_auc_mean,
        r.kl_lood_mean,
    )

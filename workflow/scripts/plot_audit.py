"""Snakemake entry point: one-run audit lower bounds beside the accountant's epsilon."""

import pandas as pd

from lood.figures.privacy import audit_figure
from lood.figures.spec import PlotSpec
from lood.io import write_csv
from lood.logs import setup_logging

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.plot_audit")
runs = pd.concat([pd.read_csv(path) for path in sm.input], ignore_index=True)
write_csv(runs, sm.output.table, allow_nan=["accuracy", "eps_accountant"])
p = PlotSpec.from_config(sm.params.plots)
audit_figure(runs, sm.output.figures, plots=p)
for name, sub in runs.groupby("experiment", sort=False):
    log.info(
        "%s: accountant epsilon %.3g, audit lower bounds %s (%d/%d guesses correct at best)",
        name,
        sub.eps_accountant.iloc[0],
        [round(x, 3) for x in sub.eps_lower_bound],
        sub.v.max(),
        sub.r.iloc[0],
    )

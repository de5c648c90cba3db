"""Snakemake entry point: the LOOD landscape and, when built, the MIA landscape beside it."""

import pandas as pd

from lood.figures.landscape import landscape_figure
from lood.figures.spec import PlotSpec
from lood.logs import setup_logging

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.plot_landscape")
p = PlotSpec.from_config(sm.params.plots)
mia = pd.read_csv(sm.input.mia) if "mia" in sm.input.keys() else None
landscape_figure(
    pd.read_csv(sm.input.lood),
    mia,
    sm.output.figures,
    scale=sm.params.scale,
    title=f"{sm.wildcards.experiment}: landscape around differing records",
    plots=p,
)
log.info("landscape figure written (%s MIA)", "with" if mia is not None else "without")

"""Snakemake entry point: the privacy onion figure."""

import pandas as pd

from lood.figures.onion import onion_figure, onion_rise
from lood.figures.spec import PlotSpec
from lood.logs import setup_logging

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.plot_onion")
p = PlotSpec.from_config(sm.params.plots)
table = pd.read_csv(sm.input.onion)
onion_figure(
    table,
    sm.output.figures,
    n_show=sm.params.n_show,
    title=f"{sm.wildcards.experiment}: privacy onion",
    plots=p,
)
rise = onion_rise(table)
log.info("largest rises of KL LOOD: %s", rise.head(sm.params.n_show).rise.round(3).to_dict())

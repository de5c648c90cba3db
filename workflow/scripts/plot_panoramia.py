"""Snakemake entry point: PANORAMIA's samples figure and its classifiers' curves and bounds."""

import pandas as pd

from lood.figures.panoramia import panoramia_curves_figure, panoramia_samples_figure
from lood.figures.spec import PlotSpec
from lood.io import load_npz
from lood.logs import setup_logging

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.plot_panoramia")
p = PlotSpec.from_config(sm.params.plots)
panoramia_samples_figure(load_npz(sm.input.samples), sm.output.samples, plots=p)
summary = pd.read_csv(sm.input.table)
panoramia_curves_figure(
    summary,
    pd.read_csv(sm.input.thresholds),
    pd.read_csv(sm.input.curves),
    sm.output.curves,
    plots=p,
)
log.info("eps_tilde per target: %s", [round(x, 3) for x in summary.eps_tilde])

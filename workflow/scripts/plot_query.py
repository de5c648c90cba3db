"""Snakemake entry point: optimised queries beside the differing records, LOOD per Adam step."""

import pandas as pd

from lood.data.split import Split
from lood.figures.landscape import history_figure, reconstruction_figure
from lood.figures.spec import PlotSpec
from lood.io import load_npz
from lood.logs import setup_logging

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.plot_query")
p = PlotSpec.from_config(sm.params.plots)
split = Split.load(sm.input.split)
q = load_npz(sm.input.queries)
table = pd.read_csv(sm.input.table)
name = sm.wildcards.experiment
reconstruction_figure(
    split.unnormalize(split.x_train[q["records"]]),
    q["queries_raw"],
    split.image_shape,
    table,
    sm.output.reconstruction,
    title=f"{name}: queries maximising KL LOOD",
    plots=p,
)
history_figure(
    pd.read_csv(sm.input.history),
    table,
    sm.output.history,
    title=f"{name}: query optimisation",
    plots=p,
)
log.info("query figures for %d records", len(table))

"""Snakemake entry point: influence estimates vs the retrained-model prediction difference."""

import pandas as pd

from lood.compare import influence_table
from lood.figures.comparison import influence_figure
from lood.figures.spec import PlotSpec
from lood.io import write_csv
from lood.logs import setup_logging
from lood.stats import write_correlation_stats

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.plot_influence")
df = influence_table(
    pd.read_csv(sm.input.mia),
    pd.read_csv(sm.input.lood),
    pd.read_csv(sm.input.tracin),
    pd.read_csv(sm.input.influence),
)
write_csv(df, sm.output.scores)
p = PlotSpec.from_config(sm.params.plots)
rows = influence_figure(
    df,
    sm.output.figures,
    title=f"{sm.wildcards.experiment}: influence vs prediction difference ({len(df)} records)",
    plots=p,
)
write_correlation_stats(rows, sm.output.stats, log)

"""Snakemake entry point: histogram of the LOOD of every training record (privacy-risk ranking)."""

import pandas as pd

from lood.figures.correlation import histogram_figure
from lood.figures.spec import PlotSpec
from lood.logs import setup_logging

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.plot_lood_all")
all_df = pd.read_csv(sm.input.lood_all)
differ = pd.read_csv(sm.input.lood)
p = PlotSpec.from_config(sm.params.plots)
histogram_figure(
    all_df["kl_lood"].to_numpy(),
    sm.output.figures,
    xlabel="NNGP KL LOOD (query = the record)",
    title=f"{sm.wildcards.experiment}: LOOD of all {len(all_df)} training records",
    highlight=differ["kl_lood"].to_numpy(),
    plots=p,
)
log.info("top-5 records by KL LOOD: %s", all_df.nlargest(5, "kl_lood")["idx"].tolist())

"""Snakemake entry point: landscape queries x + (t / scale) d of the first differing records."""

import pandas as pd

from lood.data.split import Split
from lood.io import savez
from lood.logs import setup_logging
from lood.nngp.landscape import landscape_grid, landscape_queries, landscape_records
from lood.nngp.spec import LandscapeSpec
from lood.seeds import derive_seed

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.landscape_queries")
p = LandscapeSpec.from_config(sm.params.landscape)
split = Split.load(sm.input.split)
differ_idx = pd.read_csv(sm.input.differ)["differ_idx"].to_numpy()
records = landscape_records(differ_idx, p.n_records)
t = landscape_grid(p.t_min, p.t_max, p.n_points)
queries, directions = landscape_queries(
    split.x_train,
    records,
    t,
    p.scale,
    derive_seed(p.seed, "landscape"),
    split.normalization,
    split.feature_scale,
    p.direction_norm,
)
savez(sm.output.queries, records=records, t=t, queries=queries, directions=directions)
log.info(
    "%d records x %d queries (t in [%g, %g] / %g, direction norm %s)",
    len(records),
    len(t),
    t[0],
    t[-1],
    p.scale,
    p.direction_norm,
)

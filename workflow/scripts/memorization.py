"""Snakemake entry point: memorization per training record and top-k influence per test record."""

import pandas as pd

from lood.data.split import Split
from lood.influence.memorization import memorization_tables
from lood.io import load_npz, write_csv
from lood.logs import setup_logging

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.memorization")
split = Split.load(sm.input.split)
sub = load_npz(sm.input.subsets)
mem, infl = memorization_tables(
    sub["correctness_train"],
    sub["correctness_test"],
    sub["masks"],
    split.y_train,
    split.y_test,
    top_k=sm.params.top_k,
    differ_idx=pd.read_csv(sm.input.differ)["differ_idx"].to_numpy(),
)
write_csv(mem, sm.output.memorization)
write_csv(infl, sm.output.influence)
log.info(
    "%d models, memorization mean %.3f, max %.3f; records with mem > 0.5: %d of %d",
    sub["masks"].shape[0],
    mem.mem.mean(),
    mem.mem.max(),
    int((mem.mem > 0.5).sum()),
    len(mem),
)
top = mem.nlargest(5, "mem")
log.info("most memorized: %s", list(zip(top.idx.tolist(), top.mem.round(3).tolist(), strict=True)))
log.info("influence: %d rows, largest %.3f", len(infl), infl.influence.max() if len(infl) else 0)

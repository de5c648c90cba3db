"""Snakemake entry point: NNGP LOOD of the differing records (mode=differ) or of all records."""

import pandas as pd

from lood.data.split import Split
from lood.io import load_npz, write_csv
from lood.logs import setup_logging
from lood.nngp.tables import lood_table

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], f"lood.lood_{sm.params.mode}")
split = Split.load(sm.input.split)
table = lood_table(
    K=load_npz(sm.input.kernel)["K"],
    y_train=split.y_train,
    n_classes=split.n_classes,
    sigma2=sm.params.sigma2,
    differ_idx=pd.read_csv(sm.input.differ)["differ_idx"].to_numpy(),
    mode=sm.params.mode,
    logger=log,
)
write_csv(table, sm.output[0])

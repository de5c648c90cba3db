"""Snakemake entry point: LOOD (NNGP or NTK-GP) of the differing records (mode=differ) or of all
records (mode=all)."""

import pandas as pd

from lood.data.split import Split
from lood.io import load_npz, write_csv
from lood.logs import setup_logging
from lood.nngp.evidence import resolve_sigma2
from lood.nngp.spec import NNGPSpec
from lood.nngp.tables import lood_table

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], f"lood.lood_{sm.params.mode}")
p = NNGPSpec.from_config(sm.params.nngp)
sigma2 = resolve_sigma2(p.sigma2, sm.input.get("sigma2"))
if p.sigma2 == "auto":
    log.info("sigma2 = %.6g (auto: by the evidence, %s)", sigma2, sm.input.sigma2)
split = Split.load(sm.input.split)
table = lood_table(
    K=load_npz(sm.input.kernel)["K"],
    y_train=split.y_train,
    n_classes=split.n_classes,
    sigma2=sigma2,
    differ_idx=pd.read_csv(sm.input.differ)["differ_idx"].to_numpy(),
    mode=sm.params.mode,
    logger=log,
    Theta=load_npz(sm.input.ntk)["Theta"] if p.kernel == "ntk" else None,
)
write_csv(table, sm.output[0])

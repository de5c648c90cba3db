"""Snakemake entry point: the privacy onion under the experiment's GP (NNGP or NTK-GP)."""

import pandas as pd

from lood.data.split import Split
from lood.io import load_npz, write_csv
from lood.logs import setup_logging
from lood.nngp.evidence import resolve_sigma2
from lood.nngp.spec import NNGPSpec, OnionSpec
from lood.nngp.tables import onion_table

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.onion")
p = OnionSpec.from_config(sm.params.onion)
gp = NNGPSpec.from_config(sm.params.nngp)
sigma2 = resolve_sigma2(gp.sigma2, sm.input.get("sigma2"))
split = Split.load(sm.input.split)
log.info("%s GP, sigma2 = %.6g%s", gp.kernel, sigma2, " (auto)" if gp.sigma2 == "auto" else "")
table = onion_table(
    K=load_npz(sm.input.kernel)["K"],
    y_train=split.y_train,
    n_classes=split.n_classes,
    sigma2=sigma2,
    differ_idx=pd.read_csv(sm.input.differ)["differ_idx"].to_numpy(),
    onion=p,
    Theta=load_npz(sm.input.ntk)["Theta"] if gp.kernel == "ntk" else None,
    logger=log,
)
write_csv(table, sm.output[0])

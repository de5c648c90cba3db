"""Snakemake entry point: train in models (role=in) or one shard of out models (role=out)."""

from lood.logs import setup_logging

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
# The log exists from the job's first second (before the slow torch import), so a user sees it start.
log = setup_logging(sm.log[0], f"lood.train_{sm.params.role}")
log.info("job started; loading torch")

import pandas as pd  # noqa: E402

from lood.data import Split  # noqa: E402
from lood.training import train_role  # noqa: E402

shard = int(sm.wildcards.get("shard", 0)) if sm.params.role == "out" else None
train_role(
    role=sm.params.role,
    split=Split.load(sm.input.split),
    differ_idx=pd.read_csv(sm.input.differ)["differ_idx"].to_numpy(),
    model_cfg=sm.params.model,
    train_cfg=sm.params.train,
    experiment=sm.wildcards.experiment,
    shard=shard,
    out_npz=sm.output.models,
    out_weights=sm.output.get("weights"),
    threads=sm.threads,
    logger=log,
)

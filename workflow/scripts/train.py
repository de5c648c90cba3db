"""Snakemake entry point: train in models (role=in) or one shard of out models (role=out)."""

from lood.logs import setup_logging

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
# The log exists from the job's first second (before the slow torch import), so a user sees it start.
log = setup_logging(sm.log[0], f"lood.train_{sm.params.role}")
log.info("job started; loading torch")

import pandas as pd  # noqa: E402

from lood.train.jobs import job_from_config, train_role  # noqa: E402

role, experiment = sm.params.role, sm.wildcards.experiment
shard = int(sm.wildcards.shard) if role == "out" else None
where = f"experiment {experiment!r}, {role} models" + (f", shard {shard}" if role == "out" else "")
job = job_from_config(
    sm.input.split,
    sm.params.model,
    sm.params.train,
    where,
    sm.threads,
    log,
    gpus=sm.resources.get("gpu", 0),
)
train_role(
    role,
    job,
    differ_idx=pd.read_csv(sm.input.differ)["differ_idx"].to_numpy(),
    shard=shard,
    out_npz=sm.output.models,
    out_weights=sm.output.get("weights"),
)

"""Snakemake entry point: train in models (role=in) or one shard of out models (role=out)."""

from lood.jobs import job_from_snakemake

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
role = sm.params.role
shard = int(sm.wildcards.shard) if role == "out" else None
# The log exists from the job's first second (before the slow torch import), so a user sees it start.
job = job_from_snakemake(sm, f"{role} models" + (f", shard {shard}" if role == "out" else ""))

import pandas as pd  # noqa: E402

from lood.jobs.training import train_role  # noqa: E402

train_role(
    role,
    job,
    differ_idx=pd.read_csv(sm.input.differ)["differ_idx"].to_numpy(),
    shard=shard,
    out_npz=sm.output.models,
    out_weights=sm.output.get("weights"),
)

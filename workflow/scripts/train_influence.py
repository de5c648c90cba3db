"""Snakemake entry point: train the TracIn / influence-function model with checkpoints."""

from lood.jobs import job_from_snakemake

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
job = job_from_snakemake(sm, "influence model")  # the log first, then torch

from lood.io import atomic_path  # noqa: E402
from lood.jobs.influence import train_with_checkpoints  # noqa: E402
from lood.seeds import derive_seed  # noqa: E402

seed = derive_seed(job.train.seed, "tracin")
ckpts, loss = train_with_checkpoints(job, seed, every=int(sm.params.checkpoint_every))
with atomic_path(sm.output.checkpoints) as tmp:
    ckpts.save(tmp)
job.log.info(
    "influence model (%s, seed %d): final training loss %.4g, %d checkpoints at epochs %s",
    job.arch.activation,
    seed,
    loss,
    len(ckpts.epochs),
    ckpts.epochs.tolist(),
)

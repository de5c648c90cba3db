"""Snakemake entry point: train the TracIn / influence-function model with checkpoints."""

from lood.io import atomic_path
from lood.logs import setup_logging
from lood.seeds import derive_seed
from lood.train.jobs import job_from_config, train_with_checkpoints

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.train_influence")
where = f"experiment {sm.wildcards.experiment!r}, influence model"
job = job_from_config(
    sm.input.split,
    sm.params.model,
    sm.params.train,
    where,
    sm.threads,
    log,
    gpus=sm.resources.get("gpu", 0),
)
seed = derive_seed(job.train.seed, "tracin")
ckpts, loss = train_with_checkpoints(job, seed, every=int(sm.params.checkpoint_every))
with atomic_path(sm.output.checkpoints) as tmp:
    ckpts.save(tmp)
log.info("influence model (%s, seed %d): final training loss %.4g, %d checkpoints at epochs %s",
         job.arch.activation, seed, loss, len(ckpts.epochs), ckpts.epochs.tolist())  # fmt: skip

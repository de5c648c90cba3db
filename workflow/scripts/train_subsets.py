"""Snakemake entry point: train the random-subset models of the memorization estimator."""

from lood.influence.spec import MemorizationSpec
from lood.logs import setup_logging
from lood.train.jobs import job_from_config, train_subsets

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.train_subsets")
where = f"experiment {sm.wildcards.experiment!r}, subset models"
job = job_from_config(
    sm.input.split,
    sm.params.model,
    sm.params.train,
    where,
    sm.threads,
    log,
    gpus=sm.resources.get("gpu", 0),
)
train_subsets(job, MemorizationSpec.from_config(sm.params.memorization), sm.output.subsets)

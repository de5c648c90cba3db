"""Snakemake entry point: train the random-subset models of the memorization estimator."""

from lood.jobs import job_from_snakemake

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
job = job_from_snakemake(sm, "subset models")  # the log first, then torch

from lood.influence.spec import MemorizationSpec  # noqa: E402
from lood.jobs.influence import train_subsets  # noqa: E402

train_subsets(job, MemorizationSpec.from_config(sm.params.memorization), sm.output.subsets)

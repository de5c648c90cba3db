"""The one prologue of the workflow's torch scripts: :func:`job_from_snakemake` for the
training jobs, :func:`log_from_snakemake` (its first step) for the others.

Both open the job's log, logger ``lood.<rule>``, before torch is imported (importing torch takes
seconds, longer on a cold or network file system), so a user who opens the log sees the job
start at once; only then does a training job load the split, parse the ``model`` and ``train``
sections and pick the device. The Snakemake object is taken as a plain object (its ``log``,
``rule``, ``wildcards``, ``input``, ``params``, ``threads`` and ``resources``): the library
never imports Snakemake.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from lood.logs import setup_logging

if TYPE_CHECKING:
    from lood.jobs.training import Job


def log_from_snakemake(snakemake: Any) -> logging.Logger:
    """The job's logger ``lood.<rule>``, its log file opened and the start logged (before torch)."""
    log = setup_logging(snakemake.log[0], f"lood.{snakemake.rule}")
    log.info("job started; loading torch")
    return log


def job_from_snakemake(snakemake: Any, what: str) -> Job:
    """The training job of a Snakemake script: its log first (:func:`log_from_snakemake`), then
    the job.

    ``what`` names the job in its messages after the experiment, e.g. ``"out models, shard 3"``
    gives ``experiment 'relu', out models, shard 3``. The rule's ``input.split``,
    ``params.model``, ``params.train``, ``threads`` and ``resources.gpu`` (warned about when
    CUDA is unusable) make the job.
    """
    sm = snakemake
    log = log_from_snakemake(sm)
    from lood.jobs.training import job_from_config  # torch: only once the log exists

    return job_from_config(
        sm.input.split,
        sm.params.model,
        sm.params.train,
        f"experiment {sm.wildcards.experiment!r}, {what}",
        sm.threads,
        log,
        gpus=sm.resources.get("gpu", 0),
    )

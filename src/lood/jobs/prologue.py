"""The one prologue of the workflow's training scripts: ``job_from_snakemake(snakemake, what)``.

It opens the job's log before torch is imported (importing torch takes seconds, longer on a
cold or network file system), so a user who opens the log sees the job start at once; only then
does it load the split, parse the ``model`` and ``train`` sections and pick the device. The
Snakemake object is taken as a plain object (its ``log``, ``rule``, ``wildcards``, ``input``,
``params``, ``threads`` and ``resources``): the library never imports Snakemake.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lood.logs import setup_logging

if TYPE_CHECKING:
    from lood.jobs.training import Job


def job_from_snakemake(snakemake: Any, what: str) -> Job:
    """The training job of a Snakemake script: log ``lood.<rule>`` set up first, then the job.

    ``what`` names the job in its messages after the experiment, e.g. ``"out models, shard 3"``
    gives ``experiment 'relu', out models, shard 3``. The rule's ``input.split``,
    ``params.model``, ``params.train``, ``threads`` and ``resources.gpu`` (warned about when
    CUDA is unusable) make the job.
    """
    sm = snakemake
    log = setup_logging(sm.log[0], f"lood.{sm.rule}")
    log.info("job started; loading torch")
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

"""Snakemake entry point: PANORAMIA's helper model, trained on generated data only."""

from lood.logs import setup_logging

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.panoramia_helper")
log.info("job started; loading torch")

from lood.io import savez  # noqa: E402
from lood.privacy.panoramia import AttackSets  # noqa: E402
from lood.privacy.panoramia_jobs import train_panoramia_helper  # noqa: E402
from lood.privacy.spec import PanoramiaSpec  # noqa: E402
from lood.train.jobs import job_from_config  # noqa: E402

where = f"experiment {sm.wildcards.experiment!r}, PANORAMIA helper"
job = job_from_config(
    sm.input.split,
    sm.params.model,
    sm.params.train,
    where,
    sm.threads,
    log,
    gpus=sm.resources.get("gpu", 0),
)
arrays = train_panoramia_helper(
    job, AttackSets.load(sm.input.sets), PanoramiaSpec.from_config(sm.params.panoramia)
)
savez(sm.output[0], **arrays)

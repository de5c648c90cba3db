"""Snakemake entry point: PANORAMIA's helper model, trained on generated data only."""

from lood.jobs import job_from_snakemake

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
job = job_from_snakemake(sm, "PANORAMIA helper")  # the log first, then torch

from lood.io import savez  # noqa: E402
from lood.jobs.panoramia import train_panoramia_helper  # noqa: E402
from lood.privacy.panoramia import AttackSets  # noqa: E402
from lood.privacy.spec import PanoramiaSpec  # noqa: E402

arrays = train_panoramia_helper(
    job, AttackSets.load(sm.input.sets), PanoramiaSpec.from_config(sm.params.panoramia)
)
savez(sm.output[0], **arrays)

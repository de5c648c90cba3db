"""Snakemake entry point: PANORAMIA's seeded split of D into generator / attack-train /
attack-test members."""

from lood.jobs import log_from_snakemake

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = log_from_snakemake(sm)  # the log first, then torch

from lood.data.split import Split  # noqa: E402
from lood.jobs.panoramia import member_split, save_member_split  # noqa: E402
from lood.privacy.spec import PanoramiaSpec  # noqa: E402

spec = PanoramiaSpec.from_config(sm.params.panoramia)
split = Split.load(sm.input.split)
members = member_split(len(split.y_train), spec)
save_member_split(sm.output[0], members)
log.info(
    "%d records of D: %d generator, %d attack-train, %d attack-test members (fractions %s)",
    len(split.y_train),
    len(members.generator),
    len(members.attack_train),
    len(members.attack_test),
    spec.fractions,
)

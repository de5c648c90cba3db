"""Snakemake entry point: one-run privacy audit of an experiment's training (thin wrapper)."""

from lood.logs import setup_logging

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.audit")
log.info("job started; loading torch")

from lood.io import savez, write_csv  # noqa: E402
from lood.privacy.spec import AuditSpec  # noqa: E402
from lood.train.jobs import job_from_config, one_run_audit  # noqa: E402

experiment = sm.wildcards.experiment
where = f"experiment {experiment!r}, audit"
job = job_from_config(
    sm.input.split,
    sm.params.model,
    sm.params.train,
    where,
    sm.threads,
    log,
    gpus=sm.resources.get("gpu", 0),
)
table, arrays = one_run_audit(job, AuditSpec.from_config(sm.params.audit), experiment)
savez(sm.output.scores, **arrays)
write_csv(table, sm.output.table, allow_nan=["accuracy", "eps_accountant"])  # inf: non-DP

"""Snakemake entry point: one-run privacy audit of an experiment's training (thin wrapper)."""

from lood.jobs import job_from_snakemake

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
job = job_from_snakemake(sm, "audit")  # the log first, then torch

from lood.io import savez, write_csv  # noqa: E402
from lood.jobs.audit import one_run_audit  # noqa: E402
from lood.privacy.spec import AuditSpec  # noqa: E402

table, arrays = one_run_audit(job, AuditSpec.from_config(sm.params.audit), sm.wildcards.experiment)
savez(sm.output.scores, **arrays)
write_csv(table, sm.output.table, allow_nan=["accuracy", "eps_accountant"])  # inf: non-DP

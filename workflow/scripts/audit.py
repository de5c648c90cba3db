"""Snakemake entry point: one-run privacy audit of an experiment's training (thin wrapper)."""

from lood.logs import setup_logging

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.audit")
log.info("job started; loading torch")

from lood.data import Split  # noqa: E402
from lood.io import savez, write_csv  # noqa: E402
from lood.training import one_run_audit  # noqa: E402

table, arrays = one_run_audit(
    Split.load(sm.input.split),
    sm.params.model,
    sm.params.train,
    sm.params.audit,
    sm.wildcards.experiment,
    threads=sm.threads,
    logger=log,
)
savez(sm.output.scores, **arrays)
write_csv(table, sm.output.table, allow_nan=["accuracy", "eps_accountant"])  # inf: non-DP

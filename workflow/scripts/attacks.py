"""Snakemake entry point: LiRA and RMIA on the in and out models, per record and pooled."""

import time

import pandas as pd

from lood.io import load_npz, savez, write_csv
from lood.logs import setup_logging
from lood.privacy.mia import attack_tables, stack_models
from lood.privacy.spec import AttacksSpec

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.attacks")
t0 = time.perf_counter()
spec = AttacksSpec.from_config(sm.params.attacks)
differ = pd.read_csv(sm.input.differ)
inputs = stack_models(
    differ, load_npz(sm.input.models_in), [load_npz(p) for p in sm.input.models_out]
)
y_test = load_npz(sm.input.split)["y_test"]
log.info(
    "%d records, %d in and %d out models each, %d population (test) records, %d classes; "
    "score %s, variance %s, free in models %s",
    len(differ),
    inputs.in_outputs.shape[0],
    inputs.out_outputs.shape[1],
    len(y_test),
    inputs.in_outputs.shape[-1],
    spec.score,
    spec.variance,
    spec.free_in,
)
tables = attack_tables(differ, inputs, y_test, spec)
write_csv(tables.per_record, sm.output.per_record)
write_csv(tables.pooled, sm.output.pooled)
savez(sm.output.roc, **tables.roc)
write_csv(tables.free_in, sm.output.free_in)
write_csv(tables.free_in_summary, sm.output.free_in_summary)
for row in tables.pooled.to_dict("records"):
    auc = tables.per_record[f"{row['attack']}_auc"]
    tprs = ", ".join(f"TPR at FPR {k[4:]} {v:.4f}" for k, v in row.items() if k.startswith("tpr@"))
    log.info(
        "%-12s per-record AUC mean %.3f (min %.3f, max %.3f); pooled AUC %.3f, balanced "
        "accuracy %.3f, %s (%d negatives)",
        row["attack"],
        auc.mean(),
        auc.min(),
        auc.max(),
        row["auc"],
        row["balanced_accuracy"],
        tprs,
        row["n_neg"],
    )
for row in tables.free_in_summary.to_dict("records"):
    log.info(
        "%-12s free in models (%d -> %d in references): mean AUC %.3f -> %.3f, std %.3f -> %.3f",
        row["attack"],
        row["n_in_pool"],
        row["n_in_pool_free_in"],
        row["mean_auc"],
        row["mean_auc_free_in"],
        row["std_auc"],
        row["std_auc_free_in"],
    )
log.info("done in %.1fs", time.perf_counter() - t0)

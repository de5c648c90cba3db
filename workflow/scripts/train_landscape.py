"""Snakemake entry point: the landscape records' out models, re-trained with exactly train_out's
masks and seeds (out weights are not kept by default), evaluated at the landscape queries and on
the differing records. The largest difference on the differing records from models/out_<shard>.npz
is logged and saved (0 on CPU: bit-for-bit reproduction)."""

from lood.jobs import job_from_snakemake

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
job = job_from_snakemake(sm, "landscape out models")  # the log first, then torch

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from lood.io import load_npz, savez  # noqa: E402
from lood.jobs.training import retrain_out_outputs  # noqa: E402

log = job.log
differ_idx = pd.read_csv(sm.input.differ)["differ_idx"].to_numpy()
q = load_npz(sm.input.queries)
records, queries = q["records"], q["queries"]
out_q, out_differ = retrain_out_outputs(job, differ_idx, records, queries)
stored = {}
for path in sm.input.models_out:
    shard = load_npz(path)
    for j, r in enumerate(shard["records"]):
        stored[int(r)] = shard["outputs_differ"][j]
stored_differ = np.stack([stored[int(r)] for r in records])
max_diff = float(np.max(np.abs(stored_differ.astype(np.float64) - out_differ)))
log.info(
    "re-trained out models vs models/out_*.npz on the differing records: max |diff| = %.3g",
    max_diff,
)
if max_diff > 1e-4:
    log.warning("re-trained out models differ from the stored ones (non-deterministic device?)")
savez(
    sm.output.outputs,
    records=records,
    out_outputs=out_q,
    out_outputs_differ=out_differ,
    stored_out_outputs_differ=stored_differ,
    out_max_abs_diff=np.asarray(max_diff),
)

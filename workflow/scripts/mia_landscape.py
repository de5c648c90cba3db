"""Snakemake entry point: MIA AUC of the retrained networks at the landscape queries.

In models: loaded from in_weights.safetensors. Out models: re-trained here for the landscape
records with exactly train_out's masks and seeds (out weights are not kept by default); the
largest difference of their outputs on the differing records from models/out_<shard>.npz is
logged and saved (0 on CPU: bit-for-bit reproduction).
"""

from lood.jobs import job_from_snakemake

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
job = job_from_snakemake(sm, "landscape out models")  # the log first, then torch

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from lood.io import load_npz, savez, write_csv  # noqa: E402
from lood.jobs.training import retrain_out_outputs, saved_model_outputs  # noqa: E402
from lood.privacy.mia import mia_landscape_table  # noqa: E402
from lood.privacy.spec import MiaSpec  # noqa: E402

log = job.log
split, mia = job.split, MiaSpec.from_config(sm.params.mia)
differ = pd.read_csv(sm.input.differ)
differ_idx = differ["differ_idx"].to_numpy()
q = load_npz(sm.input.queries)
records, t, queries = q["records"], q["t"], q["queries"]
positions = np.array([int(np.flatnonzero(differ_idx == r)[0]) for r in records])
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
in_q = saved_model_outputs(sm.input.weights_in, job.arch, queries)
table = mia_landscape_table(in_q, out_q, records, split.y_train[records], positions, t, mia)
write_csv(table, sm.output.table)
savez(
    sm.output.outputs,
    records=records,
    t=t,
    in_outputs=in_q,
    out_outputs=out_q,
    out_outputs_differ=out_differ,
    stored_out_outputs_differ=stored_differ,
    out_max_abs_diff=np.asarray(max_diff),
)

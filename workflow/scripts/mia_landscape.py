"""Snakemake entry point: MIA AUC of the retrained networks at the landscape queries.

In models: loaded from in_weights.safetensors and evaluated here. Out models: their outputs come
from train_landscape (landscape/out_outputs.npz), so a change of the ``mia`` settings refits the
MIA without re-training.
"""

from lood.jobs import job_from_snakemake

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
job = job_from_snakemake(sm, "landscape MIA")  # the log first, then torch

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from lood.io import load_npz, savez, write_csv  # noqa: E402
from lood.jobs.training import saved_model_outputs  # noqa: E402
from lood.privacy.mia import mia_landscape_table  # noqa: E402
from lood.privacy.spec import MiaSpec  # noqa: E402

split, mia = job.split, MiaSpec.from_config(sm.params.mia)
differ_idx = pd.read_csv(sm.input.differ)["differ_idx"].to_numpy()
q = load_npz(sm.input.queries)
records, t, queries = q["records"], q["t"], q["queries"]
out = load_npz(sm.input.out_outputs)
if not np.array_equal(out["records"], records):
    raise ValueError(f"{sm.input.out_outputs} holds other records than {sm.input.queries}")
positions = np.array([int(np.flatnonzero(differ_idx == r)[0]) for r in records])
in_q = saved_model_outputs(sm.input.weights_in, job.arch, queries)
out_q = out["out_outputs"]
table = mia_landscape_table(in_q, out_q, records, split.y_train[records], positions, t, mia)
write_csv(table, sm.output.table)
savez(
    sm.output.outputs,
    records=records,
    t=t,
    in_outputs=in_q,
    out_outputs=out_q,
    out_outputs_differ=out["out_outputs_differ"],
    stored_out_outputs_differ=out["stored_out_outputs_differ"],
    out_max_abs_diff=out["out_max_abs_diff"],
)

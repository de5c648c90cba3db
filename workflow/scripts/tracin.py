"""Snakemake entry point: TracIn self-influence of the differing records."""

from lood.jobs import log_from_snakemake

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = log_from_snakemake(sm)  # the log first, then torch

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from lood.data.split import Split  # noqa: E402
from lood.influence.tracin import Checkpoints, tracin_contributions  # noqa: E402
from lood.io import write_csv  # noqa: E402
from lood.train.device import pick_device  # noqa: E402

torch.set_num_threads(max(1, int(sm.threads)))
split = Split.load(sm.input.split)
differ = pd.read_csv(sm.input.differ)
idx = differ["differ_idx"].to_numpy()
ck = Checkpoints.load(sm.input.checkpoints)
device = pick_device(sm.params.device, sm.resources.get("gpu", 0), log)
parts = tracin_contributions(
    ck.models(),
    ck.checkpoint_lrs,
    ck.arch,
    ck.loss,
    torch.tensor(split.x_train[idx], dtype=torch.float64, device=device),
    torch.tensor(split.y_train[idx], dtype=torch.int64, device=device),
)
table = differ[["differ_idx", "label"]].assign(tracin=parts.sum(0), tracin_last=parts[-1])
write_csv(table, sm.output[0])
log.info(
    "TracIn over %d checkpoints (epochs %s, lr %s): mean %.4g, min %.4g, max %.4g",
    len(ck.epochs),
    ck.epochs.tolist(),
    ck.checkpoint_lrs,
    table.tracin.mean(),
    table.tracin.min(),
    table.tracin.max(),
)

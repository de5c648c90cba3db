"""The influence stage's training jobs: the random-subset models of the memorization estimator
(:func:`train_subsets`) and the TracIn / influence-function model with its checkpoints
(:func:`train_with_checkpoints`).

Both train as the experiment's models do (:func:`lood.jobs.training.fit_ensemble` or the same
trainers), so the influence scores describe the audited training.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from lood.influence.autodiff import stack, unstack
from lood.influence.memorization import (
    correctness,
    masks_to_subsample_idx,
    subset_masks,
    subset_size,
)
from lood.influence.spec import MemorizationSpec
from lood.influence.tracin import Checkpoints, checkpoint_epochs
from lood.io import savez
from lood.jobs.training import Job, fit_ensemble
from lood.seeds import derive_seed
from lood.train.dp import dp_config, train_ensemble_dp
from lood.train.ensemble import train_ensemble
from lood.train.models import Params
from lood.train.primitives import EnsembleOptions, accuracy


def train_subsets(job: Job, mem: MemorizationSpec, out_npz: str) -> dict[str, np.ndarray]:
    """Train ``memorization.n_models`` models on random subsets (the experiment's arch and train
    settings) and write their correctness/outputs on all training and test records (.npz, keys in
    :data:`lood.influence.memorization.SUBSETS_KEYS`). Model seeds:
    ``derive_seed(memorization.seed, "subset_model", k)``."""
    split, log = job.split, job.log
    k, n = mem.n_models, len(split.y_train)
    masks, mask_seeds = subset_masks(n, k, mem.ratio, mem.seed)
    seeds = np.array([derive_seed(mem.seed, "subset_model", i) for i in range(k)], dtype=np.int64)
    log.info(
        "training %d subset models (%d of %d records each, %s) on %s",
        k,
        subset_size(n, mem.ratio),
        n,
        job.arch,
        job.device,
    )
    t0 = time.perf_counter()
    result = fit_ensemble(job, masks, seeds, {"train": split.x_train, "test": split.x_test})
    elapsed = time.perf_counter() - t0
    out_train = result.outputs["train"].astype(np.float32)
    out_test = result.outputs["test"].astype(np.float32)
    test_acc = accuracy(out_test, split.y_test)
    log.info(
        "%d subset models in %.1fs (%.1f models/s), own-subset accuracy %.4f, test %.4f",
        k,
        elapsed,
        k / elapsed,
        result.final_train_accuracy.mean(),
        np.mean(test_acc),
    )
    arrays = {
        "correctness_train": correctness(out_train, split.y_train),
        "correctness_test": correctness(out_test, split.y_test),
        "subsample_idx": masks_to_subsample_idx(masks),
        "masks": masks,
        "index_train": np.arange(n, dtype=np.int64),
        "index_test": np.arange(len(split.y_test), dtype=np.int64),
        "mask_seeds": mask_seeds,
        "seeds": seeds,
        "train_acc": result.final_train_accuracy.astype(np.float32),
        "test_acc": np.asarray(test_acc, dtype=np.float32),
        "ratio": np.float64(mem.ratio),
    }
    if mem.save_outputs:
        arrays |= {"outputs_train": out_train, "outputs_test": out_test}
    savez(out_npz, **arrays)
    return arrays


def train_with_checkpoints(
    job: Job,
    seed: int,
    every: int = 1,
    x: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
) -> tuple[Checkpoints, float]:
    """Train one model on all of D (or ``x``, ``y``) and keep its parameters every ``every``
    epochs: the TracIn / influence-function model.

    Returns the checkpoints and the final training loss. The model is trained exactly as the in
    models are (K = 1; DP-SGD in the batched ensemble when ``train.dp`` is on).
    """
    x = torch.tensor(job.split.x_train, dtype=torch.float32) if x is None else x
    y = torch.tensor(job.split.y_train, dtype=torch.int64) if y is None else y
    tcfg = job.train.optimization
    keep = set(checkpoint_epochs(tcfg.epochs, every))
    saved: list[Params] = []
    epochs: list[int] = []

    def hook(epoch: int, params: Params) -> None:
        if epoch + 1 in keep:
            saved.append(unstack(params, 0))
            epochs.append(epoch + 1)

    masks, seeds = np.ones((1, x.shape[0]), dtype=bool), [int(seed)]
    opts = EnsembleOptions(device=job.device, progress=job.log, on_epoch_end=hook)
    dp = dp_config(job.train, x.shape[0])
    if dp is None:
        result = train_ensemble(job.arch, tcfg, x, y, masks, seeds, opts)
    else:
        result = train_ensemble_dp(job.arch, tcfg, dp, x, y, masks, seeds, opts)
    ckpts = Checkpoints(
        params=stack(saved),
        epochs=np.asarray(epochs, dtype=np.int64),
        arch=job.arch,
        lr=tcfg.lr,
        loss=tcfg.loss,
        lrs=np.asarray([tcfg.lr_at(int(e) - 1) for e in epochs]),
        weight_decay=tcfg.weight_decay,
    )
    loss = float(result.final_train_loss[0])
    if not math.isfinite(loss):
        raise FloatingPointError(f"{job.where}: non-finite final training loss")
    return ckpts, loss

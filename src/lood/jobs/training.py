"""The training jobs of the workflow, after one shared prologue (:func:`start_job`).

In models on D, out models on D minus one record, the MIA landscape's re-trained out models and,
in the sibling job modules, audit runs with canaries (:mod:`lood.jobs.audit`), random-subset
models and the influence model (:mod:`lood.jobs.influence`) and PANORAMIA's helper
(:mod:`lood.jobs.panoramia`) all train through :func:`fit_ensemble`, so they share seeds
semantics, device choice, chunking, DP-SGD (``train.dp``) and the divergence message. Seeds
derive from ``train.seed``, the role, the record index and the replica number (never from the
clock or the shard), so results do not depend on how records are grouped into shards.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lood.arch import Architecture
from lood.data.split import Split
from lood.io import atomic_path, savez
from lood.seeds import derive_seed, shard_records
from lood.train.device import pick_device
from lood.train.dp import dp_config, spent_epsilon, train_ensemble_dp, train_opacus
from lood.train.ensemble import train_ensemble
from lood.train.models import forward, load_params, save_params
from lood.train.primitives import EnsembleOptions, EnsembleResult, accuracy
from lood.train.spec import TrainSpec


@dataclass(frozen=True)
class Job:
    """What every training job sets up first: data, architecture, settings, device, log."""

    split: Split
    arch: Architecture
    train: TrainSpec
    device: str
    where: str  # e.g. "experiment 'mnist_relu', out models, shard 3": prefixes messages
    log: logging.Logger


def start_job(
    split: Split,
    arch: Architecture,
    train: TrainSpec,
    where: str,
    threads: int = 1,
    logger: logging.Logger | None = None,
    gpus: int = 0,
) -> Job:
    """The one prologue of the training jobs: torch threads, device (logged), logger.

    ``gpus``: the GPUs the job's resources requested (warned about when CUDA is unusable).
    """
    torch.set_num_threads(max(1, int(threads)))
    log = logger or logging.getLogger("lood.train")
    return Job(
        split=split,
        arch=arch,
        train=train,
        device=pick_device(train.device, gpus, log),
        where=where,
        log=log,
    )


def job_from_config(
    split_path: str,
    model: Mapping[str, Any],
    train: Mapping[str, Any],
    where: str,
    threads: int = 1,
    logger: logging.Logger | None = None,
    gpus: int = 0,
) -> Job:
    """A job's edge: load the split and parse the ``model`` and ``train`` sections once."""
    split = Split.load(split_path)
    arch = Architecture.from_config(dict(model), split.n_classes)
    spec = TrainSpec.from_config(train, "train")
    return start_job(split, arch, spec, where, threads, logger, gpus)


def fit_ensemble(
    job: Job,
    masks: np.ndarray,
    seeds: np.ndarray,
    eval_sets: dict[str, np.ndarray],
    split: Split | None = None,
) -> EnsembleResult:
    """Train an ensemble on ``split`` (default the job's) with the job's settings and device.

    DP-SGD when ``train.dp`` is on (noise calibrated here, once per job); the privacy each model
    spent is ``result.extra["epsilon"]`` (inf without DP).
    """
    split = split or job.split
    train, log = job.train, job.log
    n_train = len(split.y_train)
    dp = dp_config(train, n_train)
    eps = math.inf
    if dp is not None:
        eps = spent_epsilon(dp, n_train, train.batch_size, train.epochs)
        log.info(
            "%s: DP-SGD, noise multiplier %.4g, clipping norm %.4g: epsilon %.4g at delta "
            "%.2g (%s)",
            job.where,
            dp.noise_multiplier,
            dp.max_grad_norm,
            eps,
            dp.delta,
            dp.accountant,
        )
    x = torch.tensor(split.x_train, dtype=torch.float32)  # a copy: loaded arrays are read-only
    y = torch.tensor(split.y_train, dtype=torch.int64)
    evals = {k: torch.tensor(v, dtype=torch.float32) for k, v in eval_sets.items()}
    masks = np.asarray(masks, dtype=bool)
    tcfg = train.optimization
    if tcfg.lr_schedule != "none":
        rates = sorted({tcfg.lr_at(e) for e in range(tcfg.epochs)}, reverse=True)
        log.info(
            "%s: learning rate schedule %s: %s over %d epochs",
            job.where,
            tcfg.lr_schedule,
            ", ".join(f"{r:.3g}" for r in rates[:6]),
            tcfg.epochs,
        )
    opts = EnsembleOptions(
        device=job.device, eval_sets=evals, chunk_size=train.chunk_size, progress=log
    )
    try:
        if dp is None:
            result = train_ensemble(
                job.arch, tcfg, x, y, torch.as_tensor(masks), [int(s) for s in seeds], opts
            )
        elif train.dp.backend == "opacus":
            result = train_opacus(job.arch, tcfg, dp, x, y, masks, np.asarray(seeds), opts)
        else:
            result = train_ensemble_dp(
                job.arch, tcfg, dp, x, y, torch.as_tensor(masks), [int(s) for s in seeds], opts
            )
    except FloatingPointError as exc:
        raise FloatingPointError(
            f"{job.where}: training diverged ({exc}); lower train.lr or check the data "
            "normalisation"
        ) from exc
    result.extra["epsilon"] = eps
    return result


def out_masks_and_seeds(
    n_train: int, records: np.ndarray, train: TrainSpec
) -> tuple[np.ndarray, np.ndarray]:
    """Masks [R K, N] and seeds [R K] of the ``n_out`` out models of each record, record-major.

    Seeds depend on train.seed, the record and the replica only (not on sharding), so any job
    that needs a record's out models (its shard, the MIA landscape) gets the same ones.
    """
    k = train.n_out
    records = np.asarray(records, dtype=np.int64)
    masks = np.ones((len(records) * k, n_train), dtype=bool)
    seeds = np.empty(len(records) * k, dtype=np.int64)
    for j, record in enumerate(records):
        masks[j * k : (j + 1) * k, record] = False
        seeds[j * k : (j + 1) * k] = [
            derive_seed(train.seed, "out", int(record), i) for i in range(k)
        ]
    return masks, seeds


def role_masks_and_seeds(
    role: str, n_train: int, differ_idx: np.ndarray, train: TrainSpec, shard: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inclusion masks [K, N], seeds [K] and the records left out (out role) for one job."""
    if role == "in":
        masks = np.ones((train.n_in, n_train), dtype=bool)
        seeds = np.array(
            [derive_seed(train.seed, "in", i) for i in range(train.n_in)], dtype=np.int64
        )
        return masks, seeds, np.array([], dtype=np.int64)
    if role != "out" or shard is None:
        raise ValueError(f"role must be 'in' or 'out' (with a shard), got {role!r}/{shard}")
    records = np.asarray(differ_idx)[list(shard_records(len(differ_idx), train.shard_size, shard))]
    masks, seeds = out_masks_and_seeds(n_train, records, train)
    return masks, seeds, records.astype(np.int64)


def train_role(
    role: str,
    job: Job,
    differ_idx: np.ndarray,
    shard: int | None,
    out_npz: str,
    out_weights: str | None = None,
) -> dict[str, np.ndarray]:
    """Train one job's in or out ensemble and write its outputs (``.npz``) and, optionally, weights.

    Arrays written: ``outputs_differ`` (outputs on every differing record), ``outputs_test``
    (outputs on the test split, float32 [K, M, C]: the population records of RMIA), ``test_acc``,
    ``train_loss``, ``seeds``, ``differ_idx``, ``epsilon`` (DP-SGD privacy spent per model, inf
    without DP); out jobs add ``records`` and shape the per-model arrays [S, K, ...] (record,
    replica).
    """
    split, log = job.split, job.log
    differ_idx = np.asarray(differ_idx, dtype=np.int64)
    masks, seeds, records = role_masks_and_seeds(
        role, len(split.y_train), differ_idx, job.train, shard
    )
    log.info(
        "%s: training %d models (%s) on %s, N=%d",
        job.where,
        len(seeds),
        job.arch,
        job.device,
        masks.shape[1],
    )
    t0 = time.perf_counter()
    result = fit_ensemble(
        job, masks, seeds, {"differ": split.x_train[differ_idx], "test": split.x_test}
    )
    elapsed = time.perf_counter() - t0
    test_acc = accuracy(result.outputs["test"], split.y_test)
    log.info(
        "%s: %d models in %.1fs (%.2f models/s), test accuracy %.4f +- %.4f",
        job.where,
        len(seeds),
        elapsed,
        len(seeds) / elapsed,
        test_acc.mean(),
        test_acc.std(),
    )
    arrays = {
        "outputs_differ": result.outputs["differ"].astype(np.float32),
        "outputs_test": result.outputs["test"].astype(np.float32),
        "test_acc": test_acc.astype(np.float32),
        "train_loss": np.asarray(result.final_train_loss, dtype=np.float32),
        "seeds": seeds,
        "differ_idx": differ_idx,
        "epsilon": np.full(len(seeds), result.extra["epsilon"]),
    }
    if role == "out":
        s, k = len(records), len(seeds) // len(records)
        arrays = {
            key: (v.reshape(s, k, *v.shape[1:]) if key != "differ_idx" else v)
            for key, v in arrays.items()
        }
        arrays["records"] = records
    savez(out_npz, **arrays)
    if out_weights or (role == "out" and job.train.save_out_weights):
        path = out_weights or str(out_npz).replace(".npz", "_weights.safetensors")
        with atomic_path(path) as tmp:
            save_params(
                tmp, result.params, {"architecture": repr(job.arch.to_dict()), "role": role}
            )
    return arrays


def retrain_out_outputs(
    job: Job, differ_idx: np.ndarray, records: np.ndarray, queries: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Re-train the out models of ``records`` and evaluate them: (outputs at the queries
    [R, K, T, C], outputs on all differing records [R, K, P, C]).

    Same masks, seeds, data, config and evaluation set (``x[differ_idx]``) as ``train_out``; on CPU
    the ensemble trainer's result for a model depends only on its own mask and seed, so the
    outputs on the differing records reproduce ``models/out_<shard>.npz`` bit for bit (the
    workflow logs the largest difference, the integration test asserts it is zero).
    """
    differ_idx = np.asarray(differ_idx, dtype=np.int64)
    records = np.asarray(records, dtype=np.int64)
    missing = records[~np.isin(records, differ_idx)]
    if len(missing):
        raise ValueError(f"record {int(missing[0])} is not a differing record")
    masks, seeds = out_masks_and_seeds(len(job.split.y_train), records, job.train)
    r, t, d = queries.shape
    k = job.train.n_out
    job.log.info("re-training %d out models (%d records x %d) on %s", len(seeds), r, k, job.device)
    result = fit_ensemble(
        job,
        masks,
        seeds,
        {"differ": job.split.x_train[differ_idx], "queries": queries.reshape(r * t, d)},
    )
    q_out = result.outputs["queries"].reshape(r, k, r, t, -1)
    own = np.stack([q_out[i, :, i] for i in range(r)])  # each record's models at its own queries
    return own, result.outputs["differ"].reshape(r, k, len(differ_idx), -1)


def saved_model_outputs(weights: str, arch: Architecture, queries: np.ndarray) -> np.ndarray:
    """Outputs [K, R, T, C] of saved stacked models (``in_weights.safetensors``) at the queries
    [R, T, d]."""
    params, _ = load_params(weights)
    r, t, d = queries.shape
    with torch.no_grad():
        out = forward(params, arch, torch.tensor(queries.reshape(r * t, d), dtype=torch.float32))
    return out.numpy().reshape(out.shape[0], r, t, -1)

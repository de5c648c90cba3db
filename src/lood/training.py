"""Training jobs of the workflow: in models on D, out models on D minus one record, as ensembles.

Seeds derive from ``train.seed``, the role, the record index and the replica number (never from
the clock or the shard), so results do not depend on how records are grouped into shards.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Any

import numpy as np
import pandas as pd
import torch

from .arch import Architecture
from .config import derive_seed, dp_settings, shard_records
from .data import Split
from .dp import dp_config, spent_epsilon, train_opacus
from .ensemble import EnsembleResult, TrainConfig, accuracy, train_ensemble
from .io import atomic_path, savez
from .models import save_params


def pick_device(device: str) -> str:
    """``auto`` -> cuda when available, else cpu; an explicit cuda without a GPU is an error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no CUDA device is available")
    return device


def train_config(train: dict[str, Any]) -> TrainConfig:
    """The optimisation settings of the ``train`` config section."""
    return TrainConfig(
        epochs=int(train["epochs"]),
        lr=float(train["lr"]),
        batch_size=int(train["batch_size"]),
        optimizer=str(train["optimizer"]),
        momentum=float(train["momentum"]),
        weight_decay=float(train["weight_decay"]),
        loss=str(train["loss"]),
    )


def fit_ensemble(
    split: Split,
    arch: Architecture,
    train_cfg: dict[str, Any],
    masks: np.ndarray,
    seeds: np.ndarray,
    eval_sets: dict[str, np.ndarray],
    where: str,
    logger: logging.Logger | None = None,
) -> EnsembleResult:
    """Train an ensemble on the split with the ``train`` section's settings, on its device.

    Every training job of the workflow (in, out, re-trained out, subset models) goes through
    here, so they share seeds semantics, device choice, chunking, DP-SGD (``train.dp``) and the
    divergence message.
    """
    n_train = len(split.y_train)
    dp = dp_config(train_cfg, n_train)  # calibrates the noise to target_epsilon: once per job
    eps = math.inf
    if dp is not None:
        eps = spent_epsilon(dp, n_train, int(train_cfg["batch_size"]), int(train_cfg["epochs"]))
        if logger is not None:
            logger.info(
                "%s: DP-SGD, noise multiplier %.4g, clipping norm %.4g: epsilon %.4g at delta "
                "%.2g (%s)", where, dp.noise_multiplier, dp.max_grad_norm, eps, dp.delta,
                dp.accountant,
            )  # fmt: skip
    x = torch.tensor(split.x_train, dtype=torch.float32)  # a copy: loaded arrays are read-only
    y = torch.tensor(split.y_train, dtype=torch.int64)
    evals = {k: torch.tensor(v, dtype=torch.float32) for k, v in eval_sets.items()}
    device = pick_device(train_cfg.get("device", "auto"))
    tcfg = train_config(train_cfg)
    try:
        if dp is not None and dp_settings(train_cfg)["backend"] == "opacus":
            result = train_opacus(
                arch, tcfg, dp, x, y, np.asarray(masks, dtype=bool), np.asarray(seeds),
                eval_sets=evals, device=device, progress=logger,
            )  # fmt: skip
        else:
            result = train_ensemble(
                arch, tcfg, x, y, torch.as_tensor(np.asarray(masks, dtype=bool)),
                [int(s) for s in seeds], eval_sets=evals, device=device,
                chunk_size=int(train_cfg.get("chunk_size") or len(seeds)), progress=logger, dp=dp,
            )  # fmt: skip
    except FloatingPointError as exc:
        raise FloatingPointError(
            f"{where}: training diverged ({exc}); lower train.lr or check the data normalisation"
        ) from exc
    result.extra["epsilon"] = eps  # privacy each model spent (inf without DP-SGD)
    return result


def role_masks_and_seeds(
    role: str, n_train: int, differ_idx: np.ndarray, train: dict[str, Any], shard: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inclusion masks [K, N], seeds [K] and the records left out (out role) for one job."""
    seed = int(train["seed"])
    if role == "in":
        k = int(train["n_in"])
        masks = np.ones((k, n_train), dtype=bool)
        seeds = np.array([derive_seed(seed, "in", i) for i in range(k)], dtype=np.int64)
        return masks, seeds, np.array([], dtype=np.int64)
    if role != "out" or shard is None:
        raise ValueError(f"role must be 'in' or 'out' (with a shard), got {role!r}/{shard}")
    records = np.asarray(differ_idx)[
        list(shard_records(len(differ_idx), int(train["shard_size"]), shard))
    ]
    masks, seeds = out_masks_and_seeds(n_train, records, train)
    return masks, seeds, records.astype(np.int64)


def out_masks_and_seeds(
    n_train: int, records: np.ndarray, train: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """Masks [R K, N] and seeds [R K] of the ``n_out`` out models of each record, record-major.

    Seeds depend on train.seed, the record and the replica only (not on sharding), so any job
    that needs a record's out models (its shard, the MIA landscape) gets the same ones.
    """
    seed, k = int(train["seed"]), int(train["n_out"])
    records = np.asarray(records, dtype=np.int64)
    masks = np.ones((len(records) * k, n_train), dtype=bool)
    seeds = np.empty(len(records) * k, dtype=np.int64)
    for j, record in enumerate(records):
        masks[j * k : (j + 1) * k, record] = False
        seeds[j * k : (j + 1) * k] = [derive_seed(seed, "out", int(record), i) for i in range(k)]
    return masks, seeds


def train_role(
    role: str,
    split: Split,
    differ_idx: np.ndarray,
    model_cfg: dict[str, Any],
    train_cfg: dict[str, Any],
    experiment: str,
    shard: int | None,
    out_npz: str,
    out_weights: str | None = None,
    threads: int = 1,
    logger: logging.Logger | None = None,
) -> dict[str, np.ndarray]:
    """Train one job's ensemble and write its outputs (``.npz``) and, optionally, weights.

    Arrays written: ``outputs_differ`` (outputs on every differing record), ``test_acc``,
    ``train_loss``, ``seeds``, ``differ_idx``, ``epsilon`` (DP-SGD privacy spent per model, inf
    without DP); out jobs add ``records`` and shape the per-model
    arrays [S, K, ...] (record, replica).
    """
    log = logger or logging.getLogger("lood.train")
    torch.set_num_threads(max(1, int(threads)))
    device = pick_device(train_cfg.get("device", "auto"))
    arch = Architecture.from_config(model_cfg, split.n_classes)
    differ_idx = np.asarray(differ_idx, dtype=np.int64)
    masks, seeds, records = role_masks_and_seeds(
        role, len(split.y_train), differ_idx, train_cfg, shard
    )
    where = f"experiment {experiment!r}, {role} models" + (
        f", shard {shard}" if role == "out" else ""
    )
    log.info(
        "%s: training %d models (%s) on %s, N=%d", where, len(seeds), arch, device, masks.shape[1]
    )
    t0 = time.perf_counter()
    result = fit_ensemble(
        split,
        arch,
        train_cfg,
        masks,
        seeds,
        {"differ": split.x_train[differ_idx], "test": split.x_test},
        where,
        log,
    )
    elapsed = time.perf_counter() - t0
    test_acc = accuracy(result.outputs["test"], split.y_test)
    log.info("%s: %d models in %.1fs (%.2f models/s), test accuracy %.4f +- %.4f",
             where, len(seeds), elapsed, len(seeds) / elapsed, test_acc.mean(), test_acc.std())  # fmt: skip
    arrays = {
        "outputs_differ": result.outputs["differ"].astype(np.float32),
        "test_acc": test_acc.astype(np.float32),
        "train_loss": np.asarray(result.final_train_loss, dtype=np.float32),
        "seeds": seeds,
        "differ_idx": differ_idx,
        "epsilon": np.full(len(seeds), result.extra["epsilon"]),
    }
    if role == "out":
        s, k = len(records), len(seeds) // len(records)
        arrays = {
            key: (v.reshape(s, k, *v.shape[1:]) if key not in ("differ_idx",) else v)
            for key, v in arrays.items()
        }
        arrays["records"] = records
    savez(out_npz, **arrays)
    if out_weights or (role == "out" and train_cfg.get("save_out_weights")):
        path = out_weights or str(out_npz).replace(".npz", "_weights.safetensors")
        with atomic_path(path) as tmp:
            save_params(tmp, result.params, {"architecture": repr(arch.to_dict()), "role": role})
    return arrays


def one_run_audit(
    split: Split,
    model_cfg: dict[str, Any],
    train_cfg: dict[str, Any],
    audit_cfg: dict[str, Any],
    experiment: str,
    threads: int = 1,
    logger: logging.Logger | None = None,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """One-run audit (Steinke et al. 2023) of this experiment's training, ``n_runs`` times.

    Canaries are records of D (mislabelled or not, :func:`lood.privacy.make_canaries`), each in
    a run's training set with probability 1/2; the other records are always in. Every run is
    trained exactly as the experiment's models (DP-SGD when ``train.dp`` is on) and gives its own
    epsilon lower bound (:func:`lood.audit.audit_table`) at ``train.dp.delta``. Returns the table
    (one row per run, with the accountant's epsilon and the run's test accuracy) and the arrays
    (canary indices, labels, inclusion, scores).
    """
    from .audit import audit_table, canary_inclusion
    from .config import audit_sizes
    from .privacy import canary_scores, make_canaries

    log = logger or logging.getLogger("lood.audit")
    torch.set_num_threads(max(1, int(threads)))
    n = len(split.y_train)
    m, k_pos, k_neg = audit_sizes(audit_cfg, n)
    seed, runs = int(audit_cfg["seed"]), int(audit_cfg["n_runs"])
    idx, labels = make_canaries(
        split.y_train, m, audit_cfg["canary"], split.n_classes, derive_seed(seed, "canaries")
    )
    included = canary_inclusion(m, runs, derive_seed(seed, "inclusion"))
    masks = np.ones((runs, n), dtype=bool)
    masks[:, idx] = included
    seeds = np.array([derive_seed(int(train_cfg["seed"]), "audit", seed, r) for r in range(runs)])
    arch = Architecture.from_config(model_cfg, split.n_classes)
    where = f"experiment {experiment!r}, audit"
    log.info("%s: %d runs, %d %s canaries (%d in on average), %d + %d guesses per run",
             where, runs, m, audit_cfg["canary"], int(included.sum(1).mean()), k_pos, k_neg)  # fmt: skip
    canary_split = dataclasses.replace(split, y_train=labels)
    result = fit_ensemble(canary_split, arch, train_cfg, masks, seeds,
                          {"canary": split.x_train[idx], "test": split.x_test}, where, log)  # fmt: skip
    scores = canary_scores(result.outputs["canary"], labels[idx], audit_cfg["score"])
    delta = float(dp_settings(train_cfg)["delta"])  # the bound's delta, DP-SGD or not
    table = audit_table(scores, included, k_pos, k_neg, delta, float(audit_cfg["confidence"]))
    table.insert(0, "experiment", experiment)
    table["delta"] = delta
    table["confidence"] = float(audit_cfg["confidence"])
    table["eps_accountant"] = result.extra["epsilon"]
    table["test_acc"] = accuracy(result.outputs["test"], split.y_test)
    table["canary_train_acc"] = [
        float((result.outputs["canary"][r].argmax(-1) == labels[idx])[included[r]].mean())
        for r in range(runs)
    ]
    for row in table.itertuples():
        log.info("%s run %d: %d/%d guesses correct, epsilon lower bound %.3f (accountant %.3g), "
                 "test accuracy %.3f", where, row.run, row.v, row.r, row.eps_lower_bound,
                 row.eps_accountant, row.test_acc)  # fmt: skip
    arrays = {"canary_idx": idx, "canary_labels": labels[idx], "included": included,
              "scores": scores, "seeds": seeds}  # fmt: skip
    return table, arrays

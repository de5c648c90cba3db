"""LOOD and MIA landscapes: queries ``x + t d`` along a seeded random direction around a record.

The grid ``t`` is in raw input units divided by ``scale`` (255 for 8-bit images, as the original
tool's ``[-50, 50] / 255``); the direction ``d`` is a seeded random direction in the raw input
space, normalised to unit Euclidean norm (``direction_norm="unit"``) or to unit norm *per pixel*
(``"pixel"``: ``||d|| = sqrt(n_features)``, so ``t / scale`` is the typical change of one pixel).
Queries live in the split's normalised space; :func:`raw_step_to_normalized` maps a raw-space step
there (exactly for the linear normalisations, on average for ``unit_norm``).

This module needs numpy only; :func:`retrain_out_outputs` and :func:`in_model_outputs` import torch
lazily (the MIA landscape re-trains the out models of the landscape records, see their docstrings).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from .config import derive_seed

DIRECTION_NORMS = ("unit", "pixel")


def landscape_grid(t_min: float, t_max: float, n_points: int) -> np.ndarray:
    """The grid of ``t`` values (raw units times ``scale``), always containing 0 when it spans it."""
    if n_points < 1:
        raise ValueError(f"landscape.n_points must be >= 1, got {n_points}")
    if t_max < t_min:
        raise ValueError(f"landscape.t_max ({t_max}) must be >= t_min ({t_min})")
    t = np.linspace(float(t_min), float(t_max), int(n_points))
    if t_min <= 0 <= t_max and n_points > 1:
        t[np.argmin(np.abs(t))] = 0.0  # exact 0, so that t = 0 is the record itself
    return t


def random_direction(n_features: int, seed: int, norm: str = "unit") -> np.ndarray:
    """Seeded random Gaussian direction [d] (float64) with unit norm or unit norm per pixel."""
    if norm not in DIRECTION_NORMS:
        raise ValueError(f"landscape.direction_norm must be one of {DIRECTION_NORMS}, got {norm!r}")
    d = np.random.default_rng(seed).standard_normal(int(n_features))
    d /= np.linalg.norm(d)
    return d * math.sqrt(n_features) if norm == "pixel" else d


def raw_step_to_normalized(
    step: np.ndarray, normalization: str, feature_scale: float, n_features: int
) -> np.ndarray:
    """Map a step in raw input space to the split's normalised space.

    "none": unchanged; "standardize": divided by the global training std ``feature_scale`` (exact,
    the map is affine); "unit_norm": multiplied by ``sqrt(d) / feature_scale`` (``feature_scale`` is
    the mean row norm of the centred data), the average linear part of that row-wise map, and the
    query is *not* re-projected onto the sphere (so ``t`` keeps a linear meaning).
    """
    step = np.asarray(step, dtype=np.float64)
    if normalization == "none":
        return step
    if normalization == "standardize":
        return step / float(feature_scale)
    if normalization == "unit_norm":
        return step * math.sqrt(n_features) / float(feature_scale)
    raise ValueError(f"unknown normalization {normalization!r}")


def landscape_queries(
    x_train: np.ndarray,
    records: np.ndarray,
    t: np.ndarray,
    scale: float,
    seed: int,
    normalization: str,
    feature_scale: float,
    direction_norm: str = "unit",
) -> tuple[np.ndarray, np.ndarray]:
    """Queries [R, T, d] (normalised space, float64) and raw directions [R, d] of each record.

    Record ``r`` uses direction ``random_direction(d, derive_seed(seed, r))``, query
    ``x_r + (t / scale) * D(d)`` with ``D`` = :func:`raw_step_to_normalized`; at ``t = 0`` the query
    is the (normalised) record exactly.
    """
    x_train = np.asarray(x_train, dtype=np.float64)
    records = np.asarray(records, dtype=np.int64)
    t = np.asarray(t, dtype=np.float64)
    n_features = x_train.shape[1]
    dirs = np.stack(
        [random_direction(n_features, derive_seed(seed, int(r)), direction_norm) for r in records]
    )
    step = raw_step_to_normalized(dirs, normalization, feature_scale, n_features)  # [R, d]
    queries = x_train[records][:, None, :] + (t / float(scale))[None, :, None] * step[:, None, :]
    return queries, dirs


def landscape_records(differ_idx: np.ndarray, n_records: int) -> np.ndarray:
    """The first ``n_records`` differing records (in differ.csv order)."""
    differ_idx = np.asarray(differ_idx, dtype=np.int64)
    if n_records < 1:
        raise ValueError(f"n_records must be >= 1, got {n_records}")
    return differ_idx[: min(int(n_records), len(differ_idx))]


# --------------------------------------------------------------------------------------------
# MIA landscape: in models from their saved weights, out models re-trained
# --------------------------------------------------------------------------------------------
def out_masks_and_seeds(
    n_train: int, differ_idx: np.ndarray, records: np.ndarray, train_cfg: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """Masks [R K, N] and seeds [R K] of the out models of ``records``, exactly as ``train_out``
    (:func:`lood.training.out_masks_and_seeds`; seeds do not depend on sharding)."""
    from .training import out_masks_and_seeds as training_out_masks_and_seeds

    records = np.asarray(records, dtype=np.int64)
    missing = records[~np.isin(records, np.asarray(differ_idx, dtype=np.int64))]
    if len(missing):
        raise ValueError(f"record {int(missing[0])} is not a differing record")
    return training_out_masks_and_seeds(n_train, records, train_cfg)


def retrain_out_outputs(
    split: Any,
    differ_idx: np.ndarray,
    records: np.ndarray,
    queries: np.ndarray,
    model_cfg: dict[str, Any],
    train_cfg: dict[str, Any],
    threads: int = 1,
    logger: logging.Logger | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Re-train the out models of ``records`` and evaluate them: (outputs at the queries
    [R, K, T, C], outputs on all differing records [R, K, P, C]).

    Same masks, seeds, data, config and evaluation set (``x[differ_idx]``) as ``train_out``; on CPU
    the ensemble trainer's result for a model depends only on its own mask and seed, so the
    outputs on the differing records reproduce ``models/out_<shard>.npz`` bit for bit (the
    workflow logs the largest difference, the integration test asserts it is zero).
    """
    import torch

    from .arch import Architecture
    from .training import fit_ensemble, pick_device

    log = logger or logging.getLogger("lood.landscape")
    torch.set_num_threads(max(1, int(threads)))
    arch = Architecture.from_config(model_cfg, split.n_classes)
    records = np.asarray(records, dtype=np.int64)
    masks, seeds = out_masks_and_seeds(len(split.y_train), differ_idx, records, train_cfg)
    r, t, d = queries.shape
    k = int(train_cfg["n_out"])
    device = pick_device(train_cfg.get("device", "auto"))
    log.info("re-training %d out models (%d records x %d) on %s", len(seeds), r, k, device)
    result = fit_ensemble(
        split,
        arch,
        train_cfg,
        masks,
        seeds,
        {
            "differ": split.x_train[np.asarray(differ_idx, dtype=np.int64)],
            "queries": queries.reshape(r * t, d),
        },
        "landscape out models",
        log,
    )
    q_out = result.outputs["queries"].reshape(r, k, r, t, -1)
    own = np.stack([q_out[i, :, i] for i in range(r)])  # each record's models at its own queries
    return own, result.outputs["differ"].reshape(r, k, len(differ_idx), -1)


def in_model_outputs(
    weights: str, model_cfg: dict[str, Any], n_classes: int, queries: np.ndarray
) -> np.ndarray:
    """Outputs [K, R, T, C] of the saved in models (``in_weights.safetensors``) at the queries."""
    import torch

    from .arch import Architecture
    from .models import forward, load_params

    arch = Architecture.from_config(model_cfg, n_classes)
    params, _ = load_params(weights)
    r, t, d = queries.shape
    with torch.no_grad():
        out = forward(params, arch, torch.tensor(queries.reshape(r * t, d), dtype=torch.float32))
    return out.numpy().reshape(out.shape[0], r, t, -1)


def mia_landscape_table(
    in_outputs: np.ndarray,
    out_outputs: np.ndarray,
    records: np.ndarray,
    labels: np.ndarray,
    positions: np.ndarray,
    t: np.ndarray,
    n_splits: int,
    seed: int,
) -> Any:
    """Long table (differ_idx, t, mia_auc, mia_auc_std, in_score_mean, out_score_mean).

    ``in_outputs`` [K_in, R, T, C], ``out_outputs`` [R, K_out, T, C]. The MIA at each ``t`` is the
    workflow's (:func:`lood.mia.margin_score` with the record's label, :func:`lood.mia.
    gaussian_lr_auc` with seed ``mia.seed + position`` as in ``mia.csv``), so ``t = 0`` reproduces
    the record's ``mia_auc``.
    """
    import pandas as pd

    from .mia import gaussian_lr_auc, margin_score

    rows = []
    for i, (record, label, pos) in enumerate(zip(records, labels, positions, strict=True)):
        for j, tj in enumerate(t):
            s_in = margin_score(in_outputs[:, i, j], int(label))
            s_out = margin_score(out_outputs[i, :, j], int(label))
            auc, std = gaussian_lr_auc(s_in, s_out, n_splits=n_splits, seed=seed + int(pos))
            rows.append(
                {
                    "differ_idx": int(record),
                    "t": float(tj),
                    "mia_auc": auc,
                    "mia_auc_std": std,
                    "in_score_mean": float(s_in.mean()),
                    "out_score_mean": float(s_out.mean()),
                }
            )
    return pd.DataFrame(rows)

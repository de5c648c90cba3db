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

import math

import numpy as np

from lood.seeds import derive_seed

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

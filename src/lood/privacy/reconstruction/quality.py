"""What a reconstruction recovers: class means, correlations with them and with the nearest
training record, and MI-FACE beside the NNGP query optimisation of the same records.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def inversion_comparison(
    inversions: Mapping[str, tuple[float, pd.DataFrame, np.ndarray]],
    class_mean: np.ndarray,
    query: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> pd.DataFrame:
    """What each attack recovers, one row per (method, experiment or record).

    ``inversions`` maps experiment name to (epsilon, :func:`reconstruction_metrics`
    table, MI-FACE confidence [K, C]); MI-FACE rows give the mean over models and classes of the
    correlation with the class mean (its target) and the share of reconstructions closest to
    their own class mean. ``query`` = (records [R], record images [R, d], optimised queries
    [R, d], record labels [R]) of the NNGP query optimisation adds one row per record: its
    correlation with the record it reconstructs (its target) and with that record's class mean
    (``class_mean`` [C, d], in the same space as everything else: the normalised one in the workflow).
    """
    rows = []
    for name, (eps, metrics, conf) in inversions.items():
        rows.append(
            {
                "method": "MI-FACE",
                "experiment": name,
                "epsilon": float(eps),
                "record": -1,
                "n": len(metrics),
                "corr_target": float(metrics["corr_class_mean"].mean()),
                "corr_class_mean": float(metrics["corr_class_mean"].mean()),
                "class_match": float(metrics["class_match"].mean()),
                "confidence": float(np.mean(conf)),
            }
        )
    if query is not None:
        records, images, queries, labels = query
        for rec, img, q, lab in zip(records, images, queries, labels, strict=True):
            corr = [_corr(q, class_mean[c]) for c in range(len(class_mean))]
            rows.append(
                {
                    "method": "NNGP query optimisation",
                    "experiment": "",
                    "epsilon": math.inf,
                    "record": int(rec),
                    "n": 1,
                    "corr_target": _corr(q, img),
                    "corr_class_mean": corr[int(lab)],
                    "class_match": float(int(np.nanargmax(corr)) == int(lab)),
                    "confidence": math.nan,
                }
            )
    return pd.DataFrame(rows)


def class_means(x: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Mean input of every class: x ``[N, d]``, y ``[N]`` in ``[0, n_classes)`` -> ``[C, d]``.

    A class without records gets a row of NaN.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y).reshape(-1)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"x must be [N, d] with N = len(y); got {x.shape} and {y.shape}")
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"y must be in [0, {n_classes}), got range [{y.min()}, {y.max()}]")
    y = y.astype(np.int64)
    sums = np.zeros((n_classes, x.shape[1]))
    np.add.at(sums, y, x)
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts[:, None]


def _zscore_rows(a: np.ndarray) -> np.ndarray:
    """Rows centred and scaled to unit norm (NaN for constant rows): dot product = Pearson r."""
    centred = a - a.mean(axis=-1, keepdims=True)
    norm = np.linalg.norm(centred, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, centred / norm, np.nan)


def reconstruction_metrics(
    recon: np.ndarray, x_train: np.ndarray, y_train: np.ndarray, n_classes: int
) -> pd.DataFrame:
    """How class-typical the reconstructions are: one row per (model, class).

    ``recon`` ``[K, C, d]`` (or ``[C, d]``, K = 1), row c reconstructing class c. Columns:
    ``corr_class_mean`` (Pearson r with the class-c mean of the training data),
    ``corr_other_max`` (largest r with another class mean; NaN for C = 1), ``closest_class``
    (class mean of highest r; -1 if undefined), ``class_match`` (closest_class == c),
    ``corr_nearest_train`` / ``nearest_train_idx`` (highest r with a class-c training record and
    its row in ``x_train``), ``mse_class_mean`` (mean squared difference to the class-c mean).
    Constant vectors have no correlation (NaN).
    """
    r = np.asarray(recon, dtype=np.float64)
    if r.ndim == 2:
        r = r[None]
    x_train = np.asarray(x_train, dtype=np.float64)
    y_train = np.asarray(y_train).reshape(-1)
    if r.ndim != 3 or r.shape[1] != n_classes or r.shape[2] != x_train.shape[1]:
        raise ValueError(
            f"recon must be [K, C={n_classes}, d={x_train.shape[1]}] or [C, d], got "
            f"{np.shape(recon)}"
        )
    means = class_means(x_train, y_train, n_classes)
    k = r.shape[0]
    rz = _zscore_rows(r)  # [K, C, d]
    corr = np.einsum("kcd,jd->kcj", rz, _zscore_rows(means))  # [K, C, C]
    rows = []
    for c in range(n_classes):
        members = np.flatnonzero(y_train == c)
        if len(members):
            near = rz[:, c] @ _zscore_rows(x_train[members]).T  # [K, n_c]
        for m in range(k):
            cm = corr[m, c]
            others = np.delete(cm, c)
            finite = np.isfinite(cm)
            closest = int(np.argmax(np.where(finite, cm, -np.inf))) if finite.any() else -1
            if len(members) and np.isfinite(near[m]).any():
                j = int(np.nanargmax(near[m]))
                corr_near, near_idx = float(near[m, j]), int(members[j])
            else:
                corr_near, near_idx = math.nan, -1
            rows.append(
                {
                    "model": m,
                    "class": c,
                    "corr_class_mean": float(cm[c]),
                    "corr_other_max": (
                        float(np.nanmax(others)) if np.isfinite(others).any() else math.nan
                    ),
                    "closest_class": closest,
                    "class_match": closest == c,
                    "corr_nearest_train": corr_near,
                    "nearest_train_idx": near_idx,
                    "mse_class_mean": float(np.mean((r[m, c] - means[c]) ** 2)),
                }
            )
    return pd.DataFrame(rows).sort_values(["model", "class"], ignore_index=True)

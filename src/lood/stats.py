"""Correlation statistics (Pearson and Spearman with p-values) and their CSV tables, and the
Gaussian KL divergences (one family for the NNGP LOOD and the empirical LOOD of trained models)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg
from scipy import stats

from lood.io import write_csv


def correlation_stats(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Pearson and Spearman correlation with two-sided p-values (NaN when undefined)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    out = {"n": float(len(x))}
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out | {
            k: float("nan") for k in ("pearson_r", "pearson_p", "spearman_r", "spearman_p")
        }
    pr = stats.pearsonr(x, y)
    sr = stats.spearmanr(x, y)
    return out | {
        "pearson_r": float(pr.statistic),
        "pearson_p": float(pr.pvalue),
        "spearman_r": float(sr.statistic),
        "spearman_p": float(sr.pvalue),
    }


STAT_COLUMNS = ("pearson_r", "pearson_p", "spearman_r", "spearman_p")


def write_correlation_stats(
    rows: Sequence[dict[str, float | str]], path: str | os.PathLike[str], logger: logging.Logger
) -> pd.DataFrame:
    """Write correlation rows as CSV (NaN allowed where a correlation is undefined) and log each."""
    stats_df = pd.DataFrame(rows)
    write_csv(stats_df, path, allow_nan=STAT_COLUMNS + CEILING_COLUMNS)
    for r in rows:
        logger.info(
            "%s vs %s: Pearson r=%.3f (p=%.2g), Spearman %.3f (p=%.2g)",
            r["x"],
            r["y"],
            r["pearson_r"],
            r["pearson_p"],
            r["spearman_r"],
            r["spearman_p"],
        )
    return stats_df


CEILING_COLUMNS = (
    "split_half_r",
    "reliability",
    "reliability_lo",
    "reliability_hi",
    "ceiling",
    "r_over_ceiling",
)
"""Columns :func:`with_ceilings` adds to correlation rows (NaN where the y has no halves)."""


def spearman_brown(r: Any, factor: float = 2.0) -> Any:
    """Reliability of a measurement ``factor`` times as long as one whose reliability is ``r``:
    factor r / (1 + (factor - 1) r) (Spearman-Brown; factor 2 from a split-half correlation)."""
    r = np.asarray(r, dtype=np.float64)
    return factor * r / (1.0 + (factor - 1.0) * r)


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of ``a`` and ``b`` along axis -2 (records), for every other index [..., H]."""
    da = a - a.mean(axis=-2, keepdims=True)
    db = b - b.mean(axis=-2, keepdims=True)
    den = np.sqrt((da**2).sum(axis=-2) * (db**2).sum(axis=-2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (da * db).sum(axis=-2) / den


def split_half_reliability(
    half_a: np.ndarray, half_b: np.ndarray, n_bootstrap: int = 1000, seed: int = 0
) -> dict[str, float]:
    """Split-half reliability of a per-record estimate, its Spearman-Brown value and interval.

    ``half_a``, ``half_b`` [R, H]: the estimate of each of R records from two disjoint halves of
    the data (here: of the models), for H random half splits. ``split_half_r`` is the Pearson r
    across records between the two halves, averaged over the H splits; ``reliability`` its
    Spearman-Brown value 2 r / (1 + r), the expected correlation of two independent full-size
    estimates. ``reliability_lo`` / ``_hi``: the 2.5 / 97.5 percentiles of the reliability over
    ``n_bootstrap`` resamples of the R records with replacement (one resample shared by the H
    splits; rng ``np.random.default_rng(seed)``). NaN where a half does not vary.
    """
    a = np.asarray(half_a, dtype=np.float64)
    b = np.asarray(half_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] < 3:
        raise ValueError(f"halves must be [R >= 3, H] of one shape, got {a.shape} and {b.shape}")
    r = float(np.mean(_pearson_rows(a, b)))
    idx = np.random.default_rng(seed).integers(0, len(a), size=(n_bootstrap, len(a)))
    boot = spearman_brown(np.mean(_pearson_rows(a[idx], b[idx]), axis=-1))
    finite = boot[np.isfinite(boot)]
    lo, hi = np.percentile(finite, [2.5, 97.5]) if finite.size else (np.nan, np.nan)
    return {
        "split_half_r": r,
        "reliability": float(spearman_brown(r)),
        "reliability_lo": float(lo),
        "reliability_hi": float(hi),
    }


def with_ceilings(
    rows: Sequence[dict[str, float | str]], reliability: dict[str, dict[str, float]]
) -> list[dict[str, float | str]]:
    """Correlation rows with the noise ceiling of their y appended (:data:`CEILING_COLUMNS`).

    ``reliability`` maps a y column to its :func:`split_half_reliability`. The ceiling is
    sqrt(reliability), the largest Pearson r that an error-free x can reach with a y measured
    with that reliability; ``r_over_ceiling`` = pearson_r / ceiling (the disattenuated r). Rows
    whose y is not in ``reliability`` get NaN.
    """
    out = []
    for row in rows:
        rel = reliability.get(str(row["y"]))
        if rel is None:
            extra = dict.fromkeys(CEILING_COLUMNS, float("nan"))
        else:
            value = rel["reliability"]
            ceiling = float(np.sqrt(value)) if value > 0 else float("nan")
            extra = {**rel, "ceiling": ceiling, "r_over_ceiling": float(row["pearson_r"]) / ceiling}
        out.append({**row, **extra})
    return out


# --------------------------------------------------------------------------------------------
# Gaussian KL divergences
# --------------------------------------------------------------------------------------------
def x_minus_log1p(x: Any, xp: ModuleType = np, terms: int = 6) -> Any:
    """``x - log(1 + x)`` without cancellation for small ``|x|`` (its Taylor series up to
    ``x**terms`` there); ``xp`` is numpy or ``jax.numpy`` (the query optimisation differentiates
    through it)."""
    if xp is np:
        x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        direct = x - xp.log1p(x)
    series = sum((-1) ** k * x**k / k for k in range(2, terms + 1))
    return xp.where(xp.abs(x) < 1e-3, series, direct)


def kl_gaussians(mu0: Any, cov0: Any, mu1: Any, cov1: Any) -> float:
    """``KL(N(mu0, cov0) || N(mu1, cov1))`` for d-dimensional Gaussians (Cholesky, float64)."""
    m0 = np.atleast_1d(np.asarray(mu0, dtype=np.float64))
    m1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    s0 = np.atleast_2d(np.asarray(cov0, dtype=np.float64))
    s1 = np.atleast_2d(np.asarray(cov1, dtype=np.float64))
    d = m0.shape[0]
    if m0.shape != (d,) or m1.shape != (d,) or s0.shape != (d, d) or s1.shape != (d, d):
        raise ValueError(
            f"inconsistent shapes: mu0 {m0.shape}, cov0 {s0.shape}, mu1 {m1.shape}, cov1 {s1.shape}"
        )
    try:
        l1 = np.linalg.cholesky(s1)
        l0 = np.linalg.cholesky(s0)
    except np.linalg.LinAlgError as err:
        raise ValueError("covariances must be symmetric positive definite") from err
    # tr(S1^-1 S0) = ||L1^-1 L0||_F^2,  maha = ||L1^-1 (mu1 - mu0)||^2
    m = scipy.linalg.solve_triangular(l1, np.column_stack([l0, m1 - m0]), lower=True)
    trace = float(np.sum(m[:, :d] ** 2))
    maha = float(np.sum(m[:, d] ** 2))
    logdet = 2.0 * float(np.sum(np.log(np.diagonal(l1))) - np.sum(np.log(np.diagonal(l0))))
    return 0.5 * (trace + maha - d + logdet)


def kl_isotropic(mu0: Any, var0: Any, mu1: Any, var1: Any) -> np.ndarray:
    """``KL(N(mu0, var0 I_C) || N(mu1, var1 I_C))``, vectorised: mu [..., C], var [...] -> [...].

    Equals the per-class scalar KL summed over the C classes (classes share the variance).
    """
    m0 = np.asarray(mu0, dtype=np.float64)
    m1 = np.asarray(mu1, dtype=np.float64)
    v0 = np.asarray(var0, dtype=np.float64)
    v1 = np.asarray(var1, dtype=np.float64)
    c = m0.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        x = v0 / v1 - 1.0
        return 0.5 * (c * x_minus_log1p(x) + np.sum((m1 - m0) ** 2, axis=-1) / v1)


def gaussian_kl(mu0: np.ndarray, sd0: np.ndarray, mu1: np.ndarray, sd1: np.ndarray) -> np.ndarray:
    """KL(N(mu0, sd0^2) || N(mu1, sd1^2)) elementwise.

    A standard deviation of 0 is a point mass (e.g. every DP model gave a record the same score).
    Equal point masses have KL 0; a point mass against a different point mass, against a Gaussian,
    or a Gaussian against a point mass are mutually singular: KL = inf (the limits of the formula).
    Negative or NaN standard deviations and NaN means raise ``ValueError``.
    """
    mu0, sd0, mu1, sd1 = np.broadcast_arrays(
        *(np.asarray(a, dtype=np.float64) for a in (mu0, sd0, mu1, sd1))
    )
    if np.isnan(mu0).any() or np.isnan(mu1).any() or not ((sd0 >= 0).all() and (sd1 >= 0).all()):
        raise ValueError("gaussian_kl: means must not be NaN and standard deviations must be >= 0")
    point0, point1 = sd0 == 0, sd1 == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.log(sd1 / sd0) + (sd0**2 + (mu0 - mu1) ** 2) / (2 * sd1**2) - 0.5
    same_point = point0 & point1 & (mu0 == mu1)
    return np.where(point0 | point1, np.where(same_point, 0.0, np.inf), kl)[()]

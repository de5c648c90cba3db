"""Correlation statistics (Pearson and Spearman with p-values) and their CSV tables."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
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
    write_csv(stats_df, path, allow_nan=STAT_COLUMNS)
    for r in rows:
        logger.info("%s vs %s: Pearson r=%.3f (p=%.2g), Spearman %.3f (p=%.2g)",
                    r["x"], r["y"], r["pearson_r"], r["pearson_p"], r["spearman_r"],
                    r["spearman_p"])  # fmt: skip
    return stats_df

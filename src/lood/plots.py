"""Figures: correlation of NNGP LOOD with the retrained-model ground truth, and histograms."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from scipy import stats  # noqa: E402

from .io import atomic_path, write_csv  # noqa: E402


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


@dataclass(frozen=True)
class Panel:
    """One scatter panel: ``y`` against ``x`` columns of a table, with axis labels."""

    x: str
    y: str
    xlabel: str
    ylabel: str
    logx: bool = False


def _label(s: dict[str, float]) -> str:
    return (
        f"Pearson r={s['pearson_r']:.2f} (p={s['pearson_p']:.1e})\n"
        f"Spearman ρ={s['spearman_r']:.2f} (p={s['spearman_p']:.1e})\nn={int(s['n'])}"
    )


def correlation_figure(
    df: pd.DataFrame,
    panels: Sequence[Panel],
    outputs: Sequence[str | os.PathLike[str]],
    title: str = "",
    style: str = "whitegrid",
    context: str = "paper",
    dpi: int = 150,
    panel_size: float = 3.6,
) -> list[dict[str, float | str]]:
    """Scatter + regression line per panel with r and p in the legend; save to every output path.

    Returns one row of correlation statistics per panel (also useful as a table).
    """
    sns.set_theme(style=style, context=context)
    fig, axes = plt.subplots(1, len(panels), figsize=(panel_size * len(panels), panel_size))
    axes = np.atleast_1d(axes)
    rows: list[dict[str, float | str]] = []
    for ax, panel in zip(axes, panels, strict=True):
        x = df[panel.x].to_numpy(dtype=float)
        y = df[panel.y].to_numpy(dtype=float)
        s = correlation_stats(x, y)
        rows.append({"x": panel.x, "y": panel.y, **s})
        sns.regplot(
            x=x, y=y, ax=ax, logx=panel.logx and bool(np.all(x > 0)), ci=95, seed=0,
            scatter_kws={"s": 18, "alpha": 0.75}, line_kws={"label": _label(s)},
        )  # fmt: skip
        ax.set_xlabel(panel.xlabel)
        ax.set_ylabel(panel.ylabel)
        if panel.logx and np.all(x > 0):
            _log_x(ax)
        ax.legend(loc="best", fontsize="small", frameon=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, outputs, dpi=dpi)
    return rows


def histogram_figure(
    values: np.ndarray,
    outputs: Sequence[str | os.PathLike[str]],
    xlabel: str,
    title: str = "",
    logx: bool = True,
    highlight: np.ndarray | None = None,
    style: str = "whitegrid",
    context: str = "paper",
    dpi: int = 150,
) -> None:
    """Histogram of a per-record score (log-x by default), optional marks for selected records."""
    sns.set_theme(style=style, context=context)
    values = np.asarray(values, dtype=float)
    fig, ax = plt.subplots(figsize=(5.0, 3.4))
    use_log = logx and bool(np.all(values > 0))
    sns.histplot(values, bins=50, log_scale=use_log, ax=ax, color="C0")
    if use_log:
        _log_x(ax)
    if highlight is not None and len(highlight):
        sns.rugplot(np.asarray(highlight, dtype=float), ax=ax, color="C3", height=0.05, lw=1.2,
                    label="differing records")  # fmt: skip
        ax.legend(fontsize="small")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("records")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, outputs, dpi=dpi)


def _log_x(ax: plt.Axes) -> None:
    """Log x axis with plain-number ticks at 1, 2, 5 x 10^k (no cluttered minor labels)."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def save_figure(fig: plt.Figure, outputs: Sequence[str | os.PathLike[str]], dpi: int = 150) -> None:
    """Save one figure to several paths (format from the suffix), atomically, then close it."""
    for out in outputs:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=dpi, format=Path(out).suffix.lstrip(".") or "png")
    plt.close(fig)

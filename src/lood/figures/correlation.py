"""Figures: correlation of NNGP LOOD with the retrained-model ground truth, and the histogram of
the LOOD of every training record.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from lood.figures.common import log_axes, save_figure, set_theme
from lood.figures.spec import PlotSpec
from lood.stats import correlation_stats


@dataclass(frozen=True)
class Panel:
    """One scatter panel: ``y`` against ``x`` columns of a table, with axis labels."""

    x: str
    y: str
    xlabel: str
    ylabel: str
    logx: bool = False


def _label(s: dict[str, float], rel: Mapping[str, float] | None = None) -> str:
    text = (
        f"Pearson r={s['pearson_r']:.2f} (p={s['pearson_p']:.1e})\n"
        f"Spearman ρ={s['spearman_r']:.2f} (p={s['spearman_p']:.1e})\nn={int(s['n'])}"
    )
    if rel is not None and rel["reliability"] > 0:
        ceiling = float(np.sqrt(rel["reliability"]))
        lo, hi = (
            float(np.sqrt(max(v, 0.0))) for v in (rel["reliability_lo"], rel["reliability_hi"])
        )
        text += (
            f"\nnoise ceiling {ceiling:.2f} (95% {lo:.2f}-{hi:.2f})"
            f"\nr / ceiling={s['pearson_r'] / ceiling:.2f}"
        )
    return text


def correlation_figure(
    df: pd.DataFrame,
    panels: Sequence[Panel],
    outputs: Sequence[str | os.PathLike[str]],
    title: str = "",
    plots: PlotSpec | None = None,
    panel_size: float = 3.6,
    reliability: Mapping[str, Mapping[str, float]] | None = None,
) -> list[dict[str, float | str]]:
    """Scatter + regression line per panel with r and p in the legend; save to every output path.

    ``reliability``: the :func:`lood.stats.split_half_reliability` of some y columns; their panels
    add the noise ceiling sqrt(reliability) (with its bootstrap interval) and r / ceiling to the
    legend. Returns one row of correlation statistics per panel (also useful as a table).
    """
    plots = set_theme(plots)
    fig, axes = plt.subplots(1, len(panels), figsize=(panel_size * len(panels), panel_size))
    axes = np.atleast_1d(axes)
    rows: list[dict[str, float | str]] = []
    for ax, panel in zip(axes, panels, strict=True):
        x = df[panel.x].to_numpy(dtype=float)
        y = df[panel.y].to_numpy(dtype=float)
        s = correlation_stats(x, y)
        rows.append({"x": panel.x, "y": panel.y, **s})
        label = _label(s, (reliability or {}).get(panel.y))
        sns.regplot(
            x=x,
            y=y,
            ax=ax,
            logx=panel.logx and bool(np.all(x > 0)),
            ci=95,
            seed=0,
            scatter_kws={"s": 18, "alpha": 0.75},
            line_kws={"label": label},
        )
        ax.set_xlabel(panel.xlabel)
        ax.set_ylabel(panel.ylabel)
        if panel.logx and np.all(x > 0):
            log_axes(ax)
        ax.legend(loc="best", fontsize="small", frameon=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, outputs, dpi=plots.dpi)
    return rows


def histogram_figure(
    values: np.ndarray,
    outputs: Sequence[str | os.PathLike[str]],
    xlabel: str,
    title: str = "",
    logx: bool = True,
    highlight: np.ndarray | None = None,
    plots: PlotSpec | None = None,
) -> None:
    """Histogram of a per-record score (log-x by default), optional marks for selected records."""
    plots = set_theme(plots)
    values = np.asarray(values, dtype=float)
    fig, ax = plt.subplots(figsize=(5.0, 3.4))
    use_log = logx and bool(np.all(values > 0))
    sns.histplot(values, bins=50, log_scale=use_log, ax=ax, color="C0")
    if use_log:
        log_axes(ax)
    if highlight is not None and len(highlight):
        sns.rugplot(
            np.asarray(highlight, dtype=float),
            ax=ax,
            color="C3",
            height=0.05,
            lw=1.2,
            label="differing records",
        )
        ax.legend(fontsize="small")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("records")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, outputs, dpi=plots.dpi)

"""Figures that compare estimates: influence scores vs the ground truth, metrics across activations."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from lood.compare import INFLUENCE_SCORES, minmax, wide_table
from lood.figures.common import log_axes, save_figure, set_theme
from lood.figures.spec import PlotSpec
from lood.stats import correlation_stats


def influence_figure(
    df: pd.DataFrame,
    outputs: Sequence[str | os.PathLike[str]],
    truth: str = "pred_diff",
    scores: Mapping[str, str] = INFLUENCE_SCORES,
    title: str = "",
    plots: PlotSpec | None = None,
) -> list[dict[str, float | str]]:
    """One panel: every min-max normalised score against the normalised ground truth, with a
    regression line each and Pearson r (p) in the legend. Returns one statistics row per score
    (on the raw values; Pearson is invariant to the normalisation)."""
    plots = set_theme(plots)
    fig, ax = plt.subplots(figsize=(4.8, 4.0))
    x = df[truth].to_numpy(dtype=float)
    rows: list[dict[str, float | str]] = []
    markers = ["o", "s", "^", "D", "v"]
    for i, (col, name) in enumerate(scores.items()):
        y = df[col].to_numpy(dtype=float)
        s = correlation_stats(x, y)
        rows.append({"x": truth, "y": col, **s})
        label = f"{name}: r={s['pearson_r']:.2f} (p={s['pearson_p']:.1e})"
        sns.regplot(
            x=minmax(x),
            y=minmax(y),
            ax=ax,
            ci=None,
            truncate=True,
            label=label,
            marker=markers[i % len(markers)],
            color=f"C{i}",
            scatter_kws={"s": 18, "alpha": 0.7},
            line_kws={"lw": 1.2},
        )
    ax.set_xlabel("prediction difference, retrained NNs (normalised)")
    ax.set_ylabel("influence score (normalised)")
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-0.05, 1.05)
    ax.legend(loc="best", fontsize="small", frameon=True)
    ax.set_title(title or f"influence estimates vs ground truth ({len(df)} records)")
    fig.tight_layout()
    save_figure(fig, outputs, dpi=plots.dpi)
    return rows


def activation_figure(
    long: pd.DataFrame,
    outputs: Sequence[str | os.PathLike[str]],
    plots: PlotSpec | None = None,
    panel_size: float = 3.6,
) -> None:
    """Row 1: paired scatter of KL LOOD and MIA AUC of the same records, first experiment against
    each other (diagonal y = x). Row 2: LOOD vs MIA AUC and mean-distance LOOD vs prediction
    difference within each experiment, one colour per experiment, Pearson r in the legend."""
    plots = set_theme(plots)
    experiments = list(dict.fromkeys(long.experiment))
    act = dict(zip(long.experiment, long.activation, strict=False))
    label = {e: f"{e} ({act[e]})" if act[e] != e else e for e in experiments}
    ref, others = experiments[0], experiments[1:]
    fig, axes = plt.subplots(2, 2, figsize=(2 * panel_size, 2 * panel_size))
    for ax, metric, log in [(axes[0, 0], "kl_lood", True), (axes[0, 1], "mia_auc", False)]:
        w = wide_table(long, metric)
        for i, other in enumerate(others):
            s = correlation_stats(w[ref].to_numpy(float), w[other].to_numpy(float))
            ax.scatter(
                w[ref],
                w[other],
                s=18,
                alpha=0.75,
                color=f"C{i + 1}",
                label=f"{label[other]}: r={s['pearson_r']:.2f} (p={s['pearson_p']:.1e})",
            )
        lo = float(np.nanmin(w.to_numpy()))
        hi = float(np.nanmax(w.to_numpy()))
        ax.plot([lo, hi], [lo, hi], color="0.5", lw=1, ls="--", label="y = x")
        if log and lo > 0:
            log_axes(ax, y=True)
        ax.set_xlabel(f"{metric}, {label[ref]}")
        ax.set_ylabel(f"{metric}, other experiment")
        ax.legend(fontsize="small")
    for ax, (xcol, ycol, log) in [
        (axes[1, 0], ("kl_lood", "mia_auc", True)),
        (axes[1, 1], ("mean_dist_lood", "pred_diff", False)),
    ]:
        for i, e in enumerate(experiments):
            sub = long[long.experiment == e]
            x, y = sub[xcol].to_numpy(float), sub[ycol].to_numpy(float)
            s = correlation_stats(x, y)
            ax.scatter(
                x,
                y,
                s=18,
                alpha=0.75,
                color=f"C{i}",
                label=f"{label[e]}: r={s['pearson_r']:.2f} (p={s['pearson_p']:.1e})",
            )
        if log and bool((long[xcol] > 0).all()):
            log_axes(ax)
        ax.set_xlabel(xcol)
        ax.set_ylabel(ycol)
        ax.legend(fontsize="small")
    n = long.groupby("experiment").size().iloc[0]
    fig.suptitle(f"{' vs '.join(label[e] for e in experiments)}: same {n} differing records")
    fig.tight_layout()
    save_figure(fig, outputs, dpi=plots.dpi)

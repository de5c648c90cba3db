"""Figures of PANORAMIA: real beside generated images, the classifiers' precision / recall and
bounds per threshold, and every privacy measurement of the experiments side by side."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from lood.figures.common import as_image, log_axes, plot_settings, save_figure, set_theme
from lood.figures.spec import PlotSpec
from lood.privacy.audit import experiment_label


def panoramia_samples_figure(
    grid: Mapping[str, np.ndarray],
    outputs: Sequence[str | os.PathLike[str]],
    plots: PlotSpec | None = None,
    title: str = "",
) -> None:
    """One column per class: the ``real`` images above, the ``generated`` ones below.

    ``grid`` holds ``real`` and ``generated`` ``[C, k, d]`` raw-space images (NaN: no image),
    ``image_shape`` and ``classes`` (original labels), as the generator rule saves them.
    """
    plots = plot_settings(plots)
    real, fake = np.asarray(grid["real"]), np.asarray(grid["generated"])
    shape = tuple(int(s) for s in grid["image_shape"])
    classes = [int(c) for c in grid["classes"]]
    n_cls, k = real.shape[0], real.shape[1]
    rows = [("real", real[:, i]) for i in range(k)] + [("generated", fake[:, i]) for i in range(k)]
    fig, axes = plt.subplots(
        len(rows), n_cls, figsize=(0.9 * n_cls + 0.8, 0.9 * len(rows) + 0.6), squeeze=False
    )
    for i, (label, images) in enumerate(rows):
        for j in range(n_cls):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if np.isfinite(images[j]).all():
                ax.imshow(as_image(images[j], shape), cmap="gray", vmin=0.0, vmax=1.0)
            for spine in ax.spines.values():
                spine.set_visible(False)
            if i == 0:
                ax.set_title(f"{classes[j]}", fontsize="small")
        if i in (0, k):
            axes[i, 0].set_ylabel(label, fontsize="small")
    fig.suptitle(title or "real (top) and generated (bottom)", fontsize="small")
    fig.tight_layout()
    save_figure(fig, outputs, dpi=plots.dpi)


def panoramia_curves_figure(
    summary: pd.DataFrame,
    thresholds: pd.DataFrame,
    curves: pd.DataFrame,
    outputs: Sequence[str | os.PathLike[str]],
    plots: PlotSpec | None = None,
) -> None:
    """Left: precision against recall of the baseline and of each target's MIA over every cut of
    the ranking. Right: the lower bound at each threshold of the grid (c for the baseline, c + eps
    for the MIAs) with the ceiling; the best of each is the reported bound."""
    plots = set_theme(plots)
    fig, (ax_pr, ax_b) = plt.subplots(1, 2, figsize=(10.0, 4.0))
    styles = {-1: {"color": "k", "lw": 1.8, "label": "baseline (helper model only)"}}
    for i, t in enumerate(summary["target"]):
        styles[int(t)] = {"color": f"C{i}", "lw": 1.0, "label": f"MIA, target {int(t)}"}
    for t, kw in styles.items():
        c = curves[curves.target == t]
        ax_pr.plot(c["recall"], c["precision"], **kw)
        b = thresholds[thresholds.target == t]
        ax_b.plot(b["r"], b["eps_lb"], marker="o", ms=3, **kw)
    base = float(summary["n_test_members"].iloc[0]) / float(summary["n_attack_test"].iloc[0])
    ax_pr.axhline(base, color="0.5", ls=":", lw=1, label="members' share (chance)")
    ax_pr.set_xlabel("recall (members guessed)")
    ax_pr.set_ylabel("precision")
    shown = curves.loc[curves.recall >= 0.1, "precision"]
    low = min(base - 0.1, float(shown.min()) if len(shown) else base) - 0.02
    ax_pr.set_ylim(max(0.0, low), 1.02)
    ax_pr.set_title("real members vs generated non-members")
    ax_pr.legend(fontsize="x-small", loc="lower left")
    ceiling = float(summary["ceiling"].iloc[0])
    ax_b.axhline(ceiling, color="0.4", ls="--", lw=1, label=f"ceiling {ceiling:.2f}")
    log_axes(ax_b)
    ax_b.set_ylim(-0.05 * max(ceiling, 1.0), 1.1 * max(ceiling, 1.0))
    ax_b.set_xlabel("guesses r (threshold at the r-th highest score)")
    ax_b.set_ylabel("lower bound (c or c + ε)")
    conf = float(summary["confidence"].iloc[0])
    ax_b.set_title(f"bounds per threshold, {summary['correction'].iloc[0]} at {conf:.0%}")
    ax_b.legend(fontsize="x-small", loc="upper left")
    fig.tight_layout()
    save_figure(fig, outputs, dpi=plots.dpi)


def panoramia_comparison_figure(
    table: pd.DataFrame,
    outputs: Sequence[str | os.PathLike[str]],
    plots: PlotSpec | None = None,
) -> None:
    """Per experiment (one row of :func:`lood.privacy.panoramia.tables.panoramia_comparison`):
    the accountant's epsilon, the one-run audit's best bound, PANORAMIA's {c+eps}_lb, c_lb and
    eps_tilde (range over the targets) on one epsilon axis; the retrained-model MIA AUC and the
    NNGP KL LOOD of the differing records beside it."""
    plots = set_theme(plots)
    names = list(table["experiment"])
    xs = np.arange(len(names))
    ratios = [max(3.0, 1.3 * len(names)), max(1.6, 0.6 * len(names)), max(1.6, 0.6 * len(names))]
    fig, axes = plt.subplots(
        1, 3, figsize=(sum(ratios) + 2.5, 4.8), gridspec_kw={"width_ratios": ratios}
    )
    ax = axes[0]
    top = 0.0
    for i, row in enumerate(table.itertuples()):
        if math.isfinite(row.eps_accountant):
            ax.bar(
                i,
                row.eps_accountant,
                width=0.7,
                color="0.88",
                edgecolor="0.4",
                label="accountant ε (DP-SGD guarantee)",
            )
            top = max(top, row.eps_accountant)
        if math.isfinite(row.audit_eps_lb_max):
            ax.scatter(
                i - 0.2,
                row.audit_eps_lb_max,
                marker="s",
                color="C3",
                s=28,
                zorder=3,
                label="one-run audit: best lower bound",
            )
            ax.hlines(
                row.audit_ceiling,
                i - 0.32,
                i - 0.08,
                color="C3",
                ls=":",
                lw=1,
                label="audit ceiling (all guesses right)",
            )
            top = max(top, row.audit_eps_lb_max, row.audit_ceiling)
        ax.scatter(
            i + 0.1,
            row.c_plus_eps_lb_mean,
            marker="^",
            color="C0",
            s=28,
            zorder=3,
            label="PANORAMIA {c+ε}_lb (mean of targets)",
        )
        ax.scatter(
            i + 0.1,
            row.c_lb,
            marker="v",
            color="C2",
            s=28,
            zorder=3,
            label="PANORAMIA c_lb (baseline)",
        )
        ax.errorbar(
            i + 0.25,
            row.eps_tilde_mean,
            yerr=[
                [row.eps_tilde_mean - row.eps_tilde_min],
                [row.eps_tilde_max - row.eps_tilde_mean],
            ],
            fmt="o",
            color="C1",
            ms=6,
            capsize=3,
            zorder=4,
            label="PANORAMIA ε̃ = {c+ε}_lb − c_lb (range)",
        )
        ax.hlines(
            row.panoramia_ceiling,
            i - 0.02,
            i + 0.35,
            color="C0",
            ls=":",
            lw=1,
            label="PANORAMIA ceiling (all guesses right)",
        )
        top = max(top, row.panoramia_ceiling, row.c_plus_eps_lb_mean)
    labels = [
        experiment_label(e, eps) for e, eps in zip(names, table["eps_accountant"], strict=True)
    ]
    ax.set_xticks(xs, labels, fontsize="small")
    bottom = min(0.0, float(table["eps_tilde_min"].min()))
    ax.axhline(0.0, color="k", lw=0.6)
    ax.set_ylim(bottom - 0.05 * (top - bottom), max(1.0, 1.12 * top))
    ax.set_ylabel("ε")
    ax.set_title("privacy measurements")
    handles, labs = ax.get_legend_handles_labels()
    uniq = dict(zip(labs, handles, strict=False))
    fig.legend(
        uniq.values(), uniq.keys(), fontsize="x-small", loc="lower center", ncol=3, frameon=False
    )
    axes[1].bar(xs, table["mia_auc_mean"], color=[f"C{i}" for i in range(len(names))])
    axes[1].axhline(0.5, color="k", lw=0.8, ls="--")
    axes[1].set_ylim(0.4, 1.0)
    axes[1].set_ylabel("mean MIA AUC (retrained models)")
    axes[1].set_title("membership inference")
    axes[2].bar(xs, table["kl_lood_mean"], color=[f"C{i}" for i in range(len(names))])
    axes[2].set_ylabel("mean NNGP KL LOOD")
    axes[2].set_title("LOOD")
    for a in axes[1:]:
        a.set_xticks(xs, names, fontsize="x-small", rotation=30, ha="right", rotation_mode="anchor")
    fig.tight_layout(rect=(0.0, 0.12, 1.0, 1.0))
    save_figure(fig, outputs, dpi=plots.dpi)

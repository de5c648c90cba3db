"""Figures of the privacy stages: DP experiments side by side, audit bounds beside the accountant,
and MI-FACE reconstructions beside the NNGP query optimisation.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from lood.figures.common import log_axes, save_figure, set_theme
from lood.figures.spec import PlotSpec
from lood.privacy.audit import experiment_label
from lood.stats import correlation_stats

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _paired_strip(ax: plt.Axes, long: pd.DataFrame, metric: str, labels: list[str]) -> None:
    """One column per experiment: every record a dot, the same record joined across columns."""
    wide = long.pivot(index="differ_idx", columns="label_x", values=metric)[labels]
    xs = np.arange(len(labels))
    for _, row in wide.iterrows():
        ax.plot(xs, row.to_numpy(), color="0.6", lw=0.5, alpha=0.5, zorder=1)
    for i, lab in enumerate(labels):
        ax.scatter(np.full(len(wide), xs[i]), wide[lab], s=12, color=f"C{i}", zorder=2)
        ax.hlines(wide[lab].median(), i - 0.3, i + 0.3, color="k", lw=1.5, zorder=3)
    ax.set_xticks(xs, labels, fontsize="small", rotation=30, ha="right", rotation_mode="anchor")


def infinite_at_edge(
    values: np.ndarray, floor: float = 1e-6
) -> tuple[np.ndarray, np.ndarray, float]:
    """Values for a log axis: (plotted, infinite mask, edge). Infinite values (one side's scores
    all equal: :func:`lood.privacy.audit.dp_tables.empirical_lood`) go to ``edge``, 10x the
    largest finite value (1 if none), so they are drawn rather than dropped; the rest is clipped
    below at ``floor``."""
    values = np.asarray(values, dtype=np.float64)
    infinite = np.isposinf(values)
    finite = values[np.isfinite(values)]
    edge = 10.0 * max(float(finite.max()), floor) if finite.size else 1.0
    return np.where(infinite, edge, np.clip(values, floor, None)), infinite, edge


def dp_figure(
    long: pd.DataFrame,
    outputs: Sequence[str | os.PathLike[str]],
    plots: PlotSpec | None = None,
) -> None:
    """Three panels on the same records: MIA AUC per experiment, empirical LOOD per experiment
    (log scale; infinite values marked at the top edge, :func:`infinite_at_edge`), and MIA AUC
    against the NNGP KL LOOD, one colour per experiment."""
    plots = set_theme(plots)
    long = long.copy()
    names = list(dict.fromkeys(long["experiment"]))
    eps = {e: float(long.loc[long.experiment == e, "epsilon"].iloc[0]) for e in names}
    label = {e: experiment_label(e, eps[e]) for e in names}
    long["label_x"] = long["experiment"].map(label)
    labels = [label[e] for e in names]
    width = max(4.0, 1.1 * len(names))
    fig, axes = plt.subplots(
        1, 3, figsize=(2 * width + 6.0, 4.2), gridspec_kw={"width_ratios": [width, width, 4.0]}
    )
    _paired_strip(axes[0], long, "mia_auc", labels)
    axes[0].axhline(0.5, color="k", lw=0.8, ls="--")
    axes[0].set_ylabel("MIA AUC (retrained models)")
    axes[0].set_title("membership inference")
    lood = long.copy()
    plotted, infinite, edge = infinite_at_edge(lood["empirical_lood"].to_numpy(dtype=float))
    lood["empirical_lood"] = plotted
    _paired_strip(axes[1], lood, "empirical_lood", labels)
    axes[1].set_yscale("log")
    if infinite.any():  # drawn, not dropped: at the top edge, marked, and counted
        xs = [labels.index(lab) for lab in lood.loc[infinite, "label_x"]]
        axes[1].scatter(
            xs,
            np.full(len(xs), edge),
            marker="^",
            s=60,
            facecolors="none",
            edgecolors="k",
            zorder=4,
            label=f"infinite ({int(infinite.sum())}): drawn at the top edge",
        )
        axes[1].set_ylim(top=edge * 1.5)
        axes[1].legend(fontsize="x-small", loc="lower right")
    axes[1].set_ylabel("empirical LOOD: KL(out || in) of the scores")
    axes[1].set_title("leave-one-out distinguishability")
    for i, e in enumerate(names):
        sub = long[long.experiment == e]
        s = correlation_stats(sub["kl_lood"].to_numpy(), sub["mia_auc"].to_numpy())
        axes[2].scatter(
            sub["kl_lood"],
            sub["mia_auc"],
            s=12,
            color=f"C{i}",
            label=f"{label[e].replace(chr(10), ' ')}: r={s['pearson_r']:.2f}",
        )
    log_axes(axes[2])
    axes[2].set_xlabel("NNGP KL LOOD (same for all experiments)")
    axes[2].set_ylabel("MIA AUC")
    axes[2].set_title("NNGP LOOD vs MIA")
    axes[2].legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.suptitle(f"DP-SGD vs non-DP training on the same {long.differ_idx.nunique()} records")
    fig.tight_layout()
    save_figure(fig, outputs, dpi=plots.dpi)


def audit_figure(
    runs: pd.DataFrame,
    outputs: Sequence[str | os.PathLike[str]],
    plots: PlotSpec | None = None,
) -> None:
    """Per experiment: the accountant's epsilon (bar; none for non-DP) and every run's audit lower
    bound (dots) at the audit's confidence. ``runs``: rows of the audit tables plus experiment
    and eps_accountant columns."""
    plots = set_theme(plots)
    names = list(dict.fromkeys(runs["experiment"]))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.5 * len(names) + 1.5), 3.8))
    top = 0.0
    for i, e in enumerate(names):
        sub = runs[runs.experiment == e]
        eps = float(sub["eps_accountant"].iloc[0])
        if math.isfinite(eps):
            ax.bar(
                i,
                eps,
                width=0.6,
                color="0.85",
                edgecolor="0.4",
                label="accountant ε (DP-SGD guarantee)",
            )
            top = max(top, eps)
        else:
            ax.text(i, 0.02, "non-DP\n(ε = ∞)", ha="center", va="bottom", fontsize="x-small")
        jitter = np.linspace(-0.12, 0.12, len(sub)) if len(sub) > 1 else np.zeros(1)
        ax.scatter(
            i + jitter,
            sub["eps_lower_bound"],
            color="C3",
            s=18,
            zorder=3,
            label="audit lower bound (one run each)",
        )
        top = max(top, float(sub["eps_lower_bound"].max()))
    ax.set_xticks(range(len(names)), names, fontsize="small")
    ax.set_ylim(0, max(1.0, 1.15 * top))
    conf = float(runs["confidence"].iloc[0]) if "confidence" in runs else 0.95
    ax.set_ylabel(f"ε (lower bound at {conf:.0%} confidence)")
    m = int(runs["m"].iloc[0])
    ax.set_title(f"one-run audit: {m} canaries, {int(runs['r'].iloc[0])} guesses per run")
    handles, labs = ax.get_legend_handles_labels()
    uniq = dict(zip(labs, handles, strict=False))
    ax.legend(uniq.values(), uniq.keys(), fontsize="x-small", loc="upper right")
    fig.tight_layout()
    save_figure(fig, outputs, dpi=plots.dpi)


def _as_rows(name: str, images: np.ndarray, d: int) -> np.ndarray:
    a = np.asarray(images, dtype=np.float64)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 1 and a.shape[0] == d:
        a = a[None]
    if a.ndim != 2 or a.shape[1] != d:
        raise ValueError(
            f"{name}: expected images [n, d={d}] (or [1, n, d]), got shape {a.shape}; "
            "pick one model of a [K, C, d] inversion (or average them) first"
        )
    return a


def inversion_figure(
    means: np.ndarray,
    recons: Mapping[str, np.ndarray],
    image_shape: Sequence[int],
    extra: Mapping[str, np.ndarray] | None = None,
    titles: Sequence[str] | None = None,
) -> Figure:
    """Grid of images: row "class mean", then one row per ``recons`` entry, then ``extra`` rows.

    Each entry is ``[n, d]`` flat images (``[C, d]`` for a reconstruction of every class);
    columns are classes (titled ``titles`` or "class c"). Rows with fewer images than columns
    (e.g. an ``extra`` row of NNGP query reconstructions of another count) leave blank cells.
    Images are grayscale (RGB shown as colour), each min-max scaled for display, so pass them in
    the raw pixel space (:meth:`lood.data.Split.unnormalize`). Uses no pyplot state.
    """
    from matplotlib.figure import Figure

    from lood.figures.common import as_image

    shape = tuple(int(s) for s in image_shape)
    d = math.prod(shape)
    rows: list[tuple[str, np.ndarray]] = [("class mean", _as_rows("means", means, d))]
    rows += [(label, _as_rows(f"recons[{label!r}]", v, d)) for label, v in recons.items()]
    rows += [(label, _as_rows(f"extra[{label!r}]", v, d)) for label, v in (extra or {}).items()]
    n_cols = max(1, max(len(images) for _, images in rows))
    n_classes = len(rows[0][1])
    if titles is not None and len(titles) < n_classes:
        raise ValueError(f"titles: need {n_classes} column titles, got {len(titles)}")
    fig = Figure(figsize=(1.5 * n_cols + 0.6, 1.5 * len(rows) + 0.3))
    axes = fig.subplots(len(rows), n_cols, squeeze=False)
    for i, (label, images) in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(images) and np.isfinite(images[j]).all():
                ax.imshow(as_image(images[j], shape), cmap="gray", vmin=0.0, vmax=1.0)
            else:
                for spine in ax.spines.values():
                    spine.set_visible(False)
            if i == 0 and j < n_classes:
                ax.set_title(titles[j] if titles is not None else f"class {j}", fontsize="small")
        axes[i, 0].set_ylabel(label, fontsize="small")
    fig.tight_layout()
    return fig

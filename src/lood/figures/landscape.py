"""Figures of the landscape and query-optimisation stages."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from lood.figures.common import as_image, plot_settings, save_figure, set_theme
from lood.figures.spec import PlotSpec


def landscape_figure(
    lood: pd.DataFrame,
    mia: pd.DataFrame | None,
    outputs: Sequence[str | os.PathLike[str]],
    scale: float = 255.0,
    title: str = "",
    plots: PlotSpec | None = None,
) -> None:
    """One column per record. Top: KL LOOD (log, left) and mean-distance LOOD (right) against t.
    Bottom (when ``mia`` is given): MIA AUC of the retrained networks (mean +- std) and NNGP AUC."""
    plots = set_theme(plots)
    records = list(dict.fromkeys(lood["differ_idx"].tolist()))
    n_rows = 2 if mia is not None else 1
    fig, axes = plt.subplots(
        n_rows,
        len(records),
        figsize=(3.2 * len(records), 2.8 * n_rows),
        squeeze=False,
        sharex="col",
    )
    for c, record in enumerate(records):
        d = lood[lood.differ_idx == record].sort_values("t")
        ax = axes[0, c]
        ax.plot(d.t, d.kl_lood, color="C0", label="KL LOOD")
        ax.set_yscale("log")
        ax.set_title(f"record {record}")
        ax.axvline(0, color="grey", lw=0.8, ls=":")
        ax2 = ax.twinx()
        ax2.plot(d.t, d.mean_dist_lood, color="C1", ls="--", label="mean-distance LOOD")
        ax2.grid(False)
        if c == 0:
            ax.set_ylabel("KL LOOD")
            lines = ax.get_lines()[:1] + ax2.get_lines()
            ax.legend(lines, [ln.get_label() for ln in lines], fontsize="x-small", loc="upper left")
        if c == len(records) - 1:
            ax2.set_ylabel("mean-distance LOOD")
        if mia is not None:
            m = mia[mia.differ_idx == record].sort_values("t")
            ax = axes[1, c]
            ax.plot(m.t, m.mia_auc, color="C3", label="MIA AUC (retrained NNs)")
            ax.fill_between(
                m.t,
                m.mia_auc - m.mia_auc_std,
                m.mia_auc + m.mia_auc_std,
                color="C3",
                alpha=0.2,
                lw=0,
            )
            ax.plot(d.t, d.nngp_auc, color="C0", ls="--", label="NNGP AUC")
            ax.axvline(0, color="grey", lw=0.8, ls=":")
            ax.set_ylim(min(0.3, float((m.mia_auc - m.mia_auc_std).min())), 1.02)
            if c == 0:
                ax.set_ylabel("AUC")
                ax.legend(fontsize="x-small", loc="lower center")
        axes[-1, c].set_xlabel(f"t (query = x + t/{scale:g} · d)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, outputs, dpi=plots.dpi)


def reconstruction_figure(
    records_raw: np.ndarray,
    queries_raw: np.ndarray,
    image_shape: Sequence[int],
    table: pd.DataFrame,
    outputs: Sequence[str | os.PathLike[str]],
    title: str = "",
    plots: PlotSpec | None = None,
) -> None:
    """Top row: the differing records with their KL LOOD; below: each optimised query (raw
    pixel space, min-max scaled for display) with its LOOD and kernel cosine to the record.

    ``records_raw`` [R, d], ``queries_raw`` [R, M, d]; ``table`` is reconstruction.csv (R rows).
    """
    plots = plot_settings(plots)
    sns.set_theme(style="white")  # images: no grid, whatever plots.style says
    r, m = queries_raw.shape[:2]
    fig, axes = plt.subplots(1 + m, r, figsize=(1.9 * r, 2.5 * (1 + m)), squeeze=False)
    for c in range(r):
        row = table.iloc[c]
        axes[0, c].imshow(as_image(records_raw[c], image_shape), cmap="gray")
        axes[0, c].set_title(
            f"record {int(row.differ_idx)}\nLOOD {row.lood_at_record:.3g}", fontsize="small"
        )
        for j in range(m):
            axes[1 + j, c].imshow(as_image(queries_raw[c, j], image_shape), cmap="gray")
            label = f"optimised\nLOOD {row.lood_optimized:.3g}" if j == 0 else "(query set)"
            if j == 0:
                label += f", cos {row.kernel_cosine:.2f}"
            axes[1 + j, c].set_title(label, fontsize="small")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize="small")
    fig.tight_layout()
    save_figure(fig, outputs, dpi=plots.dpi)


def history_figure(
    history: pd.DataFrame,
    table: pd.DataFrame,
    outputs: Sequence[str | os.PathLike[str]],
    title: str = "",
    plots: PlotSpec | None = None,
) -> None:
    """KL LOOD of the query against the Adam step, one line per record; dashed: LOOD at x."""
    plots = set_theme(plots)
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for i, record in enumerate(table.differ_idx):
        h = history[history.differ_idx == record]
        ax.plot(h.step, h.kl_lood, color=f"C{i % 10}", label=f"record {record}")
        at_x = float(table.loc[table.differ_idx == record, "lood_at_record"].iloc[0])
        ax.axhline(at_x, color=f"C{i % 10}", ls="--", lw=0.8)
    positive = history.kl_lood[history.kl_lood > 0]
    if len(positive) and np.all(table.lood_at_record > 0):
        ax.set_yscale("log")
    ax.set_xlabel("Adam step")
    ax.set_ylabel("KL LOOD of the query")
    ax.legend(fontsize="x-small")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, outputs, dpi=plots.dpi)

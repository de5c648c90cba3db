"""Figures of the membership-inference attacks: pooled ROC curves on log-log axes, and the
per-record AUC of each attack against the NNGP KL LOOD.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from lood.figures.common import save_figure, set_theme
from lood.figures.correlation import Panel, correlation_figure
from lood.figures.spec import PlotSpec
from lood.privacy.mia import attack_auc_columns

#: display names of the attacks of :func:`lood.privacy.mia.evaluation.attack_statistics`
ATTACK_LABELS = {
    "score": "raw score",
    "lira_online": "LiRA online",
    "lira_offline": "LiRA offline",
    "rmia_online": "RMIA online",
    "rmia_offline": "RMIA offline",
}


def attack_label(name: str, score: str = "lira") -> str:
    """Display name of an attack; the raw-score baseline names its score (LiRA phi or margin)."""
    if name == "score":
        return {"lira": "raw score (LiRA φ)", "margin": "raw score (margin)"}.get(
            score, "raw score (−MSE loss)"
        )
    return ATTACK_LABELS.get(name, name)


def roc_figure(
    roc: Mapping[str, np.ndarray],
    pooled: pd.DataFrame,
    outputs: Sequence[str | os.PathLike[str]],
    score: str = "lira",
    title: str = "",
    floor: float = 1e-5,
    plots: PlotSpec | None = None,
) -> None:
    """Pooled ROC curve of every attack on log-log axes from ``floor`` to 1.

    ``roc`` holds ``attacks`` and ``<attack>_fpr`` / ``<attack>_tpr`` (as the attacks rule writes
    ``roc.npz``); ``pooled`` the pooled table (``attack``, ``auc``, ``n_neg``). Curves are steps
    (the TPR at FPR alpha is that of the last threshold with FPR <= alpha, as in the pooled
    table's ``tpr@alpha``); rates of 0 are drawn at ``floor``, so a curve's height at the left
    edge is its TPR at FPR 0; the dotted line marks one false positive, 1 / n_neg, below which
    the FPR is not resolved.
    """
    plots = set_theme(plots)
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    grid = np.logspace(np.log10(floor), 0, 50)
    ax.plot(grid, grid, color="0.5", lw=0.8, ls="--", label="chance")
    table = pooled.set_index("attack")
    for i, name in enumerate(str(a) for a in roc["attacks"]):
        fpr = np.maximum(np.asarray(roc[f"{name}_fpr"], dtype=float), floor)
        tpr = np.maximum(np.asarray(roc[f"{name}_tpr"], dtype=float), floor)
        auc = float(table.loc[name, "auc"])
        label = f"{attack_label(name, score)} (AUC {auc:.3f})"
        ax.plot(fpr, tpr, color=f"C{i}", lw=1.4, drawstyle="steps-post", label=label)
    n_neg = int(pooled["n_neg"].iloc[0])
    ax.axvline(1.0 / n_neg, color="k", lw=0.7, ls=":", label=f"1 false positive (1/{n_neg})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor, 1.0)
    ax.set_ylim(floor, 1.0)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(loc="lower right", fontsize="x-small", frameon=True)
    if title:
        ax.set_title(title, fontsize="medium")
    fig.tight_layout()
    save_figure(fig, outputs, dpi=plots.dpi)


def attacks_lood_figure(
    per_record: pd.DataFrame,
    lood: pd.DataFrame,
    outputs: Sequence[str | os.PathLike[str]],
    score: str = "lira",
    title: str = "",
    plots: PlotSpec | None = None,
) -> list[dict[str, float | str]]:
    """Per-record AUC of each attack (``attacks/per_record.csv``) against the KL LOOD of
    ``lood.csv`` (log x), one panel per attack, with Pearson and Spearman r. Returns the
    correlation rows (``x`` = ``kl_lood``, ``y`` = ``<attack>_auc``)."""
    df = per_record.merge(lood[["differ_idx", "kl_lood"]], on="differ_idx", validate="1:1")
    panels = [
        Panel("kl_lood", col, "NNGP KL LOOD", f"{attack_label(col[:-4], score)} AUC", logx=True)
        for col in attack_auc_columns(per_record)
    ]
    return correlation_figure(df, panels, outputs, title=title, plots=plots, panel_size=3.3)

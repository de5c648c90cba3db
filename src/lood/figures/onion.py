"""Figure of the privacy onion: how the LOOD of the records that remain rises as the most
exposed records are peeled off."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from lood.figures.common import log_axes, save_figure, set_theme
from lood.figures.spec import PlotSpec


def onion_rise(table: pd.DataFrame) -> pd.DataFrame:
    """Per record that remains at the last layer: KL LOOD at layer 0 and at the last layer, their
    ratio, and its percentile rank at layer 0 (0 = safest); sorted by the ratio, highest first."""
    last = int(table.layer.max())
    first = table[table.layer == 0].set_index("idx")
    end = table[table.layer == last].set_index("idx")
    out = pd.DataFrame(
        {
            "kl_first": first.kl_lood.loc[end.index],
            "kl_last": end.kl_lood,
            "rank_first": first.kl_lood.rank(pct=True).loc[end.index],
            "is_differ": end.is_differ,
        }
    )
    out["rise"] = out.kl_last / out.kl_first
    return out.sort_values("rise", ascending=False)


def onion_figure(
    table: pd.DataFrame,
    outputs: Sequence[str | os.PathLike[str]],
    n_show: int = 6,
    title: str = "",
    plots: PlotSpec | None = None,
) -> None:
    """Left: KL LOOD of every remaining record before (layer 0) and after the last peel, the
    ``n_show`` records that were in the safer half at layer 0 and rise most marked. Right: KL LOOD
    per layer of those records, with the median and the 90th percentile of all remaining ones."""
    plots = set_theme(plots)
    rise = onion_rise(table)
    safe = rise[rise.rank_first < 0.5].head(n_show)
    last = int(table.layer.max())
    k = int(table[table.layer == 0].removed.sum())
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9.5, 3.8))
    ax0.scatter(rise.kl_first, rise.kl_last, s=6, color="0.6", lw=0, label="remaining records")
    d = rise[rise.is_differ]
    ax0.scatter(
        d.kl_first,
        d.kl_last,
        s=14,
        facecolor="none",
        edgecolor="C0",
        lw=0.7,
        label="differing records",
    )
    lo = float(min(rise.kl_first.min(), rise.kl_last.min()))
    hi = float(max(rise.kl_first.max(), rise.kl_last.max()))
    ax0.plot([lo, hi], [lo, hi], color="k", ls="--", lw=0.8)
    for i, (idx, row) in enumerate(safe.iterrows()):
        ax0.scatter([row.kl_first], [row.kl_last], s=24, color=f"C{(i + 1) % 10}", zorder=3)
        ax0.annotate(
            str(idx),
            (row.kl_first, row.kl_last),
            fontsize="x-small",
            xytext=(3, 3),
            textcoords="offset points",
        )
    log_axes(ax0, y=True)
    ax0.set_xlabel("KL LOOD, all of D (layer 0)")
    ax0.set_ylabel(f"KL LOOD after {last} layers of {k}")
    ax0.legend(fontsize="x-small")
    layers = np.arange(last + 1)
    stats = table.groupby("layer").kl_lood
    ax1.plot(layers, stats.median(), color="k", lw=1.2, label="median, remaining")
    ax1.plot(layers, stats.quantile(0.9), color="k", lw=0.8, ls=":", label="90th percentile")
    for i, idx in enumerate(safe.index):
        rows = table[table.idx == idx].sort_values("layer")
        ax1.plot(
            rows.layer,
            rows.kl_lood,
            marker="o",
            ms=3,
            color=f"C{(i + 1) % 10}",
            label=f"record {idx} (x{safe.rise.loc[idx]:.2f})",
        )
    ax1.set_xlabel("layers peeled")
    ax1.set_ylabel("KL LOOD")
    ax1.set_xticks(layers)
    ax1.legend(fontsize="xx-small", ncol=2)
    if title:
        fig.suptitle(title, fontsize="small")
    fig.tight_layout()
    save_figure(fig, outputs, dpi=plots.dpi)

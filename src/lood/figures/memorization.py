"""Figures of the memorization stage: the most and least memorized training images."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace

import matplotlib.pyplot as plt
import pandas as pd

from lood.data.split import Split
from lood.figures.common import as_image, plot_settings, save_figure, set_theme
from lood.figures.spec import PlotSpec


def extreme_records(mem: pd.DataFrame, n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``n`` most memorized (descending) and ``n`` least memorized (ascending) rows of a
    memorization table; ties broken by index."""
    n = min(int(n), len(mem))
    top = mem.sort_values(["mem", "idx"], ascending=[False, True], kind="stable").head(n)
    low = mem.sort_values(["mem", "idx"], ascending=[True, True], kind="stable").head(n)
    return top, low


def memorization_images_figure(
    split: Split,
    mem: pd.DataFrame,
    n: int,
    outputs: Sequence[str | os.PathLike[str]],
    title: str = "",
    plots: PlotSpec | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two rows of training images: the ``n`` most and the ``n`` least memorized, each titled
    with its index, class and memorization (+- SE). Returns the two selected tables."""
    plots = set_theme(plots or replace(plot_settings(None), style="white"))
    top, low = extreme_records(mem, n)
    cols = max(len(top), 1)
    fig, axes = plt.subplots(2, cols, figsize=(1.3 * cols + 0.6, 4.0), squeeze=False)
    pixels = split.unnormalize(split.x_train)
    for r, (rows, name) in enumerate([(top, "most"), (low, "least")]):
        for c in range(cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(rows):
                ax.axis("off")
                continue
            row = rows.iloc[c]
            i = int(row["idx"])
            img = as_image(pixels[i], split.image_shape)
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
            cls = split.classes[int(split.y_train[i])]
            ax.set_title(f"#{i} ({cls})\n{row['mem']:.2f}±{row['mem_se']:.2f}", fontsize=7)
        axes[r, 0].set_ylabel(f"{name}\nmemorized", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, outputs, dpi=plots.dpi)
    return top, low

"""What every figure shares: saving in several formats atomically, log axes, images of records."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files: no display, identical output everywhere
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402

from lood.figures.spec import PlotSpec  # noqa: E402
from lood.io import atomic_path  # noqa: E402


def as_image(x: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """A flat record as a displayable image: ``[H, W]`` or ``[H, W, 3]`` with values in [0, 1].

    Channel-first shapes ``(C, H, W)`` are moved last, a single channel is dropped, and a 1-d
    shape becomes a one-row strip. Values are min-max scaled per image (display only).
    """
    shape = tuple(int(s) for s in shape)
    img = np.asarray(x, dtype=np.float64).reshape(shape)
    if img.ndim == 1:
        img = img[None, :]
    elif img.ndim == 3:
        if img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
            img = np.moveaxis(img, 0, -1)
        if img.shape[-1] == 1:
            img = img[..., 0]
        elif img.shape[-1] != 3:
            img = img.mean(-1)
    elif img.ndim > 3:
        img = img.reshape(img.shape[0], -1)
    lo, hi = float(img.min()), float(img.max())
    return (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)


#: The ``plots`` section's schema defaults, for a figure drawn outside the workflow (figures sit
#: beside lood.config, so they do not read the schema; tests/test_figures.py pins the two equal).
DEFAULT_PLOTS = PlotSpec(dpi=150, formats=("png", "pdf"), style="whitegrid", context="paper")


def plot_settings(plots: PlotSpec | None) -> PlotSpec:
    """``plots``, or :data:`DEFAULT_PLOTS` when None."""
    return plots if plots is not None else DEFAULT_PLOTS


def set_theme(plots: PlotSpec | None) -> PlotSpec:
    """Apply the seaborn style and context of ``plots`` (see :func:`plot_settings`); return it."""
    plots = plot_settings(plots)
    sns.set_theme(style=plots.style, context=plots.context)
    return plots


def save_figure(fig: plt.Figure, outputs: Sequence[str | os.PathLike[str]], dpi: int = 150) -> None:
    """Save one figure to several paths (format from the suffix), atomically, then close it."""
    for out in outputs:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, dpi=dpi, format=Path(out).suffix.lstrip(".") or "png")
    plt.close(fig)


def log_axes(ax: plt.Axes, y: bool = False) -> None:
    """Log x (and y) scale with plain-number ticks at 1, 2, 5 x 10^k."""
    ax.set_xscale("log")
    axes = [ax.xaxis]
    if y:
        ax.set_yscale("log")
        axes.append(ax.yaxis)
    for axis in axes:
        axis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())

"""What every figure shares: saving in several formats atomically, log axes, images of records."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files: no display, identical output everywhere
import matplotlib.axis  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.textpath  # noqa: E402
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
#: beside lood.config, so they do not read the schema; tests/unit/figures/test_figures.py pins the two equal).
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


class _PlainLogLocator(matplotlib.ticker.LogLocator):
    """Log ticks at 1, 2, 5 x 10^k where their plain-number labels fit the axis side by side,
    else at powers of ten, every n-th one where even those would run together.

    ``LogLocator(subs=(1, 2, 5))`` alone puts three labels in every decade, however many decades
    the axis spans ("0.00050.0010.002" on a narrow panel), and none at all once it strides.
    """

    def tick_values(self, vmin: float, vmax: float) -> np.ndarray:
        lo, hi = sorted((vmin, vmax))
        candidates = [((1.0, 2.0, 5.0), "auto")] + [((1.0,), n) for n in range(12, 1, -1)]
        for subs, numticks in candidates:
            self.set_params(subs=subs, numticks=numticks)
            ticks = super().tick_values(vmin, vmax)
            shown = ticks[(ticks >= lo * (1 - 1e-9)) & (ticks <= hi * (1 + 1e-9))]
            if self.axis is None or len(shown) >= 2 and self._fits(shown):
                return ticks
        return ticks

    def _fits(self, ticks: np.ndarray) -> bool:
        """Whether %g labels of ``ticks`` fit along the axis with an em of space between them."""
        font = self.axis.majorTicks[0].label1.get_fontproperties()
        size = font.get_size_in_points()
        box = self.axis.axes.bbox
        if isinstance(self.axis, matplotlib.axis.XAxis):
            room = box.width * 72 / self.axis.figure.dpi
            width = matplotlib.textpath.text_to_path.get_text_width_height_descent
            need = sum(width(f"{t:g}", font, ismath=False)[0] + size for t in ticks)
        else:
            room = box.height * 72 / self.axis.figure.dpi
            need = len(ticks) * 2.0 * size
        return need <= room


def log_axes(ax: plt.Axes, y: bool = False) -> None:
    """Log x (and y) scale with plain-number ticks (1, 2, 5 x 10^k, or decades where those
    would crowd the axis)."""
    ax.set_xscale("log")
    axes = [ax.xaxis]
    if y:
        ax.set_yscale("log")
        axes.append(ax.yaxis)
    for axis in axes:
        axis.set_major_locator(_PlainLogLocator())
        axis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())

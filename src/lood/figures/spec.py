"""Parsed ``plots`` section."""

from __future__ import annotations

from dataclasses import dataclass

from lood.settings import Settings


@dataclass(frozen=True)
class PlotSpec(Settings):
    """The ``plots`` section: resolution, file formats and seaborn style of every figure."""

    SECTION = "plots"

    dpi: int
    formats: tuple[str, ...]
    style: str
    context: str

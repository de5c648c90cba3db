"""Parsed ``data`` and ``differ`` sections (no heavy imports: read when the Snakefile is parsed)."""

from __future__ import annotations

from dataclasses import dataclass

from lood.settings import Settings


@dataclass(frozen=True)
class DataSpec(Settings):
    """The ``data`` section: which dataset, which classes, how many records, how normalised."""

    SECTION = "data"

    dataset: str
    path: str | None
    root: str | None
    download: bool
    classes: tuple[int, ...]
    n_train: int
    n_test: int
    balanced: bool
    normalization: str
    seed: int


@dataclass(frozen=True)
class DifferSpec(Settings):
    """The ``differ`` section: the differing records (random, class-balanced, or a user CSV)."""

    SECTION = "differ"

    n: int
    csv: str | None
    strategy: str
    seed: int

"""Parsed ``nngp``, ``landscape`` and ``query`` sections (no jax import)."""

from __future__ import annotations

from dataclasses import dataclass

from lood.settings import Settings


@dataclass(frozen=True)
class NNGPSpec(Settings):
    """The ``nngp`` section of one experiment."""

    SECTION = "nngp"

    sigma2: float
    kernel_batch_size: int
    all_records: bool


@dataclass(frozen=True)
class LandscapeSpec(Settings):
    """The ``landscape`` section: queries x + (t / scale) d around the first differing records."""

    SECTION = "landscape"

    enabled: bool
    n_records: int
    t_min: float
    t_max: float
    n_points: int
    scale: float
    direction_norm: str
    mia: bool
    seed: int


@dataclass(frozen=True)
class QuerySpec(Settings):
    """The ``query`` section: Adam ascent on the KL LOOD of a query set ("reconstruction")."""

    SECTION = "query"

    enabled: bool
    n_records: int
    query_size: int
    init: str
    data_starts: int
    lr: float
    n_steps: int
    patience: int
    tol: float
    seed: int

"""Parsed ``influence`` and ``memorization`` sections (no torch import)."""

from __future__ import annotations

from dataclasses import dataclass

from lood.settings import Settings


@dataclass(frozen=True)
class InfluenceSpec(Settings):
    """The ``influence`` section: TracIn checkpoints and the influence-function solver."""

    SECTION = "influence"

    enabled: bool
    checkpoint_every: int
    damping: float
    method: str
    curvature: str
    cg_max_iter: int
    cg_tol: float
    lissa_depth: int
    lissa_scale: float
    hvp_batch_size: int


@dataclass(frozen=True)
class MemorizationSpec(Settings):
    """The ``memorization`` section: Feldman-Zhang estimates from random-subset models."""

    SECTION = "memorization"

    enabled: bool
    n_models: int
    ratio: float
    seed: int
    top_k: int
    n_examples: int
    save_outputs: bool

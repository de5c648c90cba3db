"""Parsed ``nngp``, ``landscape``, ``query`` and ``onion`` sections (no jax import)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lood.settings import Settings


@dataclass(frozen=True)
class NNGPSpec(Settings):
    """The ``nngp`` section of one experiment."""

    SECTION = "nngp"

    sigma2: float | str  # a number, or "auto" (by the evidence: nngp/sigma2_<kernel>.json)
    depth: int | None  # hidden layers of the kernel's network; None: the model's own
    kernel_batch_size: int
    all_records: bool
    kernel: str  # nngp | ntk: the GP of the lood tables and the onion

    def kernel_model(self, model: Mapping[str, Any]) -> dict[str, Any]:
        """The ``model`` section the kernels are computed for: ``depth`` replaced by
        ``nngp.depth`` when set, so the GP can differ from the trained networks in depth only."""
        out = dict(model)
        if self.depth is not None:
            out["depth"] = self.depth
        return out


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


@dataclass(frozen=True)
class OnionSpec(Settings):
    """The ``onion`` section: peel the ``k`` records of highest LOOD ``n_layers`` times."""

    SECTION = "onion"

    enabled: bool
    n_layers: int
    k: int
    n_show: int

    def check(self, n_train: int) -> None:
        """The layers must leave records to score (privacy_onion needs n_layers * k < N)."""
        if self.n_layers * self.k >= n_train:
            raise ValueError(
                f"onion.k: {self.n_layers} layers of {self.k} records would peel all "
                f"{n_train} training records; need n_layers * k < data.n_train"
            )

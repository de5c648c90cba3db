"""Parsed ``mia``, ``attacks``, ``audit`` and ``inversion`` sections (no torch import)."""

from __future__ import annotations

from dataclasses import dataclass

from lood.settings import Settings


@dataclass(frozen=True)
class MiaSpec(Settings):
    """The ``mia`` section: half splits of the Gaussian likelihood-ratio attack."""

    SECTION = "mia"

    n_splits: int
    seed: int


@dataclass(frozen=True)
class AttacksSpec(Settings):
    """The ``attacks`` section: LiRA and RMIA on the in and out models (:mod:`lood.privacy.attacks`)."""

    SECTION = "attacks"

    enabled: bool
    score: str
    variance: str
    rmia_a: float
    rmia_gamma: float
    free_in: bool
    alphas: tuple[float, ...]


@dataclass(frozen=True)
class AuditSpec(Settings):
    """The ``audit`` section: one-run audit (Steinke, Nasr, Jagielski 2023) of the training."""

    SECTION = "audit"

    enabled: bool
    n_canaries: int | None
    canary: str
    score: str
    k_pos: int | None
    k_neg: int | None
    n_runs: int
    confidence: float
    seed: int

    def sizes(self, n_train: int) -> tuple[int, int, int]:
        """(canaries m, k_pos, k_neg); unset: m = N / 2, k = max(1, m / 10).

        Raises ValueError when there are more canaries than records or more guesses than canaries.
        """
        m = self.n_canaries if self.n_canaries is not None else n_train // 2
        k_def = max(1, m // 10)
        k_pos = self.k_pos if self.k_pos is not None else k_def
        k_neg = self.k_neg if self.k_neg is not None else k_def
        if not 2 <= m <= n_train:
            raise ValueError(
                f"audit.n_canaries: {m} canaries but data.n_train is {n_train}; the canaries are "
                "records of D (allowed 2..n_train)"
            )
        if k_pos + k_neg > m or k_pos + k_neg == 0:
            raise ValueError(
                f"audit.k_pos + audit.k_neg: {k_pos} + {k_neg} guesses; allowed 1..{m} (the canaries)"
            )
        return m, k_pos, k_neg


@dataclass(frozen=True)
class InversionSpec(Settings):
    """The ``inversion`` section: MI-FACE of the first in models of each experiment."""

    SECTION = "inversion"

    enabled: bool
    n_models: int
    lr: float
    n_steps: int
    patience: int
    tol: float
    gamma: float
    l2: float
    tv: float
    init_noise: float
    seed: int

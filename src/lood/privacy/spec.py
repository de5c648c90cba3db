"""Parsed ``mia``, ``attacks``, ``audit``, ``inversion`` and ``panoramia`` sections (no torch
import)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from lood.settings import Settings


@dataclass(frozen=True)
class MiaSpec(Settings):
    """The ``mia`` section: half splits of the Gaussian likelihood-ratio attack and its score
    (``margin`` | ``output_vector``, :func:`lood.privacy.mia.retrained.record_mia`)."""

    SECTION = "mia"

    n_splits: int
    seed: int
    score: str


@dataclass(frozen=True)
class AttacksSpec(Settings):
    """The ``attacks`` section: LiRA and RMIA on the in and out models
    (:mod:`lood.privacy.mia.attacks`)."""

    SECTION = "attacks"

    enabled: bool
    score: str
    variance: str
    rmia_a: float | str  # a number in [0, 1], or "auto" (tuned per record from the others)
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


def member_counts(n: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """Sizes of PANORAMIA's (generator, attack-train, attack-test) parts of ``n`` members.

    ``floor(fraction * n)`` for the two attack parts, the rest of ``round(sum(fractions) * n)``
    for the generator (fractions may sum to less than 1: the remaining records are unused).
    Raises ValueError for other than three fractions, a fraction <= 0, a sum above 1 or an
    empty part.
    """
    if len(fractions) != 3:
        raise ValueError(
            f"fractions must be (generator, attack_train, attack_test), got {tuple(fractions)}"
        )
    f = [float(x) for x in fractions]
    if not (all(math.isfinite(x) and x > 0 for x in f) and sum(f) <= 1.0 + 1e-12):
        raise ValueError(f"fractions must be > 0 and sum to at most 1, got {tuple(fractions)}")
    n = int(n)
    n_train, n_test = int(f[1] * n), int(f[2] * n)
    n_gen = min(round(sum(f) * n), n) - n_train - n_test
    if min(n_gen, n_train, n_test) < 1:
        raise ValueError(f"{n} records are too few for fractions {tuple(fractions)}")
    return n_gen, n_train, n_test


@dataclass(frozen=True)
class GeneratorSpec(Settings):
    """The ``panoramia.generator`` section: the class-conditional VAE and how it samples."""

    SECTION = "panoramia.generator"

    latent_dim: int
    hidden: int
    epochs: int
    batch_size: int
    lr: float
    beta: float
    temperature: float

    def vae_settings(self) -> dict[str, int | float]:
        """Keyword arguments of :class:`lood.privacy.panoramia.generator.VAEConfig` (all but sampling)."""
        return {k: v for k, v in self.to_config().items() if k != "temperature"}


@dataclass(frozen=True)
class PanoramiaSpec(Settings):
    """The ``panoramia`` section: PANORAMIA (Kazmi et al. 2024) of each experiment's in models,
    with generated non-members."""

    SECTION = "panoramia"

    enabled: bool
    fractions: tuple[float, ...]
    n_targets: int
    n_helper: int | None
    generator: GeneratorSpec
    classifier: str
    use_inputs: bool
    confidence: float
    n_thresholds: int
    r_min: int
    correction: str
    n_examples: int
    seed: int

    def sizes(self, n_train: int) -> tuple[int, int, int]:
        """(generator, attack-train, attack-test) members of D; ValueError naming the key."""
        try:
            return member_counts(n_train, self.fractions)
        except ValueError as exc:
            raise ValueError(f"panoramia.fractions: {exc} (data.n_train is {n_train})") from None

    def helper_size(self, n_train: int) -> int:
        """Generated records the helper model trains on (unset: as many as the generator set)."""
        return self.n_helper if self.n_helper is not None else self.sizes(n_train)[0]

"""Parsed training settings: the ``train`` section (with ``train.dp``) as typed objects.

No torch here: the Snakefile and the figure jobs read these settings without paying for the
import. :class:`TrainSpec` is the whole section as the config gives it; :class:`TrainConfig` the
optimisation hyperparameters the ensemble trainers take; :class:`DPConfig` the DP-SGD mechanism
of one job once ``target_epsilon`` has been turned into a noise multiplier (by
:func:`lood.train.dp.dp_config`, which needs Opacus's accountants).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lood.settings import Settings

OPTIMIZERS = ("sgd", "adam")
LOSSES = ("mse", "cross_entropy")
LR_SCHEDULES = ("none", "step", "cosine")  # per-epoch learning-rate schedules
ACCOUNTANTS = ("rdp", "prv")  # Opacus's privacy accountants that lood.train.dp offers
DP_BACKENDS = ("ensemble", "opacus")  # batched DP-SGD, or Opacus one model at a time


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation hyperparameters shared by all models of an ensemble."""

    epochs: int
    lr: float
    batch_size: int
    optimizer: str = "sgd"
    momentum: float = 0.0
    weight_decay: float = 0.0
    loss: str = "mse"
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    lr_schedule: str = "none"
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    shuffle: bool = True
    drop_last: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ValueError(f"train.epochs must be >= 0, got {self.epochs}")
        if not self.lr > 0:
            raise ValueError(f"train.lr must be > 0, got {self.lr}")
        if self.batch_size < 1:
            raise ValueError(f"train.batch_size must be >= 1, got {self.batch_size}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"train.optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"train.loss must be one of {LOSSES}, got {self.loss!r}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"train.momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise ValueError(f"train.weight_decay must be >= 0, got {self.weight_decay}")
        b1, b2 = self.adam_betas
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"train.adam_betas must be in [0, 1), got {self.adam_betas}")
        check_schedule(self.lr_schedule, self.lr_milestones, self.lr_gamma, self.epochs)

    def lr_at(self, epoch: int) -> float:
        """Learning rate of every step of ``epoch`` (0-based).

        ``step``: ``lr * gamma^(number of milestones <= epoch)``, what
        ``torch.optim.lr_scheduler.MultiStepLR`` gives when stepped once after each epoch;
        ``cosine``: ``lr * (1 + cos(pi epoch / epochs)) / 2``, ``CosineAnnealingLR`` with
        ``T_max = epochs`` and ``eta_min = 0`` in closed form; ``none``: ``lr`` itself.
        """
        if self.lr_schedule == "step":
            return self.lr * self.lr_gamma ** sum(m <= epoch for m in self.lr_milestones)
        if self.lr_schedule == "cosine":
            return self.lr * (1.0 + math.cos(math.pi * epoch / self.epochs)) / 2.0
        return self.lr


def check_schedule(schedule: str, milestones: tuple[int, ...], gamma: float, epochs: int) -> None:
    """Errors naming the key for a schedule that cannot mean what the config says."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"train.lr_schedule must be one of {LR_SCHEDULES}, got {schedule!r}")
    if schedule != "step" and milestones:
        raise ValueError(
            f"train.lr_milestones is set ({list(milestones)}) but train.lr_schedule is "
            f"{schedule!r}: milestones only apply to lr_schedule: step"
        )
    if schedule == "step":
        if not milestones:
            raise ValueError(
                "train.lr_schedule: step needs train.lr_milestones (epochs, e.g. [25, 35])"
            )
        if list(milestones) != sorted(set(milestones)):
            raise ValueError(
                f"train.lr_milestones must be strictly increasing, got {list(milestones)}"
            )
        late = [m for m in milestones if not 1 <= m < epochs]
        if late:
            raise ValueError(
                f"train.lr_milestones {late} are outside 1..epochs-1 = 1..{epochs - 1}: "
                "a milestone at epoch m lowers the rate from the (m+1)-th epoch on"
            )
        if not 0 < gamma:
            raise ValueError(f"train.lr_gamma must be > 0, got {gamma}")


@dataclass(frozen=True)
class DPConfig:
    """DP-SGD settings of a training run: noise multiplier sigma, clipping norm C, delta."""

    noise_multiplier: float
    max_grad_norm: float
    delta: float
    accountant: str = "rdp"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.noise_multiplier) and self.noise_multiplier > 0):
            raise ValueError(
                f"train.dp.noise_multiplier must be a finite number > 0 (0 gives no privacy: "
                f"disable train.dp instead), got {self.noise_multiplier}"
            )
        if not (math.isfinite(self.max_grad_norm) and self.max_grad_norm > 0):
            raise ValueError(f"train.dp.max_grad_norm must be > 0, got {self.max_grad_norm}")
        if not 0 < self.delta < 1:
            raise ValueError(f"train.dp.delta must be in (0, 1), got {self.delta}")
        if self.accountant not in ACCOUNTANTS:
            raise ValueError(
                f"train.dp.accountant must be one of {ACCOUNTANTS}, got {self.accountant!r}"
            )


@dataclass(frozen=True)
class DPSpec(Settings):
    """The ``train.dp`` section: DP-SGD for every model an experiment trains."""

    SECTION = "train.dp"

    enabled: bool
    noise_multiplier: float
    max_grad_norm: float
    delta: float
    accountant: str
    target_epsilon: float | None
    backend: str

    def check(self, n_train: int, shuffle: bool = True, drop_last: bool = False) -> None:
        """What the schema cannot check: delta below 1/N (a delta of 1/N or more allows
        releasing a random record in the clear); DP-SGD's Poisson batches are random (so no
        fixed batches and no last batch to drop)."""
        if self.enabled and not shuffle:
            raise ValueError(
                "train.shuffle: false (fixed batches) does not go with train.dp: DP-SGD draws "
                "Poisson batches, and its accounting assumes them"
            )
        if self.enabled and drop_last:
            raise ValueError(
                "train.drop_last: true does not go with train.dp: DP-SGD's Poisson batches have "
                "no last batch (Opacus's DPDataLoader has no drop_last either)"
            )
        if self.enabled and not self.delta < 1.0 / n_train:
            raise ValueError(
                f"train.dp.delta must be in (0, 1/n_train = {1.0 / n_train:.3g}), got "
                f"{self.delta}: a delta of 1/N or more allows releasing a random record in the clear"
            )


@dataclass(frozen=True)
class TrainSpec(Settings):
    """The ``train`` section of one experiment."""

    SECTION = "train"

    n_in: int
    n_out: int
    epochs: int
    batch_size: int
    lr: float
    optimizer: str
    momentum: float
    weight_decay: float
    loss: str
    lr_schedule: str
    lr_milestones: tuple[int, ...]
    lr_gamma: float
    shuffle: bool
    drop_last: bool
    seed: int
    shard_size: int
    chunk_size: int
    save_out_weights: bool
    device: str
    dp: DPSpec

    @property
    def optimization(self) -> TrainConfig:
        """The hyperparameters the ensemble trainers take."""
        return TrainConfig(
            epochs=self.epochs,
            lr=self.lr,
            batch_size=self.batch_size,
            optimizer=self.optimizer,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            loss=self.loss,
            lr_schedule=self.lr_schedule,
            lr_milestones=self.lr_milestones,
            lr_gamma=self.lr_gamma,
            shuffle=self.shuffle,
            drop_last=self.drop_last,
        )

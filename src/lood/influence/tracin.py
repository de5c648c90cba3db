"""TracIn (Pruthi et al. 2020): self-influence summed over training checkpoints, and the
checkpoints themselves (saved as safetensors).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lood.arch import Architecture
from lood.influence.autodiff import cast_params, per_example_grads, unstack
from lood.train.models import Params, load_params, n_models, save_params


def tracin_contributions(
    checkpoints: Sequence[Params],
    lrs: Sequence[float] | float,
    arch: Architecture,
    loss: str,
    x: torch.Tensor,
    y: torch.Tensor,
    dtype: torch.dtype = torch.float64,
) -> np.ndarray:
    """``lr_c * |grad loss(theta_c, x_i)|^2`` per checkpoint c and record i, ``[n_ckpt, B]``.

    The TracIn self-influence is the sum over checkpoints (axis 0).
    """
    lrs = [float(lrs)] * len(checkpoints) if np.isscalar(lrs) else [float(v) for v in lrs]
    if len(lrs) != len(checkpoints):
        raise ValueError(f"need one learning rate per checkpoint: {len(checkpoints)} vs {len(lrs)}")
    x = x.to(dtype)
    out = np.zeros((len(checkpoints), x.shape[0]))
    for c, (params, lr) in enumerate(zip(checkpoints, lrs, strict=True)):
        g = per_example_grads(cast_params(params, dtype, x.device), arch, loss, x, y)
        out[c] = lr * g.square().sum(1).cpu().numpy()
    return out


def tracin_self_influence(
    checkpoints: Sequence[Params],
    lrs: Sequence[float] | float,
    arch: Architecture,
    loss: str,
    x: torch.Tensor,
    y: torch.Tensor,
) -> np.ndarray:
    """TracIn-CP self-influence ``sum_c lr_c |grad loss(theta_c, x_i)|^2`` of each record ``[B]``."""
    return tracin_contributions(checkpoints, lrs, arch, loss, x, y).sum(0)


# ------------------------------------------------------------------------------ checkpoints
@dataclass
class Checkpoints:
    """Parameters of one training run saved at several epochs (stacked ``[n_ckpt, ...]``)."""

    params: Params
    epochs: np.ndarray  # [n_ckpt] number of epochs completed at each checkpoint
    arch: Architecture
    lr: float  # train.lr, the base rate
    loss: str
    weight_decay: float
    lrs: np.ndarray | None = None  # [n_ckpt] rate of the epoch ending at each (a schedule)

    @property
    def checkpoint_lrs(self) -> list[float]:
        """TracIn's learning rate of each checkpoint: that of the epoch the checkpoint ends."""
        if self.lrs is None:
            return [float(self.lr)] * len(self.epochs)
        return [float(v) for v in self.lrs]

    def models(self) -> list[Params]:
        return [unstack(self.params, c) for c in range(n_models(self.params))]

    @property
    def final(self) -> Params:
        return unstack(self.params, n_models(self.params) - 1)

    def save(self, path: str | Path) -> None:
        meta = {
            "architecture": json.dumps(self.arch.to_dict(), sort_keys=True),
            "epochs": json.dumps([int(e) for e in self.epochs]),
            "lr": repr(float(self.lr)),
            "loss": self.loss,
            "weight_decay": repr(float(self.weight_decay)),
            "lrs": json.dumps([repr(v) for v in self.checkpoint_lrs]),
        }
        save_params(path, self.params, meta)

    @classmethod
    def load(cls, path: str | Path) -> Checkpoints:
        params, meta = load_params(path)
        try:
            return cls(
                params=params,
                epochs=np.asarray(json.loads(meta["epochs"]), dtype=np.int64),
                arch=Architecture(**json.loads(meta["architecture"])),
                lr=float(meta["lr"]),
                loss=meta["loss"],
                weight_decay=float(meta["weight_decay"]),
                lrs=np.asarray([float(v) for v in json.loads(meta["lrs"])])
                if "lrs" in meta
                else None,
            )
        except KeyError as exc:
            raise ValueError(f"{path}: not a checkpoint file (metadata {exc} missing)") from exc


def checkpoint_epochs(epochs: int, every: int) -> list[int]:
    """Epoch counts (1-based) after which a checkpoint is kept: every ``every``, and the last."""
    if every < 1:
        raise ValueError(f"influence.checkpoint_every must be >= 1, got {every}")
    keep = [e for e in range(1, epochs + 1) if e % every == 0]
    if epochs >= 1 and (not keep or keep[-1] != epochs):
        keep.append(epochs)
    return keep

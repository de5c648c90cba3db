"""Functional views of one stacked network for ``torch.func``: unstack/stack, per-example losses
and gradients, flat parameter vectors.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.func import grad, vmap

from lood.arch import Architecture
from lood.train.models import Params, forward


# ------------------------------------------------------------------------------ single model
def unstack(params: Params, k: int = 0) -> Params:
    """Parameters of model ``k`` of a stacked ensemble (views, leading axis removed)."""
    return {name: p[k] for name, p in params.items()}


def stack(models: Sequence[Params]) -> Params:
    """Stack single-model parameter dicts into the ensemble layout ``[K, ...]``."""
    return {name: torch.stack([m[name] for m in models]) for name in models[0]}


def model_outputs(params: Params, arch: Architecture, x: torch.Tensor) -> torch.Tensor:
    """Outputs ``[B, C]`` of one model (unstacked params) on ``x`` ``[B, d]``."""
    stacked = {name: p.unsqueeze(0) for name, p in params.items()}
    return forward(stacked, arch, x.unsqueeze(0))[0]


def example_losses(
    params: Params, arch: Architecture, loss: str, x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """Training loss of every example ``[B]`` (same definition as :mod:`lood.train.ensemble`)."""
    out = model_outputs(params, arch, x)
    if loss == "mse":
        classes = torch.arange(arch.n_outputs, device=y.device)  # one_hot is not vmap-able
        target = (y.unsqueeze(-1) == classes).to(out.dtype) - 1.0 / arch.n_outputs
        return 0.5 * (out - target).square().sum(-1)
    if loss == "cross_entropy":
        return -torch.log_softmax(out, dim=-1).gather(-1, y.unsqueeze(-1)).squeeze(-1)
    raise ValueError(f"loss must be 'mse' or 'cross_entropy', got {loss!r}")


def mean_loss(
    params: Params, arch: Architecture, loss: str, x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """Mean training loss over ``x``, ``y`` (a scalar)."""
    return example_losses(params, arch, loss, x, y).mean()


def flatten(params: Params) -> torch.Tensor:
    """All parameters as one vector ``[P]`` (dict order)."""
    return torch.cat([p.reshape(-1) for p in params.values()])


def unflatten(vec: torch.Tensor, like: Params) -> Params:
    """Inverse of :func:`flatten` for parameters shaped as ``like``."""
    out, i = {}, 0
    for name, p in like.items():
        out[name] = vec[i : i + p.numel()].view(p.shape)
        i += p.numel()
    if i != vec.shape[-1]:
        raise ValueError(f"vector has {vec.shape[-1]} entries, parameters {i}")
    return out


def cast_params(params: Params, dtype: torch.dtype, device: torch.device | str) -> Params:
    return {n: p.detach().to(device=device, dtype=dtype) for n, p in params.items()}


# ------------------------------------------------------------------------------ gradients
def per_example_grads(
    params: Params,
    arch: Architecture,
    loss: str,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = 256,
) -> torch.Tensor:
    """Flattened loss gradient of every example, ``[B, P]``, by ``vmap(grad(.))``."""

    def one(p: Params, xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        return example_losses(p, arch, loss, xi.unsqueeze(0), yi.unsqueeze(0))[0]

    per_ex = vmap(grad(one), in_dims=(None, 0, 0))
    parts = []
    for i in range(0, x.shape[0], batch_size):
        g = per_ex(params, x[i : i + batch_size], y[i : i + batch_size])
        parts.append(torch.cat([g[n].reshape(g[n].shape[0], -1) for n in params], dim=1))
    if not parts:
        return torch.zeros(0, sum(p.numel() for p in params.values()), dtype=x.dtype)
    return torch.cat(parts)

"""Influence estimates of training records: TracIn and influence functions (self-influence).

Both are computed on one network trained on all of D with the experiment's architecture and
training settings; they are compared with the prediction difference of retrained models and with
NNGP LOOD (the paper's "LOOD as influence" comparison).

* **TracIn** (Pruthi et al. 2020, TracIn-CP): the self-influence of record z is
  ``sum_c lr_c * |grad_theta loss(theta_c, z)|^2`` over checkpoints theta_c saved during training.
* **Influence function** (Koh and Liang 2017): ``g^T (H + damping I)^-1 g`` with
  ``g = grad_theta loss(theta, z)`` at the final parameters and ``H`` the Hessian of the mean
  training loss over D. ``(H + damping I)^-1 g`` is found by conjugate gradient (all records at
  once, one batched Hessian-vector product per iteration) or by LiSSA (a Neumann series); the
  Hessian is never formed. Removing z from D moves the loss at z by about ``1/N`` times this score.

Parameters of a *single* model are a dict of unstacked tensors (``W0`` [d, width], ...), i.e. one
slice ``k`` of the stacked ensemble layout of :mod:`lood.models`. Per-example gradients use
``torch.func.vmap(grad(...))``, Hessian-vector products ``torch.func.jvp`` of ``grad``
(forward-over-reverse). The loss is the training loss of the experiment (per example, as the
ensemble trainer): ``mse`` = ``0.5 |f(x) - (onehot(y) - 1/C)|^2``, or ``cross_entropy``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.func import grad, jvp, vjp, vmap

from .arch import Architecture
from .dp import DPConfig
from .ensemble import TrainConfig, train_ensemble
from .models import Params, forward, load_params, n_models, save_params

METHODS = ("cg", "lissa")
CURVATURES = ("hessian", "gauss_newton")

Operator = Callable[[torch.Tensor], torch.Tensor]


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
    """Training loss of every example ``[B]`` (same definition as :mod:`lood.ensemble`)."""
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


def _as(params: Params, dtype: torch.dtype, device: torch.device | str) -> Params:
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
        g = per_example_grads(_as(params, dtype, x.device), arch, loss, x, y)
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


# ------------------------------------------------------------------------------ Hessian
def _vector_or_block(single: Callable[[torch.Tensor], torch.Tensor]) -> Operator:
    """An operator taking one vector ``[P]`` or a block ``[P, m]`` (columns vmapped)."""
    batched = vmap(single, in_dims=1, out_dims=1)

    def op(v: torch.Tensor) -> torch.Tensor:
        return single(v) if v.dim() == 1 else batched(v)

    return op


def hvp_operator(
    params: Params,
    arch: Architecture,
    loss: str,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = 0,
) -> Operator:
    """``v -> H v`` for H the Hessian of the mean loss over (x, y) at ``params``.

    ``v`` is ``[P]`` or a block ``[P, m]`` (m products at once, vmapped). Forward-over-reverse
    (``jvp`` of ``grad``); ``batch_size > 0`` sums over blocks of the data (bounded memory).
    """
    flat0 = flatten(params).detach()
    n = x.shape[0]
    step = n if batch_size <= 0 else int(batch_size)
    blocks = [(x[i : i + step], y[i : i + step]) for i in range(0, n, step)]

    def single(v: torch.Tensor) -> torch.Tensor:
        total = torch.zeros_like(v)
        for xb, yb in blocks:

            def f(flat: torch.Tensor, xb=xb, yb=yb) -> torch.Tensor:
                return mean_loss(unflatten(flat, params), arch, loss, xb, yb)

            total = total + (xb.shape[0] / n) * jvp(grad(f), (flat0,), (v,))[1]
        return total

    return _vector_or_block(single)


def ggn_operator(
    params: Params,
    arch: Architecture,
    loss: str,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = 0,
) -> Operator:
    """``v -> G v`` for G the generalised Gauss-Newton matrix of the mean loss, ``J^T H_out J / N``.

    J is the Jacobian of the outputs w.r.t. the parameters and H_out the Hessian of the loss
    w.r.t. the outputs (identity for mse, ``diag(p) - p p^T`` for cross-entropy). G is positive
    semi-definite, so ``G + damping I`` is positive definite even away from a minimum, where the
    Hessian is indefinite. Same ``v`` shapes and ``batch_size`` as :func:`hvp_operator`.
    """
    flat0 = flatten(params).detach()
    n = x.shape[0]
    step = n if batch_size <= 0 else int(batch_size)
    blocks = []
    for i in range(0, n, step):
        xb = x[i : i + step]

        def f(flat: torch.Tensor, xb=xb) -> torch.Tensor:
            return model_outputs(unflatten(flat, params), arch, xb)

        out, pullback = vjp(f, flat0)
        probs = torch.softmax(out, dim=-1).detach() if loss == "cross_entropy" else None
        blocks.append((f, pullback, probs))

    def single(v: torch.Tensor) -> torch.Tensor:
        total = torch.zeros_like(v)
        for f, pullback, probs in blocks:
            jv = jvp(f, (flat0,), (v,))[1]  # [B, C]
            if probs is not None:
                jv = probs * jv - probs * (probs * jv).sum(-1, keepdim=True)
            total = total + pullback(jv)[0] / n
        return total

    return _vector_or_block(single)


@dataclass
class SolveResult:
    """Solution ``x`` of ``A x = b`` (``[P]`` or ``[P, m]``) with per-column diagnostics."""

    x: torch.Tensor
    iterations: np.ndarray  # [m] iterations (CG) or depth (LiSSA) used
    residual: np.ndarray  # [m] relative residual |A x - b| / |b|
    converged: np.ndarray  # [m] bool
    negative_curvature: np.ndarray  # [m] bool: CG met p^T A p <= 0 (A not positive definite)


def _columns(b: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if b.dim() == 1:
        return b.unsqueeze(1), True
    if b.dim() != 2:
        raise ValueError(f"right-hand side must be [P] or [P, m], got {tuple(b.shape)}")
    return b, False


def _rel_residual(matvec: Operator, x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    bnorm = b.norm(dim=0).clamp_min(torch.finfo(b.dtype).tiny)
    return (matvec(x) - b).norm(dim=0) / bnorm


def conjugate_gradient(
    matvec: Operator, b: torch.Tensor, tol: float = 1e-6, max_iter: int = 100
) -> SolveResult:
    """Solve ``A x = b`` for a symmetric positive definite operator, every column of b at once.

    Column j stops when ``|r_j| <= tol |b_j|`` or when it meets a direction with
    ``p^T A p <= 0`` (then A is not positive definite there: raise the damping); ``matvec`` takes
    a block ``[P, m]``. The reported residual is recomputed from the final x.
    """
    bb, squeeze = _columns(b)
    m = bb.shape[1]
    x = torch.zeros_like(bb)
    r = bb.clone()
    p = r.clone()
    rs = (r * r).sum(0)
    bnorm = bb.norm(dim=0)
    active = rs.sqrt() > tol * bnorm
    iters = torch.zeros(m, dtype=torch.int64)
    negative = torch.zeros(m, dtype=torch.bool)
    for _ in range(int(max_iter)):
        if not bool(active.any()):
            break
        ap = matvec(p)
        pap = (p * ap).sum(0)
        bad = active & (pap <= 0)
        negative |= bad.cpu()
        step = active & ~bad
        alpha = torch.where(step, rs / torch.where(step, pap, 1.0), 0.0)
        x = x + alpha * p
        r = r - alpha * ap
        rs_new = (r * r).sum(0)
        beta = torch.where(step, rs_new / torch.where(step, rs, 1.0), 0.0)
        p = r + beta * p
        rs = torch.where(step, rs_new, rs)
        iters += step.cpu().to(torch.int64)
        active = step & (rs.sqrt() > tol * bnorm)
    res = _rel_residual(matvec, x, bb).cpu().numpy()
    return SolveResult(
        x=x[:, 0] if squeeze else x,
        iterations=iters.numpy(),
        residual=res,
        converged=(res <= tol * 10) & ~negative.numpy(),
        negative_curvature=negative.numpy(),
    )


def lissa(
    matvec: Operator, b: torch.Tensor, scale: float, depth: int, tol: float = 0.0
) -> SolveResult:
    """Solve ``A x = b`` by the LiSSA recursion ``h <- b + h - A h / scale``, ``x = h / scale``.

    A Neumann series for ``(A / scale)^-1``: it converges when the eigenvalues of A lie in
    ``(0, 2 scale)``, at rate ``1 - lambda_min / scale`` per step. Here A is the exact (full-batch)
    damped Hessian, so the recursion is deterministic. Stops early when every column's relative
    change falls below ``tol``. Raises FloatingPointError when the series diverges.
    """
    if scale <= 0 or depth < 1:
        raise ValueError(f"LiSSA needs scale > 0 and depth >= 1, got {scale}, {depth}")
    bb, squeeze = _columns(b)
    h = bb.clone()
    used = 0
    for used in range(1, int(depth) + 1):  # noqa: B007 - the depth reached is reported
        h_new = bb + h - matvec(h) / scale
        change = (h_new - h).norm(dim=0) / h_new.norm(dim=0).clamp_min(1e-300)
        h = h_new
        if not bool(torch.isfinite(h).all()):
            raise FloatingPointError(
                f"LiSSA diverged after {used} steps; increase influence.lissa_scale (it must "
                "exceed half the largest eigenvalue of the damped Hessian)"
            )
        if tol > 0 and bool((change <= tol).all()):
            break
    x = h / scale
    res = _rel_residual(matvec, x, bb).cpu().numpy()
    m = bb.shape[1]
    return SolveResult(
        x=x[:, 0] if squeeze else x,
        iterations=np.full(m, used),
        residual=res,
        converged=res <= max(tol, 1e-3),
        negative_curvature=np.zeros(m, dtype=bool),
    )


@dataclass
class InfluenceResult:
    """Influence-function self-influence of each query record and solver diagnostics."""

    self_influence: np.ndarray  # [B] g^T (H + damping I)^-1 g
    grad_norm: np.ndarray  # [B] |g|
    loss: np.ndarray  # [B] loss at the record
    solve: SolveResult


def influence_self(
    params: Params,
    arch: Architecture,
    loss: str,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_query: torch.Tensor,
    y_query: torch.Tensor,
    damping: float,
    method: str = "cg",
    curvature: str = "hessian",
    cg_tol: float = 1e-6,
    cg_max_iter: int = 100,
    lissa_scale: float = 10.0,
    lissa_depth: int = 1000,
    hvp_batch_size: int = 0,
    dtype: torch.dtype = torch.float64,
) -> InfluenceResult:
    """Koh-Liang self-influence ``g^T (H + damping I)^-1 g`` of each query record.

    H is the Hessian of the mean training loss over (x_train, y_train) at ``params`` (one model,
    unstacked), or its Gauss-Newton approximation (``curvature="gauss_newton"``, always positive
    semi-definite); g the loss gradient at the query record. Computed in ``dtype`` (float64).
    """
    if method not in METHODS:
        raise ValueError(f"influence.method must be one of {METHODS}, got {method!r}")
    if curvature not in CURVATURES:
        raise ValueError(f"influence.curvature must be one of {CURVATURES}, got {curvature!r}")
    if damping < 0:
        raise ValueError(f"influence.damping must be >= 0, got {damping}")
    device = x_train.device
    p = _as(params, dtype, device)
    xt, xq = x_train.to(dtype), x_query.to(dtype)
    make = hvp_operator if curvature == "hessian" else ggn_operator
    hvp = make(p, arch, loss, xt, y_train, batch_size=hvp_batch_size)

    def damped(v: torch.Tensor) -> torch.Tensor:
        return hvp(v) + damping * v

    g = per_example_grads(p, arch, loss, xq, y_query)  # [B, P]
    with torch.no_grad():
        losses = example_losses(p, arch, loss, xq, y_query).cpu().numpy()
    if method == "cg":
        sol = conjugate_gradient(damped, g.T, tol=cg_tol, max_iter=cg_max_iter)
    else:
        sol = lissa(damped, g.T, scale=lissa_scale, depth=lissa_depth, tol=cg_tol)
    scores = (g.T * sol.x).sum(0)
    return InfluenceResult(
        self_influence=scores.detach().cpu().numpy(),
        grad_norm=g.norm(dim=1).detach().cpu().numpy(),
        loss=losses,
        solve=sol,
    )


# ------------------------------------------------------------------------------ checkpoints
@dataclass
class Checkpoints:
    """Parameters of one training run saved at several epochs (stacked ``[n_ckpt, ...]``)."""

    params: Params
    epochs: np.ndarray  # [n_ckpt] number of epochs completed at each checkpoint
    arch: Architecture
    lr: float
    loss: str
    weight_decay: float

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


def train_with_checkpoints(
    arch: Architecture,
    tcfg: TrainConfig,
    x: torch.Tensor,
    y: torch.Tensor,
    seed: int,
    every: int = 1,
    device: str = "cpu",
    progress=None,
    dp: DPConfig | None = None,
) -> tuple[Checkpoints, float]:
    """Train one model on all of (x, y) and keep its parameters every ``every`` epochs.

    Returns the checkpoints and the final training loss. Uses :func:`lood.ensemble.train_ensemble`
    (K = 1), so the model is trained exactly as the in models are (with DP-SGD when ``dp``).
    """
    keep = set(checkpoint_epochs(tcfg.epochs, every))
    saved: list[Params] = []
    epochs: list[int] = []

    def hook(epoch: int, params: Params) -> None:
        if epoch + 1 in keep:
            saved.append(unstack(params, 0))
            epochs.append(epoch + 1)

    result = train_ensemble(
        arch,
        tcfg,
        x,
        y,
        np.ones((1, x.shape[0]), dtype=bool),
        [int(seed)],
        device=device,
        progress=progress,
        on_epoch_end=hook,
        dp=dp,
    )
    ckpts = Checkpoints(
        params=stack(saved),
        epochs=np.asarray(epochs, dtype=np.int64),
        arch=arch,
        lr=tcfg.lr,
        loss=tcfg.loss,
        weight_decay=tcfg.weight_decay,
    )
    loss = float(result.final_train_loss[0])
    if not math.isfinite(loss):
        raise FloatingPointError("influence model: non-finite final training loss")
    return ckpts, loss

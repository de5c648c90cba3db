"""Influence functions (Koh and Liang 2017): self-influence g^T (H + damping I)^-1 g with
Hessian- or Gauss-Newton-vector products by ``torch.func`` and conjugate gradient or LiSSA.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.func import grad, jvp, vjp, vmap

from lood.arch import Architecture
from lood.influence.autodiff import (
    cast_params,
    example_losses,
    flatten,
    mean_loss,
    model_outputs,
    per_example_grads,
    unflatten,
)
from lood.influence.spec import InfluenceSpec
from lood.train.models import Params

METHODS = ("cg", "lissa")


CURVATURES = ("hessian", "gauss_newton")


Operator = Callable[[torch.Tensor], torch.Tensor]


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
    spec: InfluenceSpec,
) -> InfluenceResult:
    """Koh-Liang self-influence ``g^T (H + damping I)^-1 g`` of each query record.

    H is the Hessian of the mean training loss over (x_train, y_train) at ``params`` (one model,
    unstacked), or its Gauss-Newton approximation (``curvature="gauss_newton"``, always positive
    semi-definite); g the loss gradient at the query record. ``spec`` gives the damping, the
    solver (``method``: cg or lissa, with ``cg_tol``, ``cg_max_iter``, ``lissa_scale``,
    ``lissa_depth``), the ``curvature`` and ``hvp_batch_size``. Computed in float64.
    """
    damping, method, curvature = spec.damping, spec.method, spec.curvature
    dtype = torch.float64
    if method not in METHODS:
        raise ValueError(f"influence.method must be one of {METHODS}, got {method!r}")
    if curvature not in CURVATURES:
        raise ValueError(f"influence.curvature must be one of {CURVATURES}, got {curvature!r}")
    if damping < 0:
        raise ValueError(f"influence.damping must be >= 0, got {damping}")
    device = x_train.device
    p = cast_params(params, dtype, device)
    xt, xq = x_train.to(dtype), x_query.to(dtype)
    make = hvp_operator if curvature == "hessian" else ggn_operator
    hvp = make(p, arch, loss, xt, y_train, batch_size=spec.hvp_batch_size)

    def damped(v: torch.Tensor) -> torch.Tensor:
        return hvp(v) + damping * v

    g = per_example_grads(p, arch, loss, xq, y_query)  # [B, P]
    with torch.no_grad():
        losses = example_losses(p, arch, loss, xq, y_query).cpu().numpy()
    if method == "cg":
        sol = conjugate_gradient(damped, g.T, tol=spec.cg_tol, max_iter=spec.cg_max_iter)
    else:
        sol = lissa(damped, g.T, scale=spec.lissa_scale, depth=spec.lissa_depth, tol=spec.cg_tol)
    scores = (g.T * sol.x).sum(0)
    return InfluenceResult(
        self_influence=scores.detach().cpu().numpy(),
        grad_norm=g.norm(dim=1).detach().cpu().numpy(),
        loss=losses,
        solve=sol,
    )

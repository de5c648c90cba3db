"""MI-FACE model inversion (Fredrikson, Jha & Ristenpart, CCS 2015) of stacked-ensemble networks.

For a model f and a target class c, MI-FACE searches for the input the model finds most typical
of c: projected gradient descent from ``x0`` on

    cost(x) = 1 - softmax(f(x))_c + l2 * ||x||^2 / d + tv * TV(x) ,

with x projected onto a box ``[lo, hi]`` (e.g. the per-pixel range of the training data) after
every step. TV is the anisotropic total variation of x seen as an image: the summed absolute
differences of neighbouring pixels along the spatial axes, divided by d like the l2 term.
The best x seen is kept. Stops after ``n_steps`` steps, when the best cost has not improved by a
relative ``tol`` for ``patience`` consecutive steps, or when it is <= ``gamma``.

All K models of a stacked parameter dict (see :mod:`lood.train.models`) and all C classes are inverted
in one batched autograd pass over x ``[K, C, d]``. Every (model, class) pair has its own best
point, stopping rule and step count: a pair that stops is frozen while the others go on, so the
result for one model does not depend on the other models of the ensemble.

Inputs live in the models' (normalised) feature space; with standardised data, ``x0 = 0`` is the
mean image. Map reconstructions back with :meth:`lood.data.Split.unnormalize` before plotting.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lood.arch import Architecture
from lood.ascent import improves
from lood.privacy.spec import InversionSpec
from lood.train.models import Params, forward, n_models

Bound = np.ndarray | float


@dataclass
class InversionResult:
    """What :func:`mi_face` returns; arrays are indexed by model k, then target class c.

    ``x`` [K, C, d] best inputs found, ``cost`` [K, C] their cost, ``confidence`` [K, C] the
    softmax probability of the target class there, ``n_steps`` [K, C] gradient steps taken,
    ``history`` [T] the mean cost over all pairs at each evaluation (a stopped pair keeps its
    last cost), ``cost_history`` [T, K, C] each pair's cost at each evaluation (NaN once stopped).
    """

    x: np.ndarray
    cost: np.ndarray
    confidence: np.ndarray
    n_steps: np.ndarray
    history: np.ndarray
    cost_history: np.ndarray

    @property
    def best_step(self) -> np.ndarray:
        """[K, C] evaluation index at which each pair's best x was found."""
        return np.nanargmin(np.where(np.isnan(self.cost_history), np.inf, self.cost_history), 0)


def _spatial_axes(image_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Axes of ``image_shape`` along which neighbouring pixels are compared.

    Same convention as :func:`lood.memorization_plots.as_image`: ``(H, W)``, channels last
    ``(H, W, C)``, or channels first ``(C, H, W)`` when the first axis is 1 or 3 and the last not.
    """
    if len(image_shape) == 1:
        return (0,)
    if len(image_shape) == 2:
        return (0, 1)
    if len(image_shape) == 3 and image_shape[0] in (1, 3) and image_shape[-1] not in (1, 3):
        return (1, 2)
    return (0, 1)


def total_variation(x: torch.Tensor, image_shape: Sequence[int]) -> torch.Tensor:
    """Anisotropic total variation / d of flat images: x ``[..., d]`` -> ``[...]``.

    Sum over the spatial axes of ``|x[i + 1] - x[i]|`` (over all other axes too), divided by d.
    """
    shape = tuple(int(s) for s in image_shape)
    d = x.shape[-1]
    lead = x.shape[:-1]
    img = x.reshape(*lead, *shape)
    off = len(lead)
    tv = x.new_zeros(lead)
    for ax in _spatial_axes(shape):
        diff = torch.diff(img, dim=off + ax).abs()
        tv = tv + diff.reshape(*lead, -1).sum(-1)
    return tv / d


def _cost(
    params: Params,
    arch: Architecture,
    x: torch.Tensor,
    l2: float,
    tv: float,
    image_shape: tuple[int, ...] | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """MI-FACE cost and target-class confidence of every pair: x ``[K, C, d]`` -> two ``[K, C]``."""
    k, c, d = x.shape
    probs = torch.softmax(forward(params, arch, x), dim=-1)  # [K, C, n_outputs]
    target = torch.zeros(c, probs.shape[-1], dtype=torch.bool, device=x.device)
    target[torch.arange(c), torch.arange(c)] = True
    conf = probs[:, target]  # [K, C]: probability of class c in row c
    # 1 - p_c as the sum of the other probabilities: exact in float even when p_c rounds to 1
    cost = probs.masked_fill(target, 0.0).sum(-1)
    if l2:
        cost = cost + l2 * x.square().sum(-1) / d
    if tv:
        assert image_shape is not None
        cost = cost + tv * total_variation(x, image_shape)
    return cost, conf


def pixel_bounds(x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature (min, max) of the training inputs ``[N, d]``: MI-FACE's default box."""
    x = np.asarray(x_train, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"x_train must be a non-empty [N, d] array, got shape {x.shape}")
    return x.min(axis=0), x.max(axis=0)


def _bound_vector(value: Bound, d: int, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(d, float(arr))
    if arr.shape != (d,):
        raise ValueError(f"bounds: {name} must be a scalar or have shape [{d}], got {arr.shape}")
    if np.isnan(arr).any():
        raise ValueError(f"bounds: {name} contains NaN")
    return arr


def _check_params(params: Params, arch: Architecture) -> int:
    """Input dimension d of the stacked ``params``, checked against ``arch``."""
    if "W0" not in params or f"W{arch.depth}" not in params:
        raise ValueError(
            f"params: expected W0..W{arch.depth} for depth {arch.depth}, got {sorted(params)}"
        )
    w0, out = params["W0"], params[f"W{arch.depth}"]
    if w0.dim() != 3 or out.shape[-1] != arch.n_outputs:
        raise ValueError(
            f"params: W0 must be [K, d, width] and W{arch.depth} end in n_outputs="
            f"{arch.n_outputs}; got {tuple(w0.shape)} and {tuple(out.shape)}"
        )
    return int(w0.shape[1])


def mi_face(
    params: Params,
    arch: Architecture,
    spec: InversionSpec,
    n_classes: int | None = None,
    x_init: np.ndarray | None = None,
    image_shape: tuple[int, ...] | None = None,
    bounds: tuple[Bound, Bound] | None = None,
    logger: logging.Logger | None = None,
) -> InversionResult:
    """Invert every model of ``params`` for each of the first ``n_classes`` classes (MI-FACE).

    ``spec`` (the ``inversion`` section) gives the step size ``lr``, the stopping rules
    (``n_steps``, ``patience``, ``tol``, ``gamma``) and the weights ``l2`` and ``tv``, all
    range-checked by the config schema. ``n_classes`` defaults to ``arch.n_outputs`` (the
    softmax is always over all outputs). ``x_init``: start point ``[d]``, ``[C, d]`` (one per
    class) or ``[K, C, d]``; default zeros (the mean image of standardised data). ``bounds``:
    (lo, hi), each a scalar or ``[d]`` (see :func:`pixel_bounds`); None means unconstrained. The
    start point is projected onto the box too. ``tv`` > 0 needs ``image_shape``. Runs on the
    device and in the dtype of ``params``; deterministic on CPU. See the module docstring for
    the cost and the stopping rules.
    """
    log = logger or logging.getLogger("lood.inversion")
    lr, n_steps, patience, tol, gamma = spec.lr, spec.n_steps, spec.patience, spec.tol, spec.gamma
    l2, tv = spec.l2, spec.tv
    # the schema bounds each setting but lets NaN (and inf) through
    for name, value in (("lr", lr), ("l2", l2), ("tv", tv), ("tol", tol), ("gamma", gamma)):
        if math.isnan(value) or (name in ("lr", "l2", "tv") and math.isinf(value)):
            raise ValueError(f"inversion.{name} must be a finite number, got {value}")
    d = _check_params(params, arch)
    k = n_models(params)
    c = arch.n_outputs if n_classes is None else int(n_classes)
    if not 1 <= c <= arch.n_outputs:
        raise ValueError(f"n_classes must be in [1, {arch.n_outputs}], got {n_classes}")
    if image_shape is not None:
        image_shape = tuple(int(s) for s in image_shape)
        if math.prod(image_shape) != d:
            raise ValueError(
                f"image_shape {image_shape} has {math.prod(image_shape)} pixels, d={d}"
            )
    if tv and image_shape is None:
        raise ValueError("tv > 0 needs image_shape (the total variation is over image pixels)")

    ref = params["W0"]
    dev, dtype = ref.device, ref.dtype
    lo = hi = None
    if bounds is not None:
        if len(bounds) != 2:
            raise ValueError(f"bounds must be a pair (lo, hi), got {len(bounds)} entries")
        lo_np, hi_np = _bound_vector(bounds[0], d, "lo"), _bound_vector(bounds[1], d, "hi")
        if np.any(lo_np > hi_np):
            bad = np.flatnonzero(lo_np > hi_np)
            raise ValueError(f"bounds: lo > hi at {bad.size} features (first: {bad[:5].tolist()})")
        lo = torch.as_tensor(lo_np, dtype=dtype, device=dev)
        hi = torch.as_tensor(hi_np, dtype=dtype, device=dev)

    if x_init is None:
        x0 = np.zeros((k, c, d))
    else:
        x0 = np.asarray(x_init, dtype=np.float64)
        if x0.shape == (d,):
            x0 = np.broadcast_to(x0, (k, c, d))
        elif x0.shape == (c, d):
            x0 = np.broadcast_to(x0, (k, c, d))
        elif x0.shape != (k, c, d):
            raise ValueError(
                f"x_init must have shape [d]=[{d}], [C, d]=[{c}, {d}] or [K, C, d], got {x0.shape}"
            )
        if not np.isfinite(x0).all():
            raise ValueError("x_init contains non-finite values")

    def project(x: torch.Tensor) -> torch.Tensor:
        return x if lo is None else torch.maximum(torch.minimum(x, hi), lo)

    fixed = {name: p.detach() for name, p in params.items()}
    x = project(torch.tensor(np.array(x0), dtype=dtype, device=dev))
    best_x = x.clone()
    best_cost = torch.full((k, c), math.inf, dtype=dtype, device=dev)
    best_conf = torch.full((k, c), math.nan, dtype=dtype, device=dev)
    since = torch.zeros((k, c), dtype=torch.long, device=dev)
    steps = torch.zeros((k, c), dtype=torch.long, device=dev)
    active = torch.ones((k, c), dtype=torch.bool, device=dev)
    history: list[float] = []
    per_pair: list[np.ndarray] = []

    for t in range(n_steps + 1):
        last = t == n_steps
        with torch.enable_grad():
            xv = x.detach().requires_grad_(not last)
            cost, conf = _cost(fixed, arch, xv, l2, tv, image_shape)
            grad = None if last else torch.autograd.grad(cost.sum(), xv)[0]
        with torch.no_grad():
            cost, conf = cost.detach(), conf.detach()
            bad = active & ~torch.isfinite(cost)
            if grad is not None:
                bad |= active & ~torch.isfinite(grad).all(-1)
            if bad.any():
                log.warning(
                    "%d (model, class) pairs hit a non-finite cost or gradient at step %d; "
                    "stopping them",
                    int(bad.sum()),
                    t,
                )
                active &= ~bad
            history.append(float(torch.nanmean(cost)))
            per_pair.append(torch.where(active, cost, torch.nan).cpu().numpy())
            # any decrease gives a new best x; only one by more than tol resets the patience
            better = active & (torch.isinf(best_cost) | (cost < best_cost))
            improved = active & improves(cost, best_cost, tol, minimize=True)
            best_cost = torch.where(better, cost, best_cost)
            best_conf = torch.where(better, conf, best_conf)
            best_x = torch.where(better.unsqueeze(-1), x, best_x)
            since = torch.where(improved, 0, since + active.long())
            active &= ~((best_cost <= gamma) | (since >= patience))
            if last or not active.any():
                break
            x = torch.where(active.unsqueeze(-1), project(x - lr * grad), x)
            steps += active.long()

    result = InversionResult(
        x=best_x.cpu().numpy(),
        cost=best_cost.cpu().numpy(),
        confidence=best_conf.cpu().numpy(),
        n_steps=steps.cpu().numpy(),
        history=np.asarray(history),
        cost_history=np.stack(per_pair),
    )
    log.info(
        "MI-FACE: %d models x %d classes, %d-%d steps, cost %.4g (mean), confidence %.4g (mean)",
        k,
        c,
        int(result.n_steps.min()),
        int(result.n_steps.max()),
        float(result.cost.mean()),
        float(result.confidence.mean()),
    )
    return result

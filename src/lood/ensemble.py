"""Train K independent networks at once, each on its own subset of the data (a boolean mask).

This produces the empirical ground truth of LOOD: "in" models (mask = all of D) and "out" models
(mask = D without one record), and, with random masks, random-subset ensembles. All K models live
in stacked tensors (see :mod:`lood.models`); one step gathers a ``[K, B, d]`` mini-batch with an
index tensor, runs one batched forward/backward over the summed per-model losses (models share no
parameters, so each receives exactly its own gradient) and applies a batched SGD/Adam update.

Data order (the contract tests and re-implementations rely on). For model k let
``incl_k = numpy.flatnonzero(masks[k])`` (ascending) and ``rng_k = numpy.random.default_rng(
seeds[k])``, created once before training. In epoch e = 0, 1, ..., in turn, the model visits
``order = incl_k[rng_k.permutation(len(incl_k))]`` cut into consecutive mini-batches
``order[i * batch_size : (i + 1) * batch_size]`` (the last one may be smaller). Step i of an epoch
uses each model's i-th batch; a model that has no i-th batch is *inactive* at that step and its
parameters and optimizer state are left exactly unchanged (Adam's step count too). The initial
parameters of model k come from ``torch.Generator().manual_seed(seeds[k])``
(:func:`lood.models.init_params`). So a model's result depends only on (arch, config, data,
masks[k], seeds[k]), never on the other models or on ``chunk_size``.

The optimizers reproduce ``torch.optim.SGD`` (momentum, no dampening/nesterov, L2 weight decay
added to the gradient) and ``torch.optim.Adam`` (L2 weight decay, no amsgrad), per model.

Kernel-space first layer (SGD only, chosen automatically when it needs fewer flops, roughly
N < 2d; ``first_layer=`` forces it on or off). Every SGD gradient of W0 is ``alpha X_b^T delta``,
weight decay adds a multiple of W0 and momentum sums past gradients, so W0 and its momentum
buffer stay of the form ``s W0(0) + X^T C`` with per-model scalars s and coefficients C [N, width].
The batch pre-activation is then ``alpha (s (X W0(0))[b] + (X X^T)[b] C)`` and the weight
gradient a row scatter into C: 2 B N width flops per step instead of 4 B d width. Same
mathematics as the plain update (the tests compare both to 1e-9 in float64); W0 is
reconstructed at the end.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from lood.arch import Architecture
from lood.dp import DPConfig, train_chunk_dp
from lood.models import (
    Params,
    forward,
    init_params,
    layer_scales,
    n_models,
    param_names,
)

logger = logging.getLogger(__name__)

OPTIMIZERS = ("sgd", "adam")
LOSSES = ("mse", "cross_entropy")

ProgressFn = Callable[[dict], None]


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


@dataclass
class EnsembleResult:
    """What :func:`train_ensemble` returns; arrays are indexed by model k first."""

    params: Params  # stacked final parameters, on CPU
    outputs: dict[str, np.ndarray]  # eval-set name -> [K, M, n_outputs] final outputs
    final_train_loss: np.ndarray  # [K] loss of the final model on its whole included set
    final_train_accuracy: np.ndarray  # [K] accuracy of the final model on its included set
    loss_history: np.ndarray  # [epochs, K] mean mini-batch loss per epoch (NaN: no batch)
    n_updates: np.ndarray  # [K] optimizer steps each model took
    seeds: np.ndarray  # [K]
    seconds: float  # wall time of the whole call
    extra: dict[str, object] = field(default_factory=dict)


def accuracy(outputs: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> np.ndarray:
    """Per-model accuracy: outputs ``[K, M, C]``, labels ``[M]`` -> ``[K]``."""
    out = np.asarray(outputs.detach().cpu() if isinstance(outputs, torch.Tensor) else outputs)
    lab = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y)
    if out.ndim != 3 or out.shape[1] != lab.shape[0]:
        raise ValueError(f"outputs must be [K, M, C] with M = len(y); got {out.shape}, {lab.shape}")
    if out.shape[1] == 0:
        return np.full(out.shape[0], np.nan)
    return (out.argmax(-1) == lab[None, :]).mean(axis=1)


def regression_targets(y: torch.Tensor, n_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """NNGP regression targets: one-hot labels minus 1/C."""
    return F.one_hot(y, n_classes).to(dtype) - 1.0 / n_classes


def _per_example_loss(loss: str, out: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None):
    """Loss of every (model, example): out ``[K, B, C]`` -> ``[K, B]``."""
    if loss == "mse":
        return 0.5 * (out - t).square().sum(-1)
    logp = torch.log_softmax(out, dim=-1)
    return -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1)


class _BatchedOptimizer:
    """SGD(momentum) / Adam over stacked parameters, with per-model step counts and activity.

    ``params[0]`` is the first-layer weight ``W0 [K, d, width]``, by far the largest tensor. Its
    gradient ``alpha * x^T delta`` is not materialised by autograd but passed to :meth:`step` as
    (x, delta, alpha) and fused into the update (``baddbmm_`` into the momentum buffer or into W0)
    or written into a persistent buffer: fresh multi-MB allocations each step cost page faults.
    """

    def __init__(
        self, tcfg: TrainConfig, params: list[torch.Tensor], k: int, has_w0: bool = True
    ) -> None:
        self.cfg = tcfg
        self.params = params
        self.k = k
        self.sgd = tcfg.optimizer == "sgd"
        # materialised W0 gradient when it can't be fused; no W0 here in the kernel-space path
        self.g0 = torch.empty_like(params[0]) if has_w0 else None
        if self.sgd:
            self.bufs = [torch.zeros_like(p) for p in params] if tcfg.momentum else []
        else:
            self.m = [torch.zeros_like(p) for p in params]
            self.v = [torch.zeros_like(p) for p in params]
            self.ws = [torch.empty_like(p) for p in params]
            self.steps = torch.zeros(k, dtype=torch.float64, device=params[0].device)

    @staticmethod
    def _view(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return x.view(-1, *([1] * (like.dim() - 1)))

    @torch.no_grad()
    def step(
        self,
        active: torch.Tensor | None,
        grads: list[torch.Tensor | None],
        w0_grad: tuple[torch.Tensor, torch.Tensor, float] | None,
    ) -> None:
        """One update. ``active``: bool [K] or None (= all active); ``grads``: gradients aligned
        with ``params`` (entry 0 unused); ``w0_grad``: (x, delta, alpha) with x ``[K, B, d]`` the
        first layer's input and delta ``[K, B, width]`` = dL/d(its pre-activation), or None when
        ``params`` holds no W0 (kernel-space path: all gradients are in ``grads``)."""
        grads = list(grads)
        cfg = self.cfg
        lr, wd, mom = cfg.lr, cfg.weight_decay, cfg.momentum
        w0 = self.params[0]
        fused = self.sgd and active is None and w0_grad is not None
        if w0_grad is not None:
            x, delta, alpha = w0_grad
            x_t = x.transpose(1, 2)
        if fused:  # W0: gradient fused into the update, no [K, d, width] temporaries
            if mom:
                buf = self.bufs[0]
                buf.baddbmm_(x_t, delta, beta=mom, alpha=alpha)
                if wd:
                    buf.add_(w0, alpha=wd)
                w0.add_(buf, alpha=-lr)
            else:
                if wd:
                    w0.mul_(1.0 - lr * wd)
                w0.baddbmm_(x_t, delta, alpha=-lr * alpha)
        elif w0_grad is not None:
            grads[0] = self.g0.baddbmm_(x_t, delta, beta=0.0, alpha=alpha)
        if not self.sgd:
            self.steps += 1 if active is None else active.to(self.steps.dtype)
            t = self.steps.clamp(min=1.0)  # inactive models at t = 0 are masked out below
            b1, b2 = cfg.adam_betas
            step_size = (lr / (1.0 - b1**t)).to(w0.dtype)
            bc2_sqrt = torch.sqrt(1.0 - b2**t).to(w0.dtype)
        for i, p in enumerate(self.params):
            if fused and i == 0:
                continue
            g = grads[i]
            if wd:
                g = g.add_(p, alpha=wd)  # the gradient buffers are ours to overwrite
            if active is None:
                if self.sgd:
                    if mom:
                        g = self.bufs[i].mul_(mom).add_(g)
                    p.add_(g, alpha=-lr)
                else:
                    m, v, ws = self.m[i], self.v[i], self.ws[i]
                    m.lerp_(g, 1.0 - b1)
                    v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
                    denom = torch.sqrt(v, out=ws).div_(self._view(bc2_sqrt, p)).add_(cfg.adam_eps)
                    upd = torch.div(m, denom, out=ws).mul_(self._view(step_size, p))
                    p.sub_(upd)
            else:
                a = self._view(active, p)
                if self.sgd:
                    if mom:
                        buf = self.bufs[i]
                        g = buf * mom + g
                        buf.copy_(torch.where(a, g, buf))
                    p.copy_(torch.where(a, p - lr * g, p))
                else:
                    m, v = self.m[i], self.v[i]
                    m_new = torch.lerp(m, g, 1.0 - b1)
                    v_new = (v * b2).addcmul_(g, g, value=1.0 - b2)
                    denom = (v_new.sqrt() / self._view(bc2_sqrt, p)).add_(cfg.adam_eps)
                    p_new = p - self._view(step_size, p) * m_new / denom
                    m.copy_(torch.where(a, m_new, m))
                    v.copy_(torch.where(a, v_new, v))
                    p.copy_(torch.where(a, p_new, p))


def _report(progress: ProgressFn | logging.Logger | None, info: dict) -> None:
    msg = (
        "train_ensemble: models {models_done}/{n_models} (chunk {chunk}/{n_chunks}), "
        "epoch {epoch}/{epochs}, loss mean {loss_mean:.4g}, elapsed {elapsed:.1f}s, "
        "ETA {eta:.1f}s".format(**info)
    )
    if progress is None:
        logger.debug(msg)
    elif isinstance(progress, logging.Logger):
        progress.info(msg)
    else:
        progress(info)


def _epoch_batches(
    rngs: list[np.random.Generator], incl: list[np.ndarray], batch_size: int, pad: int
) -> tuple[np.ndarray, np.ndarray]:
    """Index tensor ``[S, K, B]`` (padded with ``pad``) and per-(step, model) valid counts."""
    k = len(incl)
    sizes = np.array([len(i) for i in incl])
    n_steps = int(math.ceil(sizes.max() / batch_size)) if k and sizes.max() > 0 else 0
    idx = np.full((k, n_steps * batch_size), pad, dtype=np.int64)
    for j in range(k):  # only the permutations: the model's own RNG stream
        idx[j, : sizes[j]] = incl[j][rngs[j].permutation(sizes[j])]
    idx = idx.reshape(k, n_steps, batch_size).transpose(1, 0, 2)
    counts = np.clip(sizes[None, :] - np.arange(n_steps)[:, None] * batch_size, 0, batch_size)
    return np.ascontiguousarray(idx), counts


class _Network:
    """Forward and hand-written backward pass of the stacked MLP into preallocated buffers.

    Same maths as :func:`lood.models.forward` plus autograd (the tests check it against
    ``torch.nn`` + ``torch.optim``), but every ``[K, B, *]`` intermediate and gradient lives in a
    buffer allocated once per chunk: on small VMs fresh multi-MB allocations cost page faults that
    took longer than the arithmetic.
    """

    def __init__(
        self, arch: Architecture, params: Params, k: int, bsz: int, d: int, need_x: bool = True
    ) -> None:
        self.arch = arch
        self.params = params
        self.n_layers = arch.depth + 1
        p0 = params["W0"]
        opts = {"dtype": p0.dtype, "device": p0.device}
        dims = [d] + [arch.width] * arch.depth + [arch.n_outputs]
        self.scales = [layer_scales(arch, dims[i]) for i in range(self.n_layers)]
        self.xbuf = torch.empty(k * bsz, d, **opts) if need_x else None
        self.z = [torch.empty(k, bsz, dims[i + 1], **opts) for i in range(self.n_layers)]
        self.a = [torch.empty(k, bsz, arch.width, **opts) for _ in range(arch.depth)]
        self.delta = [torch.empty(k, bsz, dims[i + 1], **opts) for i in range(self.n_layers)]
        self.da = torch.empty(k, bsz, arch.width, **opts) if arch.depth else None
        self.grads = {
            name: torch.empty_like(params[name]) for name in param_names(arch) if name != "W0"
        }

    def forward(self, x: torch.Tensor | None) -> torch.Tensor:
        """Pre-activations z_l and activations a_l for x ``[K, B, d]``; returns the output.
        x None: ``z[0]`` already holds the first pre-activation (kernel-space first layer)."""
        arch, h = self.arch, x
        for layer in range(self.n_layers):
            w, z = self.params[f"W{layer}"], self.z[layer]
            alpha, beta = self.scales[layer]
            if layer == 0 and x is None:
                pass
            elif arch.has_bias:
                torch.baddbmm(
                    self.params[f"b{layer}"].unsqueeze(1), h, w, beta=beta, alpha=alpha, out=z
                )
            else:
                torch.bmm(h, w, out=z)
                if alpha != 1.0:
                    z.mul_(alpha)
            if layer < arch.depth:
                h = self.a[layer]
                if arch.activation == "relu":
                    torch.clamp_min(z, 0.0, out=h)
                else:
                    torch._C._nn.gelu(z, out=h)
        return self.z[-1]

    def backward(self, dout: torch.Tensor) -> torch.Tensor:
        """Fill ``grads`` (all but W0) from dL/d(output); returns delta_0 = dL/dz_0."""
        arch = self.arch
        self.delta[-1].copy_(dout)
        for layer in range(self.n_layers - 1, -1, -1):
            delta = self.delta[layer]
            alpha, beta = self.scales[layer]
            if arch.has_bias:
                torch.sum(delta, dim=1, out=self.grads[f"b{layer}"])
                self.grads[f"b{layer}"].mul_(beta)
            if layer == 0:
                break
            h = self.a[layer - 1]
            w = self.params[f"W{layer}"]
            self.grads[f"W{layer}"].baddbmm_(h.transpose(1, 2), delta, beta=0.0, alpha=alpha)
            torch.bmm(delta, w.transpose(1, 2), out=self.da)
            if alpha != 1.0:
                self.da.mul_(alpha)
            z, out = self.z[layer - 1], self.delta[layer - 1]
            if arch.activation == "relu":
                torch.ops.aten.threshold_backward.grad_input(self.da, z, 0.0, grad_input=out)
            else:
                torch.ops.aten.gelu_backward.grad_input(
                    self.da, z, approximate="none", grad_input=out
                )
        return self.delta[0]


FIRST_LAYER_MODES = ("auto", "kernel", "standard")
# Largest Gram matrix X X^T (bytes) the automatic choice accepts for the kernel-space first layer;
# N = 8000 records in float32 is 256 MB. Above it (or when it needs more flops) W0 is trained as is.
KERNEL_MAX_BYTES = 2**28


def use_kernel_first_layer(
    mode: str,
    tcfg: TrainConfig,
    n: int,
    d: int,
    width: int,
    steps_per_model: int,
    itemsize: int = 4,
    max_bytes: int = KERNEL_MAX_BYTES,
) -> bool:
    """Whether to train the first layer in kernel space (see the module docstring).

    ``auto``: with SGD, when its flop count (per model: 2 B (N+1) width per step for the forward,
    O((N+1) width) for the update, plus 4 (N+1) d width once for X W0(0) and the final W0) is
    below the plain path's (4 B d width per step) and the Gram matrix fits in ``max_bytes``.
    """
    if mode not in FIRST_LAYER_MODES:
        raise ValueError(f"first_layer must be one of {FIRST_LAYER_MODES}, got {mode!r}")
    if mode == "standard":
        return False
    if tcfg.optimizer != "sgd":
        if mode == "kernel":
            raise ValueError("the kernel-space first layer needs optimizer 'sgd' (Adam has none)")
        return False
    if mode == "kernel":
        return True
    n1, b = n + 1, max(min(tcfg.batch_size, n), 1)
    standard = steps_per_model * (4 * b * d * width + 3 * d * width)
    kernel = steps_per_model * (2 * b * n1 * width + b * n1 + 4 * n1 * width) + 4 * n1 * d * width
    return kernel < standard and n1 * n1 * itemsize <= max_bytes


class _KernelFirstLayer:
    """SGD on the first-layer weights in kernel space: ``W0_k = s_k W0_k(0) + X^T C_k``.

    X is the padded input ``[N+1, d]`` (last row zero), C ``[K, N+1, width]``. With the Gram
    matrix G = X X^T (shared by all models) and P_k = X W0_k(0), the first pre-activation of batch
    rows b is ``alpha (s_k P_k[b] + G[b] C_k) + beta b0_k``. The SGD gradient of W0 is
    ``X^T (S + wd C) + wd s W0(0)`` with S = scatter_b(alpha delta) (B nonzero rows), so:

    * without momentum: ``s <- (1 - lr wd) s``, ``C <- (1 - lr wd) C - lr S``;
    * with momentum (buffer ``u W0(0) + X^T D``): ``u <- mom u + wd s``, ``s <- s - lr u`` and,
      eliminating D, ``C_{t+1} = (1 + mom - lr wd) C_t - mom C_{t-1} - lr S_t`` (C_{-1} = C_0 = 0),
      one pass over two buffers per step instead of updating D and then C.

    Inactive models get mom = 1, wd = lr = 0 (and zero deltas), i.e. no change.
    """

    def __init__(
        self,
        tcfg: TrainConfig,
        x_ext: torch.Tensor,
        gram: torch.Tensor,
        w_init: torch.Tensor,
        bsz: int,
        scales: tuple[float, float],
    ) -> None:
        k, _, width = w_init.shape
        n1 = x_ext.shape[0]
        opts = {"dtype": w_init.dtype, "device": w_init.device}
        self.cfg = tcfg
        self.gram = gram
        self.alpha, self.beta = scales
        self.w_init = w_init  # params["W0"], untouched until the final reconstruction
        self.proj = torch.matmul(x_ext, w_init).mul_(self.alpha)  # alpha P [K, N+1, width]
        self.coef = torch.zeros_like(self.proj)  # C_t
        self.prev = torch.zeros_like(self.proj) if tcfg.momentum else None  # C_{t-1}
        self.s = torch.ones(k, dtype=torch.float64, device=w_init.device)
        self.u = torch.zeros(k, dtype=torch.float64, device=w_init.device)
        self.gbuf = torch.empty(k * bsz, n1, **opts)
        self.pbuf = torch.empty(k * bsz, width, **opts)
        self.ubuf = torch.empty(k * bsz, width, **opts)
        self.offsets = torch.arange(k, device=w_init.device) * n1

    def rows(self, idx: torch.Tensor) -> torch.Tensor:
        """Record indices ``[..., K, B]`` -> row indices into the flattened ``[K * (N+1)]``."""
        return idx + self.offsets[:, None]

    @staticmethod
    def _per_model(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return v.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))

    @torch.no_grad()
    def forward(
        self, idx: torch.Tensor, rows: torch.Tensor, bias: torch.Tensor | None, out: torch.Tensor
    ) -> torch.Tensor:
        """First pre-activation ``[K, B, width]`` into ``out``; idx/rows flat ``[K * B]``."""
        k, bsz, width = out.shape
        g = torch.index_select(self.gram, 0, idx, out=self.gbuf).view(k, bsz, -1)
        p = torch.index_select(self.proj.view(-1, width), 0, rows, out=self.pbuf)
        p = p.view(k, bsz, width)
        if self.cfg.weight_decay:  # otherwise s == 1 throughout
            p.mul_(self._per_model(self.s, p))
        if bias is not None:
            p.add_(bias.unsqueeze(1), alpha=self.beta)
        return torch.baddbmm(p, g, self.coef, alpha=self.alpha, out=out)

    @torch.no_grad()
    def step(self, active: torch.Tensor | None, delta: torch.Tensor, rows: torch.Tensor) -> None:
        """SGD update from delta = dL/d(first pre-activation) ``[K, B, width]`` (zero on padding
        and for inactive models); ``active`` bool [K] or None (= all active)."""
        cfg = self.cfg
        lr, wd, mom = cfg.lr, cfg.weight_decay, cfg.momentum
        coef, width = self.coef, self.coef.shape[-1]
        if active is None:
            lr_k, wd_k, mom_k = lr, wd, mom
        else:
            act = active.to(torch.float64)
            lr_k, wd_k, mom_k = lr * act, wd * act, 1.0 - (1.0 - mom) * act
        if wd:
            if mom:
                self.u = mom_k * self.u + wd_k * self.s
                self.s = self.s - lr_k * self.u
            else:
                self.s = self.s * (1.0 - lr_k * wd)
        if mom:
            prev = self.prev
            if active is None:  # prev <- (1 + mom - lr wd) C - mom prev, then swap
                if wd:
                    prev.mul_(-mom).add_(coef, alpha=1.0 + mom - lr * wd)
                else:
                    prev.lerp_(coef, 1.0 + mom)
                self.coef, self.prev = prev, coef
            else:  # inactive: a = 1, b = 0, and C_{t-1} kept
                new = torch.mul(coef, self._per_model(1.0 + (mom - lr * wd) * act, coef))
                new.addcmul_(prev, self._per_model(-mom * act, prev))
                prev.copy_(torch.where(active.view(-1, 1, 1), coef, prev))
                coef.copy_(new)
        elif wd:
            keep = 1.0 - lr_k * wd
            coef.mul_(keep if active is None else self._per_model(keep, coef))
        # C[rows] -= lr alpha delta as gather, add, copy back: faster than index_add_ on CPU and
        # exact, as a model's batch rows are distinct records (repeats only of the padding row,
        # whose coefficients stay 0 as its deltas are 0, so every copy writes the same value)
        flat = self.coef.view(-1, width)
        upd = torch.index_select(flat, 0, rows, out=self.ubuf)
        flat.index_copy_(0, rows, upd.add_(delta.reshape(-1, width), alpha=-lr * self.alpha))

    @torch.no_grad()
    def weights(self, x_ext: torch.Tensor) -> torch.Tensor:
        """The current first-layer weights ``s W0(0) + X^T C`` ``[K, d, width]``."""
        w = torch.matmul(x_ext.T, self.coef)
        if self.cfg.weight_decay:
            return w.add_(self.w_init * self._per_model(self.s, self.w_init))
        return w.add_(self.w_init)


def _loss_and_grad(
    loss: str, out: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None, w: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-model loss ``sum_b w[k,b] * l(out[k,b])`` ``[K]`` and its gradient w.r.t. ``out``."""
    if loss == "mse":
        resid = out - t
        per_ex = 0.5 * resid.square().sum(-1)
        grad = resid.mul_(w.unsqueeze(-1))
    else:
        logp = torch.log_softmax(out, dim=-1)
        per_ex = -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1)
        grad = logp.exp_()
        grad.scatter_add_(-1, y.unsqueeze(-1), torch.full_like(per_ex, -1.0).unsqueeze(-1))
        grad.mul_(w.unsqueeze(-1))
    return (per_ex * w).sum(1), grad


def _train_chunk(
    arch: Architecture,
    tcfg: TrainConfig,
    x_ext: torch.Tensor,
    y_ext: torch.Tensor,
    t_ext: torch.Tensor | None,
    masks: np.ndarray,
    seeds: np.ndarray,
    offset: int,
    dtype: torch.dtype,
    on_epoch: Callable[[int, float], None],
    gram: torch.Tensor | None = None,
    on_epoch_end: Callable[[int, Params], None] | None = None,
) -> tuple[Params, np.ndarray, np.ndarray]:
    """Train one chunk of models; returns (params, loss_history [E, k], n_updates [k]).
    ``gram`` (X X^T of ``x_ext``) selects the kernel-space first layer; ``on_epoch_end`` gets a
    CPU copy of the parameters after every epoch."""
    device = x_ext.device
    k = len(seeds)
    d = x_ext.shape[1]
    pad = x_ext.shape[0] - 1  # the all-zero padding row, never a real record
    params = init_params(arch, d, [int(s) for s in seeds], device=device, dtype=dtype)
    names = param_names(arch)
    bsz = tcfg.batch_size
    net = _Network(arch, params, k, bsz, d, need_x=gram is None)
    kernel = None
    if gram is not None:  # W0 lives in kernel space; the optimizer updates the other params
        kernel = _KernelFirstLayer(tcfg, x_ext, gram, params["W0"], bsz, net.scales[0])
        names = names[1:]
    opt = _BatchedOptimizer(tcfg, [params[n] for n in names], k, has_w0=kernel is None)
    alpha0 = net.scales[0][0]
    grads = [net.grads.get(n) for n in names]
    rngs = [np.random.default_rng(int(s)) for s in seeds]
    incl = [np.flatnonzero(m) for m in masks]
    history = np.full((tcfg.epochs, k), np.nan)
    n_updates = np.zeros(k, dtype=np.int64)
    for epoch in range(tcfg.epochs):
        idx_np, counts_np = _epoch_batches(rngs, incl, bsz, pad)
        n_updates += (counts_np > 0).sum(0)
        idx_all = torch.from_numpy(idx_np).to(device)
        rows_all = None if kernel is None else kernel.rows(idx_all)
        counts = torch.from_numpy(counts_np).to(device=device, dtype=dtype)
        # weights 1/count on valid entries, 0 on padding: loss_k = mean over the valid batch
        valid = torch.arange(bsz, device=device)[None, None, :] < counts[:, :, None]
        weights = valid.to(dtype) / counts.clamp(min=1)[:, :, None]
        loss_sum = torch.zeros(k, dtype=torch.float64, device=device)
        for s in range(idx_np.shape[0]):
            idx = idx_all[s].reshape(-1)
            if kernel is None:
                xb = torch.index_select(x_ext, 0, idx, out=net.xbuf).view(k, bsz, d)
                out = net.forward(xb)
            else:
                rows = rows_all[s].reshape(-1)
                kernel.forward(idx, rows, params.get("b0"), net.z[0])
                out = net.forward(None)
            t_b = None if t_ext is None else t_ext.index_select(0, idx).view(k, bsz, -1)
            loss_k, dout = _loss_and_grad(tcfg.loss, out, y_ext[idx].view(k, bsz), t_b, weights[s])
            if not bool(torch.isfinite(loss_k).all()):
                bad = (torch.nonzero(~torch.isfinite(loss_k)).flatten() + offset).tolist()
                raise FloatingPointError(
                    f"train_ensemble: non-finite loss for model(s) {bad} in epoch {epoch} "
                    f"(step {s}); lower the learning rate"
                )
            loss_sum += loss_k.to(torch.float64)
            delta0 = net.backward(dout)
            all_active = bool(counts_np[s].min() > 0)
            active = None if all_active else torch.from_numpy(counts_np[s] > 0).to(device)
            if kernel is None:
                opt.step(active, grads, (xb, delta0, alpha0))
            else:
                kernel.step(active, delta0, rows)
                if names:
                    opt.step(active, grads, None)
        steps_per_model = (counts_np > 0).sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            history[epoch] = loss_sum.cpu().numpy() / steps_per_model
        on_epoch(epoch, float(np.nanmean(history[epoch])) if steps_per_model.any() else math.nan)
        if on_epoch_end is not None:  # a copy: training goes on in place
            snap = {name: p.detach().cpu().clone() for name, p in params.items()}
            if kernel is not None:  # W0 is only materialised on demand in kernel space
                snap["W0"] = kernel.weights(x_ext).cpu()
            on_epoch_end(epoch, snap)
    if kernel is not None:
        params["W0"].copy_(kernel.weights(x_ext))
    return params, history, n_updates


@torch.no_grad()
def _outputs(params: Params, arch: Architecture, x: torch.Tensor, rows: int = 4096) -> torch.Tensor:
    """Forward ``[M, d]`` through every model in row blocks (bounded memory) -> ``[K, M, C]``."""
    k = n_models(params)
    if x.shape[0] == 0:
        return torch.zeros(k, 0, arch.n_outputs, dtype=x.dtype)
    parts = [forward(params, arch, x[i : i + rows]).cpu() for i in range(0, x.shape[0], rows)]
    return torch.cat(parts, dim=1)


def fit_statistics(
    params: Params, arch: Architecture, loss: str, x: torch.Tensor, y: torch.Tensor,
    masks: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Final loss and accuracy ``[K]`` of each model on its own included records (``masks``)."""
    f_train = _outputs(params, arch, x)
    k, n = masks.shape
    with torch.no_grad():
        yy = y.cpu().expand(k, n)
        tt = None
        if loss == "mse":
            tt = regression_targets(y.cpu(), arch.n_outputs, f_train.dtype).expand(k, n, -1)
        per_ex = _per_example_loss(loss, f_train, yy, tt)
        m = torch.from_numpy(np.asarray(masks)).to(per_ex.dtype)
        cnt = m.sum(1)
        hit = (f_train.argmax(-1) == yy).to(per_ex.dtype)
        train_loss = (per_ex * m).sum(1) / cnt
        train_acc = (hit * m).sum(1) / cnt
    return train_loss.double().numpy(), train_acc.double().numpy()


def train_ensemble(
    arch: Architecture,
    tcfg: TrainConfig,
    X: torch.Tensor,
    y: torch.Tensor,
    masks: torch.Tensor | np.ndarray,
    seeds: Sequence[int] | np.ndarray,
    eval_sets: dict[str, torch.Tensor] | None = None,
    device: str | torch.device = "cpu",
    chunk_size: int | None = None,
    progress: ProgressFn | logging.Logger | None = None,
    dtype: torch.dtype = torch.float32,
    first_layer: str = "auto",
    kernel_max_bytes: int = KERNEL_MAX_BYTES,
    on_epoch_end: Callable[[int, Params], None] | None = None,
    dp: DPConfig | None = None,
) -> EnsembleResult:
    """Train K = len(seeds) models, model k on the records where ``masks[k]`` is True.

    X ``[N, d]``, y ``[N]`` int64 labels in ``[0, n_outputs)``, masks ``[K, N]`` bool. At most
    ``chunk_size`` models are trained at a time (memory bound); the result does not depend on it.
    ``eval_sets`` maps names to ``[M, d]`` inputs whose final outputs are returned. ``progress``
    receives one report per epoch (a callable gets a dict; a Logger gets an INFO line). Raises
    FloatingPointError naming the model indices and epoch if a loss becomes NaN/inf. Deterministic
    on CPU for fixed seeds (thread count is left to the caller: ``torch.set_num_threads``).
    ``first_layer``: "auto" (kernel-space first layer when SGD and it is cheaper, with X X^T at
    most ``kernel_max_bytes``), "kernel" or "standard" (same results up to rounding).
    ``on_epoch_end(epoch, params)`` (e.g. checkpoints for TracIn) is called after every epoch
    (0-based) with a CPU copy of all K stacked parameters; it needs a single chunk.
    ``dp``: train with DP-SGD instead (Poisson batches, per-sample clipping, Gaussian noise; see
    :mod:`lood.dp`), always with the standard first layer.
    """
    t0 = time.perf_counter()
    eval_sets = dict(eval_sets or {})
    X = torch.as_tensor(X)
    y = torch.as_tensor(y)
    masks_np = np.asarray(masks.cpu() if isinstance(masks, torch.Tensor) else masks)
    seeds_np = np.asarray(seeds, dtype=np.int64).reshape(-1)
    if X.dim() != 2:
        raise ValueError(f"X must be [N, d], got shape {tuple(X.shape)}")
    n, d = X.shape
    if y.shape != (n,) or y.dtype != torch.int64:
        raise ValueError(f"y must be int64 of shape [{n}], got {y.dtype} {tuple(y.shape)}")
    if n and (int(y.min()) < 0 or int(y.max()) >= arch.n_outputs):
        raise ValueError(f"labels must lie in [0, {arch.n_outputs}), got [{y.min()}, {y.max()}]")
    if masks_np.dtype != np.bool_ or masks_np.ndim != 2 or masks_np.shape[1] != n:
        raise ValueError(f"masks must be bool [K, {n}], got {masks_np.dtype} {masks_np.shape}")
    k_total = masks_np.shape[0]
    if seeds_np.shape[0] != k_total:
        raise ValueError(f"need one seed per model: {k_total} masks, {seeds_np.shape[0]} seeds")
    if k_total == 0:
        raise ValueError("train_ensemble needs at least one model")
    if tcfg.loss == "cross_entropy" and arch.n_outputs < 2:
        raise ValueError("cross_entropy needs n_outputs >= 2")
    for name, xe in eval_sets.items():
        if xe.dim() != 2 or xe.shape[1] != d:
            raise ValueError(f"eval set {name!r} must be [M, {d}], got {tuple(xe.shape)}")
    chunk = k_total if chunk_size is None else int(chunk_size)
    if chunk < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if on_epoch_end is not None and chunk < k_total:
        raise ValueError("on_epoch_end needs all models in one chunk (chunk_size >= K)")

    device = torch.device(device)
    # one extra all-zero row at index N pads short batches, so padding never touches a record
    x_ext = torch.cat([X.to(dtype), torch.zeros(1, d, dtype=dtype)]).to(device)
    y_ext = torch.cat([y, torch.zeros(1, dtype=torch.int64)]).to(device)
    t_ext = regression_targets(y_ext, arch.n_outputs, dtype) if tcfg.loss == "mse" else None
    evals = {name: xe.to(device=device, dtype=dtype) for name, xe in eval_sets.items()}
    steps = tcfg.epochs * math.ceil(int(masks_np.sum(1).max()) / tcfg.batch_size)
    itemsize = torch.finfo(dtype).bits // 8
    if dp is not None and first_layer == "kernel":
        raise ValueError(
            "first_layer='kernel' cannot be combined with DP-SGD (noise is per weight)"
        )
    kernel = dp is None and use_kernel_first_layer(
        first_layer, tcfg, n, d, arch.width, steps, itemsize, kernel_max_bytes
    )
    gram = x_ext @ x_ext.T if kernel else None  # shared by all chunks

    starts = list(range(0, k_total, chunk))
    parts: list[Params] = []
    histories, updates = [], []
    outs: dict[str, list[torch.Tensor]] = {name: [] for name in evals}
    train_loss, train_acc = [], []
    for ci, start in enumerate(starts):
        stop = min(start + chunk, k_total)

        def on_epoch(epoch: int, loss_mean: float, start=start, stop=stop, ci=ci) -> None:
            done_units = start * tcfg.epochs + (stop - start) * (epoch + 1)
            elapsed = time.perf_counter() - t0
            frac = done_units / max(k_total * tcfg.epochs, 1)
            _report(
                progress,
                {
                    "models_done": start if epoch + 1 < tcfg.epochs else stop,
                    "n_models": k_total,
                    "chunk": ci + 1,
                    "n_chunks": len(starts),
                    "epoch": epoch + 1,
                    "epochs": tcfg.epochs,
                    "loss_mean": loss_mean,
                    "elapsed": elapsed,
                    "eta": elapsed * (1.0 - frac) / frac if frac > 0 else math.nan,
                },
            )

        if dp is None:
            params, hist, upd = _train_chunk(
                arch, tcfg, x_ext, y_ext, t_ext, masks_np[start:stop], seeds_np[start:stop],
                start, dtype, on_epoch, gram, on_epoch_end,
            )  # fmt: skip
        else:
            params, hist, upd = train_chunk_dp(
                arch, tcfg, dp, x_ext, y_ext, t_ext, masks_np[start:stop], seeds_np[start:stop],
                start, dtype, on_epoch, on_epoch_end,
            )  # fmt: skip
        histories.append(hist)
        updates.append(upd)
        for name, xe in evals.items():
            outs[name].append(_outputs(params, arch, xe))
        loss_k, acc_k = fit_statistics(
            params, arch, tcfg.loss, x_ext[:n], y_ext[:n], masks_np[start:stop]
        )
        train_loss.append(loss_k)
        train_acc.append(acc_k)
        parts.append({name: p.cpu() for name, p in params.items()})

    params_all = {name: torch.cat([p[name] for p in parts]) for name in parts[0]}
    return EnsembleResult(
        params=params_all,
        outputs={name: torch.cat(o, dim=0).numpy() for name, o in outs.items()},
        final_train_loss=np.concatenate(train_loss),
        final_train_accuracy=np.concatenate(train_acc),
        loss_history=np.concatenate(histories, axis=1),
        n_updates=np.concatenate(updates),
        seeds=seeds_np,
        seconds=time.perf_counter() - t0,
        extra={
            "chunk_size": chunk,
            "dtype": str(dtype),
            "device": str(device),
            "first_layer": "kernel" if kernel else "standard",
            "dp": dp,
        },
    )

"""Train K independent networks at once, each on its own subset of the data (a boolean mask).

This produces the empirical ground truth of LOOD: "in" models (mask = all of D) and "out" models
(mask = D without one record), and, with random masks, random-subset ensembles. All K models live
in stacked tensors (see :mod:`lood.train.models`); one step gathers a ``[K, B, d]`` mini-batch with an
index tensor, runs one batched forward/backward over the summed per-model losses (models share no
parameters, so each receives exactly its own gradient) and applies a batched SGD/Adam update.

Data order (the contract tests and re-implementations rely on). For model k let
``incl_k = numpy.flatnonzero(masks[k])`` (ascending) and ``rng_k = numpy.random.default_rng(
seeds[k])``, created once before training. In epoch e = 0, 1, ..., in turn, the model visits
``order = incl_k[rng_k.permutation(len(incl_k))]`` cut into consecutive mini-batches
``order[i * batch_size : (i + 1) * batch_size]`` (the last one may be smaller; ``drop_last``
skips it, as ``DataLoader(drop_last=True)`` on the model's own data). Step i of an epoch
uses each model's i-th batch; a model that has no i-th batch is *inactive* at that step and its
parameters and optimizer state are left exactly unchanged (Adam's step count too). The initial
parameters of model k come from ``torch.Generator().manual_seed(seeds[k])``
(:func:`lood.train.models.init_params`). So a model's result depends only on (arch, config, data,
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

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import torch

from lood.arch import Architecture
from lood.train.models import Params, init_params, param_names
from lood.train.primitives import (
    KERNEL_MAX_BYTES,
    BatchedOptimizer,
    Chunk,
    EnsembleOptions,
    EnsembleResult,
    Inputs,
    StackedNetwork,
    epoch_batches,
    fixed_order_batches,
    loss_and_grad,
    prepare_run,
    run_chunks,
)
from lood.train.spec import TrainConfig

FIRST_LAYER_MODES = ("auto", "kernel", "standard")


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


class KernelFirstLayer:
    """SGD on the first-layer weights in kernel space: ``W0_k = s_k W0_k(0) + X^T C_k``.

    X is the padded input ``[N+1, d]`` (last row zero), C ``[K, N+1, width]``. With the Gram
    matrix G = X X^T (shared by all models) and P_k = X W0_k(0), the first pre-activation of batch
    rows b is ``alpha (s_k P_k[b] + G[b] C_k) + beta b0_k``. The SGD gradient of W0 is
    ``X^T (S + wd C) + wd s W0(0)`` with S = scatter_b(alpha delta) (B nonzero rows), so:

    * without momentum: ``s <- (1 - lr wd) s``, ``C <- (1 - lr wd) C - lr S``;
    * with momentum (buffer ``u W0(0) + X^T D``): ``u <- mom u + wd s``, ``s <- s - lr u`` and,
      eliminating D, ``C_{t+1} = (1 + mom - lr wd) C_t - mom C_{t-1} - lr S_t`` (C_{-1} = C_0 = 0),
      one pass over two buffers per step instead of updating D and then C.

    Inactive models get mom = 1, wd = lr = 0 (and zero deltas), i.e. no change. When the learning
    rate changes from lr to lr' between steps (a schedule), the momentum buffer is
    ``D_t = (C_{t-1} - C_t) / lr``, so :meth:`set_lr` moves C_{t-1} to
    ``C_t + (lr' / lr) (C_{t-1} - C_t)`` and the recursion goes on with lr'.
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
        self.lr = tcfg.lr
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

    @torch.no_grad()
    def set_lr(self, lr: float) -> None:
        """The learning rate of the following steps; the momentum buffer is kept (see above)."""
        lr = float(lr)
        if self.prev is not None and lr != self.lr:
            self.prev.sub_(self.coef).mul_(lr / self.lr).add_(self.coef)
        self.lr = lr

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
        lr, wd, mom = self.lr, cfg.weight_decay, cfg.momentum
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


def train_chunk(
    arch: Architecture,
    tcfg: TrainConfig,
    inputs: Inputs,
    chunk: Chunk,
    on_epoch: Callable[[int, float], None],
    gram: torch.Tensor | None = None,
    on_epoch_end: Callable[[int, Params], None] | None = None,
) -> tuple[Params, np.ndarray, np.ndarray]:
    """Train one chunk of models; returns (params, loss_history [E, k], n_updates [k]).
    ``gram`` (X X^T of ``inputs.x_ext``) selects the kernel-space first layer; ``on_epoch_end``
    gets a CPU copy of the parameters after every epoch."""
    x_ext, y_ext, t_ext, dtype = inputs.x_ext, inputs.y_ext, inputs.t_ext, inputs.dtype
    masks, seeds, offset = chunk.masks, chunk.seeds, chunk.offset
    device = x_ext.device
    k = len(seeds)
    d = x_ext.shape[1]
    pad = x_ext.shape[0] - 1  # the all-zero padding row, never a real record
    params = init_params(arch, d, [int(s) for s in seeds], device=device, dtype=dtype)
    names = param_names(arch)
    bsz = tcfg.batch_size
    net = StackedNetwork(arch, params, k, bsz, d, need_x=gram is None)
    kernel = None
    if gram is not None:  # W0 lives in kernel space; the optimizer updates the other params
        kernel = KernelFirstLayer(tcfg, x_ext, gram, params["W0"], bsz, net.scales[0])
        names = names[1:]
    opt = BatchedOptimizer(tcfg, [params[n] for n in names], k, has_w0=kernel is None)
    alpha0 = net.scales[0][0]
    grads = [net.grads.get(n) for n in names]
    rngs = [np.random.default_rng(int(s)) for s in seeds]
    incl = [np.flatnonzero(m) for m in masks]
    history = np.full((tcfg.epochs, k), np.nan)
    n_updates = np.zeros(k, dtype=np.int64)
    for epoch in range(tcfg.epochs):
        opt.set_lr(tcfg.lr_at(epoch))
        if kernel is not None:
            kernel.set_lr(tcfg.lr_at(epoch))
        if tcfg.shuffle:
            idx_np, counts_np = epoch_batches(rngs, incl, bsz, pad)
            if tcfg.drop_last:  # a model's last, incomplete batch: an inactive step
                counts_np = np.where(counts_np == bsz, counts_np, 0)
        else:
            idx_np, counts_np = fixed_order_batches(incl, pad, bsz, pad)
            if tcfg.drop_last:  # the incomplete last block of D (pad = N) is never visited
                idx_np, counts_np = idx_np[: pad // bsz], counts_np[: pad // bsz]
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
            loss_k, dout = loss_and_grad(tcfg.loss, out, y_ext[idx].view(k, bsz), t_b, weights[s])
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


def train_ensemble(
    arch: Architecture,
    tcfg: TrainConfig,
    X: torch.Tensor,
    y: torch.Tensor,
    masks: torch.Tensor | np.ndarray,
    seeds: Sequence[int] | np.ndarray,
    options: EnsembleOptions | None = None,
    *,
    device: str | torch.device | None = None,
) -> EnsembleResult:
    """Train K = len(seeds) models, model k on the records where ``masks[k]`` is True.

    X ``[N, d]``, y ``[N]`` int64 labels in ``[0, n_outputs)``, masks ``[K, N]`` bool;
    ``options`` (default :class:`EnsembleOptions`) say where and how: device, chunk size,
    evaluation sets, progress, dtype, per-epoch callback and the first layer ("auto":
    kernel-space when SGD and it is cheaper, with X X^T at most ``options.kernel_max_bytes``).
    ``device`` alone is ``options.device`` for the callers that set nothing else (lood.privacy's
    PANORAMIA helper models); drop it once they pass options. Raises FloatingPointError naming
    the model indices and epoch if a loss becomes NaN/inf. Deterministic on CPU for fixed seeds
    (thread count is left to the caller: ``torch.set_num_threads``). DP-SGD is the sibling
    :func:`lood.train.dp.train_ensemble_dp`.
    """
    t0 = time.perf_counter()
    options = options or EnsembleOptions()
    if device is not None:
        options = replace(options, device=device)
    dtype = options.dtype
    run = prepare_run(arch, tcfg, X, y, masks, seeds, options)
    n, d = run.inputs.n, run.inputs.x_ext.shape[1]
    largest = int(run.masks.sum(1).max())
    per_epoch = (
        largest // tcfg.batch_size if tcfg.drop_last else math.ceil(largest / tcfg.batch_size)
    )
    steps = tcfg.epochs * per_epoch
    itemsize = torch.finfo(dtype).bits // 8
    kernel = use_kernel_first_layer(
        options.first_layer, tcfg, n, d, arch.width, steps, itemsize, options.kernel_max_bytes
    )
    x_ext = run.inputs.x_ext
    gram = x_ext @ x_ext.T if kernel else None  # shared by all chunks

    def chunk_fn(inp, chunk, on_epoch, on_end):
        return train_chunk(arch, tcfg, inp, chunk, on_epoch, gram, on_end)

    extra = {
        "dtype": str(dtype),
        "device": str(run.device),
        "first_layer": "kernel" if kernel else "standard",
        "dp": None,
    }
    return run_chunks(arch, tcfg, run, chunk_fn, options, t0, extra)

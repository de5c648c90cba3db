"""Batched primitives shared by the plain and the DP-SGD ensemble trainers: the stacked network's
forward and hand-written backward pass into preallocated buffers, the per-model optimizers, the
losses, mini-batch order, outputs and the progress report.
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
from lood.train.models import Params, forward, layer_scales, n_models, param_names
from lood.train.spec import TrainConfig

logger = logging.getLogger(__name__)


ProgressFn = Callable[[dict], None]

# Largest Gram matrix X X^T (bytes) the automatic choice accepts for the kernel-space first layer;
# N = 8000 records in float32 is 256 MB. Above it (or when it needs more flops) W0 is trained as is.
KERNEL_MAX_BYTES = 2**28


@dataclass(frozen=True)
class EnsembleOptions:
    """How an ensemble trainer runs and what it reports besides the parameters; a model's result
    depends on none of it (``dtype`` and ``first_layer`` up to rounding).

    At most ``chunk_size`` models are trained at a time (None: all at once; a memory bound).
    ``eval_sets`` maps names to ``[M, d]`` inputs whose final outputs are returned. ``progress``
    receives one report per epoch (a callable gets a dict; a Logger gets an INFO line).
    ``on_epoch_end(epoch, params)`` (e.g. checkpoints for TracIn) is called after every epoch
    (0-based) with a CPU copy of all K stacked parameters; it needs a single chunk.
    ``first_layer`` ("auto", "kernel" or "standard") and ``kernel_max_bytes`` (the largest
    X X^T "auto" accepts) choose :func:`lood.train.ensemble.train_ensemble`'s first layer; the
    DP-SGD trainers always train the standard one. :func:`lood.train.dp.train_opacus` runs one
    model at a time in float32 and uses ``device``, ``eval_sets`` and ``progress``.
    """

    device: str | torch.device = "cpu"
    eval_sets: dict[str, torch.Tensor] | None = None
    chunk_size: int | None = None
    progress: ProgressFn | logging.Logger | None = None
    dtype: torch.dtype = torch.float32
    on_epoch_end: Callable[[int, Params], None] | None = None
    first_layer: str = "auto"
    kernel_max_bytes: int = KERNEL_MAX_BYTES


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


def per_example_loss(loss: str, out: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None):
    """Loss of every (model, example): out ``[K, B, C]`` -> ``[K, B]``."""
    if loss == "mse":
        return 0.5 * (out - t).square().sum(-1)
    logp = torch.log_softmax(out, dim=-1)
    return -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1)


class BatchedOptimizer:
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
        self.lr = tcfg.lr  # of the current epoch (set_lr): train.lr_schedule
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

    def set_lr(self, lr: float) -> None:
        """The learning rate of the following steps (as a scheduler sets a param group's
        ``lr``: momentum and Adam state are kept)."""
        self.lr = float(lr)

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
        lr, wd, mom = self.lr, cfg.weight_decay, cfg.momentum
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


def report_progress(progress: ProgressFn | logging.Logger | None, info: dict) -> None:
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


def epoch_batches(
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


def fixed_order_batches(
    incl: list[np.ndarray], n: int, batch_size: int, pad: int
) -> tuple[np.ndarray, np.ndarray]:
    """``epoch_batches`` without shuffling (``train.shuffle: false``, the original's DataLoader
    with ``shuffle=False``): step s holds records ``s B .. (s+1) B - 1`` of D in order, minus those
    a model leaves out, so an out model's batches are the in model's with the record removed
    (one batch one smaller) and a batch a model has no record of is a step it skips."""
    k = len(incl)
    n_steps = int(math.ceil(n / batch_size)) if n > 0 else 0
    idx = np.full((n_steps, k, batch_size), pad, dtype=np.int64)
    counts = np.zeros((n_steps, k), dtype=np.int64)
    for j, records in enumerate(incl):
        records = np.sort(records)
        step = records // batch_size
        rank = np.arange(len(records)) - np.searchsorted(step, step, side="left")
        idx[step, j, rank] = records
        counts[:, j] = np.bincount(step, minlength=n_steps)
    return idx, counts


class StackedNetwork:
    """Forward and hand-written backward pass of the stacked MLP into preallocated buffers.

    Same maths as :func:`lood.train.models.forward` plus autograd (the tests check it against
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


def loss_and_grad(
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


@torch.no_grad()
def stacked_outputs(
    params: Params, arch: Architecture, x: torch.Tensor, rows: int = 4096
) -> torch.Tensor:
    """Forward ``[M, d]`` through every model in row blocks (bounded memory) -> ``[K, M, C]``."""
    k = n_models(params)
    if x.shape[0] == 0:
        return torch.zeros(k, 0, arch.n_outputs, dtype=x.dtype)
    parts = [forward(params, arch, x[i : i + rows]).cpu() for i in range(0, x.shape[0], rows)]
    return torch.cat(parts, dim=1)


def fit_statistics(
    params: Params,
    arch: Architecture,
    loss: str,
    x: torch.Tensor,
    y: torch.Tensor,
    masks: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Final loss and accuracy ``[K]`` of each model on its own included records (``masks``)."""
    f_train = stacked_outputs(params, arch, x)
    k, n = masks.shape
    with torch.no_grad():
        yy = y.cpu().expand(k, n)
        tt = None
        if loss == "mse":
            tt = regression_targets(y.cpu(), arch.n_outputs, f_train.dtype).expand(k, n, -1)
        per_ex = per_example_loss(loss, f_train, yy, tt)
        m = torch.from_numpy(np.asarray(masks)).to(per_ex.dtype)
        cnt = m.sum(1)
        hit = (f_train.argmax(-1) == yy).to(per_ex.dtype)
        train_loss = (per_ex * m).sum(1) / cnt
        train_acc = (hit * m).sum(1) / cnt
    return train_loss.double().numpy(), train_acc.double().numpy()


@dataclass(frozen=True)
class Inputs:
    """The training data of one ensemble call on its device: an extra all-zero row at index N pads
    short batches (so padding never touches a record), and the regression targets for MSE."""

    x_ext: torch.Tensor  # [N + 1, d]
    y_ext: torch.Tensor  # [N + 1] int64
    t_ext: torch.Tensor | None  # [N + 1, C] one-hot minus 1/C (MSE), else None

    @property
    def n(self) -> int:
        return self.x_ext.shape[0] - 1

    @property
    def dtype(self) -> torch.dtype:
        """The run's floating-point type (``EnsembleOptions.dtype``)."""
        return self.x_ext.dtype


@dataclass(frozen=True)
class Chunk:
    """The models one chunk trainer call trains: their masks ``[k, N]`` bool and seeds ``[k]``,
    and ``offset``, the index of the first of them in the whole ensemble (error messages name
    models by it)."""

    masks: np.ndarray
    seeds: np.ndarray
    offset: int


#: Trains one chunk of models: (inputs, chunk, on_epoch(epoch, mean loss), on_epoch_end) ->
#: (params, loss history [E, k], updates [k]).
ChunkTrainer = Callable[
    [Inputs, Chunk, Callable[[int, float], None], Callable[[int, Params], None] | None],
    tuple[Params, np.ndarray, np.ndarray],
]


def check_ensemble_inputs(
    arch: Architecture,
    tcfg: TrainConfig,
    X: torch.Tensor,
    y: torch.Tensor,
    masks: np.ndarray,
    seeds: np.ndarray,
    eval_sets: dict[str, torch.Tensor],
) -> None:
    """Raise ValueError naming the argument whose shape, dtype or range is wrong."""
    if X.dim() != 2:
        raise ValueError(f"X must be [N, d], got shape {tuple(X.shape)}")
    n, d = X.shape
    if y.shape != (n,) or y.dtype != torch.int64:
        raise ValueError(f"y must be int64 of shape [{n}], got {y.dtype} {tuple(y.shape)}")
    if n and (int(y.min()) < 0 or int(y.max()) >= arch.n_outputs):
        raise ValueError(f"labels must lie in [0, {arch.n_outputs}), got [{y.min()}, {y.max()}]")
    if masks.dtype != np.bool_ or masks.ndim != 2 or masks.shape[1] != n:
        raise ValueError(f"masks must be bool [K, {n}], got {masks.dtype} {masks.shape}")
    if seeds.shape[0] != masks.shape[0]:
        raise ValueError(f"need one seed per model: {masks.shape[0]} masks, {seeds.shape[0]} seeds")
    if masks.shape[0] == 0:
        raise ValueError("train_ensemble needs at least one model")
    if tcfg.loss == "cross_entropy" and arch.n_outputs < 2:
        raise ValueError("cross_entropy needs n_outputs >= 2")
    for name, xe in eval_sets.items():
        if xe.dim() != 2 or xe.shape[1] != d:
            raise ValueError(f"eval set {name!r} must be [M, {d}], got {tuple(xe.shape)}")


@dataclass(frozen=True)
class Run:
    """The checked arguments of one trainer call, moved to its device."""

    inputs: Inputs
    masks: np.ndarray  # [K, N] bool
    seeds: np.ndarray  # [K] int64
    eval_sets: dict[str, torch.Tensor]  # on the device, in the run's dtype
    device: torch.device


def prepare_run(
    arch: Architecture,
    tcfg: TrainConfig,
    X: torch.Tensor,
    y: torch.Tensor,
    masks: torch.Tensor | np.ndarray,
    seeds: Sequence[int] | np.ndarray,
    options: EnsembleOptions,
) -> Run:
    """Check a trainer's arguments (:func:`check_ensemble_inputs`) and put them and
    ``options.eval_sets`` on ``options.device`` in ``options.dtype``."""
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    masks_np = np.asarray(masks.cpu() if isinstance(masks, torch.Tensor) else masks)
    seeds_np = np.asarray(seeds, dtype=np.int64).reshape(-1)
    evals = dict(options.eval_sets or {})
    check_ensemble_inputs(arch, tcfg, X, y, masks_np, seeds_np, evals)
    device, dtype = torch.device(options.device), options.dtype
    d = X.shape[1]
    x_ext = torch.cat([X.to(dtype), torch.zeros(1, d, dtype=dtype)]).to(device)
    y_ext = torch.cat([y, torch.zeros(1, dtype=torch.int64)]).to(device)
    t_ext = regression_targets(y_ext, arch.n_outputs, dtype) if tcfg.loss == "mse" else None
    evals = {name: xe.to(device=device, dtype=dtype) for name, xe in evals.items()}
    return Run(Inputs(x_ext, y_ext, t_ext), masks_np, seeds_np, evals, device)


def run_chunks(
    arch: Architecture,
    tcfg: TrainConfig,
    run: Run,
    train_chunk: ChunkTrainer,
    options: EnsembleOptions,
    t0: float,
    extra: dict[str, object],
) -> EnsembleResult:
    """Train the models ``options.chunk_size`` at a time with ``train_chunk`` and gather the
    result: outputs on the run's eval sets, training loss and accuracy on each model's own
    records, progress per epoch. Shared by the plain and the DP-SGD trainers."""
    inputs, masks, seeds, eval_sets = run.inputs, run.masks, run.seeds, run.eval_sets
    chunk_size, progress, on_epoch_end = options.chunk_size, options.progress, options.on_epoch_end
    k_total = masks.shape[0]
    chunk = k_total if chunk_size is None else int(chunk_size)
    if chunk < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if on_epoch_end is not None and chunk < k_total:
        raise ValueError("on_epoch_end needs all models in one chunk (chunk_size >= K)")
    n = inputs.n
    starts = list(range(0, k_total, chunk))
    parts: list[Params] = []
    histories, updates = [], []
    outs: dict[str, list[torch.Tensor]] = {name: [] for name in eval_sets}
    train_loss, train_acc = [], []
    for ci, start in enumerate(starts):
        stop = min(start + chunk, k_total)

        def on_epoch(epoch: int, loss_mean: float, start=start, stop=stop, ci=ci) -> None:
            done_units = start * tcfg.epochs + (stop - start) * (epoch + 1)
            elapsed = time.perf_counter() - t0
            frac = done_units / max(k_total * tcfg.epochs, 1)
            report_progress(
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

        params, hist, upd = train_chunk(
            inputs, Chunk(masks[start:stop], seeds[start:stop], start), on_epoch, on_epoch_end
        )
        histories.append(hist)
        updates.append(upd)
        for name, xe in eval_sets.items():
            outs[name].append(stacked_outputs(params, arch, xe))
        loss_k, acc_k = fit_statistics(
            params, arch, tcfg.loss, inputs.x_ext[:n], inputs.y_ext[:n], masks[start:stop]
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
        seeds=seeds,
        seconds=time.perf_counter() - t0,
        extra={"chunk_size": chunk, **extra},
    )

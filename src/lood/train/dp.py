"""Differentially private training (DP-SGD) of the batched ensembles, and its privacy accounting.

DP-SGD (Abadi et al. 2016) as Opacus implements it, for every model of a stacked ensemble:

* **Poisson sampling.** At every step each record of model k's training set joins the batch
  independently with probability ``q = 1 / ceil(N / batch_size)`` (Opacus's ``DPDataLoader``:
  ``1 / len(data_loader)``), and there are ``ceil(N / batch_size)`` steps per epoch. N is |D| for
  every model, out models included, so that in and out models run the *same* mechanism on
  neighbouring datasets (add/remove adjacency), which is what the guarantee is about.
* **Per-sample clipping.** Every per-sample gradient g_i (over all parameters of the model) is
  scaled to norm at most C: ``g_i * min(1, C / (||g_i|| + 1e-6))`` (Opacus's flat clipping).
* **Gaussian noise.** ``(sum_i clip(g_i) + N(0, sigma^2 C^2 I)) / (q N)``: divided by the expected
  batch size, as Opacus does for a mean-reduced loss; then the usual SGD/Adam update.

Per-sample gradient norms of a dense layer need no per-sample gradients: the gradient of sample i
for ``z = alpha h W`` is ``alpha h_i delta_i^T``, a rank-one matrix of norm
``alpha ||h_i|| ||delta_i||`` ("ghost" norms). One backward pass gives all ``delta_i`` and the
norms; a second one, of the per-sample losses weighted by the clipping factors, gives the clipped
sum. The tests check one step against Opacus's ``GradSampleModule`` + ``DPOptimizer`` on the same
network and batch.

The privacy spent, epsilon at the configured delta, comes from Opacus's accountants (RDP or PRV)
for (sigma, q, steps); with ``target_epsilon`` the noise multiplier is calibrated to it by
Opacus's ``get_noise_multiplier``. Noise is drawn from one ``torch.Generator`` per model seeded
from the model's seed, so a model's result does not depend on the other models of the ensemble.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from lood.arch import Architecture
from lood.seeds import derive_seed
from lood.train.models import Params, init_params, param_names
from lood.train.primitives import (
    BatchedOptimizer,
    Chunk,
    EnsembleOptions,
    EnsembleResult,
    Inputs,
    StackedNetwork,
    fit_statistics,
    loss_and_grad,
    per_example_loss,
    prepare_run,
    regression_targets,
    report_progress,
    run_chunks,
    stacked_outputs,
)
from lood.train.spec import DPConfig, TrainConfig, TrainSpec

# Opacus adds this to the norm before dividing (flat clipping).
_CLIP_EPS = 1e-6


class Scale(torch.nn.Module):
    """Multiply by a constant: the ntk parameterisation's W_std / sqrt(fan_in) before a layer."""

    def __init__(self, alpha: float) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.alpha


def torch_module(params: Params, arch: Architecture, k: int = 0) -> torch.nn.Sequential:
    """Model ``k`` of a stacked ensemble as ``nn.Linear`` layers (e.g. for Opacus's hooks).

    Same function and parameters: the ntk scaling is a :class:`Scale` before each layer, weights
    are transposed to ``nn.Linear``'s ``[fan_out, fan_in]``. ntk biases (scaled by b_std) have no
    ``nn.Linear`` equivalent, so b_std > 0 needs the standard parameterisation.
    """
    if arch.has_bias and arch.parameterization == "ntk":
        raise ValueError("torch_module: ntk biases are scaled by b_std; use b_std = 0 or standard")
    w0 = params["W0"]
    dims = [w0.shape[1]] + [arch.width] * arch.depth + [arch.n_outputs]
    layers: list[torch.nn.Module] = []
    for i in range(arch.depth + 1):
        alpha = arch.W_std / math.sqrt(dims[i]) if arch.parameterization == "ntk" else 1.0
        lin = torch.nn.Linear(dims[i], dims[i + 1], bias=arch.has_bias, dtype=w0.dtype)
        with torch.no_grad():
            lin.weight.copy_(params[f"W{i}"][k].T)
            if arch.has_bias:
                lin.bias.copy_(params[f"b{i}"][k])
        layers += [Scale(alpha), lin]
        if i < arch.depth:
            layers.append(torch.nn.ReLU() if arch.activation == "relu" else torch.nn.GELU())
    return torch.nn.Sequential(*layers)


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Poisson-sampled steps per epoch, ``ceil(N / batch_size)`` (as Opacus's DPDataLoader)."""
    if n_train < 1 or batch_size < 1:
        raise ValueError(f"need n_train >= 1 and batch_size >= 1, got {n_train}, {batch_size}")
    return math.ceil(n_train / batch_size)


def sample_rate(n_train: int, batch_size: int) -> float:
    """Poisson sampling probability of a record per step, ``1 / steps_per_epoch``."""
    return 1.0 / steps_per_epoch(n_train, batch_size)


def _accountant(name: str):
    from opacus.accountants import PRVAccountant, RDPAccountant

    return {"rdp": RDPAccountant, "prv": PRVAccountant}[name]()


def epsilon(
    noise_multiplier: float, q: float, steps: int, delta: float, accountant: str = "rdp"
) -> float:
    """Epsilon spent by ``steps`` Poisson-subsampled Gaussian steps, by an Opacus accountant."""
    DPConfig(noise_multiplier, 1.0, delta, accountant)  # validates the mechanism's settings
    if not 0 < q <= 1:
        raise ValueError(f"sample rate must be in (0, 1], got {q}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if steps == 0:
        return 0.0
    acc = _accountant(accountant)
    acc.history = [(float(noise_multiplier), float(q), int(steps))]
    with warnings.catch_warnings():  # RDP warns about the optimal order at the grid's edge
        warnings.simplefilter("ignore")
        return float(acc.get_epsilon(delta=float(delta)))


def calibrate_noise(
    target_epsilon: float, q: float, steps: int, delta: float, accountant: str = "rdp"
) -> float:
    """The noise multiplier that spends ``target_epsilon`` (Opacus's ``get_noise_multiplier``)."""
    from opacus.accountants.utils import get_noise_multiplier

    if not (math.isfinite(target_epsilon) and target_epsilon > 0):
        raise ValueError(f"train.dp.target_epsilon must be > 0, got {target_epsilon}")
    if steps < 1:
        raise ValueError(f"calibrating the noise needs at least one step, got {steps}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(
            get_noise_multiplier(
                target_epsilon=float(target_epsilon),
                target_delta=float(delta),
                sample_rate=float(q),
                steps=int(steps),
                accountant=accountant,
                epsilon_tolerance=0.005,
            )
        )


def dp_config(train: TrainSpec, n_train: int) -> DPConfig | None:
    """The DP-SGD mechanism of an experiment's training, or None when ``train.dp`` is off.

    ``target_epsilon`` (when set) replaces ``noise_multiplier`` by the calibrated one for this
    N, batch size and number of epochs.
    """
    spec = train.dp
    if not spec.enabled:
        return None
    spec.check(n_train)
    base = DPConfig(spec.noise_multiplier, spec.max_grad_norm, spec.delta, spec.accountant)
    if spec.target_epsilon is None:
        return base
    steps = train.epochs * steps_per_epoch(n_train, train.batch_size)
    q = sample_rate(n_train, train.batch_size)
    noise = calibrate_noise(spec.target_epsilon, q, steps, base.delta, base.accountant)
    return DPConfig(noise, base.max_grad_norm, base.delta, base.accountant)


def spent_epsilon(dp: DPConfig, n_train: int, batch_size: int, epochs: int) -> float:
    """Epsilon that training with ``dp`` for ``epochs`` epochs spends (one number per model)."""
    steps = epochs * steps_per_epoch(n_train, batch_size)
    return epsilon(
        dp.noise_multiplier, sample_rate(n_train, batch_size), steps, dp.delta, dp.accountant
    )


def poisson_batches(
    rngs: list[np.random.Generator], incl: list[np.ndarray], q: float, n_steps: int, pad: int
) -> tuple[np.ndarray, np.ndarray]:
    """One epoch of Poisson batches: indices ``[S, K, B]`` padded with ``pad``, and sizes [S, K].

    Model k draws ``rngs[k].random(len(incl[k])) < q`` at every step, in step order.
    """
    k = len(incl)
    chosen = [
        [inc[rng.random(len(inc)) < q] for _ in range(n_steps)]
        for rng, inc in zip(rngs, incl, strict=True)
    ]
    sizes = np.array(
        [[len(chosen[j][s]) for j in range(k)] for s in range(n_steps)], dtype=np.int64
    )
    width = max(1, int(sizes.max()) if sizes.size else 1)
    idx = np.full((n_steps, k, width), pad, dtype=np.int64)
    for s in range(n_steps):
        for j in range(k):
            idx[s, j, : sizes[s, j]] = chosen[j][s]
    return idx, sizes


def per_sample_sq_norms(net: Any, x: torch.Tensor) -> torch.Tensor:
    """Squared norm of every per-sample gradient ``[K, B]`` after ``net.backward`` (ghost norms).

    ``net`` is an ``ensemble.StackedNetwork`` whose forward/backward buffers hold this batch; x is its
    input ``[K, B, d]``. Layer l contributes ``alpha_l^2 ||h_i||^2 ||delta_i||^2`` (+ the bias
    term ``beta_l^2 ||delta_i||^2``).
    """
    sq = torch.zeros(x.shape[0], x.shape[1], dtype=torch.float64, device=x.device)
    for layer in range(net.n_layers):
        h = x if layer == 0 else net.a[layer - 1]
        d2 = net.delta[layer].square().sum(-1).double()
        alpha, beta = net.scales[layer]
        sq += alpha**2 * h.square().sum(-1).double() * d2
        if net.arch.has_bias:
            sq += beta**2 * d2
    return sq


def clipped_grad_sum(
    net: Any, x: torch.Tensor, dout: torch.Tensor, clip: float, grads: Params
) -> torch.Tensor:
    """Sum over the batch of the clipped per-sample gradients, written into ``grads`` (by name).

    ``net`` (an ``ensemble.StackedNetwork``) has just run forward on x ``[K, B, d]``; ``dout`` is the
    gradient of every per-sample loss w.r.t. the output (zero rows for padding; overwritten).
    Returns the per-sample gradient norms ``[K, B]`` before clipping.
    """
    net.backward(dout)
    norms = per_sample_sq_norms(net, x).sqrt_()
    factor = (clip / (norms + _CLIP_EPS)).clamp_(max=1.0).to(dout.dtype)
    delta0 = net.backward(dout.mul_(factor.unsqueeze(-1)))
    alpha0 = net.scales[0][0]
    torch.baddbmm(grads["W0"], x.transpose(1, 2), delta0, beta=0.0, alpha=alpha0, out=grads["W0"])
    for name, g in grads.items():
        if name != "W0":  # the backward pass leaves every other gradient in net.grads
            g.copy_(net.grads[name])
    return norms


def train_chunk_dp(
    arch: Architecture,
    tcfg: Any,
    dp: DPConfig,
    inputs: Inputs,
    chunk: Chunk,
    on_epoch: Callable[[int, float], None],
    on_epoch_end: Callable[[int, Params], None] | None = None,
) -> tuple[Params, np.ndarray, np.ndarray]:
    """DP-SGD for one chunk of models; same contract as ``ensemble.train_chunk``.

    Data order: model k uses ``numpy.random.default_rng(seeds[k])`` for its Poisson batches (see
    :func:`poisson_batches`) and ``torch.Generator`` seeded ``derive_seed(seeds[k], "dp-noise")``
    for its noise, drawn per parameter in :func:`lood.train.models.param_names` order at every step.
    Every model takes every step (an empty Poisson batch is a pure-noise step, as in Opacus).
    """
    x_ext, y_ext, t_ext, dtype = inputs.x_ext, inputs.y_ext, inputs.t_ext, inputs.dtype
    masks, seeds, offset = chunk.masks, chunk.seeds, chunk.offset
    device = x_ext.device
    k = len(seeds)
    n, d = x_ext.shape[0] - 1, x_ext.shape[1]  # the last row of x_ext is the zero padding row
    pad = n
    q = sample_rate(n, tcfg.batch_size)
    n_steps = steps_per_epoch(n, tcfg.batch_size)
    expected_batch = q * n
    clip, noise_std = dp.max_grad_norm, dp.noise_multiplier * dp.max_grad_norm
    params = init_params(arch, d, [int(s) for s in seeds], device=device, dtype=dtype)
    names = param_names(arch)
    opt = BatchedOptimizer(tcfg, [params[nm] for nm in names], k, has_w0=False)
    grads = {nm: torch.empty_like(params[nm]) for nm in names}
    noise = {nm: torch.empty_like(params[nm][0]) for nm in names}
    rngs = [np.random.default_rng(int(s)) for s in seeds]
    gens = [
        torch.Generator(device=device).manual_seed(derive_seed(int(s), "dp-noise")) for s in seeds
    ]
    incl = [np.flatnonzero(m) for m in masks]
    history = np.full((tcfg.epochs, k), np.nan)
    n_updates = np.zeros(k, dtype=np.int64)
    net, net_bsz = None, 0
    for epoch in range(tcfg.epochs):
        opt.set_lr(tcfg.lr_at(epoch))
        idx_np, sizes_np = poisson_batches(rngs, incl, q, n_steps, pad)
        if net is None or idx_np.shape[2] > net_bsz:
            net_bsz = max(idx_np.shape[2], int(expected_batch + 4 * math.sqrt(expected_batch)) + 1)
            net = StackedNetwork(arch, params, k, net_bsz, d)
        idx_full = np.full((n_steps, k, net_bsz), pad, dtype=np.int64)
        idx_full[:, :, : idx_np.shape[2]] = idx_np
        idx_all = torch.from_numpy(idx_full).to(device)
        sizes = torch.from_numpy(sizes_np).to(device=device, dtype=dtype)
        valid = (torch.arange(net_bsz, device=device)[None, None, :] < sizes[:, :, None]).to(dtype)
        loss_sum = torch.zeros(k, dtype=torch.float64, device=device)
        for s in range(n_steps):
            ids = idx_all[s].reshape(-1)
            xb = torch.index_select(x_ext, 0, ids, out=net.xbuf).view(k, net_bsz, d)
            out = net.forward(xb)
            t_b = None if t_ext is None else t_ext.index_select(0, ids).view(k, net_bsz, -1)
            loss_k, dout = loss_and_grad(tcfg.loss, out, y_ext[ids].view(k, net_bsz), t_b, valid[s])
            if not bool(torch.isfinite(loss_k).all()):
                bad = (torch.nonzero(~torch.isfinite(loss_k)).flatten() + offset).tolist()
                raise FloatingPointError(
                    f"train_ensemble (DP-SGD): non-finite loss for model(s) {bad} in epoch {epoch} "
                    f"(step {s}); lower the learning rate"
                )
            loss_sum += (loss_k / sizes[s].clamp(min=1)).double()
            clipped_grad_sum(net, xb, dout, clip, grads)
            for nm in names:
                g, buf = grads[nm], noise[nm]
                for j in range(k):
                    torch.randn(buf.shape, generator=gens[j], out=buf, dtype=dtype, device=device)
                    g[j].add_(buf, alpha=noise_std)
                g.div_(expected_batch)
            opt.step(None, [grads[nm] for nm in names], None)
        n_updates += n_steps
        history[epoch] = loss_sum.cpu().numpy() / n_steps
        on_epoch(epoch, float(np.nanmean(history[epoch])))
        if on_epoch_end is not None:
            on_epoch_end(epoch, {nm: p.detach().cpu().clone() for nm, p in params.items()})
    return params, history, n_updates


def _no_drop_last(tcfg: TrainConfig) -> None:
    if tcfg.drop_last:
        raise ValueError(
            "train.drop_last does not apply to DP-SGD: its Poisson batches have no last batch"
        )


def train_ensemble_dp(
    arch: Architecture,
    tcfg: TrainConfig,
    dp: DPConfig,
    X: torch.Tensor,
    y: torch.Tensor,
    masks: torch.Tensor | np.ndarray,
    seeds: Sequence[int] | np.ndarray,
    options: EnsembleOptions | None = None,
) -> EnsembleResult:
    """DP-SGD for K stacked models: the sibling of :func:`lood.train.ensemble.train_ensemble`
    with the same arguments and result (Poisson batches, per-sample clipping, Gaussian noise;
    always the standard first layer, as the noise is per weight: ``options.first_layer`` and
    ``kernel_max_bytes`` are not used)."""
    t0 = time.perf_counter()
    _no_drop_last(tcfg)
    options = options or EnsembleOptions()
    run = prepare_run(arch, tcfg, X, y, masks, seeds, options)

    def chunk_fn(inp, chunk, on_epoch, on_end):
        return train_chunk_dp(arch, tcfg, dp, inp, chunk, on_epoch, on_end)

    extra = {
        "dtype": str(options.dtype),
        "device": str(run.device),
        "first_layer": "standard",
        "dp": dp,
    }
    return run_chunks(arch, tcfg, run, chunk_fn, options, t0, extra)


def train_opacus(
    arch: Architecture,
    tcfg: Any,
    dp: DPConfig,
    X: torch.Tensor,
    y: torch.Tensor,
    masks: np.ndarray,
    seeds: np.ndarray,
    options: EnsembleOptions | None = None,
) -> Any:
    """DP-SGD with Opacus itself, one model after another (``train.dp.backend: opacus``).

    Each model is :func:`torch_module` of its initial parameters, wrapped in Opacus's
    ``GradSampleModule`` and ``DPOptimizer`` and fed by its ``DPDataLoader`` (Poisson sampling,
    generator seeded from the model's seed) over its own records, with the same sample rate,
    expected batch size ``q N`` and noise as the ensemble backend, so both run the same
    mechanism with different random draws. Slower (see ``benchmarks/BENCHMARKS.md``); for
    cross-checking the ensemble and as the place to start for architectures it does not cover.
    Of ``options`` it uses ``device``, ``eval_sets`` and ``progress`` (the models are trained one
    at a time, so ``chunk_size`` holds); a dtype other than float32 or an ``on_epoch_end`` is an
    error. Returns an :class:`lood.train.ensemble.EnsembleResult`.
    """
    from opacus import GradSampleModule
    from opacus.data_loader import DPDataLoader
    from opacus.optimizers import DPOptimizer
    from torch.utils.data import TensorDataset

    t0 = time.perf_counter()
    _no_drop_last(tcfg)
    options = options or EnsembleOptions()
    if options.dtype != torch.float32 or options.on_epoch_end is not None:
        raise ValueError("train_opacus trains in float32 and has no on_epoch_end")
    device, eval_sets, progress = torch.device(options.device), options.eval_sets, options.progress
    n, d = X.shape
    q = sample_rate(n, tcfg.batch_size)
    X = X.to(device=device, dtype=torch.float32)
    y = y.to(device)
    t_all = regression_targets(y, arch.n_outputs, torch.float32)
    eval_sets = {k: v.to(device=device, dtype=torch.float32) for k, v in (eval_sets or {}).items()}
    parts, history, outs = (
        [],
        np.full((tcfg.epochs, len(seeds)), np.nan),
        {k: [] for k in eval_sets},
    )
    n_updates = np.zeros(len(seeds), dtype=np.int64)
    for j, (mask, seed) in enumerate(zip(masks, seeds, strict=True)):
        init = init_params(arch, d, [int(seed)], device=device)
        module = GradSampleModule(torch_module(init, arch), loss_reduction="mean")
        if tcfg.optimizer == "sgd":
            base = torch.optim.SGD(
                module.parameters(),
                lr=tcfg.lr,
                momentum=tcfg.momentum,
                weight_decay=tcfg.weight_decay,
            )
        else:
            base = torch.optim.Adam(
                module.parameters(),
                lr=tcfg.lr,
                betas=tcfg.adam_betas,
                eps=tcfg.adam_eps,
                weight_decay=tcfg.weight_decay,
            )
        opt = DPOptimizer(
            base,
            noise_multiplier=dp.noise_multiplier,
            max_grad_norm=dp.max_grad_norm,
            expected_batch_size=q * n,
            loss_reduction="mean",
            generator=torch.Generator(device=device).manual_seed(
                derive_seed(int(seed), "dp-noise")
            ),
        )
        idx = torch.from_numpy(np.flatnonzero(mask)).to(device)
        loader = DPDataLoader(
            TensorDataset(X[idx], t_all[idx], y[idx]),
            sample_rate=q,
            generator=torch.Generator().manual_seed(derive_seed(int(seed), "dp-sampling")),
        )
        for epoch in range(tcfg.epochs):
            for group in opt.param_groups:  # train.lr_schedule, as an LRScheduler would set it
                group["lr"] = tcfg.lr_at(epoch)
            total, steps = 0.0, 0
            for xb, tb, yb in loader:
                opt.zero_grad(set_to_none=True)
                out = module(xb)
                per_ex = per_example_loss(
                    tcfg.loss, out.unsqueeze(0), yb.unsqueeze(0), tb.unsqueeze(0)
                )
                # a batch mean, as GradSampleModule(loss_reduction="mean") expects; DPOptimizer
                # then divides the clipped sum by the expected batch size q N
                loss = per_ex.mean() if len(xb) else per_ex.sum()
                loss.backward()
                opt.step()
                total += float(loss.detach())
                steps += 1
            history[epoch, j] = total / max(steps, 1)
            n_updates[j] += steps
        lin = [m for m in module._module if isinstance(m, torch.nn.Linear)]
        params = {}
        for i, layer in enumerate(lin):
            params[f"W{i}"] = layer.weight.detach().T.unsqueeze(0).contiguous()
            if arch.has_bias:
                params[f"b{i}"] = layer.bias.detach().unsqueeze(0).clone()
        for name, xe in eval_sets.items():
            outs[name].append(stacked_outputs(params, arch, xe))
        parts.append({k: v.cpu() for k, v in params.items()})
        report_progress(
            progress,
            {
                "models_done": j + 1,
                "n_models": len(seeds),
                "chunk": j + 1,
                "n_chunks": len(seeds),
                "epoch": tcfg.epochs,
                "epochs": tcfg.epochs,
                "loss_mean": float(history[-1, j]) if tcfg.epochs else math.nan,
                "elapsed": time.perf_counter() - t0,
                "eta": (time.perf_counter() - t0) * (len(seeds) - j - 1) / (j + 1),
            },
        )
    params_all = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    loss_k, acc_k = fit_statistics(params_all, arch, tcfg.loss, X.cpu(), y.cpu(), np.asarray(masks))
    return EnsembleResult(
        params=params_all,
        outputs={k: torch.cat(v).numpy() for k, v in outs.items()},
        final_train_loss=loss_k,
        final_train_accuracy=acc_k,
        loss_history=history,
        n_updates=n_updates,
        seeds=np.asarray(seeds, dtype=np.int64),
        seconds=time.perf_counter() - t0,
        extra={"device": str(device), "dtype": "torch.float32", "dp": dp, "backend": "opacus"},
    )

"""Batched ensemble training (lood.train.ensemble.train_ensemble) vs a plain one-model-at-a-time loop.

The baseline is what one would write without the ensemble: an ``nn.Module`` per model, trained
with ``torch.optim.SGD`` in a Python loop over mini-batches, one model after another, with the
same architecture, data, mini-batch order, number of steps and batch size.

    .venv/bin/python benchmarks/bench_ensemble.py            # K = 1, 10, 100 + scaling in K, N
    .venv/bin/python benchmarks/bench_ensemble.py --quick    # small smoke run
    .venv/bin/python benchmarks/bench_ensemble.py --preset default --ks 100 --no-scaling
                                                             # the default experiment's setting

The ensemble is timed twice: with the automatic first-layer choice (the kernel-space first layer
where it pays, see lood.train.ensemble) and with ``first_layer="standard"`` forced.
"""

from __future__ import annotations

import argparse
import functools
import math
import platform
import time

import numpy as np
import torch
import torch.nn as nn

from lood.arch import Architecture
from lood.train.ensemble import train_ensemble
from lood.train.models import init_params
from lood.train.primitives import EnsembleOptions, regression_targets
from lood.train.spec import TrainConfig


class _Dense(nn.Module):
    """nn.Linear with the neural-tangents NTK scaling (W_std / sqrt(fan_in), b_std)."""

    def __init__(self, fan_in: int, fan_out: int, arch: Architecture) -> None:
        super().__init__()
        self.lin = nn.Linear(fan_in, fan_out, bias=arch.has_bias)
        ntk = arch.parameterization == "ntk"
        self.w_scale = arch.W_std / math.sqrt(fan_in) if ntk else 1.0
        self.b_scale = arch.b_std if ntk else 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.linear(x, self.lin.weight) * self.w_scale
        if self.lin.bias is not None:
            h = h + self.b_scale * self.lin.bias
        return h


def plain_model(arch: Architecture, d: int, seed: int) -> nn.Module:
    layers: list[nn.Module] = []
    dims = [d] + [arch.width] * arch.depth + [arch.n_outputs]
    init = init_params(arch, d, [seed])
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=False)):
        dense = _Dense(a, b, arch)
        with torch.no_grad():
            dense.lin.weight.copy_(init[f"W{i}"][0].T)
            if arch.has_bias:
                dense.lin.bias.copy_(init[f"b{i}"][0])
        layers.append(dense)
        if i < arch.depth:
            layers.append(nn.ReLU() if arch.activation == "relu" else nn.GELU())
    return nn.Sequential(*layers)


def train_plain(arch, tcfg, X, y, masks, seeds) -> None:
    """Baseline: one model after another, nn.Module + torch.optim.SGD, same batch order."""
    targets = regression_targets(y, arch.n_outputs, torch.float32)
    for mask, seed in zip(masks, seeds, strict=True):
        model = plain_model(arch, X.shape[1], int(seed))
        opt = torch.optim.SGD(model.parameters(), lr=tcfg.lr, momentum=tcfg.momentum)
        rng = np.random.default_rng(int(seed))
        incl = np.flatnonzero(mask)
        for _ in range(tcfg.epochs):
            order = torch.from_numpy(incl[rng.permutation(len(incl))])
            for i in range(0, len(order), tcfg.batch_size):
                b = order[i : i + tcfg.batch_size]
                loss = 0.5 * (model(X[b]) - targets[b]).square().sum(1).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()


def problem(n: int, d: int, k: int, seed: int = 0, standardized: bool = False):
    g = torch.Generator().manual_seed(seed)
    # pixel-like inputs in [0, 1), or zero-mean unit-variance ones like the standardized data
    X = torch.randn(n, d, generator=g) if standardized else torch.rand(n, d, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    masks = np.ones((k, n), dtype=bool)  # model 0 is an "in" model, model j >= 1 is the
    masks[np.arange(1, k), (np.arange(1, k) - 1) % n] = False  # "out" model of record j - 1
    return X, y, masks, list(range(k))


def timed(fn, repeats: int = 1) -> float:
    """Best wall time of ``repeats`` calls (the VM's timings are noisy; the minimum is stable)."""
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2, help="best of this many runs")
    ap.add_argument("--no-scaling", action="store_true", help="skip the K/N scaling table")
    ap.add_argument(
        "--preset",
        choices=("bench", "default"),
        default="bench",
        help="bench: N=600, 10 epochs, lr 0.5, W_std 1, inputs in [0, 1); default: the default "
        "experiment's N=500, 20 epochs, lr 2.0, W_std sqrt(2), standardized inputs",
    )
    ap.add_argument("--ks", type=int, nargs="+", default=None, help="ensemble sizes K")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    d = 784
    if args.preset == "default":
        n, epochs, lr, w_std = 500, 20, 2.0, math.sqrt(2.0)
    else:
        n, epochs, lr, w_std = (200, 2, 0.5, 1.0) if args.quick else (600, 10, 0.5, 1.0)
    ks = args.ks or ((1, 10) if args.quick else (1, 10, 100))
    arch = Architecture(2, 128, "relu", w_std, 0.0, "ntk", 10)
    tcfg = TrainConfig(epochs=epochs, lr=lr, batch_size=64, momentum=0.9)
    std = args.preset == "default"
    print(
        f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"threads={torch.get_num_threads()}, best of {args.repeats}; N={n} d={d} depth={arch.depth} "
        f"width={arch.width} {arch.activation} {arch.parameterization} W_std={w_std:.3g} MSE "
        f"SGD(lr {lr}, momentum 0.9), {epochs} epochs, batch {tcfg.batch_size}, "
        f"{'standardized' if std else '[0, 1)'} inputs"
    )
    print(
        "| K | plain loop (s) | plain models/s | ensemble, standard W0 (s) | models/s | speed-up "
        "| ensemble, auto (s) | models/s | speed-up | first layer |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---|")
    for k in ks:
        X, y, masks, seeds = problem(n, d, k, standardized=std)
        path = train_ensemble(
            arch, tcfg, X, y, masks, seeds, EnsembleOptions(first_layer="auto")
        ).extra
        train_ensemble(
            arch, tcfg, X, y, masks[:1], seeds[:1], EnsembleOptions(first_layer="standard")
        )  # warm-up
        train_plain(arch, tcfg, X, y, masks[:1], seeds[:1])
        t_plain, t_std, t_ens = math.inf, math.inf, math.inf
        problem_args = (arch, tcfg, X, y, masks, seeds)
        run_plain = functools.partial(train_plain, *problem_args)
        run_std = functools.partial(train_ensemble, *problem_args, first_layer="standard")
        run_auto = functools.partial(train_ensemble, *problem_args)
        for _ in range(args.repeats):  # interleaved, so a slow spell of the VM hits all three
            t_plain = min(t_plain, timed(run_plain))
            t_std = min(t_std, timed(run_std))
            t_ens = min(t_ens, timed(run_auto))
        print(
            f"| {k} | {t_plain:.2f} | {k / t_plain:.1f} | {t_std:.2f} | {k / t_std:.1f} "
            f"| {t_plain / t_std:.2f}x | {t_ens:.2f} | {k / t_ens:.1f} | {t_plain / t_ens:.2f}x "
            f"| {path['first_layer']} |",
            flush=True,
        )

    if args.no_scaling:
        return
    print("\n# ensemble cost vs K (N fixed) and vs N (K fixed)")
    print("| K | N | ensemble (s) | s per model |")
    print("|---:|---:|---:|---:|")
    k_grid = (10, 30, 100) if not args.quick else (2, 5, 10)
    n_grid = (300, 600, 1200) if not args.quick else (100, 200, 400)
    k_fix = 30 if not args.quick else 5
    rows = [(k, n) for k in k_grid] + [(k_fix, nn_) for nn_ in n_grid if nn_ != n]
    for k, nn_ in rows:
        X, y, masks, seeds = problem(nn_, d, k, standardized=std)
        t = timed(lambda: train_ensemble(arch, tcfg, X, y, masks, seeds), args.repeats)  # noqa: B023
        print(f"| {k} | {nn_} | {t:.2f} | {t / k:.3f} |", flush=True)


if __name__ == "__main__":
    main()

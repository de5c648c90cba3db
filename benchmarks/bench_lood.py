"""Rank-one LOO downdate (the product) versus a naive per-record re-solve (baseline, defined here).

Both compute, for P records of a training set of size N, the GP posterior at the record itself
with and without it, then KL LOOD and mean-distance LOOD (AUC is left out of both timings: given
the two Gaussians it costs the same in either path; ``lood_all`` is also timed with AUC).

The kernel is the real NNGP kernel of a default architecture (depth 2, relu, W_std 1.414,
b_std 0.05, ntk) on random Gaussian inputs (d = 64), with centred one-hot labels (C = 10) and
sigma2 = 0.05. Kernel computation is not timed.

    python benchmarks/bench_lood.py --sizes 1000 2000 4000 --records 10 50 200 --repeat 3
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import scipy.linalg

from lood.arch import Architecture
from lood.nngp.gp import centred_one_hot, fit_gp
from lood.nngp.kernel import nngp_kernel
from lood.nngp.loo import lood_all, lood_self
from lood.stats import kl_isotropic

ARCH = Architecture(
    depth=2,
    width=512,
    activation="relu",
    W_std=1.414,
    b_std=0.05,
    parameterization="ntk",
    n_outputs=10,
)


def naive_lood(K: np.ndarray, Y: np.ndarray, sigma2: float, records: np.ndarray) -> dict:
    """Baseline: one factorisation for D, then a fresh Cholesky of D minus i for every record."""
    n = K.shape[0]
    mat = K + sigma2 * np.eye(n)
    cf = scipy.linalg.cho_factor(mat, lower=True)
    kdq = K[:, records]
    mean_in = kdq.T @ scipy.linalg.cho_solve(cf, Y)
    var_in = K[records, records] - np.einsum("np,np->p", kdq, scipy.linalg.cho_solve(cf, kdq))
    mean_out = np.empty_like(mean_in)
    var_out = np.empty_like(var_in)
    for p, i in enumerate(records):
        keep = np.arange(n) != i
        cf_i = scipy.linalg.cho_factor(mat[np.ix_(keep, keep)], lower=True)
        k = K[keep, i]
        mean_out[p] = k @ scipy.linalg.cho_solve(cf_i, Y[keep])
        var_out[p] = K[i, i] - k @ scipy.linalg.cho_solve(cf_i, k)
    return {
        "kl": kl_isotropic(mean_out, var_out, mean_in, var_in),
        "mean_dist": np.sum((mean_in - mean_out) ** 2, axis=1),
    }


def rank_one_lood(K: np.ndarray, Y: np.ndarray, sigma2: float, records: np.ndarray) -> dict:
    """Product path: one factorisation, then the rank-one downdate for each record."""
    fit = fit_gp(K, Y, sigma2)
    return lood_self(fit, records, auc=False)


def _time(fn, *args, repeat: int = 1) -> tuple[float, dict]:
    """Best wall time of ``repeat`` runs (the minimum is the least disturbed by other load)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best, out


def _all(K: np.ndarray, Y: np.ndarray, sigma2: float, auc: bool) -> dict:
    """Product: one factorisation + diag(A), LOOD of every record at its own input."""
    return lood_all(fit_gp(K, Y, sigma2), auc=auc)


def _max_rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 4000])
    ap.add_argument("--records", type=int, nargs="+", default=[50], help="P values")
    ap.add_argument("--sigma2", type=float, default=0.05)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1, help="best of this many runs per timing")
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    # warm-up (BLAS threads, JIT of the kernel, scipy import paths)
    xw = rng.normal(size=(200, args.dim))
    kw = nngp_kernel(ARCH, xw)
    yw = centred_one_hot(rng.integers(0, 10, 200), 10)
    naive_lood(kw, yw, args.sigma2, np.arange(5))
    rank_one_lood(kw, yw, args.sigma2, np.arange(5))
    lood_all(fit_gp(kw, yw, args.sigma2))

    print(f"machine: {platform.processor() or platform.machine()}, numpy {np.__version__}")
    print(f"kernel: NNGP {ARCH}, inputs N(0, I_{args.dim}), C = 10, sigma2 = {args.sigma2}\n")
    print(
        "| N | P | naive re-solve (s) | rank-one (s) | speed-up | max rel. diff (KL, mean dist) "
        "| lood_all, all N records (s) | lood_all with AUC (s) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        x = rng.normal(size=(n, args.dim))
        K = nngp_kernel(ARCH, x, batch_size=1000)
        Y = centred_one_hot(rng.integers(0, 10, n), 10)
        for p in args.records:
            records = rng.choice(n, size=p, replace=False)
            t_naive, ref = _time(naive_lood, K, Y, args.sigma2, records, repeat=args.repeat)
            t_fast, res = _time(rank_one_lood, K, Y, args.sigma2, records, repeat=args.repeat)
            diff = max(_max_rel(res["kl"], ref["kl"]), _max_rel(res["mean_dist"], ref["mean_dist"]))
            t_all, all_res = _time(_all, K, Y, args.sigma2, False, repeat=args.repeat)
            t_all_auc, _ = _time(_all, K, Y, args.sigma2, True, repeat=args.repeat)
            diff_all = _max_rel(all_res["kl"][records], ref["kl"])
            print(
                f"| {n} | {p} | {t_naive:.2f} | {t_fast:.3f} | {t_naive / t_fast:.1f}x "
                f"| {diff:.1e} (lood_all: {diff_all:.1e}) | {t_all:.3f} | {t_all_auc:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()

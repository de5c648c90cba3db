"""Time and peak memory of the batched NNGP kernel ``K_DD`` (N x N) for d = 784 inputs.

Each size runs in a fresh subprocess so that its peak resident memory (``ru_maxrss``, which XLA's
allocations count towards, unlike ``tracemalloc``) belongs to that size alone. The baseline RSS
after importing JAX / neural-tangents (and TensorFlow, which neural-tangents imports) is reported
too. Time includes the one-off XLA compilation of the block shape (reported separately).

    python benchmarks/bench_kernel.py --sizes 2000 10000 --batch-size 1000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _child(n: int, d: int, batch_size: int, depth: int, activation: str) -> None:
    import numpy as np

    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    from lood.arch import Architecture
    from lood.nngp.kernel import nngp_kernel

    rss_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    arch = Architecture(depth, 512, activation, 1.414, 0.05, "ntk", 10)
    rng = np.random.default_rng(0)
    x = rng.random((n, d))  # pixel-like inputs in [0, 1)
    t0 = time.perf_counter()
    nngp_kernel(arch, x[: min(n, batch_size)], batch_size=batch_size)  # compile the block shape
    t_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    k = nngp_kernel(arch, x, batch_size=batch_size)
    t_kernel = time.perf_counter() - t0
    assert k.shape == (n, n) and np.all(np.isfinite(k))
    rss_end = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "n": n,
                "compile_s": t_compile,
                "kernel_s": t_kernel,
                "rss_start_mb": rss_start / 1024,
                "rss_import_mb": rss_import / 1024,
                "peak_rss_mb": rss_end / 1024,
                "kernel_mb": k.nbytes / 2**20,
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000])
    ap.add_argument("--dim", type=int, default=784)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--activation", default="relu", choices=["relu", "gelu"])
    ap.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.dim, args.batch_size, args.depth, args.activation)
        return

    print(
        f"NNGP kernel, depth {args.depth} {args.activation}, d = {args.dim}, "
        f"batch_size = {args.batch_size}, float64\n"
    )
    print(
        "| N | kernel time (s) | compile (s) | peak RSS (MB) | RSS after imports (MB) | K size (MB) |"
    )
    print("|---|---|---|---|---|---|")
    for n in args.sizes:
        cmd = [sys.executable, __file__, "--child", str(n), "--dim", str(args.dim)]
        cmd += ["--batch-size", str(args.batch_size), "--depth", str(args.depth)]
        cmd += ["--activation", args.activation]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(
            f"| {r['n']} | {r['kernel_s']:.2f} | {r['compile_s']:.2f} | {r['peak_rss_mb']:.0f} "
            f"| {r['rss_import_mb']:.0f} | {r['kernel_mb']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()

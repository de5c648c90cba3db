"""The MIA landscape's likelihood-ratio fits: the per-point, per-split loop (before issue 26)
against :func:`lood.privacy.mia.mia_landscape_table`'s batched fits, side by side in one run, on
the saved outputs of a finished experiment (``landscape/mia_outputs.npz``, ``differ.csv``; no
network is retrained). Prints best-of-n seconds of each, the ratio, and the largest difference
of each column (the loop is the code before the change: scipy's norm.logpdf and scikit-learn's
roc_auc_score once per split and point).

    PYTHONPATH=src .venv/bin/python benchmarks/bench_mia_landscape.py \\
        --results results/mnist_relu --repeat 3
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import roc_auc_score

from lood.io import load_npz
from lood.privacy.mia import mia_landscape_table
from lood.privacy.signals import margin_score
from lood.privacy.spec import MiaSpec

COLUMNS = ("mia_auc", "mia_auc_std", "in_score_mean", "out_score_mean")


def _logpdf(x: np.ndarray, sample: np.ndarray) -> np.ndarray:
    scale = max(float(sample.std(ddof=1)), 1e-12 * max(1.0, float(np.abs(sample).max())), 1e-30)
    return stats.norm.logpdf(x, loc=float(sample.mean()), scale=scale)


def loop_point(
    s_in: np.ndarray, s_out: np.ndarray, n_splits: int, seed: int
) -> tuple[float, float]:
    """The margin MIA of one point as before: one fit and one AUC per split."""
    rng = np.random.default_rng(seed)
    hin, hout = len(s_in) // 2, len(s_out) // 2
    aucs = np.empty(n_splits)
    for s in range(n_splits):
        pin, pout = rng.permutation(len(s_in)), rng.permutation(len(s_out))
        fit_in, test_in = s_in[pin[:hin]], s_in[pin[hin:]]
        fit_out, test_out = s_out[pout[:hout]], s_out[pout[hout:]]
        test = np.concatenate([test_in, test_out])
        llr = _logpdf(test, fit_in) - _logpdf(test, fit_out)
        labels = np.concatenate([np.ones(len(test_in)), np.zeros(len(test_out))])
        aucs[s] = roc_auc_score(labels, llr)
    return float(aucs.mean()), float(aucs.std())


def loop_table(q: dict, labels: np.ndarray, positions: np.ndarray, spec: MiaSpec) -> pd.DataFrame:
    """The landscape table with the loop over records, points and splits."""
    rows = []
    for i, (record, label, pos) in enumerate(zip(q["records"], labels, positions, strict=True)):
        for j, tj in enumerate(q["t"]):
            s_in = margin_score(q["in_outputs"][:, i, j], int(label))
            s_out = margin_score(q["out_outputs"][i, :, j], int(label))
            auc, std = loop_point(s_in, s_out, spec.n_splits, spec.seed + int(pos))
            rows.append(
                {
                    "differ_idx": int(record),
                    "t": float(tj),
                    "mia_auc": auc,
                    "mia_auc_std": std,
                    "in_score_mean": float(s_in.mean()),
                    "out_score_mean": float(s_out.mean()),
                }
            )
    return pd.DataFrame(rows)


def best_of(fn, repeat: int) -> tuple[float, pd.DataFrame]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=Path("results/mnist_relu"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--n-splits", type=int, default=50, help="mia.n_splits of the run")
    ap.add_argument("--seed", type=int, default=0, help="mia.seed of the run")
    args = ap.parse_args()
    spec = MiaSpec.from_config({"n_splits": args.n_splits, "seed": args.seed, "score": "margin"})
    q = load_npz(args.results / "landscape" / "mia_outputs.npz")
    differ = pd.read_csv(args.results / "differ.csv")
    idx = differ.differ_idx.to_numpy()
    positions = np.array([int(np.flatnonzero(idx == r)[0]) for r in q["records"]])
    labels = differ.label.to_numpy()[positions]
    n_points = len(q["records"]) * len(q["t"])
    k = q["in_outputs"].shape[0] + q["out_outputs"].shape[1]
    print(f"{n_points} points x {spec.n_splits} splits x {k} models, best of {args.repeat}")
    t_loop, loop = best_of(lambda: loop_table(q, labels, positions, spec), args.repeat)
    t_new, new = best_of(
        lambda: mia_landscape_table(
            q["in_outputs"], q["out_outputs"], q["records"], labels, positions, q["t"], spec
        ),
        args.repeat,
    )
    print(
        f"loop (before): {t_loop:.3f} s   batched (after): {t_new:.3f} s   "
        f"ratio {t_loop / t_new:.0f}x"
    )
    for col in COLUMNS:
        print(f"{col}: max |loop - batched| = {np.max(np.abs(loop[col] - new[col])):.3g}")
    same = loop.to_csv(index=False, float_format="%.10g") == new.to_csv(
        index=False, float_format="%.10g"
    )
    print(f"tables written as mia.csv (%.10g) byte-identical: {same}")
    saved = args.results / "landscape" / "mia.csv"
    if saved.exists():
        print(
            f"batched table == {saved}: {saved.read_text() == new.to_csv(index=False, float_format='%.10g')}"
        )


if __name__ == "__main__":
    main()

"""The noise ceiling of the ground truth (issue 26 §6) against the number of models, offline from
a finished experiment's saved outputs (models/in.npz, models/out_<shard>.npz, differ.csv,
lood.csv; no network is retrained).

For each K in ``--models`` the first K in and K out models of every record stand in for a run
with ``train.n_in = train.n_out = K``: the split-half reliability of the per-record MIA AUC and
prediction difference (:func:`lood.privacy.mia.mia_halves_table`, halves of K / 2), its
Spearman-Brown value with the bootstrap interval, the ceiling sqrt(reliability), and KL LOOD's
r with the K-model MIA AUC and r / ceiling.

    PYTHONPATH=src .venv/bin/python benchmarks/noise_ceiling.py --results results/mnist_relu
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from lood.io import load_npz
from lood.privacy.mia import mia_halves_table, mia_table, noise_ceilings
from lood.privacy.spec import MiaSpec


def first_models(models_in: dict, models_out: list[dict], k: int) -> tuple[dict, list[dict]]:
    """The saved arrays restricted to the first ``k`` in and ``k`` out models of each record."""
    ins = {
        **models_in,
        "outputs_differ": models_in["outputs_differ"][:k],
        "test_acc": models_in["test_acc"][:k],
    }
    outs = [
        {**s, "outputs_differ": s["outputs_differ"][:, :k], "test_acc": s["test_acc"][:, :k]}
        for s in models_out
    ]
    return ins, outs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=Path("results/mnist_relu"))
    ap.add_argument("--models", type=int, nargs="+", default=[25, 50, 100])
    ap.add_argument("--n-splits", type=int, default=50, help="mia.n_splits of the run")
    ap.add_argument("--seed", type=int, default=0, help="mia.seed of the run")
    args = ap.parse_args()
    spec = MiaSpec.from_config({"n_splits": args.n_splits, "seed": args.seed, "score": "margin"})
    differ = pd.read_csv(args.results / "differ.csv")
    lood = pd.read_csv(args.results / "lood.csv")
    models_in = load_npz(args.results / "models" / "in.npz")
    models_out = [load_npz(p) for p in sorted((args.results / "models").glob("out_*.npz"))]
    print(
        "K | split-half r (AUC) | reliability [95%] | ceiling | r(KL, AUC) | r / ceiling"
        " | reliability of pred_diff"
    )
    for k in args.models:
        ins, outs = first_models(models_in, models_out, k)
        rel = noise_ceilings(mia_halves_table(differ, ins, outs, spec), spec.seed)
        auc = mia_table(differ, ins, outs, spec).merge(lood, on=["differ_idx", "label"])
        r = stats.pearsonr(auc.kl_lood, auc.mia_auc).statistic
        a, d = rel["mia_auc"], rel["pred_diff"]
        ceiling = np.sqrt(a["reliability"])
        print(
            f"{k} | {a['split_half_r']:.3f} | {a['reliability']:.3f} [{a['reliability_lo']:.3f}, "
            f"{a['reliability_hi']:.3f}] | {ceiling:.3f} | {r:.3f} | {r / ceiling:.3f} | "
            f"{d['reliability']:.4f} [{d['reliability_lo']:.4f}, {d['reliability_hi']:.4f}]"
        )


if __name__ == "__main__":
    main()

"""Per-record MIA AUC of both ``mia.score`` values (margin, output_vector) of one finished
experiment, side by side, and how each tracks KL LOOD; recomputed offline from the saved model
outputs (models/in.npz, models/out_<shard>.npz: every network's outputs on the differing
records), data/split.npz, differ.csv, mia.csv and lood.csv: no network is retrained.

Prints the per-record table (``auc_margin``, ``auc_output_vector``, their difference, KL LOOD)
and a summary: mean |difference|, largest difference (output_vector - margin, signed, and the
record), Pearson r between the two, Pearson and Spearman r of each with KL LOOD; checks that
mia.csv's ``mia_auc`` is the recomputed AUC of the score it was written with.

    PYTHONPATH=src .venv/bin/python benchmarks/mia_scores.py --configfile config.yaml
    PYTHONPATH=src .venv/bin/python benchmarks/mia_scores.py \\
        --configfile config/relu_vs_gelu.yaml --experiment gelu --out mia_scores_gelu.csv
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy import stats

import lood.config as lc
from lood.io import load_npz
from lood.privacy.mia import MIA_SCORES, record_mia, stack_models


def score_table(base: Path, n_splits: int, seed: int) -> pd.DataFrame:
    """One row per differing record of the experiment under ``base``: the AUC (mean, std over the
    half splits, seed ``seed + position`` as mia.csv) of each score, KL LOOD, and mia.csv's AUC."""
    differ = pd.read_csv(base / "differ.csv")
    y_train = np.load(base / "data" / "split.npz")["y_train"]
    if not np.array_equal(y_train[differ.differ_idx.to_numpy()], differ.label.to_numpy()):
        raise ValueError(f"{base}/differ.csv: labels differ from data/split.npz's y_train")
    models = stack_models(
        differ,
        load_npz(base / "models" / "in.npz"),
        [load_npz(p) for p in sorted((base / "models").glob("out_*.npz"))],
    )
    lood = pd.read_csv(base / "lood.csv").set_index("differ_idx")
    mia = pd.read_csv(base / "mia.csv").set_index("differ_idx")
    rows = []
    for j, (record, label) in enumerate(zip(differ.differ_idx, differ.label, strict=True)):
        row: dict[str, Any] = {"differ_idx": int(record), "label": int(label)}
        ins, outs = models.in_outputs[:, j], models.out_outputs[j, :, j]
        for score in MIA_SCORES:
            auc, std, diff = record_mia(ins, outs, int(label), score, n_splits, seed + j)
            row |= {f"auc_{score}": auc, f"auc_std_{score}": std}
        row |= {
            "pred_diff_halves": diff,
            "kl_lood": float(lood.kl_lood[record]),
            "mia_csv_auc": float(mia.mia_auc[record]),
        }
        rows.append(row)
    table = pd.DataFrame(rows)
    table.insert(6, "auc_difference", table.auc_output_vector - table.auc_margin)
    return table


def summary(table: pd.DataFrame) -> dict[str, float | int]:
    """Agreement of the two scores and each one's Pearson / Spearman r with KL LOOD."""
    d = table.auc_difference.to_numpy()
    i = int(np.argmax(np.abs(d)))
    out: dict[str, float | int] = {
        "n_records": len(table),
        "mean_abs_difference": float(np.mean(np.abs(d))),
        "max_difference": float(d[i]),
        "max_difference_record": int(table.differ_idx[i]),
        "pearson_margin_output_vector": _r(
            stats.pearsonr, table.auc_margin, table.auc_output_vector
        ),
    }
    for score in MIA_SCORES:
        out[f"mean_auc_{score}"] = float(table[f"auc_{score}"].mean())
        out[f"pearson_kl_{score}"] = _r(stats.pearsonr, table.kl_lood, table[f"auc_{score}"])
        out[f"spearman_kl_{score}"] = _r(stats.spearmanr, table.kl_lood, table[f"auc_{score}"])
    return out


def _r(test: Any, x: pd.Series, y: pd.Series) -> float:
    """The correlation of ``test`` (NaN for a constant column or fewer than 3 records)."""
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(test(x, y)[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--configfile", default="config.yaml")
    ap.add_argument("--experiment", default=None, help="default: the config's first experiment")
    ap.add_argument("--results", default=None, help="results directory (default: the config's)")
    ap.add_argument(
        "--out",
        default=None,
        help="also write the per-record table as CSV here, "
        "and the summary as JSON beside it (.json)",
    )
    args = ap.parse_args()
    config = lc.load_config(yaml.safe_load(Path(args.configfile).read_text()))
    name = args.experiment or next(iter(config["experiments"]))
    mia_cfg = lc.experiment(config, name)["mia"]
    base = Path(args.results or config["results"]) / name
    t0 = time.perf_counter()
    table = score_table(base, int(mia_cfg["n_splits"]), int(mia_cfg["seed"]))
    seconds = time.perf_counter() - t0
    written = pd.read_csv(base / "mia.csv").get("mia_score", pd.Series(["margin"]))[0]
    gap = float(np.max(np.abs(table.mia_csv_auc - table[f"auc_{written}"])))
    result = summary(table) | {
        "experiment": name,
        "mia_csv_score": written,
        "mia_csv_max_abs_gap": gap,
        "seconds": seconds,
    }
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(4).to_string(index=False))
    for key, value in result.items():
        print(f"{key:32s} {value:.4f}" if isinstance(value, float) else f"{key:32s} {value}")
    if gap > 1e-6:
        print(
            f"WARNING: mia.csv's mia_auc ({written}) differs from the recomputed one by {gap:.3g}"
            " (other n_splits / seed in the config than the run's?)"
        )
    if args.out:
        table.to_csv(args.out, index=False, float_format="%.10g")
        Path(args.out).with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

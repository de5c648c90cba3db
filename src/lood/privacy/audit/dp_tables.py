"""DP experiments side by side: MIA AUC, empirical LOOD and NNGP LOOD of the same records.

Empirical LOOD is the LOOD of the *trained* models: KL(out || in) between Gaussians fitted to
the out- and in-model scores of a record.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from lood.compare import KEYS, merge_on_records
from lood.stats import correlation_stats, gaussian_kl


def empirical_lood(mia: pd.DataFrame) -> np.ndarray:
    """KL(out || in) of the Gaussian fits of the out- and in-model MIA scores (mia.csv columns);
    inf where one side's scores are all equal and the other's are not (see :func:`lood.stats.gaussian_kl`)."""
    return gaussian_kl(
        mia["out_score_mean"], mia["out_score_std"], mia["in_score_mean"], mia["in_score_std"]
    )


def models_epsilon(models: Mapping[str, np.ndarray]) -> float:
    """Epsilon the models of a ``models/*.npz`` spent (inf: non-DP, or written before DP)."""
    eps = models.get("epsilon")
    return math.inf if eps is None else float(np.asarray(eps).flat[0])


def experiment_label(name: str, eps: float) -> str:
    """Axis label of an experiment: its name and the epsilon it spent (non-DP: inf)."""
    return f"{name}\nnon-DP" if math.isinf(eps) else f"{name}\nε={eps:.3g}"


def dp_table(tables: Mapping[str, tuple[float, pd.DataFrame, pd.DataFrame]]) -> pd.DataFrame:
    """Long table, one row per (experiment, record), experiments ordered by decreasing epsilon.

    ``tables`` maps experiment name to (epsilon spent, mia.csv, lood.csv). Columns: experiment,
    epsilon, differ_idx, label, mia_auc, mia_auc_std, pred_diff, empirical_lood, kl_lood,
    mean_dist_lood, in_test_acc.
    """
    if not tables:
        raise ValueError("dp_table needs at least one experiment")
    parts = []
    for name, (eps, mia, lood) in tables.items():
        m = mia[KEYS + ["mia_auc", "mia_auc_std", "pred_diff", "in_test_acc"]].copy()
        m["empirical_lood"] = empirical_lood(mia)
        df = merge_on_records(m, lood[KEYS + ["kl_lood", "mean_dist_lood"]], name)
        df.insert(0, "epsilon", float(eps))
        df.insert(0, "experiment", name)
        parts.append(df)
    long = pd.concat(parts, ignore_index=True)
    order = sorted(tables, key=lambda e: -tables[e][0])  # non-DP (inf) first
    long["experiment"] = pd.Categorical(long["experiment"], categories=order, ordered=True)
    long = long.sort_values(["experiment", "differ_idx"], kind="stable").reset_index(drop=True)
    long["experiment"] = long["experiment"].astype(str)
    cols = [
        "experiment",
        "epsilon",
        *KEYS,
        "mia_auc",
        "mia_auc_std",
        "pred_diff",
        "empirical_lood",
        "kl_lood",
        "mean_dist_lood",
        "in_test_acc",
    ]
    return long[cols]


def dp_summary(long: pd.DataFrame) -> pd.DataFrame:
    """Per experiment: epsilon, test accuracy, mean (sd) of MIA AUC and empirical LOOD, and the
    correlation of MIA AUC with the NNGP KL LOOD across records."""
    rows = []
    for name, sub in long.groupby("experiment", sort=False):
        s = correlation_stats(sub["kl_lood"].to_numpy(), sub["mia_auc"].to_numpy())
        rows.append(
            {
                "experiment": name,
                "epsilon": float(sub["epsilon"].iloc[0]),
                "n_records": len(sub),
                "test_acc": float(sub["in_test_acc"].mean()),
                "mia_auc_mean": float(sub["mia_auc"].mean()),
                "mia_auc_sd": float(sub["mia_auc"].std(ddof=1)),
                "empirical_lood_mean": float(sub["empirical_lood"].mean()),
                "empirical_lood_sd": float(sub["empirical_lood"].std(ddof=1)),
                "pred_diff_mean": float(sub["pred_diff"].mean()),
                "kl_lood_vs_mia_pearson_r": s["pearson_r"],
                "kl_lood_vs_mia_spearman_r": s["spearman_r"],
            }
        )
    return pd.DataFrame(rows)

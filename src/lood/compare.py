"""Tables that join results on the same records: influence estimates vs the retrained-model
ground truth, and one metric across experiments (activations, DP settings).

Every table is keyed by ``differ_idx`` and ``label``; joins refuse tables of different records.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np
import pandas as pd

from lood.stats import correlation_stats

KEYS = ["differ_idx", "label"]


# estimator column -> legend name, for the influence comparison (ground truth: pred_diff)
INFLUENCE_SCORES = {
    "tracin": "TracIn",
    "influence_function": "influence function",
    "mean_dist_lood": "mean-distance LOOD",
}


# metrics compared across experiments
ACTIVATION_METRICS = ["kl_lood", "mean_dist_lood", "nngp_auc", "mia_auc", "pred_diff"]


def minmax(values: np.ndarray | pd.Series) -> np.ndarray:
    """Scale to [0, 1] by (v - min) / (max - min); a constant vector maps to zeros."""
    v = np.asarray(values, dtype=np.float64)
    span = np.ptp(v) if len(v) else 0.0
    return np.zeros_like(v) if span == 0 else (v - v.min()) / span


def merge_on_records(left: pd.DataFrame, right: pd.DataFrame, what: str) -> pd.DataFrame:
    out = left.merge(right, on=KEYS, how="inner", validate="one_to_one")
    if len(out) != len(left) or len(out) != len(right):
        raise ValueError(f"{what}: tables list different differing records")
    return out


def influence_table(
    mia: pd.DataFrame, lood: pd.DataFrame, tracin: pd.DataFrame, influence: pd.DataFrame
) -> pd.DataFrame:
    """All per-record scores in one table (raw values), one row per differing record.

    Columns: differ_idx, label, pred_diff, mia_auc, mean_dist_lood, kl_lood, tracin,
    influence_function.
    """
    df = merge_on_records(
        mia[KEYS + ["pred_diff", "mia_auc"]],
        lood[KEYS + ["mean_dist_lood", "kl_lood"]],
        "mia.csv vs lood.csv",
    )
    df = merge_on_records(df, tracin[KEYS + ["tracin"]], "tracin.csv")
    return merge_on_records(df, influence[KEYS + ["influence_function"]], "influence_function.csv")


def check_same_records(
    differs: Mapping[str, pd.DataFrame], splits: Mapping[str, Mapping[str, np.ndarray]]
) -> None:
    """Raise ValueError unless every experiment has the same differing records and split."""
    names = list(differs)
    ref = names[0]
    for name in names[1:]:
        if (
            not differs[name][KEYS]
            .reset_index(drop=True)
            .equals(differs[ref][KEYS].reset_index(drop=True))
        ):
            raise ValueError(f"differ.csv of experiments {ref!r} and {name!r} differ")
        for key in ("x_train", "y_train", "x_test", "y_test", "train_source_idx"):
            if not np.array_equal(splits[name][key], splits[ref][key]):
                raise ValueError(f"data split of experiments {ref!r} and {name!r} differ ({key})")


def activation_table(
    tables: Mapping[str, tuple[str, pd.DataFrame, pd.DataFrame]],
) -> pd.DataFrame:
    """Long table of LOOD and MIA per (experiment, record): ``tables`` maps experiment name to
    (activation, mia.csv, lood.csv). Columns: experiment, activation, differ_idx, label,
    kl_lood, mean_dist_lood, nngp_auc, mia_auc, mia_auc_std, pred_diff."""
    parts = []
    for name, (act, mia, lood) in tables.items():
        df = merge_on_records(
            mia[KEYS + ["mia_auc", "mia_auc_std", "pred_diff"]],
            lood[KEYS + ["kl_lood", "mean_dist_lood", "nngp_auc"]],
            name,
        )
        df.insert(0, "activation", act)
        df.insert(0, "experiment", name)
        parts.append(df)
    cols = [
        "experiment",
        "activation",
        *KEYS,
        "kl_lood",
        "mean_dist_lood",
        "nngp_auc",
        "mia_auc",
        "mia_auc_std",
        "pred_diff",
    ]
    return pd.concat(parts, ignore_index=True)[cols]


def wide_table(long: pd.DataFrame, metric: str) -> pd.DataFrame:
    return long.pivot(index=KEYS, columns="experiment", values=metric)


def activation_stats(long: pd.DataFrame) -> pd.DataFrame:
    """Correlations: within each experiment (LOOD vs MIA AUC, mean-distance LOOD vs prediction
    difference) and paired across experiments (the same metric of the same records).

    Columns: comparison (within|paired), experiment_a, experiment_b, metric_a, metric_b, n,
    pearson_r, pearson_p, spearman_r, spearman_p, mean_a, mean_b.
    """
    rows = []
    experiments = list(dict.fromkeys(long.experiment))
    for name in experiments:
        sub = long[long.experiment == name]
        for xa, ya in [
            ("kl_lood", "mia_auc"),
            ("nngp_auc", "mia_auc"),
            ("mean_dist_lood", "pred_diff"),
        ]:
            rows.append(
                {
                    "comparison": "within",
                    "experiment_a": name,
                    "experiment_b": name,
                    "metric_a": xa,
                    "metric_b": ya,
                    **_stats(sub[xa], sub[ya]),
                }
            )
    for a, b in itertools.combinations(experiments, 2):
        for metric in ACTIVATION_METRICS:
            w = wide_table(long, metric)
            rows.append(
                {
                    "comparison": "paired",
                    "experiment_a": a,
                    "experiment_b": b,
                    "metric_a": metric,
                    "metric_b": metric,
                    **_stats(w[a], w[b]),
                }
            )
    return pd.DataFrame(rows)


def _stats(a: pd.Series, b: pd.Series) -> dict[str, float]:
    s = correlation_stats(a.to_numpy(dtype=float), b.to_numpy(dtype=float))
    return {**s, "mean_a": float(np.mean(a)), "mean_b": float(np.mean(b))}

"""Comparison tables and figures: influence estimates vs ground truth, and across activations.

* :func:`influence_table` / :func:`influence_figure`: prediction difference of the retrained
  models (ground truth) against TracIn, the influence function and mean-distance LOOD, each
  min-max normalised, Pearson r and p in the legend (the paper's influence comparison).
* :func:`activation_table` / :func:`activation_stats` / :func:`activation_figure`: LOOD and MIA
  AUC of the same differing records under several experiments (e.g. relu and gelu).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .plots import correlation_stats, save_figure  # noqa: E402

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


def _merge(left: pd.DataFrame, right: pd.DataFrame, what: str) -> pd.DataFrame:
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
    df = _merge(mia[KEYS + ["pred_diff", "mia_auc"]], lood[KEYS + ["mean_dist_lood", "kl_lood"]],
                "mia.csv vs lood.csv")  # fmt: skip
    df = _merge(df, tracin[KEYS + ["tracin"]], "tracin.csv")
    return _merge(df, influence[KEYS + ["influence_function"]], "influence_function.csv")


def influence_figure(
    df: pd.DataFrame,
    outputs: Sequence[str | os.PathLike[str]],
    truth: str = "pred_diff",
    scores: Mapping[str, str] = INFLUENCE_SCORES,
    title: str = "",
    style: str = "whitegrid",
    context: str = "paper",
    dpi: int = 150,
) -> list[dict[str, float | str]]:
    """One panel: every min-max normalised score against the normalised ground truth, with a
    regression line each and Pearson r (p) in the legend. Returns one statistics row per score
    (on the raw values; Pearson is invariant to the normalisation)."""
    sns.set_theme(style=style, context=context)
    fig, ax = plt.subplots(figsize=(4.8, 4.0))
    x = df[truth].to_numpy(dtype=float)
    rows: list[dict[str, float | str]] = []
    markers = ["o", "s", "^", "D", "v"]
    for i, (col, name) in enumerate(scores.items()):
        y = df[col].to_numpy(dtype=float)
        s = correlation_stats(x, y)
        rows.append({"x": truth, "y": col, **s})
        label = f"{name}: r={s['pearson_r']:.2f} (p={s['pearson_p']:.1e})"
        sns.regplot(
            x=minmax(x), y=minmax(y), ax=ax, ci=None, truncate=True, label=label,
            marker=markers[i % len(markers)], color=f"C{i}",
            scatter_kws={"s": 18, "alpha": 0.7}, line_kws={"lw": 1.2},
        )  # fmt: skip
    ax.set_xlabel("prediction difference, retrained NNs (normalised)")
    ax.set_ylabel("influence score (normalised)")
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-0.05, 1.05)
    ax.legend(loc="best", fontsize="small", frameon=True)
    ax.set_title(title or f"influence estimates vs ground truth ({len(df)} records)")
    fig.tight_layout()
    save_figure(fig, outputs, dpi=dpi)
    return rows


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
        df = _merge(mia[KEYS + ["mia_auc", "mia_auc_std", "pred_diff"]],
                    lood[KEYS + ["kl_lood", "mean_dist_lood", "nngp_auc"]], name)  # fmt: skip
        df.insert(0, "activation", act)
        df.insert(0, "experiment", name)
        parts.append(df)
    cols = ["experiment", "activation", *KEYS, "kl_lood", "mean_dist_lood", "nngp_auc",
            "mia_auc", "mia_auc_std", "pred_diff"]  # fmt: skip
    return pd.concat(parts, ignore_index=True)[cols]


def _wide(long: pd.DataFrame, metric: str) -> pd.DataFrame:
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
        for xa, ya in [("kl_lood", "mia_auc"), ("nngp_auc", "mia_auc"),
                       ("mean_dist_lood", "pred_diff")]:  # fmt: skip
            rows.append({"comparison": "within", "experiment_a": name, "experiment_b": name,
                         "metric_a": xa, "metric_b": ya, **_stats(sub[xa], sub[ya])})  # fmt: skip
    for a, b in itertools.combinations(experiments, 2):
        for metric in ACTIVATION_METRICS:
            w = _wide(long, metric)
            rows.append({"comparison": "paired", "experiment_a": a, "experiment_b": b,
                         "metric_a": metric, "metric_b": metric, **_stats(w[a], w[b])})  # fmt: skip
    return pd.DataFrame(rows)


def _stats(a: pd.Series, b: pd.Series) -> dict[str, float]:
    s = correlation_stats(a.to_numpy(dtype=float), b.to_numpy(dtype=float))
    return {**s, "mean_a": float(np.mean(a)), "mean_b": float(np.mean(b))}


def _log_axes(ax: plt.Axes, y: bool = False) -> None:
    """Log x (and y) scale with plain-number ticks at 1, 2, 5 x 10^k."""
    ax.set_xscale("log")
    axes = [ax.xaxis]
    if y:
        ax.set_yscale("log")
        axes.append(ax.yaxis)
    for axis in axes:
        axis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def activation_figure(
    long: pd.DataFrame,
    outputs: Sequence[str | os.PathLike[str]],
    style: str = "whitegrid",
    context: str = "paper",
    dpi: int = 150,
    panel_size: float = 3.6,
) -> None:
    """Row 1: paired scatter of KL LOOD and MIA AUC of the same records, first experiment against
    each other (diagonal y = x). Row 2: LOOD vs MIA AUC and mean-distance LOOD vs prediction
    difference within each experiment, one colour per experiment, Pearson r in the legend."""
    sns.set_theme(style=style, context=context)
    experiments = list(dict.fromkeys(long.experiment))
    act = dict(zip(long.experiment, long.activation, strict=False))
    label = {e: f"{e} ({act[e]})" if act[e] != e else e for e in experiments}
    ref, others = experiments[0], experiments[1:]
    fig, axes = plt.subplots(2, 2, figsize=(2 * panel_size, 2 * panel_size))
    for ax, metric, log in [(axes[0, 0], "kl_lood", True), (axes[0, 1], "mia_auc", False)]:
        w = _wide(long, metric)
        for i, other in enumerate(others):
            s = correlation_stats(w[ref].to_numpy(float), w[other].to_numpy(float))
            ax.scatter(w[ref], w[other], s=18, alpha=0.75, color=f"C{i + 1}",
                       label=f"{label[other]}: r={s['pearson_r']:.2f} (p={s['pearson_p']:.1e})")  # fmt: skip
        lo = float(np.nanmin(w.to_numpy()))
        hi = float(np.nanmax(w.to_numpy()))
        ax.plot([lo, hi], [lo, hi], color="0.5", lw=1, ls="--", label="y = x")
        if log and lo > 0:
            _log_axes(ax, y=True)
        ax.set_xlabel(f"{metric}, {label[ref]}")
        ax.set_ylabel(f"{metric}, other experiment")
        ax.legend(fontsize="small")
    for ax, (xcol, ycol, log) in [(axes[1, 0], ("kl_lood", "mia_auc", True)),
                                  (axes[1, 1], ("mean_dist_lood", "pred_diff", False))]:  # fmt: skip
        for i, e in enumerate(experiments):
            sub = long[long.experiment == e]
            x, y = sub[xcol].to_numpy(float), sub[ycol].to_numpy(float)
            s = correlation_stats(x, y)
            ax.scatter(x, y, s=18, alpha=0.75, color=f"C{i}",
                       label=f"{label[e]}: r={s['pearson_r']:.2f} (p={s['pearson_p']:.1e})")  # fmt: skip
        if log and bool((long[xcol] > 0).all()):
            _log_axes(ax)
        ax.set_xlabel(xcol)
        ax.set_ylabel(ycol)
        ax.legend(fontsize="small")
    n = long.groupby("experiment").size().iloc[0]
    fig.suptitle(f"{' vs '.join(label[e] for e in experiments)}: same {n} differing records")
    fig.tight_layout()
    save_figure(fig, outputs, dpi=dpi)

"""DP experiments side by side, and the canaries of the one-run audit.

* :func:`empirical_lood`: the LOOD of the *trained* models, KL(out || in) between Gaussians fitted
  to the out-model and in-model MIA scores of a record (same direction as the NNGP KL LOOD). It
  needs no NNGP, so it shows what DP-SGD does to the finite networks.
* :func:`dp_table` / :func:`dp_figure`: MIA AUC, empirical LOOD and NNGP LOOD of the same records
  under non-DP and DP experiments, ordered by the epsilon each experiment's training spent.
* :func:`make_canaries` / :func:`canary_scores`: the canaries of the one-run audit
  (:mod:`lood.audit`) and their membership scores.
* :func:`audit_figure`: the audit's epsilon lower bounds beside the accountant's epsilon.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .comparison import KEYS, _log_axes, _merge  # noqa: E402
from .mia import margin_score  # noqa: E402
from .plots import correlation_stats, save_figure  # noqa: E402

CANARY_MODES = ("mislabel", "clean")
CANARY_SCORES = ("loss", "margin")


def gaussian_kl(mu0: np.ndarray, sd0: np.ndarray, mu1: np.ndarray, sd1: np.ndarray) -> np.ndarray:
    """KL(N(mu0, sd0^2) || N(mu1, sd1^2)) elementwise.

    A standard deviation of 0 is a point mass (e.g. every DP model gave a record the same score).
    Equal point masses have KL 0; a point mass against a different point mass, against a Gaussian,
    or a Gaussian against a point mass are mutually singular: KL = inf (the limits of the formula).
    Negative or NaN standard deviations and NaN means raise ``ValueError``.
    """
    mu0, sd0, mu1, sd1 = np.broadcast_arrays(
        *(np.asarray(a, dtype=np.float64) for a in (mu0, sd0, mu1, sd1))
    )
    if np.isnan(mu0).any() or np.isnan(mu1).any() or not ((sd0 >= 0).all() and (sd1 >= 0).all()):
        raise ValueError("gaussian_kl: means must not be NaN and standard deviations must be >= 0")
    point0, point1 = sd0 == 0, sd1 == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.log(sd1 / sd0) + (sd0**2 + (mu0 - mu1) ** 2) / (2 * sd1**2) - 0.5
    same_point = point0 & point1 & (mu0 == mu1)
    return np.where(point0 | point1, np.where(same_point, 0.0, np.inf), kl)[()]


def empirical_lood(mia: pd.DataFrame) -> np.ndarray:
    """KL(out || in) of the Gaussian fits of the out- and in-model MIA scores (mia.csv columns);
    inf where one side's scores are all equal and the other's are not (see :func:`gaussian_kl`)."""
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
        df = _merge(m, lood[KEYS + ["kl_lood", "mean_dist_lood"]], name)
        df.insert(0, "epsilon", float(eps))
        df.insert(0, "experiment", name)
        parts.append(df)
    long = pd.concat(parts, ignore_index=True)
    order = sorted(tables, key=lambda e: -tables[e][0])  # non-DP (inf) first
    long["experiment"] = pd.Categorical(long["experiment"], categories=order, ordered=True)
    long = long.sort_values(["experiment", "differ_idx"], kind="stable").reset_index(drop=True)
    long["experiment"] = long["experiment"].astype(str)
    cols = ["experiment", "epsilon", *KEYS, "mia_auc", "mia_auc_std", "pred_diff",
            "empirical_lood", "kl_lood", "mean_dist_lood", "in_test_acc"]  # fmt: skip
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


def _paired_strip(ax: plt.Axes, long: pd.DataFrame, metric: str, labels: list[str]) -> None:
    """One column per experiment: every record a dot, the same record joined across columns."""
    wide = long.pivot(index="differ_idx", columns="label_x", values=metric)[labels]
    xs = np.arange(len(labels))
    for _, row in wide.iterrows():
        ax.plot(xs, row.to_numpy(), color="0.6", lw=0.5, alpha=0.5, zorder=1)
    for i, lab in enumerate(labels):
        ax.scatter(np.full(len(wide), xs[i]), wide[lab], s=12, color=f"C{i}", zorder=2)
        ax.hlines(wide[lab].median(), i - 0.3, i + 0.3, color="k", lw=1.5, zorder=3)
    ax.set_xticks(xs, labels, fontsize="small", rotation=30, ha="right", rotation_mode="anchor")


def dp_figure(
    long: pd.DataFrame,
    outputs: Sequence[str | os.PathLike[str]],
    style: str = "whitegrid",
    context: str = "paper",
    dpi: int = 150,
) -> None:
    """Three panels on the same records: MIA AUC per experiment, empirical LOOD per experiment
    (log scale), and MIA AUC against the NNGP KL LOOD, one colour per experiment."""
    sns.set_theme(style=style, context=context)
    long = long.copy()
    names = list(dict.fromkeys(long["experiment"]))
    eps = {e: float(long.loc[long.experiment == e, "epsilon"].iloc[0]) for e in names}
    label = {e: experiment_label(e, eps[e]) for e in names}
    long["label_x"] = long["experiment"].map(label)
    labels = [label[e] for e in names]
    width = max(4.0, 1.1 * len(names))
    fig, axes = plt.subplots(1, 3, figsize=(2 * width + 6.0, 4.2),
                             gridspec_kw={"width_ratios": [width, width, 4.0]})  # fmt: skip
    _paired_strip(axes[0], long, "mia_auc", labels)
    axes[0].axhline(0.5, color="k", lw=0.8, ls="--")
    axes[0].set_ylabel("MIA AUC (retrained models)")
    axes[0].set_title("membership inference")
    lood = long.copy()
    lood["empirical_lood"] = lood["empirical_lood"].clip(lower=1e-6)
    _paired_strip(axes[1], lood, "empirical_lood", labels)
    axes[1].set_yscale("log")
    axes[1].set_ylabel("empirical LOOD: KL(out || in) of the scores")
    axes[1].set_title("leave-one-out distinguishability")
    for i, e in enumerate(names):
        sub = long[long.experiment == e]
        s = correlation_stats(sub["kl_lood"].to_numpy(), sub["mia_auc"].to_numpy())
        axes[2].scatter(sub["kl_lood"], sub["mia_auc"], s=12, color=f"C{i}",
                        label=f"{label[e].replace(chr(10), ' ')}: r={s['pearson_r']:.2f}")  # fmt: skip
    _log_axes(axes[2])
    axes[2].set_xlabel("NNGP KL LOOD (same for all experiments)")
    axes[2].set_ylabel("MIA AUC")
    axes[2].set_title("NNGP LOOD vs MIA")
    axes[2].legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.suptitle(f"DP-SGD vs non-DP training on the same {long.differ_idx.nunique()} records")
    fig.tight_layout()
    save_figure(fig, outputs, dpi=dpi)


def make_canaries(
    y_train: np.ndarray, m: int, mode: str, n_classes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pick ``m`` canary records of D and their training labels.

    ``mislabel`` gives each canary a random *other* class (an outlier the model can only fit by
    memorising it, which makes membership easy to detect without DP); ``clean`` keeps the label.
    Returns (canary indices into D [m], labels of all of D with the canaries' labels replaced).
    """
    if mode not in CANARY_MODES:
        raise ValueError(f"audit.canary must be one of {CANARY_MODES}, got {mode!r}")
    n = len(y_train)
    if not 2 <= m <= n:
        raise ValueError(f"audit.n_canaries must be in [2, n_train = {n}], got {m}")
    if mode == "mislabel" and n_classes < 2:
        raise ValueError("mislabelled canaries need at least 2 classes")
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n, size=m, replace=False))
    labels = np.asarray(y_train, dtype=np.int64).copy()
    if mode == "mislabel":
        shift = rng.integers(1, n_classes, size=m)  # never 0: always another class
        labels[idx] = (labels[idx] + shift) % n_classes
    return idx, labels


def canary_scores(outputs: np.ndarray, labels: np.ndarray, score: str) -> np.ndarray:
    """Membership scores ``[R, m]`` (higher = more likely trained on) of the canaries.

    ``outputs`` [R, m, C] are the R runs' outputs on the canaries, ``labels`` [m] their training
    labels. ``loss``: minus the squared error to the centred one-hot target (the training loss);
    ``margin``: the MIA score of :func:`lood.mia.margin_score`.
    """
    outputs = np.asarray(outputs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if outputs.ndim != 3 or outputs.shape[1] != len(labels):
        raise ValueError(f"outputs must be [R, m={len(labels)}, C], got {outputs.shape}")
    if score == "loss":
        c = outputs.shape[2]
        target = np.eye(c)[labels] - 1.0 / c
        return -0.5 * ((outputs - target[None]) ** 2).sum(-1)
    if score == "margin":
        return np.stack(
            [margin_score(outputs[:, j, :], int(lab)) for j, lab in enumerate(labels)], axis=1
        )
    raise ValueError(f"audit.score must be one of {CANARY_SCORES}, got {score!r}")


def audit_figure(
    runs: pd.DataFrame,
    outputs: Sequence[str | os.PathLike[str]],
    style: str = "whitegrid",
    context: str = "paper",
    dpi: int = 150,
) -> None:
    """Per experiment: the accountant's epsilon (bar; none for non-DP) and every run's audit lower
    bound (dots) at the audit's confidence. ``runs``: rows of the audit tables plus experiment
    and eps_accountant columns."""
    sns.set_theme(style=style, context=context)
    names = list(dict.fromkeys(runs["experiment"]))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.5 * len(names) + 1.5), 3.8))
    top = 0.0
    for i, e in enumerate(names):
        sub = runs[runs.experiment == e]
        eps = float(sub["eps_accountant"].iloc[0])
        if math.isfinite(eps):
            ax.bar(i, eps, width=0.6, color="0.85", edgecolor="0.4",
                   label="accountant ε (DP-SGD guarantee)")  # fmt: skip
            top = max(top, eps)
        else:
            ax.text(i, 0.02, "non-DP\n(ε = ∞)", ha="center", va="bottom", fontsize="x-small")
        jitter = np.linspace(-0.12, 0.12, len(sub)) if len(sub) > 1 else np.zeros(1)
        ax.scatter(i + jitter, sub["eps_lower_bound"], color="C3", s=18, zorder=3,
                   label="audit lower bound (one run each)")  # fmt: skip
        top = max(top, float(sub["eps_lower_bound"].max()))
    ax.set_xticks(range(len(names)), names, fontsize="small")
    ax.set_ylim(0, max(1.0, 1.15 * top))
    conf = float(runs["confidence"].iloc[0]) if "confidence" in runs else 0.95
    ax.set_ylabel(f"ε (lower bound at {conf:.0%} confidence)")
    m = int(runs["m"].iloc[0])
    ax.set_title(f"one-run audit: {m} canaries, {int(runs['r'].iloc[0])} guesses per run")
    handles, labs = ax.get_legend_handles_labels()
    uniq = dict(zip(labs, handles, strict=False))
    ax.legend(uniq.values(), uniq.keys(), fontsize="x-small", loc="upper right")
    fig.tight_layout()
    save_figure(fig, outputs, dpi=dpi)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def inversion_comparison(
    inversions: Mapping[str, tuple[float, pd.DataFrame, np.ndarray]],
    class_mean: np.ndarray,
    query: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> pd.DataFrame:
    """What each attack recovers, one row per (method, experiment or record).

    ``inversions`` maps experiment name to (epsilon, :func:`lood.inversion.reconstruction_metrics`
    table, MI-FACE confidence [K, C]); MI-FACE rows give the mean over models and classes of the
    correlation with the class mean (its target) and the share of reconstructions closest to
    their own class mean. ``query`` = (records [R], record images [R, d], optimised queries
    [R, d], record labels [R]) of the NNGP query optimisation adds one row per record: its
    correlation with the record it reconstructs (its target) and with that record's class mean
    (``class_mean`` [C, d], in the same space as everything else: the normalised one in the workflow).
    """
    rows = []
    for name, (eps, metrics, conf) in inversions.items():
        rows.append(
            {
                "method": "MI-FACE",
                "experiment": name,
                "epsilon": float(eps),
                "record": -1,
                "n": len(metrics),
                "corr_target": float(metrics["corr_class_mean"].mean()),
                "corr_class_mean": float(metrics["corr_class_mean"].mean()),
                "class_match": float(metrics["class_match"].mean()),
                "confidence": float(np.mean(conf)),
            }
        )
    if query is not None:
        records, images, queries, labels = query
        for rec, img, q, lab in zip(records, images, queries, labels, strict=True):
            corr = [_corr(q, class_mean[c]) for c in range(len(class_mean))]
            rows.append(
                {
                    "method": "NNGP query optimisation",
                    "experiment": "",
                    "epsilon": math.inf,
                    "record": int(rec),
                    "n": 1,
                    "corr_target": _corr(q, img),
                    "corr_class_mean": corr[int(lab)],
                    "class_match": float(int(np.nanargmax(corr)) == int(lab)),
                    "confidence": math.nan,
                }
            )
    return pd.DataFrame(rows)

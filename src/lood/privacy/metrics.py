"""Attack metrics, one copy each: AUC (Mann-Whitney, with its p-value; or ROC AUC of labelled
scores), ROC curves, best balanced accuracy and TPR at low FPR."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

Alternative = Literal["greater", "less", "two-sided"]


def roc_auc(is_member: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """ROC AUC of ``scores`` with ``is_member`` positive (scikit-learn's trapezoidal ROC AUC).

    The half-split MIA and PANORAMIA's classifiers report this one; :func:`mann_whitney` gives
    the same AUC from ranks (equal up to rounding) with its p-value.
    """
    from sklearn.metrics import roc_auc_score  # only the half-split MIA and PANORAMIA need it

    return float(roc_auc_score(is_member, scores))


def check_pools(s_in: npt.ArrayLike, s_out: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Per-record model values in [P, K_in] and out [P, K_out] as float64 (ValueError otherwise)."""
    s_in = np.asarray(s_in, dtype=np.float64)
    s_out = np.asarray(s_out, dtype=np.float64)
    if s_in.ndim != 2 or s_out.ndim != 2 or s_in.shape[0] != s_out.shape[0]:
        raise ValueError(
            f"expected in [P, K_in] and out [P, K_out], got {s_in.shape}, {s_out.shape}"
        )
    return s_in, s_out


class MannWhitney(NamedTuple):
    """AUC = U / (n_pos n_neg) (ties count 1/2), normal-approximation z and p-value."""

    auc: float
    u: float
    z: float
    p_value: float


def _mw_from_u(
    u: np.ndarray,
    n1: int,
    n0: int,
    tie_term: np.ndarray,
    alternative: Alternative,
    continuity: bool,
) -> tuple[np.ndarray, np.ndarray]:
    n = n1 + n0
    mu = n1 * n0 / 2.0
    sd = np.sqrt(n1 * n0 / 12.0 * ((n + 1) - tie_term / (n * (n - 1))))
    if alternative == "greater":
        num = u - mu
    elif alternative == "less":
        num = mu - u
    elif alternative == "two-sided":
        num = np.abs(u - mu)
    else:
        raise ValueError(
            f"alternative must be 'greater', 'less' or 'two-sided', got {alternative!r}"
        )
    if continuity:
        num = num - 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sd > 0, num / np.where(sd > 0, sd, 1.0), 0.0)
    pv = stats.norm.sf(z)
    if alternative == "two-sided":
        pv = np.minimum(2 * pv, 1.0)
    pv = np.where(sd > 0, pv, 1.0)  # all scores tied: no evidence against the null
    return z, pv


def _rank_u(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mann-Whitney U of ``pos`` vs ``neg`` along the last axis and the tie term sum(t^3 - t)."""
    both = np.concatenate([pos, neg], axis=-1)
    if np.isnan(both).any():
        raise ValueError("scores contain NaN")
    ranks = stats.rankdata(both, axis=-1)
    n1 = pos.shape[-1]
    u = ranks[..., :n1].sum(axis=-1) - n1 * (n1 + 1) / 2.0
    tie_size = stats.rankdata(both, method="max", axis=-1) - stats.rankdata(
        both, method="min", axis=-1
    )
    tie_term = (tie_size * (tie_size + 2)).sum(axis=-1)  # sum over elements of t^2 - 1
    return u, tie_term


def mann_whitney(
    pos: npt.ArrayLike,
    neg: npt.ArrayLike,
    alternative: Alternative = "greater",
    continuity: bool = True,
) -> MannWhitney:
    """AUC of ``pos`` (members) against ``neg`` and its Mann-Whitney p-value.

    The null hypothesis is no leakage (members' and non-members' statistics exchangeable); the
    default one-sided alternative is that members score higher. Normal approximation with the
    tie-corrected null variance n1 n0 / 12 ((n + 1) - sum(t^3 - t) / (n (n - 1))) and, by default,
    a continuity correction of 1/2, as ``scipy.stats.mannwhitneyu(method="asymptotic")``.
    """
    pos = np.asarray(pos, dtype=np.float64).ravel()
    neg = np.asarray(neg, dtype=np.float64).ravel()
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("need at least one positive and one negative score")
    u, tie = _rank_u(pos, neg)
    z, pv = _mw_from_u(u, len(pos), len(neg), tie, alternative, continuity)
    return MannWhitney(float(u / (len(pos) * len(neg))), float(u), float(z), float(pv))


def per_record_auc(
    t_in: npt.ArrayLike,
    t_out: npt.ArrayLike,
    alternative: Alternative = "greater",
    continuity: bool = True,
) -> pd.DataFrame:
    """Per-record AUC of an attack (in models positive) with Mann-Whitney z and p-value.

    ``t_in`` [P, K_in], ``t_out`` [P, K_out] (from the ``*_loo`` functions). One row per record
    position: ``auc``, ``u``, ``z``, ``p_value``, ``n_in``, ``n_out``. Vectorised over records.
    """
    t_in, t_out = check_pools(t_in, t_out)
    n1, n0 = t_in.shape[1], t_out.shape[1]
    u, tie = _rank_u(t_in, t_out)
    z, pv = _mw_from_u(u, n1, n0, tie, alternative, continuity)
    return pd.DataFrame(
        {"auc": u / (n1 * n0), "u": u, "z": z, "p_value": pv, "n_in": n1, "n_out": n0}
    )


def _roc_counts(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thresholds (descending, +inf first), false and true positives of 'score >= threshold'."""
    scores = np.concatenate([pos, neg])
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    is_pos = np.concatenate([np.ones(len(pos), bool), np.zeros(len(neg), bool)])
    order = np.argsort(-scores, kind="stable")
    s, lab = scores[order], is_pos[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last index of each distinct score
    tps = np.cumsum(lab)[last]
    fps = last + 1 - tps
    return np.r_[np.inf, s[last]], np.r_[0, fps], np.r_[0, tps]


def roc_curve(pos: npt.ArrayLike, neg: npt.ArrayLike) -> pd.DataFrame:
    """ROC curve of 'member if score >= threshold': ``threshold``, ``fpr``, ``tpr``, ``fp``, ``tp``.

    One row per distinct score (plus the empty-set point at threshold +inf), in order of
    decreasing threshold.
    """
    pos = np.asarray(pos, dtype=np.float64).ravel()
    neg = np.asarray(neg, dtype=np.float64).ravel()
    thr, fps, tps = _roc_counts(pos, neg)
    return pd.DataFrame(
        {"threshold": thr, "fpr": fps / len(neg), "tpr": tps / len(pos), "fp": fps, "tp": tps}
    )


def balanced_accuracy(pos: npt.ArrayLike, neg: npt.ArrayLike) -> float:
    """Best balanced accuracy max_threshold (TPR + TNR) / 2 (optimistic: threshold picked on the data)."""
    roc = roc_curve(pos, neg)
    return float(((roc.tpr + 1 - roc.fpr) / 2).max())


def tpr_at_fpr(
    pos: npt.ArrayLike, neg: npt.ArrayLike, alphas: Sequence[float] = (0.01, 0.001, 0.0)
) -> pd.DataFrame:
    """TPR at FPR alpha: the largest TPR of a threshold whose empirical FPR <= alpha.

    With n_neg negatives only floor(alpha n_neg) false positives are allowed (``fp_allowed``); at
    alpha = 0.1% and fewer than 1000 negatives this is zero, i.e. the TPR at FPR 0, so each row
    also reports ``n_neg``, the false positives ``fp`` and the achieved ``fpr``.
    """
    pos = np.asarray(pos, dtype=np.float64).ravel()
    neg = np.asarray(neg, dtype=np.float64).ravel()
    thr, fps, tps = _roc_counts(pos, neg)
    rows = []
    for alpha in alphas:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        allowed = math.floor(alpha * len(neg) + 1e-9)
        j = int(np.nonzero(fps <= allowed)[0][-1])  # fps is non-decreasing; tps too
        rows.append(
            {
                "alpha": alpha,
                "tpr": tps[j] / len(pos),
                "fpr": fps[j] / len(neg),
                "threshold": thr[j],
                "tp": int(tps[j]),
                "fp": int(fps[j]),
                "fp_allowed": allowed,
                "n_pos": len(pos),
                "n_neg": len(neg),
            }
        )
    return pd.DataFrame(rows)


def pooled_metrics(
    t_in: npt.ArrayLike, t_out: npt.ArrayLike, alphas: Sequence[float] = (0.01, 0.001, 0.0)
) -> dict[str, float]:
    """Metrics over all (model, record) pairs: AUC, best balanced accuracy, TPR at each FPR alpha.

    Keys: ``auc``, ``balanced_accuracy``, ``n_pos``, ``n_neg`` and, per alpha, ``tpr@<alpha>``
    and ``fp_allowed@<alpha>`` (the number of negatives behind it, see :func:`tpr_at_fpr`).
    """
    pos = np.asarray(t_in, dtype=np.float64).ravel()
    neg = np.asarray(t_out, dtype=np.float64).ravel()
    out: dict[str, float] = {
        "auc": mann_whitney(pos, neg).auc,
        "balanced_accuracy": balanced_accuracy(pos, neg),
        "n_pos": len(pos),
        "n_neg": len(neg),
    }
    for row in tpr_at_fpr(pos, neg, alphas).itertuples():
        out[f"tpr@{row.alpha:g}"] = row.tpr
        out[f"fp_allowed@{row.alpha:g}"] = row.fp_allowed
    return out

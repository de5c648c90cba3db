"""One-run privacy audit (Steinke, Nasr & Jagielski, NeurIPS 2023).

"Privacy Auditing with One (1) Training Run" audits a training algorithm with a single model:
``m`` canaries are each put in the training set independently with probability 1/2
(``S_i in {in, out}``). After training the auditor scores every canary (higher = more likely
"in"), guesses "in" for the ``k_pos`` highest scores and "out" for the ``k_neg`` lowest, and
abstains on the rest. Of the ``r = k_pos + k_neg`` guesses, ``v`` are correct.

If training is (eps, delta)-DP, each guess can be correct with probability at most
``q = e^eps / (1 + e^eps)`` (up to the delta slack), so the number of correct guesses ``W``
is stochastically dominated by a binomial plus a delta term. The paper's theorem: for all v,

    P[W >= v] <= P[Binomial(r, q) >= v]
                 + 2 m delta * max_{i = 1..v} P[v > Binomial(r, q) >= v - i] / i.

The right-hand side (capped at 1) is therefore a p-value for the null hypothesis "training is
(eps, delta)-DP" having observed ``v`` correct guesses (:func:`p_value`). It is nondecreasing
in eps, so the empirical lower bound on eps at confidence ``c`` is the largest eps whose
p-value is still <= 1 - c (:func:`epsilon_lower_bound`); with probability >= c over the
canary inclusions the true eps is at least that large. For ``v = r`` and ``delta = 0`` this
has the closed form ``q = (1 - c)^(1/r)``, ``eps = log(q / (1 - q))``.

Numerics: the tails are computed on the number of *wrong* guesses, ``r - W`` against
``Binomial(r, 1 - q)`` with ``1 - q = expit(-eps)``, so that large eps (q rounding to 1 in
float64) does not lose the small wrong-guess probability, and the delta window is a cumulative
sum of point masses rather than a difference of CDFs.
"""

from __future__ import annotations

import math
import operator

import numpy as np
import pandas as pd
from scipy.special import expit
from scipy.stats import binom

AUDIT_COLUMNS = [
    "run",
    "m",
    "k_pos",
    "k_neg",
    "r",
    "v",
    "accuracy",
    "eps_lower_bound",
    "p_value_eps0",
]


def _as_int(value: object, name: str) -> int:
    """``value`` as a Python int (rejecting floats and bools), naming ``name`` in the error."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None


def _check_counts(m: int, r: int, v: int) -> tuple[int, int, int]:
    m, r, v = _as_int(m, "m"), _as_int(r, "r"), _as_int(v, "v")
    if m < 0:
        raise ValueError(f"m must be >= 0, got m={m}")
    if not 0 <= r <= m:
        raise ValueError(f"r must satisfy 0 <= r <= m, got r={r}, m={m}")
    if not 0 <= v <= r:
        raise ValueError(f"v must satisfy 0 <= v <= r, got v={v}, r={r}")
    return m, r, v


def _check_confidence(confidence: float) -> float:
    confidence = float(confidence)
    if not 0.0 < confidence < 1.0:  # also rejects NaN
        raise ValueError(f"confidence must be in (0, 1), got confidence={confidence}")
    return confidence


def _check_delta(delta: float) -> float:
    delta = float(delta)
    if not 0.0 <= delta <= 1.0:  # also rejects NaN
        raise ValueError(f"delta must be in [0, 1], got delta={delta}")
    return delta


def p_value(m: int, r: int, v: int, eps: float, delta: float) -> float:
    """P-value of ``v`` correct guesses out of ``r`` (``m`` canaries) if training is (eps, delta)-DP.

    The paper's tail bound on the number of correct guesses, capped at 1. Small values reject
    the hypothesis that training is (eps, delta)-DP.
    """
    m, r, v = _check_counts(m, r, v)
    eps = float(eps)
    if not 0.0 <= eps < math.inf:
        raise ValueError(f"eps must be finite and >= 0, got eps={eps}")
    delta = _check_delta(delta)

    p_wrong = float(expit(-eps))  # 1 - q, accurate for large eps
    # P[Binomial(r, q) >= v] = P[Binomial(r, 1 - q) <= r - v]
    tail = float(binom.cdf(r - v, r, p_wrong))
    if delta == 0.0 or v == 0 or tail >= 1.0:
        return min(tail, 1.0)
    # P[v > Binomial(r, q) >= v - i] = sum_{j=1..i} P[Binomial(r, 1 - q) = r - v + j]
    i = np.arange(1, v + 1)
    window = np.cumsum(binom.pmf(r - v + i, r, p_wrong))
    slack = 2.0 * m * delta * float(np.max(window / i))
    return min(tail + slack, 1.0)


def epsilon_lower_bound(
    m: int,
    r: int,
    v: int,
    delta: float,
    confidence: float = 0.95,
    eps_max: float = 50.0,
    tol: float = 1e-6,
) -> float:
    """Largest eps in [0, eps_max] whose :func:`p_value` is <= 1 - confidence (0 if none).

    With probability >= ``confidence`` the audited algorithm is not (eps, delta)-DP for any
    smaller eps, i.e. this is an empirical lower bound on its epsilon. Found by bisection
    (the p-value is nondecreasing in eps); the result is within ``tol`` below the crossing and
    always on the rejected side, so it never overstates the bound.
    """
    confidence = _check_confidence(confidence)
    eps_max = float(eps_max)
    if not 0.0 < eps_max < math.inf:
        raise ValueError(f"eps_max must be finite and > 0, got eps_max={eps_max}")
    tol = float(tol)
    if not tol > 0.0:
        raise ValueError(f"tol must be > 0, got tol={tol}")
    alpha = 1.0 - confidence

    if p_value(m, r, v, 0.0, delta) > alpha:  # also validates m, r, v, delta
        return 0.0
    if p_value(m, r, v, eps_max, delta) <= alpha:
        return eps_max
    lo, hi = 0.0, eps_max  # invariant: p(lo) <= alpha < p(hi)
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if p_value(m, r, v, mid, delta) <= alpha:
            lo = mid
        else:
            hi = mid
    return lo


def _check_included(included: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    included = np.asarray(included)
    if included.shape != shape:
        raise ValueError(f"included must have the shape of scores {shape}, got {included.shape}")
    if included.dtype != np.bool_:
        if not np.isin(included, (0, 1)).all():
            raise ValueError("included must be boolean (or 0/1)")
        included = included.astype(bool)
    return included


def _check_scores(scores: np.ndarray, ndim: int) -> np.ndarray:
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != ndim:
        raise ValueError(f"scores must be {ndim}-D, got shape {scores.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite (no NaN or inf)")
    return scores


def _check_k(k_pos: int, k_neg: int, m: int) -> tuple[int, int]:
    k_pos, k_neg = _as_int(k_pos, "k_pos"), _as_int(k_neg, "k_neg")
    if k_pos < 0:
        raise ValueError(f"k_pos must be >= 0, got k_pos={k_pos}")
    if k_neg < 0:
        raise ValueError(f"k_neg must be >= 0, got k_neg={k_neg}")
    if k_pos + k_neg > m:
        raise ValueError(f"k_pos + k_neg must be <= m, got {k_pos} + {k_neg} > m={m}")
    return k_pos, k_neg


def _count(scores: np.ndarray, included: np.ndarray, k_pos: int, k_neg: int) -> tuple[int, int]:
    # Rank by descending score; equal scores keep index order (the lower index ranks higher).
    order = np.argsort(-scores, kind="stable")
    guess_in = order[:k_pos]
    guess_out = order[len(order) - k_neg :]
    v = int(included[guess_in].sum()) + int((~included[guess_out]).sum())
    return k_pos + k_neg, v


def guess_counts(
    scores: np.ndarray, included: np.ndarray, k_pos: int, k_neg: int
) -> tuple[int, int]:
    """Number of guesses ``r`` and correct guesses ``v`` for one run.

    Guesses "in" for the ``k_pos`` highest ``scores`` and "out" for the ``k_neg`` lowest;
    ties are broken by index (among equal scores the lower index counts as higher), so the
    result is deterministic.
    """
    scores = _check_scores(scores, 1)
    included = _check_included(included, scores.shape)
    k_pos, k_neg = _check_k(k_pos, k_neg, scores.shape[0])
    return _count(scores, included, k_pos, k_neg)


def canary_inclusion(m: int, n_runs: int, seed: int) -> np.ndarray:
    """Bool [n_runs, m]: whether each canary is in each run's training set (probability 1/2).

    Independent fair coins from ``numpy.random.default_rng(seed)``, as the audit requires.
    """
    m, n_runs = _as_int(m, "m"), _as_int(n_runs, "n_runs")
    if m < 0:
        raise ValueError(f"m must be >= 0, got m={m}")
    if n_runs < 0:
        raise ValueError(f"n_runs must be >= 0, got n_runs={n_runs}")
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2, size=(n_runs, m)).astype(bool)


def audit_table(
    scores: np.ndarray,
    included: np.ndarray,
    k_pos: int,
    k_neg: int,
    delta: float,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """One-run audit of each of ``n_runs`` runs: scores and included are [n_runs, m].

    One row per run with the guess counts ``r`` and ``v`` (correct), the accuracy ``v / r``
    (NaN when ``r = 0``), the eps lower bound at ``confidence`` and the p-value at eps = 0
    (how strongly the run rejects "no privacy leakage at all").
    """
    scores = _check_scores(scores, 2)
    included = _check_included(included, scores.shape)
    n_runs, m = scores.shape
    k_pos, k_neg = _check_k(k_pos, k_neg, m)
    delta = _check_delta(delta)
    confidence = _check_confidence(confidence)
    rows = []
    for run in range(n_runs):
        r, v = _count(scores[run], included[run], k_pos, k_neg)
        rows.append(
            {
                "run": run,
                "m": m,
                "k_pos": k_pos,
                "k_neg": k_neg,
                "r": r,
                "v": v,
                "accuracy": v / r if r > 0 else math.nan,
                "eps_lower_bound": epsilon_lower_bound(m, r, v, delta, confidence),
                "p_value_eps0": p_value(m, r, v, 0.0, delta),
            }
        )
    return pd.DataFrame(rows, columns=AUDIT_COLUMNS)

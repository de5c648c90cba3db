"""Tests for the one-run privacy audit (Steinke, Nasr & Jagielski 2023)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from lood.privacy.audit.one_run import (
    AUDIT_COLUMNS,
    audit_table,
    canary_inclusion,
    epsilon_lower_bound,
    guess_counts,
    p_value,
)

# ---------------------------------------------------------------------------------------------
# p_value against an exact rational computation


def _exact_p_value(m: int, r: int, v: int, q: Fraction, delta: Fraction) -> Fraction:
    """The theorem's right-hand side in exact arithmetic, straight from the definition."""

    def pmf(w: int) -> Fraction:
        return math.comb(r, w) * q**w * (1 - q) ** (r - w)

    tail = sum((pmf(w) for w in range(v, r + 1)), Fraction(0))
    best = window = Fraction(0)
    for i in range(1, v + 1):
        window += pmf(v - i)  # now P[v > B >= v - i]
        if window / i > best:
            best = window / i
    return min(tail + 2 * m * delta * best, Fraction(1))


@pytest.mark.parametrize(
    ("eps", "q"),
    [(0.0, Fraction(1, 2)), (math.log(3), Fraction(3, 4)), (math.log(7 / 3), Fraction(7, 10))],
)
@pytest.mark.parametrize("delta", [0.0, 1e-4, 0.01, 0.2])
def test_p_value_matches_exact_rational(eps, q, delta):
    for r in range(13):
        for m in {r, r + 5, 40}:
            for v in range(r + 1):
                exact = _exact_p_value(m, r, v, q, Fraction(delta))
                got = p_value(m, r, v, eps, delta)
                assert got == pytest.approx(float(exact), rel=1e-12, abs=1e-12), (m, r, v)


def test_p_value_edge_cases_and_large_eps():
    assert p_value(10, 0, 0, 1.0, 0.0) == 1.0
    assert p_value(10, 5, 0, 3.0, 0.1) == 1.0
    # All r guesses right at eps = 0: 2^-r.
    assert p_value(20, 20, 20, 0.0, 0.0) == pytest.approx(2.0**-20, rel=1e-12)
    # Large eps: everything is plausible.
    assert p_value(50, 50, 50, 40.0, 0.0) == pytest.approx(1.0, abs=1e-12)
    assert p_value(100, 10, 10, 40.0, 1e-3) == pytest.approx(1.0, abs=1e-12)
    # Far tails keep their relative accuracy (no 1 - cdf cancellation).
    for m, r, v, eps, delta in [
        (1000, 1000, 900, 0.0, 0.0),
        (500, 400, 390, math.log(3), 0.0),
        (500, 400, 390, math.log(3), 1e-30),
    ]:
        q = Fraction(1, 2) if eps == 0 else Fraction(3, 4)
        exact = float(_exact_p_value(m, r, v, q, Fraction(delta)))
        assert 0 < exact < 1e-20
        assert p_value(m, r, v, eps, delta) == pytest.approx(exact, rel=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"m": -1, "r": 0, "v": 0}, "m must"),
        ({"m": 5, "r": 6, "v": 0}, "r must"),
        ({"m": 5, "r": 3, "v": 4}, "v must"),
        ({"m": 5, "r": 3, "v": -1}, "v must"),
        ({"m": 5.0, "r": 3, "v": 1}, "m must be an integer"),
        ({"eps": -0.1}, "eps must"),
        ({"eps": math.nan}, "eps must"),
        ({"eps": math.inf}, "eps must"),
        ({"delta": -1e-9}, "delta must"),
        ({"delta": 1.5}, "delta must"),
    ],
)
def test_p_value_validates(kwargs, match):
    args = {"m": 10, "r": 5, "v": 3, "eps": 1.0, "delta": 0.0} | kwargs
    with pytest.raises(ValueError, match=match):
        p_value(**args)


# ---------------------------------------------------------------------------------------------
# epsilon_lower_bound


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
@pytest.mark.parametrize("r", [5, 10, 50, 200, 1000])
def test_epsilon_lower_bound_closed_form_all_correct(r, confidence):
    q = (1 - confidence) ** (1 / r)
    expected = max(math.log(q / (1 - q)), 0.0)
    got = epsilon_lower_bound(2 * r, r, r, 0.0, confidence)
    assert got == pytest.approx(expected, abs=2e-6)
    assert got <= expected + 1e-12  # bisection stays on the rejected side


@pytest.mark.parametrize(
    ("m", "r", "v", "delta"),
    [(100, 100, 80, 0.0), (1000, 200, 150, 1e-5), (1000, 1000, 990, 1e-6), (50, 20, 18, 1e-3)],
)
def test_epsilon_lower_bound_is_the_largest_rejected_eps(m, r, v, delta):
    alpha = 0.05
    eps = epsilon_lower_bound(m, r, v, delta, 0.95, tol=1e-8)
    assert eps > 0
    assert p_value(m, r, v, eps, delta) <= alpha
    assert p_value(m, r, v, eps, delta) == pytest.approx(alpha, rel=1e-4)
    assert p_value(m, r, v, eps + 2e-6, delta) > alpha


def test_epsilon_lower_bound_limits_and_validation():
    # eps = 0 not rejected -> 0; everything rejected up to eps_max -> eps_max.
    assert epsilon_lower_bound(100, 10, 6, 0.0) == 0.0
    assert epsilon_lower_bound(10**6, 10**6, 10**6, 0.0, eps_max=5.0) == 5.0
    for bad in (0.0, 1.0, 1.5, math.nan):
        with pytest.raises(ValueError, match="confidence"):
            epsilon_lower_bound(10, 10, 10, 0.0, confidence=bad)
    with pytest.raises(ValueError, match="eps_max"):
        epsilon_lower_bound(10, 10, 10, 0.0, eps_max=0.0)
    with pytest.raises(ValueError, match="tol"):
        epsilon_lower_bound(10, 10, 10, 0.0, tol=0.0)
    with pytest.raises(ValueError, match="v must"):
        epsilon_lower_bound(10, 5, 6, 0.0)


def test_epsilon_lower_bound_monotone():
    m, r = 1000, 200
    bounds = [epsilon_lower_bound(m, r, v, 1e-5) for v in range(0, r + 1, 5)]
    assert all(b == 0.0 for v, b in zip(range(0, r + 1, 5), bounds, strict=True) if v <= r // 2)
    assert np.all(np.diff(bounds) >= 0)
    assert bounds[-1] > bounds[len(bounds) // 2 + 4] > 0  # strictly grows once informative
    # More slack delta -> smaller (or equal) bound.
    for v in (130, 170, 200):
        by_delta = [epsilon_lower_bound(m, r, v, d) for d in (0.0, 1e-8, 1e-6, 1e-4, 1e-3)]
        assert np.all(np.diff(by_delta) <= 1e-12), (v, by_delta)
    assert epsilon_lower_bound(m, r, 200, 1e-3) < epsilon_lower_bound(m, r, 200, 0.0)


def test_p_value_nondecreasing_in_eps():
    # The bisection relies on this; check it on a grid including large delta.
    eps = np.linspace(0, 15, 301)
    for m, r, v, delta in [(100, 100, 90, 1e-3), (30, 20, 12, 0.05), (500, 60, 45, 1e-6)]:
        ps = np.array([p_value(m, r, v, e, delta) for e in eps])
        assert np.all(np.diff(ps) >= -1e-15)


# ---------------------------------------------------------------------------------------------
# statistical validity by simulation


def _randomized_response_scores(
    included: np.ndarray, eps0: float, rng: np.random.Generator
) -> np.ndarray:
    """Scores from an eps0-DP "training": each canary's bit is reported via randomized response.

    The reported bit equals S_i with probability e^eps0 / (1 + e^eps0); a continuous jitter
    independent of S breaks ties. Changing one canary changes only its own report, with a
    likelihood ratio of at most e^eps0, so this is (eps0, 0)-DP.
    """
    truthful = rng.random(included.shape) < 1 / (1 + math.exp(-eps0))
    reported = np.where(truthful, included, ~included)
    return reported + 0.5 * rng.random(included.shape)


def test_audit_is_valid_and_powerful_under_randomized_response():
    n_trials, m, k = 400, 200, 50
    rng = np.random.default_rng(12345)
    included = canary_inclusion(m, n_trials, seed=7)

    eps0 = 1.0
    table = audit_table(_randomized_response_scores(included, eps0, rng), included, k, k, 0.0)
    # Each guess is right with probability exactly q0, so the audit should overshoot eps0 in at
    # most 5% of trials; allow a binomial margin (sd ~ 1.1% at 400 trials).
    overshoot = float((table["eps_lower_bound"] > eps0).mean())
    assert overshoot <= 0.10, overshoot
    assert table["accuracy"].mean() == pytest.approx(1 / (1 + math.exp(-eps0)), abs=0.02)

    # Power: a leaky algorithm is detected nearly always, with a bound that is informative
    # but still below the truth in most trials.
    eps0 = 4.0
    table = audit_table(_randomized_response_scores(included, eps0, rng), included, k, k, 1e-5)
    assert float((table["eps_lower_bound"] > 0).mean()) >= 0.95
    assert float(table["eps_lower_bound"].median()) > 2.0
    assert float((table["eps_lower_bound"] > eps0).mean()) <= 0.10


# ---------------------------------------------------------------------------------------------
# guess_counts and canary_inclusion


def _brute_force_counts(scores, included, k_pos, k_neg):
    m = len(scores)
    r = v = 0
    for i in range(m):
        # rank = how many canaries rank above i (higher score, or equal score and lower index)
        rank = sum(
            1 for j in range(m) if scores[j] > scores[i] or (scores[j] == scores[i] and j < i)
        )
        if rank < k_pos:
            r += 1
            v += bool(included[i])
        elif rank >= m - k_neg:
            r += 1
            v += not included[i]
    return r, v


def test_guess_counts_matches_brute_force():
    rng = np.random.default_rng(3)
    for trial in range(200):
        m = int(rng.integers(1, 30))
        # Half of the trials use few distinct values, so ties are common.
        scores = rng.integers(0, 4, m).astype(float) if trial % 2 else rng.normal(size=m)
        included = rng.random(m) < 0.5
        k_pos = int(rng.integers(0, m + 1))
        k_neg = int(rng.integers(0, m - k_pos + 1))
        expected = _brute_force_counts(scores, included, k_pos, k_neg)
        assert guess_counts(scores, included, k_pos, k_neg) == expected


def test_guess_counts_by_hand_and_ties():
    scores = np.array([0.9, 0.1, 0.5, 0.7, 0.2])
    included = np.array([True, False, False, True, True])
    assert guess_counts(scores, included, 2, 2) == (4, 3)  # in: 0, 3 (ok); out: 1 (ok), 4 (no)
    assert guess_counts(scores, included, 0, 0) == (0, 0)
    assert guess_counts(scores, included, 5, 0) == (5, 3)
    # All tied: the lower index counts as the higher score.
    flat = np.zeros(4)
    assert guess_counts(flat, np.array([True, False, True, False]), 1, 1) == (2, 2)
    assert guess_counts(flat, np.array([False, True, True, True]), 1, 1) == (2, 0)
    # 0/1 integers are accepted for included.
    assert guess_counts(scores, included.astype(int), 2, 2) == (4, 3)


@pytest.mark.parametrize(
    ("scores", "included", "k_pos", "k_neg", "match"),
    [
        (np.zeros(4), np.zeros(3, bool), 1, 1, "shape"),
        (np.zeros((2, 2)), np.zeros((2, 2), bool), 1, 1, "1-D"),
        (np.array([0.0, np.nan, 1.0]), np.zeros(3, bool), 1, 1, "finite"),
        (np.array([0.0, np.inf, 1.0]), np.zeros(3, bool), 1, 1, "finite"),
        (np.zeros(3), np.array([0, 2, 1]), 1, 1, "boolean"),
        (np.zeros(3), np.zeros(3, bool), -1, 1, "k_pos"),
        (np.zeros(3), np.zeros(3, bool), 1, -1, "k_neg"),
        (np.zeros(3), np.zeros(3, bool), 2, 2, "k_pos \\+ k_neg"),
        (np.zeros(3), np.zeros(3, bool), 1.5, 1, "k_pos must be an integer"),
    ],
)
def test_guess_counts_validates(scores, included, k_pos, k_neg, match):
    with pytest.raises(ValueError, match=match):
        guess_counts(scores, included, k_pos, k_neg)


def test_canary_inclusion_reproducible_and_fair():
    a = canary_inclusion(1000, 50, seed=1)
    assert a.shape == (50, 1000) and a.dtype == np.bool_
    np.testing.assert_array_equal(a, canary_inclusion(1000, 50, seed=1))
    assert not np.array_equal(a, canary_inclusion(1000, 50, seed=2))
    assert a.mean() == pytest.approx(0.5, abs=0.005)  # sd ~ 0.0022 over 50000 coins
    # Per-run fractions behave like Binomial(1000, 1/2) / 1000 (sd ~ 0.016).
    assert np.all(np.abs(a.mean(axis=1) - 0.5) < 0.08)
    # Runs are not copies of each other.
    assert len({row.tobytes() for row in a}) == 50
    assert canary_inclusion(0, 3, seed=0).shape == (3, 0)
    with pytest.raises(ValueError, match="n_runs"):
        canary_inclusion(10, -1, seed=0)


# ---------------------------------------------------------------------------------------------
# audit_table


def test_audit_table_consistent_with_functions():
    rng = np.random.default_rng(5)
    n_runs, m, k_pos, k_neg, delta = 6, 80, 20, 15, 1e-4
    included = canary_inclusion(m, n_runs, seed=11)
    scores = included * rng.uniform(0.5, 2.0, (n_runs, 1)) + rng.normal(size=(n_runs, m))
    table = audit_table(scores, included, k_pos, k_neg, delta, confidence=0.9)
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == AUDIT_COLUMNS
    assert list(table["run"]) == list(range(n_runs))
    assert (table[["m", "k_pos", "k_neg"]] == [m, k_pos, k_neg]).all().all()
    for run, row in table.iterrows():
        r, v = guess_counts(scores[run], included[run], k_pos, k_neg)
        assert (row["r"], row["v"]) == (r, v)
        assert row["accuracy"] == pytest.approx(v / r)
        assert row["eps_lower_bound"] == epsilon_lower_bound(m, r, v, delta, 0.9)
        assert row["p_value_eps0"] == p_value(m, r, v, 0.0, delta)
    assert table["eps_lower_bound"].max() > 0  # the signal is strong enough to register


def test_audit_table_no_guesses_and_validation():
    included = canary_inclusion(10, 2, seed=0)
    table = audit_table(np.zeros((2, 10)), included, 0, 0, 0.0)
    assert table["r"].tolist() == [0, 0]
    assert table["accuracy"].isna().all()
    assert (table["eps_lower_bound"] == 0.0).all()
    assert (table["p_value_eps0"] == 1.0).all()
    assert list(audit_table(np.zeros((0, 10)), np.zeros((0, 10), bool), 1, 1, 0.0).columns) == (
        AUDIT_COLUMNS
    )
    with pytest.raises(ValueError, match="shape"):
        audit_table(np.zeros((2, 10)), included[:1], 1, 1, 0.0)
    with pytest.raises(ValueError, match="2-D"):
        audit_table(np.zeros(10), included[0], 1, 1, 0.0)
    with pytest.raises(ValueError, match="confidence"):
        audit_table(np.zeros((2, 10)), included, 1, 1, 0.0, confidence=1.0)
    with pytest.raises(ValueError, match="delta"):
        audit_table(np.zeros((2, 10)), included, 1, 1, 2.0)

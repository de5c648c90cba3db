import math
from decimal import Decimal, localcontext

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

import lood.config as lc
from lood.privacy.metrics import (
    balanced_accuracy,
    mann_whitney,
    per_record_auc,
    pooled_metrics,
    roc_curve,
    tpr_at_fpr,
)
from lood.privacy.mia.attacks import (
    RMIA_A_GRID,
    lira_offline,
    lira_offline_loo,
    lira_online,
    lira_online_loo,
    rmia,
    rmia_loo,
    rmia_marginal,
    tune_rmia_a,
)
from lood.privacy.mia.evaluation import attack_statistics, free_in_comparison, pooled_table
from lood.privacy.mia.pools import AttackInputs, free_in_pool, record_pools
from lood.privacy.signals import lira_score, mse_score, true_class_log_prob, true_class_margin
from lood.privacy.spec import AttacksSpec

# ------------------------------------------------------------------------------------ the score


def _phi_exact(logits, label):
    """log p_y - log(sum_{c != y} p_c) and log p_y from the softmax in decimal arithmetic.

    The precision covers the smallest probability, e^-(max - min logit), with 40 digits to spare.
    """
    with localcontext() as ctx:
        ctx.prec = 40 + int((max(logits) - min(logits)) / math.log(10))
        e = [Decimal(float(z)).exp() for z in logits]
        total = sum(e)
        p = [v / total for v in e]
        rest = sum(p[c] for c in range(len(p)) if c != label)
        if len(p) == 2:
            rest = 1 - p[label]  # the textbook log(p / (1 - p)), exact at this precision
        return float((p[label] / rest).ln()), float(p[label].ln())


GRID = [-1000.0, -709.5, -37.25, -1e-3, 0.0, 2.5, 710.0, 1000.0]


def test_lira_score_two_classes_equals_high_precision_log_odds():
    for z0 in GRID:
        for z1 in GRID:
            logits = np.array([z0, z1])
            for y in (0, 1):
                phi_exact, logp_exact = _phi_exact(logits, y)
                phi = lira_score(logits, y)
                assert phi == pytest.approx(phi_exact, rel=1e-13, abs=1e-13)
                assert phi == logits[y] - logits[1 - y]  # the margin, exactly
                assert true_class_log_prob(logits, y) == pytest.approx(logp_exact, rel=1e-12)


def test_lira_score_is_finite_where_naive_formulas_overflow():
    logits = np.array([[1000.0, -1000.0], [-1000.0, 1000.0], [800.0, 799.0], [0.0, 745.0]])
    labels = np.array([0, 0, 0, 0])
    with np.errstate(all="ignore"):
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        naive = np.log(p[:, 0] / (1 - p[:, 0]))
    assert not np.isfinite(naive).all()
    phi = lira_score(logits, labels)
    assert np.isfinite(phi).all()
    np.testing.assert_array_equal(phi, [2000.0, -2000.0, 1.0, -745.0])
    logp = true_class_log_prob(logits, labels)
    np.testing.assert_allclose(logp, [0.0, -2000.0, -math.log1p(math.exp(-1.0)), -745.0])


def test_lira_score_three_and_more_classes_match_high_precision():
    rng = np.random.default_rng(0)
    cases = [(rng.normal(0, 5, 3), int(rng.integers(3))) for _ in range(20)]
    cases += [
        (np.array([500.0, -300.0, 499.5]), 0),
        (np.array([500.0, -300.0, 499.5]), 1),
        (np.array([-1000.0, 1000.0, 999.0]), 2),
        (np.array([3.0, 3.0, 3.0]), 1),  # phi = log(1/2)
        (np.array([1.0, -2.0, 0.5, 7.0, -40.0]), 3),
    ]
    for logits, y in cases:
        phi_exact, logp_exact = _phi_exact(logits, y)
        assert lira_score(logits, y) == pytest.approx(phi_exact, rel=1e-12, abs=1e-12)
        assert true_class_log_prob(logits, y) == pytest.approx(logp_exact, rel=1e-12, abs=1e-12)
    # broadcasting: [K, P, C] logits with labels [P]
    logits = rng.normal(size=(4, 3, 3))
    labels = np.array([2, 0, 1])
    phi = lira_score(logits, labels)
    assert phi.shape == (4, 3)
    assert phi[1, 2] == pytest.approx(_phi_exact(logits[1, 2], 1)[0], rel=1e-12)


def test_margin_score_broadcasts_mia_margin():
    """true_class_margin is mia.csv's margin_score over any leading axes; lira_score for C = 2."""
    from lood.privacy.signals import margin_score

    rng = np.random.default_rng(3)
    logits = rng.normal(size=(5, 4, 3))
    labels = np.array([2, 0, 1, 1])
    margin = true_class_margin(logits, labels)
    assert margin.shape == (5, 4)
    for i, y in enumerate(labels):
        np.testing.assert_array_equal(margin[:, i], margin_score(logits[:, i], int(y)))
    two = rng.normal(size=(6, 2))
    np.testing.assert_allclose(true_class_margin(two, 1), lira_score(two, 1), rtol=1e-15)
    assert not np.allclose(margin, lira_score(logits, labels))  # C > 2: not the same score
    with pytest.raises(ValueError, match="out of range"):
        true_class_margin(two, 2)


def test_mse_score_is_minus_the_training_loss():
    """mse_score is the audit's loss score (one-hot minus 1/C targets) over any leading axes."""
    from lood.privacy.audit.canaries import canary_scores

    rng = np.random.default_rng(4)
    outputs = rng.normal(size=(5, 4, 3))
    labels = np.array([2, 0, 1, 1])
    np.testing.assert_allclose(
        mse_score(outputs, labels), canary_scores(outputs, labels, "loss"), rtol=1e-14
    )
    z = np.array([0.7, -0.2])  # label 0, C = 2: targets (0.5, -0.5)
    assert mse_score(z, 0) == pytest.approx(-0.5 * (0.2**2 + 0.3**2))
    # training pulls the outputs to the target: the loss score is largest there, from both sides
    assert mse_score([0.5, -0.5], 0) > mse_score([0.9, -0.9], 0)
    assert mse_score([0.5, -0.5], 0) > mse_score([0.1, -0.1], 0)


def test_lira_score_validates():
    with pytest.raises(ValueError, match="C >= 2"):
        lira_score(np.zeros((3, 1)), 0)
    with pytest.raises(ValueError, match="out of range"):
        lira_score(np.zeros((3, 2)), 2)
    with pytest.raises(ValueError, match="integers"):
        lira_score(np.zeros((3, 2)), 0.5)


# ---------------------------------------------------------------------------------- the metrics


def test_roc_tpr_at_fpr_balanced_accuracy_by_hand():
    pos = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    neg = np.array([4.5, 3.0, 0.0, -1.0])
    # distinct thresholds: 5 (tp 1, fp 0), 4.5 (1, 1), 4 (2, 1), 3 (3, 2), 2 (4, 2), 1 (5, 2), ...
    table = tpr_at_fpr(pos, neg, alphas=(0.0, 0.25, 0.3, 0.5))
    np.testing.assert_allclose(table.tpr, [0.2, 0.4, 0.4, 1.0])
    np.testing.assert_array_equal(table.fp_allowed, [0, 1, 1, 2])
    np.testing.assert_array_equal(table.fp, [0, 1, 1, 2])
    np.testing.assert_array_equal(table.threshold, [5.0, 4.0, 4.0, 1.0])
    assert (table.n_neg == 4).all()
    assert balanced_accuracy(pos, neg) == pytest.approx(0.75)  # threshold 1: (1 + 1/2) / 2
    # AUC: 4 + 3 + (2 + 1/2) + 2 + 2 = 13.5 of 20 pairs
    assert mann_whitney(pos, neg).auc == pytest.approx(0.675)
    roc = roc_curve(pos, neg)
    np.testing.assert_array_equal(roc.fp, [0, 0, 1, 1, 2, 2, 2, 3, 4])
    np.testing.assert_array_equal(roc.tp, [0, 1, 1, 2, 3, 4, 5, 5, 5])


def test_roc_curve_and_auc_match_sklearn_with_ties():
    rng = np.random.default_rng(3)
    pos = rng.integers(0, 10, 300).astype(float) + 1
    neg = rng.integers(0, 10, 200).astype(float)
    y = np.r_[np.ones(300), np.zeros(200)]
    fpr, tpr, thr = sk_roc_curve(y, np.r_[pos, neg], drop_intermediate=False)
    ours = roc_curve(pos, neg)
    np.testing.assert_allclose(ours.fpr, fpr)
    np.testing.assert_allclose(ours.tpr, tpr)
    np.testing.assert_allclose(ours.threshold[1:], thr[1:])
    assert mann_whitney(pos, neg).auc == pytest.approx(roc_auc_score(y, np.r_[pos, neg]))


def _binormal_auc_se(d, n1, n0):
    """Exact standard error of the empirical AUC of N(d, 1) against N(0, 1) samples."""
    a = stats.norm.cdf(d / math.sqrt(2))
    both = stats.multivariate_normal([0, 0], [[1, 0.5], [0.5, 1]]).cdf([d / math.sqrt(2)] * 2)
    var = (a * (1 - a) + (n1 - 1) * (both - a**2) + (n0 - 1) * (both - a**2)) / (n1 * n0)
    return a, math.sqrt(var)


def _tpr_interval(d, alpha, n1, n0, q=0.005):
    """Range of the TPR estimate at FPR alpha: the threshold's true FPR is a uniform order
    statistic (Beta), and given the threshold the number of positives above it is binomial."""
    k = math.floor(alpha * n0 + 1e-9)  # false positives allowed
    fpr = stats.beta(k + 1, n0 - k)  # true FPR of the (k+1)-th largest negative

    def tpr(f):
        return stats.norm.sf(stats.norm.isf(f) - d)

    lo = stats.binom.ppf(q, n1, tpr(fpr.ppf(q))) / n1
    hi = stats.binom.ppf(1 - q, n1, tpr(fpr.ppf(1 - q))) / n1
    return lo, hi


@pytest.mark.parametrize("d", [0.5, 1.0, 2.0])
def test_pooled_metrics_on_binormal_scores(d):
    n = 10_000
    rng = np.random.default_rng(int(d * 10))
    pos, neg = rng.normal(d, 1, n), rng.normal(0, 1, n)
    m = pooled_metrics(pos, neg, alphas=(0.01, 0.001, 0.0))
    auc, se = _binormal_auc_se(d, n, n)
    assert abs(m["auc"] - auc) < 3 * se
    assert m["balanced_accuracy"] == pytest.approx(stats.norm.cdf(d / 2), abs=0.012)
    assert m["n_neg"] == n and m["fp_allowed@0.01"] == 100 and m["fp_allowed@0.001"] == 10
    for alpha in (0.01, 0.001, 0.0):
        lo, hi = _tpr_interval(d, alpha, n, n)
        assert lo <= m[f"tpr@{alpha:g}"] <= hi
        if alpha > 0:
            assert lo <= stats.norm.sf(stats.norm.isf(alpha) - d) <= hi


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
@pytest.mark.parametrize("continuity", [True, False])
def test_mann_whitney_matches_scipy_with_ties(alternative, continuity):
    rng = np.random.default_rng(7)
    for n1, n0 in [(15, 20), (40, 9), (100, 100)]:
        x = rng.integers(0, 6, n1).astype(float) + rng.integers(0, 2)
        y = rng.integers(0, 6, n0).astype(float)
        ref = stats.mannwhitneyu(
            x, y, alternative=alternative, method="asymptotic", use_continuity=continuity
        )
        ours = mann_whitney(x, y, alternative=alternative, continuity=continuity)
        assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9)
        assert ours.u == pytest.approx(stats.mannwhitneyu(x, y).statistic)
    # per record, vectorised
    xs, ys = rng.integers(0, 4, (6, 12)).astype(float), rng.integers(0, 4, (6, 15)).astype(float)
    table = per_record_auc(xs, ys, alternative=alternative, continuity=continuity)
    ref = stats.mannwhitneyu(
        xs, ys, alternative=alternative, method="asymptotic", use_continuity=continuity, axis=1
    )
    np.testing.assert_allclose(table.p_value, ref.pvalue, rtol=1e-9)
    np.testing.assert_allclose(table.auc, stats.mannwhitneyu(xs, ys, axis=1).statistic / 180)


def test_mann_whitney_all_tied_is_no_evidence():
    assert mann_whitney(np.ones(5), np.ones(7)) == (0.5, 17.5, 0.0, 1.0)


# --------------------------------------------------------------------------------------- LiRA


def _lira_loop(s_in, s_out, extra=None, leak=False):
    """Reference: refit the Gaussians for every target, dropping it from its pool unless `leak`."""
    p, k_in = s_in.shape
    t_in, t_out = np.empty_like(s_in), np.empty_like(s_out)
    for i in range(p):
        ex = np.empty(0) if extra is None else extra[i]
        for k in range(k_in):
            ref_in = s_in[i] if leak else np.delete(s_in[i], k)
            t_in[i, k] = lira_online(s_in[i, k], np.r_[ref_in, ex], s_out[i])
        for k in range(s_out.shape[1]):
            ref_out = s_out[i] if leak else np.delete(s_out[i], k)
            t_out[i, k] = lira_online(s_out[i, k], np.r_[s_in[i], ex], ref_out)
    return t_in, t_out


def test_lira_online_loo_equals_refitting_without_the_target():
    rng = np.random.default_rng(0)
    s_in, s_out = rng.normal(0.5, 1.2, (7, 6)), rng.normal(0, 0.8, (7, 9))
    extra = rng.normal(0.4, 1, (7, 11))
    for ex in (None, extra):
        t_in, t_out = lira_online_loo(s_in, s_out, ex)
        r_in, r_out = _lira_loop(s_in, s_out, ex)
        np.testing.assert_allclose(t_in, r_in, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(t_out, r_out, rtol=1e-10, atol=1e-10)
        # a leaky fit (the target inside its own Gaussian) gives other statistics
        l_in, l_out = _lira_loop(s_in, s_out, ex, leak=True)
        assert not np.allclose(t_in, l_in) and not np.allclose(t_out, l_out)


def test_leave_one_out_catches_the_self_fit_leak_on_null_data():
    # No leakage at all: in and out scores from one distribution. Fitting the reference on the
    # scored model inflates the AUC; leaving it out does not.
    rng = np.random.default_rng(1)
    s_in, s_out = rng.normal(size=(300, 6)), rng.normal(size=(300, 6))
    honest = per_record_auc(*lira_online_loo(s_in, s_out)).auc.mean()
    leaky = per_record_auc(*_lira_loop(s_in, s_out, leak=True)).auc.mean()
    assert honest < 0.53
    assert leaky > honest + 0.1


def test_lira_global_and_fixed_variance():
    rng = np.random.default_rng(2)
    s_in, s_out = rng.normal(1, 1.5, (5, 6)), rng.normal(0, 0.7, (5, 8))
    t_in, t_out = lira_online_loo(s_in, s_out, variance="global")

    def pooled_sd(pools):
        return math.sqrt(
            sum(((q - q.mean()) ** 2).sum() for q in pools) / sum(len(q) - 1 for q in pools)
        )

    for i in range(5):
        for k in range(6):
            pools = [np.delete(s_in[j], k) if j == i else s_in[j] for j in range(5)]
            expect = stats.norm.logpdf(
                s_in[i, k], pools[i].mean(), pooled_sd(pools)
            ) - stats.norm.logpdf(s_in[i, k], s_out[i].mean(), pooled_sd(list(s_out)))
            assert t_in[i, k] == pytest.approx(expect, rel=1e-10)
        for k in range(8):
            pools = [np.delete(s_out[j], k) if j == i else s_out[j] for j in range(5)]
            expect = stats.norm.logpdf(
                s_out[i, k], s_in[i].mean(), pooled_sd(list(s_in))
            ) - stats.norm.logpdf(s_out[i, k], pools[i].mean(), pooled_sd(pools))
            assert t_out[i, k] == pytest.approx(expect, rel=1e-10)
    f_in, _ = lira_online_loo(s_in, s_out, variance=0.9)
    assert f_in[0, 0] == pytest.approx(
        lira_online(s_in[0, 0], s_in[0, 1:], s_out[0], std=0.9), rel=1e-12
    )
    with pytest.raises(ValueError, match="variance"):
        lira_online_loo(s_in, s_out, variance="pooled")
    with pytest.raises(ValueError, match="variance"):
        lira_online_loo(s_in, s_out, variance=-1.0)


def test_lira_online_swapped_roles():
    rng = np.random.default_rng(4)
    s_in, s_out = rng.normal(0.7, 1, (10, 8)), rng.normal(0, 1, (10, 12))
    t_in, t_out = lira_online_loo(s_in, s_out)
    w_in, w_out = lira_online_loo(s_out, s_in)  # the attacker believes the out models are in
    np.testing.assert_allclose(w_in, -t_out, rtol=1e-12)
    np.testing.assert_allclose(w_out, -t_in, rtol=1e-12)
    auc = per_record_auc(t_in, t_out).auc
    np.testing.assert_allclose(per_record_auc(t_out, t_in).auc, 1 - auc, atol=1e-15)


def test_lira_offline_is_monotone_in_the_score():
    rng = np.random.default_rng(5)
    p = 40
    s_in = rng.normal(rng.uniform(0, 3, (p, 1)), 1, (p, 10))
    s_out = rng.normal(0, 1, (p, 10))
    s_in[:3] = np.round(s_in[:3])  # ties inside and across the pools
    s_out[:3] = np.round(s_out[:3])
    s_in[5, :4] = [60.0, 80.0, -60.0, 1e3]  # far tails, where Phi(z) would round to 0 or 1
    raw = per_record_auc(s_in, s_out).auc
    ref = rng.normal(0, 1, (p, 15))  # one out reference per record, none of the targets
    t_in = lira_offline(s_in, ref[:, None, :])
    t_out = lira_offline(s_out, ref[:, None, :])
    np.testing.assert_array_equal(per_record_auc(t_in, t_out).auc, raw)
    # Leave-one-out: in targets share one reference (all out models), so they keep their order;
    # out target k is scored without itself, which moves the AUC by O(1 / K_out) (0.016 on
    # average at K_out = 10, 0.0014 at 100 in a 200-record simulation).
    s_in = rng.normal(rng.uniform(0, 3, (20, 1)), 1, (20, 100))
    s_out = rng.normal(0, 1, (20, 100))
    t_in, t_out = lira_offline_loo(s_in, s_out)
    np.testing.assert_array_equal(np.argsort(t_in, axis=1), np.argsort(s_in, axis=1))
    np.testing.assert_array_equal(np.argsort(t_out, axis=1), np.argsort(s_out, axis=1))
    raw, loo = per_record_auc(s_in, s_out).auc, per_record_auc(t_in, t_out).auc
    assert np.abs(loo - raw).max() < 0.01
    assert lira_offline(2.0, [0.0, 1.0, -1.0]) == pytest.approx(2.0)  # (2 - 0) / 1


# --------------------------------------------------------------------------------------- RMIA


def test_rmia_hand_worked_example():
    # Target model: p(x) = 0.5; population z1, z2, z3: 0.9, 0.3, 0.5.
    # Out references on x: 0.2, 0.4 -> P_out = 0.3 -> offline P(x) = 0.65 * 0.3 + 0.35 = 0.545.
    # In references on x: 0.9, 0.7, 0.8 -> online P(x) = (0.8 + 0.3) / 2 = 0.55.
    # References on z (all out for z): means 0.9, 0.1, 0.4 -> P(z) = 0.935, 0.415, 0.61.
    lx_out, lx_in = np.log([0.2, 0.4]), np.log([0.9, 0.7, 0.8])
    lz_ref = np.log([[0.8, 1.0], [0.1, 0.1], [0.3, 0.5]])
    lz_target = np.log([0.9, 0.3, 0.5])
    assert math.exp(rmia_marginal(lx_out)) == pytest.approx(0.545)
    assert math.exp(rmia_marginal(lx_out, lx_in)) == pytest.approx(0.55)
    np.testing.assert_allclose(np.exp(rmia_marginal(lz_ref)), [0.935, 0.415, 0.61])
    # offline LR(x, z) = (0.5 / 0.545) / (p_z / P_z): 0.4675/0.4905 = 0.953, 0.2075/0.1635 = 1.269,
    # 0.61/0.545 = 1.119
    args = (math.log(0.5), lz_target, rmia_marginal(lx_out), rmia_marginal(lz_ref))
    assert rmia(*args) == pytest.approx(2 / 3)
    assert rmia(*args, gamma=1.2) == pytest.approx(1 / 3)
    assert rmia(*args, gamma=1.3) == 0.0
    # online LR: 0.4675/0.495 = 0.944, 0.2075/0.165 = 1.258, 0.61/0.55 = 1.109 (pooling the five
    # references instead, P(x) = 0.6 and the last ratio 1.017 would fail gamma = 1.05)
    args = (math.log(0.5), lz_target, rmia_marginal(lx_out, lx_in), rmia_marginal(lz_ref))
    assert rmia(*args, gamma=1.05) == pytest.approx(2 / 3)
    assert rmia(*args, gamma=1.2) == pytest.approx(1 / 3)
    # strictly greater: a population record identical to x (LR = 1 exactly) does not count
    px = rmia_marginal(lx_out)
    assert rmia(math.log(0.5), np.r_[math.log(0.5), lz_target], px, np.r_[px, args[3]]) == 0.5
    # a = 1: P(x) = P_out(x) exactly
    assert math.exp(rmia_marginal(lx_out, a=1.0)) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="gamma"):
        rmia(*args, gamma=0.0)
    with pytest.raises(ValueError, match="a must"):
        rmia_marginal(lx_out, a=1.5)


def _rmia_data(rng, p=4, k_in=5, k_out=6, m=30, shift=0.6):
    lp_in = np.log(rng.uniform(0.05, 1, (p, k_in)) ** (1 - shift))
    lp_out = np.log(rng.uniform(0.05, 1, (p, k_out)))
    lz_in = np.log(rng.uniform(0.05, 1, (k_in, m)))
    lz_out = np.log(rng.uniform(0.05, 1, (p, k_out, m)))
    return lp_in, lp_out, lz_in, lz_out


def _rmia_loop(lp_in, lp_out, lz_in, lz_out, offline, a=0.3, gamma=1.0, extra=None, leak=False):
    """Reference: one target at a time, its references rebuilt without it (unless `leak`)."""
    p, k_in = lp_in.shape
    k_out = lp_out.shape[1]
    t_in, t_out = np.empty_like(lp_in), np.empty_like(lp_out)
    for i in range(p):
        ex_x = np.empty(0) if extra is None else extra[i]
        ex_z = np.empty((0, lz_in.shape[1]))
        if extra is not None:
            ex_z = np.concatenate([lz_out[j] for j in range(p) if j != i])
        for role, k in [("in", k) for k in range(k_in)] + [("out", k) for k in range(k_out)]:
            keep_in = np.arange(k_in) != k if role == "in" and not leak else np.ones(k_in, bool)
            keep_out = np.arange(k_out) != k if role == "out" and not leak else np.ones(k_out, bool)
            if offline:
                px = rmia_marginal(lp_out[i][keep_out], a=a)
                z_ref = lz_out[i][keep_out]
            else:
                px = rmia_marginal(lp_out[i][keep_out], np.r_[lp_in[i][keep_in], ex_x], a=a)
                z_ref = np.concatenate([lz_in[keep_in], lz_out[i][keep_out], ex_z])
            pz = rmia_marginal(z_ref.T, a=a if offline else 1.0)  # online: plain mean
            if role == "in":
                t_in[i, k] = rmia(lp_in[i, k], lz_in[k], px, pz, gamma)
            else:
                t_out[i, k] = rmia(lp_out[i, k], lz_out[i, k], px, pz, gamma)
    return t_in, t_out


def _rmia_reference(p_x, p_z, ref_in_x, ref_out_x, ref_z, offline, a, gamma):
    """One target's RMIA score from the reference's formulas, in probabilities, one z at a time.

    Online, the RMIA paper (Zarifzadeh et al. 2024): Pr(x) = (mean in + mean out) / 2, Pr(z) =
    mean over every reference model. Offline, ML Privacy Meter's run_rmia: mean_x = (1 + a)/2
    mean_out_x + (1 - a)/2, mean_z likewise over the (out) references.
    """
    if offline:
        big_px = (1 + a) / 2 * sum(ref_out_x) / len(ref_out_x) + (1 - a) / 2
    else:
        big_px = 0.5 * (sum(ref_in_x) / len(ref_in_x) + sum(ref_out_x) / len(ref_out_x))
    count = 0
    for m in range(len(p_z)):
        column = [row[m] for row in ref_z]
        big_pz = sum(column) / len(column)
        if offline:
            big_pz = (1 + a) / 2 * big_pz + (1 - a) / 2
        count += (p_x / big_px) / (p_z[m] / big_pz) > gamma
    return count / len(p_z)


@pytest.mark.parametrize("offline", [False, True])
def test_rmia_loo_matches_the_references_formulas_in_a_plain_loop(offline):
    rng = np.random.default_rng(20)
    lp_in, lp_out, lz_in, lz_out = _rmia_data(rng, p=3, k_in=4, k_out=5, m=25)
    lz_in = lz_in + 0.3  # in models more confident on z too: a = 0.3 on z would move P(z)
    a, gamma = 0.3, 1.0
    t_in, t_out = rmia_loo(lp_in, lp_out, lz_in, lz_out, offline, a, gamma)
    px_in, px_out, pz_in, pz_out = (np.exp(v) for v in (lp_in, lp_out, lz_in, lz_out))
    for i in range(3):
        for role, k_max in (("in", 4), ("out", 5)):
            for k in range(k_max):
                ins = [m for m in range(4) if not (role == "in" and m == k)]
                outs = [m for m in range(5) if not (role == "out" and m == k)]
                ref_z = [pz_out[i, m] for m in outs]
                if not offline:
                    ref_z += [pz_in[m] for m in ins]
                target_x = px_in[i, k] if role == "in" else px_out[i, k]
                target_z = pz_in[k] if role == "in" else pz_out[i, k]
                want = _rmia_reference(
                    target_x, target_z, px_in[i, ins], px_out[i, outs], ref_z, offline, a, gamma
                )
                got = t_in[i, k] if role == "in" else t_out[i, k]
                assert got == pytest.approx(want, abs=1e-12), (role, i, k)


def test_tune_rmia_a_picks_from_the_grid_without_the_records_own_models():
    rng = np.random.default_rng(22)
    data = _rmia_data(rng, p=5, k_in=6, k_out=6, m=40)
    a = tune_rmia_a(*data)
    assert a.shape == (5,) and set(a) <= set(RMIA_A_GRID)
    # record 0's a comes from records 1..4 only: scrambling record 0's models leaves it
    lp_in, lp_out, lz_in, lz_out = (v.copy() for v in data)
    lp_in[0], lp_out[0] = lp_out[0], lp_in[0]
    assert tune_rmia_a(lp_in, lp_out, lz_in, lz_out)[0] == a[0]
    # the chosen a is the grid's best for the others: no other a scores a higher pooled AUC
    from lood.privacy.metrics import roc_auc

    def auc_without_0(a_value):
        t_in, t_out = rmia_loo(*data, offline=True, a=a_value)
        member = np.r_[np.ones(t_in[1:].size, bool), np.zeros(t_out[1:].size, bool)]
        return roc_auc(member, np.r_[t_in[1:].ravel(), t_out[1:].ravel()])

    best = max(auc_without_0(g) for g in RMIA_A_GRID)
    assert auc_without_0(a[0]) == pytest.approx(best)
    with pytest.raises(ValueError, match="2 records"):
        tune_rmia_a(*(v[:1] for v in data))


@pytest.mark.parametrize("offline", [False, True])
@pytest.mark.parametrize("gamma", [1.0, 1.5])
def test_rmia_loo_equals_rebuilding_references_without_the_target(offline, gamma):
    rng = np.random.default_rng(10)
    data = _rmia_data(rng)
    t_in, t_out = rmia_loo(*data, offline=offline, a=0.3, gamma=gamma)
    r_in, r_out = _rmia_loop(*data, offline, 0.3, gamma)
    np.testing.assert_array_equal(t_in, r_in)
    np.testing.assert_array_equal(t_out, r_out)
    l_in, l_out = _rmia_loop(*data, offline, 0.3, gamma, leak=True)
    assert not (np.array_equal(t_in, l_in) and np.array_equal(t_out, l_out))


def test_rmia_loo_with_free_in_models():
    rng = np.random.default_rng(11)
    lp_in, lp_out, lz_in, lz_out = _rmia_data(rng, p=4, k_out=3)
    extra = np.log(rng.uniform(0.1, 1, (4, 9)))
    t_in, t_out = rmia_loo(lp_in, lp_out, lz_in, lz_out, extra_in=extra)
    r_in, r_out = _rmia_loop(lp_in, lp_out, lz_in, lz_out, False, extra=extra)
    np.testing.assert_array_equal(t_in, r_in)
    np.testing.assert_array_equal(t_out, r_out)
    with pytest.raises(ValueError, match="free in"):
        rmia_loo(lp_in, lp_out, lz_in, lz_out, offline=True, extra_in=extra)


@pytest.mark.parametrize("offline", [False, True])
def test_rmia_scaling_a_target_models_probabilities_leaves_its_scores(offline):
    rng = np.random.default_rng(12)
    lp_in, lp_out, lz_in, lz_out = _rmia_data(rng, p=5, m=200)
    t_in, t_out = rmia_loo(lp_in, lp_out, lz_in, lz_out, offline)
    c = math.log(0.37)
    # in model 2 (one network, an in model of every record): its scores on every record stay
    s_in, s_zin = lp_in.copy(), lz_in.copy()
    s_in[:, 2] += c
    s_zin[2] += c
    u_in, u_out = rmia_loo(s_in, lp_out, s_zin, lz_out, offline)
    np.testing.assert_array_equal(u_in[:, 2], t_in[:, 2])
    # out model 4 of record 1
    s_out, s_zout = lp_out.copy(), lz_out.copy()
    s_out[1, 4] += c
    s_zout[1, 4] += c
    u_in, u_out = rmia_loo(lp_in, s_out, lz_in, s_zout, offline)
    assert u_out[1, 4] == t_out[1, 4]
    # other targets use the scaled model as a reference: their scores may move
    assert not np.array_equal(u_out[1], t_out[1])
    # the single-target function as well
    args = (lp_in[0, 0], lz_in[0], rmia_marginal(lp_out[0]), rmia_marginal(lz_out[0].T))
    assert rmia(*args) == rmia(args[0] + c, args[1] + c, *args[2:])


def test_rmia_swapping_in_and_out_flips_the_auc():
    rng = np.random.default_rng(13)
    p, k_in, k_out, m = 6, 7, 7, 25  # few population records: many tied RMIA scores
    lp_in, lp_out, lz_in, lz_out = _rmia_data(rng, p, k_in, k_out, m, shift=0.3)
    lz_in_rec = np.broadcast_to(lz_in, (p, k_in, m))
    t_in, t_out = rmia_loo(lp_in, lp_out, lz_in_rec, lz_out)
    auc = per_record_auc(t_in, t_out).auc
    assert np.unique(np.r_[t_in.ravel(), t_out.ravel()]).size < t_in.size + t_out.size  # ties
    # online RMIA treats in and out references alike, so swapping the arrays swaps the scores
    w_in, w_out = rmia_loo(lp_out, lp_in, lz_out, lz_in_rec)
    np.testing.assert_allclose(per_record_auc(w_in, w_out).auc, 1 - auc, atol=1e-15)
    np.testing.assert_allclose(per_record_auc(t_out, t_in).auc, 1 - auc, atol=1e-15)


# -------------------------------------------------------------------- workflow arrays, free in


def _workflow_arrays(rng, p=6, k_in=8, k_out=8, m=40, strength=None):
    """Logits shaped as the workflow stores them; record i leaks with `strength[i]`."""
    strength = np.zeros(p) if strength is None else np.asarray(strength, float)
    labels = rng.integers(0, 3, p)
    sign = np.where(np.arange(3) == labels[:, None], 1.0, 0.0)  # [P, C]
    in_outputs = rng.normal(size=(k_in, p, 3)) + strength[:, None] * sign
    out_all = rng.normal(size=(p, k_out, p, 3)) + strength[:, None] * sign  # in for i != j
    own = np.arange(p)
    out_all[own, :, own, :] -= (strength[:, None] * sign)[:, None, :]  # record i out of its own
    test_labels = rng.integers(0, 3, m)
    in_test = rng.normal(size=(k_in, m, 3))
    out_test = rng.normal(size=(p, k_out, m, 3))
    return in_outputs, out_all, labels, in_test, out_test, test_labels


def test_free_in_pool_indexing():
    p, k = 4, 3
    j, kk, i = np.meshgrid(np.arange(p), np.arange(k), np.arange(p), indexing="ij")
    values = 100 * j + 10 * kk + i  # out model kk of record j on record i
    pool = free_in_pool(values)
    assert pool.shape == (p, (p - 1) * k)
    for rec in range(p):
        expect = [100 * jj + 10 * q + rec for jj in range(p) if jj != rec for q in range(k)]
        np.testing.assert_array_equal(pool[rec], expect)


def _inputs(in_outputs, out_outputs, labels, in_test=None, out_test=None, test_labels=None):
    """The arrays of :func:`_workflow_arrays` (or the first three) as AttackInputs."""
    return AttackInputs(labels, in_outputs, out_outputs, in_test, out_test, test_labels)


def _spec(**settings) -> AttacksSpec:
    """The ``attacks`` section: the schema's defaults, then ``settings``."""
    return AttacksSpec.from_config(lc.section_defaults("attacks") | settings)


def test_attack_statistics_pairs_records_with_their_models():
    rng = np.random.default_rng(20)
    arrays = _workflow_arrays(rng, strength=[0, 4.0, 0, 0, 0, 0])
    stats_ = attack_statistics(_inputs(*arrays), _spec())
    assert set(stats_) == {"score", "lira_online", "lira_offline", "rmia_online", "rmia_offline"}
    s_in, s_out, _ = record_pools(arrays[0], arrays[1], arrays[2])
    in_outputs, out_all, labels = arrays[:3]
    assert s_in[1, 2] == lira_score(in_outputs[2, 1], labels[1])
    assert s_out[1, 2] == lira_score(out_all[1, 2, 1], labels[1])
    for name, (t_in, t_out) in stats_.items():
        table = per_record_auc(t_in, t_out)
        assert table.auc[1] > 0.9, name  # RMIA: a few out targets also beat every z
        assert table.p_value[1] < 0.01, name
        assert table.auc.drop(index=1).max() < 0.9, name
    pooled = pooled_table(stats_)
    assert list(pooled.attack) == list(stats_)
    assert (pooled.n_neg == 6 * 8).all() and (pooled["fp_allowed@0.01"] == 0).all()
    # the 3-D out layout gives the same statistics
    own = out_all[np.arange(6), :, np.arange(6), :]
    again = attack_statistics(_inputs(arrays[0], own, *arrays[2:]), _spec())
    for name in stats_:
        np.testing.assert_array_equal(again[name][0], stats_[name][0])
    with pytest.raises(ValueError, match="RMIA needs"):
        attack_statistics(_inputs(*arrays[:4]), _spec())
    with pytest.raises(ValueError, match="free_in needs"):
        attack_statistics(_inputs(arrays[0], own, arrays[2]), _spec(free_in=True))


def test_free_in_models_sharpen_the_online_attacks():
    rng = np.random.default_rng(21)
    p = 20
    arrays = _workflow_arrays(rng, p=p, k_in=4, k_out=8, strength=rng.uniform(0.5, 2.0, p))
    table = free_in_comparison(_inputs(*arrays), _spec())
    assert list(table.attack.unique()) == ["lira_online", "rmia_online"]
    assert (table.n_in_pool == 4).all() and (table.n_in_pool_free_in == 4 + 19 * 8).all()
    lira = table[table.attack == "lira_online"]
    assert lira.auc_free_in.mean() > lira.auc.mean() + 0.03
    # without population outputs only LiRA is compared
    only_lira = free_in_comparison(_inputs(*arrays[:3]), _spec())
    pd.testing.assert_frame_equal(only_lira, lira.reset_index(drop=True))


def test_attack_statistics_margin_score_changes_only_lira():
    rng = np.random.default_rng(22)
    arrays = _workflow_arrays(rng, strength=[0, 3.0, 0, 1.0, 0, 0])
    inputs = _inputs(*arrays)
    lira = attack_statistics(inputs, _spec())
    margin = attack_statistics(inputs, _spec(score="margin"))
    s_in, s_out, _ = record_pools(*arrays[:3], score="margin")
    np.testing.assert_array_equal(margin["score"][0], s_in)
    np.testing.assert_array_equal(margin["score"][1], s_out)
    assert not np.allclose(margin["score"][0], lira["score"][0])
    for name in ("rmia_online", "rmia_offline"):  # RMIA's signal is the true-class probability
        np.testing.assert_array_equal(margin[name][0], lira[name][0])
    loss = attack_statistics(inputs, _spec(score="loss"))
    np.testing.assert_array_equal(loss["score"][0], mse_score(arrays[0], arrays[2]).T)

"""``mia.score: output_vector``: the original's MIA (a full-covariance Gaussian on the whole output
vector, Ye et al. 2024, compute_auc_and_diff.py), checked against independent computations."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import TINY, mia_spec
from scipy.stats import multivariate_normal, norm
from sklearn.metrics import roc_auc_score

import lood.config as lc
from lood.privacy.mia.retrained import (
    half_split_auc,
    half_split_diff,
    mia_table,
    output_vector_auc,
)
from lood.privacy.signals import margin_score
from lood.privacy.spec import MiaSpec


def splits(n_in: int, n_out: int, n_splits: int, seed: int):
    """The half splits as documented: per split a permutation of the in models, then of the out
    models, from one default_rng(seed); the first half of each fits."""
    rng = np.random.default_rng(seed)
    for _ in range(n_splits):
        pin, pout = rng.permutation(n_in), rng.permutation(n_out)
        yield pin[: n_in // 2], pin[n_in // 2 :], pout[: n_out // 2], pout[n_out // 2 :]


def brute_force_auc(a: np.ndarray, b: np.ndarray, n_splits: int, seed: int) -> list[float]:
    """Per-split AUC of log N(o; in) - log N(o; out) by scipy's multivariate normal."""
    aucs = []
    for fin, tin, fout, tout in splits(len(a), len(b), n_splits, seed):
        g_in = multivariate_normal(a[fin].mean(0), np.cov(a[fin], rowvar=False))
        g_out = multivariate_normal(b[fout].mean(0), np.cov(b[fout], rowvar=False))
        test = np.concatenate([a[tin], b[tout]])
        llr = g_in.logpdf(test) - g_out.logpdf(test)
        aucs.append(roc_auc_score(np.r_[np.ones(len(tin)), np.zeros(len(tout))], llr))
    return aucs


@pytest.mark.parametrize(("c", "seed"), [(3, 0), (5, 4), (10, 11)])
def test_output_vector_auc_equals_scipy_brute_force(c, seed):
    """(a) Well-conditioned random outputs (correlated, different means and covariances, more
    fit models than outputs): the AUC of every split equals scipy's, so the mean and std do."""
    rng = np.random.default_rng(seed)
    k_in, k_out = 40, 50
    mix_in, mix_out = rng.normal(size=(c, c)), rng.normal(size=(c, c))
    a = rng.normal(size=(k_in, c)) @ mix_in + 0.4
    b = rng.normal(size=(k_out, c)) @ mix_out
    want = brute_force_auc(a, b, 6, seed)
    mean, std, _ = output_vector_auc(a, b, n_splits=6, seed=seed)
    assert mean == pytest.approx(np.mean(want), abs=1e-12)
    assert std == pytest.approx(np.std(want), abs=1e-12)
    assert 0.55 < mean < 1.0  # informative, not trivially separable: a real comparison
    # a different seed is a different set of splits
    assert output_vector_auc(a, b, n_splits=6, seed=seed + 1)[0] != mean


def test_one_output_is_half_split_auc_on_the_same_splits():
    """With C = 1 the output-vector Gaussian is the 1-D Gaussian of half_split_auc: equal for
    every seed only if both draw the same splits."""
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.4, 1.0, 24), rng.normal(0.0, 1.6, 30)
    for seed in (0, 1, 7):
        mean, std, _ = output_vector_auc(a[:, None], b[:, None], n_splits=9, seed=seed)
        assert (mean, std) == pytest.approx(half_split_auc(a, b, n_splits=9, seed=seed), abs=1e-12)


@pytest.mark.parametrize("label", [0, 1])
def test_two_outputs_with_constant_sum_reduce_to_the_margin(label):
    """(b) C = 2 outputs summing to a constant: the covariance is singular (rank 1). Projected on
    the one direction the fit models span, (1, -1) / sqrt 2, the Gaussian LR is the 1-D one of
    o_0 - o_1 = +-(the margin) up to scale: the margin-score AUC, split by split."""
    rng = np.random.default_rng(label)
    s_in, s_out = rng.normal(0.3, 0.5, 30), rng.normal(0.0, 1.0, 36)
    a = np.c_[s_in, 0.7 - s_in]
    b = np.c_[s_out, 0.7 - s_out]
    mean, std, _ = output_vector_auc(a, b, n_splits=8, seed=5)
    m_in, m_out = margin_score(a, label), margin_score(b, label)
    assert (mean, std) == pytest.approx(half_split_auc(m_in, m_out, 8, seed=5), abs=1e-12)
    # and by hand: a 1-D Gaussian LR on the projection, per split
    proj_in, proj_out = (a[:, 0] - a[:, 1]) / np.sqrt(2), (b[:, 0] - b[:, 1]) / np.sqrt(2)
    aucs = []
    for fin, tin, fout, tout in splits(len(a), len(b), 8, 5):
        test = np.r_[proj_in[tin], proj_out[tout]]
        fit_in, fit_out = proj_in[fin], proj_out[fout]
        llr = norm.logpdf(test, fit_in.mean(), fit_in.std(ddof=1)) - norm.logpdf(
            test, fit_out.mean(), fit_out.std(ddof=1)
        )
        aucs.append(roc_auc_score(np.r_[np.ones(len(tin)), np.zeros(len(tout))], llr))
    assert mean == pytest.approx(np.mean(aucs), abs=1e-12)


def test_softmax_like_outputs_drop_the_constant_direction():
    """Probabilities over C = 4 classes (sum 1): scipy's full-C Gaussian is singular; the fit in
    the spanned subspace equals scipy's on the first C - 1 coordinates (an invertible linear map
    of that subspace, under which the likelihood ratio is invariant)."""
    rng = np.random.default_rng(2)
    a = rng.dirichlet([4.0, 2.0, 2.0, 1.0], size=30)
    b = rng.dirichlet([2.0, 2.0, 2.0, 2.0], size=30)
    with pytest.raises(np.linalg.LinAlgError):
        multivariate_normal(a.mean(0), np.cov(a, rowvar=False))
    mean, std, _ = output_vector_auc(a, b, n_splits=5, seed=1)
    want = brute_force_auc(a[:, :3], b[:, :3], 5, seed=1)
    assert mean == pytest.approx(np.mean(want), abs=1e-12)
    assert std == pytest.approx(np.std(want), abs=1e-12)


@pytest.mark.parametrize(
    "case",
    [
        "identical_constant",
        "different_constants",
        "constant_column",
        "rank_deficient",
        "identical_sides",
        "two_classes_minimum_models",
    ],
)
def test_singular_cases_are_finite(case):
    """(c) No crash and a finite AUC in [0, 1] however singular the fit data."""
    rng = np.random.default_rng(0)
    if case == "identical_constant":  # nothing spans: log ratio 0, AUC 0.5
        a = b = np.ones((8, 3))
    elif case == "different_constants":  # only the mean difference spans: perfect separation
        a, b = np.ones((8, 3)), np.zeros((8, 3))
    elif case == "constant_column":
        a, b = rng.normal(size=(10, 3)), rng.normal(size=(10, 3))
        a[:, 1] = b[:, 1] = 2.0
    elif case == "rank_deficient":  # 4 fit models per side, 10 outputs
        a, b = rng.normal(0.5, 1.0, size=(8, 10)), rng.normal(size=(9, 10))
    elif case == "identical_sides":
        a = rng.normal(size=(12, 3))
        b = a.copy()
    else:
        a, b = rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    mean, std, diff = output_vector_auc(a, b, n_splits=4, seed=0)
    assert np.isfinite([mean, std, diff]).all() and 0 <= mean <= 1
    if case == "identical_constant":
        assert (mean, std, diff) == (0.5, 0.0, 0.0)
    if case == "different_constants":
        assert mean == 1.0 and diff == pytest.approx(1.0)
    if case == "identical_sides":
        assert diff >= 0


def test_output_vector_auc_validates():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(10, 3))
    with pytest.raises(ValueError, match="at least 4"):
        output_vector_auc(a[:3], a)
    with pytest.raises(ValueError, match=r"\[K_in, C\]"):
        output_vector_auc(a, a[:, :2])
    bad = a.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"in model\(s\) \[2\]"):
        output_vector_auc(bad, a)


def test_half_split_diff_against_a_direct_loop():
    """(d) The original's diff: per split the mean over classes of the squared difference of the
    held-out halves' mean output vectors, averaged over splits (the same splits as the AUC)."""
    rng = np.random.default_rng(4)
    a, b = rng.normal(0.3, 1.0, (14, 3)), rng.normal(size=(17, 3))
    total = 0.0
    for _, tin, _, tout in splits(14, 17, 6, 2):
        d = 0.0
        for c in range(3):
            d += (a[tin, c].mean() - b[tout, c].mean()) ** 2
        total += d / 3
    want = total / 6
    assert half_split_diff(a, b, n_splits=6, seed=2) == pytest.approx(want, rel=1e-12)
    assert output_vector_auc(a, b, n_splits=6, seed=2)[2] == pytest.approx(want, rel=1e-12)
    assert half_split_diff(a, b, n_splits=6, seed=3) != pytest.approx(want, rel=1e-6)


def _table_inputs(c: int = 3):
    rng = np.random.default_rng(9)
    k, p = 12, 2
    differ = pd.DataFrame({"differ_idx": [5, 8], "label": [0, 2]})
    models_in = {"outputs_differ": rng.normal(size=(k, p, c)), "test_acc": np.full(k, 0.9)}
    models_in["outputs_differ"][:, 0, 1] *= 0.2  # record 5: in models shrink in one output
    shard = {
        "records": np.array([5, 8]),
        "outputs_differ": rng.normal(size=(p, k, p, c)),
        "test_acc": np.full((p, k), 0.8),
    }
    return differ, models_in, shard


def test_mia_table_score_columns():
    """Both scores: the AUC is that of the chosen score with seed + position, the margin-score
    columns and pred_diff are the same, pred_diff_halves and mia_score are appended."""
    differ, models_in, shard = _table_inputs()
    margin = mia_table(differ, models_in, [shard], mia_spec(n_splits=5, seed=2))
    vector = mia_table(
        differ, models_in, [shard], mia_spec(n_splits=5, seed=2, score="output_vector")
    )
    assert list(margin.columns[-2:]) == ["pred_diff_halves", "mia_score"]
    assert set(margin.mia_score) == {"margin"} and set(vector.mia_score) == {"output_vector"}
    same = ["pred_diff", "pred_diff_halves", "in_score_mean", "out_score_std"]
    pd.testing.assert_frame_equal(margin[same], vector[same])
    for j, label in enumerate([0, 2]):
        ins = models_in["outputs_differ"][:, j]
        outs = shard["outputs_differ"][j, :, j]
        m = half_split_auc(margin_score(ins, label), margin_score(outs, label), 5, seed=2 + j)
        v = output_vector_auc(ins, outs, 5, seed=2 + j)
        assert (margin.mia_auc[j], margin.mia_auc_std[j]) == pytest.approx(m, abs=0)
        assert (vector.mia_auc[j], vector.mia_auc_std[j]) == pytest.approx(v[:2], abs=0)
        assert margin.pred_diff_halves[j] == pytest.approx(v[2], abs=0)
    assert not np.allclose(margin.mia_auc, vector.mia_auc)
    with pytest.raises(ValueError, match="'logit'"):
        mia_table(differ, models_in, [shard], mia_spec(score="logit"))


def test_bad_score_is_a_config_error_naming_the_value():
    """(f) The schema rejects an unknown mia.score, at the top level and in an experiment."""

    tiny = yaml.safe_load(TINY.read_text())
    for where, cfg in [
        ("mia.score", lc.deep_merge(tiny, {"mia": {"score": "logit"}})),
        (
            "experiments.tiny.mia.score",
            lc.deep_merge(tiny, {"experiments": {"tiny": {"mia": {"score": "logit"}}}}),
        ),
    ]:
        with pytest.raises(ValueError, match=re.escape(f"{where}: 'logit'")):
            lc.load_config(cfg)
    config = lc.load_config(lc.deep_merge(tiny, {"mia": {"score": "output_vector"}}))
    spec = MiaSpec.from_config(lc.experiment(config, "tiny")["mia"])
    assert spec.score == "output_vector"
    assert lc.section_defaults("mia")["score"] == "margin"


def test_the_eigenvalue_floor_is_relative_so_the_auc_ignores_the_output_scale():
    """Three outputs summing to a constant (a singular covariance: the subspace and the floor
    are used) give the same AUC at any output scale; an absolute floor would swamp the
    covariances at c = 1e-6."""
    rng = np.random.default_rng(8)
    a = rng.normal(size=(30, 3)) @ np.diag([0.5, 0.3, 0.2]) + [0.6, 0.0, 0.0]
    b = rng.normal(size=(30, 3)) @ np.diag([1.3, 0.9, 0.4])
    a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    ref = output_vector_auc(a, b, n_splits=8, seed=2)
    assert 0.6 < ref[0] < 0.95  # informative, not trivially separable
    for c in (1e-6, 1e6):
        got = output_vector_auc(c * a, c * b, n_splits=8, seed=2)
        assert got[:2] == pytest.approx(ref[:2], abs=1e-12), c

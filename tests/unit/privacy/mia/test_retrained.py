import numpy as np
import pandas as pd
import pytest
from helpers import mia_spec
from scipy import stats
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from lood.privacy.mia.retrained import (
    half_split_auc,
    half_split_aucs,
    half_split_diffs,
    mia_landscape_table,
    mia_table,
    prediction_difference,
    record_mia,
)
from lood.privacy.signals import margin_score
from lood.privacy.spec import MiaSpec


@pytest.mark.parametrize("delta", [0.0, 0.5, 1.0, 2.0])
def test_half_split_auc_matches_analytic(delta):
    # Equal-variance Gaussians: the LR test is monotone in s, AUC = Phi(|mu1-mu2| / (sigma sqrt 2)).
    rng = np.random.default_rng(0)
    sigma = 1.3
    s_in = rng.normal(delta * sigma, sigma, 4000)
    s_out = rng.normal(0.0, sigma, 4000)
    mean, std = half_split_auc(s_in, s_out, n_splits=5, seed=1)
    expected = norm.cdf(delta / np.sqrt(2))
    assert mean == pytest.approx(expected, abs=0.015)
    assert 0 <= std < 0.02


def test_half_split_auc_detects_variance_difference():
    # Same mean, different spread: a threshold on s is useless (AUC 0.5) but the LR test is not.
    rng = np.random.default_rng(1)
    s_in = rng.normal(0, 0.3, 3000)
    s_out = rng.normal(0, 1.0, 3000)
    mean, _ = half_split_auc(s_in, s_out, n_splits=3)
    # P(|z_in| < |z_out|) for the optimal test = 2/pi * atan(1/0.3)
    assert mean == pytest.approx(2 / np.pi * np.arctan(1 / 0.3), abs=0.02)


def test_half_split_auc_is_seeded_and_validates():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=20), rng.normal(size=20)
    assert half_split_auc(a, b, 10, seed=3) == half_split_auc(a, b, 10, seed=3)
    assert half_split_auc(a, b, 10, seed=3) != half_split_auc(a, b, 10, seed=4)
    with pytest.raises(ValueError, match="at least 4"):
        half_split_auc(a[:3], b)


def test_margin_score_and_prediction_difference_by_hand():
    out = np.array([[2.0, -1.0, 0.5], [0.0, 3.0, 1.0]])
    np.testing.assert_allclose(margin_score(out, 0), [1.5, -3.0])
    np.testing.assert_allclose(margin_score(out, 1), [-3.0, 2.0])
    ins = np.array([[1.0, 0.0], [3.0, 2.0]])  # mean (2, 1)
    outs = np.array([[0.0, 0.0], [0.0, 1.0]])  # mean (0, 0.5)
    assert prediction_difference(ins, outs) == pytest.approx(4.0 + 0.25)


def test_mia_table_pairs_out_models_with_their_record():
    rng = np.random.default_rng(0)
    k, p, c = 40, 3, 2
    differ = pd.DataFrame({"differ_idx": [7, 2, 9], "label": [0, 1, 0]})
    models_in = {"outputs_differ": rng.normal(size=(k, p, c)), "test_acc": np.full(k, 0.9)}
    # record 2 (position 1) is strongly separated; the others are not.
    models_in["outputs_differ"][:, 1, 1] += 5.0
    shard_a = {
        "records": np.array([7, 2]),
        "outputs_differ": rng.normal(size=(2, k, p, c)),
        "test_acc": np.full((2, k), 0.8),
    }
    shard_b = {
        "records": np.array([9]),
        "outputs_differ": rng.normal(size=(1, k, p, c)),
        "test_acc": np.full((1, k), 0.7),
    }
    table = mia_table(differ, models_in, [shard_b, shard_a], mia_spec(n_splits=5))
    assert list(table.differ_idx) == [7, 2, 9]
    assert table.loc[1, "mia_auc"] > 0.95
    assert table.loc[0, "mia_auc"] < 0.8 and table.loc[2, "mia_auc"] < 0.8
    assert table.loc[2, "out_test_acc"] == pytest.approx(0.7)
    with pytest.raises(ValueError, match="no out models"):
        mia_table(differ, models_in, [shard_a], mia_spec())


def loop_auc(s_in, s_out, n_splits, seed):
    """The half-split margin MIA written out: one scipy fit and one scikit-learn AUC per split."""
    rng = np.random.default_rng(seed)
    hin, hout = len(s_in) // 2, len(s_out) // 2
    aucs = []
    for _ in range(n_splits):
        pin, pout = rng.permutation(len(s_in)), rng.permutation(len(s_out))
        test = np.concatenate([s_in[pin[hin:]], s_out[pout[hout:]]])
        fits = [s_in[pin[:hin]], s_out[pout[:hout]]]
        llr = [stats.norm.logpdf(test, f.mean(), f.std(ddof=1)) for f in fits]
        labels = np.r_[np.ones(len(s_in) - hin), np.zeros(len(s_out) - hout)]
        aucs.append(roc_auc_score(labels, llr[0] - llr[1]))
    return np.mean(aucs), np.std(aucs)


def test_batched_half_split_auc_equals_a_loop_with_scipy_and_sklearn():
    rng = np.random.default_rng(0)
    s_in = rng.normal(0.5, 1.0, size=(7, 30)).round(1)  # rounded: ties between models
    s_out = rng.normal(0.0, 1.3, size=(7, 25)).round(1)
    mean, std = half_split_aucs(s_in, s_out, n_splits=9, seed=4)
    for p in range(len(s_in)):
        want = loop_auc(s_in[p], s_out[p], 9, 4)
        assert (mean[p], std[p]) == pytest.approx(want, abs=1e-12)


def test_batched_half_split_diff_equals_a_loop():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(3, 12, 4)), rng.normal(size=(3, 10, 4))
    got = half_split_diffs(a, b, n_splits=6, seed=2)
    for p in range(3):
        r = np.random.default_rng(2)
        diffs = []
        for _ in range(6):
            pin, pout = r.permutation(12), r.permutation(10)
            diffs.append(np.mean((a[p, pin[6:]].mean(0) - b[p, pout[5:]].mean(0)) ** 2))
        assert got[p] == pytest.approx(np.mean(diffs), rel=1e-12)


@pytest.mark.parametrize("score", ["margin", "output_vector"])
def test_landscape_table_is_record_mia_at_every_point(score):
    rng = np.random.default_rng(2)
    k_in, k_out, r, t, c = 10, 8, 2, 3, 3
    ins = rng.normal(size=(k_in, r, t, c))
    outs = rng.normal(size=(r, k_out, t, c)) - 0.3
    spec = MiaSpec.from_config({"n_splits": 5, "seed": 3, "score": score})
    table = mia_landscape_table(
        ins, outs, np.array([7, 9]), np.array([0, 2]), np.array([4, 1]), np.linspace(-1, 1, t), spec
    )
    for i, (label, pos) in enumerate([(0, 4), (2, 1)]):
        for j in range(t):
            row = table.iloc[i * t + j]
            auc, std, _ = record_mia(ins[:, i, j], outs[i, :, j], label, score, 5, 3 + pos)
            assert (row.mia_auc, row.mia_auc_std) == (auc, std)
            assert row.in_score_mean == pytest.approx(margin_score(ins[:, i, j], label).mean())

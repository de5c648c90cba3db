"""DP comparison tables, canaries, the one-run audit of a training run, inversion comparison."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from helpers import make_job
from scipy import integrate, stats

from lood.data.split import Split
from lood.figures.privacy import audit_figure, dp_figure
from lood.jobs.audit import one_run_audit
from lood.privacy.audit.canaries import canary_scores, make_canaries
from lood.privacy.audit.dp_tables import dp_summary, dp_table, empirical_lood
from lood.privacy.audit.one_run import epsilon_lower_bound
from lood.privacy.reconstruction.quality import inversion_comparison
from lood.privacy.signals import margin_score
from lood.privacy.spec import AuditSpec
from lood.stats import gaussian_kl

MODEL = {
    "depth": 1,
    "width": 64,
    "activation": "relu",
    "W_std": 1.4142135623730951,
    "b_std": 0.0,
    "parameterization": "ntk",
}


def _kl_numeric(mu0, sd0, mu1, sd1):
    p, q = stats.norm(mu0, sd0), stats.norm(mu1, sd1)
    val, _ = integrate.quad(lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)), -60, 60, limit=200)
    return val


@pytest.mark.parametrize(
    "args", [(0.0, 1.0, 0.0, 1.0), (1.0, 0.5, -0.5, 2.0), (3.0, 2.0, 2.5, 0.7)]
)
def test_gaussian_kl_against_numerical_integration(args):
    assert gaussian_kl(*args) == pytest.approx(_kl_numeric(*args), rel=1e-6, abs=1e-9)


def _mia(records, seed, shift):
    rng = np.random.default_rng(seed)
    n = len(records)
    return pd.DataFrame(
        {
            "differ_idx": records,
            "label": np.arange(n) % 2,
            "mia_auc": rng.uniform(0.5, 1, n),
            "mia_auc_std": 0.01,
            "pred_diff": rng.uniform(0, 1, n),
            "in_test_acc": 0.9,
            "in_score_mean": shift + rng.normal(size=n),
            "in_score_std": rng.uniform(0.5, 1.5, n),
            "out_score_mean": rng.normal(size=n),
            "out_score_std": rng.uniform(0.5, 1.5, n),
        }
    )


def _lood(records, seed):
    rng = np.random.default_rng(seed)
    n = len(records)
    return pd.DataFrame(
        {
            "differ_idx": records,
            "label": np.arange(n) % 2,
            "kl_lood": rng.uniform(0.1, 5, n),
            "mean_dist_lood": rng.uniform(0, 1, n),
        }
    )


def test_empirical_lood_is_kl_out_to_in():
    mia = _mia([4, 9, 2], 0, 1.0)
    want = [
        _kl_numeric(r.out_score_mean, r.out_score_std, r.in_score_mean, r.in_score_std)
        for r in mia.itertuples()
    ]
    np.testing.assert_allclose(empirical_lood(mia), want, rtol=1e-6)


def test_dp_table_orders_by_epsilon_and_matches_records(tmp_path):
    records = [4, 9, 2, 7]
    lood = _lood(records, 1)
    tables = {
        "dp1": (1.0, _mia(records, 2, 0.1), lood),
        "nodp": (math.inf, _mia(records, 3, 2.0), lood),
        "dp8": (8.0, _mia(records, 4, 0.5), lood),
    }
    long = dp_table(tables)
    assert list(dict.fromkeys(long.experiment)) == ["nodp", "dp8", "dp1"]
    assert len(long) == 12
    sub = long[long.experiment == "dp1"].set_index("differ_idx")
    mia = tables["dp1"][1].set_index("differ_idx")
    np.testing.assert_allclose(sub.loc[mia.index, "mia_auc"], mia.mia_auc)
    np.testing.assert_allclose(sub.loc[mia.index, "empirical_lood"], empirical_lood(mia))
    summary = dp_summary(long)
    assert list(summary.experiment) == ["nodp", "dp8", "dp1"]
    assert summary.set_index("experiment").loc["dp1", "mia_auc_mean"] == pytest.approx(
        mia.mia_auc.mean()
    )
    dp_figure(long, [tmp_path / "dp.png"])
    assert (tmp_path / "dp.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="different differing records"):
        dp_table({"a": (1.0, _mia([1, 2, 3], 0, 0.0), _lood([1, 2, 5], 0))})


def test_make_canaries():
    y = np.repeat(np.arange(3), 20)
    idx, labels = make_canaries(y, 15, "mislabel", 3, seed=0)
    assert len(idx) == 15 == len(np.unique(idx)) and (np.diff(idx) > 0).all()
    assert (labels[idx] != y[idx]).all() and ((labels[idx] >= 0) & (labels[idx] < 3)).all()
    rest = np.setdiff1d(np.arange(60), idx)
    np.testing.assert_array_equal(labels[rest], y[rest])
    idx2, labels2 = make_canaries(y, 15, "mislabel", 3, seed=0)
    np.testing.assert_array_equal(idx, idx2)
    np.testing.assert_array_equal(labels, labels2)
    idx3, labels3 = make_canaries(y, 15, "clean", 3, seed=0)
    np.testing.assert_array_equal(labels3, y)
    for bad, match in [
        ((y, 1, "clean", 3, 0), "n_canaries"),
        ((y, 61, "clean", 3, 0), "n_canaries"),
        ((y, 5, "flip", 3, 0), "audit.canary"),
    ]:
        with pytest.raises(ValueError, match=match):
            make_canaries(*bad)


def test_canary_scores():
    rng = np.random.default_rng(0)
    out = rng.normal(size=(3, 5, 2))
    labels = np.array([0, 1, 1, 0, 1])
    loss = canary_scores(out, labels, "loss")
    for r in range(3):
        for j in range(5):
            t = np.full(2, -0.5)
            t[labels[j]] += 1.0
            assert loss[r, j] == pytest.approx(-0.5 * np.sum((out[r, j] - t) ** 2))
    margin = canary_scores(out, labels, "margin")
    for j in range(5):
        np.testing.assert_allclose(margin[:, j], margin_score(out[:, j, :], int(labels[j])))
    with pytest.raises(ValueError, match="audit.score"):
        canary_scores(out, labels, "entropy")
    with pytest.raises(ValueError, match="outputs must be"):
        canary_scores(out[:, :3], labels, "loss")


def _split(n=120, d=16, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    x = rng.normal(size=(n, d)) + 1.5 * (2 * y[:, None] - 1) * (np.arange(d) < 4)
    yt = np.repeat([0, 1], 20)
    xt = rng.normal(size=(40, d)) + 1.5 * (2 * yt[:, None] - 1) * (np.arange(d) < 4)
    return Split(
        x_train=x.astype(np.float32),
        y_train=y,
        x_test=xt.astype(np.float32),
        y_test=yt,
        train_source_idx=np.arange(n),
        test_source_idx=np.arange(40),
        image_shape=(4, 4),
        classes=(0, 1),
    )


AUDIT = {
    "n_canaries": 60,
    "canary": "mislabel",
    "score": "loss",
    "k_pos": 8,
    "k_neg": 8,
    "n_runs": 3,
    "confidence": 0.95,
    "seed": 0,
}
TRAIN = {
    "n_in": 4,
    "n_out": 4,
    "epochs": 60,
    "batch_size": 20,
    "lr": 1.0,
    "optimizer": "sgd",
    "momentum": 0.9,
    "weight_decay": 0.0,
    "loss": "mse",
    "seed": 0,
}


def test_one_run_audit_detects_memorisation_and_respects_dp():
    """Mislabelled canaries are memorised without DP (every guess right: the largest bound r
    guesses can give); under DP-SGD the bound stays below the accountant's epsilon."""
    split = _split()
    audit = AuditSpec.from_config(AUDIT | {"enabled": True})
    table, arrays = one_run_audit(make_job(split, MODEL, TRAIN), audit, "plain")
    assert len(table) == 3 and (table.r == 16).all()
    best = epsilon_lower_bound(60, 16, 16, 1e-5, 0.95)
    assert (table.v == 16).all() and np.allclose(table.eps_lower_bound, best)
    assert np.isinf(table.eps_accountant).all()
    assert arrays["included"].shape == (3, 60) and arrays["scores"].shape == (3, 60)
    assert (arrays["canary_labels"] != split.y_train[arrays["canary_idx"]]).all()
    assert 0.3 < arrays["included"].mean() < 0.7
    dp = {"enabled": True, "target_epsilon": 1.0, "max_grad_norm": 1.0, "delta": 1e-3}
    table_dp, _ = one_run_audit(make_job(split, MODEL, TRAIN | {"dp": dp}), audit, "dp")
    assert np.allclose(table_dp.eps_accountant, table_dp.eps_accountant[0])
    assert 0.95 <= table_dp.eps_accountant[0] <= 1.0
    assert (table_dp.eps_lower_bound < table_dp.eps_accountant).all()
    assert (table_dp.v < 16).all()
    assert (table_dp.delta == 1e-3).all()


def test_inversion_comparison_and_audit_figure(tmp_path):
    rng = np.random.default_rng(0)
    means = rng.normal(size=(2, 9))
    metrics = pd.DataFrame(
        {"corr_class_mean": [0.5, 0.7, 0.9, 0.1], "class_match": [True, True, False, True]}
    )
    images = rng.normal(size=(2, 9))
    queries = images + 0.1 * rng.normal(size=(2, 9))
    table = inversion_comparison(
        {"a": (math.inf, metrics, np.full((2, 2), 0.8))},
        means,
        (np.array([3, 7]), images, queries, np.array([1, 0])),
    )
    mi = table[table.method == "MI-FACE"].iloc[0]
    assert mi.corr_target == pytest.approx(0.55) and mi.class_match == pytest.approx(0.75)
    q = table[table.method != "MI-FACE"].reset_index()
    assert list(q.record) == [3, 7]
    assert q.corr_target[0] == pytest.approx(np.corrcoef(queries[0], images[0])[0, 1])
    assert q.corr_class_mean[1] == pytest.approx(np.corrcoef(queries[1], means[0])[0, 1])
    runs = pd.DataFrame(
        {
            "experiment": ["a", "a", "b"],
            "eps_accountant": [math.inf, math.inf, 2.0],
            "eps_lower_bound": [1.5, 1.2, 0.3],
            "m": 50,
            "r": 10,
            "confidence": 0.95,
        }
    )
    audit_figure(runs, [tmp_path / "audit.png"])
    assert (tmp_path / "audit.png").stat().st_size > 1000

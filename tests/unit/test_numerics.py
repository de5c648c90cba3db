"""Numerics and bad input: LOOD at tiny sigma^2 against 50-digit references, LOOD under jitter,
the degenerate Gaussians of the empirical LOOD, and NaN/inf MIA scores."""

from __future__ import annotations

import logging
import warnings

import mpmath
import numpy as np
import pandas as pd
import pytest
from helpers import mia_spec

from lood.arch import Architecture
from lood.io import write_csv
from lood.nngp.gp import centred_one_hot, fit_gp, posterior
from lood.nngp.kernel import nngp_kernel
from lood.nngp.loo import SELF_VAR_RTOL, loo_pointwise, lood_all, lood_self
from lood.nngp.tables import lood_table
from lood.privacy.audit.dp_tables import dp_table, empirical_lood
from lood.privacy.mia.retrained import half_split_auc, mia_table
from lood.stats import gaussian_kl

ARCH = Architecture(2, 64, "relu", 1.4, 0.0, "ntk", 2)


def _kernel(duplicates: int = 0, n: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """NNGP kernel of n random inputs (d = 40 > n: well conditioned), the last ``duplicates``
    rows repeating the first ones (exactly singular); centred one-hot labels."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n - duplicates, 40))
    x = np.concatenate([x, x[:duplicates]])
    y = centred_one_hot(rng.integers(0, 2, n), 2)
    return nngp_kernel(ARCH, x), y


def _fit_quietly(K, y, sigma2):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the jitter warning
        return fit_gp(K, y, sigma2)


def _mp_leave_one_out(
    K: np.ndarray, Y: np.ndarray, s2: float, i: int, dps: int = 50, q: int | None = None
):
    """Posterior mean [C] and variance at x_q (default x_i) given D and given D without i, in
    ``dps`` digits, by a direct solve of the float64 kernel as given (no rank-one formula)."""
    q = i if q is None else q
    with mpmath.workdps(dps):
        n = K.shape[0]

        def post(keep):
            m = mpmath.matrix([[K[a, b] for b in keep] for a in keep])
            for j in range(len(keep)):
                m[j, j] += mpmath.mpf(s2)
            k = mpmath.matrix([K[a, q] for a in keep])
            sol = mpmath.lu_solve(m, k)  # (K + s2 I)^-1 k
            var = mpmath.mpf(K[q, q]) - sum(k[j] * sol[j] for j in range(len(keep)))
            mean = [sum(sol[j] * Y[a, c] for j, a in enumerate(keep)) for c in range(Y.shape[1])]
            return mean, var

        m_in, v_in = post(list(range(n)))
        m_out, v_out = post([a for a in range(n) if a != i])
        kl = sum(
            (v_out / v_in + (m_in[c] - m_out[c]) ** 2 / v_in - 1 + mpmath.log(v_in / v_out)) / 2
            for c in range(Y.shape[1])
        )
        md = sum((m_in[c] - m_out[c]) ** 2 for c in range(Y.shape[1]))
        return {
            "var_in": float(v_in),
            "var_out": float(v_out),
            "kl": float(kl),
            "mean_dist": float(md),
            "mean_in": np.array([float(v) for v in m_in]),
        }


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)) / np.abs(np.asarray(b))))


# ------------------------------------------------------------------------ LOOD at tiny sigma^2
@pytest.mark.parametrize("ratio", [1e-12, 1e-13, 1e-14, 1e-15, 1e-16])
def test_lood_self_at_tiny_sigma2_matches_50_digit_reference(ratio):
    """sigma^2 / K_ii from 1e-12 to 1e-16 on a well-conditioned NNGP kernel: the posterior at a
    record, its leave-one-out posterior and their KL agree with a 50-digit direct solve. The
    textbook K_ii - k^T (K + s2 I)^-1 k (the old code) is off by 1e-4 (at 1e-12) to 400% here."""
    K, y = _kernel()
    s2 = ratio * float(np.mean(np.diag(K)))
    fit = _fit_quietly(K, y, s2)
    assert fit.jitter == 0.0  # well conditioned: these are the requested sigma^2
    records = np.array([0, 7, 23])
    res = lood_self(fit, records)
    both = lood_all(fit)
    for p, i in enumerate(records):
        ref = _mp_leave_one_out(K, y, s2, int(i))
        for key in ("var_in", "var_out", "kl", "mean_dist"):
            assert _rel(res[key][p], ref[key]) < 1e-9, (key, res[key][p], ref[key])
            assert _rel(both[key][i], ref[key]) < 1e-9, (key, both[key][i], ref[key])
        np.testing.assert_allclose(res["mean_in"][p], ref["mean_in"], rtol=1e-12, atol=1e-14)
        old = K[i, i] - K[:, i] @ fit.solve(K[:, i])  # the old code's var_in
        assert old <= 0 or _rel(old, ref["var_in"]) > 1e-5  # the regime is a hard one


def test_posterior_and_loo_pointwise_at_training_records_match_50_digit_reference():
    """Queries that are training records (columns of K_DD) at sigma^2 / K_ii = 1e-12: posterior
    and loo_pointwise take the stable closed forms, at the left-out record and at the others."""
    K, y = _kernel()
    s2 = 1e-12 * float(np.mean(np.diag(K)))
    fit = _fit_quietly(K, y, s2)
    assert fit.jitter == 0.0
    records, queries = np.array([0, 7]), np.array([7, 3, 0])
    kdq, kqq = K[:, queries], np.diag(K)[queries]
    mean, var = posterior(fit, kdq, kqq)
    res = loo_pointwise(fit, kdq, kqq, records)
    for p, i in enumerate(records):
        for m, q in enumerate(queries):
            ref = _mp_leave_one_out(K, y, s2, int(i), q=int(q))
            for key in ("var_in", "var_out", "kl", "mean_dist"):
                assert _rel(res[key][p, m], ref[key]) < 1e-8, (i, q, key, res[key][p, m], ref[key])
            np.testing.assert_allclose(res["mean_in"][p, m], ref["mean_in"], rtol=1e-12, atol=1e-14)
            assert _rel(var[m], ref["var_in"]) < 1e-9
    # the general form K_qq - k^T A k (the old code) is off here: the regime is a hard one
    old = kqq - np.einsum("nm,nm->m", kdq, fit.solve(kdq))
    assert np.max(np.abs(old - var) / var) > 1e-5


def test_ntk_gp_loo_pointwise_at_training_records_equals_lood_self():
    """The NTK-GP's stable forms at training records (sigma^2 / K_ii = 1e-12) agree with
    lood_self's closed forms; the general form does not."""
    from lood.nngp.kernel import ntk_kernels

    rng = np.random.default_rng(3)
    x = rng.normal(size=(16, 40))
    k_dd, t_dd = ntk_kernels(ARCH, x)
    k_dd, t_dd = np.asarray(k_dd, np.float64), np.asarray(t_dd, np.float64)
    y = centred_one_hot(rng.integers(0, 2, 16), 2)
    s2 = 1e-12 * float(np.mean(np.diag(t_dd)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fit = fit_gp(k_dd, y, s2, Theta_DD=t_dd)
    assert fit.jitter == 0.0
    records = np.array([2, 11])
    res = loo_pointwise(
        fit, k_dd[:, records], np.diag(k_dd)[records], records, Theta_DQ=t_dd[:, records]
    )
    ref = lood_self(fit, records)
    for key in ("var_in", "var_out", "kl", "mean_dist"):
        np.testing.assert_allclose(np.diagonal(res[key]), ref[key], rtol=1e-8, err_msg=key)
    mean, var = posterior(fit, k_dd[:, records], np.diag(k_dd)[records], t_dd[:, records])
    np.testing.assert_allclose(var, ref["var_in"], rtol=1e-8)
    u = fit.solve(t_dd[:, records])  # the general form (the old code) is off here
    old = np.diag(k_dd)[records] + np.einsum("nm,nm->m", u, k_dd @ u - 2 * k_dd[:, records])
    assert np.max(np.abs(old - var) / var) > 1e-5


def test_lood_self_raises_naming_records_when_the_variance_is_lost():
    """Exactly duplicated records and sigma^2 = 1e-14 K_ii: the Cholesky succeeds, but the
    variance at a duplicated record is only known to ~1e-2. Its LOOD must raise, naming it and
    suggesting a larger nngp.sigma2; at sigma^2 = 1e-8 K_ii the same records are fine."""
    K, y = _kernel(duplicates=6)
    diag = float(np.mean(np.diag(K)))
    fit = _fit_quietly(K, y, 1e-14 * diag)
    assert fit.jitter == 0.0
    with pytest.raises(FloatingPointError, match=r"record\(s\) \[2, 20\].*nngp\.sigma2"):
        lood_self(fit, [2, 9, 20])  # 2 and 20 are copies of each other; 9 is unique
    with pytest.raises(FloatingPointError, match=r"record\(s\) \[0, 1, 2, .*nngp\.sigma2"):
        lood_all(fit)
    ok = lood_self(fit, [9])  # a unique record is still accurate
    assert _rel(ok["var_in"][0], _mp_leave_one_out(K, y, 1e-14 * diag, 9)["var_in"]) < 1e-9

    s2 = 1e-8 * diag
    fit = _fit_quietly(K, y, s2)
    res = lood_self(fit, [2, 20])
    for p, i in enumerate([2, 20]):
        ref = _mp_leave_one_out(K, y, s2, i)
        assert _rel(res["var_in"][p], ref["var_in"]) < SELF_VAR_RTOL
        assert _rel(res["kl"][p], ref["kl"]) < 10 * SELF_VAR_RTOL


def test_zero_prior_variance_record_has_zero_lood():
    """A record the kernel cannot see (zero input, no bias: K row 0) has var_in = var_out = 0 and
    LOOD 0, not a rounding error turned into an error or an inf."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(12, 30))
    x[4] = 0.0
    K = nngp_kernel(ARCH, x)
    assert np.all(K[4] == 0)
    y = centred_one_hot(rng.integers(0, 2, 12), 2)
    fit = fit_gp(K, y, 1e-3)
    for res, j in ((lood_self(fit, [4]), 0), (lood_all(fit), 4)):
        assert res["var_in"][j] == 0 and res["var_out"][j] == 0
        assert res["kl"][j] == 0 and res["mean_dist"][j] == 0 and res["auc"][j] == 0.5


# ------------------------------------------------------------------------------ jitter
def _naive_loo(K, Y, s2, i):
    """Float64 remove-and-resolve at record i (the independent reference of tests/unit/nngp/test_kernel.py)."""
    n = len(K)
    keep = np.arange(n) != i
    a = np.linalg.solve(K + s2 * np.eye(n), np.column_stack([Y, K[:, i]]))
    b = np.linalg.solve(
        K[np.ix_(keep, keep)] + s2 * np.eye(n - 1), np.column_stack([Y[keep], K[keep, i]])
    )
    m_in, v_in = K[:, i] @ a[:, :-1], K[i, i] - K[:, i] @ a[:, -1]
    m_out, v_out = K[keep, i] @ b[:, :-1], K[i, i] - K[keep, i] @ b[:, -1]
    kl = 0.5 * np.sum(v_out / v_in + (m_in - m_out) ** 2 / v_in - 1 + np.log(v_in / v_out))
    return {"var_in": v_in, "var_out": v_out, "kl": kl, "mean_dist": np.sum((m_in - m_out) ** 2)}


def test_lood_all_under_jitter_matches_naive_solve_and_reference():
    """Duplicated records and sigma^2 = 1e-16 K_ii: the Cholesky needs a jitter, and every LOOD
    value is that of the effective noise sigma^2 + jitter. Checked against a naive float64
    re-solve where that is itself accurate (the variances; everything at unique records: ~1e-6 at
    this conditioning; its KL of a duplicated record is off by 1e-2, the rank-one form's by 3e-6)
    and against a 50-digit solve everywhere."""
    K, y = _kernel(duplicates=6)
    s2 = 1e-16 * float(np.mean(np.diag(K)))
    with pytest.warns(RuntimeWarning, match="jitter"):
        fit = fit_gp(K, y, s2)
    assert fit.jitter > 1e4 * s2 and fit.noise == s2 + fit.jitter
    res = lood_all(fit)
    sel = lood_self(fit, np.arange(len(K)))
    keys = ("var_in", "var_out", "kl", "mean_dist")
    for key in keys:
        assert _rel(sel[key], res[key]) < 1e-9
    for i in [0, 2, 9, 18, 20, 23]:  # 0/18 and 2/20 are duplicate pairs
        naive = _naive_loo(K, y, fit.noise, i)
        for key in keys if i in (9, 23) else ("var_in", "var_out"):
            assert _rel(res[key][i], naive[key]) < 1e-5, (i, key, res[key][i], naive[key])
    md_scale = float(np.max(res["mean_dist"]))
    for i in [0, 2, 9]:
        ref = _mp_leave_one_out(K, y, fit.noise, i)
        for key in ("var_in", "var_out", "kl"):
            assert _rel(res[key][i], ref[key]) < SELF_VAR_RTOL, (i, key)
        assert abs(res["mean_dist"][i] - ref["mean_dist"]) <= (
            SELF_VAR_RTOL * ref["mean_dist"] + 1e-12 * md_scale
        )
    # a duplicated record is barely distinguishable; a unique one clearly is
    assert res["kl"][2] < 1 and res["kl"][9] > 1e3


def test_lood_table_stores_and_logs_the_jitter(caplog):
    K, y = _kernel(duplicates=6)
    labels = np.argmax(y, axis=1)
    s2 = 1e-16
    with caplog.at_level(logging.INFO, logger="lood.estimates"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        table = lood_table(K, labels, 2, s2, np.array([2, 9]))
        full = lood_table(K, labels, 2, s2, np.array([2, 9]), mode="all")
    jitter = float(table.jitter.iloc[0])
    assert jitter > 1e4 * s2
    for t in (table, full):
        assert (t.jitter == jitter).all() and (t.effective_sigma2 == s2 + jitter).all()
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 2 and "effective sigma2" in warned[0].getMessage()
    assert f"{s2:g}" in warned[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="lood.estimates"):
        plain = lood_table(K, labels, 2, 0.05, np.array([2, 9]))
    assert (plain.jitter == 0).all() and (plain.effective_sigma2 == 0.05).all()
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


# ------------------------------------------------------------------ degenerate Gaussians
def test_gaussian_kl_point_masses():
    inf = np.inf
    assert gaussian_kl(1.5, 0.0, 1.5, 0.0) == 0.0  # the same point mass
    assert gaussian_kl(1.5, 0.0, 1.0, 0.0) == inf  # two different point masses
    assert gaussian_kl(1.5, 0.0, 1.5, 0.3) == inf  # a point mass against a Gaussian
    assert gaussian_kl(1.5, 0.3, 1.5, 0.0) == inf  # a Gaussian against a point mass
    # the definitions are the limits of the formula
    assert gaussian_kl(0.0, 1e-150, 0.0, 1.0) > 300 and gaussian_kl(0.0, 1.0, 0.0, 1e-150) > 1e250
    got = gaussian_kl(
        pd.Series([0.0, 0.0, 1.0, 2.0]),
        pd.Series([0.0, 1.0, 0.0, 1.0]),
        np.array([0.0, 0.0, 1.0, 1.0]),
        np.array([0.0, 0.0, 0.0, 2.0]),
    )
    expected_last = np.log(2.0) + (1.0 + 1.0) / 8.0 - 0.5
    np.testing.assert_array_equal(got[:3], [0.0, inf, 0.0])
    assert got[3] == pytest.approx(expected_last, rel=1e-14)
    assert not np.isnan(got).any()
    with pytest.raises(ValueError, match="standard deviations"):
        gaussian_kl(0.0, -1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="NaN"):
        gaussian_kl(np.nan, 1.0, 0.0, 1.0)


def test_constant_dp_scores_give_a_writable_dp_table(tmp_path):
    """All models of a record give the same score (std 0): empirical LOOD is 0 when in and out
    agree and inf when they do not; dp.csv is written (inf allowed there, NaN still refused)."""
    n = 3
    mia = pd.DataFrame(
        {
            "differ_idx": np.arange(n),
            "label": 0,
            "mia_auc": 0.5,
            "mia_auc_std": 0.0,
            "pred_diff": 0.0,
            "in_test_acc": 0.5,
            "in_score_mean": [0.0, 0.0, 0.2],
            "in_score_std": [0.0, 0.0, 0.1],
            "out_score_mean": [0.0, 0.5, 0.1],
            "out_score_std": [0.0, 0.0, 0.1],
        }
    )
    emp = empirical_lood(mia)
    assert emp[0] == 0.0 and emp[1] == np.inf and np.isfinite(emp[2])
    lood = pd.DataFrame(
        {"differ_idx": np.arange(n), "label": 0, "kl_lood": 1.0, "mean_dist_lood": 0.1}
    )
    long = dp_table({"dp": (1.0, mia, lood)})
    path = tmp_path / "dp.csv"
    write_csv(long, path, allow_nan=["epsilon"], allow_inf=["empirical_lood"])
    back = pd.read_csv(path)
    assert back.empirical_lood.tolist()[:2] == [0.0, np.inf]
    long.loc[2, "empirical_lood"] = np.nan
    with pytest.raises(ValueError, match="empirical_lood"):
        write_csv(long, tmp_path / "bad.csv", allow_nan=["epsilon"], allow_inf=["empirical_lood"])


# ------------------------------------------------------------------------ NaN / inf MIA scores
def _mia_inputs(k: int = 12):
    rng = np.random.default_rng(0)
    differ = pd.DataFrame({"differ_idx": [7, 2], "label": [0, 1]})
    models_in = {"outputs_differ": rng.normal(size=(k, 2, 2)), "test_acc": np.full(k, 0.9)}
    shard = {
        "records": np.array([7, 2]),
        "outputs_differ": rng.normal(size=(2, k, 2, 2)),
        "test_acc": np.full((2, k), 0.8),
    }
    return differ, models_in, shard


def test_mia_with_nan_scores_names_record_and_models():
    differ, models_in, shard = _mia_inputs()
    models_in["outputs_differ"][[3, 5], 1, 0] = np.nan  # in models 3 and 5 on record 2
    with pytest.raises(ValueError, match=r"record 2 \(position 1\).*in model\(s\) \[3, 5\]"):
        mia_table(differ, models_in, [shard], mia_spec(n_splits=3))
    differ, models_in, shard = _mia_inputs()
    shard["outputs_differ"][0, 4, 0, 1] = np.inf  # out model 4 of record 7
    with pytest.raises(ValueError, match=r"record 7 \(position 0\).*out model\(s\) \[4\]"):
        mia_table(differ, models_in, [shard], mia_spec(n_splits=3))
    with pytest.raises(ValueError, match=r"out model\(s\) \[1\]"):
        half_split_auc(np.zeros(6), np.array([0.0, np.nan, 1.0, 2.0, 3.0]))

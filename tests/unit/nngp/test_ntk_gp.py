"""NTK-GP LOOD against neural-tangents' own gradient-descent ensemble, refitted without the record."""

from __future__ import annotations

import numpy as np
import pytest
from neural_tangents import predict

from lood.arch import Architecture
from lood.nngp.gp import absolute_diag_reg, centred_one_hot, fit_gp, joint_posterior
from lood.nngp.kernel import ntk_kernels, stax_network
from lood.nngp.loo import loo_pointwise, loo_posterior, lood_all, lood_self
from lood.nngp.tables import lood_table

ARCH = Architecture(2, 64, "relu", 1.4, 0.1, "ntk", 3)
SIGMA2 = 0.05
N, D, M = 12, 5, 4
RECORDS = [0, 5, 11]


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, D))
    xq = np.concatenate([rng.normal(size=(M, D)), x[RECORDS]])  # fresh queries + the records
    y = centred_one_hot(rng.integers(0, 3, N), 3)
    k_dd, t_dd = ntk_kernels(ARCH, x)
    k_dq, t_dq = ntk_kernels(ARCH, x, xq)
    k_qq, _ = ntk_kernels(ARCH, xq)
    return {
        "x": x,
        "xq": xq,
        "y": y,
        "k_dd": k_dd,
        "t_dd": t_dd,
        "k_dq": k_dq,
        "t_dq": t_dq,
        "k_qq": k_qq,
    }


def _nt(x, y, xq, diag_reg=SIGMA2, absolute=True):
    """neural-tangents' t = infinity NTK ensemble: mean [M, C], covariance [M, M]."""
    kernel_fn = stax_network(ARCH)[2]
    predict_fn = predict.gradient_descent_mse_ensemble(
        kernel_fn, x, y, diag_reg=diag_reg, diag_reg_absolute_scale=absolute
    )
    out = predict_fn(None, xq, "ntk", compute_cov=True)
    return np.asarray(out.mean), np.asarray(out.covariance)


def _close(a, b, tol=1e-8):
    a, b = np.asarray(a, float), np.asarray(b, float)
    assert a.shape == b.shape
    err = np.max(np.abs(a - b)) / max(1.0, np.max(np.abs(b)))
    assert err < tol, err


def _kl_sum(m0, v0, m1, v1):
    """Sum over classes of the scalar KL(N(m0, v0) || N(m1, v1))."""
    return float(np.sum(0.5 * (v0 / v1 + (m1 - m0) ** 2 / v1 - 1.0 + np.log(v1 / v0))))


def test_kernels_are_neural_tangents_nngp_and_ntk(problem):
    kfn = stax_network(ARCH)[2]
    ref = kfn(problem["x"], problem["xq"], ("nngp", "ntk"))
    # fresh queries agree to roundoff; at coincident inputs (the records) the relu kernels' arccos
    # near cos = 1 turns roundoff of jit vs eager into ~1e-9 relative
    for got, want in ((problem["k_dq"], ref.nngp), (problem["t_dq"], ref.ntk)):
        np.testing.assert_allclose(got[:, :M], np.asarray(want)[:, :M], rtol=1e-13)
        np.testing.assert_allclose(got, np.asarray(want), rtol=1e-8)
    assert not np.allclose(problem["k_dq"], problem["t_dq"])
    k_b, t_b = ntk_kernels(ARCH, problem["x"], batch_size=5)
    np.testing.assert_allclose(k_b, problem["k_dd"], rtol=1e-12)
    np.testing.assert_allclose(t_b, problem["t_dd"], rtol=1e-12)
    k_c, t_c = ntk_kernels(ARCH, problem["x"], problem["xq"], batch_size=4)
    np.testing.assert_allclose(t_c, problem["t_dq"], rtol=1e-12)


def test_posterior_matches_neural_tangents(problem):
    p = problem
    fit = fit_gp(p["k_dd"], p["y"], SIGMA2, Theta_DD=p["t_dd"])
    mean, cov = joint_posterior(fit, p["k_dq"], p["k_qq"], p["t_dq"])
    mean_ref, cov_ref = _nt(p["x"], p["y"], p["xq"])
    _close(mean, mean_ref)
    _close(cov, cov_ref)
    # neural-tangents' relative diag_reg is diag_reg * mean diag(Theta_DD) in absolute units
    s_abs = absolute_diag_reg(p["t_dd"], 0.1)
    mean_rel, cov_rel = _nt(p["x"], p["y"], p["xq"], diag_reg=0.1, absolute=False)
    fit_rel = fit_gp(p["k_dd"], p["y"], s_abs, Theta_DD=p["t_dd"])
    m2, c2 = joint_posterior(fit_rel, p["k_dq"], p["k_qq"], p["t_dq"])
    _close(m2, mean_rel)
    _close(c2, cov_rel)


def test_leave_one_out_matches_neural_tangents_refit(problem):
    p = problem
    fit = fit_gp(p["k_dd"], p["y"], SIGMA2, Theta_DD=p["t_dd"])
    mean_in, cov_in = _nt(p["x"], p["y"], p["xq"])
    point = loo_pointwise(fit, p["k_dq"], np.diag(p["k_qq"]), RECORDS, Theta_DQ=p["t_dq"])
    selfres = lood_self(fit, RECORDS)
    allres = lood_all(fit)
    for r, i in enumerate(RECORDS):
        keep = np.arange(N) != i
        mean_out, cov_out = _nt(p["x"][keep], p["y"][keep], p["xq"])
        joint = loo_posterior(fit, p["k_dq"], p["k_qq"], i, p["t_dq"])
        _close(joint["mean_in"], mean_in)
        _close(joint["cov_in"], cov_in)
        _close(joint["mean_out"], mean_out)
        _close(joint["cov_out"], cov_out)
        _close(point["mean_out"][r], mean_out)
        _close(point["var_out"][r], np.diag(cov_out))
        _close(point["var_in"][r], np.diag(cov_in))
        kl_ref = [
            _kl_sum(mean_out[q], cov_out[q, q], mean_in[q], cov_in[q, q])
            for q in range(len(p["xq"]))
        ]
        _close(point["kl"][r], kl_ref)
        _close(point["mean_dist"][r], np.sum((mean_in - mean_out) ** 2, axis=1))
        # query = the record itself: the closed forms of lood_self and lood_all
        q = M + r
        for res, j in ((selfres, r), (allres, i)):
            _close(res["mean_in"][j], mean_in[q])
            _close(res["mean_out"][j], mean_out[q])
            _close(res["var_in"][j], cov_in[q, q])
            _close(res["var_out"][j], cov_out[q, q])
            assert res["kl"][j] == pytest.approx(kl_ref[q], rel=1e-8)
            assert res["mean_dist"][j] == pytest.approx(
                np.sum((mean_in[q] - mean_out[q]) ** 2), rel=1e-8
            )
        assert point["kl"][r, q] == pytest.approx(kl_ref[q], rel=1e-8)


def test_lood_all_equals_lood_self_and_direct_formula_for_every_record(problem):
    p = problem
    fit = fit_gp(p["k_dd"], p["y"], SIGMA2, Theta_DD=p["t_dd"])
    allres = lood_all(fit)
    selfres = lood_self(fit, np.arange(N))
    for key in ("kl", "mean_dist", "var_in", "var_out"):
        np.testing.assert_allclose(allres[key], selfres[key], rtol=1e-9)
    np.testing.assert_allclose(allres["auc"], selfres["auc"], atol=1e-9)
    assert np.all((allres["auc"] >= 0.5) & (allres["auc"] <= 1.0))
    assert np.all(allres["var_out"] >= allres["var_in"])  # A_ii <= 1 / sigma2
    k, t, y = p["k_dd"], p["t_dd"], p["y"]
    for i in range(N):  # dense inverse of the remaining records, formula of the module docstring
        keep = np.arange(N) != i
        a = np.linalg.inv(t[np.ix_(keep, keep)] + SIGMA2 * np.eye(N - 1))
        u = a @ t[keep, i]
        var_out = k[i, i] + u @ k[np.ix_(keep, keep)] @ u - 2 * u @ k[keep, i]
        assert allres["var_out"][i] == pytest.approx(var_out, rel=1e-8)
        np.testing.assert_allclose(allres["mean_out"][i], u @ y[keep], rtol=1e-8, atol=1e-12)


def test_bad_inputs_raise():
    k = np.eye(4)
    y = centred_one_hot(np.array([0, 1, 0, 1]), 2)
    with pytest.raises(ValueError, match="sigma2"):
        fit_gp(k, y, 0.0, Theta_DD=k)
    with pytest.raises(ValueError, match="K_DD"):
        fit_gp(np.eye(3), y, 0.1, Theta_DD=k)
    with pytest.raises(ValueError, match="Y must be"):
        fit_gp(k, y[:3], 0.1, Theta_DD=k)
    with pytest.raises(np.linalg.LinAlgError, match="sigma2"):
        fit_gp(k, y, 0.1, Theta_DD=-2 * k)
    fit = fit_gp(k, y, 0.1, Theta_DD=k)
    with pytest.raises(ValueError, match="record index 4"):
        lood_self(fit, [4])
    with pytest.raises(ValueError, match="Theta_DQ"):
        loo_pointwise(fit, np.ones((4, 2)), np.ones(2), [0], Theta_DQ=np.ones((4, 3)))


def test_lood_table_under_the_ntk_is_the_ntk_gp_lood(problem):
    p = problem
    labels = np.argmax(p["y"], axis=1)
    fit = fit_gp(p["k_dd"], p["y"], SIGMA2, Theta_DD=p["t_dd"])
    differ = np.array([3, 0, 7])
    table = lood_table(p["k_dd"], labels, 3, SIGMA2, differ, "differ", Theta=p["t_dd"])
    ref = lood_self(fit, differ)
    np.testing.assert_array_equal(table.differ_idx, differ)
    for col, key in [
        ("kl_lood", "kl"),
        ("mean_dist_lood", "mean_dist"),
        ("nngp_auc", "auc"),
        ("var_in", "var_in"),
        ("var_out", "var_out"),
    ]:
        np.testing.assert_allclose(table[col], ref[key], rtol=1e-12)
    every = lood_table(p["k_dd"], labels, 3, SIGMA2, differ, "all", Theta=p["t_dd"])
    np.testing.assert_allclose(every.kl_lood, lood_all(fit)["kl"], rtol=1e-12)
    assert every.is_differ.sum() == 3
    # without Theta it is the NNGP table
    nngp = lood_table(p["k_dd"], labels, 3, SIGMA2, differ, "differ")
    assert not np.allclose(nngp.kl_lood, table.kl_lood)

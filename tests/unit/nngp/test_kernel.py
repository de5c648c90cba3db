"""Tests of the NNGP LOOD estimator against independent (naive) computations."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.special import ndtr
from sklearn.metrics import roc_auc_score

from lood.arch import Architecture
from lood.nngp.gp import centred_one_hot, fit_gp, posterior
from lood.nngp.kernel import nngp_diag, nngp_kernel
from lood.nngp.loo import gaussian_pair_auc, loo_pointwise, loo_query_set, lood_all, lood_self
from lood.stats import kl_gaussians, kl_isotropic

SIGMA2 = 0.1


def _random_problem(n: int, m: int, c: int, seed: int):
    """Random PSD kernel over n training points + m queries (RBF on random inputs), labels."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n + m, 3))
    sq = np.sum((x[:, None, :] - x[None, :, :]) ** 2, axis=-1)
    k = np.exp(-sq / 4.0) + 0.2 * (x @ x.T) / 3.0
    y = centred_one_hot(rng.integers(0, c, size=n), c)
    return k[:n, :n], k[:n, n:], k[n:, n:], y


def _naive_posterior(k_dd, k_dq, k_qq, y, s2):
    """Posterior mean [M, C] and full covariance [M, M] by a direct dense solve."""
    mat = k_dd + s2 * np.eye(k_dd.shape[0])
    mean = k_dq.T @ np.linalg.solve(mat, y)
    cov = k_qq - k_dq.T @ np.linalg.solve(mat, k_dq)
    return mean, cov


def _naive_without(k_dd, k_dq, k_qq, y, s2, i):
    keep = np.arange(k_dd.shape[0]) != i
    return _naive_posterior(k_dd[np.ix_(keep, keep)], k_dq[keep], k_qq, y[keep], s2)


def _scalar_kl_sum(m0, v0, m1, v1):
    """Sum over classes of the 1-D KL(N(m0, v0) || N(m1, v1))."""
    return float(np.sum(0.5 * (v0 / v1 + (m1 - m0) ** 2 / v1 - 1.0 + np.log(v1 / v0))))


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))


# ------------------------------------------------------------------------------ GP posterior
def test_posterior_matches_direct_solve():
    k_dd, k_dq, k_qq, y = _random_problem(30, 7, 3, seed=0)
    fit = fit_gp(k_dd, y, SIGMA2)
    assert fit.jitter == 0.0
    mean, var = posterior(fit, k_dq, np.diag(k_qq))
    mean_ref, cov_ref = _naive_posterior(k_dd, k_dq, k_qq, y, SIGMA2)
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(var, np.diag(cov_ref), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fit.A, np.linalg.inv(k_dd + SIGMA2 * np.eye(30)), rtol=1e-9)
    np.testing.assert_allclose(fit.diag_A(), np.diag(fit.A), rtol=1e-12)


# ------------------------------------------------------------------------------ LOO downdates
def test_loo_pointwise_matches_naive_resolve():
    n, m, c = 25, 4, 3
    k_dd, k_dq, k_qq, y = _random_problem(n, m, c, seed=1)
    records = np.array([0, 3, 11, 24])
    # queries: 4 fresh points plus training points 3 and 11 (query = a record itself)
    kq_all = np.concatenate([k_dq, k_dd[:, [3, 11]]], axis=1)
    kqq_full = np.block([[k_qq, k_dq[[3, 11]].T], [k_dq[[3, 11]], k_dd[np.ix_([3, 11], [3, 11])]]])
    fit = fit_gp(k_dd, y, SIGMA2)
    res = loo_pointwise(fit, kq_all, np.diag(kqq_full), records)
    assert res["mean_out"].shape == (4, m + 2, c)
    assert res["kl"].shape == (4, m + 2)
    mean_in, cov_in = _naive_posterior(k_dd, kq_all, kqq_full, y, SIGMA2)
    for p, i in enumerate(records):
        mean_out, cov_out = _naive_without(k_dd, kq_all, kqq_full, y, SIGMA2, i)
        assert _rel(res["mean_in"][p], mean_in) < 1e-8
        assert _rel(res["mean_out"][p], mean_out) < 1e-8
        assert _rel(res["var_in"][p], np.diag(cov_in)) < 1e-8
        assert _rel(res["var_out"][p], np.diag(cov_out)) < 1e-8
        for q in range(m + 2):
            kl = _scalar_kl_sum(mean_out[q], cov_out[q, q], mean_in[q], cov_in[q, q])
            assert _rel(res["kl"][p, q], kl) < 1e-7
            md = np.sum((mean_in[q] - mean_out[q]) ** 2)
            assert _rel(res["mean_dist"][p, q], md) < 1e-7
    assert np.all((res["auc"] >= 0.5) & (res["auc"] <= 1.0))
    # removing a record changes its own prediction the most
    assert res["kl"][1, m] > np.max(res["kl"][1, :m])


def test_lood_all_and_self_match_naive_for_every_record():
    n, c = 40, 4
    k_dd, _, _, y = _random_problem(n, 0, c, seed=2)
    fit = fit_gp(k_dd, y, SIGMA2)
    allres = lood_all(fit)
    selfres = lood_self(fit, np.arange(n))
    mean_in, cov_in = _naive_posterior(k_dd, k_dd, k_dd, y, SIGMA2)
    kl_ref, md_ref, vin_ref, vout_ref = [], [], [], []
    for i in range(n):
        m_out, c_out = _naive_without(k_dd, k_dd[:, [i]], k_dd[np.ix_([i], [i])], y, SIGMA2, i)
        kl_ref.append(_scalar_kl_sum(m_out[0], c_out[0, 0], mean_in[i], cov_in[i, i]))
        md_ref.append(np.sum((m_out[0] - mean_in[i]) ** 2))
        vin_ref.append(cov_in[i, i])
        vout_ref.append(c_out[0, 0])
    for res in (allres, selfres):
        assert _rel(res["var_in"], vin_ref) < 1e-8
        assert _rel(res["var_out"], vout_ref) < 1e-8
        assert _rel(res["kl"], kl_ref) < 1e-7
        assert _rel(res["mean_dist"], md_ref) < 1e-7
    # the fast AUC grid of lood_all agrees with the fine one of lood_self
    np.testing.assert_allclose(allres["auc"], selfres["auc"], atol=1e-9)
    ref_auc = gaussian_pair_auc(
        mean_in[np.arange(n), :], np.diag(cov_in), allres["mean_out"], vout_ref
    )
    np.testing.assert_allclose(selfres["auc"], ref_auc, atol=1e-6)


def test_loo_query_set_matches_naive_joint_kl():
    n, m, c = 20, 5, 3
    k_dd, k_dq, k_qq, y = _random_problem(n, m, c, seed=3)
    records = [0, 7, 19]
    fit = fit_gp(k_dd, y, SIGMA2)
    res = loo_query_set(fit, k_dq, k_qq, records)
    mean_in, cov_in = _naive_posterior(k_dd, k_dq, k_qq, y, SIGMA2)
    for p, i in enumerate(records):
        mean_out, cov_out = _naive_without(k_dd, k_dq, k_qq, y, SIGMA2, i)
        kl = sum(kl_gaussians(mean_out[:, j], cov_out, mean_in[:, j], cov_in) for j in range(c))
        assert _rel(res["kl"][p], kl) < 1e-7
        assert _rel(res["mean_dist"][p], np.sum((mean_in - mean_out) ** 2)) < 1e-7
    # one query: joint == pointwise
    single = loo_query_set(fit, k_dq[:, :1], k_qq[:1, :1], records)
    point = loo_pointwise(fit, k_dq[:, :1], k_qq[0, :1], records, auc=False)
    np.testing.assert_allclose(single["kl"], point["kl"][:, 0], rtol=1e-10)


# ------------------------------------------------------------------------------ divergences
def test_kl_gaussians_closed_form_and_monte_carlo():
    # 1-D closed form
    m0, v0, m1, v1 = 0.3, 0.5, -0.2, 1.7
    ref = 0.5 * (v0 / v1 + (m1 - m0) ** 2 / v1 - 1 + np.log(v1 / v0))
    assert kl_gaussians([m0], [[v0]], [m1], [[v1]]) == pytest.approx(ref, rel=1e-12)
    # KL(p || p) = 0 and >= 0
    rng = np.random.default_rng(4)
    b = rng.normal(size=(3, 3))
    s0 = b @ b.T + 0.5 * np.eye(3)
    b = rng.normal(size=(3, 3))
    s1 = b @ b.T + 0.5 * np.eye(3)
    mu0, mu1 = rng.normal(size=3), rng.normal(size=3)
    assert kl_gaussians(mu0, s0, mu0, s0) == pytest.approx(0.0, abs=1e-12)
    kl = kl_gaussians(mu0, s0, mu1, s1)
    assert kl > 0
    # Monte Carlo E_p[log p - log q]
    z = rng.multivariate_normal(mu0, s0, size=400_000)

    def logpdf(z, mu, s):
        diff = z - mu
        sol = np.linalg.solve(s, diff.T).T
        return -0.5 * np.sum(diff * sol, axis=1) - 0.5 * np.linalg.slogdet(2 * np.pi * s)[1]

    mc = np.mean(logpdf(z, mu0, s0) - logpdf(z, mu1, s1))
    assert kl == pytest.approx(mc, rel=0.02)
    # isotropic vectorised version equals the general one
    iso = kl_isotropic(mu0, 0.4, mu1, 1.3)
    assert iso == pytest.approx(kl_gaussians(mu0, 0.4 * np.eye(3), mu1, 1.3 * np.eye(3)), rel=1e-12)
    with pytest.raises(ValueError):
        kl_gaussians(mu0, s0, mu1[:2], s1)


def _mc_lr_auc(mu_in, v_in, mu_out, v_out, rng, n=200_000):
    c = len(mu_in)
    z_in = mu_in + np.sqrt(v_in) * rng.normal(size=(n, c))
    z_out = mu_out + np.sqrt(v_out) * rng.normal(size=(n, c))

    def llr(z):
        return (
            -np.sum((z - mu_in) ** 2, 1) / (2 * v_in)
            + np.sum((z - mu_out) ** 2, 1) / (2 * v_out)
            - 0.5 * c * np.log(v_in / v_out)
        )

    labels = np.r_[np.ones(n), np.zeros(n)]
    return roc_auc_score(labels, np.r_[llr(z_in), llr(z_out)])


def test_gaussian_pair_auc_equal_variance_closed_form():
    for c in (1, 2, 5):
        mu_in = np.zeros(c)
        mu_out = np.linspace(0.2, 0.9, c)
        s2 = 0.7
        ref = ndtr(np.linalg.norm(mu_in - mu_out) / (np.sqrt(s2) * np.sqrt(2)))
        assert gaussian_pair_auc(mu_in, s2, mu_out, s2) == pytest.approx(ref, abs=1e-12)
        # continuity: a slightly different variance goes through the chi-square quadrature
        near = gaussian_pair_auc(mu_in, s2, mu_out, s2 * (1 + 1e-3))
        assert near == pytest.approx(ref, abs=2e-4)
    assert gaussian_pair_auc([0.0], 1.0, [0.0], 1.0) == pytest.approx(0.5)


@pytest.mark.parametrize("c", [1, 2])
def test_gaussian_pair_auc_matches_monte_carlo(c):
    rng = np.random.default_rng(10 + c)
    cases = [(0.2, 1.0, 0.5), (1.0, 0.3, 1.2), (0.6, 0.8, 0.0), (0.05, 0.07, 0.3)]
    for v_in, v_out, d in cases:
        mu_in = rng.normal(size=c)
        direction = rng.normal(size=c)
        mu_out = mu_in + d * direction / np.linalg.norm(direction)
        auc = gaussian_pair_auc(mu_in, v_in, mu_out, v_out)
        mc = _mc_lr_auc(mu_in, v_in, mu_out, v_out, rng)
        assert 0.5 <= auc <= 1.0
        assert auc == pytest.approx(mc, abs=4e-3), (v_in, v_out, d)
        # the optimal test's AUC is symmetric in the two hypotheses
        assert gaussian_pair_auc(mu_out, v_out, mu_in, v_in) == pytest.approx(auc, abs=1e-9)
    # vectorised call equals looped calls
    mus = rng.normal(size=(6, c))
    mus2 = rng.normal(size=(6, c))
    v1, v2 = rng.uniform(0.1, 1, 6), rng.uniform(0.1, 1, 6)
    vec = gaussian_pair_auc(mus, v1, mus2, v2)
    loop = [gaussian_pair_auc(mus[j], v1[j], mus2[j], v2[j]) for j in range(6)]
    np.testing.assert_allclose(vec, loop, atol=1e-12)


# ------------------------------------------------------------------------------ kernels
def _arch(depth, activation="relu", w_std=1.4, b_std=0.1, param="ntk"):
    return Architecture(depth, 64, activation, w_std, b_std, param, 2)


def test_nngp_kernel_batched_equals_unbatched():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(37, 6))
    x2 = rng.normal(size=(11, 6))
    arch = _arch(2)
    full = nngp_kernel(arch, x)
    assert full.dtype == np.float64 and full.shape == (37, 37)
    np.testing.assert_allclose(nngp_kernel(arch, x, batch_size=16), full, rtol=1e-12, atol=1e-14)
    cross = nngp_kernel(arch, x, x2)
    np.testing.assert_allclose(nngp_kernel(arch, x, x2, batch_size=8), cross, rtol=1e-12)
    np.testing.assert_allclose(nngp_diag(arch, x, batch_size=10), np.diag(full), rtol=1e-12)
    with pytest.raises(ValueError):
        nngp_kernel(arch, x, rng.normal(size=(3, 5)))


@pytest.mark.parametrize("param", ["ntk", "standard"])
def test_nngp_kernel_depth0_is_linear(param):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(9, 5))
    w, b = 1.3, 0.2
    k = nngp_kernel(_arch(0, w_std=w, b_std=b, param=param), x)
    np.testing.assert_allclose(k, w**2 * (x @ x.T) / 5 + b**2, rtol=1e-12)
    k0 = nngp_kernel(_arch(0, w_std=w, b_std=0.0, param=param), x)
    np.testing.assert_allclose(k0, w**2 * (x @ x.T) / 5, rtol=1e-12, atol=1e-14)


def test_nngp_kernel_relu_depth1_arccos_closed_form():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(8, 4))
    w, b = 1.5, 0.3
    k = nngp_kernel(_arch(1, w_std=w, b_std=b), x)
    k0 = w**2 * (x @ x.T) / 4 + b**2
    dg = np.sqrt(np.diag(k0))
    cos = np.clip(k0 / np.outer(dg, dg), -1, 1)
    theta = np.arccos(cos)
    # Cho & Saul arc-cosine kernel of order 1: E[relu(u) relu(v)]
    e_relu = np.outer(dg, dg) / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * cos)
    np.testing.assert_allclose(k, w**2 * e_relu + b**2, rtol=1e-8)


def test_nngp_kernel_gelu_runs_and_is_psd():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(20, 5))
    k = nngp_kernel(_arch(2, activation="gelu"), x)
    assert np.all(np.isfinite(k))
    np.testing.assert_allclose(k, k.T, atol=1e-14)
    assert np.min(np.linalg.eigvalsh(k)) > -1e-10 * np.max(np.diag(k))
    # gelu differs from relu
    assert not np.allclose(k, nngp_kernel(_arch(2), x))


# ------------------------------------------------------------------------------ errors
def test_jitter_warns_on_singular_kernel_and_raises_when_hopeless():
    rng = np.random.default_rng(9)
    b = rng.normal(size=(30, 3))
    k_singular = b @ b.T  # rank 3, roundoff makes it indefinite
    y = centred_one_hot(rng.integers(0, 2, 30), 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = fit_gp(k_singular, y, 1e-30)
    assert fit.jitter > 0
    assert any("jitter" in str(w.message) for w in caught)
    mean, var = posterior(fit, k_singular[:, :2], np.diag(k_singular)[:2])
    assert np.all(np.isfinite(mean)) and np.all(var >= 0)
    indefinite = np.diag(np.r_[np.ones(29), -5.0])
    with pytest.raises(np.linalg.LinAlgError, match="sigma2"):
        fit_gp(indefinite, y, 1e-3)


def test_bad_inputs_raise_clear_errors():
    k_dd, k_dq, _, y = _random_problem(10, 2, 2, seed=11)
    with pytest.raises(ValueError, match="sigma2"):
        fit_gp(k_dd, y, 0.0)
    with pytest.raises(ValueError, match="Y must be"):
        fit_gp(k_dd, y[:5], 0.1)
    with pytest.raises(ValueError, match="square"):
        fit_gp(k_dd[:, :5], y, 0.1)
    fit = fit_gp(k_dd, y, 0.1)
    with pytest.raises(ValueError, match="record index 10"):
        loo_pointwise(fit, k_dq, np.ones(2), [1, 10])
    with pytest.raises(ValueError, match="record index -1"):
        lood_self(fit, [-1])
    with pytest.raises(ValueError, match="kqq"):
        posterior(fit, k_dq, np.ones(3))
    with pytest.raises(ValueError, match="K_DQ"):
        posterior(fit, k_dq[:5], np.ones(2))
    with pytest.raises(ValueError, match="labels"):
        centred_one_hot([0, 3], 3)


def test_centred_one_hot():
    y = centred_one_hot(np.array([0, 2, 1]), 3)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y.sum(axis=1), 0.0, atol=1e-15)
    np.testing.assert_allclose(y[1], [-1 / 3, -1 / 3, 2 / 3])

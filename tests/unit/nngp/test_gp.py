"""One GP code path for the NNGP and the NTK-GP (lood.nngp.gp): the joint posteriors with and
without a record against a dense refit, the closed forms from parts against lood_all, and the
checks that a fit and its queries belong to the same kernel."""

from __future__ import annotations

import numpy as np
import pytest

from lood.nngp.gp import centred_one_hot, fit_gp, joint_posterior, posterior
from lood.nngp.loo import loo_posterior, loo_query_set, lood_all, self_lood_from_parts

SIGMA2 = 0.1
N, M = 20, 5


@pytest.fixture(scope="module")
def kernels():
    """A PSD 'NNGP' K and a different PSD 'NTK' Theta over N training points and M queries."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(N + M, 3))
    sq = np.sum((x[:, None] - x[None]) ** 2, axis=-1)
    k = np.exp(-sq / 4.0) + 0.2 * (x @ x.T) / 3.0
    theta = 1.5 * np.exp(-sq / 2.0) + k + 0.1 * (x @ x.T) ** 2 / 9.0
    return k, theta, centred_one_hot(rng.integers(0, 3, N), 3)


def _dense(k, theta, y, keep):
    """Mean [M, C] and covariance [M, M] at the queries from a dense solve on the records ``keep``
    (NNGP: Bayesian posterior; NTK-GP: the trained network's output distribution)."""
    q = np.arange(N, N + M)
    op = k if theta is None else theta
    a = np.linalg.inv(op[np.ix_(keep, keep)] + SIGMA2 * np.eye(len(keep)))
    u = a @ op[np.ix_(keep, q)]
    mean = u.T @ y[keep]
    if theta is None:
        return mean, k[np.ix_(q, q)] - k[np.ix_(q, keep)] @ u
    kdq = k[np.ix_(keep, q)]
    return mean, k[np.ix_(q, q)] + u.T @ k[np.ix_(keep, keep)] @ u - u.T @ kdq - kdq.T @ u


@pytest.mark.parametrize("kind", ["nngp", "ntk"])
def test_joint_posterior_with_and_without_a_record_match_a_dense_refit(kernels, kind):
    k, theta, y = kernels
    theta = theta if kind == "ntk" else None
    d, q = np.arange(N), np.arange(N, N + M)
    fit = fit_gp(k[:N, :N], y, SIGMA2, Theta_DD=None if theta is None else theta[:N, :N])
    t_dq = None if theta is None else theta[np.ix_(d, q)]
    k_dq, k_qq = k[np.ix_(d, q)], k[np.ix_(q, q)]
    mean_in, cov_in = _dense(k, theta, y, d)
    mean, cov = joint_posterior(fit, k_dq, k_qq, t_dq)
    np.testing.assert_allclose(mean, mean_in, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cov, cov_in, rtol=1e-8, atol=1e-12)
    m_diag, v_diag = posterior(fit, k_dq, np.diag(k_qq), t_dq)
    np.testing.assert_allclose(m_diag, mean_in, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(v_diag, np.diag(cov_in), rtol=1e-8, atol=1e-12)
    for i in (0, 13):
        mean_out, cov_out = _dense(k, theta, y, d[d != i])
        res = loo_posterior(fit, k_dq, k_qq, i, t_dq)
        np.testing.assert_allclose(res["mean_out"], mean_out, rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(res["cov_out"], cov_out, rtol=1e-8, atol=1e-12)
        assert not np.allclose(res["cov_out"], res["cov_in"])


@pytest.mark.parametrize("kind", ["nngp", "ntk"])
def test_self_lood_from_parts_is_lood_all(kernels, kind):
    """The onion's closed forms from diag(A) (and diag(A K A)) agree with lood_all's."""
    k, theta, y = kernels
    kdd = k[:N, :N]
    fit = fit_gp(kdd, y, SIGMA2, Theta_DD=None if kind == "nngp" else theta[:N, :N])
    g = None if kind == "nngp" else np.diag(fit.A @ kdd @ fit.A)
    res = self_lood_from_parts(np.diag(fit.A), fit.alpha, fit.Y, SIGMA2, g)
    ref = lood_all(fit)
    for key in ("kl", "mean_dist", "var_in", "var_out", "auc"):
        np.testing.assert_allclose(res[key], ref[key], rtol=1e-9, atol=1e-12)


def test_a_fit_and_its_queries_must_share_the_kernel(kernels):
    k, theta, y = kernels
    d, q = np.arange(N), np.arange(N, N + M)
    k_dq, kqq = k[np.ix_(d, q)], np.diag(k)[q]
    ntk = fit_gp(k[:N, :N], y, SIGMA2, Theta_DD=theta[:N, :N])
    nngp = fit_gp(k[:N, :N], y, SIGMA2)
    assert ntk.ntk and not nngp.ntk
    with pytest.raises(ValueError, match="Theta_DQ is needed"):
        posterior(ntk, k_dq, kqq)  # an NTK-GP fit without the NTK of the queries
    with pytest.raises(ValueError, match="Theta_DQ is needed"):
        posterior(nngp, k_dq, kqq, theta[np.ix_(d, q)])
    with pytest.raises(ValueError, match="NNGP"):
        loo_query_set(ntk, k_dq, k[np.ix_(q, q)], [0])
    with pytest.raises(ValueError, match=r"K_DD must be \[5, 5\]"):  # as Theta_DD
        fit_gp(k[:N, :N], y, SIGMA2, Theta_DD=theta[:5, :5])
    # the same K with and without Theta are different GPs
    t_dq = theta[np.ix_(d, q)]
    assert not np.allclose(posterior(nngp, k_dq, kqq)[0], posterior(ntk, k_dq, kqq, t_dq)[0])

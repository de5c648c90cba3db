"""LOOD under the NTK: infinite-width networks trained by gradient descent on the MSE.

An infinitely wide network trained to convergence (t = infinity) by gradient descent on the MSE
to targets ``Y`` [N, C] is, over the random initialisation, a Gaussian process per output class
(neural-tangents' ``predict.gradient_descent_mse_ensemble(..., t=None, get="ntk")``). With ``Theta``
the NTK, ``K`` the NNGP kernel, ``s = sigma2`` the absolute diagonal regulariser and

    R = Theta_DD + s I,   A = R^-1,   alpha = A Y,   u(q) = A Theta_Dq,

the output at queries q has (classes independent, sharing the covariance)

    mean(q)     = Theta_qD alpha = u^T Y
    cov(q, q')  = K_qq' + u^T K_DD u' - u^T K_Dq' - K_qD u'.

Unlike the NNGP posterior, the covariance contains ``A K_DD A``, so leaving out record i needs
more than the rank-one downdate of ``A``. With ``a_i = A e_i`` (column i of A) the block inverse
gives the weights without i (zero at i, so sums over D and over D \\ {i} agree)::

    u_out = A_{-i} Theta_Dq = u - a_i c,          c = u_i / A_ii
    mean_out = mean_in - c alpha_i
    cov_out  = cov_in - c h'^T - h c'^T + g c c'^T,
    h = (A K_DD u)_i - (A K_Dq)_i,   g = (A K_DD A)_ii.

At the query q = x_i itself, ``Theta_Di = (R - s I) e_i`` gives ``u = e_i - s a_i`` and
``u_out = e_i - a_i / A_ii``, hence the closed forms (``G = A K_DD A``)::

    mean_in  = y_i - s alpha_i              var_in  = s^2 G_ii
    mean_out = mean_in - (1 - s A_ii) / A_ii alpha_i
    var_out  = G_ii / A_ii^2                (>= var_in, since A_ii <= 1 / s).

The closed forms also avoid the general ``var_in``'s cancellation of O(1) terms (var_in is
O(s^2)) and use column i of ``Theta_DD``: a separate kernel call at ``x_i`` (as neural-tangents
makes) differs by ~1e-8 relative, since the relu kernels' arccos amplifies roundoff at coincident
inputs. So one Cholesky factorisation of ``R`` serves every record: a record costs two triangular
solves and one product with ``K_DD`` (O(N^2)), and all N records cost ``A`` (``potri``) plus one
N x N product for ``diag(A K_DD A)`` (O(N^3) in all, O(N^2) per record).

LOOD is measured as in :mod:`lood.nngp.gp`: KL(out || in) summed over classes, squared distance of
the means, AUC of the optimal likelihood-ratio test between the two Gaussians.

``s`` is absolute: neural-tangents' default ``diag_reg_absolute_scale=False`` multiplies
``diag_reg`` by ``trace(Theta_DD) / N``, which changes when a record is removed; convert once
with :func:`absolute_diag_reg` and keep ``s`` fixed for D and D \\ {i}.

This module is numpy only; the kernels ``K`` and ``Theta`` come from
:func:`lood.nngp.kernel.ntk_kernels` (neural-tangents, jax).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg

from lood.nngp.gp import gaussian_pair_auc
from lood.stats import kl_isotropic


def absolute_diag_reg(theta_dd: Any, diag_reg: float) -> float:
    """neural-tangents' relative ``diag_reg`` in absolute units: ``diag_reg * trace(Theta_DD) / N``."""
    t = np.asarray(theta_dd, dtype=np.float64)
    return float(diag_reg * np.trace(t) / t.shape[0])


# --------------------------------------------------------------------------------------------
# Fit and posterior
# --------------------------------------------------------------------------------------------
@dataclass
class NTKGPFit:
    """One Cholesky factorisation of ``Theta_DD + sigma2 I`` plus what LOOD needs besides it."""

    chol: np.ndarray  # lower Cholesky factor of Theta_DD + sigma2 I
    alpha: np.ndarray  # A Y [N, C]
    Y: np.ndarray  # targets [N, C]
    K: np.ndarray  # NNGP kernel K_DD [N, N] (the covariance at initialisation)
    sigma2: float
    _A: np.ndarray | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return int(self.chol.shape[0])

    @property
    def A(self) -> np.ndarray:
        """``(Theta_DD + sigma2 I)^-1`` [N, N] from the factor (``potri``), cached."""
        if self._A is None:
            inv, info = scipy.linalg.lapack.dpotri(self.chol, lower=1)
            if info != 0:
                raise np.linalg.LinAlgError(f"potri failed with info={info}")
            self._A = np.tril(inv) + np.tril(inv, -1).T
        return self._A

    def solve(self, b: np.ndarray) -> np.ndarray:
        """``A @ b`` by two triangular solves."""
        return scipy.linalg.cho_solve((self.chol, True), b, check_finite=False)


def _square(m: Any, n: int | None, name: str) -> np.ndarray:
    a = np.asarray(m, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or (n is not None and a.shape[0] != n):
        raise ValueError(f"{name} must be a square [N, N] matrix, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains non-finite values")
    return a


def fit_ntk_gp(K_DD: Any, Theta_DD: Any, Y: Any, sigma2: float) -> NTKGPFit:
    """Factorise ``Theta_DD + sigma2 I`` (absolute ``sigma2`` > 0) and solve for ``Y`` [N, C]."""
    sigma2 = float(sigma2)
    if not np.isfinite(sigma2) or sigma2 <= 0:
        raise ValueError(f"sigma2 must be > 0, got {sigma2}")
    theta = _square(Theta_DD, None, "Theta_DD")
    n = theta.shape[0]
    k = _square(K_DD, n, "K_DD")
    y = np.asarray(Y, dtype=np.float64)
    y = y[:, None] if y.ndim == 1 else y
    if y.ndim != 2 or y.shape[0] != n:
        raise ValueError(f"Y must be [N, C] with N = {n}, got shape {y.shape}")
    try:
        chol, _ = scipy.linalg.cho_factor(theta + sigma2 * np.eye(n), lower=True)
    except np.linalg.LinAlgError as err:
        raise np.linalg.LinAlgError(
            "Cholesky of Theta_DD + sigma2 I failed; increase sigma2 or check the NTK is PSD"
        ) from err
    alpha = scipy.linalg.cho_solve((chol, True), y, check_finite=False)
    return NTKGPFit(chol=chol, alpha=alpha, Y=y, K=k, sigma2=sigma2)


def _queries(fit: NTKGPFit, K_DQ: Any, Theta_DQ: Any) -> tuple[np.ndarray, np.ndarray]:
    kdq = np.asarray(K_DQ, dtype=np.float64)
    tdq = np.asarray(Theta_DQ, dtype=np.float64)
    kdq = kdq[:, None] if kdq.ndim == 1 else kdq
    tdq = tdq[:, None] if tdq.ndim == 1 else tdq
    if kdq.ndim != 2 or kdq.shape[0] != fit.n or tdq.shape != kdq.shape:
        raise ValueError(
            f"K_DQ and Theta_DQ must both be [N, M] with N = {fit.n}, got {kdq.shape}, {tdq.shape}"
        )
    return kdq, tdq


def _records(fit: NTKGPFit, records: Any) -> np.ndarray:
    rec = np.atleast_1d(np.asarray(records))
    if rec.ndim != 1 or (rec.size and not np.issubdtype(rec.dtype, np.integer)):
        raise ValueError("records must be a 1-D array of integer indices into D")
    rec = rec.astype(np.int64)
    bad = rec[(rec < 0) | (rec >= fit.n)]
    if bad.size:
        raise ValueError(f"record index {int(bad[0])} is out of range for N = {fit.n} records")
    return rec


def ntk_posterior(
    fit: NTKGPFit, K_DQ: Any, Theta_DQ: Any, K_QQ: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Output distribution at M queries after training on D: mean [M, C], covariance [M, M]."""
    kdq, tdq = _queries(fit, K_DQ, Theta_DQ)
    kqq = np.atleast_2d(np.asarray(K_QQ, dtype=np.float64))
    if kqq.shape != (kdq.shape[1], kdq.shape[1]):
        raise ValueError(f"K_QQ must be [M, M] with M = {kdq.shape[1]}, got {kqq.shape}")
    u = fit.solve(tdq)
    cross = u.T @ kdq
    cov = kqq + u.T @ (fit.K @ u) - cross - cross.T
    return tdq.T @ fit.alpha, 0.5 * (cov + cov.T)


def _record_terms(fit: NTKGPFit, rec: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Columns ``a_i = A e_i`` [N, P], ``K_DD a_i`` [N, P] and ``A_ii`` [P]: O(N^2) per record."""
    e = np.zeros((fit.n, rec.size))
    e[rec, np.arange(rec.size)] = 1.0
    a = fit.solve(e)
    return a, fit.K @ a, a[rec, np.arange(rec.size)]


def ntk_loo_posterior(
    fit: NTKGPFit, K_DQ: Any, Theta_DQ: Any, K_QQ: Any, record: int
) -> dict[str, np.ndarray]:
    """Joint output distribution at M queries with and without ``record``, by the downdate.

    Returns ``mean_in``/``mean_out`` [M, C] and ``cov_in``/``cov_out`` [M, M].
    """
    kdq, tdq = _queries(fit, K_DQ, Theta_DQ)
    rec = _records(fit, [record])
    mean_in, cov_in = ntk_posterior(fit, kdq, tdq, K_QQ)
    a, ka, a_ii = _record_terms(fit, rec)
    u = fit.solve(tdq)
    c = u[rec[0]] / a_ii[0]  # [M]
    h = ka[:, 0] @ u - a[:, 0] @ kdq  # (A K u)_i - (A k_q)_i
    g = float(a[:, 0] @ ka[:, 0])  # (A K A)_ii
    cov_out = cov_in - np.outer(c, h) - np.outer(h, c) + g * np.outer(c, c)
    mean_out = mean_in - c[:, None] * fit.alpha[rec[0]][None, :]
    return {"mean_in": mean_in, "cov_in": cov_in, "mean_out": mean_out, "cov_out": cov_out}


# --------------------------------------------------------------------------------------------
# LOOD
# --------------------------------------------------------------------------------------------
def lood_from_moments(
    mean_in: np.ndarray,
    var_in: np.ndarray,
    mean_out: np.ndarray,
    var_out: np.ndarray,
    auc: bool,
    n_quad: int,
) -> dict[str, np.ndarray]:
    """LOOD from the two Gaussians (classes share the variance): means [..., C], variances [...].

    KL(out || in) summed over classes, squared mean distance and (optionally) the LR-test AUC.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = kl_isotropic(mean_out, var_out, mean_in, var_in)
    res = {
        "mean_in": mean_in,
        "var_in": var_in,
        "mean_out": mean_out,
        "var_out": var_out,
        "kl": kl,
        "mean_dist": np.sum((mean_in - mean_out) ** 2, axis=-1),
    }
    if auc:
        res["auc"] = gaussian_pair_auc(mean_in, var_in, mean_out, var_out, n_quad=n_quad)
    return res


def ntk_loo_pointwise(
    fit: NTKGPFit,
    K_DQ: Any,
    Theta_DQ: Any,
    kqq: Any,
    records: Any,
    auc: bool = True,
    n_quad: int = 201,
) -> dict[str, np.ndarray]:
    """Pointwise LOOD of each record (rows) at each query (columns): arrays [P, M] (means [P, M, C]).

    ``kqq`` = diag(K_QQ) [M]. O(N^2 (M + P)) after the factorisation.
    """
    kdq, tdq = _queries(fit, K_DQ, Theta_DQ)
    rec = _records(fit, records)
    kq = np.atleast_1d(np.asarray(kqq, dtype=np.float64))
    if kq.shape != (kdq.shape[1],):
        raise ValueError(f"kqq must be [M] with M = {kdq.shape[1]}, got {kq.shape}")
    u = fit.solve(tdq)  # [N, M]
    mean_q = tdq.T @ fit.alpha
    var_q = np.maximum(kq + np.einsum("nm,nm->m", u, fit.K @ u - 2.0 * kdq), 0.0)
    a, ka, a_ii = _record_terms(fit, rec)
    c = u[rec] / a_ii[:, None]  # [P, M]
    h = ka.T @ u - a.T @ kdq  # [P, M]
    g = np.einsum("np,np->p", a, ka)[:, None]  # [P, 1]
    p, m = rec.size, kdq.shape[1]
    mean_in = np.broadcast_to(mean_q, (p, m, fit.alpha.shape[1]))
    var_in = np.broadcast_to(var_q, (p, m))
    mean_out = mean_in - c[..., None] * fit.alpha[rec][:, None, :]
    var_out = np.maximum(var_in - 2.0 * c * h + g * c**2, 0.0)
    return lood_from_moments(mean_in.copy(), var_in.copy(), mean_out, var_out, auc, n_quad)


def self_lood_from_parts(
    diag_A: np.ndarray,
    diag_AKA: np.ndarray,
    alpha: np.ndarray,
    Y: np.ndarray,
    sigma2: float,
    auc: bool = True,
    n_quad: int = 101,
) -> dict[str, np.ndarray]:
    """Closed-form NTK-GP LOOD at query = record from ``diag(A)``, ``diag(A K A)``, ``alpha``, ``Y``."""
    s = float(sigma2)
    mean_in = Y - s * alpha
    c = (1.0 - s * diag_A) / diag_A
    mean_out = mean_in - c[:, None] * alpha
    return lood_from_moments(mean_in, s**2 * diag_AKA, mean_out, diag_AKA / diag_A**2, auc, n_quad)


def ntk_lood_self(
    fit: NTKGPFit, records: Any, auc: bool = True, n_quad: int = 201
) -> dict[str, np.ndarray]:
    """LOOD of each record at its own input: arrays [P] (means [P, C]); O(N^2) per record."""
    rec = _records(fit, records)
    a, ka, a_ii = _record_terms(fit, rec)
    g = np.einsum("np,np->p", a, ka)
    return self_lood_from_parts(a_ii, g, fit.alpha[rec], fit.Y[rec], fit.sigma2, auc, n_quad)


def ntk_lood_all(fit: NTKGPFit, auc: bool = True, n_quad: int = 101) -> dict[str, np.ndarray]:
    """LOOD of every training record at its own input, arrays [N]: ``A`` plus one N x N product."""
    A = fit.A
    g = np.einsum("ji,ji->i", fit.K @ A, A)  # diag(A K A), A and K symmetric
    return self_lood_from_parts(np.diagonal(A).copy(), g, fit.alpha, fit.Y, fit.sigma2, auc, n_quad)

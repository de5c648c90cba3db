"""Leave-one-out under the GP of :mod:`lood.nngp.gp` (NNGP or NTK-GP): the posterior without a
record as a rank-one downdate of the one factorisation, the LOOD of a record at its own input or
at queries, of all records at once, and the AUC of the optimal test between two Gaussians.

Only one Cholesky factorisation of ``Theta_DD + s I`` is ever computed. Removing record ``i`` is a
rank-one downdate of ``A`` (block inverse / Schur complement); with ``a_i = A e_i`` the weights
without ``i`` are ``u_out = u - a_i c``, ``c = u_i / A_ii``, and ``mean_out = mean_in - c alpha_i``
(``alpha = A Y``). NNGP::

    var_out(q)  = var_in(q) + u_i^2 / A_ii
    cov_out(Q)  = cov_in(Q) + u_i u_i^T / A_ii       (u_i = row i of A K_DQ)

NTK-GP (the covariance contains ``A K_DD A``, so more than the downdate of ``A``)::

    cov_out  = cov_in - c h'^T - h c'^T + g c c'^T,
    h = (A K_DD u)_i - (A K_Dq)_i,   g = (A K_DD A)_ii.

At the query ``q = x_i`` itself (``p = s A_ii``, ``G = A K_DD A``) the closed forms are::

    NNGP:    mean_in = y_i - s alpha_i,  var_in = s (1 - p),   var_out = s (1 - p) / p
    NTK-GP:  mean_in = y_i - s alpha_i,  var_in = s^2 G_ii,    var_out = G_ii / A_ii^2
             mean_out = mean_in - (1 - s A_ii) / A_ii alpha_i   (both)

They avoid the general ``var_in``'s cancellation (``var_in`` is O(s) or O(s^2)) and use column
``i`` of the training kernel: a separate kernel call at ``x_i`` (as neural-tangents makes) differs
by ~1e-8 relative, since the relu kernels' arccos amplifies roundoff at coincident inputs. Each
record costs O(N M) (NNGP) or O(N^2) (NTK-GP) after the factorisation instead of another O(N^3)
solve.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg
from scipy import special, stats

from lood.nngp.gp import (
    GPFit,
    check_queries,
    check_records,
    cholesky_with_jitter,
    joint_posterior,
    posterior_parts,
)
from lood.stats import kl_isotropic, x_minus_log1p

#: Largest estimated relative error of a record's posterior variance at its own input that
#: :func:`lood_self` / :func:`lood_all` accept (see ``_check_self_variance``).
SELF_VAR_RTOL = 1e-3
#: Records of :func:`lood_all` whose error bound is checked (those with the largest s2 A_ii).
LOOD_ALL_CHECKED = 64

# Above this non-centrality of the wider chi-square the LR statistic is linear to within ~1e-5
# in AUC and boost's series for ncx2 start to lose accuracy; use the equal-variance limit there.
_NC_LINEAR = 1e9


# Half-width of the standard-normal grid of the AUC quadrature (Phi(-8.5) ~ 1e-17).
_T_MAX = 8.5


# Elements per chunk in the vectorised AUC quadrature (bounds temporary memory to ~100 MB).
_AUC_CHUNK = 2_000_000


def gaussian_pair_auc(
    mu_in: Any, var_in: Any, mu_out: Any, var_out: Any, n_quad: int = 201
) -> np.ndarray:
    """ROC AUC of the optimal likelihood-ratio test between ``N(mu_in, var_in I_C)`` and
    ``N(mu_out, var_out I_C)``; vectorised: mu [..., C], var [...] -> [...] in [0.5, 1].

    With ``v_n < v_w`` the narrower and wider variance, the log LR is monotone in ``||z - c||^2``
    (``c`` on the line through the means), whose scaled law is noncentral chi-square (C dof) under
    each hypothesis, so ``AUC = P(R_n < R_w) = E_u[SF_w(PPF_n(u))]``. That is integrated with
    ``u = Phi(t)`` by the trapezoid rule on ``n_quad`` points of ``t`` in [-8.5, 8.5] (smooth in
    ``t``, so ~100 points already reach ~1e-15). No sampling: results are deterministic.
    Equal variances (or a numerically linear statistic) use ``Phi(||mu_in - mu_out|| / (s sqrt 2))``.
    """
    m_in = np.asarray(mu_in, dtype=np.float64)
    m_out = np.asarray(mu_out, dtype=np.float64)
    if m_in.ndim == 0:
        m_in = m_in[None]
    if m_out.ndim == 0:
        m_out = m_out[None]
    if m_in.shape != m_out.shape:
        raise ValueError(f"mu_in {m_in.shape} and mu_out {m_out.shape} differ in shape")
    batch = m_in.shape[:-1]
    c = m_in.shape[-1]
    v_in = np.broadcast_to(np.asarray(var_in, dtype=np.float64), batch)
    v_out = np.broadcast_to(np.asarray(var_out, dtype=np.float64), batch)
    if np.any(v_in < 0) or np.any(v_out < 0):
        raise ValueError("variances must be >= 0")
    d2 = np.sum((m_in - m_out) ** 2, axis=-1).ravel()
    vn = np.minimum(v_in, v_out).ravel()
    vw = np.maximum(v_in, v_out).ravel()
    out = np.empty(d2.shape, dtype=np.float64)

    both_zero = vw == 0
    out[both_zero] = np.where(d2[both_zero] > 0, 1.0, 0.5)
    ok = ~both_zero
    r = np.zeros_like(vn)
    r[ok] = vn[ok] / vw[ok]
    delta2 = np.zeros_like(d2)
    delta2[ok] = d2[ok] / vw[ok]
    one_minus_r = 1.0 - r
    with np.errstate(divide="ignore", invalid="ignore"):
        lam_w = delta2 / one_minus_r**2
    linear = ok & ((one_minus_r == 0) | (lam_w > _NC_LINEAR))
    # Equal-variance limit of the LR test (the statistic becomes linear): Phi(delta / sqrt(1 + r)).
    out[linear] = special.ndtr(np.sqrt(delta2[linear] / (1.0 + r[linear])))
    quad = np.flatnonzero(ok & ~linear)
    if quad.size:
        # AUC = int SF_w(r * Q_n(Phi(t))) phi(t) dt: smooth in t, so the trapezoid rule on
        # [-T, T] converges fast (a uniform grid in the quantile u misses the tails).
        t = np.linspace(-_T_MAX, _T_MAX, max(int(n_quad), 3))
        wts = np.exp(-0.5 * t**2)
        wts /= wts.sum()
        lower = t <= 0
        u_lo = special.ndtr(t[lower])  # Q_n(u) for the lower half ...
        u_hi = special.ndtr(-t[~lower])  # ... and Q_n(1 - u) via isf for the upper half
        step = max(1, _AUC_CHUNK // t.size)
        for s in range(0, quad.size, step):
            idx = quad[s : s + step]
            rr = r[idx][:, None]
            lw = lam_w[idx][:, None]
            ln = rr * lw  # non-centrality of the narrower one (in units of its own variance)
            x_n = np.concatenate(
                [stats.ncx2.ppf(u_lo[None, :], c, ln), stats.ncx2.isf(u_hi[None, :], c, ln)], axis=1
            )  # R_n / v_n at the nodes
            # P(R_w / v_w > R_n / v_w); chndtr (cdf) is robust at x -> 0 where boost's sf overflows
            sf = 1.0 - special.chndtr(rr * x_n, c, np.broadcast_to(lw, x_n.shape))
            out[idx] = sf @ wts
    return np.clip(out, 0.5, 1.0).reshape(batch)


# --------------------------------------------------------------------------------------------
# Leave-one-out by downdate
# --------------------------------------------------------------------------------------------
def _loo_from_parts(
    mean_in: np.ndarray,
    var_in: np.ndarray,
    u: np.ndarray,
    alpha_r: np.ndarray,
    a_rr: np.ndarray,
    auc: bool,
    n_quad: int,
) -> dict[str, np.ndarray]:
    """NNGP downdate formulas. mean_in [..., C], var_in [...], u [...] (= (A k_q)_i), alpha_r [..., C]."""
    shift = u / a_rr
    mean_out = mean_in - shift[..., None] * alpha_r
    var_out = var_in + u * shift
    mean_dist = shift**2 * np.sum(alpha_r**2, axis=-1)
    c = mean_in.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        w = u * shift / var_in  # var_out / var_in - 1
        kl = 0.5 * (c * x_minus_log1p(w) + mean_dist / var_in)
    kl = np.where(var_in > 0, kl, np.where(mean_dist + u * shift > 0, np.inf, 0.0))
    res = {
        "mean_in": mean_in,
        "var_in": var_in,
        "mean_out": mean_out,
        "var_out": var_out,
        "kl": kl,
        "mean_dist": mean_dist,
    }
    if auc:
        res["auc"] = gaussian_pair_auc(mean_in, var_in, mean_out, var_out, n_quad=n_quad)
    return res


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


def _record_terms(fit: GPFit, rec: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NTK-GP: columns ``a_i = A e_i`` [N, P], ``K_DD a_i`` [N, P] and ``A_ii`` [P] (O(N^2) each)."""
    a = fit.unit_solve(rec)
    return a, fit.K @ a, a[rec, np.arange(rec.size)]


def loo_pointwise(
    fit: GPFit,
    K_DQ: Any,
    kqq: Any,
    records: Any,
    auc: bool = True,
    n_quad: int = 201,
    Theta_DQ: Any | None = None,
) -> dict[str, np.ndarray]:
    """Pointwise LOOD of each record (rows) at each query (columns), by downdate.

    Returns ``mean_in``/``mean_out`` [P, M, C], ``var_in``/``var_out``/``kl``/``mean_dist``/``auc``
    [P, M]; "in" = given D (which contains the record), "out" = given D minus record i. ``kl`` is
    KL(out || in) summed over classes, ``mean_dist`` = ||mean_in - mean_out||^2. ``kqq`` =
    diag(K_QQ) [M]; ``Theta_DQ`` [N, M] for an NTK-GP fit. O(N M P) (NNGP) or O(N^2 (M + P))
    (NTK-GP) after the factorisation, plus O(N^2) per query that is a training record (sliced
    from ``K_DD``): those take the stable closed forms, as :func:`lood_self` (without its error
    check).
    """
    kdq, kq, tdq = check_queries(fit, K_DQ, kqq, Theta_DQ)
    rec = check_records(fit, records)
    mean_q, var_q, u, (ms, js, cols) = posterior_parts(fit, kdq, kq, tdq)
    p, m = rec.size, kdq.shape[1]
    mean_in = np.broadcast_to(mean_q, (p, m, fit.n_classes)).copy()
    var_in = np.broadcast_to(var_q, (p, m)).copy()
    if u is None:  # NNGP: rank-one downdate of A alone
        rows = fit.rows_A(rec)  # [P, N]
        a_rr = rows[np.arange(rec.size), rec][:, None]
        alpha_r = np.broadcast_to(fit.alpha[rec][:, None, :], (p, m, fit.n_classes))
        u_r = rows @ kdq  # (A k_q)_i [P, M]; at training record j: (A K e_j)_i = d_ij - s A_ij
        u_r[:, ms] = (rec[:, None] == js[None, :]) - fit.noise * cols[rec]
        return _loo_from_parts(mean_in, var_in, u_r, alpha_r, a_rr, auc, n_quad)
    a, ka, a_ii = _record_terms(fit, rec)
    c = u[rec] / a_ii[:, None]  # [P, M]
    h = ka.T @ u - a.T @ kdq  # [P, M]: (A K u)_i - (A k_q)_i
    h[:, ms] = -fit.noise * (ka.T @ cols)  # at training record j: -s (A K A)_ij
    g = np.einsum("np,np->p", a, ka)[:, None]  # [P, 1]: (A K A)_ii
    mean_out = mean_in - c[..., None] * fit.alpha[rec][:, None, :]
    var_out = np.maximum(var_in - 2.0 * c * h + g * c**2, 0.0)
    return lood_from_moments(mean_in, var_in, mean_out, var_out, auc, n_quad)


def loo_posterior(
    fit: GPFit, K_DQ: Any, K_QQ: Any, record: int, Theta_DQ: Any | None = None
) -> dict[str, np.ndarray]:
    """Joint output distribution at M queries with and without ``record``, by the downdate.

    Returns ``mean_in``/``mean_out`` [M, C] and ``cov_in``/``cov_out`` [M, M].
    """
    mean_in, cov_in = joint_posterior(fit, K_DQ, K_QQ, Theta_DQ)
    kdq, _, tdq = check_queries(fit, K_DQ, np.diagonal(cov_in), Theta_DQ)
    rec = check_records(fit, [record])
    if not fit.ntk:
        a = fit.unit_solve(rec)[:, 0]
        u = a @ kdq  # (A k_q)_i [M]
        c = u / a[rec[0]]
        cov_out = cov_in + np.outer(u, c)
    else:
        a, ka, a_ii = _record_terms(fit, rec)
        u = fit.solve(tdq)
        c = u[rec[0]] / a_ii[0]  # [M]
        h = ka[:, 0] @ u - a[:, 0] @ kdq  # (A K u)_i - (A k_q)_i
        g = float(a[:, 0] @ ka[:, 0])  # (A K A)_ii
        cov_out = cov_in - np.outer(c, h) - np.outer(h, c) + g * np.outer(c, c)
    mean_out = mean_in - c[:, None] * fit.alpha[rec[0]][None, :]
    return {"mean_in": mean_in, "cov_in": cov_in, "mean_out": mean_out, "cov_out": cov_out}


def loo_query_set(fit: GPFit, K_DQ: Any, K_QQ: Any, records: Any) -> dict[str, np.ndarray]:
    """Joint NNGP LOOD over a query set (full M x M posterior covariance) per record: kl, mean_dist [P].

    With ``S`` the posterior covariance given D and ``u`` row i of ``A K_DQ``: ``S_out = S + u u^T
    / A_ii`` and ``mu_in - mu_out = u alpha_i^T / A_ii``, so with ``w = u^T S^-1 u / A_ii`` the KL
    summed over classes is ``C/2 (w - log(1 + w)) + ||alpha_i||^2 u^T S^-1 u / (2 A_ii^2)``.
    """
    if fit.ntk:
        raise ValueError(
            "loo_query_set is the NNGP's rank-one form; use loo_posterior for an NTK-GP"
        )
    _, cov = joint_posterior(fit, K_DQ, K_QQ)
    kdq, _, _ = check_queries(fit, K_DQ, np.diagonal(cov), None)
    rec = check_records(fit, records)
    scale = float(np.mean(np.abs(np.diagonal(cov)))) or 1.0
    chol, _ = cholesky_with_jitter(
        cov, scale, "the query-set posterior covariance", "are some queries duplicated?"
    )
    rows = fit.rows_A(rec)
    u = rows @ kdq  # [P, M]
    a_rr = rows[np.arange(rec.size), rec]
    z = scipy.linalg.solve_triangular(chol, u.T, lower=True)  # L^-1 u  [M, P]
    quad = np.sum(z**2, axis=0)  # u^T S^-1 u
    alpha2 = np.sum(fit.alpha[rec] ** 2, axis=1)
    w = quad / a_rr
    c = fit.n_classes
    kl = 0.5 * c * x_minus_log1p(w) + 0.5 * alpha2 * quad / a_rr**2
    mean_dist = alpha2 * np.sum(u**2, axis=1) / a_rr**2
    return {"kl": kl, "mean_dist": mean_dist}


# --------------------------------------------------------------------------------------------
# LOOD at query = the record (closed forms)
# --------------------------------------------------------------------------------------------
def self_lood_from_parts(
    diag_A: np.ndarray,
    alpha: np.ndarray,
    Y: np.ndarray,
    sigma2: float,
    diag_AKA: np.ndarray | None = None,
    auc: bool = True,
    n_quad: int = 101,
) -> dict[str, np.ndarray]:
    """Closed-form LOOD at query = record from ``diag(A)``, ``alpha``, ``Y`` and, for the
    NTK-GP, ``diag(A K A)`` (``None``: the NNGP). The privacy onion's downdated inverses feed it;
    :func:`lood_all` / :func:`lood_self` use the same forms with the NNGP's error checks."""
    s = float(sigma2)
    mean_in = Y - s * alpha
    if diag_AKA is None:  # NNGP
        one_minus_p = 1.0 - s * diag_A
        var_in = np.maximum(s * one_minus_p, 0.0)
        shift = one_minus_p / diag_A
        return lood_from_moments(
            mean_in,
            var_in,
            mean_in - shift[:, None] * alpha,
            var_in + one_minus_p * shift,
            auc,
            n_quad,
        )
    c = (1.0 - s * diag_A) / diag_A
    mean_out = mean_in - c[:, None] * alpha
    return lood_from_moments(mean_in, s**2 * diag_AKA, mean_out, diag_AKA / diag_A**2, auc, n_quad)


def lood_self(
    fit: GPFit, records: Any, auc: bool = True, n_quad: int = 201
) -> dict[str, np.ndarray]:
    """LOOD of each record at its own input (query = the record): arrays [P] (means [P, C]).

    Uses the closed forms of the module docstring instead of the general posterior: for the NNGP
    ``K_ii - k_i^T A k_i`` cancels catastrophically when ``s2`` is small against ``K_ii`` (relative
    error ~1e-4 at ``s2 / K_ii = 1e-12``, all of it at 1e-16). Costs O(P N^2) after the
    factorisation (P solves ``A e_i``; for the NNGP their residuals against ``K_DD`` bound the
    error: a record whose ``var_in`` cannot be computed to :data:`SELF_VAR_RTOL` raises a
    ``FloatingPointError`` naming it); no full inverse is formed.
    """
    rec = check_records(fit, records)
    if fit.ntk:
        a, ka, a_ii = _record_terms(fit, rec)
        g = np.einsum("np,np->p", a, ka)
        return self_lood_from_parts(a_ii, fit.alpha[rec], fit.Y[rec], fit.noise, g, auc, n_quad)
    cols = fit.rows_A(rec).T  # [N, P]: A e_i
    a_rr = cols[rec, np.arange(rec.size)]
    one_minus_p = 1.0 - fit.noise * a_rr  # (A K)_ii, also u = (A k_{x_i})_i
    one_minus_p[fit.k_diag[rec] == 0] = 0.0  # a zero kernel row: exactly, not up to rounding
    _check_self_variance(fit, rec, cols, one_minus_p)
    mean_in = fit.Y[rec] - fit.noise * fit.alpha[rec]
    var_in = fit.noise * one_minus_p
    return _loo_from_parts(mean_in, var_in, one_minus_p, fit.alpha[rec], a_rr, auc, n_quad)


def _check_self_variance(
    fit: GPFit, rec: np.ndarray, cols: np.ndarray | None, one_minus_p: Any
) -> None:
    """Raise ``FloatingPointError`` naming the NNGP records whose ``var_in = s2 (1 - s2 A_ii)`` is
    not positive, or (given the computed columns ``cols = A e_i`` [N, P]) whose estimated
    relative error exceeds :data:`SELF_VAR_RTOL`.

    The estimate is a posteriori: with the residual ``r = (K + s2 I) x - e_i`` of the computed
    column ``x``, the error of ``A_ii`` is ``x^T r`` to first order, bounded by ``|x|^T |r|``;
    ``var_in`` inherits it times ``s2 / (1 - s2 A_ii)``. Against 50-digit references this bound is
    0.6-4x the true error; it is large only when ``s2`` is tiny *and* the kernel is (nearly)
    singular, e.g. duplicated records.
    """
    s2 = fit.noise
    omp = np.asarray(one_minus_p, dtype=np.float64)
    rel = np.zeros_like(omp)
    if cols is not None and rec.size:
        resid = fit.K @ cols + s2 * cols
        resid[rec, np.arange(rec.size)] -= 1.0
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            rel = s2 * np.einsum("np,np->p", np.abs(cols), np.abs(resid)) / omp
    bad = ~(np.isfinite(omp) & (omp > 0) & np.isfinite(rel) & (rel <= SELF_VAR_RTOL))
    bad &= fit.k_diag[rec] != 0  # zero prior variance: var_in = 0 exactly, nothing to leak
    if bad.any():
        worst = rel[bad & np.isfinite(rel) & (omp > 0)]
        detail = (
            f"estimated relative error of the posterior variance up to {worst.max():.2g} "
            f"(tolerance {SELF_VAR_RTOL:g})"
            if worst.size
            else "the posterior variance at the record rounds to <= 0"
        )
        raise FloatingPointError(
            f"NNGP LOOD of training record(s) {rec[bad][:10].tolist()}"
            f"{' ...' if bad.sum() > 10 else ''} ({int(bad.sum())} in all) at their own input "
            f"cannot be computed in float64: sigma2 + jitter = {s2:.3g} is too small for this "
            f"kernel (diagonal up to {float(np.max(fit.k_diag)):.3g}; {detail}). Use a larger "
            "nngp.sigma2."
        )


def lood_all(fit: GPFit, auc: bool = True, n_quad: int = 101) -> dict[str, np.ndarray]:
    """LOOD of every training record at its own input, arrays [N].

    NTK-GP: ``A`` (``potri``) plus one N x N product for ``diag(A K A)``. NNGP: O(N) after
    ``diag(A)`` (one triangular inverse, ~N^3/3, on top of the factorisation); the error bound of
    :func:`lood_self` is checked on the :data:`LOOD_ALL_CHECKED` records with the largest ``p / (1
    - p)`` (``p = s2 A_ii``, where cancellation in ``1 - p`` costs most), and a record whose
    ``var_in`` is not positive always raises ``FloatingPointError`` naming it.
    """
    s2 = fit.noise
    if fit.ntk:
        A = fit.A
        g = np.einsum("ji,ji->i", fit.K @ A, A)  # diag(A K A), A and K symmetric
        return self_lood_from_parts(np.diagonal(A).copy(), fit.alpha, fit.Y, s2, g, auc, n_quad)
    a_ii = fit.diag_A()
    one_minus_p = 1.0 - s2 * a_ii
    one_minus_p[fit.k_diag == 0] = 0.0  # a zero kernel row: exactly, not up to rounding
    _check_self_variance(fit, np.arange(fit.n), None, one_minus_p)
    with np.errstate(divide="ignore"):
        risk = s2 * a_ii / one_minus_p
    worst = np.sort(np.argsort(-risk, kind="stable")[:LOOD_ALL_CHECKED])
    _check_self_variance(fit, worst, fit.rows_A(worst).T, one_minus_p[worst])
    mean_in = fit.Y - s2 * fit.alpha
    var_in = s2 * one_minus_p
    return _loo_from_parts(mean_in, var_in, one_minus_p, fit.alpha, a_ii, auc, n_quad)

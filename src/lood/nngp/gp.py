"""NNGP estimate of leave-one-out distinguishability (LOOD).

The infinite-width limit of the fully connected network in :mod:`lood.arch` is a Gaussian process
with the NNGP kernel ``K``. With noise ``sigma2`` the GP posterior given the training set ``D`` and
given ``D`` without record ``i`` are two Gaussians per query; LOOD compares them (KL divergence,
squared distance of means, AUC of the optimal likelihood-ratio test).

Only one Cholesky factorisation of ``K_DD + sigma2 I`` is ever computed. Removing record ``i`` is a
rank-one downdate of the inverse ``A`` (block inverse / Schur complement)::

    A_{-i} = A - A e_i e_i^T A / A_ii          (restricted to D \\ {i}; row/column i become 0)
    mean_out(q) = mean_in(q) - u_i alpha_i / A_ii,   u = A k_q, alpha = A Y
    var_out(q)  = var_in(q) + u_i^2 / A_ii
    cov_out(Q)  = cov_in(Q) + u_i u_i^T / A_ii       (u_i = row i of A K_DQ)

so each record costs O(N M) after the factorisation instead of another O(N^3) solve.

Variances are those of the latent function (no observation noise added), shared across the C
output classes because every class uses the same kernel.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg
from scipy import special, stats

# The Gaussian KL family lives in lood.stats; kl_gaussians and kl_isotropic are re-exported here.
from lood.stats import kl_gaussians, kl_isotropic, x_minus_log1p  # noqa: F401

#: Largest estimated relative error of a record's posterior variance at its own input that
#: :func:`lood_self` / :func:`lood_all` accept (see ``_check_self_variance``).
SELF_VAR_RTOL = 1e-3
#: Records of :func:`lood_all` whose error bound is checked (those with the largest s2 A_ii).
LOOD_ALL_CHECKED = 64

#: Relative jitters tried (times mean(diag K_DD)) when the Cholesky factorisation fails.
JITTER_SCHEDULE: tuple[float, ...] = (1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4)


# Above this non-centrality of the wider chi-square the LR statistic is linear to within ~1e-5
# in AUC and boost's series for ncx2 start to lose accuracy; use the equal-variance limit there.
_NC_LINEAR = 1e9


# Half-width of the standard-normal grid of the AUC quadrature (Phi(-8.5) ~ 1e-17).
_T_MAX = 8.5


# Elements per chunk in the vectorised AUC quadrature (bounds temporary memory to ~100 MB).
_AUC_CHUNK = 2_000_000


def centred_one_hot(y: Any, n_classes: int) -> np.ndarray:
    """One-hot labels minus ``1/C`` (float64) [n, C]: the GP regression targets of the original tool."""
    ya = np.asarray(y)
    if ya.ndim != 1:
        raise ValueError(f"y must be 1-D, got shape {ya.shape}")
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    if not np.issubdtype(ya.dtype, np.integer):
        if not np.all(ya == np.round(ya)):
            raise ValueError("y must hold integer class labels")
        ya = ya.astype(np.int64)
    if ya.size and (ya.min() < 0 or ya.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}), got range [{ya.min()}, {ya.max()}]")
    out = np.full((ya.shape[0], n_classes), -1.0 / n_classes, dtype=np.float64)
    out[np.arange(ya.shape[0]), ya] += 1.0
    return out


# --------------------------------------------------------------------------------------------
# GP fit
# --------------------------------------------------------------------------------------------
@dataclass
class GPFit:
    """One Cholesky factorisation of ``K_DD + (sigma2 + jitter) I`` and what LOOD needs from it.

    ``A`` (the full inverse) is formed on first access from the factor (LAPACK ``potri``) and
    cached; the per-record paths only need rows of ``A`` and solve for those, which keeps a
    handful of records at one factorisation plus O(P N^2).
    """

    chol: np.ndarray  # lower Cholesky factor L (upper triangle is not meaningful)
    alpha: np.ndarray  # A @ Y [N, C]
    Y: np.ndarray  # regression targets [N, C]
    sigma2: float
    jitter: float  # absolute jitter added to the diagonal on top of sigma2 (0 if none)
    k_diag: np.ndarray  # diag(K_DD) [N]
    _A: np.ndarray | None = field(default=None, repr=False)
    _diag_A: np.ndarray | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return int(self.chol.shape[0])

    @property
    def n_classes(self) -> int:
        return int(self.alpha.shape[1])

    @property
    def noise(self) -> float:
        """Effective diagonal noise ``sigma2 + jitter`` actually used in the factorisation."""
        return float(self.sigma2 + self.jitter)

    @property
    def A(self) -> np.ndarray:
        """``(K_DD + noise I)^-1`` [N, N], computed once from the Cholesky factor."""
        if self._A is None:
            inv, info = scipy.linalg.lapack.dpotri(self.chol, lower=1)
            if info != 0:
                raise np.linalg.LinAlgError(f"potri failed with info={info}")
            self._A = np.tril(inv) + np.tril(inv, -1).T
        return self._A

    def diag_A(self) -> np.ndarray:
        """``diag(A)`` [N] as squared column norms of ``L^-1`` (cheaper than the full inverse)."""
        if self._diag_A is None:
            if self._A is not None:
                self._diag_A = np.diagonal(self._A).copy()
            else:
                linv, info = scipy.linalg.lapack.dtrtri(self.chol, lower=1)
                if info != 0:
                    raise np.linalg.LinAlgError(f"trtri failed with info={info}")
                self._diag_A = np.einsum("ij,ij->j", np.tril(linv), np.tril(linv))
        return self._diag_A

    def rows_A(self, idx: np.ndarray) -> np.ndarray:
        """Rows ``A[idx, :]`` [P, N]; sliced from the cached inverse or by P solves."""
        if self._A is not None:
            return self._A[idx]
        e = np.zeros((self.n, len(idx)), dtype=np.float64)
        e[idx, np.arange(len(idx))] = 1.0
        return scipy.linalg.cho_solve((self.chol, True), e, check_finite=False).T

    def solve(self, b: np.ndarray) -> np.ndarray:
        """``A @ b`` by two triangular solves."""
        return scipy.linalg.cho_solve((self.chol, True), b, check_finite=False)


def _cholesky_with_jitter(
    mat: np.ndarray, scale: float, what: str, hint: str
) -> tuple[np.ndarray, float]:
    """Lower Cholesky factor of ``mat``, retrying with ``eps * scale`` added to the diagonal."""
    try:
        c, _ = scipy.linalg.cho_factor(mat, lower=True, check_finite=False)
        return c, 0.0
    except np.linalg.LinAlgError:
        pass
    for eps in JITTER_SCHEDULE:
        jitter = eps * scale
        shifted = mat.copy()
        shifted[np.diag_indices_from(shifted)] += jitter
        try:
            c, _ = scipy.linalg.cho_factor(shifted, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            continue
        warnings.warn(
            f"Cholesky of {what} failed; added jitter {jitter:.3g} (= {eps:g} * mean diagonal) "
            "to the diagonal",
            RuntimeWarning,
            stacklevel=3,
        )
        return c, jitter
    raise np.linalg.LinAlgError(
        f"Cholesky of {what} failed even with jitter {JITTER_SCHEDULE[-1]:g} * mean diagonal; "
        f"{hint}"
    )


def fit_gp(K_DD: Any, Y: Any, sigma2: float) -> GPFit:
    """Factorise ``K_DD + sigma2 I`` once (Cholesky, with a jitter fallback) and solve for ``Y``.

    ``Y`` is [N, C] (e.g. :func:`centred_one_hot`) or [N]. Everything downstream (posterior, LOO
    downdates, LOOD) reuses this single O(N^3) factorisation.
    """
    sigma2 = float(sigma2)
    if not np.isfinite(sigma2) or sigma2 <= 0:
        raise ValueError(f"sigma2 (nngp.sigma2) must be > 0, got {sigma2}")
    K = np.asarray(K_DD, dtype=np.float64)
    if K.ndim != 2 or K.shape[0] != K.shape[1] or K.shape[0] == 0:
        raise ValueError(f"K_DD must be a non-empty square matrix, got shape {K.shape}")
    if not np.all(np.isfinite(K)):
        raise ValueError("K_DD contains non-finite values")
    Ya = np.asarray(Y, dtype=np.float64)
    if Ya.ndim == 1:
        Ya = Ya[:, None]
    if Ya.ndim != 2 or Ya.shape[0] != K.shape[0]:
        raise ValueError(
            f"Y must be [N, C] with N = {K.shape[0]} (K_DD rows), got shape {Ya.shape}"
        )
    n = K.shape[0]
    k_diag = np.diagonal(K).copy()
    mat = K + sigma2 * np.eye(n)
    scale = float(np.mean(np.abs(k_diag)))
    if scale == 0.0:
        scale = sigma2
    chol, jitter = _cholesky_with_jitter(
        mat, scale, "K_DD + sigma2 I", "increase nngp.sigma2 (or check that the kernel is PSD)"
    )
    alpha = scipy.linalg.cho_solve((chol, True), Ya, check_finite=False)
    return GPFit(chol=chol, alpha=alpha, Y=Ya, sigma2=sigma2, jitter=jitter, k_diag=k_diag)


def _check_queries(fit: GPFit, K_DQ: Any, kqq: Any) -> tuple[np.ndarray, np.ndarray]:
    kdq = np.asarray(K_DQ, dtype=np.float64)
    if kdq.ndim == 1:
        kdq = kdq[:, None]
    if kdq.ndim != 2 or kdq.shape[0] != fit.n:
        raise ValueError(f"K_DQ must be [N, M] with N = {fit.n}, got shape {kdq.shape}")
    kq = np.atleast_1d(np.asarray(kqq, dtype=np.float64))
    if kq.shape != (kdq.shape[1],):
        raise ValueError(f"kqq must be [M] with M = {kdq.shape[1]} (K_DQ columns), got {kq.shape}")
    return kdq, kq


def _check_records(fit: GPFit, records: Any) -> np.ndarray:
    rec = np.atleast_1d(np.asarray(records))
    if rec.ndim != 1:
        raise ValueError(f"records must be a 1-D array of indices, got shape {rec.shape}")
    if rec.size and not np.issubdtype(rec.dtype, np.integer):
        raise ValueError(f"records must be integer indices into D, got dtype {rec.dtype}")
    rec = rec.astype(np.int64)
    bad = rec[(rec < 0) | (rec >= fit.n)]
    if bad.size:
        raise ValueError(f"record index {int(bad[0])} is out of range for N = {fit.n} records")
    return rec


def posterior(fit: GPFit, K_DQ: Any, kqq: Any) -> tuple[np.ndarray, np.ndarray]:
    """GP posterior given all of D at M queries: mean [M, C] and latent variance [M].

    ``K_DQ`` is [N, M] and ``kqq`` = diag(K_QQ) [M]. The variance is shared by all classes.
    """
    kdq, kq = _check_queries(fit, K_DQ, kqq)
    mean = kdq.T @ fit.alpha
    var = kq - np.einsum("nm,nm->m", kdq, fit.solve(kdq))
    return mean, np.maximum(var, 0.0)


# --------------------------------------------------------------------------------------------
# Divergences
# --------------------------------------------------------------------------------------------
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
# Leave-one-out by rank-one downdate
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
    """Downdate formulas. mean_in [..., C], var_in [...], u [...] (= (A k_q)_i), alpha_r [..., C]."""
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


def loo_pointwise(
    fit: GPFit,
    K_DQ: Any,
    kqq: Any,
    records: Any,
    auc: bool = True,
    n_quad: int = 201,
) -> dict[str, np.ndarray]:
    """Pointwise LOOD of each record (rows) at each query (columns), by rank-one downdate.

    Returns ``mean_in``/``mean_out`` [P, M, C], ``var_in``/``var_out``/``kl``/``mean_dist``/``auc``
    [P, M]; "in" = posterior given D (which contains the record), "out" = given D minus record i.
    ``kl`` is KL(out || in) summed over classes, ``mean_dist`` = ||mean_in - mean_out||^2.
    """
    kdq, kq = _check_queries(fit, K_DQ, kqq)
    rec = _check_records(fit, records)
    mean_q, var_q = posterior(fit, kdq, kq)
    rows = fit.rows_A(rec)  # [P, N]
    u = rows @ kdq  # [P, M]: (A k_q)_i
    a_rr = rows[np.arange(rec.size), rec][:, None]
    p, m = rec.size, kdq.shape[1]
    mean_in = np.broadcast_to(mean_q, (p, m, fit.n_classes)).copy()
    var_in = np.broadcast_to(var_q, (p, m)).copy()
    alpha_r = np.broadcast_to(fit.alpha[rec][:, None, :], (p, m, fit.n_classes))
    return _loo_from_parts(mean_in, var_in, u, alpha_r, a_rr, auc, n_quad)


def loo_query_set(fit: GPFit, K_DQ: Any, K_QQ: Any, records: Any) -> dict[str, np.ndarray]:
    """Joint LOOD over a query set (full M x M posterior covariance) for each record: kl, mean_dist [P].

    With ``S`` the posterior covariance given D and ``u`` row i of ``A K_DQ``: ``S_out = S + u u^T
    / A_ii`` and ``mu_in - mu_out = u alpha_i^T / A_ii``, so with ``w = u^T S^-1 u / A_ii`` the KL
    summed over classes is ``C/2 (w - log(1 + w)) + ||alpha_i||^2 u^T S^-1 u / (2 A_ii^2)``.
    """
    kqq_full = np.asarray(K_QQ, dtype=np.float64)
    if kqq_full.ndim != 2 or kqq_full.shape[0] != kqq_full.shape[1]:
        raise ValueError(f"K_QQ must be a square matrix [M, M], got shape {kqq_full.shape}")
    kdq, _ = _check_queries(fit, K_DQ, np.diagonal(kqq_full))
    rec = _check_records(fit, records)
    cov = kqq_full - kdq.T @ fit.solve(kdq)
    cov = 0.5 * (cov + cov.T)
    scale = float(np.mean(np.abs(np.diagonal(cov)))) or 1.0
    chol, _ = _cholesky_with_jitter(
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


def lood_self(
    fit: GPFit, K_DD: Any, records: Any, auc: bool = True, n_quad: int = 201
) -> dict[str, np.ndarray]:
    """LOOD of each record at its own input (query = the record): arrays [P] (means [P, C]).

    Uses the closed forms of :func:`lood_all` (``var_in = s2 (1 - s2 A_ii)``, ``mean_in = y_i -
    s2 alpha_i``) instead of ``K_ii - k_i^T A k_i``, which cancels catastrophically when ``s2`` is
    small against ``K_ii`` (relative error ~1e-4 at ``s2 / K_ii = 1e-12``, all of it at 1e-16).
    Costs O(P N^2) after the factorisation (P solves ``A e_i`` and their residuals against
    ``K_DD``, which bound the error: a record whose ``var_in`` cannot be computed to
    :data:`SELF_VAR_RTOL` raises a ``FloatingPointError`` naming it); no full inverse is formed.
    """
    K = np.asarray(K_DD, dtype=np.float64)
    if K.shape != (fit.n, fit.n):
        raise ValueError(f"K_DD must be [{fit.n}, {fit.n}], got shape {K.shape}")
    rec = _check_records(fit, records)
    if not np.allclose(np.diagonal(K)[rec], fit.k_diag[rec], rtol=1e-12, atol=0.0):
        raise ValueError("K_DD is not the kernel that fit_gp factorised (diagonals differ)")
    cols = fit.rows_A(rec).T  # [N, P]: A e_i
    a_rr = cols[rec, np.arange(rec.size)]
    one_minus_p = 1.0 - fit.noise * a_rr  # (A K)_ii, also u = (A k_{x_i})_i
    one_minus_p[fit.k_diag[rec] == 0] = 0.0  # a zero kernel row: exactly, not up to rounding
    _check_self_variance(fit, K, rec, cols, one_minus_p)
    mean_in = fit.Y[rec] - fit.noise * fit.alpha[rec]
    var_in = fit.noise * one_minus_p
    return _loo_from_parts(mean_in, var_in, one_minus_p, fit.alpha[rec], a_rr, auc, n_quad)


def _check_self_variance(
    fit: GPFit, K: np.ndarray | None, rec: np.ndarray, cols: np.ndarray | None, one_minus_p: Any
) -> None:
    """Raise ``FloatingPointError`` naming the records whose ``var_in = s2 (1 - s2 A_ii)`` is not
    positive, or (given ``K`` and the computed columns ``cols = A e_i`` [N, P]) whose estimated
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
    if K is not None and cols is not None and rec.size:
        resid = K @ cols + s2 * cols
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


def lood_all(
    fit: GPFit, K_DD: Any | None = None, auc: bool = True, n_quad: int = 101
) -> dict[str, np.ndarray]:
    """LOOD of every training record at its own input, arrays [N], in O(N) after ``diag(A)``.

    Closed forms at ``q = x_i`` (``s2`` = effective noise, ``p = s2 A_ii``): ``mean_in = y_i - s2
    alpha_i``, ``var_in = s2 (1 - p)``, ``u_i = 1 - p``, hence ``var_out = s2 (1 - p) / p``.
    ``diag(A)`` costs one triangular inverse (~N^3/3) on top of the factorisation. With ``K_DD``
    the error bound of :func:`lood_self` is checked on the :data:`LOOD_ALL_CHECKED` records with
    the largest ``p / (1 - p)`` (where cancellation in ``1 - p`` costs most); a record whose
    ``var_in`` is not positive always raises ``FloatingPointError`` naming it.
    """
    if K_DD is not None and np.shape(K_DD) != (fit.n, fit.n):
        raise ValueError(f"K_DD must be [{fit.n}, {fit.n}], got shape {np.shape(K_DD)}")
    s2 = fit.noise
    a_ii = fit.diag_A()
    y = fit.Y
    one_minus_p = 1.0 - s2 * a_ii
    one_minus_p[fit.k_diag == 0] = 0.0  # a zero kernel row: exactly, not up to rounding
    everyone = np.arange(fit.n)
    _check_self_variance(fit, None, everyone, None, one_minus_p)
    if K_DD is not None:
        with np.errstate(divide="ignore"):
            risk = s2 * a_ii / one_minus_p
        worst = np.sort(np.argsort(-risk, kind="stable")[:LOOD_ALL_CHECKED])
        K = np.asarray(K_DD, dtype=np.float64)
        _check_self_variance(fit, K, worst, fit.rows_A(worst).T, one_minus_p[worst])
    mean_in = y - s2 * fit.alpha
    var_in = s2 * one_minus_p
    return _loo_from_parts(mean_in, var_in, one_minus_p, fit.alpha, a_ii, auc, n_quad)

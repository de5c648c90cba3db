"""GP estimate of leave-one-out distinguishability (LOOD), under the NNGP or the NTK.

One code path serves both kernels, as neural-tangents' ``get="nngp"`` / ``get="ntk"`` do. A fit
holds the prior covariance ``K`` (the NNGP kernel) and the operator that maps targets to output
means, ``mean(q) = Theta_qD A Y`` with ``A = (Theta_DD + s I)^-1`` and ``s = sigma2``:

* NNGP (``Theta = K``): the Bayesian GP posterior given ``D`` with noise ``s``;
* NTK-GP (``Theta`` the NTK): an infinitely wide network trained to convergence by gradient
  descent on the MSE (neural-tangents' ``gradient_descent_mse_ensemble(..., t=None,
  get="ntk")``), whose outputs over the random initialisation have, with ``u(q) = A Theta_Dq``,
  ``cov(q, q') = K_qq' + u^T K_DD u' - u^T K_Dq' - K_qD u'``.

Both are ``cov = K_qq' + u^T C u' - u^T K_Dq' - K_qD u'`` with ``C = K_DD + s I`` (NNGP, noisy
targets, giving ``K_qq' - K_qD A K_Dq'``) or ``C = K_DD`` (NTK-GP); the functions below branch on
the kernel only where the closed forms differ. LOOD compares the output Gaussians given ``D`` and
given ``D`` without record ``i`` (KL divergence summed over classes, squared distance of means, AUC
of the optimal likelihood-ratio test).

The leave-one-out downdates, the LOOD of one record or of all and the AUC of two Gaussians are
in :mod:`lood.nngp.loo`.

Variances are those of the latent function (no observation noise added), shared across the C
output classes because every class uses the same kernel. The NTK-GP's ``s`` is absolute:
neural-tangents' default ``diag_reg_absolute_scale=False`` multiplies ``diag_reg`` by
``trace(Theta_DD) / N``, which changes when a record is removed; convert once with
:func:`absolute_diag_reg` and keep ``s`` fixed for D and D \\ {i}. The kernels come from
:mod:`lood.nngp.kernel` (neural-tangents, jax); this module is numpy only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg

#: Relative jitters tried (times mean(diag K_DD)) when the Cholesky factorisation fails.
JITTER_SCHEDULE: tuple[float, ...] = (1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4)


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
    """One Cholesky factorisation of ``Theta_DD + (sigma2 + jitter) I`` and what LOOD needs from it.

    ``K`` is the prior covariance (the NNGP kernel ``K_DD``), ``theta`` the NTK ``Theta_DD`` of an
    NTK-GP or ``None`` for the NNGP (``Theta = K``). ``A`` (the full inverse) is formed on first
    access from the factor (LAPACK ``potri``) and cached; the per-record paths only need rows of
    ``A`` and solve for those, which keeps a handful of records at one factorisation plus O(P N^2).
    """

    chol: np.ndarray  # lower Cholesky factor L of Theta_DD + noise I (upper triangle meaningless)
    alpha: np.ndarray  # A @ Y [N, C]
    Y: np.ndarray  # regression targets [N, C]
    K: np.ndarray  # NNGP kernel K_DD [N, N]: the prior covariance (the covariance at init)
    sigma2: float
    jitter: float  # absolute jitter added to the diagonal on top of sigma2 (0 if none)
    theta: np.ndarray | None = None  # NTK Theta_DD [N, N] of an NTK-GP; None: NNGP (Theta = K)
    _A: np.ndarray | None = field(default=None, repr=False)
    _diag_A: np.ndarray | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return int(self.chol.shape[0])

    @property
    def n_classes(self) -> int:
        return int(self.alpha.shape[1])

    @property
    def ntk(self) -> bool:
        """Whether this is the NTK-GP (else the NNGP posterior)."""
        return self.theta is not None

    @property
    def k_diag(self) -> np.ndarray:
        """``diag(K_DD)`` [N]: the prior variance at each training record."""
        return np.diagonal(self.K)

    @property
    def noise(self) -> float:
        """Effective diagonal noise ``sigma2 + jitter`` actually used in the factorisation."""
        return float(self.sigma2 + self.jitter)

    @property
    def A(self) -> np.ndarray:
        """``(Theta_DD + noise I)^-1`` [N, N], computed once from the Cholesky factor."""
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
        return self.unit_solve(idx).T

    def unit_solve(self, idx: np.ndarray) -> np.ndarray:
        """Columns ``A e_i`` [N, P] for ``i`` in ``idx``, always by P solves."""
        e = np.zeros((self.n, len(idx)), dtype=np.float64)
        e[idx, np.arange(len(idx))] = 1.0
        return self.solve(e)

    def solve(self, b: np.ndarray) -> np.ndarray:
        """``A @ b`` by two triangular solves."""
        return scipy.linalg.cho_solve((self.chol, True), b, check_finite=False)


def absolute_diag_reg(theta_dd: Any, diag_reg: float) -> float:
    """neural-tangents' relative ``diag_reg`` in absolute units: ``diag_reg * trace(Theta_DD) / N``."""
    t = np.asarray(theta_dd, dtype=np.float64)
    return float(diag_reg * np.trace(t) / t.shape[0])


def cholesky_with_jitter(
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


def _square(m: Any, n: int | None, name: str) -> np.ndarray:
    a = np.asarray(m, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] == 0 or n not in (None, a.shape[0]):
        want = "a non-empty square matrix" if n is None else f"[{n}, {n}]"
        raise ValueError(f"{name} must be {want}, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains non-finite values")
    return a


def fit_gp(K_DD: Any, Y: Any, sigma2: float, Theta_DD: Any | None = None) -> GPFit:
    """Factorise ``Theta_DD + sigma2 I`` once and solve for ``Y``: the NNGP without ``Theta_DD``
    (``Theta = K``, with a jitter fallback), else the NTK-GP (absolute ``sigma2``, no jitter).

    ``Y`` is [N, C] (e.g. :func:`centred_one_hot`) or [N]. Everything downstream (posterior, LOO
    downdates, LOOD) reuses this single O(N^3) factorisation.
    """
    sigma2 = float(sigma2)
    if not np.isfinite(sigma2) or sigma2 <= 0:
        raise ValueError(f"sigma2 (nngp.sigma2) must be > 0, got {sigma2}")
    theta = None if Theta_DD is None else _square(Theta_DD, None, "Theta_DD")
    K = _square(K_DD, None if theta is None else theta.shape[0], "K_DD")
    Ya = np.asarray(Y, dtype=np.float64)
    if Ya.ndim == 1:
        Ya = Ya[:, None]
    if Ya.ndim != 2 or Ya.shape[0] != K.shape[0]:
        raise ValueError(
            f"Y must be [N, C] with N = {K.shape[0]} (K_DD rows), got shape {Ya.shape}"
        )
    n = K.shape[0]
    op = K if theta is None else theta
    mat = op + sigma2 * np.eye(n)
    if theta is None:
        scale = float(np.mean(np.abs(np.diagonal(K))))
        if scale == 0.0:
            scale = sigma2
        chol, jitter = cholesky_with_jitter(
            mat, scale, "K_DD + sigma2 I", "increase nngp.sigma2 (or check that the kernel is PSD)"
        )
    else:
        jitter = 0.0
        try:
            chol, _ = scipy.linalg.cho_factor(mat, lower=True, check_finite=False)
        except np.linalg.LinAlgError as err:
            raise np.linalg.LinAlgError(
                "Cholesky of Theta_DD + sigma2 I failed; increase sigma2 or check the NTK is PSD"
            ) from err
    alpha = scipy.linalg.cho_solve((chol, True), Ya, check_finite=False)
    return GPFit(chol=chol, alpha=alpha, Y=Ya, K=K, sigma2=sigma2, jitter=jitter, theta=theta)


def check_queries(
    fit: GPFit, K_DQ: Any, kqq: Any, Theta_DQ: Any | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``K_DQ`` [N, M], ``kqq`` [M] and the operator's cross kernel (``Theta_DQ``, or ``K_DQ``
    for the NNGP) as float64 arrays, checked against the fit."""
    kdq = np.asarray(K_DQ, dtype=np.float64)
    if kdq.ndim == 1:
        kdq = kdq[:, None]
    if kdq.ndim != 2 or kdq.shape[0] != fit.n:
        raise ValueError(f"K_DQ must be [N, M] with N = {fit.n}, got shape {kdq.shape}")
    if fit.ntk != (Theta_DQ is not None):
        raise ValueError(
            "Theta_DQ is needed for an NTK-GP fit and only for one"
            f" (this fit is {'an NTK-GP' if fit.ntk else 'the NNGP'})"
        )
    tdq = kdq
    if Theta_DQ is not None:
        tdq = np.asarray(Theta_DQ, dtype=np.float64)
        tdq = tdq[:, None] if tdq.ndim == 1 else tdq
        if tdq.shape != kdq.shape:
            raise ValueError(
                f"K_DQ and Theta_DQ must both be [N, M] with N = {fit.n}, got {kdq.shape}, "
                f"{tdq.shape}"
            )
    kq = np.atleast_1d(np.asarray(kqq, dtype=np.float64))
    if kq.shape != (kdq.shape[1],):
        raise ValueError(f"kqq must be [M] with M = {kdq.shape[1]} (K_DQ columns), got {kq.shape}")
    return kdq, kq, tdq


def check_records(fit: GPFit, records: Any) -> np.ndarray:
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


def _at_records(
    fit: GPFit, kdq: np.ndarray, kq: np.ndarray, tdq: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Queries that are training records: (query columns m [J], record indices j [J]).

    A query is record j when its kernel column, its prior variance and (NTK-GP) its NTK column
    equal column j of the fit's kernels bitwise, as when they are sliced from ``K_DD``; a kernel
    recomputed at x_j differs by rounding and takes the general form.
    """
    diag = fit.k_diag
    hit_m, hit_n = np.nonzero(((kdq == diag[:, None]) & (kq[None, :] == diag[:, None])).T)
    ms: list[int] = []
    js: list[int] = []
    for m, n in zip(hit_m.tolist(), hit_n.tolist(), strict=True):  # by query, then record
        if ms and ms[-1] == m:
            continue
        if np.array_equal(kdq[:, m], fit.K[:, n]) and (
            not fit.ntk or np.array_equal(tdq[:, m], fit.theta[:, n])  # type: ignore[index]
        ):
            ms.append(m)
            js.append(n)
    return np.asarray(ms, dtype=np.int64), np.asarray(js, dtype=np.int64)


def posterior_parts(
    fit: GPFit, kdq: np.ndarray, kq: np.ndarray, tdq: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Mean [M, C], variance [M], (NTK-GP) the weights ``u = A Theta_DQ`` [N, M], and the queries
    that are training records (:func:`_at_records`) with their columns ``A e_j`` [N, J].

    At a training record the closed forms of the module docstring replace the general ones,
    whose ``k_qq - k^T A k`` cancels when ``s`` is small against ``K_jj``: mean ``y_j - s
    alpha_j``, variance ``s (1 - s A_jj)`` (NNGP) or ``s^2 (A K A)_jj`` (NTK-GP), and ``u = e_j -
    s A e_j``.
    """
    ms, js = _at_records(fit, kdq, kq, tdq)
    cols = fit.unit_solve(js) if js.size else np.zeros((fit.n, 0))
    s = fit.noise
    if not fit.ntk:
        var = kq - np.einsum("nm,nm->m", kdq, fit.solve(kdq))
        mean, u = kdq.T @ fit.alpha, None
        var[ms] = s * (1.0 - s * cols[js, np.arange(js.size)])
    else:
        u = fit.solve(tdq)
        u[:, ms] = -s * cols
        u[js, ms] += 1.0
        var = kq + np.einsum("nm,nm->m", u, fit.K @ u - 2.0 * kdq)
        mean = tdq.T @ fit.alpha
        var[ms] = s**2 * np.einsum("nj,nj->j", cols, fit.K @ cols)
    mean[ms] = fit.Y[js] - s * fit.alpha[js]
    return mean, np.maximum(var, 0.0), u, (ms, js, cols)


def posterior(
    fit: GPFit, K_DQ: Any, kqq: Any, Theta_DQ: Any | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Output distribution given all of D at M queries: mean [M, C] and latent variance [M].

    ``K_DQ`` is [N, M], ``kqq`` = diag(K_QQ) [M], ``Theta_DQ`` [N, M] the NTK (NTK-GP fits only).
    The variance is shared by all classes. A query whose kernel columns are a training record's
    (sliced from ``K_DD``) gets the stable closed form at that record (as :func:`lood_self`).
    """
    kdq, kq, tdq = check_queries(fit, K_DQ, kqq, Theta_DQ)
    mean, var, _, _ = posterior_parts(fit, kdq, kq, tdq)
    return mean, var


def joint_posterior(
    fit: GPFit, K_DQ: Any, K_QQ: Any, Theta_DQ: Any | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Output distribution given all of D at M queries: mean [M, C], covariance [M, M]."""
    kqq = np.atleast_2d(np.asarray(K_QQ, dtype=np.float64))
    if kqq.ndim != 2 or kqq.shape[0] != kqq.shape[1]:
        raise ValueError(f"K_QQ must be a square matrix [M, M], got shape {kqq.shape}")
    kdq, _, tdq = check_queries(fit, K_DQ, np.diagonal(kqq), Theta_DQ)
    if not fit.ntk:
        cov = kqq - kdq.T @ fit.solve(kdq)
        return kdq.T @ fit.alpha, 0.5 * (cov + cov.T)
    u = fit.solve(tdq)
    cross = u.T @ kdq
    cov = kqq + u.T @ (fit.K @ u) - cross - cross.T
    return tdq.T @ fit.alpha, 0.5 * (cov + cov.T)


# --------------------------------------------------------------------------------------------
# Divergences
# --------------------------------------------------------------------------------------------

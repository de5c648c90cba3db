"""Choose the GP noise ``sigma2`` by maximising the log marginal likelihood (the evidence).

The C columns of the centred one-hot targets ``Y`` [N, C] are independent GPs sharing the kernel
``K``, so with ``K = V diag(lam) V^T`` and ``r_n = sum_c (V^T Y)_{nc}^2``::

    log p(Y | sigma2) = -1/2 sum_n r_n / (lam_n + sigma2) - C/2 sum_n log(lam_n + sigma2)
                        - N C / 2 log(2 pi).

One eigendecomposition (O(N^3)), then O(N) per candidate. The search runs over ``log sigma2`` in
``[lower, upper] * mean(diag K)``: a coarse grid first (the evidence can have several local
optima), then a bounded scalar search between the neighbours of the best grid point. The kernel
may already contain a noise-like floor (its smallest eigenvalue), in which case the evidence
keeps rising as sigma2 -> 0 and the result sits at the lower bound (``at_bound``). This is what
happens with the default experiment's relu kernels (smallest eigenvalue of K 0.075 for a mean
diagonal of 2): the chosen value is then the search range's end, not a property of the data.
:func:`amplitude_profile` frees the kernel's scale too (kernel ``c K``, noise ``c rho``, ``c``
in closed form), which asks whether a rescaled kernel would want noise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from lood.io import atomic_path

#: relative search range of ``select_sigma2`` (times mean(diag K)) used by ``nngp.sigma2: auto``
SEARCH_RANGE = (1e-6, 1e2)


@dataclass(frozen=True)
class EvidenceCurve:
    """Eigenvalues of ``K`` and squared projections of ``Y``: the evidence as a function of sigma2."""

    eigvals: np.ndarray  # [N]
    proj2: np.ndarray  # sum over classes of (V^T Y)^2 [N]
    n_classes: int

    def __call__(self, sigma2: Any) -> np.ndarray:
        """Log evidence at each ``sigma2`` (scalar or array); ``-inf`` where K + sigma2 I is not PD."""
        s = np.asarray(sigma2, dtype=np.float64)
        lam = self.eigvals + s[..., None]
        with np.errstate(divide="ignore", invalid="ignore"):
            val = -0.5 * np.sum(self.proj2 / lam, axis=-1) - 0.5 * self.n_classes * np.sum(
                np.log(lam), axis=-1
            )
        val = val - 0.5 * self.eigvals.size * self.n_classes * np.log(2 * np.pi)
        return np.where(np.all(lam > 0, axis=-1), val, -np.inf)


@dataclass(frozen=True)
class EvidenceResult:
    """Outcome of :func:`select_sigma2`."""

    sigma2: float  # chosen noise (absolute units)
    log_evidence: float  # log p(Y | sigma2)
    grid: np.ndarray  # coarse grid searched (absolute units)
    grid_log_evidence: np.ndarray  # log evidence on the grid
    at_bound: bool  # the optimum lies at the lower or upper end of the range


def evidence_curve(K: Any, Y: Any) -> EvidenceCurve:
    """Eigendecompose ``K`` [N, N] once and project ``Y`` [N, C] (or [N]) onto its eigenvectors."""
    k = np.asarray(K, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] == 0:
        raise ValueError(f"K must be a non-empty square matrix, got shape {k.shape}")
    if not np.all(np.isfinite(k)):
        raise ValueError("K contains non-finite values")
    y = np.asarray(Y, dtype=np.float64)
    y = y[:, None] if y.ndim == 1 else y
    if y.ndim != 2 or y.shape[0] != k.shape[0]:
        raise ValueError(f"Y must be [N, C] with N = {k.shape[0]}, got shape {y.shape}")
    lam, vec = np.linalg.eigh(0.5 * (k + k.T))
    return EvidenceCurve(eigvals=lam, proj2=np.sum((vec.T @ y) ** 2, axis=1), n_classes=y.shape[1])


def select_sigma2(
    K: Any, Y: Any, lower: float = 1e-6, upper: float = 1e2, n_grid: int = 41
) -> EvidenceResult:
    """``sigma2`` maximising the log evidence over ``[lower, upper] * mean(diag K)``.

    ``n_grid`` log-spaced candidates, then a bounded Brent search in ``log sigma2`` between the
    best candidate's neighbours; the better of the two is returned, so the result is never below
    any grid point.
    """
    if not (0 < lower < upper) or n_grid < 3:
        raise ValueError(f"need 0 < lower < upper and n_grid >= 3, got {lower}, {upper}, {n_grid}")
    k = np.asarray(K, dtype=np.float64)
    curve = evidence_curve(k, Y)
    scale = float(np.mean(np.diagonal(k)))
    if not scale > 0:
        raise ValueError(f"mean(diag K) must be > 0, got {scale}")
    log_grid = np.linspace(np.log(lower * scale), np.log(upper * scale), n_grid)
    grid_vals = curve(np.exp(log_grid))
    j = int(np.argmax(grid_vals))
    lo, hi = log_grid[max(j - 1, 0)], log_grid[min(j + 1, n_grid - 1)]
    opt = minimize_scalar(
        lambda t: -float(curve(np.exp(t))),
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-8},
    )
    best_log, best_val = log_grid[j], float(grid_vals[j])
    if np.isfinite(opt.fun) and -float(opt.fun) > best_val:
        best_log, best_val = float(opt.x), -float(opt.fun)
    tol = 1e-6 * (log_grid[1] - log_grid[0])
    return EvidenceResult(
        sigma2=float(np.exp(best_log)),
        log_evidence=best_val,
        grid=np.exp(log_grid),
        grid_log_evidence=grid_vals,
        at_bound=bool(best_log - log_grid[0] < tol or log_grid[-1] - best_log < tol),
    )


@dataclass(frozen=True)
class AmplitudeResult:
    """Evidence maximised over the kernel's scale ``c`` too (kernel ``c K``, noise ``c rho``)."""

    rho: float  # noise-to-amplitude ratio (absolute units of K)
    amplitude: float  # c
    log_evidence: float
    at_bound: bool


def amplitude_profile(
    curve: EvidenceCurve,
    scale: float,
    lower: float = SEARCH_RANGE[0],
    upper: float = SEARCH_RANGE[1],
    n_grid: int = 81,
) -> AmplitudeResult:
    """Maximise the evidence of ``c K + c rho I`` over ``c`` (closed form) and ``rho`` (log grid on
    ``[lower, upper] * scale``): ``c(rho) = sum_n r_n / (lam_n + rho) / (N C)`` and the profile
    ``-N C / 2 (1 + log c(rho) + log 2 pi) - C / 2 sum_n log(lam_n + rho)``."""
    rho = np.geomspace(lower * scale, upper * scale, n_grid)
    lam = curve.eigvals[None, :] + rho[:, None]
    nc = curve.eigvals.size * curve.n_classes
    amp = np.sum(curve.proj2 / lam, axis=1) / nc
    prof = -0.5 * nc * (1.0 + np.log(amp) + np.log(2 * np.pi)) - 0.5 * curve.n_classes * np.sum(
        np.log(lam), axis=1
    )
    j = int(np.argmax(prof))
    return AmplitudeResult(float(rho[j]), float(amp[j]), float(prof[j]), j in (0, n_grid - 1))


def choose_sigma2(K: Any, Y: Any, kernel: str) -> dict[str, Any]:
    """``nngp.sigma2: auto``: the evidence-maximising sigma2 of the GP with kernel ``K`` (the NNGP
    kernel, or the NTK for the NTK-GP, whose mean is that GP's posterior mean) over
    :data:`SEARCH_RANGE` times mean(diag K), with what :func:`write_sigma2` stores beside it."""
    res = select_sigma2(K, Y, *SEARCH_RANGE)
    scale = float(np.mean(np.diagonal(np.asarray(K, dtype=np.float64))))
    amp = amplitude_profile(evidence_curve(K, Y), scale)
    return {
        "kernel": kernel,
        "sigma2": res.sigma2,
        "log_evidence": res.log_evidence,
        "at_bound": res.at_bound,
        "search_range": [SEARCH_RANGE[0] * scale, SEARCH_RANGE[1] * scale],
        "mean_diag": scale,
        "grid": res.grid.tolist(),
        "grid_log_evidence": res.grid_log_evidence.tolist(),
        "free_amplitude": {
            "sigma2_over_amplitude": amp.rho,
            "amplitude": amp.amplitude,
            "log_evidence": amp.log_evidence,
            "at_bound": amp.at_bound,
        },
    }


def write_sigma2(record: dict[str, Any], path: str) -> None:
    """Write the chosen sigma2 (and its search) as JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")


def resolve_sigma2(value: float | str, path: str | None = None) -> float:
    """The sigma2 a GP job uses: ``value`` itself, or for ``"auto"`` the one stored at ``path``."""
    if value != "auto":
        return float(value)
    if not path:
        raise ValueError("nngp.sigma2 is auto but no sigma2 file (nngp/sigma2_<kernel>.json) given")
    with open(path) as fh:
        return float(json.load(fh)["sigma2"])

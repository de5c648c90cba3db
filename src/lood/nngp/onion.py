"""The privacy onion (Carlini et al. 2022) with GP LOOD and no refitting.

Layer 0 scores every record of D by its KL LOOD at query = the record; the ``k`` highest are
peeled off, the LOOD of every remaining record is recomputed on the smaller training set, and so
on for ``n_layers`` peels. Records that were safe can become exposed once the most exposed ones
are gone.

One factorisation of ``R = kernel + sigma2 I`` gives ``A = R^-1`` (NNGP: kernel = K; NTK-GP:
kernel = Theta). Removing a set S from the remaining set (R' = remaining \\ S) downdates it by
the block inverse, O(N^2 k) per layer::

    F = A_{R'S} A_SS^-1,   A' = A_{R'R'} - F A_{SR'},   alpha' = alpha_{R'} - F alpha_S.

For the NTK-GP also ``G = A K A``: with ``E = [I, -F]``, ``E A = [A', 0]``, hence
``A' K' A' = E G E^T = G_{R'R'} - F G_{SR'} - G_{R'S} F^T + F G_SS F^T``. The LOOD of each
remaining record then follows from ``diag(A')``, ``alpha'`` (and ``diag(G')``) in closed form:
:func:`lood.nngp.loo.self_lood_from_parts` (the forms of :func:`lood.nngp.loo.lood_all`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg

from lood.nngp.loo import self_lood_from_parts


@dataclass
class OnionResult:
    """Per layer: the records peeled off and the LOOD of every record remaining at that layer."""

    removed: np.ndarray  # [n_layers, k] indices into D, highest KL first
    table: pd.DataFrame  # layer, idx, kl_lood, mean_dist_lood, [auc,] var_in, var_out, removed


def _inverse(mat: np.ndarray) -> np.ndarray:
    chol, info = scipy.linalg.lapack.dpotrf(mat, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError(
            "Cholesky of kernel + sigma2 I failed; increase sigma2 or check the kernel is PSD"
        )
    inv, info = scipy.linalg.lapack.dpotri(chol, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"potri failed with info={info}")
    return np.tril(inv) + np.tril(inv, -1).T


def privacy_onion(
    K_DD: Any,
    Y: Any,
    sigma2: float,
    n_layers: int,
    k: int,
    Theta_DD: Any | None = None,
    auc: bool = False,
    n_quad: int = 101,
) -> OnionResult:
    """Peel the ``k`` records of highest KL LOOD ``n_layers`` times, recomputing LOOD by downdates.

    ``Theta_DD=None``: NNGP LOOD (GP with kernel ``K_DD`` and noise ``sigma2``); otherwise the
    NTK-GP LOOD of :mod:`lood.nngp.gp`. ``Y`` [N, C] are the regression targets. The table has one
    row per (layer, remaining record), layers 0..n_layers; ``removed`` marks the records peeled
    at that layer (none at the last). Ties in KL are broken by the lower index.
    """
    s = float(sigma2)
    if not np.isfinite(s) or s <= 0:
        raise ValueError(f"sigma2 must be > 0, got {sigma2}")
    K = np.asarray(K_DD, dtype=np.float64)
    n = K.shape[0]
    if K.shape != (n, n) or n == 0:
        raise ValueError(f"K_DD must be a non-empty square matrix, got shape {K.shape}")
    y = np.asarray(Y, dtype=np.float64)
    y = y[:, None] if y.ndim == 1 else y
    if y.ndim != 2 or y.shape[0] != n:
        raise ValueError(f"Y must be [N, C] with N = {n}, got shape {y.shape}")
    if n_layers < 0 or k < 1 or n_layers * k >= n:
        raise ValueError(f"need n_layers >= 0, k >= 1 and n_layers * k < N = {n}")
    ntk = Theta_DD is not None
    base = np.asarray(Theta_DD, dtype=np.float64) if ntk else K
    if base.shape != (n, n):
        raise ValueError(f"Theta_DD must be [{n}, {n}], got shape {base.shape}")

    A = _inverse(base + s * np.eye(n))
    alpha = A @ y
    G = A @ K @ A if ntk else None
    idx = np.arange(n)
    removed: list[np.ndarray] = []
    frames: list[pd.DataFrame] = []
    for layer in range(n_layers + 1):
        dA = np.diagonal(A).copy()
        dG = np.diagonal(G).copy() if ntk else None
        res = self_lood_from_parts(dA, alpha, y[idx], s, dG, auc, n_quad)
        order = np.lexsort((idx, -res["kl"]))  # highest KL first, ties by index
        peel = np.sort(order[:k]) if layer < n_layers else np.array([], dtype=np.int64)
        cols = {
            "layer": layer,
            "idx": idx,
            "kl_lood": res["kl"],
            "mean_dist_lood": res["mean_dist"],
        }
        if auc:
            cols["auc"] = res["auc"]
        cols |= {
            "var_in": res["var_in"],
            "var_out": res["var_out"],
            "removed": np.isin(np.arange(idx.size), peel),
        }
        frames.append(pd.DataFrame(cols))
        if layer == n_layers:
            break
        removed.append(idx[order[:k]])
        keep = np.setdiff1d(np.arange(idx.size), peel)
        a_ss = A[np.ix_(peel, peel)]
        cf = scipy.linalg.cho_factor(a_ss, lower=True)
        ft = scipy.linalg.cho_solve(cf, A[np.ix_(peel, keep)])  # F^T [k, R']
        alpha = alpha[keep] - ft.T @ alpha[peel]
        A_new = A[np.ix_(keep, keep)] - A[np.ix_(keep, peel)] @ ft
        if ntk:
            g_sk = G[np.ix_(peel, keep)]
            cross = ft.T @ g_sk
            G = G[np.ix_(keep, keep)] - cross - cross.T + ft.T @ G[np.ix_(peel, peel)] @ ft
            G = 0.5 * (G + G.T)
        A = 0.5 * (A_new + A_new.T)
        idx = idx[keep]
    return OnionResult(
        removed=np.asarray(removed, dtype=np.int64).reshape(n_layers, k),
        table=pd.concat(frames, ignore_index=True),
    )

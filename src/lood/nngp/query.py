"""LOOD of arbitrary queries (differentiable, JAX), LOOD landscapes and query optimisation.

The NNGP posterior given D at a query set Q (M queries) is ``N(K_QD alpha, S)`` per class with
``S = K_QQ - K_QD A K_DQ``, ``A = (K_DD + sigma2 I)^-1`` and ``alpha = A Y`` (Y centred one-hot).
Removing record i is a rank-one downdate (see :mod:`lood.nngp`): with ``u = (A K_DQ)[i]`` [M],

    S_out = S + u u^T / A_ii,        mean_out = mean_in - u alpha_i^T / A_ii,

so, with ``quad = u^T S^-1 u`` and ``w = quad / A_ii``, summed over the C classes

    KL LOOD   = KL(out || in) = C/2 (w - log(1 + w)) + ||alpha_i||^2 quad / (2 A_ii^2)
    mean-dist = ||alpha_i||^2 ||u||^2 / A_ii^2.

Everything is a smooth function of Q through the neural-tangents ``kernel_fn`` of the
architecture, so ``jax.grad`` gives the gradient with respect to the query, which
:func:`optimize_query` ascends with Adam ("reconstruction" of the differing record: the original
tool's ``nt_opt_query.py``). float64 throughout (``lood.nngp`` enables ``jax_enable_x64``).

From a random start the ascent can stall where the LOOD is flat (~1e-8 far from the data, so
300 steps do not reach the record). :func:`data_starts` adds starts at the training records
(other than x) where x's LOOD is highest, found for all N records at once by the rank-one
downdate; :func:`optimize_query` runs every start at once (``jax.vmap``) and keeps the best.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lood.arch import Architecture
from lood.ascent import improves
from lood.nngp.gp import GPFit, centred_one_hot, fit_gp
from lood.nngp.kernel import nngp_diag, nngp_kernel, stax_network
from lood.nngp.loo import loo_pointwise
from lood.nngp.spec import QuerySpec
from lood.stats import x_minus_log1p

INITS = ("random", "record")


# Relative jitter (times the mean posterior variance) on the query-set covariance before its
# Cholesky factorisation, for M > 1 queries that are (nearly) duplicates.
_COV_JITTER = 1e-10


@dataclass(frozen=True)
class LoodObjective:
    """What the LOOD of any query needs, precomputed once: training inputs, ``A``, ``alpha``."""

    arch: Architecture
    x_train: jnp.ndarray  # [N, d] normalised inputs (float64)
    A: jnp.ndarray  # (K_DD + (sigma2 + jitter) I)^-1 [N, N]
    alpha: jnp.ndarray  # A Y [N, C]
    kernel_fn: Callable[..., Any]
    fit: GPFit | None = None  # the factorisation A came from (data starts use its downdates)
    # compiled ascent step (one per objective: the record is an argument, so records share it)
    compiled: dict[str, Callable[..., Any]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_classes(self) -> int:
        return int(self.alpha.shape[1])


def make_objective(
    arch: Architecture, x_train: np.ndarray, K_DD: np.ndarray, y_train: np.ndarray, sigma2: float
) -> LoodObjective:
    """Factorise ``K_DD + sigma2 I`` (:func:`lood.nngp.fit_gp`) and keep what query LOOD needs."""
    fit = fit_gp(K_DD, centred_one_hot(y_train, arch.n_outputs), sigma2)
    return LoodObjective(
        arch=arch,
        x_train=jnp.asarray(np.asarray(x_train, dtype=np.float64)),
        A=jnp.asarray(fit.A),
        alpha=jnp.asarray(fit.alpha),
        kernel_fn=stax_network(arch)[2],
        fit=fit,
    )


def query_lood(obj: LoodObjective, queries: jnp.ndarray, record: int) -> dict[str, jnp.ndarray]:
    """KL LOOD and mean-distance LOOD of record ``record`` at the query set ``queries`` [M, d].

    Joint Gaussian over the M queries (full M x M covariance); traceable by ``jax.grad``/``jit``.
    For M = 1 this is :func:`lood.nngp.loo_pointwise`, for M > 1 :func:`lood.nngp.loo_query_set`.
    """
    q = jnp.atleast_2d(queries)
    kdq = obj.kernel_fn(obj.x_train, q, "nngp")  # [N, M]
    kqq = obj.kernel_fn(q, None, "nngp")  # [M, M]
    akdq = obj.A @ kdq
    cov = kqq - kdq.T @ akdq
    cov = 0.5 * (cov + cov.T)
    m = cov.shape[0]
    cov = cov + _COV_JITTER * jnp.mean(jnp.abs(jnp.diagonal(cov))) * jnp.eye(m)
    u = akdq[record]  # [M]
    a_ii = obj.A[record, record]
    alpha2 = jnp.sum(obj.alpha[record] ** 2)
    z = jax.scipy.linalg.solve_triangular(jnp.linalg.cholesky(cov), u, lower=True)
    quad = jnp.sum(z**2)
    w = quad / a_ii
    # 5 series terms, as this objective has always used (the query outputs stay byte-identical)
    kl = 0.5 * obj.n_classes * x_minus_log1p(w, jnp, terms=5) + 0.5 * alpha2 * quad / a_ii**2
    mean_dist = alpha2 * jnp.sum(u**2) / a_ii**2
    return {"kl": kl, "mean_dist": mean_dist}


# --------------------------------------------------------------------------------------------
# Landscape
# --------------------------------------------------------------------------------------------
def lood_landscape(
    fit: Any, arch: Architecture, x_train: np.ndarray, queries: np.ndarray, record: int
) -> dict[str, np.ndarray]:
    """Pointwise KL / mean-distance LOOD and NNGP AUC [T] of ``record`` at each query [T, d].

    ``fit`` is :func:`lood.nngp.fit_gp` of the training kernel; each query is its own (M = 1)
    query, evaluated by the rank-one downdate of :func:`lood.nngp.loo_pointwise`.
    """
    k_dq = nngp_kernel(arch, x_train, queries)
    kqq = nngp_diag(arch, queries)
    res = loo_pointwise(fit, k_dq, kqq, [int(record)])
    return {"kl": res["kl"][0], "mean_dist": res["mean_dist"][0], "auc": res["auc"][0]}


# --------------------------------------------------------------------------------------------
# Query optimisation
# --------------------------------------------------------------------------------------------
@dataclass
class QueryResult:
    """Outcome of :func:`optimize_query` for one record (the best of its starts)."""

    query: np.ndarray  # best query set found [M, d]
    init: np.ndarray  # initial query set of the start that found it [M, d]
    history: np.ndarray  # that start's KL LOOD before each step and after the last [n_steps + 1]
    best_step: int  # index into history of the returned query
    stopped_early: bool
    start: int = 0  # index of the winning start (0: the ``init`` start, then the data starts)
    start_best: np.ndarray | None = None  # best KL LOOD reached from each start [S]

    @property
    def n_steps(self) -> int:
        """Adam steps taken."""
        return len(self.history) - 1

    @property
    def best(self) -> float:
        return float(self.history[self.best_step])


def initial_query(
    x_train: np.ndarray, record: int, query_size: int, init: str, seed: int
) -> tuple[np.ndarray, int]:
    """Initial query set [M, d] and the baseline record (a random training record != ``record``).

    ``init="random"``: Gaussian noise with the training data's per-feature mean and global std;
    ``"record"``: the baseline record (plus, for M > 1, further distinct random records). The
    baseline record is drawn the same way for both, so it is the reconstruction baseline either way.
    """
    if init not in INITS:
        raise ValueError(f"query.init must be one of {INITS}, got {init!r}")
    x = np.asarray(x_train, dtype=np.float64)
    n = x.shape[0]
    if n < 2:
        raise ValueError("need at least two training records")
    rng = np.random.default_rng(seed)
    others = np.delete(np.arange(n), record)
    picks = rng.choice(others, size=min(query_size, len(others)), replace=False)
    baseline = int(picks[0])
    if init == "record":
        if query_size > len(others):
            raise ValueError(f"query.query_size {query_size} exceeds the other records ({n - 1})")
        return x[picks].copy(), baseline
    noise = rng.standard_normal((query_size, x.shape[1]))
    return x.mean(axis=0) + x.std() * noise, baseline


def data_starts(
    obj: LoodObjective, K_DD: np.ndarray, record: int, n_starts: int, query_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n_starts`` query sets [S, M, d] made of the training records other than ``record`` where
    the record's pointwise KL LOOD is highest (start s holds the candidates ranked s*M .. s*M+M-1),
    and their indices [S, M].

    The LOOD of the record at every other training record as a query is one rank-one downdate
    (:func:`lood.nngp.loo.loo_pointwise`, O(N^2) after the factorisation); it uses nothing the
    objective does not (``A``, ``alpha``, the record's index), and never the record's input.
    """
    if obj.fit is None:
        raise ValueError("data starts need the objective's GP fit (build it with make_objective)")
    x = np.asarray(obj.x_train)
    n = x.shape[0]
    others = np.delete(np.arange(n), record)
    n_starts = min(int(n_starts), len(others) // max(int(query_size), 1))
    if n_starts <= 0:
        return np.empty((0, query_size, x.shape[1])), np.empty((0, query_size), dtype=np.int64)
    K = np.asarray(K_DD, dtype=np.float64)
    kl = loo_pointwise(obj.fit, K[:, others], np.diagonal(K)[others], [record], auc=False)["kl"][0]
    order = others[np.lexsort((others, -kl))]  # highest LOOD first, ties by index
    idx = order[: n_starts * query_size].reshape(n_starts, query_size)
    return x[idx], idx


def ascent_step(obj: LoodObjective) -> Callable[..., Any]:
    """``(queries [S, M, d], record) -> ((log KL [S], KL [S]), gradient [S, M, d])``, jitted once
    per objective and cached on it (the record is traced, so every record reuses the compilation)."""
    if "ascent" not in obj.compiled:

        def objective(q: jnp.ndarray, record: Any) -> tuple[jnp.ndarray, jnp.ndarray]:
            kl = query_lood(obj, q, record)["kl"]
            return jnp.log(kl), kl

        grad_fn = jax.value_and_grad(objective, has_aux=True)
        obj.compiled["ascent"] = jax.jit(jax.vmap(grad_fn, in_axes=(0, None)))
    return obj.compiled["ascent"]


def optimize_query(
    obj: LoodObjective,
    record: int,
    q0: np.ndarray,
    query: QuerySpec,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    log_every: int = 0,
    logger: logging.Logger | None = None,
) -> QueryResult:
    """Gradient ascent on KL LOOD over the query set with Adam; returns the best query found.

    ``q0`` is one start [M, d] or several [S, M, d], ascended at once (``jax.vmap``), each with
    its own Adam moments. Ascends ``log KL`` (same maximisers, gradients well scaled whatever the
    size of KL). Stops after ``n_steps`` or when the best KL over all starts has not improved by a
    relative ``tol`` for ``patience`` consecutive steps. The result is the best query of the best
    start; ``history`` holds that start's KL before each step (and after the last). ``query``
    gives ``lr``, ``n_steps``, ``patience`` and ``tol``.
    """
    lr, n_steps, patience, tol = query.lr, query.n_steps, query.patience, query.tol
    if n_steps < 0 or patience < 1 or lr <= 0:
        raise ValueError(
            f"need n_steps >= 0, patience >= 1, lr > 0 (got {n_steps}, {patience}, {lr})"
        )
    log = logger or logging.getLogger("lood.query")
    q0a = np.asarray(q0, dtype=np.float64)
    single = q0a.ndim <= 2
    starts = np.atleast_2d(q0a)[None] if single else q0a
    if starts.ndim != 3 or starts.shape[0] == 0:
        raise ValueError(f"q0 must be [M, d] or [S, M, d] with S >= 1, got shape {q0a.shape}")

    step_fn = ascent_step(obj)
    q = jnp.asarray(starts)
    m1 = jnp.zeros_like(q)
    m2 = jnp.zeros_like(q)
    b1, b2 = betas
    n_s = starts.shape[0]
    history: list[np.ndarray] = []
    alive = np.ones(n_s, dtype=bool)  # a start whose LOOD or gradient turns non-finite stops
    start_best = np.full(n_s, -np.inf)
    best_q = np.array(starts)
    best_at = np.zeros(n_s, dtype=np.int64)
    best, since = -math.inf, 0
    stopped = False
    for step in range(n_steps + 1):
        (_, kl), grad = step_fn(q, record)
        kl_val = np.asarray(kl, dtype=np.float64)
        finite = np.isfinite(kl_val) & np.asarray(jnp.all(jnp.isfinite(grad), axis=(1, 2)))
        if np.any(alive & ~finite):
            log.warning(
                "record %d: non-finite LOOD or gradient at step %d from start(s) %s; stopping them",
                record,
                step,
                np.flatnonzero(alive & ~finite).tolist(),
            )
            alive &= finite
        if not alive.any():
            stopped = True
            break
        kl_val = np.where(alive, kl_val, np.nan)
        history.append(kl_val)
        better = alive & (kl_val > start_best)
        best_q[better] = np.asarray(q)[better]
        best_at[better] = step
        start_best = np.where(better, kl_val, start_best)
        top = float(start_best.max())
        if improves(top, best, tol):
            best, since = top, 0
        else:
            since += 1
        if log_every and step % log_every == 0:
            log.info(
                "record %d step %d: KL LOOD %.6g (best %.6g)",
                record,
                step,
                float(np.nanmax(kl_val)),
                best,
            )
        if step == n_steps:
            break
        if since >= patience:
            stopped = True
            break
        live = jnp.asarray(alive)[:, None, None]
        grad = jnp.where(live, grad, 0.0)
        m1 = b1 * m1 + (1 - b1) * grad
        m2 = b2 * m2 + (1 - b2) * grad**2
        t = step + 1
        q = q + jnp.where(live, lr * (m1 / (1 - b1**t)) / (jnp.sqrt(m2 / (1 - b2**t)) + eps), 0.0)
    if not history:
        raise FloatingPointError(
            f"record {record}: KL LOOD or its gradient is non-finite at every start"
        )
    win = int(np.argmax(start_best))
    traj = np.array([h[win] for h in history], dtype=np.float64)
    traj = traj[: np.argmax(np.isnan(traj))] if np.isnan(traj).any() else traj  # until it died
    return QueryResult(
        query=best_q[win],
        init=starts[win],
        history=traj,
        best_step=int(best_at[win]),
        stopped_early=stopped,
        start=win,
        start_best=start_best,
    )


# --------------------------------------------------------------------------------------------
# Reconstruction quality
# --------------------------------------------------------------------------------------------
def kernel_cosine(arch: Architecture, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """NNGP-kernel cosine ``K(a, b) / sqrt(K(a, a) K(b, b))`` of each row of ``a`` with ``b`` [d]."""
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    kab = nngp_kernel(arch, a, b)[:, 0]
    return kab / np.sqrt(nngp_diag(arch, a) * nngp_diag(arch, b)[0])


def pixel_l2(
    unnormalize: Callable[[np.ndarray], np.ndarray], a: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """Euclidean distance in raw input (pixel) units between each row of ``a`` and ``b`` [d]."""
    ra = np.asarray(unnormalize(np.atleast_2d(a)), dtype=np.float64)
    rb = np.asarray(unnormalize(np.atleast_2d(b)), dtype=np.float64)
    return np.linalg.norm(ra - rb, axis=1)


def reconstruction_row(
    obj: LoodObjective,
    res: QueryResult,
    record: int,
    baseline: int,
    unnormalize: Callable[[np.ndarray], np.ndarray],
    start_records: np.ndarray | None = None,
    init: str = "random",
) -> dict[str, float | int | str]:
    """One row of reconstruction.csv: LOOD gap and similarity of the optimised query to the record.

    For a query set (M > 1) the similarity of its best query (highest kernel cosine, smallest L2)
    is reported. The baseline is a random other training record compared with the record.
    ``start_records`` [S - 1, M] are the training records of the data starts (start 0 is the
    ``init`` start): ``start`` says which kind of start won, ``start_record`` its (first) record.
    """
    x = np.asarray(obj.x_train)
    at_record = float(query_lood(obj, jnp.asarray(x[record : record + 1]), record)["kl"])
    base = x[baseline : baseline + 1]
    data = res.start > 0 and start_records is not None
    return {
        "differ_idx": int(record),
        "baseline_idx": int(baseline),
        "lood_at_record": at_record,
        "lood_init": float(res.history[0]),
        "lood_optimized": res.best,
        "gap": res.best - at_record,
        "kernel_cosine": float(np.max(kernel_cosine(obj.arch, res.query, x[record]))),
        "pixel_l2": float(np.min(pixel_l2(unnormalize, res.query, x[record]))),
        "baseline_kernel_cosine": float(kernel_cosine(obj.arch, base, x[record])[0]),
        "baseline_pixel_l2": float(pixel_l2(unnormalize, base, x[record])[0]),
        "n_steps": res.n_steps,
        "best_step": res.best_step,
        "ratio": res.best / at_record if at_record > 0 else 0.0,
        "start": "data" if data else init,
        "start_record": int(start_records[res.start - 1][0]) if data else -1,
        "n_starts": 1 if res.start_best is None else len(res.start_best),
    }

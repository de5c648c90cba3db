"""Membership-inference attacks on retrained models (LiRA online/offline, RMIA), leave-one-out.

:mod:`lood.privacy.mia.retrained` measures how distinguishable the in- and out-model scores of one record
are with a Gaussian test fitted on half of the models. This module adds the attacks of the literature
(:mod:`lood.privacy.mia.evaluation` evaluates them per record and pooled over records), so that LOOD can be compared with what a real
attacker achieves:

* LiRA (Carlini et al., S&P 2022) on the logit-scaled confidence :func:`lira_score`, online (in and
  out reference models) and offline (out reference models only);
* RMIA (Zarifzadeh et al., ICML 2024) on the probability of the true label, comparing the target
  record with population (test) records.

Array layout, as the workflow stores it (``C`` classes, logits):

* in models: ``in_outputs`` [K_in, P, C] on the P differing records;
* out models: ``out_outputs`` [P, K_out, C], record i's out models (trained on D minus record i) on
  record i; or [P, K_out, P, C], record j's out models on every differing record i (a stack of the
  ``out_<shard>.npz`` files in record order), which also gives the free in models (below);
* ``labels`` [P];
* population records (never in any training set): ``in_test`` [K_in, M, C] and ``out_test``
  [P, K_out, M, C] (record i's out models on them), ``test_labels`` [M].

Evaluation protocol. For record i the target models are its K_in in models (members, positives)
and its K_out out models (non-members, negatives). Every target is attacked with reference
statistics fitted on all the other models of the record and never on itself (leave-one-out: the
scored model is dropped from the pool it belongs to, in or out). Leave-one-out uses every model but
one for the reference, is deterministic, and is computed in closed form (Gaussian moments by
downdating, mean probabilities by prefix/suffix log-sum-exp), so no loop over targets is needed.
The price is that targets are scored against slightly different references (each differs by one
model), so the statistics are not exchangeable and the Mann-Whitney p-values are approximate.

Free in models. An out model of record j != i was trained on D minus record j, which contains
record i: for record i it is an in model that is never a target. ``free_in=True`` adds the
(P - 1) K_out out models of the other records to the in pool of every record (LiRA online's in
Gaussian; RMIA online's P_in(x) and the reference models of the population records).
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import special, stats

from lood.privacy.metrics import check_pools, roc_auc

Variance = Literal["per_record", "global"] | float


# ------------------------------------------------------------------ attacks on a given reference


def _sigma_floor(sigma: np.ndarray, mean: np.ndarray) -> np.ndarray:
    # Guards a zero-variance pool only (all reference scores equal); 1e-12 of the score scale.
    return np.maximum(sigma, 1e-12 * np.maximum(1.0, np.abs(mean)))


def _fit(ref: npt.ArrayLike, std: float | None) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(ref, dtype=np.float64)
    mean = ref.mean(axis=-1)
    sigma = ref.std(axis=-1, ddof=1) if std is None else np.full_like(mean, float(std))
    return mean, _sigma_floor(sigma, mean)


def lira_online(
    target: npt.ArrayLike,
    in_ref: npt.ArrayLike,
    out_ref: npt.ArrayLike,
    std: float | None = None,
) -> np.ndarray:
    """LiRA online: log N(s; mu_in, sd_in) - log N(s; mu_out, sd_out), larger = more likely in.

    The Gaussians are fitted to reference scores of models trained with (``in_ref`` [..., K_in])
    and without (``out_ref`` [..., K_out]) the record; ``target`` [...] holds the scores of the
    attacked models. ``std``: one fixed standard deviation for both Gaussians (LiRA's fixed
    variance) instead of the references' sample standard deviations (ddof 1).
    """
    s = np.asarray(target, dtype=np.float64)
    mu_in, sd_in = _fit(in_ref, std)
    mu_out, sd_out = _fit(out_ref, std)
    return stats.norm.logpdf(s, mu_in, sd_in) - stats.norm.logpdf(s, mu_out, sd_out)


def lira_offline(
    target: npt.ArrayLike, out_ref: npt.ArrayLike, std: float | None = None
) -> np.ndarray:
    """LiRA offline, one-sided: z = (s - mu_out) / sd_out, how far above the out models s lies.

    Only out models are available, so there is no in Gaussian to compare with; membership raises
    the score, so the test is one-sided (the LiRA paper's offline test): the p-value of "not a
    member" is ``norm.sf(z)``. LeakPro reports log Phi(z) and SACRO-ML Phi(z), which rank targets
    identically; z itself is returned because Phi(z) rounds to 1 (and log Phi(z) to 0) beyond
    z ~ 8.3, which would tie the strongest members. LiRA's public code uses the two-sided
    -log N(s; out) instead, which also flags scores far *below* the out models; the one-sided test
    is chosen because a member does not score lower by being a member.
    """
    s = np.asarray(target, dtype=np.float64)
    mu, sd = _fit(out_ref, std)
    return (s - mu) / sd


_LOG_HALF = math.log(0.5)


def _offline_marginal(log_mean_out: np.ndarray, a: npt.ArrayLike) -> np.ndarray:
    """log((1 + a)/2 * P_out + (1 - a)/2) from log P_out; ``a`` a number or broadcastable array."""
    a = np.asarray(a, dtype=np.float64)
    if not np.all((a >= 0.0) & (a <= 1.0)):
        raise ValueError(f"RMIA offline a must lie in [0, 1], got {a}")
    with np.errstate(divide="ignore"):  # a = 1: no constant term, log 0 = -inf
        hi, lo = np.log((1 + a) / 2), np.log((1 - a) / 2)
    return np.logaddexp(hi + log_mean_out, lo)


def _log_mean_exp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return special.logsumexp(x, axis=axis) - math.log(x.shape[axis])


def rmia_marginal(
    log_p_out: npt.ArrayLike, log_p_in: npt.ArrayLike | None = None, a: float = 0.3
) -> np.ndarray:
    """RMIA's log P(x), the probability of x's true label averaged over reference models.

    Online (``log_p_in`` given): P(x) = (P_in(x) + P_out(x)) / 2, the means over in and out
    reference models weighted equally (the RMIA paper's Pr(x) over reference models of which
    half contain x; its code averages the pooled models, the same when K_in = K_out). Offline:
    P(x) = (1 + a)/2 P_out(x) + (1 - a)/2, RMIA's linear guess of P_in from P_out (ML Privacy
    Meter's ``run_rmia``). A population record z, in no reference model, takes the plain mean
    over all reference models online (the offline form with ``a=1``) and the offline form
    offline. Inputs are natural log-probabilities [..., K]; returns log P [...].
    """
    lp_out = np.asarray(log_p_out, dtype=np.float64)
    if log_p_in is None:
        return _offline_marginal(_log_mean_exp(lp_out), a)
    lp_in = np.asarray(log_p_in, dtype=np.float64)
    return _LOG_HALF + np.logaddexp(_log_mean_exp(lp_in), _log_mean_exp(lp_out))


def rmia(
    log_p_x: npt.ArrayLike,
    log_p_z: npt.ArrayLike,
    log_marginal_x: npt.ArrayLike,
    log_marginal_z: npt.ArrayLike,
    gamma: float = 1.0,
) -> np.ndarray:
    """RMIA score: fraction of population records z with LR(x, z) > gamma (strictly).

    LR(x, z) = (p(x|theta) / P(x)) / (p(z|theta) / P(z)), with p(.|theta) the target model's
    probability of the true label and P(.) its reference average (:func:`rmia_marginal`; the
    population records are in no training set: online P(z) is the plain mean over the
    reference models, as the RMIA paper writes it, offline the (1 + a)/2 form, as ML Privacy
    Meter's ``run_rmia`` does). All inputs are natural logs: ``log_p_x``
    [...], ``log_p_z`` [..., M], ``log_marginal_x`` [...], ``log_marginal_z`` [..., M].
    Multiplying all of one target's probabilities by a constant leaves its score unchanged.
    """
    if not gamma > 0:
        raise ValueError(f"RMIA gamma must be > 0, got {gamma}")
    r_x = np.asarray(log_p_x, dtype=np.float64) - np.asarray(log_marginal_x, dtype=np.float64)
    r_z = np.asarray(log_p_z, dtype=np.float64) - np.asarray(log_marginal_z, dtype=np.float64)
    return np.mean(r_x[..., None] - r_z > math.log(gamma), axis=-1)


# --------------------------------------------------------- leave-one-out evaluation of attacks


class _Moments(NamedTuple):
    mean: np.ndarray  # full pool [P]
    ss: np.ndarray  # sum of squared deviations [P]
    n: int
    loo_mean: np.ndarray  # pool without target k [P, K_targets]
    loo_ss: np.ndarray


def _moments(targets: np.ndarray, extra: np.ndarray | None = None) -> _Moments:
    """Mean and sum of squares of the pool [targets, extra] per record, and without each target."""
    pool = targets if extra is None else np.concatenate([targets, extra], axis=1)
    n = pool.shape[1]
    if n < 3:
        raise ValueError(f"need at least 3 models per pool for leave-one-out fits, got {n}")
    mean = pool.mean(axis=1)
    dev = targets - mean[:, None]
    ss = ((pool - mean[:, None]) ** 2).sum(axis=1)
    loo_mean = mean[:, None] - dev / (n - 1)
    loo_ss = np.maximum(ss[:, None] - dev**2 * n / (n - 1), 0.0)
    return _Moments(mean, ss, n, loo_mean, loo_ss)


def _sigmas(m: _Moments, variance: Variance) -> tuple[np.ndarray, np.ndarray]:
    """(sd of the full pool [P, 1], sd without each target [P, K]) for a variance option."""
    if isinstance(variance, str) and variance == "per_record":
        full = np.sqrt(m.ss / (m.n - 1))[:, None]
        loo = np.sqrt(m.loo_ss / (m.n - 2))
    elif isinstance(variance, str) and variance == "global":
        # Pooled within-record variance over all records, the target's own score left out.
        p = len(m.ss)
        total, dof = m.ss.sum(), p * (m.n - 1)
        full = np.full((p, 1), math.sqrt(total / dof))
        loo = np.sqrt((total - m.ss[:, None] + m.loo_ss) / (dof - 1))
    elif isinstance(variance, (int, float)) and not isinstance(variance, bool) and variance > 0:
        full = np.full((len(m.ss), 1), float(variance))
        loo = np.full_like(m.loo_mean, float(variance))
    else:
        raise ValueError(f"variance must be 'per_record', 'global' or a std > 0, got {variance!r}")
    return full, loo


def lira_online_loo(
    s_in: npt.ArrayLike,
    s_out: npt.ArrayLike,
    extra_in: npt.ArrayLike | None = None,
    variance: Variance = "per_record",
) -> tuple[np.ndarray, np.ndarray]:
    """LiRA online statistic of every target model, its own score left out of the fits.

    ``s_in`` [P, K_in], ``s_out`` [P, K_out]: LiRA scores of record i's in and out models on
    record i. In target k is scored with the in Gaussian of the other in models (plus
    ``extra_in`` [P, E], free in models that are never targets) and the out Gaussian of all out
    models; out target k the other way round. ``variance``: ``"per_record"`` (each record's
    sample variances), ``"global"`` (in and out variances pooled within records over all
    records) or a fixed standard deviation. Returns (t_in [P, K_in], t_out [P, K_out]).
    """
    s_in, s_out = check_pools(s_in, s_out)
    extra = None if extra_in is None else np.asarray(extra_in, dtype=np.float64)
    m_in, m_out = _moments(s_in, extra), _moments(s_out)
    sd_in_full, sd_in_loo = _sigmas(m_in, variance)
    sd_out_full, sd_out_loo = _sigmas(m_out, variance)
    norm = stats.norm
    t_in = norm.logpdf(s_in, m_in.loo_mean, _sigma_floor(sd_in_loo, m_in.loo_mean)) - norm.logpdf(
        s_in, m_out.mean[:, None], _sigma_floor(sd_out_full, m_out.mean[:, None])
    )
    t_out = norm.logpdf(
        s_out, m_in.mean[:, None], _sigma_floor(sd_in_full, m_in.mean[:, None])
    ) - norm.logpdf(s_out, m_out.loo_mean, _sigma_floor(sd_out_loo, m_out.loo_mean))
    return t_in, t_out


def lira_offline_loo(
    s_in: npt.ArrayLike, s_out: npt.ArrayLike, variance: Variance = "per_record"
) -> tuple[np.ndarray, np.ndarray]:
    """One-sided offline LiRA (:func:`lira_offline`) of every target, out targets left out.

    In targets are scored against all of the record's out models, out target k against the
    other out models. Within one fixed reference the statistic is increasing in the score, so its
    per-record AUC differs from the raw score's only through the leave-one-out references of the
    out targets. Returns (t_in [P, K_in], t_out [P, K_out]).
    """
    s_in, s_out = check_pools(s_in, s_out)
    m = _moments(s_out)
    sd_full, sd_loo = _sigmas(m, variance)
    mu = m.mean[:, None]
    t_in = (s_in - mu) / _sigma_floor(sd_full, mu)
    t_out = (s_out - m.loo_mean) / _sigma_floor(sd_loo, m.loo_mean)
    return t_in, t_out


def _logsumexp_loo(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """log sum_{j != k} exp(x_j) for every k along ``axis`` (prefix/suffix sums, no cancellation)."""
    x = np.moveaxis(x, axis, 0)
    pad = np.full((1, *x.shape[1:]), -np.inf)
    prefix = np.concatenate([pad, np.logaddexp.accumulate(x, axis=0)[:-1]])
    suffix = np.concatenate([np.logaddexp.accumulate(x[::-1], axis=0)[::-1][1:], pad])
    return np.moveaxis(np.logaddexp(prefix, suffix), 0, axis)


def rmia_loo(
    lp_in: npt.ArrayLike,
    lp_out: npt.ArrayLike,
    lz_in: npt.ArrayLike,
    lz_out: npt.ArrayLike,
    offline: bool = False,
    a: npt.ArrayLike = 0.3,
    gamma: float = 1.0,
    extra_in: npt.ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """RMIA score (:func:`rmia`) of every target model, the target left out of every reference.

    ``lp_in`` [P, K_in], ``lp_out`` [P, K_out]: log p(x_i | model) of record i's in and out
    models; ``lz_in`` [K_in, M] (or [P, K_in, M]) and ``lz_out`` [P, K_out, M]: the same models on
    the M population records. For target theta of record i, the reference models are the
    record's other models. Online (the RMIA paper, Zarifzadeh et al. 2024): P(x) = (P_in +
    P_out)/2 over the in and out models other than theta, and P(z) the plain mean of p(z) over
    the same reference models (all of them out for z). Offline (ML Privacy Meter's
    ``run_rmia``): P(x) = (1 + a)/2 P_out + (1 - a)/2 over the out models other than theta, and
    P(z) the same form over the same out models. ``a``: a number or one per record [P]
    (:func:`tune_rmia_a`); online ignores it. ``extra_in`` (online only): [P, E] log p(x_i) of
    free in models (the out models of the other records, so ``lz_out`` supplies their
    population log-probabilities), added to P_in(x) and to the references of z. Returns (t_in
    [P, K_in], t_out [P, K_out]).
    """
    lp_in, lp_out = check_pools(lp_in, lp_out)
    p, k_in = lp_in.shape
    k_out = lp_out.shape[1]
    lz_in = np.asarray(lz_in, dtype=np.float64)
    lz_out = np.asarray(lz_out, dtype=np.float64)
    if lz_in.ndim == 2:
        lz_in = np.broadcast_to(lz_in, (p, *lz_in.shape))
    if lz_in.shape[:2] != (p, k_in) or lz_out.shape[:2] != (p, k_out):
        raise ValueError(f"population log-probs {lz_in.shape}, {lz_out.shape} do not match models")
    if k_out < 2 or (not offline and k_in < 2):
        raise ValueError("need at least 2 models per reference pool for leave-one-out RMIA")
    if offline and extra_in is not None:
        raise ValueError("free in models only enter online RMIA")
    if extra_in is not None:
        extra = np.asarray(extra_in, dtype=np.float64)
        if extra.shape[0] != p or extra.shape[1] != (p - 1) * k_out:
            raise ValueError(
                f"extra_in must be the free in pool [P, (P-1) K_out], got {extra.shape}"
            )
        # z-references of record i's free in models: every out model of every other record.
        z_extra = _logsumexp_loo(special.logsumexp(lz_out, axis=1), axis=0)  # [P, M]
        x_extra = special.logsumexp(extra, axis=1)  # [P]
        n_extra = extra.shape[1]
    else:
        z_extra, x_extra, n_extra = np.full((p, lz_out.shape[2]), -np.inf), np.full(p, -np.inf), 0

    # log sums over x-references [P, K] (without the target) and [P] (all).
    lse = special.logsumexp
    in_all = np.logaddexp(lse(lp_in, axis=1), x_extra)
    in_loo = np.logaddexp(_logsumexp_loo(lp_in, axis=1), x_extra[:, None])
    out_all, out_loo = lse(lp_out, axis=1), _logsumexp_loo(lp_out, axis=1)
    n_in = k_in + n_extra
    pin_all, pin_loo = in_all - math.log(n_in), in_loo - math.log(n_in - 1)
    pout_all, pout_loo = out_all - math.log(k_out), out_loo - math.log(k_out - 1)
    a = np.broadcast_to(np.asarray(a, dtype=np.float64), (p,))
    if offline:
        px_in = _offline_marginal(np.broadcast_to(pout_all[:, None], (p, k_in)), a[:, None])
        px_out = _offline_marginal(pout_loo, a[:, None])
    else:
        px_in = _LOG_HALF + np.logaddexp(pin_loo, pout_all[:, None])
        px_out = _LOG_HALF + np.logaddexp(pin_all[:, None], pout_loo)

    t_in, t_out = np.empty((p, k_in)), np.empty((p, k_out))
    for i in range(p):  # [K, M] per record keeps memory at one record's population block
        z_out_loo = _logsumexp_loo(lz_out[i], axis=0)
        z_out_all = lse(lz_out[i], axis=0)
        if offline:
            pz_in = np.broadcast_to(z_out_all - math.log(k_out), lz_in[i].shape)
            pz_out = z_out_loo - math.log(k_out - 1)
            pz_in, pz_out = _offline_marginal(pz_in, a[i]), _offline_marginal(pz_out, a[i])
        else:
            z_in_loo, z_in_all = _logsumexp_loo(lz_in[i], axis=0), lse(lz_in[i], axis=0)
            n_ref = k_in + k_out + n_extra - 1
            pz_in = np.logaddexp(np.logaddexp(z_in_loo, z_out_all), z_extra[i]) - math.log(n_ref)
            pz_out = np.logaddexp(np.logaddexp(z_out_loo, z_in_all), z_extra[i]) - math.log(n_ref)
        t_in[i] = rmia(lp_in[i], lz_in[i], px_in[i], pz_in, gamma)
        t_out[i] = rmia(lp_out[i], lz_out[i], px_out[i], pz_out, gamma)
    return t_in, t_out


RMIA_A_GRID = tuple(round(0.1 * i, 1) for i in range(11))


def tune_rmia_a(
    lp_in: npt.ArrayLike,
    lp_out: npt.ArrayLike,
    lz_in: npt.ArrayLike,
    lz_out: npt.ArrayLike,
    gamma: float = 1.0,
    grid: tuple[float, ...] = RMIA_A_GRID,
) -> np.ndarray:
    """Offline RMIA's ``a`` chosen from reference models, one per record [P] (``rmia_a: auto``).

    ML Privacy Meter's ``tune_offline_a``: try a = 0, 0.1, ..., 1 and keep the one with the
    highest AUC when models of known membership are attacked (the first on ties). Here those
    models are the *other* records' in and out models, so a record's own targets never choose
    its a: a_i maximises the pooled AUC of offline RMIA (:func:`rmia_loo`) over records j != i.
    Inputs as :func:`rmia_loo`.
    """
    lp_in, lp_out = check_pools(lp_in, lp_out)
    p, k_in = lp_in.shape
    if p < 2:
        raise ValueError("rmia_a: auto needs at least 2 records (a is tuned on the others)")
    member = np.r_[np.ones(k_in, bool), np.zeros(lp_out.shape[1], bool)]
    auc = np.empty((len(grid), p))
    for g, a in enumerate(grid):
        t_in, t_out = rmia_loo(lp_in, lp_out, lz_in, lz_out, True, a, gamma)
        scores = np.concatenate([t_in, t_out], axis=1)  # [P, K_in + K_out]
        for i in range(p):
            others = np.delete(scores, i, axis=0)
            auc[g, i] = roc_auc(np.tile(member, p - 1), others.ravel())
    return np.asarray(grid, dtype=np.float64)[np.argmax(auc, axis=0)]

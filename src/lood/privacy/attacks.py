"""Membership-inference attacks on retrained models (LiRA online/offline, RMIA) and their evaluation.

:mod:`lood.privacy.mia` measures how distinguishable the in- and out-model scores of one record
are with a Gaussian test fitted on half of the models. This module adds the attacks of the literature, each
evaluated per record and pooled over records, so that LOOD can be compared with what a real
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
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import special, stats

Variance = Literal["per_record", "global"] | float
Alternative = Literal["greater", "less", "two-sided"]

__all__ = [
    "MannWhitney",
    "attack_statistics",
    "balanced_accuracy",
    "free_in_comparison",
    "free_in_pool",
    "lira_offline",
    "lira_offline_loo",
    "lira_online",
    "lira_online_loo",
    "lira_score",
    "mann_whitney",
    "mse_score",
    "per_record_auc",
    "pooled_metrics",
    "pooled_table",
    "record_pools",
    "rmia",
    "rmia_loo",
    "rmia_marginal",
    "roc_curve",
    "tpr_at_fpr",
    "true_class_log_prob",
    "true_class_margin",
]


# --------------------------------------------------------------------------------------- scores


def _true_and_rest(logits: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Logit of the true class [...] and log-sum-exp of the other logits [...]."""
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim < 1 or z.shape[-1] < 2:
        raise ValueError(f"logits must be [..., C] with C >= 2 classes, got shape {z.shape}")
    y = np.asarray(labels)
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    n_classes = z.shape[-1]
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels out of range for {n_classes} classes")
    y = np.broadcast_to(y, z.shape[:-1])
    is_true = np.arange(n_classes) == y[..., None]
    z_true = np.take_along_axis(z, y[..., None], axis=-1)[..., 0]
    rest = special.logsumexp(np.where(is_true, -np.inf, z), axis=-1)
    return z_true, rest


def lira_score(logits: npt.ArrayLike, labels: npt.ArrayLike) -> np.ndarray:
    """LiRA's logit-scaled confidence phi = log p_y - log(sum_{c != y} p_c) from logits.

    LiRA fits Gaussians to this score because, unlike p_y, it is roughly normal across models.
    With softmax probabilities phi = z_y - logsumexp_{c != y} z_c exactly (the normaliser cancels),
    which is what is computed: no exp of a large logit, no 1 - p_y, no clamping, finite for any
    finite logits and any C >= 2; for C = 2 it is the margin z_y - z_other. ``logits`` [..., C],
    ``labels`` integers broadcastable to ``logits.shape[:-1]``; returns [...].
    (:func:`true_class_margin`, the true logit minus the largest other, differs for C > 2.)
    """
    z_true, rest = _true_and_rest(logits, labels)
    return z_true - rest


def true_class_margin(logits: npt.ArrayLike, labels: npt.ArrayLike) -> np.ndarray:
    """Output of the true class minus the largest other output, z_y - max_{c != y} z_c.

    :func:`lood.privacy.mia.margin_score` broadcast over any leading axes (the score of
    ``mia.csv``); equal to :func:`lira_score` for two classes. Shapes as :func:`lira_score`.
    """
    z = np.asarray(logits, dtype=np.float64)
    z_true, _ = _true_and_rest(z, labels)  # validates shapes and labels
    y = np.broadcast_to(np.asarray(labels), z.shape[:-1])
    others = np.where(np.arange(z.shape[-1]) == y[..., None], -np.inf, z)
    return z_true - others.max(axis=-1)


def mse_score(outputs: npt.ArrayLike, labels: npt.ArrayLike) -> np.ndarray:
    """Minus the MSE training loss, -1/2 sum_c (z_c - t_c)^2 with t = one-hot(y) - 1/C.

    The workflow's networks regress on centred one-hot targets (``train.loss: mse``): training on
    a record pulls its outputs towards t, so its loss falls, whereas the margin and p_y can fall
    too (a record whose out models overshoot the target margin). Same as ``audit.score: loss``.
    Shapes as :func:`lira_score`.
    """
    z = np.asarray(outputs, dtype=np.float64)
    _true_and_rest(z, labels)  # validates shapes and labels
    c = z.shape[-1]
    target = (np.arange(c) == np.broadcast_to(np.asarray(labels), z.shape[:-1])[..., None]) - 1 / c
    return -0.5 * ((z - target) ** 2).sum(axis=-1)


def true_class_log_prob(logits: npt.ArrayLike, labels: npt.ArrayLike) -> np.ndarray:
    """Natural log of the softmax probability of the true class, log p_y = z_y - logsumexp(z).

    RMIA's signal (ML Privacy Meter uses the softmax probability of the true label at temperature
    1; divide the logits by a temperature first for another). Kept in log space so that
    probabilities below 1e-308 stay distinct. Shapes as :func:`lira_score`.
    """
    z_true, rest = _true_and_rest(logits, labels)
    return z_true - np.logaddexp(z_true, rest)


# ------------------------------------------------------------------------------ data arrangement


def _self_out(out_outputs: np.ndarray) -> np.ndarray:
    """Record i's out models on record i: [P, K_out, C] from [P, K_out, C] or [P, K_out, P, C]."""
    if out_outputs.ndim == 3:
        return out_outputs
    if out_outputs.ndim != 4 or out_outputs.shape[0] != out_outputs.shape[2]:
        raise ValueError(f"out outputs must be [P, K, C] or [P, K, P, C], got {out_outputs.shape}")
    p = out_outputs.shape[0]
    return out_outputs[np.arange(p), :, np.arange(p), :]


def free_in_pool(values: np.ndarray) -> np.ndarray:
    """Per-record values of the out models of the *other* records: [P, K_out, P, ...] -> [P, (P-1) K_out, ...].

    ``values[j, k, i]`` is a value (score, log-probability) of out model k of record j on record
    i. For record i, the out models of every record j != i were trained on data containing i, so
    they are extra in models; row i of the result lists them (j-major).
    """
    values = np.asarray(values)
    p, k = values.shape[:2]
    if values.ndim < 3 or values.shape[2] != p:
        raise ValueError(f"expected [P, K_out, P, ...], got shape {values.shape}")
    moved = np.moveaxis(values, 2, 0)  # [P_i, P_j, K, ...]
    keep = ~np.eye(p, dtype=bool)
    return moved[keep].reshape(p, (p - 1) * k, *values.shape[3:])


def record_pools(
    in_outputs: npt.ArrayLike,
    out_outputs: npt.ArrayLike,
    labels: npt.ArrayLike,
    score: str = "lira",
    free_in: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Per-record model values from the workflow's arrays: (in [P, K_in], out [P, K_out], extra).

    ``score`` is ``"lira"`` (:func:`lira_score`), ``"margin"`` (:func:`true_class_margin`),
    ``"loss"`` (:func:`mse_score`) or ``"log_prob"`` (:func:`true_class_log_prob`).
    ``extra`` is [P, (P-1) K_out] (the free in models, :func:`free_in_pool`) when ``free_in`` is
    set, which needs ``out_outputs`` as [P, K_out, P, C]; otherwise None.
    """
    scores = {
        "lira": lira_score,
        "margin": true_class_margin,
        "loss": mse_score,
        "log_prob": true_class_log_prob,
    }
    if score not in scores:
        raise ValueError(f"score must be one of {sorted(scores)}, got {score!r}")
    fn = scores[score]
    in_outputs = np.asarray(in_outputs, dtype=np.float64)
    out_outputs = np.asarray(out_outputs, dtype=np.float64)
    labels = np.asarray(labels)
    if in_outputs.ndim != 3 or in_outputs.shape[1] != len(labels):
        raise ValueError(f"in outputs must be [K_in, P={len(labels)}, C], got {in_outputs.shape}")
    if out_outputs.shape[0] != len(labels):
        raise ValueError(f"out outputs must start with P={len(labels)}, got {out_outputs.shape}")
    s_in = fn(in_outputs, labels).T
    s_out = fn(_self_out(out_outputs), labels[:, None])
    extra = None
    if free_in:
        if out_outputs.ndim != 4:
            raise ValueError("free_in needs the out models on every record: [P, K_out, P, C]")
        extra = free_in_pool(fn(out_outputs, labels))
    return s_in, s_out, extra


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


def _offline_marginal(log_mean_out: np.ndarray, a: float) -> np.ndarray:
    """log((1 + a)/2 * P_out + (1 - a)/2) from log P_out."""
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"RMIA offline a must lie in [0, 1], got {a}")
    hi = math.log((1 + a) / 2)
    lo = math.log((1 - a) / 2) if a < 1 else -np.inf
    return np.logaddexp(hi + log_mean_out, lo)


def _log_mean_exp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return special.logsumexp(x, axis=axis) - math.log(x.shape[axis])


def rmia_marginal(
    log_p_out: npt.ArrayLike, log_p_in: npt.ArrayLike | None = None, a: float = 0.3
) -> np.ndarray:
    """RMIA's log P(x), the probability of x's true label averaged over reference models.

    Online (``log_p_in`` given): P(x) = (P_in(x) + P_out(x)) / 2, the means over in and out
    reference models weighted equally (as RMIA's paper and ML Privacy Meter's documentation write
    it; their code averages the pooled models, the same when K_in = K_out). Offline: P(x) =
    (1 + a)/2 P_out(x) + (1 - a)/2, RMIA's linear guess of P_in from P_out. Inputs are natural
    log-probabilities [..., K]; returns log P [...].
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
    population records are in no training set, so P(z) takes the offline form over the reference
    models, as ML Privacy Meter's ``run_rmia`` does). All inputs are natural logs: ``log_p_x``
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


def _check_pools(s_in: npt.ArrayLike, s_out: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s_in = np.asarray(s_in, dtype=np.float64)
    s_out = np.asarray(s_out, dtype=np.float64)
    if s_in.ndim != 2 or s_out.ndim != 2 or s_in.shape[0] != s_out.shape[0]:
        raise ValueError(
            f"expected in [P, K_in] and out [P, K_out], got {s_in.shape}, {s_out.shape}"
        )
    return s_in, s_out


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
    s_in, s_out = _check_pools(s_in, s_out)
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
    s_in, s_out = _check_pools(s_in, s_out)
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
    a: float = 0.3,
    gamma: float = 1.0,
    extra_in: npt.ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """RMIA score (:func:`rmia`) of every target model, the target left out of every reference.

    ``lp_in`` [P, K_in], ``lp_out`` [P, K_out]: log p(x_i | model) of record i's in and out
    models; ``lz_in`` [K_in, M] (or [P, K_in, M]) and ``lz_out`` [P, K_out, M]: the same models on
    the M population records. For target theta of record i, the reference models are the
    record's other models: online, P(x) = (P_in + P_out)/2 over the in and out models other than
    theta; offline, P(x) = (1 + a)/2 P_out + (1 - a)/2 over the out models other than theta.
    P(z) is (1 + a)/2 P_ref(z) + (1 - a)/2 over the same reference models (all of them out for
    z). ``extra_in`` (online only): [P, E] log p(x_i) of free in models (the out models of the
    other records, so ``lz_out`` supplies their population log-probabilities), added to P_in(x)
    and to the references of z. Returns (t_in [P, K_in], t_out [P, K_out]).
    """
    lp_in, lp_out = _check_pools(lp_in, lp_out)
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
    if offline:
        px_in = _offline_marginal(np.broadcast_to(pout_all[:, None], (p, k_in)), a)
        px_out = _offline_marginal(pout_loo, a)
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
        else:
            z_in_loo, z_in_all = _logsumexp_loo(lz_in[i], axis=0), lse(lz_in[i], axis=0)
            n_ref = k_in + k_out + n_extra - 1
            pz_in = np.logaddexp(np.logaddexp(z_in_loo, z_out_all), z_extra[i]) - math.log(n_ref)
            pz_out = np.logaddexp(np.logaddexp(z_out_loo, z_in_all), z_extra[i]) - math.log(n_ref)
        t_in[i] = rmia(lp_in[i], lz_in[i], px_in[i], _offline_marginal(pz_in, a), gamma)
        t_out[i] = rmia(lp_out[i], lz_out[i], px_out[i], _offline_marginal(pz_out, a), gamma)
    return t_in, t_out


# ------------------------------------------------------------------------------------- metrics


class MannWhitney(NamedTuple):
    """AUC = U / (n_pos n_neg) (ties count 1/2), normal-approximation z and p-value."""

    auc: float
    u: float
    z: float
    p_value: float


def _mw_from_u(
    u: np.ndarray,
    n1: int,
    n0: int,
    tie_term: np.ndarray,
    alternative: Alternative,
    continuity: bool,
) -> tuple[np.ndarray, np.ndarray]:
    n = n1 + n0
    mu = n1 * n0 / 2.0
    sd = np.sqrt(n1 * n0 / 12.0 * ((n + 1) - tie_term / (n * (n - 1))))
    if alternative == "greater":
        num = u - mu
    elif alternative == "less":
        num = mu - u
    elif alternative == "two-sided":
        num = np.abs(u - mu)
    else:
        raise ValueError(
            f"alternative must be 'greater', 'less' or 'two-sided', got {alternative!r}"
        )
    if continuity:
        num = num - 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sd > 0, num / np.where(sd > 0, sd, 1.0), 0.0)
    pv = stats.norm.sf(z)
    if alternative == "two-sided":
        pv = np.minimum(2 * pv, 1.0)
    pv = np.where(sd > 0, pv, 1.0)  # all scores tied: no evidence against the null
    return z, pv


def _rank_u(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mann-Whitney U of ``pos`` vs ``neg`` along the last axis and the tie term sum(t^3 - t)."""
    both = np.concatenate([pos, neg], axis=-1)
    if np.isnan(both).any():
        raise ValueError("scores contain NaN")
    ranks = stats.rankdata(both, axis=-1)
    n1 = pos.shape[-1]
    u = ranks[..., :n1].sum(axis=-1) - n1 * (n1 + 1) / 2.0
    tie_size = stats.rankdata(both, method="max", axis=-1) - stats.rankdata(
        both, method="min", axis=-1
    )
    tie_term = (tie_size * (tie_size + 2)).sum(axis=-1)  # sum over elements of t^2 - 1
    return u, tie_term


def mann_whitney(
    pos: npt.ArrayLike,
    neg: npt.ArrayLike,
    alternative: Alternative = "greater",
    continuity: bool = True,
) -> MannWhitney:
    """AUC of ``pos`` (members) against ``neg`` and its Mann-Whitney p-value.

    The null hypothesis is no leakage (members' and non-members' statistics exchangeable); the
    default one-sided alternative is that members score higher. Normal approximation with the
    tie-corrected null variance n1 n0 / 12 ((n + 1) - sum(t^3 - t) / (n (n - 1))) and, by default,
    a continuity correction of 1/2, as ``scipy.stats.mannwhitneyu(method="asymptotic")``.
    """
    pos = np.asarray(pos, dtype=np.float64).ravel()
    neg = np.asarray(neg, dtype=np.float64).ravel()
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("need at least one positive and one negative score")
    u, tie = _rank_u(pos, neg)
    z, pv = _mw_from_u(u, len(pos), len(neg), tie, alternative, continuity)
    return MannWhitney(float(u / (len(pos) * len(neg))), float(u), float(z), float(pv))


def per_record_auc(
    t_in: npt.ArrayLike,
    t_out: npt.ArrayLike,
    alternative: Alternative = "greater",
    continuity: bool = True,
) -> pd.DataFrame:
    """Per-record AUC of an attack (in models positive) with Mann-Whitney z and p-value.

    ``t_in`` [P, K_in], ``t_out`` [P, K_out] (from the ``*_loo`` functions). One row per record
    position: ``auc``, ``u``, ``z``, ``p_value``, ``n_in``, ``n_out``. Vectorised over records.
    """
    t_in, t_out = _check_pools(t_in, t_out)
    n1, n0 = t_in.shape[1], t_out.shape[1]
    u, tie = _rank_u(t_in, t_out)
    z, pv = _mw_from_u(u, n1, n0, tie, alternative, continuity)
    return pd.DataFrame(
        {"auc": u / (n1 * n0), "u": u, "z": z, "p_value": pv, "n_in": n1, "n_out": n0}
    )


def _roc_counts(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thresholds (descending, +inf first), false and true positives of 'score >= threshold'."""
    scores = np.concatenate([pos, neg])
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    is_pos = np.concatenate([np.ones(len(pos), bool), np.zeros(len(neg), bool)])
    order = np.argsort(-scores, kind="stable")
    s, lab = scores[order], is_pos[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last index of each distinct score
    tps = np.cumsum(lab)[last]
    fps = last + 1 - tps
    return np.r_[np.inf, s[last]], np.r_[0, fps], np.r_[0, tps]


def roc_curve(pos: npt.ArrayLike, neg: npt.ArrayLike) -> pd.DataFrame:
    """ROC curve of 'member if score >= threshold': ``threshold``, ``fpr``, ``tpr``, ``fp``, ``tp``.

    One row per distinct score (plus the empty-set point at threshold +inf), in order of
    decreasing threshold.
    """
    pos = np.asarray(pos, dtype=np.float64).ravel()
    neg = np.asarray(neg, dtype=np.float64).ravel()
    thr, fps, tps = _roc_counts(pos, neg)
    return pd.DataFrame(
        {"threshold": thr, "fpr": fps / len(neg), "tpr": tps / len(pos), "fp": fps, "tp": tps}
    )


def balanced_accuracy(pos: npt.ArrayLike, neg: npt.ArrayLike) -> float:
    """Best balanced accuracy max_threshold (TPR + TNR) / 2 (optimistic: threshold picked on the data)."""
    roc = roc_curve(pos, neg)
    return float(((roc.tpr + 1 - roc.fpr) / 2).max())


def tpr_at_fpr(
    pos: npt.ArrayLike, neg: npt.ArrayLike, alphas: Sequence[float] = (0.01, 0.001, 0.0)
) -> pd.DataFrame:
    """TPR at FPR alpha: the largest TPR of a threshold whose empirical FPR <= alpha.

    With n_neg negatives only floor(alpha n_neg) false positives are allowed (``fp_allowed``); at
    alpha = 0.1% and fewer than 1000 negatives this is zero, i.e. the TPR at FPR 0, so each row
    also reports ``n_neg``, the false positives ``fp`` and the achieved ``fpr``.
    """
    pos = np.asarray(pos, dtype=np.float64).ravel()
    neg = np.asarray(neg, dtype=np.float64).ravel()
    thr, fps, tps = _roc_counts(pos, neg)
    rows = []
    for alpha in alphas:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        allowed = math.floor(alpha * len(neg) + 1e-9)
        j = int(np.nonzero(fps <= allowed)[0][-1])  # fps is non-decreasing; tps too
        rows.append(
            {
                "alpha": alpha,
                "tpr": tps[j] / len(pos),
                "fpr": fps[j] / len(neg),
                "threshold": thr[j],
                "tp": int(tps[j]),
                "fp": int(fps[j]),
                "fp_allowed": allowed,
                "n_pos": len(pos),
                "n_neg": len(neg),
            }
        )
    return pd.DataFrame(rows)


def pooled_metrics(
    t_in: npt.ArrayLike, t_out: npt.ArrayLike, alphas: Sequence[float] = (0.01, 0.001, 0.0)
) -> dict[str, float]:
    """Metrics over all (model, record) pairs: AUC, best balanced accuracy, TPR at each FPR alpha.

    Keys: ``auc``, ``balanced_accuracy``, ``n_pos``, ``n_neg`` and, per alpha, ``tpr@<alpha>``
    and ``fp_allowed@<alpha>`` (the number of negatives behind it, see :func:`tpr_at_fpr`).
    """
    pos = np.asarray(t_in, dtype=np.float64).ravel()
    neg = np.asarray(t_out, dtype=np.float64).ravel()
    out: dict[str, float] = {
        "auc": mann_whitney(pos, neg).auc,
        "balanced_accuracy": balanced_accuracy(pos, neg),
        "n_pos": len(pos),
        "n_neg": len(neg),
    }
    for row in tpr_at_fpr(pos, neg, alphas).itertuples():
        out[f"tpr@{row.alpha:g}"] = row.tpr
        out[f"fp_allowed@{row.alpha:g}"] = row.fp_allowed
    return out


# ----------------------------------------------------------------------------- whole evaluation


def attack_statistics(
    in_outputs: npt.ArrayLike,
    out_outputs: npt.ArrayLike,
    labels: npt.ArrayLike,
    in_test: npt.ArrayLike | None = None,
    out_test: npt.ArrayLike | None = None,
    test_labels: npt.ArrayLike | None = None,
    variance: Variance = "per_record",
    a: float = 0.3,
    gamma: float = 1.0,
    free_in: bool = False,
    score: str = "lira",
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Leave-one-out statistics (t_in [P, K_in], t_out [P, K_out]) of every attack, by name.

    ``score`` (the raw LiRA score), ``lira_online``, ``lira_offline`` and, when the population
    outputs are given, ``rmia_online`` and ``rmia_offline``. Shapes as in the module docstring;
    ``free_in`` (needs ``out_outputs`` [P, K_out, P, C]) adds the free in models to the online
    attacks. The ``score`` argument picks the per-model score of the LiRA attacks (``"lira"``,
    ``"margin"`` or ``"loss"``, :func:`record_pools`); RMIA always uses the true class's softmax
    probability.
    """
    if score not in ("lira", "margin", "loss"):
        raise ValueError(f"LiRA score must be 'lira', 'margin' or 'loss', got {score!r}")
    s_in, s_out, extra = record_pools(in_outputs, out_outputs, labels, score, free_in)
    result = {
        "score": (s_in, s_out),
        "lira_online": lira_online_loo(s_in, s_out, extra, variance),
        "lira_offline": lira_offline_loo(s_in, s_out, variance),
    }
    if in_test is None and out_test is None:
        return result
    if in_test is None or out_test is None or test_labels is None:
        raise ValueError("RMIA needs in_test, out_test and test_labels")
    lp_in, lp_out, lp_extra = record_pools(in_outputs, out_outputs, labels, "log_prob", free_in)
    lz_in = true_class_log_prob(in_test, test_labels)  # [K_in, M]
    lz_out = true_class_log_prob(out_test, test_labels)  # [P, K_out, M]
    result["rmia_online"] = rmia_loo(lp_in, lp_out, lz_in, lz_out, False, a, gamma, lp_extra)
    result["rmia_offline"] = rmia_loo(lp_in, lp_out, lz_in, lz_out, True, a, gamma)
    return result


def pooled_table(
    statistics: dict[str, tuple[np.ndarray, np.ndarray]],
    alphas: Sequence[float] = (0.01, 0.001, 0.0),
) -> pd.DataFrame:
    """One row of :func:`pooled_metrics` per attack of :func:`attack_statistics`."""
    rows = [{"attack": k, **pooled_metrics(ti, to, alphas)} for k, (ti, to) in statistics.items()]
    return pd.DataFrame(rows)


def free_in_comparison(
    in_outputs: npt.ArrayLike,
    out_all: npt.ArrayLike,
    labels: npt.ArrayLike,
    in_test: npt.ArrayLike | None = None,
    out_test: npt.ArrayLike | None = None,
    test_labels: npt.ArrayLike | None = None,
    variance: Variance = "per_record",
    a: float = 0.3,
    gamma: float = 1.0,
    score: str = "lira",
) -> pd.DataFrame:
    """Per-record AUC and p-value of the online attacks without and with the free in models.

    ``out_all`` [P, K_out, P, C]: record j's out models on every differing record. One row per
    record and online attack (``lira_online``, plus ``rmia_online`` with population outputs):
    ``record``, ``attack``, ``auc``, ``p_value``, ``auc_free_in``, ``p_value_free_in``,
    ``n_in_pool`` (K_in) and ``n_in_pool_free_in`` (K_in + (P - 1) K_out).
    """
    kw = dict(variance=variance, a=a, gamma=gamma, score=score)
    args = (in_outputs, out_all, labels, in_test, out_test, test_labels)
    plain = attack_statistics(*args, **kw, free_in=False)
    free = attack_statistics(*args, **kw, free_in=True)
    k_in = np.asarray(in_outputs).shape[0]
    p, k_out = np.asarray(out_all).shape[:2]
    frames = []
    for name in ("lira_online", "rmia_online"):
        if name not in plain:
            continue
        without, with_free = per_record_auc(*plain[name]), per_record_auc(*free[name])
        frames.append(
            pd.DataFrame(
                {
                    "record": np.arange(p),
                    "attack": name,
                    "auc": without.auc,
                    "p_value": without.p_value,
                    "auc_free_in": with_free.auc,
                    "p_value_free_in": with_free.p_value,
                    "n_in_pool": k_in,
                    "n_in_pool_free_in": k_in + (p - 1) * k_out,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)

"""Membership signals: per-model scores of a record from its outputs (higher = more likely a member).

One copy of each score for every attack: the retrained-model MIA (:mod:`lood.privacy.mia`), LiRA
and RMIA, the one-run audit's canaries and PANORAMIA's features. All take outputs (logits)
``[..., C]`` and integer labels broadcastable to ``[...]``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import special


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

    :func:`margin_score` broadcast over any leading axes (the score of ``mia.csv``); equal to
    :func:`lira_score` for two classes. Shapes as :func:`lira_score`.
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


def margin_score(outputs: npt.ArrayLike, label: int) -> np.ndarray:
    """Scalar MIA score of each model: output of the true class minus the largest other output.

    For two classes and cross-entropy this is LiRA's logit-scaled confidence log(p_y / (1 - p_y));
    for MSE-trained networks it is the signed margin. ``outputs`` is [K, C]; returns [K]
    (:func:`true_class_margin` of one record).
    """
    outputs = np.asarray(outputs, dtype=np.float64)
    if outputs.ndim != 2:
        raise ValueError(f"outputs must be [K, C], got shape {outputs.shape}")
    if not 0 <= label < outputs.shape[1]:
        raise ValueError(f"label {label} out of range for {outputs.shape[1]} classes")
    return true_class_margin(outputs, label)

"""The attacks' inputs: model outputs in the layout of :mod:`lood.privacy.mia.attacks` and the
per-record pools of scores drawn from them (each record's own in and out models, and the free in
models)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from lood.privacy.signals import lira_score, mse_score, true_class_log_prob, true_class_margin


class AttackInputs(NamedTuple):
    """Model outputs in the layout of :mod:`lood.privacy.mia.attacks` (differing-record order).

    ``in_outputs`` [K_in, P, C], ``out_outputs`` [P, K_out, C] or [P, K_out, P, C] (record j's
    out models on every differing record), ``labels`` [P]; the population outputs ``in_test``
    [K_in, M, C], ``out_test`` [P, K_out, M, C] and their ``test_labels`` [M] (RMIA only).
    """

    labels: np.ndarray
    in_outputs: np.ndarray
    out_outputs: np.ndarray
    in_test: np.ndarray | None = None
    out_test: np.ndarray | None = None
    test_labels: np.ndarray | None = None


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

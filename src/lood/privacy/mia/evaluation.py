"""Every attack of :mod:`lood.privacy.mia.attacks` on one experiment's models, evaluated per record
and pooled over records, and the online attacks without and with the free in models."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from lood.privacy.metrics import per_record_auc, pooled_metrics
from lood.privacy.mia.attacks import lira_offline_loo, lira_online_loo, rmia_loo, tune_rmia_a
from lood.privacy.mia.pools import AttackInputs, record_pools
from lood.privacy.signals import true_class_log_prob
from lood.privacy.spec import AttacksSpec

log = logging.getLogger(__name__)

Statistics = dict[str, tuple[np.ndarray, np.ndarray]]


def attack_statistics(
    inputs: AttackInputs, spec: AttacksSpec, free_in: bool | None = None
) -> Statistics:
    """Leave-one-out statistics (t_in [P, K_in], t_out [P, K_out]) of every attack, by name.

    ``score`` (the raw LiRA score), ``lira_online``, ``lira_offline`` and, when the population
    outputs are given, ``rmia_online`` and ``rmia_offline``. Shapes as in
    :class:`~lood.privacy.mia.pools.AttackInputs`; ``free_in`` (default ``spec.free_in``; needs
    ``out_outputs`` [P, K_out, P, C]) adds the free in models to the online attacks.
    ``spec.score`` picks the per-model score of the LiRA attacks (:func:`record_pools`); RMIA
    always uses the true class's softmax probability. ``spec.rmia_a`` ``"auto"``: offline
    RMIA's a per record from the other records' models (:func:`tune_rmia_a`).
    """
    free_in = spec.free_in if free_in is None else free_in
    in_outputs, out_outputs, labels = inputs.in_outputs, inputs.out_outputs, inputs.labels
    s_in, s_out, extra = record_pools(in_outputs, out_outputs, labels, spec.score, free_in)
    result = {
        "score": (s_in, s_out),
        "lira_online": lira_online_loo(s_in, s_out, extra, spec.variance),
        "lira_offline": lira_offline_loo(s_in, s_out, spec.variance),
    }
    if inputs.in_test is None and inputs.out_test is None:
        return result
    if inputs.in_test is None or inputs.out_test is None or inputs.test_labels is None:
        raise ValueError("RMIA needs in_test, out_test and test_labels")
    lp_in, lp_out, lp_extra = record_pools(in_outputs, out_outputs, labels, "log_prob", free_in)
    lz_in = true_class_log_prob(inputs.in_test, inputs.test_labels)  # [K_in, M]
    lz_out = true_class_log_prob(inputs.out_test, inputs.test_labels)  # [P, K_out, M]
    gamma = spec.rmia_gamma
    a = tune_rmia_a(lp_in, lp_out, lz_in, lz_out, gamma) if spec.rmia_a == "auto" else spec.rmia_a
    if spec.rmia_a == "auto":
        log.info("rmia_a auto: a per record %s", np.array2string(a, precision=1))
    result["rmia_online"] = rmia_loo(lp_in, lp_out, lz_in, lz_out, False, a, gamma, lp_extra)
    result["rmia_offline"] = rmia_loo(lp_in, lp_out, lz_in, lz_out, True, a, gamma)
    return result


def pooled_table(
    statistics: Statistics, alphas: Sequence[float] = (0.01, 0.001, 0.0)
) -> pd.DataFrame:
    """One row of :func:`lood.privacy.metrics.pooled_metrics` per attack of
    :func:`attack_statistics`."""
    rows = [{"attack": k, **pooled_metrics(ti, to, alphas)} for k, (ti, to) in statistics.items()]
    return pd.DataFrame(rows)


def free_in_comparison(inputs: AttackInputs, spec: AttacksSpec) -> pd.DataFrame:
    """Per-record AUC and p-value of the online attacks without and with the free in models.

    ``inputs.out_outputs`` [P, K_out, P, C]: record j's out models on every differing record. One
    row per record and online attack (``lira_online``, plus ``rmia_online`` with population
    outputs): ``record``, ``attack``, ``auc``, ``p_value``, ``auc_free_in``, ``p_value_free_in``,
    ``n_in_pool`` (K_in) and ``n_in_pool_free_in`` (K_in + (P - 1) K_out).
    """
    plain = attack_statistics(inputs, spec, free_in=False)
    free = attack_statistics(inputs, spec, free_in=True)
    k_in = np.asarray(inputs.in_outputs).shape[0]
    p, k_out = np.asarray(inputs.out_outputs).shape[:2]
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

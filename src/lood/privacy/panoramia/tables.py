"""Every privacy measurement of an experiment side by side (no torch): PANORAMIA's eps_tilde,
the one-run audit's lower bound, the DP accountant's epsilon, the retrained-model MIA AUC and
the NNGP KL LOOD of the differing records."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from lood.privacy.audit import epsilon_lower_bound

COMPARISON_COLUMNS = [
    "experiment",
    "eps_accountant",
    "eps_tilde_mean",
    "eps_tilde_min",
    "eps_tilde_max",
    "c_lb",
    "c_plus_eps_lb_mean",
    "panoramia_ceiling",
    "panoramia_mia_auc_mean",
    "panoramia_baseline_auc",
    "n_targets",
    "audit_eps_lb_max",
    "audit_eps_lb_mean",
    "audit_ceiling",
    "audit_runs",
    "mia_auc_mean",
    "kl_lood_mean",
    "n_records",
    "test_acc",
]


def audit_ceiling(audit: pd.DataFrame) -> float:
    """The largest bound the audit's runs could certify: all r guesses right."""
    row = audit.iloc[0]
    r = int(row["r"])
    if r == 0:
        return 0.0
    return epsilon_lower_bound(int(row["m"]), r, r, float(row["delta"]), float(row["confidence"]))


def panoramia_comparison(
    epsilon: Mapping[str, float],
    panoramia: Mapping[str, pd.DataFrame],
    mia: Mapping[str, pd.DataFrame],
    lood: Mapping[str, pd.DataFrame],
    audit: Mapping[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """One row per experiment (in the order of ``panoramia``), columns
    :data:`COMPARISON_COLUMNS`.

    ``epsilon``: the accountant's epsilon of the in models (inf: non-DP); ``panoramia``: the
    experiment's ``panoramia.csv`` (one row per target model); ``mia`` / ``lood``: ``mia.csv``
    and ``lood.csv`` (means over the differing records); ``audit``: ``audit/audit.csv`` (best and
    mean bound over the runs), or None when the audit is off (NaN columns).
    """
    rows = []
    for name, pano in panoramia.items():
        if pano.empty:
            raise ValueError(f"panoramia.csv of experiment {name!r} has no rows")
        runs = None if audit is None else audit.get(name)
        audited = {
            "audit_eps_lb_max": math.nan,
            "audit_eps_lb_mean": math.nan,
            "audit_ceiling": math.nan,
            "audit_runs": 0,
        }
        if runs is not None:
            audited = {
                "audit_eps_lb_max": float(runs["eps_lower_bound"].max()),
                "audit_eps_lb_mean": float(runs["eps_lower_bound"].mean()),
                "audit_ceiling": audit_ceiling(runs),
                "audit_runs": len(runs),
            }
        rows.append(
            {
                "experiment": name,
                "eps_accountant": float(epsilon[name]),
                "eps_tilde_mean": float(pano["eps_tilde"].mean()),
                "eps_tilde_min": float(pano["eps_tilde"].min()),
                "eps_tilde_max": float(pano["eps_tilde"].max()),
                "c_lb": float(pano["c_lb"].iloc[0]),  # one baseline for every target
                "c_plus_eps_lb_mean": float(pano["c_plus_eps_lb"].mean()),
                "panoramia_ceiling": float(pano["ceiling"].iloc[0]),
                "panoramia_mia_auc_mean": float(pano["mia_auc"].mean()),
                "panoramia_baseline_auc": float(pano["baseline_auc"].iloc[0]),
                "n_targets": len(pano),
                **audited,
                "mia_auc_mean": float(mia[name]["mia_auc"].mean()),
                "kl_lood_mean": float(lood[name]["kl_lood"].mean()),
                "n_records": len(mia[name]),
                "test_acc": float(np.mean(pano["target_test_acc"])),
            }
        )
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)

"""NNGP LOOD tables for the workflow: differing records, or every training record."""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from lood.nngp.gp import centred_one_hot, fit_gp, lood_all, lood_self


def lood_table(
    K: np.ndarray,
    y_train: np.ndarray,
    n_classes: int,
    sigma2: float,
    differ_idx: np.ndarray,
    mode: str = "differ",
    logger: logging.Logger | None = None,
) -> pd.DataFrame:
    """LOOD at query = the record itself, from one factorisation of K + sigma2 I.

    ``mode="differ"``: one row per differing record (columns differ_idx, label, kl_lood,
    mean_dist_lood, nngp_auc, var_in, var_out). ``mode="all"``: one row per training record
    (column idx instead of differ_idx, plus is_differ). Both also carry ``jitter`` (added to the
    diagonal when the Cholesky of K + sigma2 I failed) and ``effective_sigma2`` = sigma2 + jitter,
    the noise every LOOD value of the table was computed with; a jitter is also a log warning.
    """
    log = logger or logging.getLogger("lood.estimates")
    y_train = np.asarray(y_train)
    t0 = time.perf_counter()
    fit = fit_gp(K, centred_one_hot(y_train, n_classes), sigma2)
    log.info("factorised N=%d kernel (sigma2=%g, jitter=%g) in %.2fs",
             len(K), sigma2, fit.jitter, time.perf_counter() - t0)  # fmt: skip
    if fit.jitter > 0:
        log.warning("nngp.sigma2 = %g was too small for the Cholesky of K + sigma2 I: jitter %.3g "
                    "added, so every LOOD value is computed with effective sigma2 = %.3g (%.3g x "
                    "the requested; columns jitter, effective_sigma2). Use a larger nngp.sigma2 "
                    "to control the noise yourself.", sigma2, fit.jitter, fit.noise,
                    fit.noise / sigma2)  # fmt: skip
    # posterior mean at the training points, K (K + s2 I)^-1 Y = Y - s2 alpha: no second solve
    mean_self = fit.Y - fit.noise * fit.alpha
    train_acc = float(np.mean(mean_self.argmax(axis=1) == y_train))
    log.info("NNGP posterior train accuracy %.4f", train_acc)
    differ_idx = np.asarray(differ_idx, dtype=np.int64)
    if mode == "differ":
        res = lood_self(fit, K, differ_idx)
        rows = {"differ_idx": differ_idx, "label": y_train[differ_idx]}
    elif mode == "all":
        res = lood_all(fit, K)
        idx = np.arange(len(K))
        rows = {"idx": idx, "label": y_train, "is_differ": np.isin(idx, differ_idx)}
    else:
        raise ValueError(f"mode must be 'differ' or 'all', got {mode!r}")
    table = pd.DataFrame(
        rows
        | {
            "kl_lood": res["kl"],
            "mean_dist_lood": res["mean_dist"],
            "nngp_auc": res["auc"],
            "var_in": res["var_in"],
            "var_out": res["var_out"],
            "jitter": fit.jitter,
            "effective_sigma2": fit.noise,
        }
    )
    log.info("%s: %d records, KL LOOD median %.3g max %.3g, %.2fs total",
             mode, len(table), table.kl_lood.median(), table.kl_lood.max(), time.perf_counter() - t0)  # fmt: skip
    return table

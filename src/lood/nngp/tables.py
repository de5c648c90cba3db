"""LOOD tables for the workflow (NNGP or NTK-GP): differing records, or every training record."""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from lood.nngp.gp import centred_one_hot, fit_gp
from lood.nngp.loo import lood_all, lood_self
from lood.nngp.onion import privacy_onion
from lood.nngp.spec import OnionSpec


def lood_table(
    K: np.ndarray,
    y_train: np.ndarray,
    n_classes: int,
    sigma2: float,
    differ_idx: np.ndarray,
    mode: str = "differ",
    logger: logging.Logger | None = None,
    Theta: np.ndarray | None = None,
) -> pd.DataFrame:
    """LOOD at query = the record itself, from one factorisation of K + sigma2 I.

    ``mode="differ"``: one row per differing record (columns differ_idx, label, kl_lood,
    mean_dist_lood, nngp_auc, var_in, var_out). ``mode="all"``: one row per training record
    (column idx instead of differ_idx, plus is_differ). With the NTK ``Theta`` [N, N] the GP is
    the NTK-GP (:mod:`lood.nngp.gp`, one factorisation of Theta + sigma2 I); the columns are the
    same (``nngp_auc`` is then the AUC between the NTK-GP's two Gaussians). Both also carry
    ``jitter`` (added to the diagonal when the Cholesky of K + sigma2 I failed; NNGP only) and
    ``effective_sigma2`` = sigma2 + jitter, the noise every LOOD value of the table was computed
    with; a jitter is also a log warning.
    """
    log = logger or logging.getLogger("lood.estimates")
    y_train = np.asarray(y_train)
    differ_idx = np.asarray(differ_idx, dtype=np.int64)
    if mode not in ("differ", "all"):
        raise ValueError(f"mode must be 'differ' or 'all', got {mode!r}")
    t0 = time.perf_counter()
    Y = centred_one_hot(y_train, n_classes)
    fit = fit_gp(K, Y, sigma2, Theta_DD=Theta)
    if Theta is None:
        log.info(
            "factorised N=%d kernel (sigma2=%g, jitter=%g) in %.2fs",
            len(K),
            sigma2,
            fit.jitter,
            time.perf_counter() - t0,
        )
        what = "NNGP posterior"
        if fit.jitter > 0:
            log.warning(
                "nngp.sigma2 = %g was too small for the Cholesky of K + sigma2 I: jitter "
                "%.3g added, so every LOOD value is computed with effective sigma2 = %.3g "
                "(%.3g x the requested; columns jitter, effective_sigma2). Use a larger "
                "nngp.sigma2 to control the noise yourself.",
                sigma2,
                fit.jitter,
                fit.noise,
                fit.noise / sigma2,
            )
    else:
        log.info(
            "factorised N=%d NTK (sigma2=%g) in %.2fs", len(K), sigma2, time.perf_counter() - t0
        )
        what = "NTK-GP mean"
    # mean at the training points, K (K + s2 I)^-1 Y = Y - s2 alpha (Theta for the NTK-GP)
    mean_self = fit.Y - fit.noise * fit.alpha
    train_acc = float(np.mean(mean_self.argmax(axis=1) == y_train))
    log.info("%s train accuracy %.4f", what, train_acc)
    if mode == "differ":
        res = lood_self(fit, differ_idx)
        rows = {"differ_idx": differ_idx, "label": y_train[differ_idx]}
    else:
        res = lood_all(fit)
        idx = np.arange(len(K))
        rows = {"idx": idx, "label": y_train, "is_differ": np.isin(idx, differ_idx)}
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
    log.info(
        "%s: %d records, KL LOOD median %.3g max %.3g, %.2fs total",
        mode,
        len(table),
        table.kl_lood.median(),
        table.kl_lood.max(),
        time.perf_counter() - t0,
    )
    return table


def onion_table(
    K: np.ndarray,
    y_train: np.ndarray,
    n_classes: int,
    sigma2: float,
    differ_idx: np.ndarray,
    onion: OnionSpec,
    Theta: np.ndarray | None = None,
    logger: logging.Logger | None = None,
) -> pd.DataFrame:
    """The privacy onion (:func:`lood.nngp.onion.privacy_onion`, ``onion.n_layers`` peels of
    ``onion.k`` records) as one table: a row per (layer, record remaining at that layer) with its
    label, whether it is a differing record, its KL / mean-distance LOOD, GP AUC and variances,
    and ``removed`` (peeled at that layer)."""
    log = logger or logging.getLogger("lood.onion")
    y_train = np.asarray(y_train)
    t0 = time.perf_counter()
    n_layers, k = onion.n_layers, onion.k
    res = privacy_onion(
        K, centred_one_hot(y_train, n_classes), sigma2, n_layers, k, Theta_DD=Theta, auc=True
    )
    tab = res.table.rename(columns={"auc": "nngp_auc"})
    tab.insert(2, "label", y_train[tab.idx.to_numpy()])
    tab.insert(3, "is_differ", np.isin(tab.idx.to_numpy(), np.asarray(differ_idx)))
    first = tab[tab.layer == 0].set_index("idx").kl_lood
    for layer in range(n_layers + 1):
        rows = tab[tab.layer == layer]
        rise = rows.kl_lood.to_numpy() / first.loc[rows.idx].to_numpy()
        log.info(
            "layer %d: %d records, KL LOOD median %.4g max %.4g; vs layer 0: median x%.3f, "
            "max x%.3f (record %d)%s",
            layer,
            len(rows),
            rows.kl_lood.median(),
            rows.kl_lood.max(),
            np.median(rise),
            rise.max(),
            int(rows.idx.iloc[rise.argmax()]),
            f"; peeled {res.removed[layer].tolist()}" if layer < n_layers else "",
        )
    log.info("onion of %d layers x %d records in %.2fs", n_layers, k, time.perf_counter() - t0)
    return tab

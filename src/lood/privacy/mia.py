"""Empirical membership inference from retrained models: the ground truth that LOOD estimates.

For one differing record x we have outputs of "in" models (trained on D, which contains x) and
"out" models (trained on D minus x), all evaluated on x.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import roc_auc_score


def mia_landscape_table(
    in_outputs: np.ndarray,
    out_outputs: np.ndarray,
    records: np.ndarray,
    labels: np.ndarray,
    positions: np.ndarray,
    t: np.ndarray,
    n_splits: int,
    seed: int,
) -> Any:
    """Long table (differ_idx, t, mia_auc, mia_auc_std, in_score_mean, out_score_mean).

    ``in_outputs`` [K_in, R, T, C], ``out_outputs`` [R, K_out, T, C]. The MIA at each ``t`` is the
    workflow's (:func:`lood.mia.margin_score` with the record's label, :func:`lood.mia.
    half_split_auc` with seed ``mia.seed + position`` as in ``mia.csv``), so ``t = 0`` reproduces
    the record's ``mia_auc``.
    """
    import pandas as pd

    from lood.privacy.mia import half_split_auc, margin_score

    rows = []
    for i, (record, label, pos) in enumerate(zip(records, labels, positions, strict=True)):
        for j, tj in enumerate(t):
            s_in = margin_score(in_outputs[:, i, j], int(label))
            s_out = margin_score(out_outputs[i, :, j], int(label))
            auc, std = half_split_auc(s_in, s_out, n_splits=n_splits, seed=seed + int(pos))
            rows.append(
                {
                    "differ_idx": int(record),
                    "t": float(tj),
                    "mia_auc": auc,
                    "mia_auc_std": std,
                    "in_score_mean": float(s_in.mean()),
                    "out_score_mean": float(s_out.mean()),
                }
            )
    return pd.DataFrame(rows)


def margin_score(outputs: np.ndarray, label: int) -> np.ndarray:
    """Scalar MIA score of each model: output of the true class minus the largest other output.

    For two classes and cross-entropy this is LiRA's logit-scaled confidence log(p_y / (1 - p_y));
    for MSE-trained networks it is the signed margin. ``outputs`` is [K, C]; returns [K].
    """
    outputs = np.asarray(outputs, dtype=np.float64)
    if outputs.ndim != 2:
        raise ValueError(f"outputs must be [K, C], got shape {outputs.shape}")
    if not 0 <= label < outputs.shape[1]:
        raise ValueError(f"label {label} out of range for {outputs.shape[1]} classes")
    others = np.delete(outputs, label, axis=1)
    return outputs[:, label] - others.max(axis=1)


def half_split_auc(
    in_scores: np.ndarray, out_scores: np.ndarray, n_splits: int = 50, seed: int = 0
) -> tuple[float, float]:
    """Gaussian likelihood-ratio MIA AUC, averaged over random half splits of the models.

    In each split, half of the in models and half of the out models fit one Gaussian each; the
    other halves are scored by the log likelihood ratio log N(s; in) - log N(s; out) and the ROC
    AUC of those scores (in = positive) is taken. Returns (mean, std) over ``n_splits`` splits.
    """
    in_scores = np.asarray(in_scores, dtype=np.float64).ravel()
    out_scores = np.asarray(out_scores, dtype=np.float64).ravel()
    if len(in_scores) < 4 or len(out_scores) < 4:
        raise ValueError("need at least 4 in and 4 out models for a half-split MIA")
    if n_splits < 1:
        raise ValueError(f"mia.n_splits must be >= 1, got {n_splits}")
    for side, scores in (("in", in_scores), ("out", out_scores)):
        bad = np.flatnonzero(~np.isfinite(scores))
        if bad.size:
            raise ValueError(
                f"MIA scores of {side} model(s) {bad[:10].tolist()} ({bad.size} of {len(scores)}) "
                "are NaN/inf: those networks' outputs on the record are not finite"
            )
    rng = np.random.default_rng(seed)
    aucs = np.empty(n_splits)
    for s in range(n_splits):
        pin = rng.permutation(len(in_scores))
        pout = rng.permutation(len(out_scores))
        hin, hout = len(in_scores) // 2, len(out_scores) // 2
        fit_in, test_in = in_scores[pin[:hin]], in_scores[pin[hin:]]
        fit_out, test_out = out_scores[pout[:hout]], out_scores[pout[hout:]]
        test = np.concatenate([test_in, test_out])
        llr = _gauss_logpdf(test, fit_in) - _gauss_logpdf(test, fit_out)
        labels = np.concatenate([np.ones(len(test_in)), np.zeros(len(test_out))])
        aucs[s] = roc_auc_score(labels, llr)
    return float(aucs.mean()), float(aucs.std())


def _gauss_logpdf(x: np.ndarray, sample: np.ndarray) -> np.ndarray:
    scale = max(float(sample.std(ddof=1)), 1e-12 * max(1.0, float(np.abs(sample).max())), 1e-30)
    return stats.norm.logpdf(x, loc=float(sample.mean()), scale=scale)


def prediction_difference(in_outputs: np.ndarray, out_outputs: np.ndarray) -> float:
    """Squared distance between the mean in-model output and the mean out-model output on x."""
    in_outputs = np.asarray(in_outputs, dtype=np.float64)
    out_outputs = np.asarray(out_outputs, dtype=np.float64)
    diff = in_outputs.mean(axis=0) - out_outputs.mean(axis=0)
    return float(np.sum(diff**2))


def mia_table(
    differ: pd.DataFrame,
    models_in: dict[str, np.ndarray],
    models_out: list[dict[str, np.ndarray]],
    n_splits: int = 50,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per differing record: MIA AUC (mean, std over half splits) and prediction difference.

    ``models_in`` / ``models_out`` are the arrays written by the training jobs (see
    :func:`lood.train.jobs.train_role`). Scores are :func:`margin_score` of each model on the record.
    """
    differ_idx = differ["differ_idx"].to_numpy()
    labels = differ["label"].to_numpy()
    position = {int(r): j for j, r in enumerate(differ_idx)}
    out_self: dict[int, np.ndarray] = {}
    out_acc: dict[int, float] = {}
    for shard in models_out:
        for j, record in enumerate(shard["records"]):
            out_self[int(record)] = shard["outputs_differ"][j, :, position[int(record)], :]
            out_acc[int(record)] = float(np.mean(shard["test_acc"][j]))
    missing = [int(r) for r in differ_idx if int(r) not in out_self]
    if missing:
        raise ValueError(f"no out models found for differing records {missing[:10]}")
    rows = []
    for j, (record, label) in enumerate(zip(differ_idx, labels, strict=True)):
        ins = models_in["outputs_differ"][:, j, :]
        outs = out_self[int(record)]
        s_in, s_out = margin_score(ins, int(label)), margin_score(outs, int(label))
        where = {"in": "models/in.npz", "out": "its out-model shard"}
        for side, scores in (("in", s_in), ("out", s_out)):
            bad = np.flatnonzero(~np.isfinite(scores))
            if bad.size:
                raise ValueError(
                    f"MIA of differing record {int(record)} (position {j}): the outputs of {side} "
                    f"model(s) {bad[:10].tolist()} (K axis of {where[side]}; {bad.size} of "
                    f"{len(scores)}) on it are NaN/inf: diverged or corrupted networks, retrain "
                    "them (e.g. with a lower train.lr)"
                )
        auc, auc_std = half_split_auc(s_in, s_out, n_splits=n_splits, seed=seed + j)
        rows.append(
            {
                "differ_idx": int(record),
                "label": int(label),
                "mia_auc": auc,
                "mia_auc_std": auc_std,
                "pred_diff": prediction_difference(ins, outs),
                "in_score_mean": s_in.mean(),
                "in_score_std": s_in.std(ddof=1),
                "out_score_mean": s_out.mean(),
                "out_score_std": s_out.std(ddof=1),
                "in_test_acc": float(np.mean(models_in["test_acc"])),
                "out_test_acc": out_acc[int(record)],
            }
        )
    return pd.DataFrame(rows)

"""Empirical membership inference from retrained models: the ground truth that LOOD estimates.

For one differing record x we have outputs of "in" models (trained on D, which contains x) and
"out" models (trained on D minus x), all evaluated on x.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from lood.privacy.metrics import roc_auc
from lood.privacy.signals import margin_score
from lood.privacy.spec import MiaSpec


def mia_landscape_table(
    in_outputs: np.ndarray,
    out_outputs: np.ndarray,
    records: np.ndarray,
    labels: np.ndarray,
    positions: np.ndarray,
    t: np.ndarray,
    spec: MiaSpec,
) -> Any:
    """Long table (differ_idx, t, mia_auc, mia_auc_std, in_score_mean, out_score_mean).

    ``in_outputs`` [K_in, R, T, C], ``out_outputs`` [R, K_out, T, C]. The MIA at each ``t`` is the
    workflow's (:func:`record_mia` with the record's label, ``spec.score`` and seed ``spec.seed +
    position`` as in ``mia.csv``), so ``t = 0`` reproduces the record's ``mia_auc``. The score
    columns are the margin's whatever the score.
    """
    score, n_splits, seed = spec.score, spec.n_splits, spec.seed
    rows = []
    for i, (record, label, pos) in enumerate(zip(records, labels, positions, strict=True)):
        for j, tj in enumerate(t):
            s_in = margin_score(in_outputs[:, i, j], int(label))
            s_out = margin_score(out_outputs[i, :, j], int(label))
            auc, std, _ = record_mia(in_outputs[:, i, j], out_outputs[i, :, j], int(label),
                                     score, n_splits, seed + int(pos))  # fmt: skip
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


MIA_SCORES = ("margin", "output_vector")
"""Values of ``mia.score``: the attack statistic of :func:`record_mia`."""


def _half_splits(
    n_in: int, n_out: int, n_splits: int, seed: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(fit_in, test_in, fit_out, test_out) index arrays of ``n_splits`` random half splits.

    Split ``s`` draws ``rng.permutation(n_in)`` then ``rng.permutation(n_out)`` from one
    ``np.random.default_rng(seed)``; the first ``n // 2`` of each fit. Every half-split statistic
    of this module uses these draws, so for one seed they all see the same splits.
    """
    rng = np.random.default_rng(seed)
    hin, hout = n_in // 2, n_out // 2
    for _ in range(n_splits):
        pin = rng.permutation(n_in)
        pout = rng.permutation(n_out)
        yield pin[:hin], pin[hin:], pout[:hout], pout[hout:]


def _check_models(in_values: np.ndarray, out_values: np.ndarray, n_splits: int) -> None:
    """At least 4 in and 4 out models, ``n_splits >= 1`` and finite values (ValueError)."""
    if len(in_values) < 4 or len(out_values) < 4:
        raise ValueError("need at least 4 in and 4 out models for a half-split MIA")
    if n_splits < 1:
        raise ValueError(f"mia.n_splits must be >= 1, got {n_splits}")
    for side, values in (("in", in_values), ("out", out_values)):
        bad = np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(axis=1))
        if bad.size:
            raise ValueError(
                f"MIA scores of {side} model(s) {bad[:10].tolist()} ({bad.size} of {len(values)}) "
                "are NaN/inf: those networks' outputs on the record are not finite"
            )


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
    _check_models(in_scores, out_scores, n_splits)
    aucs = np.empty(n_splits)
    splits = _half_splits(len(in_scores), len(out_scores), n_splits, seed)
    for s, (fin, tin, fout, tout) in enumerate(splits):
        fit_in, test_in = in_scores[fin], in_scores[tin]
        fit_out, test_out = out_scores[fout], out_scores[tout]
        test = np.concatenate([test_in, test_out])
        llr = _gauss_logpdf(test, fit_in) - _gauss_logpdf(test, fit_out)
        labels = np.concatenate([np.ones(len(test_in)), np.zeros(len(test_out))])
        aucs[s] = roc_auc(labels, llr)
    return float(aucs.mean()), float(aucs.std())


def _as_outputs(in_outputs: np.ndarray, out_outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both output sets as float64 [K, C] with the same C (ValueError otherwise)."""
    a = np.asarray(in_outputs, dtype=np.float64)
    b = np.asarray(out_outputs, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"outputs must be [K_in, C] and [K_out, C], got {a.shape} and {b.shape}")
    return a, b


def half_split_diff(
    in_outputs: np.ndarray, out_outputs: np.ndarray, n_splits: int = 50, seed: int = 0
) -> float:
    """The original's prediction difference over the half splits of :func:`half_split_auc`.

    Per split: the mean over classes of the squared difference between the mean output vector
    of the held-out in half and that of the held-out out half; averaged over the splits (the
    ``diff`` of the original's compute_auc_and_diff.py). ``in_outputs`` [K_in, C],
    ``out_outputs`` [K_out, C].
    """
    a, b = _as_outputs(in_outputs, out_outputs)
    _check_models(a, b, n_splits)
    diffs = [
        float(np.mean((a[tin].mean(axis=0) - b[tout].mean(axis=0)) ** 2))
        for _, tin, _, tout in _half_splits(len(a), len(b), n_splits, seed)
    ]
    return float(np.mean(diffs))


def _cov_eigh(sample: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, eigenvalues ascending, eigenvectors) of the ddof-1 covariance of ``sample`` [K, r]."""
    mean = sample.mean(axis=0)
    centred = sample - mean
    lam, vec = np.linalg.eigh(centred.T @ centred / (len(sample) - 1))
    return mean, lam, vec


def _subspace(fit: np.ndarray, rtol: float) -> tuple[np.ndarray, float]:
    """Orthonormal basis [C, r] of the directions the rows of ``fit`` span about their mean, and
    the largest eigenvalue of their covariance.

    The basis: the covariance's eigenvectors whose eigenvalue exceeds ``rtol`` times the largest;
    [C, 0] when every row is the same.
    """
    _, lam, vec = _cov_eigh(fit)
    top = float(lam[-1])
    if not top > 0:
        return vec[:, :0], 0.0
    return vec[:, lam > rtol * top], top


def _mvn_logpdf(x: np.ndarray, sample: np.ndarray, floor: float) -> np.ndarray:
    """log N(x; mean, cov) of the Gaussian fitted to ``sample`` [K, r] (ddof 1) at ``x`` [M, r].

    The covariance's eigenvalues are floored at ``floor`` (> 0), so a side without spread along
    a direction is a very narrow Gaussian there rather than a singular one.
    """
    mean, lam, vec = _cov_eigh(sample)
    lam = np.maximum(lam, floor)
    z = (x - mean) @ vec
    maha = np.sum(z**2 / lam, axis=1)
    return -0.5 * (maha + np.sum(np.log(lam)) + x.shape[1] * np.log(2 * np.pi))


def output_vector_auc(
    in_outputs: np.ndarray,
    out_outputs: np.ndarray,
    n_splits: int = 50,
    seed: int = 0,
    rtol: float = 1e-10,
) -> tuple[float, float, float]:
    """The original's MIA: a full-covariance Gaussian on the whole output vector.

    In each half split of :func:`half_split_auc` (same seed, same splits), the fit halves of the
    in models and of the out models [K/2, C] fit one multivariate Gaussian each (mean, ddof-1
    covariance); the held-out halves are scored by log N(o; in) - log N(o; out) and the ROC AUC
    taken (in = positive), as the original's compute_auc_and_diff.py. Returns (AUC mean, AUC std,
    :func:`half_split_diff`) over ``n_splits`` splits.

    Singular covariances (outputs summing to a constant, e.g. softmax probabilities or MSE
    networks' outputs for centred one-hot targets; fewer fit models than outputs): both Gaussians
    are fitted in the subspace the pooled fit halves span, the eigenvectors of the covariance of
    all fit-half outputs (in and out together, about their joint mean) with eigenvalue above
    ``rtol`` times the largest; the dropped directions carry no spread in the fit data, so they
    cannot separate the two Gaussians' fits. Within the subspace each side's covariance
    eigenvalues are floored at ``rtol`` times that largest eigenvalue (a side with no spread
    along a kept direction: a narrow Gaussian, not a singular one). Well-conditioned data are
    untouched (the plain full-C fit); with C = 1 this is :func:`half_split_auc` on the output.
    Identical fit data on both sides (no direction kept) give log ratio 0, AUC 0.5.
    """
    a, b = _as_outputs(in_outputs, out_outputs)
    _check_models(a, b, n_splits)
    if not rtol > 0:
        raise ValueError(f"rtol must be > 0, got {rtol}")
    aucs = np.empty(n_splits)
    for s, (fin, tin, fout, tout) in enumerate(_half_splits(len(a), len(b), n_splits, seed)):
        basis, top = _subspace(np.concatenate([a[fin], b[fout]]), rtol)
        test = np.concatenate([a[tin], b[tout]])
        labels = np.concatenate([np.ones(len(tin)), np.zeros(len(tout))])
        if basis.shape[1] == 0:
            aucs[s] = 0.5
            continue
        fit_in, fit_out, test = a[fin] @ basis, b[fout] @ basis, test @ basis
        floor = rtol * top
        llr = _mvn_logpdf(test, fit_in, floor) - _mvn_logpdf(test, fit_out, floor)
        aucs[s] = roc_auc(labels, llr)
    return float(aucs.mean()), float(aucs.std()), half_split_diff(a, b, n_splits, seed)


def record_mia(
    in_outputs: np.ndarray,
    out_outputs: np.ndarray,
    label: int,
    score: str,
    n_splits: int,
    seed: int,
) -> tuple[float, float, float]:
    """(AUC mean, AUC std, :func:`half_split_diff`) of one record's MIA with ``mia.score``.

    ``margin``: :func:`half_split_auc` of :func:`margin_score`; ``output_vector``:
    :func:`output_vector_auc`. ``in_outputs`` [K_in, C], ``out_outputs`` [K_out, C].
    """
    if score == "margin":
        auc, std = half_split_auc(margin_score(in_outputs, label), margin_score(out_outputs, label),
                                  n_splits=n_splits, seed=seed)  # fmt: skip
        return auc, std, half_split_diff(in_outputs, out_outputs, n_splits, seed)
    if score == "output_vector":
        return output_vector_auc(in_outputs, out_outputs, n_splits=n_splits, seed=seed)
    raise ValueError(f"mia.score: {score!r} is not one of {list(MIA_SCORES)}")


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
    spec: MiaSpec,
) -> pd.DataFrame:
    """One row per differing record: MIA AUC (mean, std over half splits) and prediction difference.

    ``models_in`` / ``models_out`` are the arrays written by the training jobs (see
    :func:`lood.jobs.training.train_role`). The AUC is :func:`record_mia`'s with ``spec.score``
    (``margin`` or ``output_vector``) on ``spec.n_splits`` half splits, seed ``spec.seed +
    position``; the ``*_score_*`` columns are always the :func:`margin_score` of each model on the
    record. Appended after the original columns: ``pred_diff_halves`` (:func:`half_split_diff`)
    and ``mia_score`` (the score).
    """
    score, n_splits, seed = spec.score, spec.n_splits, spec.seed
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
        auc, auc_std, diff_halves = record_mia(ins, outs, int(label), score, n_splits, seed + j)
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
                "pred_diff_halves": diff_halves,
                "mia_score": score,
            }
        )
    return pd.DataFrame(rows)

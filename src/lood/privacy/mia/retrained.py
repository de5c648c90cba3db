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
from lood.privacy.signals import margin_score, true_class_margin
from lood.privacy.spec import MiaSpec
from lood.seeds import derive_seed
from lood.stats import split_half_reliability


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
    columns are the margin's whatever the score. All ``t`` of a record share its seed, hence its
    half splits, so they are fitted at once (:func:`record_mia_batch`).
    """
    frames = []
    for i, (record, label, pos) in enumerate(zip(records, labels, positions, strict=True)):
        ins = np.moveaxis(np.asarray(in_outputs[:, i], dtype=np.float64), 1, 0)  # [T, K_in, C]
        outs = np.moveaxis(np.asarray(out_outputs[i], dtype=np.float64), 1, 0)  # [T, K_out, C]
        auc, std, _ = record_mia_batch(
            ins, outs, int(label), spec.score, spec.n_splits, spec.seed + int(pos)
        )
        frames.append(
            pd.DataFrame(
                {
                    "differ_idx": int(record),
                    "t": np.asarray(t, dtype=np.float64),
                    "mia_auc": auc,
                    "mia_auc_std": std,
                    "in_score_mean": true_class_margin(ins, int(label)).mean(axis=-1),
                    "out_score_mean": true_class_margin(outs, int(label)).mean(axis=-1),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


MIA_SCORES = ("margin", "output_vector")
"""Values of ``mia.score``: the attack statistic of :func:`record_mia`."""


def _split_indices(
    n_in: int, n_out: int, n_splits: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(fit_in, test_in, fit_out, test_out) index arrays [n_splits, .] of random half splits.

    Split ``s`` draws ``rng.permutation(n_in)`` then ``rng.permutation(n_out)`` from one
    ``np.random.default_rng(seed)``; the first ``n // 2`` of each fit. Every half-split statistic
    of this module uses these draws, so for one seed they all see the same splits.
    """
    rng = np.random.default_rng(seed)
    perms = [(rng.permutation(n_in), rng.permutation(n_out)) for _ in range(n_splits)]
    pin = np.stack([p for p, _ in perms]).reshape(n_splits, n_in)
    pout = np.stack([q for _, q in perms]).reshape(n_splits, n_out)
    hin, hout = n_in // 2, n_out // 2
    return pin[:, :hin], pin[:, hin:], pout[:, :hout], pout[:, hout:]


def _half_splits(
    n_in: int, n_out: int, n_splits: int, seed: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """The splits of :func:`_split_indices` one at a time (fit_in, test_in, fit_out, test_out)."""
    yield from zip(*_split_indices(n_in, n_out, n_splits, seed), strict=True)


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


def half_split_aucs(
    in_scores: np.ndarray, out_scores: np.ndarray, n_splits: int = 50, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`half_split_auc` of a batch of points at once: ``in_scores`` [..., K_in] and
    ``out_scores`` [..., K_out] hold one set of model scores per point, every point on the same
    ``n_splits`` half splits of ``seed``. Returns (mean [...], std [...]) over the splits.

    All splits and points are fitted in one pass of numpy: the Gaussians' moments along the model
    axis, the log likelihood ratios of the held-out halves, and their ROC AUC from ranks
    (:func:`_batch_auc`).
    """
    a = np.asarray(in_scores, dtype=np.float64)
    b = np.asarray(out_scores, dtype=np.float64)
    if a.shape[:-1] != b.shape[:-1]:
        raise ValueError(f"in and out scores of different points: {a.shape} vs {b.shape}")
    _check_models(np.moveaxis(a, -1, 0), np.moveaxis(b, -1, 0), n_splits)
    fin, tin, fout, tout = _split_indices(a.shape[-1], b.shape[-1], n_splits, seed)
    test = np.concatenate([a[..., tin], b[..., tout]], axis=-1)  # [..., S, M]
    llr = _gauss_logpdf(test, a[..., fin]) - _gauss_logpdf(test, b[..., fout])
    aucs = _batch_auc(llr, tin.shape[1])
    return aucs.mean(axis=-1), aucs.std(axis=-1)


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
    mean, std = half_split_aucs(in_scores, out_scores, n_splits, seed)
    return float(mean), float(std)


def _batch_auc(scores: np.ndarray, n_pos: int) -> np.ndarray:
    """ROC AUC of each row of ``scores`` [..., M] whose first ``n_pos`` entries are the positives.

    Mann-Whitney's U / (n_pos n_neg) from average ranks (ties count 1/2): the area under the
    trapezoidal ROC curve (:func:`lood.privacy.metrics.roc_auc`), computed exactly (U is a
    multiple of 1/2) and rounded once.
    """
    n_neg = scores.shape[-1] - n_pos
    ranks = stats.rankdata(scores, axis=-1)
    u = ranks[..., :n_pos].sum(axis=-1) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


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
    return float(half_split_diffs(a, b, n_splits, seed))


def half_split_diffs(
    in_outputs: np.ndarray, out_outputs: np.ndarray, n_splits: int = 50, seed: int = 0
) -> np.ndarray:
    """:func:`half_split_diff` of a batch of points: ``in_outputs`` [..., K_in, C],
    ``out_outputs`` [..., K_out, C], all on the same splits; returns [...]."""
    a = np.asarray(in_outputs, dtype=np.float64)
    b = np.asarray(out_outputs, dtype=np.float64)
    _check_models(np.moveaxis(a, -2, 0), np.moveaxis(b, -2, 0), n_splits)
    _, tin, _, tout = _split_indices(a.shape[-2], b.shape[-2], n_splits, seed)
    gap = a[..., tin, :].mean(axis=-2) - b[..., tout, :].mean(axis=-2)  # [..., S, C]
    return np.mean(gap**2, axis=-1).mean(axis=-1)


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
    margin_score(in_outputs, label)  # validates the shapes and the label
    margin_score(out_outputs, label)
    auc, std, diff = record_mia_batch(in_outputs, out_outputs, label, score, n_splits, seed)
    return float(auc), float(std), float(diff)


def record_mia_batch(
    in_outputs: np.ndarray,
    out_outputs: np.ndarray,
    label: int,
    score: str,
    n_splits: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`record_mia` of a batch of points of one record (same label, same splits):
    ``in_outputs`` [..., K_in, C], ``out_outputs`` [..., K_out, C]; returns three arrays [...].

    ``margin`` fits all points and splits at once (:func:`half_split_aucs`);
    ``output_vector`` loops over the points (one eigendecomposition per split and point).
    """
    a = np.asarray(in_outputs, dtype=np.float64)
    b = np.asarray(out_outputs, dtype=np.float64)
    if score == "margin":
        s_in, s_out = true_class_margin(a, label), true_class_margin(b, label)
        auc, std = half_split_aucs(s_in, s_out, n_splits=n_splits, seed=seed)
        return auc, std, half_split_diffs(a, b, n_splits, seed)
    if score == "output_vector":
        batch = a.shape[:-2]
        flat = [
            output_vector_auc(x, y, n_splits=n_splits, seed=seed)
            for x, y in zip(a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:]), strict=True)
        ]
        cols = np.array(flat, dtype=np.float64).reshape(*batch, 3)
        return cols[..., 0], cols[..., 1], cols[..., 2]
    raise ValueError(f"mia.score: {score!r} is not one of {list(MIA_SCORES)}")


def _gauss_logpdf(x: np.ndarray, sample: np.ndarray) -> np.ndarray:
    """log N(x; mean, sd) of the Gaussian fitted to ``sample`` [..., K] (ddof 1) at ``x`` [..., M].

    The standard deviation is floored at 1e-12 of the sample's scale (and 1e-30): a sample of
    equal values is a very narrow Gaussian. The arithmetic is scipy.stats.norm.logpdf's.
    """
    spread = sample.std(axis=-1, ddof=1, keepdims=True)
    size = np.maximum(1.0, np.abs(sample).max(axis=-1, keepdims=True))
    scale = np.maximum(np.maximum(spread, 1e-12 * size), 1e-30)
    z = (x - sample.mean(axis=-1, keepdims=True)) / scale
    return -(z**2) / 2.0 - _NORM_LOG_C - np.log(scale)


_NORM_LOG_C = float(np.log(np.sqrt(2 * np.pi)))  # scipy's _norm_pdf_logC


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
    out_self, out_acc = _own_out_models(differ_idx, models_out)
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


def _own_out_models(
    differ_idx: np.ndarray, models_out: list[dict[str, np.ndarray]]
) -> tuple[dict[int, np.ndarray], dict[int, float]]:
    """Each record's out models' outputs on it [K_out, C] and their mean test accuracy."""
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
    return out_self, out_acc


N_HALVES = 10
"""Random half splits of the models behind the noise ceiling (:func:`mia_halves_table`)."""

N_BOOTSTRAP = 1000
"""Bootstrap resamples of the records for the reliability's interval (:func:`noise_ceilings`)."""


def model_halves(n_in: int, n_out: int, n_halves: int, seed: int) -> list[tuple[np.ndarray, ...]]:
    """``n_halves`` random half splits of the models: (in_a, in_b, out_a, out_b) index arrays.

    Split h draws ``rng.permutation(n_in)`` then ``rng.permutation(n_out)`` from one
    ``np.random.default_rng(seed)``; half a is the first ``n // 2`` of each, half b the next
    ``n // 2`` (an odd count leaves the last model of the permutation out, so both halves are
    the same size). The same splits serve every record (the in models are shared by them all).
    """
    if n_in < 8 or n_out < 8:
        raise ValueError(
            f"need at least 8 in and 8 out models for two half MIAs, got {n_in}, {n_out}"
        )
    rng = np.random.default_rng(seed)
    splits = []
    for _ in range(n_halves):
        pin, pout = rng.permutation(n_in), rng.permutation(n_out)
        hi, ho = n_in // 2, n_out // 2
        splits.append((pin[:hi], pin[hi : 2 * hi], pout[:ho], pout[ho : 2 * ho]))
    return splits


def mia_halves_table(
    differ: pd.DataFrame,
    models_in: dict[str, np.ndarray],
    models_out: list[dict[str, np.ndarray]],
    spec: MiaSpec,
    n_halves: int = N_HALVES,
    n_models: int | None = None,
) -> pd.DataFrame:
    """The ground truth of ``mia.csv`` measured twice per record, on two disjoint halves of the
    models: long table (differ_idx, half_split, half, mia_auc, pred_diff).

    Model halves: :func:`model_halves` with seed ``derive_seed(spec.seed, "model_halves")``;
    half ``a`` holds K_in // 2 in and K_out // 2 out models, ``b`` as many others. On each half
    the record's MIA is :func:`record_mia`'s (``spec.score``, ``spec.n_splits`` half splits
    within the half, seed ``spec.seed + position`` as ``mia.csv``) and ``pred_diff`` is
    :func:`prediction_difference`. ``n_models``: use only the first ``n_models`` in and out
    models (how the reliability grows with the number of models).
    """
    differ_idx = differ["differ_idx"].to_numpy()
    labels = differ["label"].to_numpy()
    out_self, _ = _own_out_models(differ_idx, models_out)
    ins_all = np.asarray(models_in["outputs_differ"], dtype=np.float64)[:n_models]
    k_out = len(out_self[int(differ_idx[0])][:n_models])
    splits = model_halves(len(ins_all), k_out, n_halves, derive_seed(spec.seed, "model_halves"))
    frames = []
    for j, (record, label) in enumerate(zip(differ_idx, labels, strict=True)):
        ins = ins_all[:, j, :]
        outs = np.asarray(out_self[int(record)], dtype=np.float64)[:n_models]
        half_in = np.stack([ins[h] for split in splits for h in split[:2]])  # [2H, K_in/2, C]
        half_out = np.stack([outs[h] for split in splits for h in split[2:]])
        auc, _, _ = record_mia_batch(
            half_in, half_out, int(label), spec.score, spec.n_splits, spec.seed + j
        )
        diff = [prediction_difference(x, y) for x, y in zip(half_in, half_out, strict=True)]
        frames.append(
            pd.DataFrame(
                {
                    "differ_idx": int(record),
                    "half_split": np.repeat(np.arange(n_halves), 2),
                    "half": np.tile(["a", "b"], n_halves),
                    "mia_auc": auc,
                    "pred_diff": diff,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def noise_ceilings(
    halves: pd.DataFrame, seed: int, n_bootstrap: int = N_BOOTSTRAP
) -> dict[str, dict[str, float]]:
    """The noise ceiling of ``mia.csv``'s ``mia_auc`` and ``pred_diff``, keyed by column.

    The estimator: each record's value is measured on two disjoint halves of the models
    (:func:`mia_halves_table`: ``N_HALVES`` = 10 random half splits, seed from ``mia.seed``);
    the Pearson r across records between half a and half b, averaged over the 10 splits, is the
    split-half correlation; its Spearman-Brown value 2 r / (1 + r) the reliability of the
    full-size value (all K_in + K_out models); its interval the 2.5-97.5 percentiles over
    ``n_bootstrap`` (1000) resamples of the records with replacement (rng seed
    ``derive_seed(seed, "bootstrap")``, ``seed`` = ``mia.seed``): :func:`lood.stats.
    split_half_reliability`. The ceiling of any error-free estimate's r is sqrt(reliability)
    (:func:`lood.stats.with_ceilings`).
    """
    out = {}
    for col in ("mia_auc", "pred_diff"):
        wide = halves.pivot_table(index="differ_idx", columns=["half", "half_split"], values=col)
        out[col] = split_half_reliability(
            wide["a"].to_numpy(), wide["b"].to_numpy(), n_bootstrap, derive_seed(seed, "bootstrap")
        )
    return out

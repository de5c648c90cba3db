"""PANORAMIA: privacy measurement with generated non-members (Kazmi et al., NeurIPS 2024).

A membership-inference audit that needs no retraining of the target and no real non-members.
Some of the target's training records (the *members*, D) are split, seeded, into three parts
(:func:`split_members`):

* a **generator set**, on which a generative model G is trained (:mod:`lood.privacy.panoramia.generator`);
* an **attack-training set**: these members plus as many fresh samples of G, each generated
  with the label of one member (so the label distribution carries no signal);
* an **attack-test set** of slots: slot i holds the i-th member of this part or, with
  probability 1/2 (independent fair coins), a fresh sample of G with the same label.

A **helper model** (the target's architecture and training, :func:`train_helper`) is trained on
another batch of generated data only. Two classifiers are then trained on the attack-training
set to tell real members from generated points (:func:`output_features`):

* the **baseline**, which never queries the target: features of the helper model's outputs
  (training loss and margin at the record's label), optionally the raw input;
* the **MIA**: the baseline's features plus the same features of the target model's outputs.

Both score the attack-test set (higher = "member"). Guessing "member" for the r highest
scores, v of the r guesses are correct. If the generated data are c-close to the members
(PANORAMIA's Definition 3) and training is eps-DP, each guess is right with probability at
most ``e^(c+eps) / (1 + e^(c+eps))`` and so ``P[V >= v] <= P[Binomial(r, e^x / (1 + e^x)) >= v]``
with x = c + eps for the MIA and x = c for the baseline (no target access, eps = 0). The
largest x that this rejects at level ``1 - confidence`` is a lower bound on x: the one-run
audit's bound with delta = 0 (:func:`lood.privacy.audit.one_run.epsilon_lower_bound`). This is done at every
guess count r of a grid fixed before the scores are seen (:func:`guess_grid`; each r is the
score threshold at the r-th highest score), and each classifier's bound is the best over the
grid. The **multiple-threshold correction** is Bonferroni: with T thresholds each test is run
at confidence ``1 - (1 - confidence) / T``, so the maximum over thresholds still holds at
``confidence`` (``correction="none"`` turns it off, e.g. for a single threshold).

``c_lb`` is the baseline's bound, ``{c+eps}_lb`` the MIA's, and
``eps_tilde = {c+eps}_lb - c_lb`` PANORAMIA's privacy measurement. Caveat (as in the paper):
each bound holds at ``confidence``, but ``c_lb`` is a *lower* bound on c, so eps_tilde is a
measurement, not a certified lower bound on eps; a weak baseline inflates it. The MIA's
features contain the baseline's, so any gain of the MIA comes from querying the target. With
r guesses the largest certifiable value is ``log(q / (1 - q))``, ``q = (1 - confidence')^(1/r)``
(the ``ceiling`` column, at the number of members in the test set).

Ranking ties are broken by slot index (lower index ranks higher), as in :mod:`lood.privacy.audit.one_run`;
slots are in random member/generated order, so this does not favour either.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from lood.arch import Architecture
from lood.privacy.audit import epsilon_lower_bound
from lood.privacy.metrics import roc_auc
from lood.privacy.signals import mse_score, true_class_margin
from lood.privacy.spec import PanoramiaSpec, member_counts
from lood.seeds import derive_seed
from lood.train.ensemble import train_ensemble
from lood.train.models import Params, forward, n_models
from lood.train.spec import TrainConfig

CLASSIFIERS = ("gbdt", "logistic")
CORRECTIONS = ("bonferroni", "none")
LOSSES = ("mse", "cross_entropy")

SUMMARY_COLUMNS = [
    "target",
    "c_lb",
    "c_plus_eps_lb",
    "eps_tilde",
    "confidence",
    "correction",
    "n_thresholds",
    "confidence_per_threshold",
    "ceiling",
    "baseline_r",
    "baseline_v",
    "baseline_threshold",
    "baseline_precision",
    "mia_r",
    "mia_v",
    "mia_threshold",
    "mia_precision",
    "baseline_auc",
    "mia_auc",
    "n_attack_train",
    "n_attack_test",
    "n_test_members",
]
CURVE_COLUMNS = ["target", "classifier", "r", "threshold", "v", "precision", "recall"]
THRESHOLD_COLUMNS = CURVE_COLUMNS + ["eps_lb"]

# A non-member source: labels [n] and a seed -> one non-member input per label [n, d].
NonmemberSource = Callable[[np.ndarray, int], np.ndarray]


# ---------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class MemberSplit:
    """Indices into D of the generator, attack-training and attack-test members (disjoint)."""

    generator: np.ndarray
    attack_train: np.ndarray
    attack_test: np.ndarray


def split_members(
    n: int, fractions: Sequence[float] = (0.5, 0.25, 0.25), seed: int = 0
) -> MemberSplit:
    """Split D's ``n`` records, seeded, into generator / attack-train / attack-test parts.

    Part sizes are :func:`lood.privacy.spec.member_counts` (``floor(fraction * n)`` for the two
    attack parts, the rest of ``round(sum(fractions) * n)`` for the generator; fractions may sum
    to less than 1, the remaining records are unused). Each part is sorted.
    """
    n_gen, n_train, n_test = member_counts(n, fractions)
    perm = np.random.default_rng(seed).permutation(n)
    cuts = np.cumsum([n_gen, n_train, n_test])
    return MemberSplit(
        generator=np.sort(perm[: cuts[0]]),
        attack_train=np.sort(perm[cuts[0] : cuts[1]]),
        attack_test=np.sort(perm[cuts[1] : cuts[2]]),
    )


@dataclass
class AttackSets:
    """Helper-training data and the attack-training and attack-test sets.

    ``*_source`` holds the index into D of a member and -1 for a generated point; labels are
    the members' (training) labels, and a generated point carries the label it was generated
    for. ``test_member`` are the attack-test coins.
    """

    x_helper: np.ndarray
    y_helper: np.ndarray
    x_train: np.ndarray
    y_train: np.ndarray
    train_member: np.ndarray
    train_source: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    test_member: np.ndarray
    test_source: np.ndarray

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write all arrays to an ``.npz`` (fixed numeric dtypes, atomically)."""
        from lood.io import savez

        savez(path, **{k: np.asarray(v) for k, v in vars(self).items()})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AttackSets:
        """Read a file written by :meth:`save` (never unpickles)."""
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in cls.__dataclass_fields__ if k not in npz.files]
            if missing:
                raise ValueError(f"{path}: not an attack-sets file, missing arrays {missing}")
            return cls(**{k: npz[k] for k in cls.__dataclass_fields__})


def vae_source(model) -> NonmemberSource:
    """Non-member source drawing from a :class:`lood.privacy.panoramia.generator.ConditionalVAE`."""

    def source(labels: np.ndarray, seed: int) -> np.ndarray:
        return model.sample(np.asarray(labels, dtype=np.int64), seed=seed)

    return source


def pool_source(x_pool: np.ndarray, y_pool: np.ndarray) -> NonmemberSource:
    """Non-member source drawing real records of each requested label without replacement.

    For null experiments ("generated" points that are in fact real non-members). Raises if
    the pool has too few records of some label.
    """
    x_pool = np.asarray(x_pool, dtype=np.float32)
    y_pool = np.asarray(y_pool)

    def source(labels: np.ndarray, seed: int) -> np.ndarray:
        labels = np.asarray(labels)
        rng = np.random.default_rng(seed)
        out = np.empty((len(labels), x_pool.shape[1]), dtype=np.float32)
        for c in np.unique(labels):
            want = np.flatnonzero(labels == c)
            have = np.flatnonzero(y_pool == c)
            if len(have) < len(want):
                raise ValueError(f"pool has {len(have)} records of label {c}, {len(want)} needed")
            out[want] = x_pool[rng.choice(have, size=len(want), replace=False)]
        return out

    return source


def build_attack_sets(
    x: np.ndarray,
    y: np.ndarray,
    split: MemberSplit,
    source: NonmemberSource,
    n_helper: int,
    seed: int = 0,
    source_labels: np.ndarray | None = None,
) -> AttackSets:
    """Draw the non-members and assemble helper, attack-training and attack-test data.

    ``x``, ``y`` are D (inputs as the target sees them, training labels). The helper's
    ``n_helper`` labels are resampled from the generator set's labels; every attack-training
    member gets one generated partner with its label; attack-test slot i holds member
    ``split.attack_test[i]`` if its coin (``numpy.random.default_rng``, fair) is heads, else a
    generated point with that member's label. All non-members come from one call of ``source``
    (so a pool source never repeats a record).

    ``source_labels`` [n] (default ``y``): the class each member's partner is drawn from, while
    the partner still carries the member's training label ``y``. For mislabelled canaries pass
    their true classes: a canary's partner is then a fresh record of its true class under the
    same wrong label, a mislabelled non-member, so that the mislabelling itself (which a helper
    model sees) does not separate members from non-members, only the target's memorisation does.
    Helper data copy the labels of resampled generator-set records the same way.
    """
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"x must be [n, d] and y [n], got {x.shape} and {y.shape}")
    if n_helper < 1:
        raise ValueError(f"n_helper must be >= 1, got {n_helper}")
    src_y = y if source_labels is None else np.asarray(source_labels, dtype=np.int64)
    if src_y.shape != y.shape:
        raise ValueError(f"source_labels must have shape {y.shape}, got {src_y.shape}")
    rng = np.random.default_rng(derive_seed(seed, "panoramia", "sets"))
    helper_idx = rng.choice(split.generator, size=int(n_helper), replace=True)
    y_helper = y[helper_idx]
    y_tr, y_te = y[split.attack_train], y[split.attack_test]
    coins = np.random.default_rng(derive_seed(seed, "panoramia", "coins")).integers(
        0, 2, size=len(y_te)
    )
    coins = coins.astype(bool)
    idx = np.concatenate([helper_idx, split.attack_train, split.attack_test])
    labels = src_y[idx]
    gen = np.asarray(source(labels, derive_seed(seed, "panoramia", "nonmembers")), np.float32)
    if gen.shape != (len(labels), x.shape[1]):
        raise ValueError(f"source returned shape {gen.shape}, expected {(len(labels), x.shape[1])}")
    g_helper, g_train, g_test = np.split(gen, np.cumsum([len(y_helper), len(y_tr)]))
    n_tr = len(y_tr)
    return AttackSets(
        x_helper=g_helper,
        y_helper=y_helper,
        x_train=np.concatenate([x[split.attack_train], g_train]),
        y_train=np.concatenate([y_tr, y_tr]),
        train_member=np.concatenate([np.ones(n_tr, bool), np.zeros(n_tr, bool)]),
        train_source=np.concatenate([split.attack_train, np.full(n_tr, -1)]).astype(np.int64),
        x_test=np.where(coins[:, None], x[split.attack_test], g_test),
        y_test=y_te.copy(),
        test_member=coins,
        test_source=np.where(coins, split.attack_test, -1).astype(np.int64),
    )


# ---------------------------------------------------------------------------------------------
# Helper model and features


def train_helper(
    x: np.ndarray,
    y: np.ndarray,
    arch: Architecture,
    tcfg: TrainConfig,
    seeds: Sequence[int],
    device: str = "cpu",
) -> Params:
    """Train ``len(seeds)`` helper models (the target's architecture and optimisation) on the
    generated data ``x``, ``y`` with :func:`lood.train.ensemble.train_ensemble`; returns their stacked
    parameters (CPU)."""
    xt = torch.tensor(np.asarray(x), dtype=torch.float32)
    yt = torch.tensor(np.asarray(y), dtype=torch.int64)
    masks = np.ones((len(seeds), len(yt)), dtype=bool)
    result = train_ensemble(arch, tcfg, xt, yt, masks, [int(s) for s in seeds], device=device)
    return result.params


def model_outputs(
    params: Params, arch: Architecture, x: np.ndarray, rows: int = 4096
) -> np.ndarray:
    """Outputs ``[K, n, C]`` (float64) of every model of a stacked ensemble on ``x [n, d]``."""
    xt = torch.as_tensor(np.asarray(x), dtype=next(iter(params.values())).dtype)
    if len(xt) == 0:
        return np.zeros((n_models(params), 0, arch.n_outputs))
    with torch.no_grad():
        parts = [forward(params, arch, xt[i : i + rows]).cpu() for i in range(0, len(xt), rows)]
    return torch.cat(parts, dim=1).double().numpy()


def output_features(outputs: np.ndarray, labels: np.ndarray, loss: str = "mse") -> np.ndarray:
    """Per-record features ``[n, 2]`` from model outputs ``[K, n, C]`` (or ``[n, C]``).

    Column 0: the training loss at the record's label (``mse``: 0.5 |f(x) - (onehot - 1/C)|^2,
    ``cross_entropy``: -log softmax); column 1: the margin, output at the label minus the
    largest other output. With K > 1 models both are averaged over the models.
    """
    out = np.asarray(outputs, dtype=np.float64)
    if out.ndim == 2:
        out = out[None]
    labels = np.asarray(labels, dtype=np.int64)
    if out.ndim != 3 or out.shape[1] != len(labels):
        raise ValueError(f"outputs must be [K, n={len(labels)}, C], got {np.shape(outputs)}")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    c = out.shape[2]
    if c < 2:
        raise ValueError("output features need at least 2 classes")
    if loss == "mse":
        per_loss = -mse_score(out, labels)
    else:
        rows = np.arange(len(labels))
        mx = out.max(-1, keepdims=True)
        lse = mx[..., 0] + np.log(np.exp(out - mx).sum(-1))
        per_loss = lse - out[:, rows, labels]
    margin = true_class_margin(out, labels)
    return np.stack([per_loss.mean(0), margin.mean(0)], axis=1)


def make_classifier(kind: str, seed: int = 0):
    """The attack classifier: ``gbdt`` (histogram gradient boosting, no early stopping) or
    ``logistic`` (standardised logistic regression). Deterministic for a fixed seed."""
    if kind == "gbdt":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(
            max_iter=200,
            learning_rate=0.05,
            max_leaf_nodes=15,
            min_samples_leaf=20,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=seed,
        )
    if kind == "logistic":
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {kind!r}")


def fit_scores(
    x_train: np.ndarray,
    member_train: np.ndarray,
    x_test: np.ndarray,
    kind: str,
    seed: int = 0,
    threads: int | None = None,
) -> np.ndarray:
    """Fit the attack classifier on (features, member flags) and return member probabilities
    of the test features. ``threads`` caps the OpenMP/BLAS threads of the fit (gradient
    boosting otherwise uses every core, which on a shared machine can be 20x slower)."""
    from threadpoolctl import threadpool_limits

    clf = make_classifier(kind, seed)
    with threadpool_limits(limits=threads):
        clf.fit(np.asarray(x_train, dtype=np.float64), np.asarray(member_train, dtype=bool))
        return clf.predict_proba(np.asarray(x_test, dtype=np.float64))[:, 1]


# ---------------------------------------------------------------------------------------------
# Bounds over thresholds


def guess_grid(n: int, n_thresholds: int = 20, r_min: int = 10) -> np.ndarray:
    """Guess counts r at which to threshold: ~``n_thresholds`` geometrically spaced integers
    from ``min(r_min, n)`` to ``n`` (duplicates after rounding removed). Fixed before the
    scores are seen, as the multiple-testing correction requires."""
    n, n_thresholds, r_min = int(n), int(n_thresholds), int(r_min)
    if n < 1 or n_thresholds < 1 or r_min < 1:
        raise ValueError(f"need n, n_thresholds, r_min >= 1, got {n}, {n_thresholds}, {r_min}")
    lo = min(r_min, n)
    if n_thresholds == 1:
        return np.array([n])
    return np.unique(np.round(np.geomspace(lo, n, n_thresholds)).astype(np.int64))


def per_threshold_confidence(confidence: float, n_thresholds: int, correction: str) -> float:
    """Confidence of each single-threshold test so that all hold jointly at ``confidence``."""
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {correction!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if correction == "none":
        return float(confidence)
    return 1.0 - (1.0 - float(confidence)) / int(n_thresholds)


def precision_recall(scores: np.ndarray, is_member: np.ndarray) -> pd.DataFrame:
    """Every cut point r = 1..n of the ranking: threshold (r-th highest score), v correct
    guesses among the r highest, precision v / r and recall v / (number of members)."""
    scores = np.asarray(scores, dtype=np.float64)
    is_member = np.asarray(is_member, dtype=bool)
    if scores.ndim != 1 or is_member.shape != scores.shape:
        raise ValueError(
            f"scores and is_member must be 1-D of equal length, got "
            f"{scores.shape}, {is_member.shape}"
        )
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    order = np.argsort(-scores, kind="stable")
    v = np.cumsum(is_member[order])
    r = np.arange(1, len(scores) + 1)
    n_pos = max(int(is_member.sum()), 1)
    return pd.DataFrame(
        {"r": r, "threshold": scores[order], "v": v, "precision": v / r, "recall": v / n_pos}
    )


def threshold_bounds(
    scores: np.ndarray,
    is_member: np.ndarray,
    r_grid: np.ndarray,
    confidence: float = 0.95,
    correction: str = "bonferroni",
) -> pd.DataFrame:
    """Lower bound (on c for the baseline, c + eps for the MIA) at each guess count of
    ``r_grid``: :func:`lood.privacy.audit.one_run.epsilon_lower_bound` with delta = 0 at the corrected
    per-threshold confidence. Columns: r, threshold, v, precision, recall, eps_lb."""
    r_grid = np.asarray(r_grid, dtype=np.int64)
    n = len(np.asarray(scores))
    if r_grid.ndim != 1 or len(r_grid) == 0 or r_grid.min() < 1 or r_grid.max() > n:
        raise ValueError(f"r_grid must be non-empty with values in [1, {n}]")
    conf = per_threshold_confidence(confidence, len(r_grid), correction)
    table = precision_recall(scores, is_member).iloc[r_grid - 1].reset_index(drop=True)
    table["eps_lb"] = [
        epsilon_lower_bound(n, int(r), int(v), 0.0, conf)
        for r, v in zip(table.r, table.v, strict=True)
    ]
    return table


def bound_ceiling(
    n_members: int, r_grid: np.ndarray, confidence: float = 0.95, correction: str = "bonferroni"
) -> float:
    """Largest bound any classifier can reach: all of the largest grid r <= ``n_members``
    guesses correct (0 if no grid point is that small)."""
    r_grid = np.asarray(r_grid)
    ok = r_grid[r_grid <= n_members]
    if len(ok) == 0:
        return 0.0
    r = int(ok.max())
    conf = per_threshold_confidence(confidence, len(r_grid), correction)
    return epsilon_lower_bound(r, r, r, 0.0, conf)


# ---------------------------------------------------------------------------------------------
# The audit


@dataclass
class PanoramiaResult:
    """``summary``: one row per target model (:data:`SUMMARY_COLUMNS`); ``thresholds``: the
    bound at every grid threshold per classifier; ``curves``: precision and recall at every cut
    point. The baseline's rows in ``thresholds`` and ``curves`` have ``target = -1``."""

    summary: pd.DataFrame
    thresholds: pd.DataFrame
    curves: pd.DataFrame


def _as_stack(outputs: np.ndarray, n: int, name: str) -> np.ndarray:
    out = np.asarray(outputs, dtype=np.float64)
    if out.ndim == 2:
        out = out[None]
    if out.ndim != 3 or out.shape[1] != n:
        raise ValueError(f"{name} must be [K, {n}, C] (or [{n}, C]), got {np.shape(outputs)}")
    return out


def _auc(member: np.ndarray, scores: np.ndarray) -> float:
    return roc_auc(member, scores) if 0 < member.sum() < len(member) else math.nan


def panoramia_audit(
    sets: AttackSets,
    helper_train: np.ndarray,
    helper_test: np.ndarray,
    target_train: np.ndarray,
    target_test: np.ndarray,
    spec: PanoramiaSpec,
    loss: str = "mse",
    threads: int | None = None,
) -> PanoramiaResult:
    """Baseline and MIA of every target model, their bounds and eps_tilde.

    ``helper_*`` are the helper model(s)' outputs ``[K_h, n, C]`` on ``sets.x_train`` /
    ``sets.x_test`` (features averaged over helpers); ``target_*`` the outputs ``[K, n, C]`` of
    the K target models (one audit each, same baseline). ``spec`` gives the classifier, the
    threshold grid (``n_thresholds``, ``r_min``), ``confidence``, ``correction`` and ``seed``;
    ``spec.use_inputs`` adds the raw inputs to both classifiers' features: a stronger baseline
    (so a more trustworthy c_lb), but on MNIST the small VAE's samples are told from real images
    by their pixels alone (blur), and both bounds then sit at the ceiling
    (``benchmarks/bench_panoramia.py``). ``loss`` is the targets' training loss (feature
    definition). ``threads`` caps the classifiers' threads.
    """
    confidence, correction = spec.confidence, spec.correction
    classifier, seed = spec.classifier, spec.seed
    n_tr, n_te = len(sets.y_train), len(sets.y_test)
    member_tr = np.asarray(sets.train_member, dtype=bool)
    member_te = np.asarray(sets.test_member, dtype=bool)
    h_tr = output_features(_as_stack(helper_train, n_tr, "helper_train"), sets.y_train, loss)
    h_te = output_features(_as_stack(helper_test, n_te, "helper_test"), sets.y_test, loss)
    t_tr = _as_stack(target_train, n_tr, "target_train")
    t_te = _as_stack(target_test, n_te, "target_test")
    if t_tr.shape[0] != t_te.shape[0]:
        raise ValueError(f"target_train has {t_tr.shape[0]} models, target_test {t_te.shape[0]}")
    if spec.use_inputs:
        h_tr = np.concatenate([h_tr, sets.x_train], axis=1)
        h_te = np.concatenate([h_te, sets.x_test], axis=1)
    grid = guess_grid(n_te, spec.n_thresholds, spec.r_min)
    conf_t = per_threshold_confidence(confidence, len(grid), correction)
    ceiling = bound_ceiling(int(member_te.sum()), grid, confidence, correction)

    def evaluate(scores: np.ndarray, target: int, name: str):
        bounds = threshold_bounds(scores, member_te, grid, confidence, correction)
        curve = precision_recall(scores, member_te)
        for df in (bounds, curve):
            df.insert(0, "classifier", name)
            df.insert(0, "target", target)
        best = bounds.iloc[int(np.argmax(bounds.eps_lb.to_numpy()))]
        return bounds, curve, best, _auc(member_te, scores)

    base_scores = fit_scores(h_tr, member_tr, h_te, classifier, seed, threads)
    base_bounds, base_curve, base_best, base_auc = evaluate(base_scores, -1, "baseline")
    tables, curves, rows = [base_bounds], [base_curve], []
    for k in range(t_tr.shape[0]):
        f_tr = np.concatenate([h_tr, output_features(t_tr[k], sets.y_train, loss)], axis=1)
        f_te = np.concatenate([h_te, output_features(t_te[k], sets.y_test, loss)], axis=1)
        mia_scores = fit_scores(f_tr, member_tr, f_te, classifier, seed, threads)
        mia_bounds, mia_curve, mia_best, mia_auc = evaluate(mia_scores, k, "mia")
        tables.append(mia_bounds)
        curves.append(mia_curve)
        rows.append(
            {
                "target": k,
                "c_lb": float(base_best.eps_lb),
                "c_plus_eps_lb": float(mia_best.eps_lb),
                "eps_tilde": float(mia_best.eps_lb - base_best.eps_lb),
                "confidence": float(confidence),
                "correction": correction,
                "n_thresholds": len(grid),
                "confidence_per_threshold": conf_t,
                "ceiling": ceiling,
                "baseline_r": int(base_best.r),
                "baseline_v": int(base_best.v),
                "baseline_threshold": float(base_best.threshold),
                "baseline_precision": float(base_best.precision),
                "mia_r": int(mia_best.r),
                "mia_v": int(mia_best.v),
                "mia_threshold": float(mia_best.threshold),
                "mia_precision": float(mia_best.precision),
                "baseline_auc": base_auc,
                "mia_auc": mia_auc,
                "n_attack_train": n_tr,
                "n_attack_test": n_te,
                "n_test_members": int(member_te.sum()),
            }
        )
    return PanoramiaResult(
        summary=pd.DataFrame(rows, columns=SUMMARY_COLUMNS),
        thresholds=pd.concat(tables, ignore_index=True)[THRESHOLD_COLUMNS],
        curves=pd.concat(curves, ignore_index=True)[CURVE_COLUMNS],
    )

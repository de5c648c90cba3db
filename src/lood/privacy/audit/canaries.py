"""Canaries of the one-run audit: records of D, optionally mislabelled, and their membership scores."""

from __future__ import annotations

import numpy as np

from lood.privacy.signals import mse_score, true_class_margin

CANARY_MODES = ("mislabel", "clean")


CANARY_SCORES = ("loss", "margin")


def make_canaries(
    y_train: np.ndarray, m: int, mode: str, n_classes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pick ``m`` canary records of D and their training labels.

    ``mislabel`` gives each canary a random *other* class (an outlier the model can only fit by
    memorising it, which makes membership easy to detect without DP); ``clean`` keeps the label.
    Returns (canary indices into D [m], labels of all of D with the canaries' labels replaced).
    """
    if mode not in CANARY_MODES:
        raise ValueError(f"audit.canary must be one of {CANARY_MODES}, got {mode!r}")
    n = len(y_train)
    if not 2 <= m <= n:
        raise ValueError(f"audit.n_canaries must be in [2, n_train = {n}], got {m}")
    if mode == "mislabel" and n_classes < 2:
        raise ValueError("mislabelled canaries need at least 2 classes")
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n, size=m, replace=False))
    labels = np.asarray(y_train, dtype=np.int64).copy()
    if mode == "mislabel":
        shift = rng.integers(1, n_classes, size=m)  # never 0: always another class
        labels[idx] = (labels[idx] + shift) % n_classes
    return idx, labels


def canary_scores(outputs: np.ndarray, labels: np.ndarray, score: str) -> np.ndarray:
    """Membership scores ``[R, m]`` (higher = more likely trained on) of the canaries.

    ``outputs`` [R, m, C] are the R runs' outputs on the canaries, ``labels`` [m] their training
    labels. ``loss``: minus the squared error to the centred one-hot target (the training loss,
    :func:`lood.privacy.signals.mse_score`); ``margin``: the MIA score
    (:func:`lood.privacy.signals.true_class_margin`).
    """
    outputs = np.asarray(outputs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if outputs.ndim != 3 or outputs.shape[1] != len(labels):
        raise ValueError(f"outputs must be [R, m={len(labels)}, C], got {outputs.shape}")
    if score == "loss":
        return mse_score(outputs, labels)
    if score == "margin":
        return true_class_margin(outputs, labels)
    raise ValueError(f"audit.score must be one of {CANARY_SCORES}, got {score!r}")

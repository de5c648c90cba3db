"""The training/test split: class selection, class-balanced sampling, normalisation."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lood.data.readers import Dataset
from lood.io import atomic_path


@dataclass
class Split:
    """The training set D and a test set, relabelled 0..C-1 and normalised.

    ``train_source_idx`` indexes the source's train pool; ``test_source_idx`` indexes its test
    split when ``test_pool == "test"``, else the train pool (disjoint from D). ``feature_mean``/``feature_scale`` are the training
    statistics of the normalisation, so that new inputs can be mapped the same way.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    train_source_idx: np.ndarray
    test_source_idx: np.ndarray
    image_shape: tuple[int, ...]
    classes: tuple[int, ...]
    normalization: str = "none"
    feature_mean: np.ndarray | None = None
    feature_scale: float = 1.0
    test_pool: str = "test"
    dataset: str = ""

    @property
    def n_classes(self) -> int:
        """Number of classes C."""
        return len(self.classes)

    @property
    def n_features(self) -> int:
        """Number of features d."""
        return int(self.x_train.shape[1])

    def normalize(self, x: np.ndarray) -> np.ndarray:
        """Apply this split's normalisation (training statistics) to raw inputs [n, d]."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.n_features)
        return _apply_normalization(x, self.normalization, self._mean(), self.feature_scale).astype(
            np.float32
        )

    def unnormalize(self, x: np.ndarray) -> np.ndarray:
        """Map normalised inputs back to the source's value range (e.g. to plot them).

        Exact for "none" and "standardize"; for "unit_norm" the per-row norm is lost, so the
        result is the centred direction scaled to the training sample's average row norm.
        """
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.n_features)
        mean = self._mean()
        if self.normalization == "unit_norm":
            x = x / math.sqrt(self.n_features) * self.feature_scale
        elif self.normalization == "standardize":
            x = x * self.feature_scale
        return (x + mean).astype(np.float32)

    def _mean(self) -> np.ndarray:
        if self.feature_mean is None:
            return np.zeros(self.n_features)
        return np.asarray(self.feature_mean, dtype=np.float64)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the split as an ``.npz`` (no pickled objects), atomically."""
        # fixed numeric dtypes: an object array would be pickled by np.savez
        arrays = {
            "x_train": np.asarray(self.x_train, dtype=np.float32),
            "y_train": np.asarray(self.y_train, dtype=np.int64),
            "x_test": np.asarray(self.x_test, dtype=np.float32),
            "y_test": np.asarray(self.y_test, dtype=np.int64),
            "train_source_idx": np.asarray(self.train_source_idx, dtype=np.int64),
            "test_source_idx": np.asarray(self.test_source_idx, dtype=np.int64),
            "image_shape": np.asarray(self.image_shape, dtype=np.int64),
            "classes": np.asarray(self.classes, dtype=np.int64),
            "normalization": np.asarray(self.normalization),
            "feature_mean": self._mean().astype(np.float32),
            "feature_scale": np.asarray(self.feature_scale, dtype=np.float64),
            "test_pool": np.asarray(self.test_pool),
            "dataset": np.asarray(self.dataset),
        }
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Split:
        """Read a split written by :meth:`save` (never unpickles)."""
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        missing = [k for k in _SPLIT_KEYS if k not in arrays]
        if missing:
            raise ValueError(f"{path}: not a split file, missing arrays {missing}")
        return cls(
            x_train=arrays["x_train"].astype(np.float32),
            y_train=arrays["y_train"].astype(np.int64),
            x_test=arrays["x_test"].astype(np.float32),
            y_test=arrays["y_test"].astype(np.int64),
            train_source_idx=arrays["train_source_idx"].astype(np.int64),
            test_source_idx=arrays["test_source_idx"].astype(np.int64),
            image_shape=tuple(int(s) for s in arrays["image_shape"]),
            classes=tuple(int(c) for c in arrays["classes"]),
            normalization=str(arrays["normalization"]),
            feature_mean=arrays["feature_mean"].astype(np.float32),
            feature_scale=float(arrays["feature_scale"]),
            test_pool=str(arrays["test_pool"]),
            dataset=str(arrays["dataset"]),
        )


_SPLIT_KEYS = (
    "x_train",
    "y_train",
    "x_test",
    "y_test",
    "train_source_idx",
    "test_source_idx",
    "image_shape",
    "classes",
    "normalization",
    "feature_mean",
    "feature_scale",
    "test_pool",
    "dataset",
)


def per_class_counts(n: int, n_classes: int) -> list[int]:
    """``n // C`` per class, the remainder spread one each over the first classes."""
    base, rest = divmod(n, n_classes)
    return [base + (1 if k < rest else 0) for k in range(n_classes)]


def _sample(
    rng: np.random.Generator,
    labels: np.ndarray,
    candidates: np.ndarray,
    n: int,
    n_classes: int,
    balanced: bool,
    key: str,
    pool: str,
) -> np.ndarray | str:
    """Draw ``n`` of ``candidates`` (indices; ``labels`` are their relabelled classes).

    Returns the sorted indices, or a message saying why there are too few records.
    """
    if not balanced:
        if len(candidates) < n:
            return f"{key}={n} but the {pool} has only {len(candidates)} records of these classes"
        return np.sort(rng.choice(candidates, size=n, replace=False))
    chosen = []
    for k, need in enumerate(per_class_counts(n, n_classes)):
        members = candidates[labels[candidates] == k]
        if len(members) < need:
            hint = (
                f"; set data.balanced: false to draw them from all {len(candidates)} records of "
                "these classes"
                if len(candidates) >= n
                else ""
            )
            return (
                f"{key}={n} needs {need} records of class index {k} (class balanced) but the "
                f"{pool} has only {len(members)}{hint}"
            )
        chosen.append(rng.choice(members, size=need, replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def _apply_normalization(x: np.ndarray, kind: str, mean: np.ndarray, scale: float) -> np.ndarray:
    """Normalise float64 rows ``x`` with training statistics ``mean`` and ``scale``."""
    if kind == "none":
        return x
    centred = x - mean
    if kind == "standardize":
        return centred / scale
    # unit_norm: each row to squared norm d, so x.x'/d is 1 on the diagonal; zero rows stay 0
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    factor = np.divide(math.sqrt(x.shape[1]), norms, out=np.zeros_like(norms), where=norms > 0)
    return centred * factor


def make_split(
    ds: Dataset,
    classes: Sequence[int],
    n_train: int,
    n_test: int,
    balanced: bool = True,
    normalization: str = "standardize",
    seed: int = 0,
) -> Split:
    """Draw the training set D (``n_train`` records) and a test set (``n_test``) from ``ds``.

    Keeps only ``classes`` (original labels), relabelled 0..C-1 in the order given. The training
    sample is class balanced when ``balanced`` (``n_train // C`` per class, the remainder over
    the first classes), else uniform. Test records come from the source's test split when it
    has enough, else from the train pool, disjoint from D. ``normalization`` is "none",
    "standardize" (minus the per-feature training mean, over the training sample's global std)
    or "unit_norm" (centred as standardize, then each row scaled to squared norm d).

    The arguments are a :class:`lood.data.spec.DataSpec`'s, whose values the config schema
    checked (two or more distinct non-negative classes, ``n_train`` >= 2, ``n_test`` >= 1, a
    known ``normalization``); only what depends on the dataset is checked here.
    """
    classes = [int(c) for c in classes]
    available = sorted(int(c) for c in np.unique(ds.y_train))
    absent = [c for c in classes if c not in available]
    if absent:
        raise ValueError(
            f"data.classes: label(s) {absent} not in dataset {ds.name!r}; "
            f"available labels: {available}"
        )
    n_train, n_test, n_classes = int(n_train), int(n_test), len(classes)

    def relabel(y: np.ndarray) -> np.ndarray:
        out = np.full(len(y), -1, dtype=np.int64)
        for k, c in enumerate(classes):
            out[y == c] = k
        return out

    rng = np.random.default_rng(seed)
    y_pool = relabel(ds.y_train)
    pool = np.flatnonzero(y_pool >= 0)
    train_idx = _sample(
        rng, y_pool, pool, n_train, n_classes, balanced, "data.n_train", "train pool"
    )
    if isinstance(train_idx, str):
        raise ValueError(f"{train_idx} (dataset {ds.name!r}, classes {classes})")

    test_pool = "test"
    test_idx: np.ndarray | str = "the source has no test split"
    if ds.has_test:
        y_test_src = relabel(ds.y_test)
        test_idx = _sample(
            rng,
            y_test_src,
            np.flatnonzero(y_test_src >= 0),
            n_test,
            n_classes,
            balanced,
            "data.n_test",
            "test split",
        )
    if isinstance(test_idx, str):
        first_reason = test_idx
        test_pool = "train"
        rest = np.setdiff1d(pool, train_idx)
        test_idx = _sample(
            rng,
            y_pool,
            rest,
            n_test,
            n_classes,
            balanced,
            "data.n_test",
            "train pool outside the training sample",
        )
        if isinstance(test_idx, str):
            raise ValueError(f"{first_reason}; {test_idx} (dataset {ds.name!r}, classes {classes})")
        x_test_src, y_test_rel = ds.x_train, y_pool
    else:
        x_test_src, y_test_rel = ds.x_test, relabel(ds.y_test)

    x_train = ds.x_train[train_idx].astype(np.float64)
    x_test = x_test_src[test_idx].astype(np.float64)
    mean = x_train.mean(axis=0) if normalization != "none" else np.zeros(x_train.shape[1])
    if normalization == "standardize":
        scale = float((x_train - mean).std())
        if not scale > 0:
            raise ValueError(
                "data.normalization: 'standardize' needs training inputs that are not all equal"
            )
    elif normalization == "unit_norm":
        scale = float(np.linalg.norm(x_train - mean, axis=1).mean())  # for unnormalize only
    else:
        scale = 1.0
    return Split(
        x_train=_apply_normalization(x_train, normalization, mean, scale).astype(np.float32),
        y_train=y_pool[train_idx],
        x_test=_apply_normalization(x_test, normalization, mean, scale).astype(np.float32),
        y_test=y_test_rel[test_idx],
        train_source_idx=train_idx.astype(np.int64),
        test_source_idx=np.asarray(test_idx, dtype=np.int64),
        image_shape=ds.image_shape,
        classes=tuple(classes),
        normalization=normalization,
        feature_mean=mean.astype(np.float32),
        feature_scale=scale,
        test_pool=test_pool,
        dataset=ds.name,
    )

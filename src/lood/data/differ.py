"""The differing records: chosen at random (seeded), class-balanced, or read from a user CSV."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from lood.data.split import per_class_counts
from lood.io import write_csv

DIFFER_STRATEGIES = ("random", "balanced")


def choose_differ(y_train: np.ndarray, n: int, seed: int, strategy: str = "random") -> np.ndarray:
    """Choose ``n`` distinct differing records (indices into the training split), seeded.

    "random" draws uniformly; "balanced" draws ``n // C`` per class (remainder over the first
    classes). The indices are returned sorted, as int64.
    """
    y_train = np.asarray(y_train)
    n_total = len(y_train)
    if int(n) != n or not 1 <= n <= n_total:
        raise ValueError(f"differ.n: must be an integer in [1, {n_total}] (|D|), got {n}")
    n = int(n)
    rng = np.random.default_rng(seed)
    if strategy == "random":
        return np.sort(rng.choice(n_total, size=n, replace=False)).astype(np.int64)
    if strategy == "balanced":
        labels = np.unique(y_train)
        chosen = []
        for label, need in zip(labels, per_class_counts(n, len(labels)), strict=True):
            members = np.flatnonzero(y_train == label)
            if len(members) < need:
                raise ValueError(
                    f"differ.n: {n} balanced differing records need {need} of class {label}, "
                    f"but D has only {len(members)}"
                )
            chosen.append(rng.choice(members, size=need, replace=False))
        return np.sort(np.concatenate(chosen)).astype(np.int64)
    raise ValueError(
        f"differ.strategy: unknown {strategy!r}; choose one of {list(DIFFER_STRATEGIES)}"
    )


def read_differ_csv(path: str | os.PathLike[str], n_train: int) -> np.ndarray:
    """Read differing-record indices from a CSV with an integer ``differ_idx`` column.

    Raises ValueError naming the file for a missing column, non-integers, indices outside
    [0, n_train), duplicates or no rows.
    """
    where = f"differ.csv {str(path)!r}"
    if not os.path.exists(path):
        raise ValueError(f"{where}: file does not exist")
    try:
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError as exc:
        raise ValueError(f"{where}: the file is empty (need a 'differ_idx' column)") from exc
    except pd.errors.ParserError as exc:
        raise ValueError(f"{where}: cannot parse as CSV: {exc}") from exc
    if "differ_idx" not in table.columns:
        raise ValueError(f"{where}: no 'differ_idx' column (columns: {list(table.columns)})")
    col = table["differ_idx"]
    if len(col) == 0:
        raise ValueError(f"{where}: no rows in 'differ_idx'")
    if pd.api.types.is_bool_dtype(col):
        numeric = np.full(len(col), np.nan)
    else:
        numeric = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
    valid = np.isfinite(numeric) & (numeric == np.round(numeric))
    if not valid.all():
        bad = np.flatnonzero(~valid)[:5]
        raise ValueError(
            f"{where}: 'differ_idx' must hold integers; rows {bad.tolist()} have "
            f"{col.iloc[bad].tolist()}"
        )
    idx = numeric.astype(np.int64)
    out = (idx < 0) | (idx >= n_train)
    if out.any():
        raise ValueError(
            f"{where}: 'differ_idx' values {idx[out][:5].tolist()} are outside [0, {n_train}) "
            "(indices into the training split)"
        )
    uniq, counts = np.unique(idx, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"{where}: duplicate 'differ_idx' values {uniq[counts > 1][:5].tolist()}")
    return idx


def write_differ_csv(path: str | os.PathLike[str], idx: np.ndarray, y_train: np.ndarray) -> None:
    """Write the differing records as a CSV with columns ``differ_idx,label`` (atomically)."""
    idx = np.asarray(idx, dtype=np.int64)
    y_train = np.asarray(y_train, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= len(y_train)):
        raise ValueError(f"{path}: differing indices outside [0, {len(y_train)})")
    write_csv(pd.DataFrame({"differ_idx": idx, "label": y_train[idx]}), path)

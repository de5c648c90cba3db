"""Memorization / influence from random-subset models, checked against brute-force loops."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import make_job

from lood.data.split import Split
from lood.figures.common import as_image
from lood.figures.memorization import extreme_records, memorization_images_figure
from lood.influence.memorization import (
    SUBSETS_KEYS,
    correctness,
    influence_matrix,
    influence_topk,
    masks_to_subsample_idx,
    memorization,
    memorization_tables,
    subsample_idx_to_masks,
    subset_masks,
    subset_size,
    topk_rows,
)
from lood.influence.spec import MemorizationSpec
from lood.io import load_npz
from lood.jobs.influence import train_subsets


def random_case(k=30, n=7, m=5, seed=0):
    rng = np.random.default_rng(seed)
    masks, _ = subset_masks(n, k, 0.6, seed)
    correct_train = rng.random((k, n)) < 0.7
    correct_test = rng.random((k, m)) < 0.6
    return masks, correct_train, correct_test


def brute_force_diff(correct: np.ndarray, masks: np.ndarray, i: int, z: int):
    """p_in, p_out, n_in, n_out and the difference for train record i and column z, by loops."""
    hits_in = hits_out = n_in = n_out = 0
    for k in range(masks.shape[0]):
        if masks[k, i]:
            n_in += 1
            hits_in += int(correct[k, z])
        else:
            n_out += 1
            hits_out += int(correct[k, z])
    p_in, p_out = hits_in / n_in, hits_out / n_out
    se = (p_in * (1 - p_in) / n_in + p_out * (1 - p_out) / n_out) ** 0.5
    return p_in, p_out, n_in, n_out, p_in - p_out, se


# ---------------------------------------------------------------------------- subsets


def test_subset_masks_exact_size_seeded_and_prefix_stable():
    masks, seeds = subset_masks(50, 12, 0.7, seed=3)
    assert masks.shape == (12, 50) and masks.dtype == bool
    assert (masks.sum(1) == 35).all() and subset_size(50, 0.7) == 35
    assert len(set(seeds.tolist())) == 12
    again, _ = subset_masks(50, 12, 0.7, seed=3)
    np.testing.assert_array_equal(masks, again)
    more, _ = subset_masks(50, 20, 0.7, seed=3)  # model k's subset does not depend on K
    np.testing.assert_array_equal(more[:12], masks)
    other, _ = subset_masks(50, 12, 0.7, seed=4)
    assert not np.array_equal(other, masks)
    assert len({m.tobytes() for m in masks}) == 12  # all distinct subsets


def test_subset_size_bounds_and_validation():
    assert subset_size(10, 0.01) == 1 and subset_size(10, 0.99) == 9
    with pytest.raises(ValueError, match="ratio"):
        subset_size(10, 1.0)
    with pytest.raises(ValueError, match="n_models"):
        subset_masks(10, 0, 0.5, 0)


def test_subsample_idx_roundtrip():
    masks, _ = subset_masks(9, 5, 0.4, seed=1)
    idx = masks_to_subsample_idx(masks)
    assert idx.shape == (5, 4)
    for k in range(5):
        np.testing.assert_array_equal(idx[k], np.flatnonzero(masks[k]))
    np.testing.assert_array_equal(subsample_idx_to_masks(idx, 9), masks)
    ragged = masks.copy()
    ragged[0, ~masks[0]] = True
    with pytest.raises(ValueError, match="differ in size"):
        masks_to_subsample_idx(ragged)


# ---------------------------------------------------------------------------- estimators


def test_memorization_matches_brute_force():
    masks, correct_train, _ = random_case()
    df = memorization(correct_train, masks)
    assert list(df.idx) == list(range(7))
    for i in range(7):
        p_in, p_out, n_in, n_out, diff, se = brute_force_diff(correct_train, masks, i, i)
        row = df.iloc[i]
        assert (row.n_in, row.n_out) == (n_in, n_out)
        assert row.p_in == pytest.approx(p_in) and row.p_out == pytest.approx(p_out)
        assert row.mem == pytest.approx(diff) and row.mem_se == pytest.approx(se)


def test_influence_matrix_matches_brute_force():
    masks, _, correct_test = random_case(m=6)
    infl, se = influence_matrix(correct_test, masks)
    assert infl.shape == se.shape == (7, 6)
    for i in range(7):
        for j in range(6):
            *_, diff, s = brute_force_diff(correct_test, masks, i, j)
            assert infl[i, j] == pytest.approx(diff) and se[i, j] == pytest.approx(s)


def test_mislabelled_record_only_its_models_get_right_is_memorized():
    # Record 4 is classified correctly exactly by the models that trained on it; every other
    # record's correctness is independent of its own inclusion.
    rng = np.random.default_rng(5)
    masks, _ = subset_masks(40, 400, 0.7, seed=2)
    correct = rng.random(masks.shape) < 0.9
    correct[:, 4] = masks[:, 4]
    df = memorization(correct, masks)
    assert df.mem[4] == 1.0 and df.mem_se[4] == 0.0
    others = df.drop(index=4)
    assert df.mem.idxmax() == 4 and others.mem.abs().max() < 0.25
    # within ~3.5 standard errors of zero (Bonferroni over 39 records)
    assert (others.mem.abs() < 3.5 * others.mem_se + 1e-12).all()


def test_standard_error_matches_spread_of_the_estimate():
    # Many records with the same true p_in, p_out: the SD of the estimates across records must
    # match the two-sample formula (an independent check that it is the right formula).
    rng = np.random.default_rng(7)
    k, n, p_in, p_out = 200, 3000, 0.8, 0.3
    masks, _ = subset_masks(n, k, 0.7, seed=1)
    correct = np.where(masks, rng.random((k, n)) < p_in, rng.random((k, n)) < p_out)
    df = memorization(correct, masks)
    assert df.mem.mean() == pytest.approx(p_in - p_out, abs=0.01)
    n_in, n_out = df.n_in.to_numpy(), df.n_out.to_numpy()
    true_se = np.sqrt(p_in * (1 - p_in) / n_in + p_out * (1 - p_out) / n_out).mean()
    assert df.mem.std() == pytest.approx(true_se, rel=0.06)
    assert df.mem_se.mean() == pytest.approx(true_se, rel=0.03)


def test_records_in_every_or_no_model_are_rejected():
    masks, correct, _ = random_case()
    masks[:, 2] = True
    with pytest.raises(ValueError, match=r"records \[2\].*n_models"):
        memorization(correct, masks)


def test_topk_rows_matches_full_sort_with_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(12, 9)).astype(float)  # many ties
    top = topk_rows(scores, 5)
    for j in range(9):
        expected = sorted(range(12), key=lambda i: (-scores[i, j], i))[:5]
        assert top[:, j].tolist() == expected
    assert topk_rows(scores, 50).shape == (12, 9)


@pytest.mark.parametrize("block", [1, 4, 1024])
def test_influence_topk_matches_full_matrix(block):
    masks, _, correct_test = random_case(k=25, n=10, m=7, seed=3)
    infl, se = influence_matrix(correct_test, masks)
    df = influence_topk(correct_test, masks, top_k=3, block=block)
    assert len(df) == 7 * 3
    assert list(df.columns) == [
        "test_idx",
        "train_idx",
        "rank",
        "influence",
        "influence_se",
        "p_in",
        "p_out",
    ]
    for j in range(7):
        rows = df[df.test_idx == j].sort_values("rank")
        assert rows["rank"].tolist() == [1, 2, 3]
        expected = sorted(range(10), key=lambda i: (-infl[i, j], i))[:3]
        assert rows.train_idx.tolist() == expected
        np.testing.assert_allclose(rows.influence, infl[expected, j])
        np.testing.assert_allclose(rows.influence_se, se[expected, j])
        np.testing.assert_allclose(rows.p_in - rows.p_out, rows.influence)


def test_memorization_tables_add_labels_and_differ_flag():
    masks, correct_train, correct_test = random_case()
    y_train, y_test = np.arange(7) % 2, np.arange(5) % 3
    mem, infl = memorization_tables(
        correct_train, correct_test, masks, y_train, y_test, top_k=2, differ_idx=np.array([1, 5])
    )
    assert list(mem.columns[:3]) == ["idx", "label", "is_differ"]
    assert mem.is_differ.tolist() == [i in (1, 5) for i in range(7)]
    np.testing.assert_array_equal(mem.label, y_train)
    np.testing.assert_array_equal(infl.train_label, y_train[infl.train_idx])
    np.testing.assert_array_equal(infl.test_label, y_test[infl.test_idx])


def test_correctness_is_argmax_equals_label():
    out = np.array([[[1.0, 0.0], [0.2, 0.9]], [[0.0, 1.0], [0.5, 0.4]]])
    np.testing.assert_array_equal(correctness(out, np.array([0, 1])), [[1, 1], [0, 0]])


# ---------------------------------------------------------------------------- training


def mislabelled_split(n_per_class=20, seed=0) -> tuple[Split, int]:
    """Two well separated clusters; one record of cluster 0 carries label 1."""
    rng = np.random.default_rng(seed)
    d = 4
    centres = np.zeros((2, d))
    centres[0, 0], centres[1, 0] = -2.0, 2.0
    y = np.repeat([0, 1], n_per_class)
    x = centres[y] + 0.5 * rng.normal(size=(len(y), d))
    bad = 3
    # clearly on cluster 0's side, away from its other records (no neighbour is affected) ...
    x[bad] = centres[0] + np.array([0.0, 0.0, 0.0, 2.0])
    y = y.copy()
    y[bad] = 1  # ... but labelled 1
    y_test = np.repeat([0, 1], 10)
    x_test = centres[y_test] + 0.5 * rng.normal(size=(20, d))
    split = Split(
        x_train=x.astype(np.float32),
        y_train=y.astype(np.int64),
        x_test=x_test.astype(np.float32),
        y_test=y_test.astype(np.int64),
        train_source_idx=np.arange(len(y)),
        test_source_idx=np.arange(20),
        image_shape=(2, 2),
        classes=(0, 1),
    )
    return split, bad


MODEL = {
    "depth": 1,
    "width": 256,
    "activation": "relu",
    "W_std": 2**0.5,
    "b_std": 0.1,
    "parameterization": "ntk",
}
TRAIN = {
    "epochs": 150,
    "lr": 0.5,
    "batch_size": 16,
    "optimizer": "sgd",
    "momentum": 0.9,
    "weight_decay": 0.0,
    "loss": "mse",
    "seed": 0,
    "device": "cpu",
}


def mem_spec(**keys) -> MemorizationSpec:
    import lood.config as lc

    return MemorizationSpec.from_config(lc.section_defaults("memorization") | keys)


def test_train_subsets_memorizes_the_mislabelled_record(tmp_path):
    split, bad = mislabelled_split()
    mem_cfg = mem_spec(n_models=40, ratio=0.7, seed=0)
    arrays = train_subsets(make_job(split, MODEL, TRAIN), mem_cfg, str(tmp_path / "s.npz"))
    saved = load_npz(tmp_path / "s.npz")
    assert set(saved) == set(SUBSETS_KEYS)
    k, n, m = 40, len(split.y_train), len(split.y_test)
    assert saved["correctness_train"].shape == (k, n) and saved["correctness_train"].dtype == bool
    assert saved["correctness_test"].shape == (k, m)
    assert saved["subsample_idx"].shape == (k, subset_size(n, 0.7))
    np.testing.assert_array_equal(subsample_idx_to_masks(saved["subsample_idx"], n), saved["masks"])
    np.testing.assert_array_equal(subset_masks(n, k, 0.7, 0)[0], saved["masks"])
    np.testing.assert_array_equal(
        saved["correctness_test"], saved["outputs_test"].argmax(-1) == split.y_test
    )
    np.testing.assert_array_equal(arrays["correctness_train"], saved["correctness_train"])
    mem = memorization(saved["correctness_train"], saved["masks"])
    # every model that trained on the mislabelled record fits it; none of the others do
    assert mem.p_in[bad] >= 0.9 and mem.p_out[bad] <= 0.1 and mem.mem[bad] >= 0.8
    assert mem.mem.idxmax() == bad
    assert mem.drop(index=bad).mem.abs().max() < 0.3
    # deterministic: a rerun gives identical correctness and outputs
    train_subsets(make_job(split, MODEL, TRAIN), mem_cfg, str(tmp_path / "t.npz"))
    again = load_npz(tmp_path / "t.npz")
    np.testing.assert_array_equal(again["outputs_train"], saved["outputs_train"])


def test_train_subsets_can_drop_outputs(tmp_path):
    split, _ = mislabelled_split(n_per_class=5)
    cfg = mem_spec(n_models=4, ratio=0.5, seed=1, save_outputs=False)
    train = TRAIN | {"epochs": 1}
    train_subsets(make_job(split, MODEL, train), cfg, str(tmp_path / "s.npz"))
    saved = load_npz(tmp_path / "s.npz")
    assert "outputs_train" not in saved and saved["correctness_train"].shape == (4, 10)


# ---------------------------------------------------------------------------- figures


def test_as_image_layouts():
    assert as_image(np.arange(6.0), (6,)).shape == (1, 6)
    img = as_image(np.arange(12.0), (3, 4))
    assert img.shape == (3, 4) and img.min() == 0.0 and img.max() == 1.0
    chw = np.arange(3 * 2 * 5.0)
    hwc = as_image(chw, (3, 2, 5))
    assert hwc.shape == (2, 5, 3)
    np.testing.assert_allclose(hwc[..., 1], (chw.reshape(3, 2, 5)[1] - 0) / 29)
    assert as_image(np.arange(4.0), (2, 2, 1)).shape == (2, 2)
    assert as_image(np.ones(4), (2, 2)).max() == 0.0  # constant image: no division by zero


def test_extreme_records_and_images_figure(tmp_path):
    split, _ = mislabelled_split(n_per_class=4)
    mem = pd.DataFrame({"idx": np.arange(8), "mem": [0.1, 0.9, -0.2, 0.9, 0.0, 0.3, -0.2, 0.5]})
    mem["mem_se"] = 0.05
    top, low = extreme_records(mem, 3)
    assert top.idx.tolist() == [1, 3, 7] and low.idx.tolist() == [2, 6, 4]
    out = tmp_path / "ex.png"
    memorization_images_figure(split, mem, 3, [out])
    assert out.stat().st_size > 1000

"""Memorization and influence estimated from models trained on random subsets (Feldman & Zhang).

Train K models, model k on a random subset S_k of D with exactly ``round(ratio * N)`` records
(a boolean mask row). For training record i and any record z (i itself, or a test record j):

    est(i, z) = P[model correct on z | i in S] - P[model correct on z | i not in S]

estimated by the two fractions over the models that did / did not train on i. With z = i this is
the *memorization* of i; with z a test record it is the *influence* of i on z. The standard error
is the unpooled two-sample difference-of-proportions (Wald) formula

    se = sqrt(p_in (1 - p_in) / n_in + p_out (1 - p_out) / n_out),

treating the models as independent Bernoulli trials given the inclusion of i (they are: each
model's subset is drawn independently). It is 0 when both fractions are 0 or 1; use more models
when that matters.

The estimators are plain numpy (no torch): they take the correctness matrices and the masks. The
training side, :func:`train_subsets`, imports torch lazily and writes an ``.npz`` whose keys follow
the original ``aux_arrays.npz`` in spirit (``correctness_train``, ``correctness_test``,
``subsample_idx``), see :data:`SUBSETS_KEYS`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lood.seeds import derive_seed

if TYPE_CHECKING:
    pass


# Arrays of the subsets .npz written by train_subsets (K models, N training, M test records).
SUBSETS_KEYS = {
    "correctness_train": "[K, N] bool: model k predicts training record i correctly (argmax)",
    "correctness_test": "[K, M] bool: model k predicts test record j correctly",
    "subsample_idx": "[K, n_sub] int64: training records (ascending) model k was trained on",
    "masks": "[K, N] bool: the same subsets as inclusion masks",
    "outputs_train": "[K, N, C] float32: final outputs on every training record",
    "outputs_test": "[K, M, C] float32: final outputs on every test record",
    "index_train": "[N] int64: position of each column in the split's training set (0..N-1)",
    "index_test": "[M] int64: position of each column in the split's test set",
    "mask_seeds": "[K] int64: seed of each subset draw",
    "seeds": "[K] int64: seed of each model (initialisation and data order)",
    "train_acc": "[K] float32: accuracy of model k on its own subset",
    "test_acc": "[K] float32: accuracy of model k on the test set",
    "ratio": "scalar float64: subset ratio r",
}


def subset_size(n: int, ratio: float) -> int:
    """Records per subset: ``round(ratio * n)``, at least 1 and at most ``n - 1``.

    Both bounds keep every record's in- and out-groups possible (a subset of all of D leaves no
    model without record i).
    """
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"memorization.ratio must be in (0, 1), got {ratio}")
    if n < 2:
        raise ValueError(f"need at least 2 training records for random subsets, got {n}")
    return int(min(max(round(ratio * n), 1), n - 1))


def subset_masks(n: int, n_models: int, ratio: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random subsets as masks ``[K, N]`` bool (exactly :func:`subset_size` per row) and seeds.

    Row k is drawn by ``numpy.random.default_rng(derive_seed(seed, "subset", k))``, so a model's
    subset depends only on (seed, k, n, ratio), not on K.
    """
    if n_models < 1:
        raise ValueError(f"memorization.n_models must be >= 1, got {n_models}")
    size = subset_size(n, ratio)
    masks = np.zeros((n_models, n), dtype=bool)
    seeds = np.array([derive_seed(int(seed), "subset", k) for k in range(n_models)], np.int64)
    for k, s in enumerate(seeds):
        masks[k, np.random.default_rng(int(s)).choice(n, size=size, replace=False)] = True
    return masks, seeds


def masks_to_subsample_idx(masks: np.ndarray) -> np.ndarray:
    """``[K, n_sub]`` ascending indices of the included records (all rows must have equal size)."""
    masks = _bool2d(masks, "masks")
    sizes = masks.sum(1)
    if len(sizes) and np.any(sizes != sizes[0]):
        raise ValueError(f"subsets differ in size ({sizes.min()}..{sizes.max()}); cannot stack")
    n_sub = int(sizes[0]) if len(sizes) else 0
    return np.flatnonzero(masks.ravel()).reshape(masks.shape[0], n_sub) % masks.shape[1]


def subsample_idx_to_masks(subsample_idx: np.ndarray, n: int) -> np.ndarray:
    """Inverse of :func:`masks_to_subsample_idx`: ``[K, n_sub]`` indices -> ``[K, N]`` masks."""
    idx = np.asarray(subsample_idx, dtype=np.int64)
    masks = np.zeros((idx.shape[0], n), dtype=bool)
    np.put_along_axis(masks, idx, True, axis=1)
    return masks


def _bool2d(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-d [K, ...], got shape {a.shape}")
    if a.dtype != np.bool_:
        if not np.isin(a, (0, 1)).all():
            raise ValueError(f"{name} must be boolean (0/1)")
        a = a.astype(bool)
    return a


def _group_counts(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n_in = masks.sum(0).astype(np.int64)
    n_out = masks.shape[0] - n_in
    empty = np.flatnonzero((n_in == 0) | (n_out == 0))
    if len(empty):
        raise ValueError(
            f"records {empty[:10].tolist()} (of {len(empty)}) are in every model or in none "
            f"({masks.shape[0]} models): raise memorization.n_models or move ratio away from 0/1"
        )
    return n_in, n_out


def diff_proportion_se(
    p_in: np.ndarray, n_in: np.ndarray, p_out: np.ndarray, n_out: np.ndarray
) -> np.ndarray:
    """Unpooled standard error of ``p_in - p_out`` (two independent binomial proportions)."""
    return np.sqrt(p_in * (1.0 - p_in) / n_in + p_out * (1.0 - p_out) / n_out)


def memorization(correct_train: np.ndarray, masks: np.ndarray) -> pd.DataFrame:
    """Memorization of every training record: table with ``idx, mem, mem_se, p_in, p_out, n_in,
    n_out`` (one row per column of ``correct_train`` [K, N], masks [K, N])."""
    correct = _bool2d(correct_train, "correct_train")
    masks = _bool2d(masks, "masks")
    if correct.shape != masks.shape:
        raise ValueError(f"correct_train {correct.shape} and masks {masks.shape} must match")
    n_in, n_out = _group_counts(masks)
    p_in = (correct & masks).sum(0) / n_in
    p_out = (correct & ~masks).sum(0) / n_out
    return pd.DataFrame(
        {
            "idx": np.arange(correct.shape[1], dtype=np.int64),
            "mem": p_in - p_out,
            "mem_se": diff_proportion_se(p_in, n_in, p_out, n_out),
            "p_in": p_in,
            "p_out": p_out,
            "n_in": n_in,
            "n_out": n_out,
        }
    )


def influence_matrix(correct_test: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Influence of every training record on every test record: ``(infl, se)``, both ``[N, M]``.

    Memory is O(N M); use :func:`influence_topk` for large sets.
    """
    correct = _bool2d(correct_test, "correct_test")
    masks = _bool2d(masks, "masks")
    if correct.shape[0] != masks.shape[0]:
        raise ValueError(f"correct_test has {correct.shape[0]} models, masks {masks.shape[0]}")
    n_in, n_out = _group_counts(masks)
    p_in, p_out, se = _influence_block(correct.astype(np.float64), masks, n_in, n_out)
    return p_in - p_out, se


def _influence_block(
    correct: np.ndarray, masks: np.ndarray, n_in: np.ndarray, n_out: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """p_in, p_out and SE ``[N, b]`` for a block of test columns (``correct`` float [K, b])."""
    hits_in = masks.T.astype(np.float64) @ correct  # [N, b] correct counts among in-models
    hits_out = correct.sum(0)[None, :] - hits_in
    p_in = hits_in / n_in[:, None]
    p_out = hits_out / n_out[:, None]
    se = diff_proportion_se(p_in, n_in[:, None], p_out, n_out[:, None])
    return p_in, p_out, se


def topk_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Per column of ``scores`` [N, M]: the row indices of the ``k`` largest, ``[min(k, N), M]``.

    Ordered by score descending, ties by row index ascending (deterministic).
    """
    scores = np.asarray(scores, dtype=np.float64)
    n = scores.shape[0]
    k = min(int(k), n)
    if k < 1:
        raise ValueError(f"top_k must be >= 1, got {k}")
    if k < n:
        # candidates: everything >= the k-th largest value (keeps all ties at the boundary)
        kth = -np.partition(-scores, k - 1, axis=0)[k - 1]
    else:
        kth = np.full(scores.shape[1], -np.inf)
    out = np.empty((k, scores.shape[1]), dtype=np.int64)
    for j in range(scores.shape[1]):
        cand = np.flatnonzero(scores[:, j] >= kth[j])
        order = np.lexsort((cand, -scores[cand, j]))
        out[:, j] = cand[order[:k]]
    return out


def influence_topk(
    correct_test: np.ndarray, masks: np.ndarray, top_k: int, block: int = 1024
) -> pd.DataFrame:
    """The ``top_k`` most influential training records of each test record (largest influence).

    Computed in blocks of ``block`` test records, so memory is O(N * block). Table columns:
    ``test_idx, train_idx, rank`` (1 = largest), ``influence, influence_se, p_in, p_out``.
    """
    correct = _bool2d(correct_test, "correct_test")
    masks = _bool2d(masks, "masks")
    if correct.shape[0] != masks.shape[0]:
        raise ValueError(f"correct_test has {correct.shape[0]} models, masks {masks.shape[0]}")
    n_in, n_out = _group_counts(masks)
    m = correct.shape[1]
    k = min(int(top_k), masks.shape[1])
    block = max(1, int(block))
    parts = []
    for start in range(0, m, block):
        cols = correct[:, start : start + block].astype(np.float64)
        p_in, p_out, se = _influence_block(cols, masks, n_in, n_out)
        infl = p_in - p_out
        rows = topk_rows(infl, k)  # [k, b]
        j = np.broadcast_to(np.arange(cols.shape[1]), rows.shape)
        parts.append(
            pd.DataFrame(
                {
                    "test_idx": (j + start).T.ravel(),
                    "train_idx": rows.T.ravel(),
                    "rank": np.broadcast_to(np.arange(1, k + 1)[:, None], rows.shape).T.ravel(),
                    "influence": infl[rows, j].T.ravel(),
                    "influence_se": se[rows, j].T.ravel(),
                    "p_in": p_in[rows, j].T.ravel(),
                    "p_out": p_out[rows, j].T.ravel(),
                }
            )
        )
    cols_out = ["test_idx", "train_idx", "rank", "influence", "influence_se", "p_in", "p_out"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols_out)


def memorization_tables(
    correct_train: np.ndarray,
    correct_test: np.ndarray,
    masks: np.ndarray,
    y_train: np.ndarray,
    y_test: np.ndarray,
    top_k: int,
    differ_idx: np.ndarray | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The two result tables of the memorization stage, with labels (and ``is_differ``) added."""
    mem = memorization(correct_train, masks)
    mem.insert(1, "label", np.asarray(y_train, dtype=np.int64))
    if differ_idx is not None:
        mem.insert(2, "is_differ", np.isin(mem["idx"], np.asarray(differ_idx)))
    infl = influence_topk(correct_test, masks, top_k)
    infl.insert(2, "train_label", np.asarray(y_train, dtype=np.int64)[infl["train_idx"]])
    infl.insert(1, "test_label", np.asarray(y_test, dtype=np.int64)[infl["test_idx"]])
    return mem, infl


def correctness(outputs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``[K, M]`` bool: argmax of outputs ``[K, M, C]`` equals the label ``[M]``."""
    outputs = np.asarray(outputs)
    return outputs.argmax(-1) == np.asarray(y)[None, :]

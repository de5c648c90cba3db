"""Query LOOD (JAX) against brute force and finite differences; landscapes; query optimisation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import mia_spec, train_spec

from lood.arch import Architecture
from lood.data.split import Split
from lood.jobs.training import out_masks_and_seeds, role_masks_and_seeds
from lood.nngp.gp import centred_one_hot, fit_gp
from lood.nngp.kernel import nngp_kernel
from lood.nngp.landscape import (
    landscape_grid,
    landscape_queries,
    random_direction,
    raw_step_to_normalized,
)
from lood.nngp.loo import lood_self
from lood.nngp.query import (
    data_starts,
    initial_query,
    kernel_cosine,
    lood_landscape,
    make_objective,
    optimize_query,
    pixel_l2,
    query_lood,
)
from lood.nngp.spec import QuerySpec
from lood.privacy.mia.retrained import mia_landscape_table, mia_table
from lood.seeds import derive_seed
from lood.stats import kl_gaussians

SIGMA2 = 0.05


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    arch = Architecture(2, 64, "relu", 1.5, 0.2, "ntk", 3)
    x = rng.standard_normal((14, 5))
    y = rng.integers(0, 3, 14)
    K = nngp_kernel(arch, x)
    return arch, x, y, K, make_objective(arch, x, K, y, SIGMA2)


def brute_force_kl(arch, x, y, record, q, sigma2=SIGMA2):
    """KL(out || in) summed over classes from two separate GP solves (no downdate formulas)."""
    yc = centred_one_hot(y, arch.n_outputs)

    def post(keep):
        kdd = nngp_kernel(arch, x[keep]) + sigma2 * np.eye(keep.sum())
        kdq = nngp_kernel(arch, x[keep], q)
        mean = kdq.T @ np.linalg.solve(kdd, yc[keep])
        cov = nngp_kernel(arch, q) - kdq.T @ np.linalg.solve(kdd, kdq)
        return mean, cov

    keep = np.ones(len(x), dtype=bool)
    m_in, c_in = post(keep)
    keep[record] = False
    m_out, c_out = post(keep)
    kl = sum(kl_gaussians(m_out[:, c], c_out, m_in[:, c], c_in) for c in range(arch.n_outputs))
    return kl, float(np.sum((m_in - m_out) ** 2))


@pytest.mark.parametrize("m", [1, 3])
def test_query_lood_matches_two_separate_gp_fits(problem, m):
    arch, x, y, _, obj = problem
    q = np.random.default_rng(m).standard_normal((m, x.shape[1]))
    for record in (0, 7):
        res = query_lood(obj, q, record)
        kl, md = brute_force_kl(arch, x, y, record, q)
        np.testing.assert_allclose(float(res["kl"]), kl, rtol=1e-6)
        np.testing.assert_allclose(float(res["mean_dist"]), md, rtol=1e-6)


@pytest.mark.parametrize("m", [1, 2])
def test_gradient_matches_central_finite_differences(problem, m):
    import jax

    _, x, _, _, obj = problem
    q = np.random.default_rng(10 + m).standard_normal((m, x.shape[1])) + x[:m]
    record = 2
    kl = jax.jit(lambda qq: query_lood(obj, qq, record)["kl"])
    grad = np.asarray(jax.grad(kl)(q))
    h = 1e-5
    fd = np.zeros_like(q)
    for idx in np.ndindex(q.shape):
        e = np.zeros_like(q)
        e[idx] = h
        fd[idx] = (float(kl(q + e)) - float(kl(q - e))) / (2 * h)
    assert np.abs(grad).max() > 1e-6  # a non-trivial gradient
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-8 * np.abs(fd).max())


def test_query_at_record_equals_lood_self(problem):
    arch, x, y, K, obj = problem
    fit = fit_gp(K, centred_one_hot(y, 3), SIGMA2)
    ref = lood_self(fit, [4])
    np.testing.assert_allclose(float(query_lood(obj, x[4:5], 4)["kl"]), ref["kl"][0], rtol=1e-8)
    # landscape: t = 0 is the record itself, and agrees with lood_self there
    t = landscape_grid(-50, 50, 11)
    queries, _ = landscape_queries(x, np.array([4]), t, 255.0, 3, "standardize", 0.3, "pixel")
    np.testing.assert_array_equal(queries[0, t == 0][0], x[4])
    land = lood_landscape(fit, arch, x, queries[0], 4)
    np.testing.assert_allclose(land["kl"][t == 0], ref["kl"], rtol=1e-8)
    np.testing.assert_allclose(land["auc"][t == 0], ref["auc"], rtol=1e-8)
    assert land["kl"].argmax() == 5  # the peak is at the record on this grid
    # every point agrees with the differentiable version
    for j in (0, 3, 8):
        np.testing.assert_allclose(
            land["kl"][j], float(query_lood(obj, queries[0, j], 4)["kl"]), rtol=1e-7
        )


def _ascent(**kw) -> QuerySpec:
    """A query section with lr 0.05 and the given ascent settings (the rest unused here)."""
    return QuerySpec(
        enabled=True, n_records=1, query_size=1, init="random", data_starts=0, lr=0.05, seed=0, **kw
    )


def test_optimization_increases_lood_and_stops_early(problem):
    _, x, _, _, obj = problem
    q0, baseline = initial_query(x, 1, 1, "random", 0)
    assert baseline != 1
    res = optimize_query(obj, 1, q0, _ascent(n_steps=60, patience=200, tol=0.0))
    assert res.n_steps == 60 and not res.stopped_early
    assert res.best > 2 * res.history[0]
    assert res.best == res.history.max()
    np.testing.assert_allclose(float(query_lood(obj, res.query, 1)["kl"]), res.best, rtol=1e-10)
    # a huge tolerance never counts as an improvement: stops after `patience` steps, keeping the
    # best query seen
    res2 = optimize_query(obj, 1, q0, _ascent(n_steps=60, patience=5, tol=1e6))
    assert res2.stopped_early and res2.n_steps == 5
    assert res2.best == res2.history.max() and res2.best_step == int(res2.history.argmax())
    assert res2.start == 0 and len(res2.start_best) == 1


def test_data_starts_rank_the_other_records_by_brute_force_lood(problem):
    arch, x, y, K, obj = problem
    record = 6
    q, idx = data_starts(obj, K, record, 3, 2)
    assert q.shape == (3, 2, x.shape[1]) and idx.shape == (3, 2)
    assert record not in idx and len(np.unique(idx)) == 6
    np.testing.assert_array_equal(q, x[idx])
    kl = {
        j: brute_force_kl(arch, x, y, record, x[j : j + 1])[0] for j in range(len(x)) if j != record
    }
    order = sorted(kl, key=lambda j: -kl[j])
    np.testing.assert_array_equal(idx.ravel(), order[:6])
    assert data_starts(obj, K, record, 0, 1)[0].shape == (0, 1, x.shape[1])


def test_several_starts_ascend_as_each_alone_and_the_best_is_kept(problem):
    _, x, _, K, obj = problem
    record = 1
    q0, _ = initial_query(x, record, 1, "random", 0)
    q_data, _ = data_starts(obj, K, record, 2, 1)
    starts = np.concatenate([q0[None], q_data])
    multi = optimize_query(obj, record, starts, _ascent(n_steps=25, patience=100, tol=0.0))
    alone = [
        optimize_query(obj, record, s, _ascent(n_steps=25, patience=100, tol=0.0)) for s in starts
    ]
    np.testing.assert_allclose(multi.start_best, [r.best for r in alone], rtol=1e-9)
    win = int(np.argmax([r.best for r in alone]))
    assert multi.start == win
    np.testing.assert_allclose(multi.history, alone[win].history, rtol=1e-9)
    np.testing.assert_allclose(multi.query, alone[win].query, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(multi.init, starts[win])
    np.testing.assert_allclose(
        float(query_lood(obj, multi.query, record)["kl"]), multi.best, rtol=1e-10
    )


def test_a_data_start_reaches_the_record_where_a_random_start_stalls(problem):
    _, x, _, K, obj = problem
    record = 3
    at_record = float(query_lood(obj, x[record : record + 1], record)["kl"])
    far = x.mean(axis=0) + 30.0 * x.std() * np.random.default_rng(0).standard_normal(
        (1, x.shape[1])
    )
    stalled = optimize_query(obj, record, far, _ascent(n_steps=100, patience=20, tol=1e-4))
    q_data, _ = data_starts(obj, K, record, 2, 1)
    res = optimize_query(
        obj,
        record,
        np.concatenate([far[None], q_data]),
        _ascent(n_steps=300, patience=50, tol=1e-6),
    )
    assert stalled.best < 0.5 * at_record
    assert res.start > 0 and res.best >= 0.99 * at_record


def test_initial_query_record_init_uses_other_records(problem):
    _, x, _, _, _ = problem
    q0, baseline = initial_query(x, 3, 2, "record", 7)
    assert q0.shape == (2, x.shape[1])
    rows = [int(np.flatnonzero((x == r).all(axis=1))[0]) for r in q0]
    assert 3 not in rows and rows[0] == baseline and len(set(rows)) == 2
    with pytest.raises(ValueError, match="query.init"):
        initial_query(x, 3, 1, "bogus", 0)


def test_reconstruction_metrics(problem):
    arch, x, _, _, _ = problem
    np.testing.assert_allclose(kernel_cosine(arch, x[2:3], x[2]), [1.0], rtol=1e-10)
    cos = kernel_cosine(arch, x[:4], x[5])
    assert np.all(cos < 1) and np.all(cos > -1)
    unnorm = lambda a: np.asarray(a) * 2.0 + 1.0  # noqa: E731
    np.testing.assert_allclose(
        pixel_l2(unnorm, x[:2], x[3]), 2 * np.linalg.norm(x[:2] - x[3], axis=1)
    )


def test_directions_and_normalisation():
    d = random_direction(100, 5, "unit")
    np.testing.assert_allclose(np.linalg.norm(d), 1.0)
    np.testing.assert_allclose(np.linalg.norm(random_direction(100, 5, "pixel")), 10.0)
    np.testing.assert_array_equal(d, random_direction(100, 5, "unit"))
    assert not np.allclose(d, random_direction(100, 6, "unit"))
    # standardize is affine: normalize(raw + step) - normalize(raw) = D(step)
    rng = np.random.default_rng(0)
    split = Split(
        x_train=np.zeros((2, 6), np.float32),
        y_train=np.zeros(2, np.int64),
        x_test=np.zeros((0, 6), np.float32),
        y_test=np.zeros(0, np.int64),
        train_source_idx=np.arange(2),
        test_source_idx=np.arange(0),
        image_shape=(6,),
        classes=(0, 1),
        normalization="standardize",
        feature_mean=rng.random(6).astype(np.float32),
        feature_scale=0.37,
    )
    raw, step = rng.random((1, 6)), 0.1 * rng.standard_normal(6)
    np.testing.assert_allclose(
        split.normalize(raw + step) - split.normalize(raw),
        raw_step_to_normalized(step, "standardize", 0.37, 6)[None],
        atol=1e-6,
    )
    t = landscape_grid(-50, 50, 4)  # no grid point at 0 with 4 points: the closest becomes 0
    assert 0.0 in t and len(t) == 4


def test_out_masks_and_seeds_match_the_training_jobs():
    differ = np.array([9, 3, 12, 5, 0])
    train = train_spec(
        {"seed": 4, "n_out": 3, "shard_size": 2, "epochs": 1, "lr": 0.1, "batch_size": 4}
    )
    masks, seeds = out_masks_and_seeds(15, np.array([12, 9]), train)
    m1, s1, r1 = role_masks_and_seeds("out", 15, differ, train, 1)  # shard of record 12
    j = int(np.flatnonzero(r1 == 12)[0])
    np.testing.assert_array_equal(masks[:3], m1[3 * j : 3 * j + 3])
    np.testing.assert_array_equal(seeds[:3], s1[3 * j : 3 * j + 3])
    assert seeds[3] == derive_seed(4, "out", 9, 0) and not masks[3:, 9].any()
    assert masks[:, [3, 5, 0]].all()


def test_mia_landscape_at_a_point_equals_mia_table():
    rng = np.random.default_rng(1)
    k_in, k_out, c = 10, 10, 2
    in_out = rng.standard_normal((k_in, 2, 3, c))  # [K, R, T, C]
    out_out = rng.standard_normal((2, k_out, 3, c)) + 0.5  # [R, K, T, C]
    differ = pd.DataFrame({"differ_idx": [5, 8], "label": [0, 1]})
    spec = mia_spec(n_splits=7, seed=3)
    table = mia_landscape_table(
        in_out,
        out_out,
        np.array([5, 8]),
        np.array([0, 1]),
        np.array([0, 1]),
        np.array([-1.0, 0.0, 1.0]),
        spec,
    )
    # the MIA stage on outputs that equal the landscape's at t = 1.0 (index 2)
    models_in = {"outputs_differ": in_out[:, :, 2], "test_acc": np.ones(k_in)}
    models_out = [
        {
            "records": np.array([5, 8]),
            "test_acc": np.ones((2, k_out)),
            "outputs_differ": np.stack(
                [
                    np.stack([out_out[0, :, 2], out_out[0, :, 2]], 1),
                    np.stack([out_out[1, :, 2], out_out[1, :, 2]], 1),
                ]
            ),
        }
    ]
    ref = mia_table(differ, models_in, models_out, spec)
    got = table[table.t == 1.0].reset_index(drop=True)
    np.testing.assert_allclose(got.mia_auc, ref.mia_auc)
    np.testing.assert_allclose(got.mia_auc_std, ref.mia_auc_std)

"""Tests for lood.influence (TracIn, influence functions) and the train_ensemble checkpoint hook.

Independent computations: per-example gradients by a plain loop of ``torch.autograd.grad`` on
the stacked forward, the exact Hessian by ``torch.autograd.functional.hessian`` of the flattened
tiny model, and direct linear solves.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from helpers import job_for
from scipy import stats

from lood.arch import Architecture
from lood.compare import (
    KEYS,
    activation_stats,
    activation_table,
    check_same_records,
    influence_table,
    minmax,
)
from lood.figures.comparison import activation_figure, influence_figure
from lood.influence.autodiff import flatten, mean_loss, per_example_grads, unflatten, unstack
from lood.influence.functions import (
    conjugate_gradient,
    ggn_operator,
    hvp_operator,
    influence_self,
    lissa,
)
from lood.influence.spec import InfluenceSpec
from lood.influence.tracin import (
    Checkpoints,
    checkpoint_epochs,
    tracin_contributions,
    tracin_self_influence,
)
from lood.jobs.influence import train_with_checkpoints
from lood.train.ensemble import train_ensemble
from lood.train.models import forward, init_params
from lood.train.primitives import EnsembleOptions
from lood.train.spec import TrainConfig

torch.set_num_threads(1)


def tiny(activation="relu", bias=True, n=12, d=3, c=3, seed=0):
    arch = Architecture(1, 5, activation, 1.5, 0.3 if bias else 0.0, "ntk", c)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, c, (n,), generator=g)
    params = unstack(init_params(arch, d, [seed + 1], dtype=torch.float64))
    return arch, params, x, y


def ref_loss(out: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """Loss of one example written independently of lood.influence."""
    if loss == "mse":
        t = F.one_hot(y, out.shape[-1]).to(out.dtype) - 1.0 / out.shape[-1]
        return 0.5 * ((out - t) ** 2).sum()
    return F.cross_entropy(out.unsqueeze(0), y.unsqueeze(0))


def loop_grads(params, arch, x, y, loss) -> torch.Tensor:
    """Brute force: one autograd.grad per example through the stacked ensemble forward."""
    rows = []
    for i in range(x.shape[0]):
        p = {k: v.detach().clone().unsqueeze(0).requires_grad_(True) for k, v in params.items()}
        out = forward(p, arch, x[i : i + 1])[0, 0]
        gs = torch.autograd.grad(ref_loss(out, y[i], loss), list(p.values()))
        rows.append(torch.cat([g.reshape(-1) for g in gs]))
    return torch.stack(rows)


def exact_hessian(params, arch, x, y, loss) -> torch.Tensor:
    flat0 = flatten(params)
    return torch.autograd.functional.hessian(
        lambda f: mean_loss(unflatten(f, params), arch, loss, x, y), flat0
    )


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize(("act", "bias"), [("relu", True), ("gelu", False)])
def test_per_example_grads_match_loop(loss, act, bias):
    arch, params, x, y = tiny(act, bias)
    fast = per_example_grads(params, arch, loss, x, y, batch_size=5)
    np.testing.assert_allclose(fast, loop_grads(params, arch, x, y, loss), rtol=1e-10, atol=1e-12)


def test_hvp_matches_exact_hessian():
    arch, params, x, y = tiny("gelu")
    h = exact_hessian(params, arch, x, y, "mse")
    v = torch.randn(h.shape[0], 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    for bs in (0, 5):  # whole data and blocks of 5 (unequal last block)
        op = hvp_operator(params, arch, "mse", x, y, batch_size=bs)
        np.testing.assert_allclose(op(v), h @ v, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(op(v[:, 0]), h @ v[:, 0], rtol=1e-9, atol=1e-12)


def _solver(damping: float, **kw) -> InfluenceSpec:
    """An influence section with ``damping`` and the given solver settings (else cg, Hessian)."""
    base = {
        "enabled": True,
        "checkpoint_every": 1,
        "damping": damping,
        "method": "cg",
        "curvature": "hessian",
        "cg_max_iter": 100,
        "cg_tol": 1e-6,
        "lissa_depth": 1000,
        "lissa_scale": 10.0,
        "hvp_batch_size": 0,
    }
    return InfluenceSpec(**(base | kw))


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_influence_function_matches_exact_inverse(loss):
    arch, params, x, y = tiny("relu", n=10)
    h = exact_hessian(params, arch, x, y, loss)
    eig = torch.linalg.eigvalsh(h)
    damping = max(0.0, -float(eig[0])) + 0.2  # makes H + damping I positive definite
    g = loop_grads(params, arch, x[:4], y[:4], loss)
    a = h + damping * torch.eye(h.shape[0], dtype=h.dtype)
    expected = (g * torch.linalg.solve(a, g.T).T).sum(1).numpy()
    res = influence_self(
        params, arch, loss, x, y, x[:4], y[:4], _solver(damping, cg_tol=1e-12, cg_max_iter=500)
    )
    np.testing.assert_allclose(res.self_influence, expected, rtol=1e-7)
    assert res.solve.converged.all() and not res.solve.negative_curvature.any()
    np.testing.assert_allclose(res.grad_norm, g.norm(dim=1), rtol=1e-10)
    scale = float(eig[-1]) + damping  # eigenvalues of A in (0, 2 scale): the series converges
    res_l = influence_self(
        params,
        arch,
        loss,
        x,
        y,
        x[:4],
        y[:4],
        _solver(damping, method="lissa", lissa_scale=scale, lissa_depth=20000, cg_tol=1e-13),
    )
    np.testing.assert_allclose(res_l.self_influence, expected, rtol=1e-6)


def explicit_ggn(params, arch, x, y, loss) -> torch.Tensor:
    """sum_i J_i^T H_out,i J_i / n from the full output Jacobian."""
    jac = torch.autograd.functional.jacobian(
        lambda f: forward({k: v.unsqueeze(0) for k, v in unflatten(f, params).items()}, arch, x)[0],
        flatten(params),
    )  # [n, C, P]
    out = forward({k: v.unsqueeze(0) for k, v in params.items()}, arch, x)[0]
    c = out.shape[1]
    if loss == "mse":
        h_out = torch.eye(c, dtype=out.dtype).expand(len(x), c, c)
    else:
        p = torch.softmax(out, -1)
        h_out = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    return torch.einsum("nap,nab,nbq->pq", jac, h_out, jac) / len(x)


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_gauss_newton_matches_explicit_jacobian_product(loss):
    arch, params, x, y = tiny("gelu", n=9)
    g_mat = explicit_ggn(params, arch, x, y, loss)
    v = torch.randn(
        g_mat.shape[0], 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    for bs in (0, 4):
        op = ggn_operator(params, arch, loss, x, y, batch_size=bs)
        np.testing.assert_allclose(op(v), g_mat @ v, rtol=1e-9, atol=1e-12)
    assert float(torch.linalg.eigvalsh(g_mat)[0]) > -1e-10  # positive semi-definite
    damping = 0.05  # G + damping I is positive definite: CG needs no extra damping
    g = loop_grads(params, arch, x[:3], y[:3], loss)
    a = g_mat + damping * torch.eye(g_mat.shape[0], dtype=g_mat.dtype)
    expected = (g * torch.linalg.solve(a, g.T).T).sum(1).numpy()
    res = influence_self(
        params,
        arch,
        loss,
        x,
        y,
        x[:3],
        y[:3],
        _solver(damping, curvature="gauss_newton", cg_tol=1e-12, cg_max_iter=500),
    )
    np.testing.assert_allclose(res.self_influence, expected, rtol=1e-7)


def test_gauss_newton_equals_hessian_for_linear_model_with_mse():
    arch = Architecture(0, 1, "relu", 1.0, 0.5, "ntk", 2)
    x = torch.randn(7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 1, 0, 1, 0, 0])
    params = unstack(init_params(arch, 3, [4], dtype=torch.float64))
    np.testing.assert_allclose(
        explicit_ggn(params, arch, x, y, "mse"),
        exact_hessian(params, arch, x, y, "mse"),
        atol=1e-12,
    )


def spd(p=30, cond=50.0, seed=0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(p, p)))
    return torch.tensor(q @ np.diag(np.geomspace(1.0, cond, p)) @ q.T)


def test_cg_matches_direct_solve_for_every_column():
    a = spd()
    b = torch.tensor(np.random.default_rng(1).normal(size=(30, 6)))
    b[:, 2] = 0.0  # a zero right-hand side needs no iteration
    sol = conjugate_gradient(lambda v: a @ v, b, tol=1e-12, max_iter=200)
    np.testing.assert_allclose(sol.x, torch.linalg.solve(a, b), rtol=1e-8, atol=1e-12)
    assert sol.iterations[2] == 0 and (sol.iterations[[0, 1, 3, 4, 5]] > 5).all()
    assert sol.converged.all() and (sol.residual < 1e-10).all()
    single = conjugate_gradient(lambda v: a @ v, b[:, 0], tol=1e-12, max_iter=200)
    np.testing.assert_allclose(single.x, sol.x[:, 0], rtol=1e-10)
    few = conjugate_gradient(lambda v: a @ v, b, tol=1e-12, max_iter=3)
    assert (few.iterations <= 3).all() and not few.converged[0] and few.residual[0] > 1e-6


def test_cg_flags_negative_curvature():
    a = spd(10) - 3.0 * torch.eye(10, dtype=torch.float64)  # indefinite
    b = torch.ones(10, dtype=torch.float64)
    sol = conjugate_gradient(lambda v: a @ v, b, tol=1e-12, max_iter=100)
    assert sol.negative_curvature[0] and not sol.converged[0]


def test_lissa_converges_to_direct_solve_and_detects_divergence():
    a = spd(20, cond=5.0)
    b = torch.tensor(np.random.default_rng(2).normal(size=(20, 3)))
    sol = lissa(lambda v: a @ v, b, scale=5.0, depth=2000, tol=1e-14)
    np.testing.assert_allclose(sol.x, torch.linalg.solve(a, b), rtol=1e-9)
    assert sol.converged.all() and sol.iterations[0] < 2000
    with pytest.raises(FloatingPointError, match="lissa_scale"):
        lissa(lambda v: a @ v, b, scale=1.0, depth=5000)  # eigenvalue 5 > 2 * scale


def test_tracin_matches_brute_force_over_checkpoints():
    arch, _, x, y = tiny("relu", n=20, d=4, c=2)
    tcfg = TrainConfig(epochs=4, lr=0.3, batch_size=8, momentum=0.5)
    ck, final_loss = train_with_checkpoints(job_for(arch, tcfg, x, y), seed=3, every=2)
    assert list(ck.epochs) == [2, 4] and np.isfinite(final_loss)
    q = [0, 7, 13]
    expected = np.zeros(3)
    for model in ck.models():
        g = loop_grads({k: v.double() for k, v in model.items()}, arch, x[q], y[q], "mse")
        expected += tcfg.lr * g.square().sum(1).numpy()
    got = tracin_self_influence(ck.models(), ck.lr, arch, "mse", x[q], y[q])
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    parts = tracin_contributions(ck.models(), [1.0, 2.0], arch, "mse", x[q], y[q])
    assert parts.shape == (2, 3)  # per-checkpoint learning rates weight each checkpoint
    np.testing.assert_allclose(parts[0] + parts[1] / 2, expected / tcfg.lr, rtol=1e-9)
    with pytest.raises(ValueError, match="one learning rate per checkpoint"):
        tracin_contributions(ck.models(), [1.0], arch, "mse", x[q], y[q])


@pytest.mark.parametrize("first_layer", ["kernel", "standard"])
def test_on_epoch_end_snapshots_equal_shorter_training(first_layer):
    arch, _, x, y = tiny("gelu", n=16, d=6, c=2)
    x = x.float()
    masks = np.ones((2, 16), dtype=bool)
    masks[1, 3] = False
    tcfg = TrainConfig(epochs=3, lr=0.2, batch_size=5, momentum=0.9, weight_decay=0.01)
    snaps = []
    res = train_ensemble(
        arch,
        tcfg,
        x,
        y,
        masks,
        [1, 2],
        EnsembleOptions(first_layer=first_layer, on_epoch_end=lambda e, p: snaps.append((e, p))),
    )
    assert [e for e, _ in snaps] == [0, 1, 2]
    for name, p in res.params.items():
        torch.testing.assert_close(snaps[-1][1][name], p, rtol=1e-5, atol=1e-6)
    short = TrainConfig(epochs=2, lr=0.2, batch_size=5, momentum=0.9, weight_decay=0.01)
    ref = train_ensemble(arch, short, x, y, masks, [1, 2], EnsembleOptions(first_layer=first_layer))
    for name, p in ref.params.items():  # the epoch-2 snapshot was not changed by epoch 3
        torch.testing.assert_close(snaps[1][1][name], p, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(snaps[0][1]["W0"], snaps[2][1]["W0"])
    with pytest.raises(ValueError, match="one chunk"):
        train_ensemble(
            arch,
            tcfg,
            x,
            y,
            masks,
            [1, 2],
            EnsembleOptions(chunk_size=1, on_epoch_end=lambda e, p: None),
        )


def test_tracin_weights_each_checkpoint_by_its_epochs_rate(tmp_path):
    """With train.lr_schedule a checkpoint's TracIn weight is the rate of the epoch it ends, and
    the rates survive the safetensors round trip."""
    arch, _, x, y = tiny("relu", n=12, d=3, c=2)
    tcfg = TrainConfig(
        epochs=4, lr=0.2, batch_size=4, lr_schedule="step", lr_milestones=(1, 3), lr_gamma=0.5
    )
    ck, _ = train_with_checkpoints(job_for(arch, tcfg, x, y), seed=1, every=1)
    assert ck.checkpoint_lrs == [0.2, 0.1, 0.1, 0.05]
    ck.save(tmp_path / "ck.safetensors")
    assert Checkpoints.load(tmp_path / "ck.safetensors").checkpoint_lrs == [0.2, 0.1, 0.1, 0.05]


def test_checkpoint_epochs_and_roundtrip(tmp_path):
    assert checkpoint_epochs(5, 1) == [1, 2, 3, 4, 5]
    assert checkpoint_epochs(5, 2) == [2, 4, 5]
    assert checkpoint_epochs(3, 10) == [3]
    with pytest.raises(ValueError):
        checkpoint_epochs(3, 0)
    arch, _, x, y = tiny("relu", n=10, d=3, c=2)
    ck, _ = train_with_checkpoints(
        job_for(arch, TrainConfig(epochs=2, lr=0.1, batch_size=4), x, y), seed=0
    )
    ck.save(tmp_path / "ck.safetensors")
    back = Checkpoints.load(tmp_path / "ck.safetensors")
    assert back.arch == arch and back.lr == 0.1 and back.loss == "mse"
    assert list(back.epochs) == [1, 2]
    for name in ck.params:
        assert torch.equal(back.params[name], ck.params[name])


# ------------------------------------------------------------------------------ comparison
def _tables(rng, n=8):
    keys = pd.DataFrame({"differ_idx": np.arange(n) * 3, "label": np.arange(n) % 2})
    mia = keys.assign(
        mia_auc=rng.uniform(0.4, 1, n), mia_auc_std=0.01, pred_diff=rng.random(n), in_test_acc=0.9
    )
    lood = keys.assign(kl_lood=rng.random(n) + 0.1, mean_dist_lood=rng.random(n), nngp_auc=0.7)
    return keys, mia, lood


def test_influence_table_and_figure(tmp_path):
    rng = np.random.default_rng(0)
    keys, mia, lood = _tables(rng)
    tr = keys.assign(tracin=rng.random(8))
    inf = keys.assign(influence_function=2.0 * mia.pred_diff + 1.0)  # perfectly correlated
    df = influence_table(mia, lood.iloc[::-1], tr, inf)  # row order does not matter
    assert len(df) == 8 and list(df.differ_idx) == list(keys.differ_idx)
    np.testing.assert_allclose(df.mean_dist_lood, lood.mean_dist_lood)
    rows = influence_figure(df, [tmp_path / "f.png"])
    by = {r["y"]: r for r in rows}
    assert by["influence_function"]["pearson_r"] == pytest.approx(1.0)
    r, p = stats.pearsonr(df.pred_diff, df.tracin)
    assert by["tracin"]["pearson_r"] == pytest.approx(r) and by["tracin"][
        "pearson_p"
    ] == pytest.approx(p)
    assert (tmp_path / "f.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="different differing records"):
        influence_table(mia, lood.iloc[:5], tr, inf)


def test_minmax():
    np.testing.assert_allclose(minmax(np.array([2.0, 4.0, 3.0])), [0.0, 1.0, 0.5])
    np.testing.assert_array_equal(minmax(np.array([5.0, 5.0])), [0.0, 0.0])


def test_activation_table_stats_and_same_records(tmp_path):
    rng = np.random.default_rng(1)
    keys, mia_a, lood_a = _tables(rng)
    _, mia_b, lood_b = _tables(rng)
    long = activation_table({"relu": ("relu", mia_a, lood_a), "gelu": ("gelu", mia_b, lood_b)})
    assert len(long) == 16 and list(long.columns[:4]) == ["experiment", "activation", *KEYS]
    st = activation_stats(long)
    paired = st[(st.comparison == "paired") & (st.metric_a == "kl_lood")].iloc[0]
    r, _ = stats.pearsonr(lood_a.kl_lood, lood_b.kl_lood)  # record by record
    assert paired.pearson_r == pytest.approx(r) and paired.n == 8
    assert paired.mean_a == pytest.approx(lood_a.kl_lood.mean())
    within = st[(st.comparison == "within") & (st.experiment_a == "gelu")]
    row = within[within.metric_a == "mean_dist_lood"].iloc[0]
    assert row.pearson_r == pytest.approx(stats.pearsonr(lood_b.mean_dist_lood, mia_b.pred_diff)[0])
    activation_figure(long, [tmp_path / "a.png"])
    assert (tmp_path / "a.png").stat().st_size > 1000
    split = {
        k: np.arange(6) for k in ("x_train", "y_train", "x_test", "y_test", "train_source_idx")
    }
    check_same_records({"a": keys, "b": keys.copy()}, {"a": split, "b": dict(split)})
    with pytest.raises(ValueError, match="differ.csv"):
        check_same_records({"a": keys, "b": keys.iloc[::-1]}, {"a": split, "b": split})
    other = dict(split, y_train=np.arange(6)[::-1])
    with pytest.raises(ValueError, match="y_train"):
        check_same_records({"a": keys, "b": keys}, {"a": split, "b": other})

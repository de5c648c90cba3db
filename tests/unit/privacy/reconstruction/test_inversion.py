"""MI-FACE model inversion (lood.privacy.reconstruction.inversion) against closed forms and independent optimisers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.optimize import minimize

import lood.config as lc
from lood.arch import Architecture
from lood.figures.privacy import inversion_figure
from lood.privacy.reconstruction.inversion import InversionResult, mi_face, pixel_bounds
from lood.privacy.reconstruction.quality import class_means, reconstruction_metrics
from lood.privacy.spec import InversionSpec
from lood.train.ensemble import train_ensemble
from lood.train.models import forward, init_params, select_models
from lood.train.spec import TrainConfig

torch.set_num_threads(1)


SETTINGS = ("lr", "n_steps", "patience", "tol", "gamma", "l2", "tv")


def inversion_spec(**settings) -> InversionSpec:
    """The ``inversion`` section: the schema's defaults with tv = 0, then ``settings``."""
    return InversionSpec.from_config(lc.section_defaults("inversion") | {"tv": 0.0} | settings)


def invert(params, arch, **kwargs):
    """:func:`mi_face` with the settings among ``kwargs`` in its spec, the rest as arguments."""
    spec = inversion_spec(**{k: kwargs.pop(k) for k in SETTINGS if k in kwargs})
    return mi_face(params, arch, spec, **kwargs)


def linear_arch(n_outputs: int, b_std: float = 0.0) -> Architecture:
    return Architecture(
        depth=0,
        width=1,
        activation="relu",
        W_std=1.0,
        b_std=b_std,
        parameterization="ntk",
        n_outputs=n_outputs,
    )


def mlp_arch(n_outputs: int, width: int = 16) -> Architecture:
    return Architecture(
        depth=1,
        width=width,
        activation="relu",
        W_std=1.5,
        b_std=0.1,
        parameterization="ntk",
        n_outputs=n_outputs,
    )


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def linear_logits(w: np.ndarray, b: np.ndarray | None, b_std: float, x: np.ndarray) -> np.ndarray:
    """The ntk-parameterised linear model written out: W_std / sqrt(d) x @ W + b_std b."""
    z = x @ w / math.sqrt(w.shape[0])
    return z if b is None else z + b_std * b


def np_tv(x: np.ndarray, shape: tuple[int, int]) -> float:
    """Anisotropic total variation by explicit loops over neighbouring pixels, divided by d."""
    img = x.reshape(shape)
    total = 0.0
    for i in range(shape[0]):
        for j in range(shape[1]):
            if i + 1 < shape[0]:
                total += abs(img[i + 1, j] - img[i, j])
            if j + 1 < shape[1]:
                total += abs(img[i, j + 1] - img[i, j])
    return total / x.size


# ---------------------------------------------------------------- closed form and other optimisers
def test_linear_two_class_reaches_box_corner():
    """softmax_c of a 2-class linear model is increasing in (w_c - w_other).x: over the box
    [-1, 1]^d its maximiser is the corner sign(w_c - w_other)."""
    d = 6
    rng = np.random.default_rng(0)
    delta = rng.choice([-1.0, 1.0], d) * rng.uniform(0.5, 1.0, d)  # w_0 - w_1, away from 0
    w1 = rng.standard_normal(d)
    w = np.stack([w1 + delta, w1], axis=1)  # [d, 2]
    arch = linear_arch(2)
    params = {"W0": torch.tensor(w[None], dtype=torch.float32)}
    res = invert(params, arch, lr=5.0, n_steps=2000, patience=20, tol=0.0, bounds=(-1.0, 1.0))
    assert isinstance(res, InversionResult)
    assert res.x.shape == (1, 2, d) and res.cost.shape == (1, 2)
    corners = np.stack([np.sign(delta), -np.sign(delta)])  # class 0, class 1
    np.testing.assert_allclose(res.x[0], corners, atol=1e-6)
    best_conf = np.array([softmax(linear_logits(w, None, 0.0, corners[c]))[c] for c in range(2)])
    np.testing.assert_allclose(res.confidence[0], best_conf, rtol=1e-5)
    np.testing.assert_allclose(res.cost[0], 1.0 - best_conf, rtol=1e-4, atol=1e-6)
    # no other corner of the box does better (the brute force over all 2^d corners)
    grid = np.array(np.meshgrid(*[[-1.0, 1.0]] * d)).reshape(d, -1).T
    probs = softmax(linear_logits(w, None, 0.0, grid))
    assert np.all(probs.max(0) <= best_conf + 1e-6)
    assert np.all(res.n_steps < 2000)  # stopped by patience once at the corner


def test_three_class_matches_lbfgsb():
    """Same cost (with l2 and a bias) minimised by scipy's L-BFGS-B (finite differences, several
    starts) under the same box: the minimal costs agree."""
    d, c, b_std, l2, lo, hi = 5, 3, 0.5, 0.3, -1.0, 1.0  # some coordinates end on the box
    rng = np.random.default_rng(1)
    w = rng.standard_normal((d, c))
    b = rng.standard_normal(c)
    arch = linear_arch(c, b_std=b_std)
    params = {
        "W0": torch.tensor(w[None], dtype=torch.float32),
        "b0": torch.tensor(b[None], dtype=torch.float32),
    }
    res = invert(params, arch, lr=0.5, n_steps=3000, patience=100, tol=1e-7, l2=l2, bounds=(lo, hi))

    for cls in range(c):

        def cost(x: np.ndarray, cls: int = cls) -> float:
            p = softmax(linear_logits(w, b, b_std, x))[cls]
            return 1.0 - p + l2 * float(x @ x) / d

        starts = [np.zeros(d)] + [rng.uniform(lo, hi, d) for _ in range(5)]
        best = min(minimize(cost, s, method="L-BFGS-B", bounds=[(lo, hi)] * d).fun for s in starts)
        assert res.cost[0, cls] == pytest.approx(best, abs=2e-4)
        assert cost(res.x[0, cls].astype(np.float64)) == pytest.approx(res.cost[0, cls], abs=1e-5)
        assert np.all(res.x[0, cls] >= lo - 1e-7) and np.all(res.x[0, cls] <= hi + 1e-7)


def test_one_step_is_gradient_step_with_l2_and_tv():
    """After one step x1 = x0 - lr * grad cost(x0): the gradient (softmax, l2 and total variation
    terms) against central finite differences of a numpy version of the cost."""
    shape, c, l2, tv, lr = (3, 4), 3, 0.2, 0.5, 0.05
    d = math.prod(shape)
    arch = mlp_arch(c)
    params = init_params(arch, d, [5], dtype=torch.float64)
    rng = np.random.default_rng(2)
    x0 = rng.standard_normal((c, d))  # generic point: no equal neighbours (TV is smooth there)

    def np_cost(x: np.ndarray, cls: int) -> float:
        w0, b0 = params["W0"][0].numpy(), params["b0"][0].numpy()
        w1, b1 = params["W1"][0].numpy(), params["b1"][0].numpy()
        h = np.maximum(1.5 / math.sqrt(d) * x @ w0 + 0.1 * b0, 0.0)
        z = 1.5 / math.sqrt(arch.width) * h @ w1 + 0.1 * b1
        return 1.0 - softmax(z)[cls] + l2 * float(x @ x) / d + tv * np_tv(x, shape)

    res = invert(
        params, arch, x_init=x0, lr=lr, n_steps=1, tol=0.0, l2=l2, tv=tv, image_shape=shape
    )
    assert res.n_steps.tolist() == [[1, 1, 1]]
    for cls in range(c):
        assert res.cost_history[0, 0, cls] == pytest.approx(np_cost(x0[cls], cls), rel=1e-10)
        eps = 1e-6
        grad = np.array(
            [
                (np_cost(x0[cls] + eps * e, cls) - np_cost(x0[cls] - eps * e, cls)) / (2 * eps)
                for e in np.eye(d)
            ]
        )
        x1 = x0[cls] - lr * grad
        assert res.cost_history[1, 0, cls] == pytest.approx(np_cost(x1, cls), rel=1e-6)
        assert res.cost_history[1, 0, cls] < res.cost_history[0, 0, cls]  # so x1 is the best
        np.testing.assert_allclose(res.x[0, cls], x1, atol=1e-7)


# ---------------------------------------------------------------- batching, stopping, best-so-far
def test_batched_equals_separate_models():
    d, c = 10, 4
    arch = mlp_arch(c)
    params = init_params(arch, d, [11, 12, 13])
    lo, hi = -np.linspace(0.5, 2.0, d), np.linspace(1.0, 3.0, d)
    kw = dict(lr=0.5, n_steps=150, patience=10, tol=1e-4, l2=0.01, bounds=(lo, hi))
    together = invert(params, arch, **kw)
    assert together.x.shape == (3, c, d)
    for k in range(3):
        alone = invert(select_models(params, [k]), arch, **kw)
        np.testing.assert_allclose(together.x[k], alone.x[0], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(together.cost[k], alone.cost[0], rtol=1e-6)
        np.testing.assert_allclose(together.confidence[k], alone.confidence[0], rtol=1e-6)
        np.testing.assert_array_equal(together.n_steps[k], alone.n_steps[0])
    # the models differ, so the per-model results do too (the comparison above is not vacuous)
    assert not np.allclose(together.x[0], together.x[1])
    again = invert(params, arch, **kw)
    np.testing.assert_array_equal(again.x, together.x)  # deterministic on CPU


def test_best_so_far_early_stopping_and_gamma():
    d, c = 8, 3
    arch = mlp_arch(c, width=32)
    params = init_params(arch, d, [3, 4])
    # l2 > 0: the cost has a positive floor, so the relative tol stops it; the large step
    # oscillates, so the last iterate is often not the best one
    res = invert(
        params, arch, lr=5.0, n_steps=400, patience=5, tol=1e-3, l2=0.1, bounds=(-3.0, 3.0)
    )
    t = res.cost_history.shape[0]
    assert res.n_steps.max() < 400 and t == res.n_steps.max() + 1 and len(res.history) == t
    np.testing.assert_array_equal(res.cost, np.nanmin(res.cost_history, axis=0))
    last = np.take_along_axis(res.cost_history, res.n_steps[None], axis=0)[0]
    assert np.any(last > res.cost)  # best-so-far differs from the last iterate
    # each pair stops once its patience runs out: n_steps = evaluations - 1
    np.testing.assert_array_equal(res.n_steps, (~np.isnan(res.cost_history)).sum(0) - 1)
    # the returned x really has the returned confidence and cost (re-evaluated here)
    with torch.no_grad():
        probs = torch.softmax(forward(params, arch, torch.tensor(res.x)), -1).numpy()
    conf = probs[:, np.arange(c), np.arange(c)]
    np.testing.assert_allclose(res.confidence, conf, rtol=1e-5)
    np.testing.assert_allclose(res.cost, 1.0 - conf + 0.1 * (res.x**2).sum(-1) / d, atol=1e-5)
    # history is the mean current cost (stopped pairs keep their last one)
    current = pd.DataFrame(res.cost_history.reshape(t, -1)).ffill().to_numpy()
    np.testing.assert_allclose(res.history, current.mean(1), rtol=1e-6)

    # gamma: stop as soon as the cost is <= gamma
    start = invert(params, arch, n_steps=1, lr=1e-9).cost_history[0]
    gamma = float(np.median(start)) * 0.9
    g = invert(params, arch, lr=0.5, n_steps=5000, patience=5000, tol=0.0, gamma=gamma)
    assert np.all(g.cost <= gamma) and g.n_steps.max() < 5000
    for k in range(2):
        for cls in range(c):
            h = g.cost_history[: g.n_steps[k, cls] + 1, k, cls]
            assert h[-1] <= gamma and np.all(h[:-1] > gamma)


def test_trained_network_inversions_look_like_their_class():
    """A small network trained on two classes with different means: MI-FACE from the mean image
    lands closer (Pearson r) to its own class mean than to the other one."""
    rng = np.random.default_rng(0)
    side, n = 4, 40
    d = side * side
    mu = np.zeros((2, side, side))
    mu[0, :, :2] = 1.0  # class 0: left half bright
    mu[1, :2, :] = 1.0  # class 1: top half bright
    y = np.repeat([0, 1], n // 2)
    x = mu.reshape(2, d)[y] + 0.5 * rng.standard_normal((n, d))
    x = (x - x.mean(0)) / x.std()  # standardised: zero is the mean image
    arch = mlp_arch(2, width=64)
    tcfg = TrainConfig(epochs=30, lr=0.5, batch_size=10, loss="cross_entropy")
    trained = train_ensemble(
        arch,
        tcfg,
        torch.tensor(x, dtype=torch.float32),
        torch.tensor(y),
        np.ones((2, n), dtype=bool),
        [1, 2],
    )
    assert np.all(trained.final_train_accuracy == 1.0)
    res = invert(trained.params, arch, lr=1.0, n_steps=300, bounds=pixel_bounds(x))
    assert np.all(res.confidence > 0.9)
    table = reconstruction_metrics(res.x, x, y, 2)
    assert len(table) == 4
    assert table.class_match.all()
    assert np.all(table.corr_class_mean > table.corr_other_max)
    assert np.all(table.corr_class_mean > 0.3)


# ---------------------------------------------------------------- metrics, figure, validation
def test_class_means_against_loop():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((30, 7))
    y = rng.integers(0, 3, 30)
    got = class_means(x, y, 4)
    for cls in range(3):
        np.testing.assert_allclose(got[cls], x[y == cls].mean(0))
    assert np.isnan(got[3]).all()  # no records of class 3
    with pytest.raises(ValueError, match="y must be"):
        class_means(x, y, 2)


def test_reconstruction_metrics_by_hand():
    x = np.array([[1.0, 0.0, 0.0, 0.0], [3.0, 0.0, 0.0, 2.0], [0.0, 1.0, 2.0, 0.0]])
    y = np.array([0, 0, 1])
    # means: class 0 [2, 0, 0, 1], class 1 [0, 1, 2, 0]
    recon = np.array([[2.0, 0.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0]])  # class 1 "recon" looks like 0
    table = reconstruction_metrics(recon, x, y, 2)
    assert list(table["model"]) == [0, 0] and list(table["class"]) == [0, 1]

    def r(a, b):
        return float(np.corrcoef(a, b)[0, 1])

    m0, m1 = np.array([2.0, 0, 0, 1]), np.array([0.0, 1, 2, 0])
    row0, row1 = table.iloc[0], table.iloc[1]
    assert row0.corr_class_mean == pytest.approx(r(recon[0], m0))
    assert row0.corr_other_max == pytest.approx(r(recon[0], m1))
    assert row0.class_match and row0.closest_class == 0
    near0 = [r(recon[0], x[0]), r(recon[0], x[1])]
    assert row0.corr_nearest_train == pytest.approx(max(near0))
    assert row0.nearest_train_idx == int(np.argmax(near0))
    assert row0.mse_class_mean == pytest.approx(np.mean((recon[0] - m0) ** 2))
    assert row1.corr_class_mean == pytest.approx(r(recon[1], m1))
    assert row1.corr_other_max == pytest.approx(r(recon[1], m0))
    assert not row1.class_match and row1.closest_class == 0
    assert row1.corr_nearest_train == pytest.approx(r(recon[1], x[2]))
    assert row1.nearest_train_idx == 2
    # [K, C, d] gives one row per (model, class); a constant image has no correlation
    stacked = reconstruction_metrics(np.stack([recon, np.ones((2, 4))]), x, y, 2)
    assert len(stacked) == 4
    assert stacked.iloc[:2].drop(columns="model").equals(table.drop(columns="model"))
    flat = stacked.iloc[2]
    assert np.isnan(flat.corr_class_mean) and flat.closest_class == -1 and not flat.class_match


def test_inversion_figure_grid():
    from matplotlib.figure import Figure

    shape = (3, 3)
    rng = np.random.default_rng(4)
    means = rng.standard_normal((4, 9))
    recons = {"non-DP": rng.standard_normal((4, 9)), "DP eps=1": rng.standard_normal((1, 4, 9))}
    fig = inversion_figure(means, recons, shape)
    assert isinstance(fig, Figure) and len(fig.axes) == 3 * 4
    assert [ax.get_ylabel() for ax in fig.axes[::4]] == ["class mean", "non-DP", "DP eps=1"]
    assert [ax.get_title() for ax in fig.axes[:4]] == [f"class {c}" for c in range(4)]
    assert all(len(ax.images) == 1 for ax in fig.axes)
    # an extra row with more images than classes widens the grid and leaves blank cells
    fig = inversion_figure(
        means,
        recons,
        shape,
        extra={"NNGP query": rng.standard_normal((6, 9))},
        titles=["a", "b", "c", "d"],
    )
    assert len(fig.axes) == 4 * 6
    n_images = [len(ax.images) for ax in fig.axes]
    assert n_images == [1] * 4 + [0] * 2 + [1] * 4 + [0] * 2 + [1] * 4 + [0] * 2 + [1] * 6
    assert fig.axes[0].get_title() == "a"
    # and one with fewer
    fig = inversion_figure(means, {}, shape, extra={"NNGP": rng.standard_normal((2, 9))})
    assert len(fig.axes) == 2 * 4 and sum(len(ax.images) for ax in fig.axes) == 6
    fig.savefig(__import__("io").BytesIO(), format="png")  # renders without pyplot
    with pytest.raises(ValueError, match="recons"):
        inversion_figure(means, {"bad": rng.standard_normal((2, 4, 9))}, shape)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": float("nan")}, "lr"),
        ({"l2": float("inf")}, "l2"),
        ({"tol": float("nan")}, "tol"),
        ({"tv": 0.1}, "image_shape"),
        ({"image_shape": (2, 2)}, "image_shape"),
        ({"bounds": (1.0, -1.0)}, "bounds"),
        ({"bounds": (np.zeros(5), 1.0)}, "bounds"),
        ({"x_init": np.zeros(5)}, "x_init"),
        ({"x_init": np.zeros((2, 6))}, "x_init"),
        ({"n_classes": 4}, "n_classes"),
        ({"n_classes": 0}, "n_classes"),
    ],
)
def test_invalid_arguments(kwargs, match):
    arch = linear_arch(3)
    params = init_params(arch, 6, [0])
    with pytest.raises(ValueError, match=match):
        invert(params, arch, **kwargs)


@pytest.mark.parametrize(
    "bad",
    [
        {"lr": 0.0},
        {"n_steps": 0},
        {"patience": 0},
        {"tol": -1.0},
        {"gamma": -0.1},
        {"l2": -0.1},
        {"tv": -0.1},
        {"n_steps": 2.5},
    ],
)
def test_the_schema_rejects_the_ranges_mi_face_relies_on(bad):
    """mi_face no longer re-checks these ranges: the config schema must."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(lc.section_schema("inversion"))
    assert validator.is_valid(lc.section_defaults("inversion"))
    errors = list(validator.iter_errors(lc.section_defaults("inversion") | bad))
    assert [list(e.absolute_path) for e in errors] == [list(bad)]


def test_n_classes_subset_and_x_init_per_class():
    arch = mlp_arch(4)
    params = init_params(arch, 6, [0, 1])
    x0 = np.arange(12, dtype=np.float64).reshape(2, 6) / 10
    res = invert(params, arch, n_classes=2, x_init=x0, n_steps=1, lr=1e-12)
    assert res.x.shape == (2, 2, 6)
    np.testing.assert_allclose(res.x[1], x0, atol=1e-6)  # starts at x0 for every model
    with torch.no_grad():
        probs = torch.softmax(forward(params, arch, torch.tensor(x0, dtype=torch.float32)), -1)
    # the softmax is over all 4 outputs, the target of row c is class c
    np.testing.assert_allclose(res.confidence, probs[:, [0, 1], [0, 1]].numpy(), rtol=1e-5)


def test_improves_is_one_rule_for_floats_arrays_and_tensors():
    """The early-stopping test of MI-FACE and the query optimisation (lood.ascent)."""
    from lood.ascent import improves

    assert improves(1.0, -math.inf, 0.1) and improves(1.0, -math.inf, 0.0)  # nothing seen yet
    assert improves(1.2, 1.0, 0.1) and not improves(1.05, 1.0, 0.1)  # relative tol
    assert improves(-0.9, -1.0, 0.05) and not improves(-0.96, -1.0, 0.05)  # |best|
    assert improves(0.85, 1.0, 0.1, minimize=True) and not improves(0.95, 1.0, 0.1, minimize=True)
    assert improves(5.0, math.inf, 0.1, minimize=True)
    best = np.array([-np.inf, 1.0, 1.0, 2.0])
    value = np.array([0.0, 1.2, 1.05, 1.0])
    np.testing.assert_array_equal(improves(value, best, 0.1), [True, True, False, False])
    # minimising the negatives is maximising, on tensors as on arrays
    got = improves(torch.tensor(-value), torch.tensor(-best), 0.1, minimize=True)
    assert got.tolist() == [True, True, False, False]

"""DP-SGD of the batched ensemble against Opacus and against a plain per-sample reference loop;
accounting against the exact privacy curve of the (non-subsampled) Gaussian mechanism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import make_job, train_spec
from scipy import optimize, stats

from lood.arch import Architecture
from lood.seeds import derive_seed
from lood.train.dp import (
    calibrate_noise,
    clipped_grad_sum,
    dp_config,
    epsilon,
    poisson_batches,
    sample_rate,
    spent_epsilon,
    steps_per_epoch,
    torch_module,
    train_ensemble_dp,
)
from lood.train.ensemble import train_ensemble
from lood.train.models import forward, init_params, param_names
from lood.train.primitives import (
    EnsembleOptions,
    StackedNetwork,
    loss_and_grad,
    regression_targets,
)
from lood.train.spec import DPConfig, TrainConfig

torch.set_num_threads(1)


def _data(n: int = 24, d: int = 6, c: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.standard_normal((n, d)))
    y = torch.tensor(rng.integers(0, c, n), dtype=torch.int64)
    return x, y


@pytest.mark.parametrize(
    "arch",
    [
        Architecture(2, 16, "relu", 1.5, 0.0, "ntk", 3),  # the workflow's kind: ntk, no bias
        Architecture(1, 12, "gelu", 1.0, 0.5, "standard", 3),  # biases, standard parameterisation
    ],
    ids=["ntk-relu", "standard-gelu-bias"],
)
@pytest.mark.filterwarnings("ignore:Full backward hook")  # Opacus's hooks on an input layer
def test_clipped_gradient_step_matches_opacus(arch):
    """One DP-SGD step (noise 0 on Opacus's side) moves the parameters exactly as Opacus does."""
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    x, y = _data()
    d, bsz, clip, expected = x.shape[1], 10, 0.7, 8.0
    params = init_params(arch, d, [3], dtype=torch.float64)
    xb, yb = x[:bsz], y[:bsz]
    t = regression_targets(yb, arch.n_outputs, torch.float64)

    model = GradSampleModule(torch_module(params, arch), loss_reduction="mean")
    opt = DPOptimizer(
        torch.optim.SGD(model.parameters(), lr=1.0),
        noise_multiplier=0.0,
        max_grad_norm=clip,
        expected_batch_size=int(expected),
        loss_reduction="mean",
    )
    before = [p.detach().clone() for p in model.parameters()]
    loss = (0.5 * (model(xb) - t).square().sum(-1)).mean()
    loss.backward()
    opacus_norms = torch.stack(
        [p.grad_sample.reshape(bsz, -1).norm(dim=1) for p in model.parameters()], dim=1
    ).norm(dim=1)
    opt.step()
    opacus_update = [b - p.detach() for b, p in zip(before, model.parameters(), strict=True)]

    net = StackedNetwork(arch, params, 1, bsz, d)
    out = net.forward(xb.unsqueeze(0))
    _, dout = loss_and_grad(
        "mse", out, yb.unsqueeze(0), t.unsqueeze(0), torch.ones(1, bsz).double()
    )
    grads = {name: torch.empty_like(params[name]) for name in param_names(arch)}
    norms = clipped_grad_sum(net, xb.unsqueeze(0), dout, clip, grads)
    torch.testing.assert_close(norms[0], opacus_norms, rtol=1e-10, atol=1e-12)
    assert float((norms > clip).float().mean()) > 0.2, "the test must exercise clipping"
    ours = []
    for name in param_names(arch):  # same order as the nn.Linear parameters
        g = grads[name][0] / expected
        ours.append(g.T if name.startswith("W") else g)
    for a, b in zip(ours, opacus_update, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def _reference_dp_training(arch, tcfg, dp, x, y, mask, seed):
    """Plain DP-SGD for one model: torch.func per-sample gradients, explicit clip and noise."""
    from torch.func import grad, vmap

    n, d = x.shape
    params = init_params(arch, d, [seed], dtype=torch.float64)
    p = {k: v[0].clone() for k, v in params.items()}
    names = param_names(arch)
    t_all = regression_targets(y, arch.n_outputs, torch.float64)

    def loss_one(pp, xi, ti):
        out = forward({k: v.unsqueeze(0) for k, v in pp.items()}, arch, xi[None, None, :])
        return 0.5 * (out[0, 0] - ti).square().sum()

    per_sample = vmap(grad(loss_one), in_dims=(None, 0, 0))
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(derive_seed(seed, "dp-noise"))
    incl = np.flatnonzero(mask)
    q = 1.0 / math.ceil(n / tcfg.batch_size)
    buf = {k: torch.zeros_like(v) for k, v in p.items()}
    # the rate of each epoch as torch's MultiStepLR sets it on an optimizer (train.lr_schedule)
    rate = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=tcfg.lr)
    sched = torch.optim.lr_scheduler.MultiStepLR(
        rate, milestones=list(tcfg.lr_milestones) or [10**6], gamma=tcfg.lr_gamma
    )
    for _ in range(tcfg.epochs):
        lr = rate.param_groups[0]["lr"]
        for _ in range(math.ceil(n / tcfg.batch_size)):
            batch = incl[rng.random(len(incl)) < q]
            total = {k: torch.zeros_like(v) for k, v in p.items()}
            if len(batch):
                g = per_sample(p, x[batch], t_all[batch])
                flat = torch.cat([g[k].reshape(len(batch), -1) for k in names], dim=1)
                factor = (dp.max_grad_norm / (flat.norm(dim=1) + 1e-6)).clamp(max=1.0)
                for k in names:
                    total[k] = (g[k] * factor.view(-1, *[1] * (g[k].dim() - 1))).sum(0)
            for k in names:
                noise = torch.randn(p[k].shape, generator=gen, dtype=torch.float64)
                gk = (total[k] + dp.noise_multiplier * dp.max_grad_norm * noise) / (q * n)
                buf[k] = tcfg.momentum * buf[k] + gk
                p[k] = p[k] - lr * buf[k]
        rate.step()
        sched.step()
    return p


@pytest.mark.parametrize("schedule", [{}, dict(lr_schedule="step", lr_milestones=(1, 2))])
def test_dp_training_matches_plain_reference_loop(schedule):
    """Whole DP-SGD runs (Poisson batches, clipping, noise, momentum, a step schedule) equal a
    plain loop, per model, in and out masks alike, whatever else is in the ensemble."""
    arch = Architecture(2, 10, "relu", 1.4, 0.0, "ntk", 3)
    x, y = _data(n=30, d=5)
    tcfg = TrainConfig(epochs=3, lr=0.5, batch_size=8, momentum=0.5, **schedule)
    dp = DPConfig(noise_multiplier=0.8, max_grad_norm=0.5, delta=1e-3)
    masks = np.ones((3, 30), dtype=bool)
    masks[1, 4] = False
    masks[2, :10] = False
    seeds = [11, 12, 13]
    res = train_ensemble_dp(
        arch, tcfg, dp, x, y, masks, seeds, EnsembleOptions(dtype=torch.float64, chunk_size=2)
    )
    assert res.extra["dp"] == dp and res.extra["first_layer"] == "standard"
    assert (res.n_updates == 3 * math.ceil(30 / 8)).all()
    for j in range(3):
        ref = _reference_dp_training(arch, tcfg, dp, x, y, masks[j], seeds[j])
        for name in param_names(arch):
            torch.testing.assert_close(res.params[name][j], ref[name], rtol=1e-9, atol=1e-10)


def test_noise_and_clipping_change_the_result():
    """DP training is not the plain training: noise moves the weights, more noise moves them more."""
    arch = Architecture(1, 8, "relu", 1.4, 0.0, "ntk", 2)
    x, y = _data(n=20, d=4, c=2)
    tcfg = TrainConfig(epochs=2, lr=0.5, batch_size=5)
    masks = np.ones((1, 20), dtype=bool)

    def w(noise):
        dp = DPConfig(noise, 100.0, 1e-3)  # clipping inactive at C = 100
        return train_ensemble_dp(
            arch, tcfg, dp, x, y, masks, [0], EnsembleOptions(dtype=torch.float64)
        ).params

    lo, hi, lo2 = w(1e-6), w(10.0), w(1e-6)
    torch.testing.assert_close(lo["W0"], lo2["W0"])  # deterministic
    init = init_params(arch, 4, [0], dtype=torch.float64)
    assert float((hi["W0"] - init["W0"]).norm()) > 5 * float((lo["W0"] - init["W0"]).norm())


def test_poisson_batches_rate_and_masks():
    rngs = [np.random.default_rng(s) for s in range(4)]
    incl = [np.arange(1000), np.arange(500), np.arange(0), np.arange(1000)[::3]]
    idx, sizes = poisson_batches(rngs, incl, 0.1, 20, pad=-1)
    assert idx.shape[:2] == (20, 4) and sizes.shape == (20, 4)
    assert (sizes[:, 2] == 0).all()
    for j, inc in enumerate(incl):
        chosen = idx[:, j][idx[:, j] >= 0]
        assert np.isin(chosen, inc).all()
        if len(inc):  # mean batch size q |incl| within 4 standard errors
            se = math.sqrt(len(inc) * 0.1 * 0.9 / 20)
            assert abs(sizes[:, j].mean() - 0.1 * len(inc)) < 4 * se


def _exact_gaussian_epsilon(mu: float, delta: float) -> float:
    """Exact epsilon of a Gaussian mechanism with mu = sensitivity / std (Balle & Wang 2018)."""

    def d(eps):
        return stats.norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * stats.norm.cdf(
            -eps / mu - mu / 2
        )

    return optimize.brentq(lambda e: d(e) - delta, 0.0, 100.0)


@pytest.mark.parametrize("accountant,slack", [("rdp", 1.6), ("prv", 1.05)])
def test_accountants_bound_the_exact_gaussian_curve(accountant, slack):
    """Full-batch steps (q = 1) compose to one Gaussian mechanism with mu = sqrt(T) / sigma, whose
    exact epsilon is known: an accountant must never report less, and should not be far above."""
    sigma, steps, delta = 4.0, 10, 1e-5
    exact = _exact_gaussian_epsilon(math.sqrt(steps) / sigma, delta)
    got = epsilon(sigma, 1.0, steps, delta, accountant)
    assert exact * 0.995 <= got <= exact * slack, (got, exact)


def test_epsilon_monotone_and_calibration_round_trip():
    q, steps, delta = sample_rate(500, 64), 20 * steps_per_epoch(500, 64), 1e-5
    assert q == 1 / 8 and steps == 160
    eps = [epsilon(s, q, steps, delta) for s in (0.8, 1.5, 3.0)]
    assert eps[0] > eps[1] > eps[2] > 0
    assert epsilon(1.0, q, 0, delta) == 0.0
    for target in (1.0, 4.0):
        sigma = calibrate_noise(target, q, steps, delta)
        assert target * 0.97 <= epsilon(sigma, q, steps, delta) <= target
    dp = dp_config(
        train_spec(
            {
                "batch_size": 64,
                "epochs": 20,
                "lr": 0.1,
                "dp": {"enabled": True, "target_epsilon": 2.0},
            }
        ),
        500,
    )
    assert dp is not None and 1.9 <= spent_epsilon(dp, 500, 64, 20) <= 2.0


@pytest.mark.parametrize(
    "dp,match",
    [
        ({"noise_multiplier": 0.0}, "noise_multiplier"),
        ({"noise_multiplier": -1.0}, "noise_multiplier"),
        ({"max_grad_norm": 0.0}, "max_grad_norm"),
        ({"delta": 0.01}, r"delta must be in \(0, 1/n_train"),
        ({"delta": 0.0}, "delta"),
        ({"accountant": "gdp"}, "accountant"),
        ({"target_epsilon": 0.0}, "target_epsilon"),
        ({"target_epsilon": -2.0}, "target_epsilon"),
    ],
)
def test_invalid_dp_parameters_are_rejected(dp, match):
    train = train_spec({"batch_size": 10, "epochs": 2, "lr": 0.1, "dp": {"enabled": True, **dp}})
    with pytest.raises(ValueError, match=match):
        dp_config(train, 200)


def test_dp_disabled_gives_no_mechanism():
    assert dp_config(train_spec({"batch_size": 10, "epochs": 1, "lr": 0.1}), 100) is None
    off = train_spec(
        {"batch_size": 10, "epochs": 1, "lr": 0.1, "dp": {"enabled": False, "delta": 0.5}}
    )
    assert dp_config(off, 100) is None  # unused settings are not checked


def test_torch_module_is_the_same_network():
    for arch in (
        Architecture(2, 7, "gelu", 1.3, 0.0, "ntk", 3),
        Architecture(1, 5, "relu", 1.0, 0.4, "standard", 2),
    ):
        params = init_params(arch, 4, [5, 6], dtype=torch.float64)
        x = torch.randn(9, 4, dtype=torch.float64)
        for k in range(2):
            torch.testing.assert_close(
                torch_module(params, arch, k)(x), forward(params, arch, x)[k]
            )
    with pytest.raises(ValueError, match="ntk biases"):
        torch_module(
            init_params(Architecture(1, 3, "relu", 1.0, 0.5, "ntk", 2), 2, [0]),
            Architecture(1, 3, "relu", 1.0, 0.5, "ntk", 2),
        )


@pytest.mark.filterwarnings("ignore:Full backward hook", "ignore:Secure RNG")
@pytest.mark.parametrize(
    "schedule", [{}, dict(lr_schedule="step", lr_milestones=(2,), lr_gamma=0.2)]
)
def test_opacus_backend_equals_ensemble_on_full_batches(schedule):
    """With batch_size >= N every Poisson batch is all of the model's records (q = 1), so with
    negligible noise both backends run the same deterministic clipped descent: the Opacus path
    (module conversion, loss scaling, expected batch size, momentum) must land where the
    ensemble does, in and out models alike."""
    from lood.train.dp import train_opacus

    arch = Architecture(1, 16, "relu", 1.4, 0.0, "ntk", 2)
    x, y = _data(n=24, d=5, c=2)
    x = x.float()
    tcfg = TrainConfig(epochs=5, lr=0.5, batch_size=32, momentum=0.5, **schedule)
    dp = DPConfig(noise_multiplier=1e-7, max_grad_norm=0.3, delta=1e-3)
    masks = np.ones((2, 24), dtype=bool)
    masks[1, 3] = False
    ens = train_ensemble_dp(
        arch, tcfg, dp, x, y, masks, [1, 2], EnsembleOptions(eval_sets={"x": x})
    )
    opa = train_opacus(
        arch, tcfg, dp, x, y, masks, np.array([1, 2]), EnsembleOptions(eval_sets={"x": x})
    )
    assert opa.extra["backend"] == "opacus" and (opa.n_updates == ens.n_updates).all()
    for name in param_names(arch):
        torch.testing.assert_close(opa.params[name], ens.params[name], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(opa.outputs["x"], ens.outputs["x"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(opa.final_train_loss, ens.final_train_loss, rtol=1e-4)
    init = init_params(arch, 5, [1])["W0"]
    assert float((ens.params["W0"][0] - init[0]).norm()) > 1e-2  # it did train


@pytest.mark.parametrize(
    "opts", [EnsembleOptions(dtype=torch.float64), EnsembleOptions(on_epoch_end=lambda e, p: None)]
)
def test_opacus_backend_refuses_options_it_cannot_honour(opts):
    """Opacus trains one float32 model at a time and has no per-epoch callback: asking for
    float64 or checkpoints is an error, not a silent float32 run without them."""
    from lood.train.dp import train_opacus

    x, y = _data(n=12, d=3, c=2)
    tcfg = TrainConfig(epochs=1, lr=0.1, batch_size=4)
    dp = DPConfig(noise_multiplier=1.0, max_grad_norm=1.0, delta=1e-3)
    masks = np.ones((1, 12), dtype=bool)
    with pytest.raises(ValueError, match="float32"):
        train_opacus(
            Architecture(1, 4, "relu", 1.4, 0.0, "ntk", 2), tcfg, dp, x, y, masks, [0], opts
        )


@pytest.mark.filterwarnings("ignore:Full backward hook", "ignore:Secure RNG")
def test_fit_ensemble_dispatches_on_dp_backend():
    from lood.data.split import Split
    from lood.jobs.training import fit_ensemble

    x, y = _data(n=20, d=4, c=2)
    split = Split(
        x_train=x.float().numpy(),
        y_train=y.numpy(),
        x_test=x[:5].float().numpy(),
        y_test=y[:5].numpy(),
        train_source_idx=np.arange(20),
        test_source_idx=np.arange(5),
        image_shape=(2, 2),
        classes=(0, 1),
    )
    arch = Architecture(1, 8, "relu", 1.4, 0.0, "ntk", 2)
    train = {
        "epochs": 2,
        "lr": 0.1,
        "batch_size": 5,
        "optimizer": "sgd",
        "momentum": 0.0,
        "weight_decay": 0.0,
        "loss": "mse",
        "device": "cpu",
    }
    for backend in ("ensemble", "opacus"):
        dp = {"enabled": True, "noise_multiplier": 1.0, "delta": 1e-3, "backend": backend}
        job = make_job(split, arch, train | {"dp": dp})
        res = fit_ensemble(job, np.ones((2, 20), bool), np.array([0, 1]), {"test": split.x_test})
        assert res.extra.get("backend", "ensemble") == backend and res.extra["dp"] is not None
        assert res.outputs["test"].shape == (2, 5, 2) and (res.n_updates == 2 * 4).all()


def test_influence_model_trains_with_dp():
    """The TracIn / influence-function model of a DP experiment is trained with DP-SGD too: its
    last checkpoint is the DP ensemble's model, not the plain one."""
    from lood.data.split import Split
    from lood.jobs.influence import train_with_checkpoints

    arch = Architecture(1, 8, "relu", 1.4, 0.0, "ntk", 2)
    x, y = _data(n=20, d=4, c=2)
    x = x.float()
    split = Split(
        x_train=x.numpy(),
        y_train=y.numpy(),
        x_test=x[:5].numpy(),
        y_test=y[:5].numpy(),
        train_source_idx=np.arange(20),
        test_source_idx=np.arange(5),
        image_shape=(4,),
        classes=(0, 1),
    )
    job = make_job(
        split,
        arch,
        {
            "epochs": 3,
            "lr": 0.3,
            "batch_size": 5,
            "device": "cpu",
            "dp": {"enabled": True, "noise_multiplier": 2.0, "max_grad_norm": 0.5, "delta": 1e-3},
        },
    )
    tcfg = job.train.optimization
    dp = DPConfig(2.0, 0.5, 1e-3)
    ckpts, _ = train_with_checkpoints(job, seed=4)
    ref = train_ensemble_dp(arch, tcfg, dp, x, y, np.ones((1, 20), bool), [4]).params
    plain = train_ensemble(arch, tcfg, x, y, np.ones((1, 20), bool), [4]).params
    torch.testing.assert_close(ckpts.params["W0"][-1], ref["W0"][0])
    assert not torch.allclose(ckpts.params["W0"][-1], plain["W0"][0])


def test_drop_last_is_refused_by_both_dp_backends_and_by_the_config_check():
    """Poisson batches have no last batch: drop_last with DP-SGD is an error, not a no-op."""
    from lood.train.dp import train_opacus

    arch = Architecture(1, 8, "relu", 1.4, 0.0, "ntk", 2)
    x, y = _data(n=12, d=5, c=2)
    tcfg = TrainConfig(epochs=1, lr=0.1, batch_size=5, drop_last=True)
    dp = DPConfig(noise_multiplier=1.0, max_grad_norm=1.0, delta=1e-3)
    masks = np.ones((1, 12), dtype=bool)
    for train in (train_ensemble_dp, train_opacus):
        with pytest.raises(ValueError, match="drop_last"):
            train(arch, tcfg, dp, x.float(), y, masks, [1])
    spec = train_spec(
        {
            "epochs": 1,
            "batch_size": 5,
            "lr": 0.1,
            "drop_last": True,
            "dp": {"enabled": True, "noise_multiplier": 1.0},
        }
    )
    with pytest.raises(ValueError, match="train.drop_last"):
        spec.dp.check(100, spec.shuffle, spec.drop_last)

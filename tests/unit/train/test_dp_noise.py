"""The scale of the DP-SGD noise, measured with real noise: the variance of the update over many
seeds is S sigma^2 C^2 / (qN)^2 (S noisy steps, lr 1) in the batched ensemble, in Opacus's own
DPOptimizer and in the Opacus backend, and independent across models.

All inputs are 0 and the network has no bias, so every gradient is exactly 0 (the hidden units
and the input are 0): the parameter change of a run is its noise alone, whatever the
initialisation and the Poisson batches. tests/unit/train/test_dp.py checks the gradient part with noise
switched off."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lood.arch import Architecture
from lood.train.dp import sample_rate, steps_per_epoch, torch_module, train_ensemble_dp
from lood.train.models import init_params, param_names
from lood.train.primitives import EnsembleOptions
from lood.train.spec import DPConfig, TrainConfig

ARCH = Architecture(1, 8, "relu", 1.4, 0.0, "ntk", 2)
N, D, BATCH = 40, 3, 10
DP = DPConfig(noise_multiplier=1.3, max_grad_norm=0.7, delta=1e-3)
Q = sample_rate(N, BATCH)  # 1/4
STEPS = steps_per_epoch(N, BATCH)  # 4 noisy steps in one epoch
EXPECTED_BATCH = Q * N  # 10
STEP_VAR = (DP.noise_multiplier * DP.max_grad_norm / EXPECTED_BATCH) ** 2


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _data():
    x = torch.zeros(N, D, dtype=torch.float64)
    y = torch.tensor(np.arange(N) % 2, dtype=torch.int64)
    return x, y


def _flat(params, k=None):
    parts = [params[n] if k is None else params[n][k] for n in param_names(ARCH)]
    return torch.cat([p.reshape(len(p), -1) if k is None else p.reshape(-1) for p in parts], -1)


def _variance_ok(delta: np.ndarray, expected: float) -> None:
    """Sample variance of n iid N(0, expected) values within 4 standard errors (sqrt(2/n))."""
    v = delta.ravel()
    n = v.size
    ratio = float(np.mean(v**2)) / expected  # mean known to be 0
    assert abs(ratio - 1) < 4 * math.sqrt(2 / n), (ratio, n)
    assert abs(float(v.mean())) < 4 * math.sqrt(expected / n)


def test_ensemble_dp_update_has_the_dp_sgd_noise_scale():
    """500 models, one epoch: param change = -sum of 4 noises / (qN), 20 000 coordinates."""
    x, y = _data()
    k = 500
    seeds = np.arange(1000, 1000 + k)
    tcfg = TrainConfig(epochs=1, lr=1.0, batch_size=BATCH)
    res = train_ensemble_dp(
        ARCH, tcfg, DP, x, y, np.ones((k, N), bool), seeds, EnsembleOptions(dtype=torch.float64)
    )
    assert (res.n_updates == STEPS).all()
    init = init_params(ARCH, D, seeds.tolist(), dtype=torch.float64)
    delta = (_flat(res.params) - _flat(init)).numpy()  # [K, P]
    _variance_ok(delta, STEPS * STEP_VAR)
    # models draw independent noise: neighbouring models' changes are uncorrelated
    r = np.corrcoef(delta[:-1].ravel(), delta[1:].ravel())[0, 1]
    assert abs(r) < 4 / math.sqrt(delta[:-1].size), r
    # and the variance really scales with sigma^2 C^2: double the noise, four times the variance
    loud = DPConfig(2 * DP.noise_multiplier, DP.max_grad_norm, DP.delta)
    res2 = train_ensemble_dp(
        ARCH, tcfg, loud, x, y, np.ones((k, N), bool), seeds, EnsembleOptions(dtype=torch.float64)
    )
    _variance_ok((_flat(res2.params) - _flat(init)).numpy(), 4 * STEPS * STEP_VAR)


@pytest.mark.filterwarnings("ignore:Full backward hook", "ignore:Secure RNG")
def test_opacus_dp_optimizer_step_has_the_same_noise_scale():
    """Opacus's GradSampleModule + DPOptimizer, 250 real noisy steps on the same zero-gradient
    network: the per-step change has variance sigma^2 C^2 / (qN)^2, as the ensemble's."""
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    x, y = _data()
    params = init_params(ARCH, D, [0], dtype=torch.float64)
    model = GradSampleModule(torch_module(params, ARCH), loss_reduction="mean")
    opt = DPOptimizer(
        torch.optim.SGD(model.parameters(), lr=1.0),
        noise_multiplier=DP.noise_multiplier,
        max_grad_norm=DP.max_grad_norm,
        expected_batch_size=int(EXPECTED_BATCH),
        loss_reduction="mean",
        generator=torch.Generator().manual_seed(3),
    )
    steps = []
    for _ in range(250):
        before = torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])
        opt.zero_grad(set_to_none=True)
        model(x[:BATCH]).square().sum(-1).mean().backward()
        opt.step()
        after = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        steps.append((after - before).numpy())
    _variance_ok(np.array(steps), STEP_VAR)


@pytest.mark.filterwarnings("ignore:Full backward hook", "ignore:Secure RNG")
def test_opacus_backend_run_has_the_same_noise_scale():
    """train.dp.backend: opacus (DPDataLoader's Poisson batches, DPOptimizer), one epoch per
    model: the same S sigma^2 C^2 / (qN)^2 as the ensemble backend."""
    from lood.train.dp import train_opacus

    x, y = _data()
    k = 150
    seeds = np.arange(k)
    tcfg = TrainConfig(epochs=1, lr=1.0, batch_size=BATCH)
    res = train_opacus(ARCH, tcfg, DP, x.float(), y, np.ones((k, N), bool), seeds)
    assert (res.n_updates == STEPS).all()
    init = init_params(ARCH, D, seeds.tolist())
    delta = (_flat(res.params) - _flat(init)).double().numpy()
    _variance_ok(delta, STEPS * STEP_VAR)

"""The method's premise: finite networks at initialisation are draws of the GP whose kernel
lood.nngp computes. The empirical output covariance of 2000 networks of width 512 (256 at depth
3), initialised by the project's own lood.train.models.init_params and run by lood.train.models.forward,
matches lood.nngp.nngp_kernel within Monte Carlo error, for every activation, parameterisation
and bias setting the workflow offers; a wrong kernel fails the same test."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lood.arch import Architecture
from lood.nngp.kernel import nngp_kernel
from lood.train.models import forward, init_params

N_NETS, CHUNK = 2000, 250
# 15 covariance entries per architecture, correlated: |z| > 4.5 has probability < 1e-4 per test
Z_MAX = 4.5


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: on a loaded 2-core machine torch.stack of the 250 weight matrices of a
    chunk takes seconds with two threads (spinning) and 0.2 s with one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _inputs() -> np.ndarray:
    """Five inputs in 6 dims: different norms, an opposite pair and a nearly parallel pair."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 6))
    x[1] *= 0.4
    x[2] = -x[0]
    x[3] = x[0] + 0.1 * rng.normal(size=6)
    return x


def _network_outputs(arch: Architecture, x: np.ndarray) -> np.ndarray:
    """Scalar outputs [N_NETS, M] of N_NETS independently initialised networks (seeds 0..)."""
    xt = torch.tensor(x, dtype=torch.float32)
    out = []
    for s in range(0, N_NETS, CHUNK):
        params = init_params(arch, x.shape[1], list(range(s, s + CHUNK)))
        with torch.no_grad():
            out.append(forward(params, arch, xt)[:, :, 0].double().numpy())
    return np.concatenate(out)


def _z_scores(f: np.ndarray, kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per entry (a <= b) of the covariance: (estimate - kernel) / standard error, where the
    estimate is mean_k f_k(a) f_k(b) (the outputs have mean 0 exactly: the weights are
    symmetric) and its standard error std_k(f_k(a) f_k(b)) / sqrt(K). Also the means' z."""
    a, b = np.triu_indices(f.shape[1])
    prods = f[:, a] * f[:, b]
    se = prods.std(axis=0, ddof=1) / np.sqrt(len(f))
    z_cov = (prods.mean(axis=0) - kernel[a, b]) / se
    z_mean = f.mean(axis=0) / (f.std(axis=0, ddof=1) / np.sqrt(len(f)))
    return z_cov, z_mean


# Width 512; the depth-3 networks at width 256 (a hidden-to-hidden layer costs N_NETS * width^2
# normal draws, ~1 s per 10^8 here; the finite-width bias of the covariance, O(depth / width),
# stays well below its ~3% standard error).
ARCHS = [
    pytest.param(depth, width, act, param, b_std, id=f"d{depth}w{width}-{act}-{param}-b{b_std}")
    for depth, width, act, param, b_std in [
        (1, 512, "relu", "ntk", 0.0),
        (1, 512, "relu", "ntk", 0.3),
        (1, 512, "relu", "standard", 0.0),
        (1, 512, "relu", "standard", 0.3),
        (1, 512, "gelu", "ntk", 0.0),
        (1, 512, "gelu", "ntk", 0.3),
        (1, 512, "gelu", "standard", 0.0),
        (1, 512, "gelu", "standard", 0.3),
        (2, 512, "relu", "ntk", 0.0),  # the default experiment's kind
        (2, 512, "gelu", "standard", 0.3),
        (3, 256, "relu", "standard", 0.3),
    ]
]


@pytest.mark.parametrize(("depth", "width", "activation", "param", "b_std"), ARCHS)
def test_finite_networks_at_init_have_the_nngp_covariance(depth, width, activation, param, b_std):
    arch = Architecture(depth, width, activation, 1.5, b_std, param, 1)
    x = _inputs()
    f = _network_outputs(arch, x)
    kernel = nngp_kernel(arch, x)
    z_cov, z_mean = _z_scores(f, kernel)
    assert np.max(np.abs(z_cov)) < Z_MAX, (z_cov, kernel)
    assert np.max(np.abs(z_mean)) < Z_MAX, z_mean


def test_a_wrong_kernel_is_rejected():
    """Power: the same statistic rejects the kernel of a neighbouring architecture (one layer
    more, bias missing, the other activation, W_std 10% off) by a wide margin; the right kernels
    above give max |z| 1.0 to 1.7 over their 15 entries."""
    arch = Architecture(1, 512, "gelu", 1.5, 0.3, "standard", 1)
    x = _inputs()
    f = _network_outputs(arch, x)
    assert np.max(np.abs(_z_scores(f, nngp_kernel(arch, x))[0])) < Z_MAX
    for wrong in (
        Architecture(2, 512, "gelu", 1.5, 0.3, "standard", 1),
        Architecture(1, 512, "gelu", 1.5, 0.0, "standard", 1),
        Architecture(1, 512, "relu", 1.5, 0.3, "standard", 1),
        Architecture(1, 512, "gelu", 1.65, 0.3, "standard", 1),
    ):
        z = np.max(np.abs(_z_scores(f, nngp_kernel(wrong, x))[0]))
        assert z > 2 * Z_MAX, (wrong, z)  # measured: 10.6 to 15.4

"""sigma^2 by the evidence against a direct Cholesky evaluation of the log marginal likelihood."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.linalg
from scipy.optimize import minimize_scalar

from lood.nngp.evidence import (
    amplitude_profile,
    choose_sigma2,
    evidence_curve,
    resolve_sigma2,
    select_sigma2,
    write_sigma2,
)


def _direct_log_evidence(k, y, s2):
    """sum over columns of log N(y_c; 0, K + s2 I), by Cholesky."""
    n, c = y.shape
    chol = scipy.linalg.cholesky(k + s2 * np.eye(n), lower=True)
    z = scipy.linalg.solve_triangular(chol, y, lower=True)
    return float(
        -0.5 * np.sum(z**2) - c * np.sum(np.log(np.diag(chol))) - 0.5 * n * c * np.log(2 * np.pi)
    )


def _problem(n=60, c=3, seed=0):
    """RBF + linear kernel on random inputs, labels from the inputs (so some noise level fits best)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    sq = np.sum((x[:, None] - x[None]) ** 2, axis=-1)
    k = np.exp(-sq / 4.0) + 0.2 * (x @ x.T) / 4.0
    score = x[:, 0] + 0.3 * rng.normal(size=n)
    labels = np.digitize(score, np.quantile(score, np.arange(1, c) / c))
    return k, np.eye(c)[labels] - 1.0 / c  # centred one-hot


def test_curve_equals_direct_cholesky_evaluation():
    k, y = _problem()
    curve = evidence_curve(k, y)
    grid = np.geomspace(1e-5, 1e2, 30)
    direct = [_direct_log_evidence(k, y, s) for s in grid]
    np.testing.assert_allclose(curve(grid), direct, rtol=1e-10)
    assert float(curve(0.3)) == pytest.approx(_direct_log_evidence(k, y, 0.3), rel=1e-10)
    # single-column targets [N]
    assert float(evidence_curve(k, y[:, 0])(0.1)) == pytest.approx(
        _direct_log_evidence(k, y[:, :1], 0.1), rel=1e-10
    )
    assert float(curve(-10.0)) == -np.inf  # K + sigma2 I not positive definite


def test_optimum_beats_every_grid_point_and_is_stationary():
    k, y = _problem()
    res = select_sigma2(k, y)
    scale = np.mean(np.diag(k))
    assert 1e-6 * scale <= res.sigma2 <= 1e2 * scale and not res.at_bound
    assert res.log_evidence == pytest.approx(_direct_log_evidence(k, y, res.sigma2), rel=1e-10)
    fine = np.geomspace(1e-6 * scale, 1e2 * scale, 200)
    direct = np.array([_direct_log_evidence(k, y, s) for s in fine])
    assert res.log_evidence >= direct.max() - 1e-9 * abs(direct.max())
    assert np.all(res.log_evidence >= res.grid_log_evidence)
    for f in (1 - 1e-4, 1 + 1e-4):  # an interior maximum
        assert _direct_log_evidence(k, y, f * res.sigma2) <= res.log_evidence


def test_grid_finds_global_optimum_where_a_plain_bounded_search_does_not():
    # two groups of eigen-directions that want very different noise levels: two local maxima
    rng = np.random.default_rng(1)
    n, c = 40, 2
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    k = q @ np.diag(np.r_[np.full(10, 1e-4), np.ones(30)]) @ q.T
    z = np.r_[np.full((10, c), np.sqrt(1e-3 / c)), np.full((30, c), np.sqrt(30 / c))]
    y = q @ z
    curve = evidence_curve(k, y)
    scale = np.mean(np.diag(k))
    bounds = (np.log(1e-6 * scale), np.log(1e2 * scale))
    plain = minimize_scalar(lambda t: -float(curve(np.exp(t))), bounds=bounds, method="bounded")
    res = select_sigma2(k, y)
    fine = np.geomspace(1e-6 * scale, 1e2 * scale, 200)
    best_direct = max(_direct_log_evidence(k, y, s) for s in fine)
    assert -plain.fun < best_direct - 100  # stuck in the local maximum
    assert res.log_evidence >= best_direct - 1e-9 * abs(best_direct)


def test_bad_inputs_raise():
    k, y = _problem(10, 2)
    with pytest.raises(ValueError, match="Y must be"):
        select_sigma2(k, y[:5])
    with pytest.raises(ValueError, match="lower"):
        select_sigma2(k, y, lower=1.0, upper=0.5)
    with pytest.raises(ValueError, match="square"):
        evidence_curve(k[:, :3], y)


def test_amplitude_profile_equals_a_direct_search_over_scale_and_noise():
    k, y = _problem()
    curve = evidence_curve(k, y)
    scale = float(np.mean(np.diag(k)))
    res = amplitude_profile(curve, scale, 1e-4, 1e1, n_grid=9)
    # brute force: for each grid ratio, the direct evidence of c K + c rho I over a fine grid of c
    best = -np.inf
    for rho in np.geomspace(1e-4 * scale, 1e1 * scale, 9):
        for c in np.geomspace(1e-3, 1e3, 601):
            val = _direct_log_evidence(c * k, y, c * rho)
            if val > best:
                best, best_rho, best_c = val, rho, c
    assert res.rho == pytest.approx(best_rho, rel=1e-10)
    assert res.amplitude == pytest.approx(best_c, rel=0.02)  # the c grid's resolution
    assert res.log_evidence >= best - 1e-9 * abs(best)
    assert res.log_evidence == pytest.approx(
        _direct_log_evidence(res.amplitude * k, y, res.amplitude * res.rho), rel=1e-10
    )


def test_auto_sigma2_record_round_trips_and_flags_the_bound(tmp_path):
    k, y = _problem()
    rec = choose_sigma2(k, y, "nngp")
    assert rec["sigma2"] == pytest.approx(select_sigma2(k, y).sigma2, rel=1e-12)
    assert not rec["at_bound"] and rec["kernel"] == "nngp"
    path = tmp_path / "sigma2_nngp.json"
    write_sigma2(rec, str(path))
    assert json.loads(path.read_text())["grid_log_evidence"] == rec["grid_log_evidence"]
    assert resolve_sigma2("auto", str(path)) == rec["sigma2"]
    assert resolve_sigma2(0.05, None) == 0.05
    with pytest.raises(ValueError, match="auto"):
        resolve_sigma2("auto", None)
    # a kernel whose smallest eigenvalue dwarfs the noise the labels need: the lower bound
    k_floor = k + 5.0 * np.eye(len(k))
    rec = choose_sigma2(k_floor, np.sign(y) * 0.01, "ntk")
    assert rec["at_bound"] and rec["sigma2"] == pytest.approx(rec["search_range"][0], rel=1e-6)


def test_at_bound_flags_the_upper_end_for_sigma2_and_the_free_amplitude():
    """A kernel tiny against its targets (sigma2) and targets independent of the inputs (free
    amplitude: pure noise fits white targets best) push the optimum to the range's upper end."""
    k, _ = _problem()
    white = np.random.default_rng(5).normal(size=(len(k), 3))
    scale = float(np.mean(np.diag(k)))
    res = select_sigma2(1e-3 * k, 100.0 * white)  # the labels' variance >> 1e2 * the kernel's
    assert res.at_bound and res.sigma2 == pytest.approx(1e2 * 1e-3 * scale, rel=1e-9)
    assert select_sigma2(1e-3 * k, 100.0 * white, upper=1e9).at_bound is False  # an inner optimum
    amp = amplitude_profile(evidence_curve(k, white), scale, 1e-4, 1e1, n_grid=9)
    assert amp.at_bound and amp.rho == pytest.approx(1e1 * scale, rel=1e-12)
    rec = choose_sigma2(1e-3 * k, 100.0 * white, "nngp")
    assert rec["at_bound"] and rec["free_amplitude"]["at_bound"]
    # labels that do depend on the inputs: neither end
    _, y = _problem()
    assert not amplitude_profile(evidence_curve(k, y), scale, 1e-4, 1e1, n_grid=9).at_bound

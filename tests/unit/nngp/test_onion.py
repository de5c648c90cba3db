"""Privacy onion by downdates against refitting the GP from scratch on the remaining records."""

from __future__ import annotations

import numpy as np
import pytest

from lood.figures.onion import onion_rise
from lood.nngp.gp import centred_one_hot, fit_gp
from lood.nngp.loo import lood_all
from lood.nngp.onion import privacy_onion
from lood.nngp.spec import OnionSpec
from lood.nngp.tables import onion_table

SIGMA2 = 0.05
N, C, K_PEEL, LAYERS = 30, 3, 3, 4


def _kernels(seed=0):
    """NNGP-like K and a different PSD 'NTK' Theta on random inputs, labels."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, 3))
    sq = np.sum((x[:, None] - x[None]) ** 2, axis=-1)
    k = np.exp(-sq / 4.0) + 0.2 * (x @ x.T) / 3.0
    theta = 1.5 * np.exp(-sq / 2.0) + k + 0.1 * (x @ x.T) ** 2 / 9.0
    return k, theta, centred_one_hot(rng.integers(0, C, N), C)


def _refit(k, theta, y, keep):
    """LOOD of every record of ``keep`` from a fresh factorisation of the remaining records."""
    sub = np.ix_(keep, keep)
    if theta is None:
        return lood_all(fit_gp(k[sub], y[keep], SIGMA2), auc=True)
    return lood_all(fit_gp(k[sub], y[keep], SIGMA2, Theta_DD=theta[sub]), auc=True)


@pytest.mark.parametrize("kind", ["nngp", "ntk"])
def test_onion_matches_refit_from_scratch(kind):
    k, theta, y = _kernels()
    theta = theta if kind == "ntk" else None
    res = privacy_onion(k, y, SIGMA2, LAYERS, K_PEEL, Theta_DD=theta, auc=True)
    assert res.removed.shape == (LAYERS, K_PEEL)
    assert len(np.unique(res.removed)) == LAYERS * K_PEEL
    assert sorted(res.table.layer.unique()) == list(range(LAYERS + 1))
    keep = np.arange(N)
    for layer in range(LAYERS + 1):
        rows = res.table[res.table.layer == layer]
        np.testing.assert_array_equal(rows.idx.to_numpy(), keep)
        ref = _refit(k, theta, y, keep)
        np.testing.assert_allclose(rows.kl_lood, ref["kl"], rtol=1e-9)
        np.testing.assert_allclose(rows.mean_dist_lood, ref["mean_dist"], rtol=1e-9)
        np.testing.assert_allclose(rows.var_in, ref["var_in"], rtol=1e-9)
        np.testing.assert_allclose(rows.var_out, ref["var_out"], rtol=1e-9)
        np.testing.assert_allclose(rows.auc, ref["auc"], atol=1e-8)
        if layer == LAYERS:
            assert not rows.removed.any()
            break
        top = keep[np.argsort(-ref["kl"], kind="stable")[:K_PEEL]]
        np.testing.assert_array_equal(res.removed[layer], top)
        np.testing.assert_array_equal(np.sort(rows.idx[rows.removed]), np.sort(top))
        keep = np.setdiff1d(keep, top)


def test_onion_layer_zero_is_plain_lood_and_peeling_changes_the_rest():
    k, theta, y = _kernels(seed=1)
    res = privacy_onion(k, y, SIGMA2, 2, 5, Theta_DD=theta)
    assert "auc" not in res.table.columns
    first = res.table[res.table.layer == 0]
    ref = lood_all(fit_gp(k, y, SIGMA2, Theta_DD=theta), auc=False)
    np.testing.assert_allclose(first.kl_lood, ref["kl"], rtol=1e-10)
    # the remaining records' LOOD is recomputed, not copied from layer 0
    second = res.table[res.table.layer == 1].set_index("idx").kl_lood
    assert not np.allclose(second, first.set_index("idx").kl_lood.loc[second.index], rtol=1e-3)


def test_bad_arguments_raise():
    k, theta, y = _kernels()
    with pytest.raises(ValueError, match="n_layers"):
        privacy_onion(k, y, SIGMA2, 10, 3)
    with pytest.raises(ValueError, match="sigma2"):
        privacy_onion(k, y, 0.0, 1, 1)
    with pytest.raises(ValueError, match="Theta_DD"):
        privacy_onion(k, y, SIGMA2, 1, 1, Theta_DD=theta[:5, :5])


def test_onion_table_marks_records_and_checks_its_size():
    k, theta, y = _kernels(seed=2)
    labels = np.argmax(y, axis=1)
    tab = onion_table(k, labels, C, SIGMA2, np.array([4, 9]), OnionSpec(True, 2, 3, 1), Theta=theta)
    ref = privacy_onion(k, y, SIGMA2, 2, 3, Theta_DD=theta, auc=True)
    assert list(tab.columns[:4]) == ["layer", "idx", "label", "is_differ"]
    np.testing.assert_allclose(tab.nngp_auc, ref.table.auc)
    np.testing.assert_array_equal(tab.label, labels[tab.idx])
    assert set(tab.idx[tab.is_differ]) == {4, 9}
    assert len(tab) == 3 * N - 3 - 6
    rise = onion_rise(tab)
    assert len(rise) == N - 6 and rise.rise.is_monotonic_decreasing
    np.testing.assert_allclose(rise.rise, rise.kl_last / rise.kl_first)
    OnionSpec(True, 2, 3, 1).check(N)
    with pytest.raises(ValueError, match="onion.k"):
        OnionSpec(True, 10, 3, 1).check(N)


def test_ties_in_kl_are_peeled_lowest_index_first():
    """Six identical, independent records (K = I, one label): every KL ties exactly, and the
    docstring's tie-break peels the lowest indices first, layer after layer."""
    y = centred_one_hot(np.zeros(6, dtype=int), 2)
    assert privacy_onion(np.eye(6), y, 0.1, 1, 1).removed.tolist() == [[0]]
    res = privacy_onion(np.eye(6), y, 0.1, 2, 2)
    assert res.removed.tolist() == [[0, 1], [2, 3]]
    assert res.table[res.table.layer == 0].kl_lood.nunique() == 1  # a real tie

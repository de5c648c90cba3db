"""The ground truth's noise ceiling (issue 26 §6), against independent computations: a
brute-force loop over the halves, the Spearman-Brown formula, a closed form."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import REPO
from scipy import stats

from lood.privacy.mia.retrained import (
    half_split_auc,
    mia_halves_table,
    model_halves,
    noise_ceilings,
)
from lood.privacy.signals import margin_score
from lood.privacy.spec import MiaSpec
from lood.seeds import derive_seed
from lood.stats import CEILING_COLUMNS, spearman_brown, split_half_reliability, with_ceilings


def test_split_half_reliability_against_a_brute_force_loop():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(12, 4)), rng.normal(size=(12, 4))
    b += a
    got = split_half_reliability(a, b, n_bootstrap=50, seed=9)
    r = np.mean([stats.pearsonr(a[:, h], b[:, h])[0] for h in range(4)])
    assert got["split_half_r"] == pytest.approx(r, abs=1e-12)
    assert got["reliability"] == pytest.approx(2 * r / (1 + r), abs=1e-12)
    idx = np.random.default_rng(9).integers(0, 12, size=(50, 12))
    boot = []
    for rows in idx:
        rb = np.mean([stats.pearsonr(a[rows, h], b[rows, h])[0] for h in range(4)])
        boot.append(2 * rb / (1 + rb))
    lo, hi = np.percentile(boot, [2.5, 97.5])
    assert (got["reliability_lo"], got["reliability_hi"]) == pytest.approx((lo, hi), abs=1e-12)


def test_split_half_reliability_recovers_the_closed_form():
    """Record value m ~ N(0, 1), each half measures m + e, e ~ N(0, s^2): the half reliability
    is 1 / (1 + s^2); the mean of both halves has noise s^2 / 2, reliability 1 / (1 + s^2 / 2),
    which is the Spearman-Brown value of the former."""
    rng = np.random.default_rng(4)
    s2, n = 0.6, 20000
    m = rng.normal(size=(n, 1))
    a = m + np.sqrt(s2) * rng.normal(size=(n, 3))
    b = m + np.sqrt(s2) * rng.normal(size=(n, 3))
    got = split_half_reliability(a, b, n_bootstrap=200, seed=0)
    assert got["split_half_r"] == pytest.approx(1 / (1 + s2), abs=0.01)
    assert got["reliability"] == pytest.approx(1 / (1 + s2 / 2), abs=0.01)
    assert got["reliability_lo"] < 1 / (1 + s2 / 2) < got["reliability_hi"]
    assert spearman_brown(1 / (1 + s2)) == pytest.approx(1 / (1 + s2 / 2), abs=1e-12)
    # a noise-free estimate of m reaches the ceiling sqrt(reliability) with the full-size mean
    r = stats.pearsonr(m[:, 0], (a[:, 0] + b[:, 0]) / 2)[0]
    assert r == pytest.approx(np.sqrt(got["reliability"]), abs=0.01)


def models(rng, n_rec=5, k=12, c=3):
    """A models_in / models_out pair as the training jobs write them (one out shard)."""
    shift = np.linspace(0, 2, n_rec)[None, :, None] * np.eye(c)[0]
    ins = {"outputs_differ": rng.normal(size=(k, n_rec, c)) + shift, "test_acc": np.full(k, 0.9)}
    outs = {
        "records": np.arange(n_rec) + 100,
        "test_acc": np.full((n_rec, k), 0.9),
        "outputs_differ": rng.normal(size=(n_rec, k, n_rec, c)),
    }
    differ = pd.DataFrame({"differ_idx": np.arange(n_rec) + 100, "label": np.zeros(n_rec, int)})
    return differ, ins, [outs]


def test_mia_halves_table_against_a_loop_over_disjoint_halves():
    differ, ins, outs = models(np.random.default_rng(5))
    spec = MiaSpec.from_config({"n_splits": 4, "seed": 2, "score": "margin"})
    table = mia_halves_table(differ, ins, outs, spec, n_halves=3)
    splits = model_halves(12, 12, 3, derive_seed(2, "model_halves"))
    for in_a, in_b, out_a, out_b in splits:
        assert sorted(np.r_[in_a, in_b]) == list(range(12)) and len(in_a) == 6
        assert not set(out_a) & set(out_b)
    for j, record in enumerate(differ.differ_idx):
        x_in = ins["outputs_differ"][:, j]
        x_out = outs[0]["outputs_differ"][j, :, j]
        for h, (in_a, in_b, out_a, out_b) in enumerate(splits):
            for half, (i_idx, o_idx) in (("a", (in_a, out_a)), ("b", (in_b, out_b))):
                row = table[
                    (table.differ_idx == record) & (table.half_split == h) & (table.half == half)
                ].iloc[0]
                auc = half_split_auc(
                    margin_score(x_in[i_idx], 0), margin_score(x_out[o_idx], 0), 4, 2 + j
                )
                assert row.mia_auc == pytest.approx(auc[0], abs=1e-12)
                diff = np.sum((x_in[i_idx].mean(0) - x_out[o_idx].mean(0)) ** 2)
                assert row.pred_diff == pytest.approx(diff, rel=1e-12)
    # the first n_models only: fewer models, other numbers
    small = mia_halves_table(differ, ins, outs, spec, n_halves=3, n_models=8)
    assert len(small) == len(table) and not np.allclose(small.mia_auc, table.mia_auc)


def test_noise_ceilings_and_the_correlation_rows():
    differ, ins, outs = models(np.random.default_rng(6), n_rec=8)
    spec = MiaSpec.from_config({"n_splits": 4, "seed": 0, "score": "margin"})
    halves = mia_halves_table(differ, ins, outs, spec, n_halves=2)
    rel = noise_ceilings(halves, seed=0, n_bootstrap=30)
    for col in ("mia_auc", "pred_diff"):
        wide = halves.pivot_table(index="differ_idx", columns=["half", "half_split"], values=col)
        a, b = wide["a"].to_numpy(), wide["b"].to_numpy()
        r = np.mean([stats.pearsonr(a[:, h], b[:, h])[0] for h in range(2)])
        assert rel[col]["split_half_r"] == pytest.approx(r, abs=1e-12)
    rows = [
        {"x": "kl_lood", "y": "mia_auc", "pearson_r": 0.5},
        {"x": "kl_lood", "y": "lira_online_auc", "pearson_r": 0.4},
    ]
    fake = {
        "mia_auc": {
            "split_half_r": 0.6,
            "reliability": 0.75,
            "reliability_lo": 0.6,
            "reliability_hi": 0.9,
        }
    }
    out = with_ceilings(rows, fake)
    assert out[0]["ceiling"] == pytest.approx(np.sqrt(0.75))
    assert out[0]["r_over_ceiling"] == pytest.approx(0.5 / np.sqrt(0.75))
    assert all(np.isnan(out[1][c]) for c in CEILING_COLUMNS)


def test_the_catalogue_counts_the_halves_of_mia_halves_table():
    import lood.privacy.mia as mia
    import lood.resources as lr

    catalogue = lr.load_catalogue(REPO / "workflow" / "catalogue.py")
    assert catalogue.MIA_HALVES == mia.N_HALVES

"""MIA tests that the likely bugs fail: in and out models swapped, and the Gaussians of the
likelihood-ratio test fitted on all scores (the test half included) instead of the fit half.
Both leave the AUC of a well-separated record unchanged, so tests/unit/privacy/mia/test_retrained.py cannot see them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import mia_spec

from lood.privacy.mia.retrained import mia_table
from lood.privacy.signals import margin_score


def test_in_and_out_models_keep_their_roles():
    """In models memorised the record (higher score on it), out models did not: every in/out
    column of the table is the statistic of the right side, and the direction is in > out."""
    rng = np.random.default_rng(5)
    k_in, k_out, p, c = 30, 20, 2, 3
    differ = pd.DataFrame({"differ_idx": [4, 11], "label": [2, 0]})
    models_in = {"outputs_differ": rng.normal(size=(k_in, p, c)), "test_acc": np.full(k_in, 0.91)}
    models_in["outputs_differ"][:, 0, 2] += 3.0  # record 4 (label 2) memorised by the in models
    shard = {
        "records": np.array([4, 11]),
        "outputs_differ": rng.normal(size=(p, k_out, p, c)),
        "test_acc": np.full((p, k_out), 0.83),
    }
    table = mia_table(differ, models_in, [shard], mia_spec(n_splits=5))
    for j, (record, label) in enumerate([(4, 2), (11, 0)]):
        s_in = margin_score(models_in["outputs_differ"][:, j, :], label)
        s_out = margin_score(shard["outputs_differ"][j, :, j, :], label)
        row = table.iloc[j]
        assert row.differ_idx == record
        assert row.in_score_mean == pytest.approx(s_in.mean(), rel=1e-12)
        assert row.in_score_std == pytest.approx(s_in.std(ddof=1), rel=1e-12)
        assert row.out_score_mean == pytest.approx(s_out.mean(), rel=1e-12)
        assert row.out_score_std == pytest.approx(s_out.std(ddof=1), rel=1e-12)
        assert row.in_test_acc == pytest.approx(0.91) and row.out_test_acc == pytest.approx(0.83)
    assert table.in_score_mean[0] > table.out_score_mean[0] + 2.0
    assert table.mia_auc[0] > 0.95


def test_lr_test_fits_on_the_fit_half_only():
    """No membership signal at all (in and out outputs iid): a held-out likelihood-ratio test has
    expected AUC exactly 0.5. Fitting the Gaussians on all scores puts the test points into their
    own class's fit, which inflates the AUC to ~0.66 with 8 + 8 models (measured); checked over
    100 independent records, each its own row of one table, within 4 standard errors."""
    rng = np.random.default_rng(7)
    k, n_rec, c = 8, 100, 2
    differ = pd.DataFrame({"differ_idx": np.arange(n_rec), "label": rng.integers(0, c, n_rec)})
    models_in = {"outputs_differ": rng.normal(size=(k, n_rec, c)), "test_acc": np.ones(k)}
    shard = {
        "records": np.arange(n_rec),
        "outputs_differ": rng.normal(size=(n_rec, k, n_rec, c)),
        "test_acc": np.ones((n_rec, k)),
    }
    auc = mia_table(differ, models_in, [shard], mia_spec(n_splits=10)).mia_auc.to_numpy()
    se = auc.std(ddof=1) / np.sqrt(n_rec)
    assert 0.002 < se < 0.02
    assert abs(auc.mean() - 0.5) < 4 * se, (auc.mean(), se)

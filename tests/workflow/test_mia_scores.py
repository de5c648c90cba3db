"""``mia.score: output_vector`` through Snakemake: a 3-class tiny run to mia.csv and lood.csv (the
only rules it needs), mia.csv against the library recomputed from the saved outputs, and
benchmarks/mia_scores.py on the same results."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from helpers import REPO, snakemake, write_config

from lood.privacy.mia.retrained import half_split_auc, half_split_diff, output_vector_auc
from lood.privacy.mia.tables import stack_models
from lood.privacy.signals import margin_score

pytestmark = pytest.mark.slow

TARGETS = ("results/tiny/mia.csv", "results/tiny/lood.csv")


def _three_classes(cfg: dict) -> None:
    cfg["data"]["classes"] = [3, 5, 8]
    cfg["mia"]["score"] = "output_vector"


@pytest.fixture(scope="module")
def three_class_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("mia3")
    config = write_config(work / "config.yaml", _three_classes)
    proc = snakemake(work, config, "--cores", "2", *TARGETS)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return work, config


def test_output_vector_mia_csv_is_the_library_on_the_saved_outputs(three_class_run):
    """mia.csv's AUC is output_vector_auc of each record's saved in / out outputs (seed mia.seed
    + position, n_splits 5), not the margin's: they differ on at least one record."""
    work, _ = three_class_run
    base = work / "results" / "tiny"
    differ = pd.read_csv(base / "differ.csv")
    mia = pd.read_csv(base / "mia.csv")
    assert list(mia.differ_idx) == list(differ.differ_idx) and set(mia.mia_score) == {
        "output_vector"
    }
    models = stack_models(
        differ,
        dict(np.load(base / "models" / "in.npz")),
        [dict(np.load(p)) for p in sorted((base / "models").glob("out_*.npz"))],
    )
    assert models.in_outputs.shape == (8, 3, 3)  # 8 in models, 3 records, 3 classes
    margins = []
    for j, label in enumerate(differ.label):
        ins, outs = models.in_outputs[:, j], models.out_outputs[j, :, j]
        auc, std, diff = output_vector_auc(ins, outs, n_splits=5, seed=j)
        assert mia.mia_auc[j] == pytest.approx(auc, abs=1e-9)
        assert mia.mia_auc_std[j] == pytest.approx(std, abs=1e-9)
        assert mia.pred_diff_halves[j] == pytest.approx(diff, rel=1e-8)
        assert diff == pytest.approx(half_split_diff(ins, outs, n_splits=5, seed=j))
        s_in, s_out = margin_score(ins, int(label)), margin_score(outs, int(label))
        assert mia.in_score_mean[j] == pytest.approx(s_in.mean(), rel=1e-8)  # still the margin
        margins.append(half_split_auc(s_in, s_out, n_splits=5, seed=j)[0])
    assert np.abs(mia.mia_auc.to_numpy() - np.array(margins)).max() > 0.01, (mia.mia_auc, margins)
    assert "score output_vector" in (base / "logs" / "mia.log").read_text()


def test_mia_scores_benchmark(three_class_run, tmp_path):
    """benchmarks/mia_scores.py on the same run (results dir overridden): both scores per record,
    the summary consistent with its table, mia.csv's AUC matched."""
    work, config = three_class_run
    out = tmp_path / "scores.csv"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "mia_scores.py"),
            "--configfile",
            str(config),
            "--results",
            str(work / "results"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = pd.read_csv(out)
    mia = pd.read_csv(work / "results" / "tiny" / "mia.csv")
    np.testing.assert_allclose(table.auc_output_vector, mia.mia_auc, atol=1e-9)
    np.testing.assert_allclose(table.auc_difference, table.auc_output_vector - table.auc_margin)
    lood = pd.read_csv(work / "results" / "tiny" / "lood.csv")
    np.testing.assert_allclose(table.kl_lood, lood.kl_lood)
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["mia_csv_score"] == "output_vector" and summary["mia_csv_max_abs_gap"] < 1e-9
    assert summary["n_records"] == 3
    assert summary["mean_abs_difference"] == pytest.approx(table.auc_difference.abs().mean())
    assert abs(summary["max_difference"]) == pytest.approx(table.auc_difference.abs().max())
    assert "WARNING" not in proc.stdout

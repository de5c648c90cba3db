"""Integration: the whole Snakemake DAG on a tiny config, config validation, incremental reruns."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import PLOT_RULES, REPO, SNAKEMAKE, TINY, planned_rules, snakemake, write_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("tiny")
    config = write_config(work / "config.yaml")
    proc = snakemake(work, config, "--cores", "2", "--scheduler", "greedy")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return work, config


ATTACKS = ["score", "lira_online", "lira_offline", "rmia_online", "rmia_offline"]
COLUMNS = {
    "differ.csv": ["differ_idx", "label"],
    "mia.csv": ["differ_idx", "label", "mia_auc", "mia_auc_std", "pred_diff", "in_test_acc"],
    "lood.csv": [
        "differ_idx",
        "label",
        "kl_lood",
        "mean_dist_lood",
        "nngp_auc",
        "var_in",
        "var_out",
    ],
    "lood_all.csv": ["idx", "label", "is_differ", "kl_lood", "mean_dist_lood", "nngp_auc"],
    "correlation.csv": ["x", "y", "pearson_r", "pearson_p", "spearman_r", "spearman_p", "n"]
    + ["split_half_r", "reliability", "reliability_lo", "reliability_hi", "ceiling"]
    + ["r_over_ceiling"],
    "mia_halves.csv": ["differ_idx", "half_split", "half", "mia_auc", "pred_diff"],
    "attacks/per_record.csv": ["differ_idx", "label"]
    + [f"{a}_{m}" for a in ATTACKS for m in ("auc", "p_value")],
    "attacks/pooled.csv": ["attack", "auc", "balanced_accuracy", "n_pos", "n_neg"]
    + [f"{m}@{a:g}" for a in (0.01, 0.001, 0.0) for m in ("tpr", "fp_allowed")],
    "attacks/free_in.csv": [
        "differ_idx",
        "label",
        "attack",
        "auc",
        "p_value",
        "auc_free_in",
        "p_value_free_in",
        "auc_change",
    ],
    "attacks/free_in_summary.csv": [
        "attack",
        "mean_auc",
        "mean_auc_free_in",
        "mean_change",
        "std_auc",
        "std_auc_free_in",
        "std_change",
    ],
}


def test_every_output_exists_with_documented_columns(tiny_run):
    work, _ = tiny_run
    base = work / "results" / "tiny"
    for name, cols in COLUMNS.items():
        df = pd.read_csv(base / name)
        assert set(cols) <= set(df.columns), (name, df.columns)
        numeric = df.select_dtypes("number")
        if name != "correlation.csv":
            assert np.isfinite(numeric.to_numpy(dtype=float)).all(), name
    mia, lood = pd.read_csv(base / "mia.csv"), pd.read_csv(base / "lood.csv")
    assert len(mia) == len(lood) == 3
    assert ((mia.mia_auc >= 0) & (mia.mia_auc <= 1)).all()
    assert ((lood.nngp_auc >= 0.5 - 1e-9) & (lood.nngp_auc <= 1)).all()
    assert (lood.kl_lood > 0).all() and (lood.var_out >= lood.var_in).all()
    lood_all = pd.read_csv(base / "lood_all.csv")
    assert len(lood_all) == 60 and lood_all.is_differ.sum() == 3
    # the all-records mode agrees with the per-record computation on the differing records
    merged = lood.merge(lood_all, left_on="differ_idx", right_on="idx", suffixes=("", "_all"))
    np.testing.assert_allclose(merged.kl_lood, merged.kl_lood_all, rtol=1e-8)
    for fig in ["correlation.png", "lood_all_hist.png"]:
        assert (base / "figures" / fig).stat().st_size > 1000
    models_in = np.load(base / "models" / "in.npz")
    assert models_in["outputs_differ"].shape == (8, 3, 2)
    out0 = np.load(base / "models" / "out_0.npz")
    assert out0["outputs_differ"].shape == (2, 8, 3, 2) and len(out0["records"]) == 2
    # population outputs of every model (RMIA): on the 40 test records
    assert models_in["outputs_test"].shape == (8, 40, 2)
    assert out0["outputs_test"].shape == (2, 8, 40, 2)
    assert models_in["outputs_test"].dtype == out0["outputs_test"].dtype == np.float32
    assert (base / "models" / "in_weights.safetensors").exists()
    for log in ["split", "train_in", "train_out_0", "train_out_1", "mia", "lood", "nngp_kernel"]:
        assert (base / "logs" / f"{log}.log").stat().st_size > 0, log


def test_second_run_has_nothing_to_do(tiny_run):
    work, config = tiny_run
    assert planned_rules(snakemake(work, config, "-n")) == set()


def test_plot_setting_reruns_only_plots(tiny_run, tmp_path):
    work, _ = tiny_run
    config = write_config(tmp_path / "c.yaml", lambda c: c["plots"].update(dpi=77))
    assert planned_rules(snakemake(work, config, "-n")) == {"all", *PLOT_RULES}


def test_sigma2_reruns_lood_and_plots_but_no_training(tiny_run, tmp_path):
    work, _ = tiny_run
    config = write_config(tmp_path / "c.yaml", lambda c: c["nngp"].update(sigma2=0.2))
    rules = planned_rules(snakemake(work, config, "-n"))
    assert rules == {
        "all",
        "lood",
        "lood_all",
        "plot_correlation",
        "plot_lood_all",
        "plot_memorization",
        "lood_landscape",
        "plot_landscape",
        "optimize_query",
        "plot_query",
        "plot_influence",
        "plot_inversion",  # shows the NNGP query optimisation beside MI-FACE
        "plot_attacks",  # per-record attack AUC vs KL LOOD
    }


def test_nngp_depth_reruns_the_kernel_and_its_readers_but_no_training(tiny_run, tmp_path):
    """nngp.depth changes only the kernel rules' model: the model's own depth written out is the
    default (nothing reruns); another depth reruns the kernel, the GP rules and their figures,
    never a network, and the kernel is then the NNGP of that depth."""
    from lood.arch import Architecture
    from lood.data.split import Split
    from lood.nngp.kernel import nngp_kernel

    work, _ = tiny_run
    same = write_config(tmp_path / "same.yaml", lambda c: c["nngp"].update(depth=1))
    assert planned_rules(snakemake(work, same, "-n")) == set()  # tiny.yaml: model.depth 1
    deeper = write_config(tmp_path / "c.yaml", lambda c: c["nngp"].update(depth=3))
    rules = planned_rules(snakemake(work, deeper, "-n"))
    assert {
        "nngp_kernel",
        "lood",
        "lood_all",
        "lood_landscape",
        "optimize_query",
        "plot_correlation",
    } <= rules
    assert (
        not {
            "train_in",
            "train_out",
            "mia",
            "train_landscape",
            "mia_landscape",
            "train_subsets",
            "audit",
            "inversion",
            "attacks",
            "train_influence",
        }
        & rules
    )
    copy = tmp_path / "deeper"
    shutil.copytree(work, copy, symlinks=True)
    proc = snakemake(copy, deeper, "--cores", "2", "results/tiny/nngp/kernel.npz")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    split = Split.load(copy / "results" / "tiny" / "data" / "split.npz")
    model = yaml.safe_load(TINY.read_text())["model"] | {"depth": 3}
    arch = Architecture.from_config(model, split.n_classes)
    K = np.load(copy / "results" / "tiny" / "nngp" / "kernel.npz")["K"]
    np.testing.assert_allclose(K, nngp_kernel(arch, split.x_train), rtol=1e-12)
    assert not np.allclose(K, np.load(work / "results" / "tiny" / "nngp" / "kernel.npz")["K"])


def test_training_setting_retrains(tiny_run, tmp_path):
    work, _ = tiny_run
    config = write_config(tmp_path / "c.yaml", lambda c: c["train"].update(lr=0.25))
    rules = planned_rules(snakemake(work, config, "-n"))
    assert {"train_in", "train_out", "mia", "audit", "inversion", "attacks"} <= rules
    assert "nngp_kernel" not in rules


def test_unused_dp_settings_do_not_retrain(tiny_run, tmp_path):
    """train.dp values matter only when DP is on: editing them leaves a non-DP run untouched,
    switching DP on retrains every model (influence model and audit runs included)."""
    work, _ = tiny_run
    off = write_config(
        tmp_path / "c.yaml",
        lambda c: c["train"].update(
            dp={"enabled": False, "noise_multiplier": 3.0, "max_grad_norm": 0.1}
        ),
    )
    assert planned_rules(snakemake(work, off, "-n")) == set()
    on = write_config(
        tmp_path / "d.yaml",
        lambda c: c["train"].update(dp={"enabled": True, "noise_multiplier": 3.0, "delta": 1e-3}),
    )
    rules = planned_rules(snakemake(work, on, "-n"))
    assert {"train_in", "train_out", "train_subsets", "train_influence", "audit"} <= rules
    assert "nngp_kernel" not in rules


def test_slurm_profile_plans(tiny_run, tmp_path):
    work, config = tiny_run
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    proc = snakemake(fresh, config, "--profile", str(REPO / "profiles" / "slurm"), "-n")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert {"train_in", "train_out", "lood"} <= planned_rules(proc)


def test_report_builds_for_the_tiny_config(tiny_run, tmp_path):
    """``snakemake --report`` packs every figure and table with its caption."""
    work, config = tiny_run
    report = tmp_path / "report.html"
    proc = snakemake(work, config, "--report", str(report))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = report.read_text(errors="ignore")
    for caption in ["correlation", "memorization", "landscape", "influence", "audit", "RMIA"]:
        assert caption in text, caption
    assert report.stat().st_size > 100_000


def test_one_key_overridden_from_the_command_line(tiny_run):
    """Snakemake hands nested ``--config`` values over as strings; they are coerced by the
    schema's types, so one key can be overridden without a config file."""
    work, config = tiny_run
    proc = snakemake(work, config, "-n", "--config", "nngp={sigma2: 0.2}")
    assert {"lood", "lood_all"} <= planned_rules(proc)
    assert "train_in" not in planned_rules(proc)
    bad = snakemake(work, config, "-n", "--config", "nngp={sigma2: zero}")
    assert bad.returncode != 0 and "nngp.sigma2" in bad.stdout + bad.stderr


def test_memorization_outputs(tiny_run, tmp_path):
    """Random-subset models: the .npz keys, both tables and their consistency, the figures, and
    that only the memorization rules rerun when its settings change."""
    work, _ = tiny_run
    base = work / "results" / "tiny"
    sub = np.load(base / "models" / "subsets.npz")
    k, n, m = 24, 60, 40  # tiny.yaml: memorization.n_models, data.n_train, data.n_test
    assert sub["correctness_train"].shape == (k, n) and sub["correctness_train"].dtype == bool
    assert sub["correctness_test"].shape == (k, m)
    assert sub["subsample_idx"].shape == (k, 30) and (sub["masks"].sum(1) == 30).all()
    assert sub["outputs_train"].shape == (k, n, 2)
    mem = pd.read_csv(base / "memorization.csv")
    cols = ["idx", "label", "is_differ", "mem", "mem_se", "p_in", "p_out", "n_in", "n_out"]
    assert list(mem.columns) == cols and len(mem) == n and mem.is_differ.sum() == 3
    assert ((mem.n_in + mem.n_out) == k).all()
    np.testing.assert_array_equal(mem.n_in, sub["masks"].sum(0))
    np.testing.assert_allclose(mem.mem, mem.p_in - mem.p_out, atol=1e-9)
    i = int(mem.mem.idxmax())  # recompute one record from the masks
    inside = sub["masks"][:, i]
    expected = (
        sub["correctness_train"][inside, i].mean() - sub["correctness_train"][~inside, i].mean()
    )
    assert mem.mem[i] == pytest.approx(expected)
    infl = pd.read_csv(base / "influence_topk.csv")
    assert len(infl) == m * 3 and (infl.groupby("test_idx")["rank"].max() == 3).all()
    assert (infl.groupby("test_idx").influence.diff().dropna() <= 1e-12).all()
    stats = pd.read_csv(base / "memorization_correlation.csv")
    assert set(stats.x) == {"kl_lood", "mean_dist_lood", "mia_auc", "pred_diff"}
    assert (stats.loc[stats.records == "all", "n"] == n).all()
    for fig in ["hist", "examples", "lood", "mia"]:
        assert (base / "figures" / f"memorization_{fig}.png").stat().st_size > 1000, fig
    config = write_config(tmp_path / "c.yaml", lambda c: c["memorization"].update(top_k=5))
    rules = planned_rules(snakemake(work, config, "-n"))
    assert rules == {"all", "memorization", "plot_memorization"}
    config = write_config(tmp_path / "d.yaml", lambda c: c["memorization"].update(enabled=False))
    assert planned_rules(snakemake(work, config, "-n")) == set()


def test_influence_outputs(tiny_run, tmp_path):
    """TracIn / influence-function tables and figure, consistent with mia.csv and lood.csv; the
    solver setting reruns only the influence function and its figure."""
    work, _ = tiny_run
    base = work / "results" / "tiny"
    tracin = pd.read_csv(base / "influence" / "tracin.csv")
    assert list(tracin.columns) == ["differ_idx", "label", "tracin", "tracin_last"]
    assert (tracin.tracin > tracin.tracin_last).all() and (tracin.tracin_last > 0).all()
    inf = pd.read_csv(base / "influence" / "influence_function.csv")
    assert inf.converged.all() and not inf.negative_curvature.any()  # tiny: Gauss-Newton
    assert (inf.influence_function > 0).all() and (inf.solver_residual < 1e-3).all()
    scores = pd.read_csv(base / "influence_scores.csv")
    cols = [
        "differ_idx",
        "label",
        "pred_diff",
        "mia_auc",
        "mean_dist_lood",
        "kl_lood",
        "tracin",
        "influence_function",
    ]
    assert list(scores.columns) == cols and len(scores) == 3
    mia, lood = pd.read_csv(base / "mia.csv"), pd.read_csv(base / "lood.csv")
    np.testing.assert_allclose(scores.pred_diff, mia.pred_diff)
    np.testing.assert_allclose(scores.mean_dist_lood, lood.mean_dist_lood)
    np.testing.assert_allclose(scores.tracin, tracin.tracin)
    stats = pd.read_csv(base / "influence_correlation.csv")
    assert list(stats.y) == ["tracin", "influence_function", "mean_dist_lood"]
    assert (base / "figures" / "influence.png").stat().st_size > 1000
    from lood.train.models import load_params

    ckpt, meta = load_params(base / "influence" / "checkpoints.safetensors")
    assert ckpt["W0"].shape[0] == 3 and meta["epochs"] == "[1, 2, 3]"  # tiny: 3 epochs
    config = write_config(tmp_path / "c.yaml", lambda c: c["influence"].update(damping=0.1))
    rules = planned_rules(snakemake(work, config, "-n"))
    assert rules == {"all", "influence_function", "plot_influence"}
    config = write_config(tmp_path / "d.yaml", lambda c: c["influence"].update(checkpoint_every=2))
    rules = planned_rules(snakemake(work, config, "-n"))
    assert rules == {"all", "train_influence", "tracin", "influence_function", "plot_influence"}


def test_activation_comparison(tiny_run, tmp_path):
    """Two experiments (relu, gelu) share split and differing records; rule all adds the
    comparison, which pairs the same records."""
    work = tmp_path / "two"
    shutil.copytree(tiny_run[0], work, symlinks=True)

    def two(c):
        c["experiments"] = {"tiny": {}, "tiny_gelu": {"model": {"activation": "gelu"}}}

    config = write_config(work / "two.yaml", two)
    assert "plot_activation" in planned_rules(snakemake(work, config, "-n"))
    proc = snakemake(work, config, "--cores", "2", "plot_activation")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = work / "results"
    assert (res / "tiny" / "differ.csv").read_bytes() == (
        res / "tiny_gelu" / "differ.csv"
    ).read_bytes()
    a, b = (
        np.load(res / "tiny" / "data" / "split.npz"),
        np.load(res / "tiny_gelu" / "data" / "split.npz"),
    )
    np.testing.assert_array_equal(a["x_train"], b["x_train"])
    long = pd.read_csv(res / "comparison" / "activation.csv")
    assert len(long) == 6 and set(long.activation) == {"relu", "gelu"}
    relu = long[long.experiment == "tiny"].set_index("differ_idx")
    np.testing.assert_allclose(relu.mia_auc, pd.read_csv(res / "tiny" / "mia.csv").mia_auc)
    stats = pd.read_csv(res / "comparison" / "activation_correlation.csv")
    paired = stats[stats.comparison == "paired"]
    assert set(paired.metric_a) == {"kl_lood", "mean_dist_lood", "nngp_auc", "mia_auc", "pred_diff"}
    assert (paired.n == 3).all() and (stats.comparison == "within").sum() == 6
    assert (res / "comparison" / "figures" / "activation.png").stat().st_size > 1000


def test_ntk_kernel_sigma2_by_the_evidence_and_the_onion(tiny_run, tmp_path):
    """nngp.kernel: ntk and nngp.sigma2: auto add the NTK and the evidence search and rerun the
    GP rules, never the training; lood.csv is then the NTK-GP LOOD at the stored sigma2. The
    onion (off by default) peels under the same GP."""
    from lood.data.split import Split
    from lood.nngp.evidence import select_sigma2
    from lood.nngp.gp import centred_one_hot
    from lood.nngp.tables import lood_table

    work = tmp_path / "ntk"
    shutil.copytree(tiny_run[0], work, symlinks=True)

    def ntk(c):
        c["nngp"].update(kernel="ntk", sigma2="auto")
        c["onion"] = {"enabled": True, "n_layers": 2, "k": 3}

    config = write_config(work / "ntk.yaml", ntk)
    rules = planned_rules(snakemake(work, config, "-n"))
    assert {
        "ntk_kernel",
        "nngp_sigma2",
        "lood",
        "lood_all",
        "lood_landscape",
        "optimize_query",
        "onion",
        "plot_onion",
    } <= rules
    assert not {"train_in", "train_out", "mia", "nngp_kernel", "audit"} & rules
    base = work / "results" / "tiny"
    proc = snakemake(
        work, config, "--cores", "2", "results/tiny/lood.csv", "results/tiny/figures/onion.png"
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    theta = np.load(base / "nngp" / "ntk.npz")["Theta"]
    split = Split.load(base / "data" / "split.npz")
    chosen = json.loads((base / "nngp" / "sigma2_ntk.json").read_text())
    ref = select_sigma2(theta, centred_one_hot(split.y_train, split.n_classes))
    assert chosen["kernel"] == "ntk" and chosen["sigma2"] == ref.sigma2
    lood = pd.read_csv(base / "lood.csv")
    want = lood_table(
        np.load(base / "nngp" / "kernel.npz")["K"],
        split.y_train,
        split.n_classes,
        ref.sigma2,
        lood.differ_idx.to_numpy(),
        Theta=theta,
    )
    np.testing.assert_allclose(lood.kl_lood, want.kl_lood, rtol=1e-9)
    assert "auto" in (base / "logs" / "lood.log").read_text()
    onion = pd.read_csv(base / "onion.csv")
    assert sorted(onion.layer.unique()) == [0, 1, 2] and onion.removed.sum() == 6
    layer0 = onion[onion.layer == 0].merge(lood, left_on="idx", right_on="differ_idx")
    np.testing.assert_allclose(layer0.kl_lood_x, layer0.kl_lood_y, rtol=1e-9)
    assert (base / "figures" / "onion.png").stat().st_size > 1000


RESULT_TABLES = ["differ.csv", "mia.csv", "lood.csv", "lood_all.csv", "correlation.csv"]
RESULT_TABLES += ["memorization.csv", "influence_topk.csv"]
RESULT_TABLES += ["attacks/per_record.csv", "attacks/pooled.csv", "attacks/free_in.csv"]


def test_attack_outputs(tiny_run, tmp_path):
    """The attacks stage: tables consistent with the stored outputs (the raw score's AUC recomputed
    without the library), correlation.csv rows, figures, and what its settings rerun."""
    from scipy import stats
    from sklearn.metrics import roc_auc_score

    work, _ = tiny_run
    base = work / "results" / "tiny"
    per = pd.read_csv(base / "attacks" / "per_record.csv")
    differ = pd.read_csv(base / "differ.csv")
    assert list(per.differ_idx) == list(differ.differ_idx) and list(per.label) == list(differ.label)
    for a in ATTACKS:
        assert per[f"{a}_auc"].between(0, 1).all() and per[f"{a}_p_value"].between(0, 1).all()
    # the raw score (two classes: true output minus the other) from the .npz files, by sklearn
    models_in = np.load(base / "models" / "in.npz")
    shards = [np.load(base / "models" / f"out_{s}.npz") for s in range(2)]
    for j, (record, label) in enumerate(zip(differ.differ_idx, differ.label, strict=True)):
        ((shard, s),) = [
            (sh, i) for sh in shards for i, r in enumerate(sh["records"]) if r == record
        ]
        ins = models_in["outputs_differ"][:, j].astype(float)
        outs = shard["outputs_differ"][s, :, j].astype(float)
        s_in, s_out = ins[:, label] - ins[:, 1 - label], outs[:, label] - outs[:, 1 - label]
        expect = roc_auc_score(np.r_[np.ones(8), np.zeros(8)], np.r_[s_in, s_out])
        assert per.score_auc[j] == pytest.approx(expect, abs=1e-9)
    # RMIA online from the .npz files: its population labels are the *test* labels (n_train 60
    # != n_test 40, so train labels would not even fit; flipped test labels give other AUCs)
    from lood.privacy.mia.attacks import rmia_loo
    from lood.privacy.signals import true_class_log_prob

    split = np.load(base / "data" / "split.npz")
    y_test = split["y_test"]
    assert len(split["y_train"]) != len(y_test)

    def log_p(outputs, labels):
        return true_class_log_prob(np.asarray(outputs, dtype=float), labels)

    def rmia_online_aucs(population_labels):
        rows = [
            [(sh, i) for sh in shards for i, r in enumerate(sh["records"]) if r == rec][0]
            for rec in differ.differ_idx
        ]
        lab = differ.label.to_numpy()
        ins = models_in["outputs_differ"]  # [K_in, P, C]
        lp_in = log_p(ins, np.broadcast_to(lab, ins.shape[:2])).T
        lp_out = np.stack(
            [
                log_p(sh["outputs_differ"][i][:, j], np.full(8, lab[j]))
                for j, (sh, i) in enumerate(rows)
            ]
        )
        lz_in = log_p(models_in["outputs_test"], np.broadcast_to(population_labels, (8, 40)))
        lz_out = np.stack(
            [
                log_p(sh["outputs_test"][i], np.broadcast_to(population_labels, (8, 40)))
                for sh, i in rows
            ]
        )
        t_in, t_out = rmia_loo(lp_in, lp_out, lz_in, lz_out)
        return [
            roc_auc_score(np.r_[np.ones(8), np.zeros(8)], np.r_[t_in[j], t_out[j]])
            for j in range(len(differ))
        ]

    np.testing.assert_allclose(per.rmia_online_auc, rmia_online_aucs(y_test), atol=1e-9)
    assert not np.allclose(per.rmia_online_auc, rmia_online_aucs(1 - y_test), atol=1e-9)
    pooled = pd.read_csv(base / "attacks" / "pooled.csv")
    assert list(pooled.attack) == ATTACKS
    assert pooled.auc.between(0, 1).all() and pooled.balanced_accuracy.between(0.5, 1).all()
    assert (pooled.n_pos == 24).all() and (pooled.n_neg == 24).all()
    assert (pooled["fp_allowed@0.01"] == 0).all()  # 24 negatives: no false positive at 1%
    roc = np.load(base / "attacks" / "roc.npz")
    assert list(roc["attacks"]) == ATTACKS
    for a in ATTACKS:
        assert np.trapezoid(roc[f"{a}_tpr"], roc[f"{a}_fpr"]) == pytest.approx(
            pooled.set_index("attack").auc[a]
        )
    free = pd.read_csv(base / "attacks" / "free_in.csv")
    assert len(free) == 2 * 3 and set(free.attack) == {"lira_online", "rmia_online"}
    assert (free.n_in_pool == 8).all() and (free.n_in_pool_free_in == 8 + 2 * 8).all()
    lira = free[free.attack == "lira_online"]
    np.testing.assert_allclose(lira.auc, per.lira_online_auc)  # free_in off by default
    summary = pd.read_csv(base / "attacks" / "free_in_summary.csv").set_index("attack")
    assert summary.loc["lira_online", "mean_change"] == pytest.approx(lira.auc_change.mean())
    # correlation.csv: the three LOOD rows first, then KL LOOD vs each attack's AUC
    corr = pd.read_csv(base / "correlation.csv")
    assert list(zip(corr.x, corr.y, strict=True)) == [
        ("kl_lood", "mia_auc"),
        ("mean_dist_lood", "pred_diff"),
        ("nngp_auc", "mia_auc"),
    ] + [("kl_lood", f"{a}_auc") for a in ATTACKS]
    # the noise ceiling: the mia_auc rows share mia_halves.csv's value, attack rows have none
    halves = pd.read_csv(base / "mia_halves.csv")
    assert len(halves) == 3 * 2 * 10 and set(halves.half) == {"a", "b"}
    auc_rows = corr[corr.y == "mia_auc"]
    assert auc_rows.reliability.nunique(dropna=False) == 1
    assert corr[corr.y.isin([f"{a}_auc" for a in ATTACKS])].ceiling.isna().all()
    lood = per.merge(pd.read_csv(base / "lood.csv"), on="differ_idx")
    row = corr[corr.y == "lira_online_auc"].iloc[0]
    r = stats.pearsonr(lood.kl_lood, lood.lira_online_auc)
    assert row.pearson_r == pytest.approx(r.statistic) and row.n == 3
    for fig in ["attacks_roc", "attacks_lood"]:
        assert (base / "figures" / f"{fig}.png").stat().st_size > 1000, fig
    assert "done in" in (base / "logs" / "attacks.log").read_text()
    # an attack setting reruns the attack rules and correlation.csv, no training
    config = write_config(tmp_path / "c.yaml", lambda c: c.update(attacks={"rmia_a": 0.5}))
    rules = planned_rules(snakemake(work, config, "-n"))
    assert rules == {"all", "attacks", "plot_attacks", "plot_correlation"}
    # switching the stage off drops the attack rows of correlation.csv (nothing else reruns)
    config = write_config(tmp_path / "d.yaml", lambda c: c.update(attacks={"enabled": False}))
    assert planned_rules(snakemake(work, config, "-n")) == {"all", "plot_correlation"}


def test_landscape_and_query_outputs(tiny_run):
    work, _ = tiny_run
    base = work / "results" / "tiny"
    lood, mia = pd.read_csv(base / "lood.csv"), pd.read_csv(base / "mia.csv")
    land = pd.read_csv(base / "landscape" / "lood.csv")
    assert list(land.columns) == ["differ_idx", "t", "kl_lood", "mean_dist_lood", "nngp_auc"]
    assert len(land) == 2 * 11 and list(land.differ_idx.unique()) == list(lood.differ_idx[:2])
    # t = 0 is the record itself: the landscape equals the point LOOD of lood.csv there
    at0 = land[land.t == 0].merge(lood, on="differ_idx", suffixes=("", "_point"))
    np.testing.assert_allclose(at0.kl_lood, at0.kl_lood_point, rtol=1e-6)
    np.testing.assert_allclose(at0.mean_dist_lood, at0.mean_dist_lood_point, rtol=1e-6)
    # MIA landscape: re-trained out models reproduce train_out's bit for bit (CPU) ...
    outs = np.load(base / "landscape" / "mia_outputs.npz")
    np.testing.assert_array_equal(outs["out_outputs_differ"], outs["stored_out_outputs_differ"])
    assert float(outs["out_max_abs_diff"]) == 0.0
    assert outs["in_outputs"].shape == (8, 2, 11, 2) and outs["out_outputs"].shape == (2, 8, 11, 2)
    # ... so at t = 0 the MIA AUC is that of mia.csv
    mland = pd.read_csv(base / "landscape" / "mia.csv")
    assert len(mland) == 22 and mland.mia_auc.between(0, 1).all()
    m0 = mland[mland.t == 0].merge(mia, on="differ_idx", suffixes=("", "_point"))
    np.testing.assert_allclose(m0.mia_auc, m0.mia_auc_point, atol=1e-12)
    rec = pd.read_csv(base / "query" / "reconstruction.csv")
    cols = [
        "differ_idx",
        "lood_at_record",
        "lood_optimized",
        "gap",
        "kernel_cosine",
        "pixel_l2",
        "baseline_kernel_cosine",
        "baseline_pixel_l2",
        "n_steps",
    ]
    assert set(cols) <= set(rec.columns) and len(rec) == 2
    assert (rec.lood_optimized > rec.lood_init).all()
    np.testing.assert_allclose(rec.gap, rec.lood_optimized - rec.lood_at_record)
    np.testing.assert_allclose(rec.lood_at_record, lood.kl_lood[:2], rtol=1e-6)
    assert np.load(base / "query" / "optimized.npz")["queries"].shape == (2, 1, 64)
    for fig in ["landscape", "query_reconstruction", "query_history"]:
        assert (base / "figures" / f"{fig}.png").stat().st_size > 1000


def test_killed_run_resumes_without_retraining_and_matches(tiny_run, tmp_path):
    """SIGKILL the workflow while an out-model shard trains; the rerun keeps finished shards and
    ends with results bit-identical to the uninterrupted run (which also shows reproducibility)."""
    work = tmp_path / "killed"
    work.mkdir()
    config = write_config(work / "config.yaml")
    cmd = [*SNAKEMAKE, "--directory", str(work), "--configfile", str(config), "--cores", "1"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    models, logs = work / "results/tiny/models", work / "results/tiny/logs"
    deadline = time.time() + 600
    while True:
        done = sorted(models.glob("out_*.npz"))
        running = [
            log
            for log in logs.glob("train_out_*.log")
            if not (models / f"{log.stem.removeprefix('train_')}.npz").exists()
        ]
        if done and running:
            break
        assert proc.poll() is None, "workflow finished before it could be interrupted"
        assert time.time() < deadline
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in models.glob("out_*.npz")}
    assert finished and len(finished) < 2
    for path in models.glob("*.npz"):  # whatever exists is complete (atomic writes)
        np.load(path)["seeds"]
    assert snakemake(work, config, "--unlock").returncode == 0
    rerun = snakemake(work, config, "--cores", "2")  # profiles/default: rerun-incomplete
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    for name, mtime in finished.items():
        assert (models / name).stat().st_mtime_ns == mtime, f"{name} was retrained"
    reference = tiny_run[0] / "results/tiny"
    for table in RESULT_TABLES:
        assert (work / "results/tiny" / table).read_bytes() == (reference / table).read_bytes(), (
            table
        )


BAD = [
    (lambda c: c["model"].update(activation="tanh"), "activation"),
    (lambda c: c["train"].update(n_in=-1), "n_in"),
    (lambda c: c["data"].update(dataset="imagenet"), "dataset"),
    (lambda c: c["nngp"].update(sigma2=0), "sigma2"),
    (lambda c: c["differ"].update(n=1000), "differ.n"),
    (lambda c: c["data"].update(classes=[3, 11]), "data.classes"),
    (lambda c: c["train"].update(epochs="ten"), "epochs"),
    (lambda c: c["model"].update(widht=3), "widht"),
    (lambda c: c["train"].update(dp={"enabled": True, "delta": 0.1}), "train.dp.delta"),
    (lambda c: c["train"].update(dp={"enabled": True, "noise_multiplier": 0}), "noise_multiplier"),
    (lambda c: c.update(audit={"n_canaries": 500}), "audit.n_canaries"),
    (lambda c: c["mia"].update(score="logit"), "mia.score: 'logit'"),
]


@pytest.mark.parametrize(("mutate", "key"), BAD, ids=[k for _, k in BAD])
def test_invalid_config_stops_before_any_job(tmp_path, mutate, key):
    config = write_config(tmp_path / "bad.yaml", mutate)
    proc = snakemake(tmp_path, config, "-n")
    assert proc.returncode != 0
    assert key in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_own_npz_dataset(tmp_path):
    """Bring your own data: a .npz with x (any image shape) and y, declared in the config."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 4, 4)).astype(np.float32)
    y = np.where(x.mean(axis=(1, 2)) > 0, 5, 2)
    np.savez(tmp_path / "own.npz", x=x, y=y)

    def own(cfg):
        cfg["data"].update(dataset="npz", path="own.npz", classes=[2, 5], n_train=40, n_test=20)

    config = write_config(tmp_path / "own.yaml", own)
    proc = snakemake(tmp_path, config, "--cores", "2", "results/tiny/lood.csv")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lood = pd.read_csv(tmp_path / "results/tiny/lood.csv")
    assert len(lood) == 3 and np.isfinite(lood.kl_lood).all()
    split = np.load(tmp_path / "results/tiny/data/split.npz")
    assert split["x_train"].shape == (40, 16)
    assert tuple(split["image_shape"]) == (4, 4)
    # editing the user's file reruns the split and everything after it
    np.savez(tmp_path / "own.npz", x=x[::-1].copy(), y=y[::-1].copy())
    assert "split" in planned_rules(snakemake(tmp_path, config, "-n", "results/tiny/lood.csv"))


def _dp_config(cfg):
    """tiny beside a DP-SGD copy of it; only the core, audit and inversion stages."""
    for stage in ("memorization", "landscape", "influence", "attacks"):
        cfg.setdefault(stage, {})["enabled"] = False
    cfg["query"]["n_records"] = 1
    cfg["audit"] = {"n_runs": 2}
    cfg["inversion"] = {"n_models": 2, "n_steps": 40, "tv": 0.0}
    dp = {"enabled": True, "target_epsilon": 2.0, "max_grad_norm": 1.0, "delta": 1e-3}
    cfg["experiments"] = {"tiny": {}, "tiny_dp": {"train": {"dp": dp}}}


def test_dp_experiment_audit_and_inversion(tmp_path):
    """A DP-SGD experiment beside the non-DP one: epsilon recorded per model, the comparison
    table and figure on the same records, audit bounds below the accountant's epsilon, and the
    MI-FACE comparison with the NNGP query optimisation."""
    config = write_config(tmp_path / "dp.yaml", _dp_config)
    proc = snakemake(tmp_path, config, "--cores", "2", "--scheduler", "greedy")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    res = tmp_path / "results"
    eps_in = np.load(res / "tiny_dp" / "models" / "in.npz")["epsilon"]
    eps_out = np.load(res / "tiny_dp" / "models" / "out_0.npz")["epsilon"]
    assert eps_in.shape == (8,) and eps_out.shape == (2, 8)
    assert np.allclose(eps_in, eps_in[0]) and 1.9 <= eps_in[0] <= 2.0
    assert np.isinf(np.load(res / "tiny" / "models" / "in.npz")["epsilon"]).all()
    assert "DP-SGD, noise multiplier" in (res / "tiny_dp" / "logs" / "train_in.log").read_text()
    dp = pd.read_csv(res / "comparison" / "dp.csv")
    assert len(dp) == 6 and list(dp.experiment.unique()) == ["tiny", "tiny_dp"]  # by epsilon
    a, b = (dp[dp.experiment == e].set_index("differ_idx") for e in ("tiny", "tiny_dp"))
    assert list(a.index) == list(b.index)
    np.testing.assert_allclose(a.kl_lood, b.kl_lood)  # the NNGP does not see the DP noise
    assert (dp.empirical_lood >= 0).all()
    summary = pd.read_csv(res / "comparison" / "dp_summary.csv")
    assert list(summary.experiment) == ["tiny", "tiny_dp"]
    audit = pd.read_csv(res / "comparison" / "audit.csv")
    assert len(audit) == 4 and set(audit.experiment) == {"tiny", "tiny_dp"}
    dp_runs = audit[audit.experiment == "tiny_dp"]
    assert (dp_runs.eps_lower_bound <= dp_runs.eps_accountant).all()
    assert np.isinf(audit.loc[audit.experiment == "tiny", "eps_accountant"]).all()
    inv = pd.read_csv(res / "comparison" / "inversion.csv")
    assert set(inv.method) == {"MI-FACE", "NNGP query optimisation"}
    assert set(inv.loc[inv.method == "MI-FACE", "experiment"]) == {"tiny", "tiny_dp"}
    arrays = np.load(res / "tiny" / "inversion" / "inversion.npz")
    assert arrays["x"].shape == (2, 2, 64) and (arrays["confidence"] > 0.5).all()
    for fig in ["dp", "audit", "inversion"]:
        assert (res / "comparison" / "figures" / f"{fig}.png").stat().st_size > 1000, fig


def _panoramia_config(cfg):
    """tiny with PANORAMIA on: a small VAE, logistic classifiers, a grid that fits 15 slots."""
    cfg["panoramia"] = {
        "enabled": True,
        "n_targets": 3,
        "classifier": "logistic",
        "r_min": 2,
        "n_thresholds": 5,
        "generator": {"hidden": 32, "epochs": 5},
    }


PANORAMIA_RULES = {
    "panoramia_split",
    "panoramia_generator",
    "panoramia_helper",
    "panoramia_audit",
    "plot_panoramia",
    "plot_panoramia_comparison",
}


def test_panoramia_outputs(tiny_run, tmp_path):
    """PANORAMIA on top of the tiny run: only its rules run; the member split, the generator,
    the tables with their columns and eps_tilde = {c+eps}_lb - c_lb, the first in models as
    targets, the comparison beside the audit, the accountant, the MIA and LOOD, the report; a
    classifier setting reruns only the audit and the plots."""
    work = tmp_path / "pano"
    shutil.copytree(tiny_run[0], work, symlinks=True)
    config = write_config(work / "pano.yaml", _panoramia_config)
    proc = snakemake(work, config, "--cores", "2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert planned_rules(proc) == PANORAMIA_RULES | {"all"}  # nothing else reran
    res = work / "results"
    base = res / "tiny" / "panoramia"
    members = np.load(base / "split.npz")
    parts = [members[k] for k in ("generator", "attack_train", "attack_test")]
    assert [len(p) for p in parts] == [30, 15, 15]  # fractions 0.5, 0.25, 0.25 of N = 60
    assert len(np.unique(np.concatenate(parts))) == 60
    from lood.privacy.panoramia import load_generator

    vae = load_generator(base / "generator.safetensors")
    assert (vae.d, vae.n_classes, vae.config.hidden) == (64, 2, 32)
    sets = np.load(base / "attack_sets.npz")
    assert sets["x_helper"].shape == (30, 64) and sets["x_train"].shape == (30, 64)
    assert sets["train_member"].sum() == 15 and len(sets["test_member"]) == 15
    summary = pd.read_csv(base / "panoramia.csv")
    cols = [
        "experiment",
        "target",
        "c_lb",
        "c_plus_eps_lb",
        "eps_tilde",
        "ceiling",
        "baseline_auc",
        "mia_auc",
        "n_attack_test",
        "n_test_members",
        "target_test_acc",
    ]
    assert set(cols) <= set(summary.columns) and list(summary.target) == [0, 1, 2]
    np.testing.assert_allclose(summary.eps_tilde, summary.c_plus_eps_lb - summary.c_lb)
    assert summary.c_lb.nunique() == 1  # one baseline for every target
    assert ((summary.c_lb >= 0) & (summary.c_plus_eps_lb <= summary.ceiling + 1e-12)).all()
    assert (summary.n_test_members == sets["test_member"].sum()).all()
    in_acc = np.load(res / "tiny" / "models" / "in.npz")["test_acc"]
    np.testing.assert_allclose(summary.target_test_acc, in_acc[:3], atol=1e-6)  # first in models
    thresholds = pd.read_csv(base / "thresholds.csv")
    assert set(thresholds.target) == {-1, 0, 1, 2}
    assert set(thresholds.classifier) == {"baseline", "mia"}
    best = thresholds[thresholds.target >= 0].groupby("target").eps_lb.max()
    np.testing.assert_allclose(best.to_numpy(), summary.c_plus_eps_lb)
    curves = pd.read_csv(base / "curves.csv")
    assert list(curves.columns[-4:]) == ["threshold", "v", "precision", "recall"]
    assert len(curves) == 4 * 15 and (curves.groupby("target").recall.max() == 1).all()
    gen = pd.read_csv(base / "generator.csv")
    assert gen.sample_accuracy.between(0, 1).all() and (gen.n_generator == 30).all()
    table = pd.read_csv(res / "comparison" / "panoramia.csv")
    row = table.iloc[0]
    assert len(table) == 1 and row.experiment == "tiny" and np.isinf(row.eps_accountant)
    assert row.eps_tilde_mean == pytest.approx(summary.eps_tilde.mean())
    audit = pd.read_csv(res / "tiny" / "audit" / "audit.csv")
    assert row.audit_eps_lb_max == pytest.approx(audit.eps_lower_bound.max())
    assert row.mia_auc_mean == pytest.approx(pd.read_csv(res / "tiny" / "mia.csv").mia_auc.mean())
    assert row.kl_lood_mean == pytest.approx(pd.read_csv(res / "tiny" / "lood.csv").kl_lood.mean())
    for fig in [
        base / "figures" / "samples.png",
        base / "figures" / "curves.png",
        res / "comparison" / "figures" / "panoramia.png",
    ]:
        assert fig.stat().st_size > 1000, fig
    report = tmp_path / "report.html"
    proc = snakemake(work, config, "--report", str(report))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "PANORAMIA" in report.read_text(errors="ignore")
    changed = write_config(
        work / "pano2.yaml",
        lambda c: (_panoramia_config(c), c["panoramia"].update(classifier="gbdt")),
    )
    rerun = {"all", "panoramia_audit", "plot_panoramia", "plot_panoramia_comparison"}
    assert planned_rules(snakemake(work, changed, "-n")) == rerun

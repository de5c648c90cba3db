"""The paper configuration's code path, end to end through Snakemake at small size.

`config/paper_cifar10.yaml` as shipped, shrunk only where size is concerned (N, width, models,
epochs and milestones, records): the CIFAR-10 reader on CIFAR-format files the test writes, inputs
in [0, 1], He-normal weights without bias, cross-entropy, the step schedule, the fixed order,
depth 9. So a user with internet and GPUs is not the first to run this path; ``model.init:
torch`` (nn.Linear's default) is run through the same path in a second, cheaper check.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import REPO, snakemake, write_cifar_raw

from lood.data.split import Split
from lood.train.models import load_params

pytestmark = pytest.mark.slow


def shrink(cfg: dict, root: Path) -> dict:
    """Sizes only: what the protocol is (data, init, loss, schedule, depth, MIA) stays."""
    cfg["data"].update(root=str(root), download=False, n_train=200, n_test=60)
    cfg["differ"]["n"] = 4
    cfg["model"]["width"] = 16
    cfg["train"].update(n_in=8, n_out=8, epochs=4, lr_milestones=[2, 3], shard_size=4, lr=0.05)
    cfg["mia"]["n_splits"] = 5
    cfg["plots"].update(formats=["png"], dpi=40)
    cfg["memorization"].update(n_models=24, top_k=3, n_examples=2)
    cfg["influence"].update(cg_max_iter=10, hvp_batch_size=100)
    cfg["landscape"]["enabled"] = False  # NNGP landscapes and query optimisation are the
    cfg["query"]["enabled"] = False  # default config's path, tested in test_workflow
    return cfg


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("paper")
    train_x, train_y, test_x, test_y = write_cifar_raw(
        work / "cifar", per_batch=60, n_test=60, n_classes=2
    )
    shipped = yaml.safe_load((REPO / "config" / "paper_cifar10.yaml").read_text())
    config = work / "paper.yaml"
    config.write_text(yaml.safe_dump(shrink(copy.deepcopy(shipped), work / "cifar")))
    proc = snakemake(work, config, "--cores", "2", "--scheduler", "greedy")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return work, shipped, train_x


def test_paper_config_is_the_original_protocol(paper_run):
    """What the issue lists as the original's protocol is what the shipped config says."""
    _, shipped, _ = paper_run
    data, model, train = shipped["data"], shipped["model"], shipped["train"]
    assert data["dataset"] == "cifar10" and data["classes"] == [0, 1]
    assert data["n_train"] == 10000 and data["normalization"] == "none"
    assert (model["depth"], model["width"], model["activation"]) == (9, 1024, "relu")
    # He-normal: the original's Solver.weights_init overwrites nn.Linear's default init
    assert model["b_std"] == 0 and model["init"] == "normal" and model["W_std"] == 2**0.5
    assert model["parameterization"] == "standard"
    assert (train["loss"], train["optimizer"], train["momentum"]) == ("cross_entropy", "sgd", 0)
    assert (train["lr"], train["epochs"], train["batch_size"]) == (0.001, 50, 64)
    assert train["lr_schedule"] == "step" and train["lr_milestones"] == [25, 35, 45]
    assert train["lr_gamma"] == 0.1 and train["shuffle"] is False
    assert shipped["nngp"]["sigma2"] == 0.05
    assert shipped["mia"]["score"] == "output_vector"  # the original's MIA on the output vector


def test_paper_path_outputs(paper_run):
    work, _, train_x = paper_run
    exp = work / "results" / "cifar10_relu"
    split = Split.load(exp / "data" / "split.npz")
    # pixels as ToTensor() gives them: the written bytes / 255, no standardisation
    raw = train_x.reshape(len(train_x), -1)[split.train_source_idx].astype(np.float32) / 255.0
    np.testing.assert_array_equal(split.x_train, raw)
    assert split.x_train.min() >= 0.0 and split.x_train.max() <= 1.0
    assert set(split.y_train.tolist()) == {0, 1} and len(split.y_train) == 200
    params, meta = load_params(exp / "models" / "in_weights.safetensors")
    assert "'init': 'normal'" in meta["architecture"] and "'depth': 9" in meta["architecture"]
    assert "b0" not in params
    log = (exp / "logs" / "train_in.log").read_text()
    assert "learning rate schedule step: 0.05, 0.005, 0.0005 over 4 epochs" in log
    mia = pd.read_csv(exp / "mia.csv")
    lood = pd.read_csv(exp / "lood.csv")
    assert len(mia) == len(lood) == 4 and mia.mia_auc.between(0, 1).all()
    assert np.isfinite(lood.kl_lood).all()
    corr = pd.read_csv(exp / "correlation.csv")
    assert len(corr) > 0
    ck_meta = load_params(exp / "influence" / "checkpoints.safetensors")[1]
    assert json.loads(ck_meta["lrs"])[-1] == repr(0.05 * 0.1**2)


def test_torch_default_init_through_the_same_path(paper_run):
    """model.init: torch (nn.Linear's default init, the issue's reading of the original) trains
    through the same jobs; its first-layer weights start inside nn.Linear's uniform bound."""
    work, shipped, _ = paper_run
    cfg = shrink(copy.deepcopy(shipped), work / "cifar")
    cfg["results"] = "results_torch_init"
    cfg["model"]["init"] = "torch"
    cfg["train"]["lr"] = 1e-9  # the weights stay where they started
    config = work / "torch_init.yaml"
    config.write_text(yaml.safe_dump(cfg))
    target = "results_torch_init/cifar10_relu/models/in_weights.safetensors"
    proc = snakemake(work, config, "--cores", "2", target)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    params, meta = load_params(work / target)
    assert "'init': 'torch'" in meta["architecture"]
    w0 = params["W0"].numpy()
    bound = 1.0 / np.sqrt(3072)
    assert np.abs(w0).max() <= bound and np.abs(w0).max() > 0.99 * bound  # uniform, filled

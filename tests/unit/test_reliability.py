"""Bad input is rejected before any job runs, with the key named; training divergence is loud."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import REPO

import lood.config as lc

TINY = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())


def check(cfg: dict, base_dir: Path) -> dict:
    """What rules/common.smk does at parse time, before any job is scheduled."""
    return lc.load_config(cfg, base_dir=base_dir)


def put(path: str, value):
    def mutate(cfg: dict) -> None:
        *parents, last = path.split(".")
        node = cfg
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value

    return mutate


# name -> (change, the full key path the error must start with)
BAD_CONFIGS = {
    "activation unknown": (put("model.activation", "tanh"), "model.activation"),
    "n_in negative": (put("train.n_in", -1), "train.n_in"),
    "n_out zero": (put("train.n_out", 0), "train.n_out"),
    "epochs wrong type": (put("train.epochs", "ten"), "train.epochs"),
    "dataset unknown": (put("data.dataset", "imagenet"), "data.dataset"),
    "n_train zero": (put("data.n_train", 0), "data.n_train"),
    "n_test zero": (put("data.n_test", 0), "data.n_test"),
    "more differing records than data": (put("differ.n", 61), "differ.n"),
    "class not in dataset": (put("data.classes", [3, 11]), "data.classes"),
    "single class": (put("data.classes", [3]), "data.classes"),
    "repeated class": (put("data.classes", [3, 3]), "data.classes"),
    "sigma2 zero": (put("nngp.sigma2", 0), "nngp.sigma2"),
    "sigma2 negative": (put("nngp.sigma2", -0.1), "nngp.sigma2"),
    "sigma2 neither number nor auto": (put("nngp.sigma2", "evidence"), "nngp.sigma2"),
    "kernel unknown": (put("nngp.kernel", "rbf"), "nngp.kernel"),
    "lr zero": (put("train.lr", 0), "train.lr"),
    "batch larger than data": (put("train.batch_size", 1000), "experiments.tiny.train.batch_size"),
    "optimizer unknown": (put("train.optimizer", "rmsprop"), "train.optimizer"),
    "W_std zero": (put("model.W_std", 0), "model.W_std"),
    "normalization unknown": (put("data.normalization", "l2"), "data.normalization"),
    "typo in a key": (put("model.widht", 64), "model: Additional properties"),
    "no experiments": (put("experiments", {}), "experiments"),
    "bad experiment override": (
        put("experiments", {"g": {"model": {"activation": "swish"}}}),
        "experiments.g.model.activation",
    ),
    "npz without path": (put("data.dataset", "npz"), "data.path"),
    "differ csv missing": (put("differ.csv", "nope.csv"), "differ.csv"),
    "dp delta above 1/N": (
        put("train.dp", {"enabled": True, "delta": 0.1}),
        "experiments.tiny.train.dp.delta",
    ),
    "audit with more canaries than records": (put("audit.n_canaries", 100), "audit.n_canaries"),
    "attack score unknown": (put("attacks.score", "entropy"), "attacks.score"),
    "rmia a above 1": (put("attacks.rmia_a", 1.5), "attacks.rmia_a"),
    "fpr above 1": (put("attacks.alphas", [0.01, 2.0]), "attacks.alphas"),
}


@pytest.mark.parametrize("name", list(BAD_CONFIGS))
def test_bad_config_rejected_naming_the_key(name, tmp_path):
    mutate, key = BAD_CONFIGS[name]
    cfg = copy.deepcopy(TINY)
    mutate(cfg)
    with pytest.raises(ValueError) as info:
        check(cfg, tmp_path)
    assert type(info.value) is ValueError, type(info.value)
    message = str(info.value)
    assert message.startswith(key), message
    assert re.match(rf"{re.escape(key)}(?![A-Za-z0-9_])", message), message


def test_numeric_strings_from_the_command_line_are_coerced(tmp_path):
    """``snakemake --config 'nngp={sigma2: 0.1}'`` passes nested values as strings."""
    cfg = copy.deepcopy(TINY) | {"nngp": {"sigma2": "0.1"}, "mia": {"n_splits": "7"}}
    cfg["train"] = cfg["train"] | {"lr": "0.25", "dp": {"enabled": "false"}}
    out = check(cfg, tmp_path)
    assert out["nngp"]["sigma2"] == 0.1 and out["mia"]["n_splits"] == 7
    assert out["train"]["lr"] == 0.25 and out["train"]["dp"]["enabled"] is False
    cfg["nngp"]["sigma2"] = "auto"  # the other alternative: kept as the string
    assert check(cfg, tmp_path)["nngp"]["sigma2"] == "auto"
    cfg["nngp"]["sigma2"] = "zero point one"
    with pytest.raises(ValueError, match=r"^nngp\.sigma2: 'zero point one' is not of type"):
        check(cfg, tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("index\n1\n2\n", "no 'differ_idx' column"),
        ("differ_idx\n1\n75\n", "outside"),
        ("differ_idx\n-1\n3\n", "outside"),
    ],
)
def test_bad_differ_csv_rejected(tmp_path, content, message):
    (tmp_path / "d.csv").write_text(content)
    cfg = copy.deepcopy(TINY)
    cfg["differ"]["csv"] = "d.csv"
    with pytest.raises(ValueError, match=message):
        check(cfg, tmp_path)


def test_good_config_passes(tmp_path):
    check(copy.deepcopy(TINY), tmp_path)
    check(yaml.safe_load((REPO / "config.yaml").read_text()), REPO)
    check(yaml.safe_load((REPO / "config" / "paper_cifar10.yaml").read_text()), REPO)
    gelu = lc.resolve_inherit(
        yaml.safe_load((REPO / "config" / "relu_vs_gelu.yaml").read_text()), REPO
    )
    check(gelu, REPO)
    assert list(gelu["experiments"]) == ["relu", "gelu"]
    dp = check(yaml.safe_load((REPO / "config" / "dp.yaml").read_text()), REPO)
    assert any(e.get("train", {}).get("dp", {}).get("enabled") for e in dp["experiments"].values())


def test_diverging_training_names_experiment_and_shard(tmp_path):
    from helpers import make_job

    from lood.data.split import Split
    from lood.jobs.training import train_role

    rng = np.random.default_rng(0)
    n, d = 40, 5
    split = Split(
        x_train=rng.normal(size=(n, d)).astype(np.float32) * 100,
        y_train=rng.integers(0, 2, n),
        x_test=rng.normal(size=(8, d)).astype(np.float32),
        y_test=rng.integers(0, 2, 8),
        train_source_idx=np.arange(n),
        test_source_idx=np.arange(8),
        image_shape=(d,),
        classes=np.array([0, 1]),
    )
    model = {
        "depth": 1,
        "width": 8,
        "activation": "relu",
        "W_std": 1.4,
        "b_std": 0.0,
        "parameterization": "ntk",
    }
    train = {
        "n_in": 4,
        "n_out": 4,
        "epochs": 5,
        "batch_size": 8,
        "lr": 1e6,
        "optimizer": "sgd",
        "momentum": 0.0,
        "weight_decay": 0.0,
        "loss": "mse",
        "seed": 0,
        "shard_size": 1,
    }
    out = tmp_path / "out_1.npz"
    job = make_job(split, model, train, where="experiment 'exp_x', out models, shard 1")
    with pytest.raises(
        FloatingPointError, match=r"experiment 'exp_x', out models, shard 1.*train\.lr"
    ):
        train_role("out", job, np.array([3, 7]), 1, str(out))
    assert not out.exists()

"""Bad input is rejected before any job runs, with the key named; training divergence is loud."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

import lood.config as lc

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "config" / "schema.yaml")
TINY = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())


def check(cfg: dict, base_dir: Path) -> None:
    """What rules/common.smk does at parse time, before any job is scheduled."""
    cfg = lc.with_defaults(cfg)
    validate(cfg, SCHEMA)
    lc.check_config(cfg, base_dir=base_dir)


def put(path: str, value):
    def mutate(cfg: dict) -> None:
        *parents, last = path.split(".")
        node = cfg
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value

    return mutate


# name: (mutation, exception type, the full key path the message must name). Schema violations
# are snakemake WorkflowErrors ("On instance['model']['activation']"), cross-key and data checks
# ValueErrors that start with the key path.
BY_SCHEMA, BY_CHECK = WorkflowError, ValueError
BAD_CONFIGS = {
    "activation unknown": (put("model.activation", "tanh"), BY_SCHEMA, "model.activation"),
    "n_in negative": (put("train.n_in", -1), BY_SCHEMA, "train.n_in"),
    "n_out zero": (put("train.n_out", 0), BY_SCHEMA, "train.n_out"),
    "epochs wrong type": (put("train.epochs", "ten"), BY_SCHEMA, "train.epochs"),
    "dataset unknown": (put("data.dataset", "imagenet"), BY_SCHEMA, "data.dataset"),
    "n_train zero": (put("data.n_train", 0), BY_SCHEMA, "data.n_train"),
    "n_test zero": (put("data.n_test", 0), BY_SCHEMA, "data.n_test"),
    "more differing records than data": (put("differ.n", 61), BY_CHECK, "differ.n"),
    "class not in dataset": (put("data.classes", [3, 11]), BY_CHECK, "data.classes"),
    "single class": (put("data.classes", [3]), BY_SCHEMA, "data.classes"),
    "repeated class": (put("data.classes", [3, 3]), BY_SCHEMA, "data.classes"),
    "sigma2 zero": (put("nngp.sigma2", 0), BY_SCHEMA, "nngp.sigma2"),
    "sigma2 negative": (put("nngp.sigma2", -0.1), BY_SCHEMA, "nngp.sigma2"),
    "lr zero": (put("train.lr", 0), BY_SCHEMA, "train.lr"),
    "batch larger than data": (
        put("train.batch_size", 1000),
        BY_CHECK,
        "experiments.tiny.train.batch_size",
    ),
    "optimizer unknown": (put("train.optimizer", "rmsprop"), BY_SCHEMA, "train.optimizer"),
    "W_std zero": (put("model.W_std", 0), BY_SCHEMA, "model.W_std"),
    "normalization unknown": (put("data.normalization", "l2"), BY_SCHEMA, "data.normalization"),
    "typo in a key": (put("model.widht", 64), BY_SCHEMA, "model.widht"),
    "no experiments": (put("experiments", {}), BY_SCHEMA, "experiments"),
    "bad experiment override": (
        put("experiments", {"g": {"model": {"activation": "swish"}}}),
        BY_SCHEMA,
        "experiments.g.model.activation",
    ),
    "npz without path": (put("data.dataset", "npz"), BY_CHECK, "data.path"),
    "differ csv missing": (put("differ.csv", "nope.csv"), BY_CHECK, "differ.csv"),
}


def reported_key_path(exc: Exception) -> str:
    """The key path an error message names: the JSON-schema instance path (plus the unexpected
    key of an additionalProperties error) of a WorkflowError, else the text before the first ':'."""
    msg = str(exc)
    if isinstance(exc, WorkflowError):
        instance = re.search(r"^On instance((?:\['[^']*'\])*):", msg, re.MULTILINE)
        assert instance, msg
        parts = re.findall(r"\['([^']*)'\]", instance.group(1))
        extra = re.search(r"\('([^']+)' was unexpected\)", msg)
        return ".".join(parts + ([extra.group(1)] if extra else []))
    return msg.split(":", 1)[0]


@pytest.mark.parametrize("name", list(BAD_CONFIGS))
def test_bad_config_rejected_naming_the_key(name, tmp_path):
    mutate, error, path = BAD_CONFIGS[name]
    cfg = copy.deepcopy(TINY)
    mutate(cfg)
    with pytest.raises(error) as info:
        check(cfg, tmp_path)
    assert type(info.value) is error, (type(info.value), str(info.value))
    assert reported_key_path(info.value) == path, str(info.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("index\n1\n2\n", "no 'differ_idx' column"),
        ("differ_idx\n1\n75\n", "out of range"),
        ("differ_idx\n-1\n3\n", "out of range"),
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


def test_diverging_training_names_experiment_and_shard(tmp_path):
    from lood.data import Split
    from lood.training import train_role

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
    model = {"depth": 1, "width": 8, "activation": "relu", "W_std": 1.4, "b_std": 0.0,
             "parameterization": "ntk"}  # fmt: skip
    train = {"n_in": 4, "n_out": 4, "epochs": 5, "batch_size": 8, "lr": 1e6, "optimizer": "sgd",
             "momentum": 0.0, "weight_decay": 0.0, "loss": "mse", "seed": 0, "shard_size": 1}  # fmt: skip
    out = tmp_path / "out_1.npz"
    with pytest.raises(
        FloatingPointError, match=r"experiment 'exp_x', out models, shard 1.*train\.lr"
    ):
        train_role("out", split, np.array([3, 7]), model, train, "exp_x", 1, str(out))
    assert not out.exists()

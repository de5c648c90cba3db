import numpy as np
import pandas as pd
import pytest
from helpers import TINY

import lood.config as lc
from lood.seeds import derive_seed, shard_records


def base_config():

    import yaml

    return lc.with_defaults(yaml.safe_load(TINY.read_text()))


def test_experiment_overrides_only_its_sections():
    cfg = base_config()
    cfg["experiments"] = {
        "relu": {},
        "gelu": {"model": {"activation": "gelu"}, "nngp": {"sigma2": 0.1}},
    }
    relu, gelu = lc.experiment(cfg, "relu"), lc.experiment(cfg, "gelu")
    assert relu["model"]["activation"] == "relu" and gelu["model"]["activation"] == "gelu"
    assert gelu["model"]["width"] == relu["model"]["width"]
    assert gelu["nngp"]["sigma2"] == 0.1 and relu["nngp"]["sigma2"] == cfg["nngp"]["sigma2"]
    assert gelu["data"] == relu["data"]
    assert cfg["model"]["activation"] == "relu"  # base untouched
    with pytest.raises(ValueError, match="no experiment named"):
        lc.experiment(cfg, "tanh")


def test_shards_cover_records_exactly_once():
    for n, size in [(30, 8), (3, 2), (5, 5), (1, 4)]:
        cfg = {"differ": {"n": n, "csv": None}, "train": {"shard_size": size}}
        shards = [list(shard_records(n, size, s)) for s in range(lc.n_shards(cfg))]
        assert sum(shards, []) == list(range(n))
    with pytest.raises(ValueError):
        shard_records(3, 2, 2)


def test_derive_seed_is_deterministic_and_distinct():
    a = derive_seed(0, "out", 17, 3)
    assert a == derive_seed(0, "out", 17, 3)
    seeds = {
        derive_seed(0, role, r, k) for role in ("in", "out") for r in range(20) for k in range(50)
    }
    assert len(seeds) == 2 * 20 * 50
    assert derive_seed("experiment_long_name_a") != derive_seed("experiment_long_name_b")


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda c: c["differ"].update(n=61), "differ.n"),
        (lambda c: c["data"].update(classes=[3, 12]), "data.classes"),
        (lambda c: c["train"].update(batch_size=1000), "train.batch_size"),
        (lambda c: c["data"].update(dataset="npz", path=None), "data.path"),
        (lambda c: c["data"].update(dataset="npz", path="missing.npz"), "data.path"),
        (
            lambda c: c["train"].update(lr_schedule="step", lr_milestones=[1, 3]),
            "experiments.tiny.train.lr_milestones",
        ),
        (lambda c: c["train"].update(lr_milestones=[1]), "experiments.tiny.train.lr_milestones"),
        (
            lambda c: c["train"].update(shuffle=False, dp={**c["train"]["dp"], "enabled": True}),
            "experiments.tiny.train.shuffle",
        ),
        (
            lambda c: c["train"].update(drop_last=True, dp={**c["train"]["dp"], "enabled": True}),
            "experiments.tiny.train.drop_last",
        ),
        (
            lambda c: c["train"].update(drop_last=True, batch_size=60),
            "experiments.tiny.train.batch_size",
        ),
    ],
)
def test_check_config_names_the_key(mutate, key, tmp_path):
    cfg = base_config()
    mutate(cfg)
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        lc.check_config(cfg, base_dir=tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("idx\n1\n2\n", "no 'differ_idx' column"),
        ("differ_idx\n1\n1\n", "duplicate"),
        ("differ_idx\n1.5\n2\n", "integers"),
        ("differ_idx\n1\n60\n", "outside"),
        ("differ_idx\n", "no rows"),
    ],
)
def test_differ_csv_errors(tmp_path, content, message):
    (tmp_path / "d.csv").write_text(content)
    cfg = base_config()
    cfg["differ"]["csv"] = "d.csv"
    with pytest.raises(ValueError, match=message):
        lc.check_config(cfg, base_dir=tmp_path)


def test_npz_dataset_classes_checked_against_file(tmp_path):
    np.savez(tmp_path / "own.npz", x=np.zeros((10, 4)), y=np.array([0, 1] * 5))
    cfg = base_config()
    cfg["data"].update(dataset="npz", path="own.npz", classes=[0, 1], n_train=6, n_test=2)
    cfg["differ"]["n"] = 2
    cfg["train"]["batch_size"] = 4
    lc.check_config(cfg, base_dir=tmp_path)
    cfg["data"]["classes"] = [0, 2]
    with pytest.raises(ValueError, match=r"data\.classes"):
        lc.check_config(cfg, base_dir=tmp_path)
    pd.DataFrame({"differ_idx": [0, 5]}).to_csv(tmp_path / "ok.csv", index=False)
    cfg["data"]["classes"] = [0, 1]
    cfg["differ"]["csv"] = "ok.csv"
    assert lc.n_differ(cfg, tmp_path) == 2


def test_inherit_merges_over_base_and_replaces_experiments(tmp_path):
    (tmp_path / "base.yaml").write_text(
        "data: {dataset: digits, classes: [3, 8], n_train: 60, n_test: 40}\n"
        "nngp: {sigma2: 0.05, all_records: false}\nexperiments: {a: {}}\n"
    )
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mid.yaml").write_text("inherit: ../base.yaml\nnngp: {sigma2: 0.1}\n")
    child = {"inherit": "sub/mid.yaml", "experiments": {"b": {}, "c": {}}}
    cfg = lc.resolve_inherit(child, tmp_path)
    assert cfg["experiments"] == {"b": {}, "c": {}}
    assert cfg["nngp"] == {"sigma2": 0.1, "all_records": False}
    assert cfg["data"]["classes"] == [3, 8] and "inherit" not in cfg
    assert lc.resolve_inherit({"inherit": "sub/mid.yaml"}, tmp_path)["experiments"] == {"a": {}}
    with pytest.raises(ValueError, match="inherit"):
        lc.resolve_inherit({"inherit": "missing.yaml"}, tmp_path)


def test_defaults_come_from_the_schema_in_a_canonical_key_order():
    """Rule params must not depend on how a file orders its keys (Snakemake compares their
    repr), and every default comes from the schema."""

    def reverse(d):
        return {k: reverse(v) if isinstance(v, dict) else v for k, v in reversed(list(d.items()))}

    cfg = base_config()
    assert list(lc.with_defaults(reverse(cfg))) == list(cfg)
    assert repr(lc.with_defaults(reverse(cfg))) == repr(lc.with_defaults(cfg))
    schema_dp = lc.section_schema("train.dp")["properties"]
    assert lc.section_defaults("train.dp") == {k: v["default"] for k, v in schema_dp.items()}
    assert lc.with_defaults({"data": {}})["nngp"] == {
        "sigma2": 0.05,
        "kernel": "nngp",
        "depth": None,
        "kernel_batch_size": 0,
        "all_records": True,
    }


def test_a_shipped_config_can_be_inherited(tmp_path, monkeypatch):
    """config/relu_vs_gelu.yaml says ``inherit: config.yaml`` (the working directory's): a user's
    file that inherits it must still reach config.yaml, not look for config/config.yaml."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config.yaml").write_text("nngp: {sigma2: 0.05}\nexperiments: {a: {}}\n")
    (tmp_path / "config" / "pair.yaml").write_text(
        "inherit: config.yaml\nmodel: {depth: 3}\nexperiments: {x: {}, y: {}}\n"
    )
    monkeypatch.chdir(tmp_path)
    cfg = lc.resolve_inherit({"inherit": "config/pair.yaml", "onion": {"enabled": True}})
    assert cfg["nngp"] == {"sigma2": 0.05} and cfg["model"] == {"depth": 3}
    assert cfg["experiments"] == {"x": {}, "y": {}} and cfg["onion"] == {"enabled": True}
    with pytest.raises(ValueError, match="missing.yaml"):
        lc.resolve_inherit({"inherit": "config/missing.yaml"})


def schema_error(mutate) -> str:
    cfg = base_config()
    mutate(cfg)
    with pytest.raises(ValueError) as info:
        lc.validate(cfg)
    return str(info.value)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda c: c["train"].update(epoch=3),
            "train: Additional properties are not allowed ('epoch' was unexpected); "
            "did you mean 'epochs'?",
        ),
        (
            lambda c: c["experiments"]["tiny"].update(model={"widht": 8}),
            "experiments.tiny.model: Additional properties are not allowed ('widht' was "
            "unexpected); did you mean 'width'?",
        ),
        (
            lambda c: c.update(trian={}),
            "(top level): Additional properties are not allowed ('trian' was unexpected); "
            "did you mean 'train'?",
        ),
    ],
    ids=["train.epoch", "experiments.tiny.model.widht", "trian"],
)
def test_an_unknown_key_suggests_the_key_it_is_a_typo_of(mutate, message):
    assert schema_error(mutate) == message


def test_unknown_keys_without_a_close_key_list_the_allowed_ones():
    message = schema_error(lambda c: c["mia"].update(n_split=5, zzz=1))
    assert "did you mean 'n_splits' for 'n_split'?" in message
    allowed = message.split("; allowed here: ", 1)[1].split(", ")
    assert allowed == sorted(lc.section_schema("mia")["properties"])


def tiny_dataset(y: np.ndarray):
    from lood.data.readers import Dataset

    x = np.arange(len(y) * 4, dtype=np.float32).reshape(len(y), 4)
    return Dataset(x, y, x[:0], y[:0], image_shape=(4,), name="npz")


def test_an_unbalanced_dataset_suggests_the_schema_key_that_draws_without_balancing():
    from lood.data.split import make_split

    y = np.array([0] * 3 + [1] * 17)
    with pytest.raises(ValueError) as info:
        make_split(tiny_dataset(y), [0, 1], n_train=10, n_test=2)
    assert str(info.value).startswith(
        "data.n_train=10 needs 5 records of class index 0 (class balanced) but the train pool "
        "has only 3; set data.balanced: false to draw them from all 20 records of these classes"
    )
    assert lc.section_schema("data")["properties"]["balanced"]["type"] == "boolean"
    split = make_split(tiny_dataset(y), [0, 1], n_train=10, n_test=2, balanced=False)
    assert len(split.y_train) == 10  # the suggestion works
    with pytest.raises(ValueError) as info:  # too few records in all: balancing is not the cause
        make_split(tiny_dataset(y), [0, 1], n_train=21, n_test=2)
    assert "data.balanced" not in str(info.value)


def test_string_labels_say_how_to_encode_them(tmp_path):
    y = np.array(["malignant", "benign"] * 5)
    np.savez(tmp_path / "own.npz", x=np.zeros((10, 4)), y=y)
    cfg = base_config()
    cfg["data"].update(dataset="npz", path="own.npz", classes=[0, 1], n_train=6, n_test=2)
    cfg["differ"]["n"] = 2
    cfg["train"]["batch_size"] = 4
    with pytest.raises(ValueError) as info:
        lc.check_config(cfg, base_dir=tmp_path)
    message = str(info.value)
    assert message.startswith(
        f"data.path: {str(tmp_path / 'own.npz')!r} has string labels y "
        "('benign' -> 0, 'malignant' -> 1); data.classes are integer labels as they appear in y"
    )
    assert "names, y = np.unique(y, return_inverse=True)" in message
    names, encoded = np.unique(y, return_inverse=True)  # the recipe of the message
    np.savez(tmp_path / "own.npz", x=np.zeros((10, 4)), y=encoded)
    lc.check_config(cfg, base_dir=tmp_path)
    assert names[encoded[0]] == "malignant"

    cfg["data"]["classes"] = ["benign", "malignant"]
    with pytest.raises(ValueError) as info:
        lc.validate(cfg)
    assert str(info.value).startswith(
        "data.classes.0: 'benign' is not of type 'integer'; data.classes are integer labels as "
        "they appear in y; for a dataset with string labels encode y first: names, y = "
        "np.unique(y, return_inverse=True)"
    )


def test_nngp_depth_defaults_to_the_model_and_changes_only_the_kernels_depth():
    """nngp.depth null (the default) keeps the model's depth, so default outputs stay as they
    were; a number replaces the depth of the kernels' model and nothing else."""
    from lood.nngp.spec import NNGPSpec

    cfg = lc.with_defaults({"data": {}, "model": {"depth": 9}})
    model = cfg["model"]
    assert cfg["nngp"]["depth"] is None
    assert NNGPSpec.from_config(cfg["nngp"]).kernel_model(model) == model
    shallow = NNGPSpec.from_config(cfg["nngp"] | {"depth": 2}).kernel_model(model)
    assert shallow == model | {"depth": 2} and model["depth"] == 9
    with pytest.raises(ValueError, match="depth"):
        lc.validate(lc.with_defaults(base_config() | {"nngp": {"depth": -1}}))


def test_check_config_warns_of_a_tiny_last_batch_unless_drop_last(tmp_path, recwarn):
    """|D| = 60 in batches of 16 leaves 12 / 11 (in / out models): no warning; batches of 59
    leave 1 / 0, below batch_size / 10: a warning naming the key; drop_last silences it."""
    lc.check_config(base_config(), base_dir=tmp_path)
    assert not [w for w in recwarn if "last" in str(w.message)]
    cfg = base_config()
    cfg["train"].update(batch_size=58)  # 60 % 58 = 2, 59 % 58 = 1: below 5.8
    with pytest.warns(
        UserWarning, match=r"train\.batch_size: .* last mini-batch of 1 record.*drop_last"
    ):
        lc.check_config(cfg, base_dir=tmp_path)
    cfg["train"].update(batch_size=52)  # 8 and 7 records: above 5.2
    lc.check_config(cfg, base_dir=tmp_path)
    cfg["train"].update(batch_size=58, drop_last=True)
    lc.check_config(cfg, base_dir=tmp_path)
    assert not [w for w in recwarn if "last mini-batch" in str(w.message)]
    assert lc.small_last_batch(450, 64) == 1 and lc.small_last_batch(500, 64) == 0

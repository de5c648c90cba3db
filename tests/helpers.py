"""Shared test helpers: the repository's paths, typed settings from the partial dicts the tests
write, and running the workflow through the ``snakemake`` CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

import lood.config as lc
from lood.arch import Architecture
from lood.privacy.spec import MiaSpec
from lood.train.spec import TrainSpec

REPO = Path(__file__).resolve().parents[1]  # the repository's root
TINY = REPO / "tests" / "configs" / "tiny.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]
#: The plot rules of the tiny config: what a plot-only change (e.g. plots.dpi) reruns.
PLOT_RULES = frozenset(
    {
        "plot_correlation",
        "plot_lood_all",
        "plot_memorization",
        "plot_landscape",
        "plot_query",
        "plot_influence",
        "plot_audit",
        "plot_inversion",
        "plot_attacks",
    }
)


def snakemake(workdir: Path, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONWARNINGS": "ignore::DeprecationWarning"}
    return subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), "--configfile", str(config), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )


def write_config(path: Path, mutate=None) -> Path:
    cfg = yaml.safe_load(TINY.read_text())
    if mutate:
        mutate(cfg)
    path.write_text(yaml.safe_dump(cfg))
    return path


def planned_rules(proc: subprocess.CompletedProcess[str]) -> set[str]:
    """Rule names in the 'Job stats' table of a dry run."""
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return set()
    table = text.split("Job stats:", 1)[1]
    return {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+\s*$", table, re.M)} - {"total"}


def train_spec(train: dict[str, Any]) -> TrainSpec:
    """A ``train`` section with the schema's defaults for every key ``train`` leaves out."""
    return TrainSpec.from_config(lc.deep_merge(lc.section_defaults("train"), train))


def mia_spec(**mia: Any) -> MiaSpec:
    """A ``mia`` section: the schema's defaults (50 splits, seed 0, margin), then ``mia``."""
    return MiaSpec.from_config(lc.section_defaults("mia") | mia)


def make_job(
    split: Any,
    model: dict[str, Any] | Architecture,
    train: dict[str, Any],
    where: str = "test",
    threads: int = 1,
) -> Any:
    """A training job (:func:`lood.jobs.training.start_job`) on ``split`` with partial settings."""
    from lood.jobs.training import start_job

    arch = (
        model
        if isinstance(model, Architecture)
        else Architecture.from_config(model, split.n_classes)
    )
    return start_job(split, arch, train_spec(train), where, threads)


def split_of(x: Any, y: Any, n_test: int = 5) -> Any:
    """A :class:`lood.data.split.Split` of the arrays ``x`` [N, d] and labels ``y`` [N]."""
    import numpy as np

    from lood.data.split import Split

    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    return Split(
        x_train=x,
        y_train=y,
        x_test=x[:n_test],
        y_test=y[:n_test],
        train_source_idx=np.arange(len(y)),
        test_source_idx=np.arange(n_test),
        image_shape=(x.shape[1],),
        classes=tuple(range(int(y.max()) + 1)),
    )


def job_for(arch: Architecture, tcfg: Any, x: Any, y: Any, **train: Any) -> Any:
    """A job training ``arch`` with the optimisation settings ``tcfg`` on ``x``, ``y``."""
    keys = (
        "epochs",
        "lr",
        "batch_size",
        "optimizer",
        "momentum",
        "weight_decay",
        "loss",
        "lr_schedule",
        "lr_milestones",
        "lr_gamma",
        "shuffle",
    )
    settings = {k: getattr(tcfg, k) for k in keys}
    return make_job(split_of(x, y), arch, settings | {"device": "cpu"} | train)


def write_cifar_raw(
    root: Path, per_batch: int = 2, n_test: int = 3, n_classes: int = 10
) -> tuple[Any, ...]:
    """Small CIFAR-10 batches pickled like the real ones (protocol 2, dict of bytes keys); random
    pixels, labels drawn from the first ``n_classes`` classes."""
    import pickle

    import numpy as np

    rng = np.random.default_rng(1)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train_imgs, train_lbls = [], []
    for name, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        imgs = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)  # channels last
        labels = rng.integers(0, n_classes, size=n).tolist()
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels,
            b"data": imgs.transpose(0, 3, 1, 2).reshape(n, 3072),  # R plane, G plane, B plane
            b"filenames": [f"img{i}.png".encode() for i in range(n)],
        }
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh, protocol=2)
        if name == "test_batch":
            test = (imgs, np.array(labels))
        else:
            train_imgs.append(imgs)
            train_lbls.extend(labels)
    return np.concatenate(train_imgs), np.array(train_lbls), *test

"""Shared test helpers: typed settings from the partial dicts the tests write."""

from __future__ import annotations

from typing import Any

import lood.config as lc
from lood.arch import Architecture
from lood.train.spec import TrainSpec


def train_spec(train: dict[str, Any]) -> TrainSpec:
    """A ``train`` section with the schema's defaults for every key ``train`` leaves out."""
    return TrainSpec.from_config(lc.deep_merge(lc.section_defaults("train"), train))


def make_job(split: Any, model: dict[str, Any] | Architecture, train: dict[str, Any],
             where: str = "test", threads: int = 1) -> Any:  # fmt: skip
    """A training job (:func:`lood.train.jobs.start_job`) on ``split`` with partial settings."""
    from lood.train.jobs import start_job

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
    return Split(x_train=x, y_train=y, x_test=x[:n_test], y_test=y[:n_test],
                 train_source_idx=np.arange(len(y)), test_source_idx=np.arange(n_test),
                 image_shape=(x.shape[1],), classes=tuple(range(int(y.max()) + 1)))  # fmt: skip


def job_for(arch: Architecture, tcfg: Any, x: Any, y: Any, **train: Any) -> Any:
    """A job training ``arch`` with the optimisation settings ``tcfg`` on ``x``, ``y``."""
    keys = ("epochs", "lr", "batch_size", "optimizer", "momentum", "weight_decay", "loss",
            "lr_schedule", "lr_milestones", "lr_gamma")  # fmt: skip
    settings = {k: getattr(tcfg, k) for k in keys}
    return make_job(split_of(x, y), arch, settings | {"device": "cpu"} | train)

"""The jobs layer's shared prologue: the log exists before torch is imported, and the job it
builds is the one the rule describes (logger ``lood.<rule>``, the ``where`` of its messages)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
from helpers import split_of

import lood.config as lc

# Run in a fresh interpreter (this one has torch loaded already): a finder on sys.meta_path
# records what the log file holds at the moment anything first imports torch.
PROLOGUE = textwrap.dedent(
    """
    import importlib.abc, json, pathlib, sys
    from types import SimpleNamespace

    log_path, split_path, model, train = sys.argv[1:5]
    seen = {}

    class Spy(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "torch" and "log" not in seen:
                log = pathlib.Path(log_path)
                seen["log"] = log.read_text() if log.exists() else None
            return None

    sys.meta_path.insert(0, Spy())
    from lood.jobs import job_from_snakemake

    seen["torch_after_import"] = "torch" in sys.modules
    sm = SimpleNamespace(
        log=[log_path], rule="train_out", wildcards=SimpleNamespace(experiment="relu"),
        input=SimpleNamespace(split=split_path), threads=1, resources={},
        params=SimpleNamespace(model=json.loads(model), train=json.loads(train)),
    )
    job = job_from_snakemake(sm, "out models, shard 3")
    seen |= {"where": job.where, "device": job.device, "logger": job.log.name}
    print(json.dumps(seen))
    """
)


def test_job_from_snakemake_opens_the_log_before_torch(tmp_path):
    split = split_of(np.zeros((6, 3)), np.array([0, 1] * 3))
    split.save(tmp_path / "split.npz")
    model = lc.section_defaults("model") | {"width": 4, "depth": 1}
    train = lc.section_defaults("train") | {
        "device": "cpu",
        "epochs": 1,
        "lr": 0.1,
        "batch_size": 2,
    }
    log = tmp_path / "logs" / "train_out.log"
    args = [str(log), str(tmp_path / "split.npz"), json.dumps(model), json.dumps(train)]
    run = subprocess.run([sys.executable, "-c", PROLOGUE, *args], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["torch_after_import"] is False  # importing the prologue loads no torch
    assert seen["log"] is not None and "lood.train_out: job started; loading torch" in seen["log"]
    assert seen["where"] == "experiment 'relu', out models, shard 3"
    assert seen["device"] == "cpu" and seen["logger"] == "lood.train_out"
    assert "device (train.device: cpu): cpu" in log.read_text()

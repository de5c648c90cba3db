"""benchmarks/gpu_check.py --smoke: the prepared GPU measurement runs end to end on a CPU (tiny
sizes), so it cannot rot between the rare sessions that have a GPU."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
from helpers import REPO

ROOT = REPO


def test_gpu_check_smoke_writes_its_figures(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "gpu_check.py"),
            "--smoke",
            "--no-install",
            "--budget-s",
            "120",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    report = json.loads(out.read_text())
    assert report["smoke"] and report["install"] == "skipped"
    train, nngp = report["train"], report["nngp"]
    assert "error" not in train and "error" not in nngp, (train, nngp)
    # the loop and the ensemble took the same optimizer steps per model (an honest comparison)
    assert train["loop_steps_per_model"] == train["ensemble_steps_per_model"] > 0
    assert train["loop_models_timed"] >= 1 and train["k"] == 4
    for key in ("ensemble_models_per_s", "loop_models_per_s", "speedup_ensemble_over_loop"):
        assert math.isfinite(train[key]) and train[key] > 0, key
    assert math.isclose(
        train["speedup_ensemble_over_loop"],
        train["ensemble_models_per_s"] / train["loop_models_per_s"],
    )
    assert train["device"].startswith(("cpu", "cuda"))
    assert nngp["n"] == 128 and nngp["finite"] and nngp["kernel_s"] >= 0
    assert report["versions"]["torch"] and report["versions"]["jax"] == "0.5.3"
    assert "models/s" in done.stdout and "SMOKE RUN" in done.stdout
    assert isinstance(train["cuda_libraries_loaded"], dict) and "jax_cuda_plugin" in nngp
    assert nngp["expected_backend"].startswith("gpu" if nngp["jax_cuda_plugin"] else "cpu")


def _run(tmp_path, *args):
    out = tmp_path / "gpu_check.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "gpu_check.py"),
            "--no-install",
            "--out",
            str(out),
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    return done, json.loads(out.read_text())


def test_torch_on_the_cpu_fails_with_its_traceback_in_the_json(tmp_path):
    """Outside --smoke a torch that falls back to the CPU is a failure, not a slow measurement;
    the part's traceback reaches the JSON. Only the ensemble part runs (--parts train)."""
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: the CPU fallback cannot be shown here")
    done, report = _run(tmp_path, "--parts", "train", "--budget-s", "60")
    assert done.returncode == 1
    assert "FAILED train" in done.stdout and "torch runs on the CPU" in done.stdout
    assert "torch runs on the CPU" in report["train"]["error"]
    assert (
        "Traceback" in report["train"]["traceback"] and "part_train" in report["train"]["traceback"]
    )
    assert report["nngp"] == {"skipped": "not asked for (--parts)"}
    assert report["install"] == "skipped" and report["install_s"] >= 0

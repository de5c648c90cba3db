"""train.device and the JAX backend: which device a job names, and the warnings when a GPU was
given (resources or scheduler variables) but cannot be used. CUDA is faked with monkeypatch, so
these run on CPU-only machines; the real GPU run is benchmarks/gpu_check.py."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers import split_of, train_spec

import lood.config as lc
from lood.arch import Architecture
from lood.devices import GPU_VARIABLES, gpu_assignment
from lood.jobs.training import start_job
from lood.train.device import pick_device


@pytest.fixture
def no_gpu_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No scheduler variable names a GPU, whatever the machine running the tests sets."""
    for name in GPU_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def log() -> logging.Logger:
    """A logger outside ``lood`` (setup_logging stops ``lood`` from propagating to caplog)."""
    return logging.getLogger("test_devices")


def fake_cuda(monkeypatch: pytest.MonkeyPatch, available: bool, build: str | None) -> None:
    """torch.cuda as on a machine with (available) or without a usable H200; ``build``: the
    CUDA version torch was built for, None for a CPU-only build."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.version, "cuda", build)
    props = SimpleNamespace(name="NVIDIA H200", total_memory=141 * 2**30)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: props)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, None),
        ({"CUDA_VISIBLE_DEVICES": ""}, None),
        ({"CUDA_VISIBLE_DEVICES": "-1"}, None),
        ({"CUDA_VISIBLE_DEVICES": "NoDevFiles"}, None),
        ({"SLURM_GPUS_ON_NODE": "0"}, None),
        ({"CUDA_VISIBLE_DEVICES": "0"}, "CUDA_VISIBLE_DEVICES=0"),
        ({"SLURM_GPUS_ON_NODE": "1"}, "SLURM_GPUS_ON_NODE=1"),
        ({"SLURM_JOB_GPUS": "2,3", "CUDA_VISIBLE_DEVICES": "0,1"}, "SLURM_JOB_GPUS=2,3"),
    ],
)
def test_gpu_assignment_reads_scheduler_variables(env, expected):
    assert gpu_assignment(0, env) == expected


def test_gpu_assignment_resources_request_first():
    assert gpu_assignment(1, {}) == "its resources request 1 GPU(s)"


def test_auto_on_cpu_machine_logs_cpu_and_does_not_warn(monkeypatch, caplog, no_gpu_env, log):
    fake_cuda(monkeypatch, available=False, build=None)
    with caplog.at_level(logging.INFO, logger=log.name):
        assert pick_device("auto", 0, log) == "cpu"
    assert [r.levelname for r in caplog.records] == ["INFO"]
    assert "device (train.device: auto): cpu" in caplog.text


@pytest.mark.parametrize(
    "gpus, env, given",
    [(1, {}, "its resources request 1 GPU"), (0, {"SLURM_JOB_GPUS": "0"}, "SLURM_JOB_GPUS=0")],
)
def test_auto_warns_when_given_gpu_is_unusable(
    monkeypatch, caplog, no_gpu_env, log, gpus, env, given
):
    fake_cuda(monkeypatch, available=False, build=None)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with caplog.at_level(logging.INFO, logger=log.name):
        assert pick_device("auto", gpus, log) == "cpu"
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert given in warnings[0] and "CPU-only build" in warnings[0]


def test_auto_warning_names_driver_when_torch_has_cuda(monkeypatch, caplog, no_gpu_env, log):
    fake_cuda(monkeypatch, available=False, build="13.0")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with caplog.at_level(logging.INFO, logger=log.name):
        pick_device("auto", 0, log)
    assert "finds no usable GPU" in caplog.text and "CUDA 13.0" in caplog.text


def test_auto_with_cuda_names_gpu_and_memory(monkeypatch, caplog, log):
    fake_cuda(monkeypatch, available=True, build="13.0")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with caplog.at_level(logging.INFO, logger=log.name):
        assert pick_device("auto", 1, log) == "cuda"
    assert [r.levelname for r in caplog.records] == ["INFO"]
    assert "cuda:0 (NVIDIA H200, 141.0 GiB" in caplog.text


def test_cuda_requested_without_cuda_is_an_error_naming_the_setting(monkeypatch, no_gpu_env, log):
    fake_cuda(monkeypatch, available=False, build=None)
    with pytest.raises(RuntimeError, match=r"train\.device is 'cuda'.*CPU-only build"):
        pick_device("cuda", 0, log)
    with pytest.raises(RuntimeError, match=r"influence\.device is 'cuda'"):
        pick_device("cuda", 0, log, setting="influence.device")


def test_explicit_cpu_with_a_given_gpu_warns_it_stays_idle(monkeypatch, caplog, no_gpu_env, log):
    fake_cuda(monkeypatch, available=True, build="13.0")
    with caplog.at_level(logging.INFO, logger=log.name):
        assert pick_device("cpu", 1, log) == "cpu"
    assert "stays idle" in caplog.text


def test_start_job_passes_the_gpu_request(monkeypatch, caplog, no_gpu_env, log):
    fake_cuda(monkeypatch, available=False, build=None)
    split = split_of(np.zeros((6, 3)), np.array([0, 1] * 3))
    model = lc.section_defaults("model") | {"width": 4, "depth": 1}
    arch = Architecture.from_config(model, split.n_classes)
    with caplog.at_level(logging.INFO, logger=log.name):
        job = start_job(
            split,
            arch,
            train_spec({"device": "auto", "epochs": 1, "lr": 0.1, "batch_size": 2}),
            "test",
            logger=log,
            gpus=1,
        )
    assert job.device == "cpu"
    assert "its resources request 1 GPU" in caplog.text


def test_jax_devices_logged_and_warned(caplog, log):
    from lood.nngp.kernel import log_jax_devices

    with caplog.at_level(logging.INFO, logger=log.name):
        backend = log_jax_devices(log, env={})
    assert backend == "cpu"  # CI and this machine: jaxlib's CPU backend
    assert [r.levelname for r in caplog.records] == ["INFO"]
    assert "backend cpu, devices" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=log.name):
        log_jax_devices(log, env={"SLURM_GPUS_ON_NODE": "1"})
    assert "JAX runs on the CPU although the job was given a GPU (SLURM_GPUS_ON_NODE=1)" in (
        caplog.text
    )

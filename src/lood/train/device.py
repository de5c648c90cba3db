"""The torch side of device choice: which device ``train.device`` (or ``influence.device``)
names, that device in words, and why CUDA is unusable when it is.

:mod:`lood.devices` (no torch) says whether the job was meant to have a GPU; this module
compares that with what torch can use. It sits in the training stage, the lowest package with
torch, because the training jobs and the influence scripts both pick their device here.
"""

from __future__ import annotations

import logging
import os

import torch

from lood.devices import gpu_assignment


def cuda_unavailable_reason() -> str:
    """Why torch cannot use CUDA here, in words (for warnings and errors)."""
    if torch.version.cuda is None:
        return (
            f"torch {torch.__version__} is a CPU-only build; install the CUDA build: "
            "make install GPU=1 (README, Installing)"
        )
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    hint = f", CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else ""
    return (
        f"torch {torch.__version__} (CUDA {torch.version.cuda}) finds no usable GPU: no "
        f"device, or an NVIDIA driver too old for CUDA {torch.version.cuda}{hint}"
    )


def describe_device(device: str) -> str:
    """The device in words: for CUDA the GPU's name and memory, else the CPU and its threads."""
    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        props = torch.cuda.get_device_properties(index)
        return (
            f"cuda:{index} ({props.name}, {props.total_memory / 2**30:.1f} GiB; "
            f"{torch.cuda.device_count()} visible; torch {torch.__version__}, "
            f"CUDA {torch.version.cuda})"
        )
    return f"{device} ({torch.get_num_threads()} threads; torch {torch.__version__})"


def pick_device(
    device: str,
    gpus: int = 0,
    log: logging.Logger | None = None,
    setting: str = "train.device",
) -> str:
    """Resolve ``setting`` (auto | cpu | cuda) and name the device in one INFO line.

    ``auto`` -> cuda when torch can use it, else cpu; an explicit cuda without CUDA is an error
    naming the setting. When the job was given a GPU (``gpus``, its resources' GPUs, or the
    scheduler's variables: :func:`lood.devices.gpu_assignment`) but runs on the CPU, it warns:
    that job would otherwise only be mysteriously slow.
    """
    log = log or logging.getLogger("lood.train")
    cuda = torch.cuda.is_available()
    if device == "cuda" and not cuda:
        raise RuntimeError(
            f"{setting} is 'cuda' but torch cannot use CUDA: {cuda_unavailable_reason()}. "
            f"Set {setting}: auto (falls back to the CPU) or cpu."
        )
    chosen = ("cuda" if cuda else "cpu") if device == "auto" else device
    given = gpu_assignment(gpus)
    if chosen == "cpu" and given and device == "auto":
        log.warning(
            "%s: auto chose the CPU although the job was given a GPU (%s): %s",
            setting,
            given,
            cuda_unavailable_reason(),
        )
    elif chosen == "cpu" and given:
        log.warning(
            "%s is 'cpu' although the job was given a GPU (%s): it stays idle", setting, given
        )
    log.info("device (%s: %s): %s", setting, device, describe_device(chosen))
    return chosen

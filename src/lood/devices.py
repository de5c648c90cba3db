"""Whether a job was meant to have a GPU, from its resources and its scheduler's variables.

No torch or jax here: :func:`lood.train.device.pick_device` (PyTorch jobs) and
:func:`lood.nngp.kernel.log_jax_devices` (JAX jobs) compare the answer with what their framework
can actually use, and warn when a GPU was given but cannot be used (a CPU build of torch or
jaxlib, a missing driver): otherwise that shows only as a job many times slower than planned.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# Variables a scheduler sets when it gives a job GPUs; SLURM sets the first three (with --gpus)
# and usually CUDA_VISIBLE_DEVICES too. Checked in this order.
GPU_VARIABLES = ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "SLURM_GPUS_ON_NODE", "CUDA_VISIBLE_DEVICES")
# Values meaning "no GPU": unset or empty, CUDA's "hide every device", SLURM's placeholder; a
# count of zero for SLURM_GPUS_ON_NODE (elsewhere "0" is GPU number 0).
NO_GPU_VALUES = frozenset({"", "-1", "NoDevFiles"})


def gpu_assignment(requested: int = 0, env: Mapping[str, str] | None = None) -> str | None:
    """Why this job should have a GPU, in words, or None when nothing says it should.

    ``requested``: the GPUs of the job's resources (Snakemake's ``resources.gpu``, which the
    workflow sets for the PyTorch rules placed on a GPU partition); ``env``: default
    ``os.environ``. ``CUDA_VISIBLE_DEVICES=0`` names GPU 0 and counts; ``SLURM_GPUS_ON_NODE=0``
    does not.
    """
    if int(requested or 0) > 0:
        return f"its resources request {int(requested)} GPU(s)"
    env = os.environ if env is None else env
    for name in GPU_VARIABLES:
        value = env.get(name, "").strip()
        if value not in NO_GPU_VALUES and not (name == "SLURM_GPUS_ON_NODE" and value == "0"):
            return f"{name}={value}"
    return None

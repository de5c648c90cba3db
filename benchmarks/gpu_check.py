"""One prepared GPU measurement: batched ensemble vs per-model loop at paper scale, NNGP kernel.

    python benchmarks/gpu_check.py                 # on a CUDA machine, ~5-8 min on one H200
    python benchmarks/gpu_check.py --parts train   # the ensemble part alone (a torch-only node)
    python benchmarks/gpu_check.py --smoke         # tiny sizes on any machine (CPU), seconds

Measures, on the device ``train.device: auto`` picks (logged by ``lood.train.device.pick_device``):

* ``train``: K models (default 100) of depth 9, width 1024 on N x 3072 synthetic CIFAR-sized
  inputs, 2 classes, cross-entropy, SGD, batch 64, each model on N minus its own record (the out
  models' masks), trained as one batched ensemble by ``lood.train.ensemble.train_ensemble``;
  against a plain per-model loop (``nn.Sequential`` + ``torch.optim.SGD``, one model at a time,
  the same steps) timed on a few models (after one warm-up model) and extrapolated to K. Prints
  models/s for both and their ratio, and torch's peak GPU memory of each.
* ``nngp``: the depth-9 NNGP kernel of N = 10 000 inputs (``lood.nngp.kernel.nngp_kernel``,
  float64, neural-tangents on JAX, blocks of 1000) with its seconds and JAX's peak memory.

Each part runs in its own subprocess (JAX and torch do not share one GPU's memory pools; a part
that overruns is killed), the sizes are first calibrated on a tenth of the work and scaled down
(epochs, then N) so the whole run stays within ``--budget-s``. Writes one JSON of every figure
to ``--out`` (default ``$OUT/gpu_check.json`` when ``$OUT`` is set, else
``benchmarks/out/gpu_check.json``).

Needs the CUDA stack (``make install GPU=1``, or ``pip install -c constraints.txt -e
'.[all,gpu]'``): when torch is a CPU build it runs that pip command first (unless
``--no-install``, e.g. on a node with its own torch; pip's index must be reachable) and starts
the budget's clock only after it. Outside ``--smoke`` it fails (exit 1, a line saying why) when
torch runs on the CPU, or JAX does although a JAX CUDA plugin is installed (without one JAX is
on the CPU by design: README, Installing). Each part records the cuDNN, cuBLAS, NCCL and
cuSPARSE files its process loaded; a part that fails leaves its traceback in the JSON. Without
jax installed the NNGP part is skipped and the summary says so.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import logging
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MARGIN_S = 20.0  # seconds kept back from the budget for start-up, JSON and the summary

FULL = {
    "n": 10000,
    "d": 3072,
    "depth": 9,
    "width": 1024,
    "k": 100,
    "epochs": 5,
    "batch": 64,
    "loop_models": 3,
    "nngp_n": 10000,
    "nngp_block": 1000,
}
SMOKE = {
    "n": 256,
    "d": 64,
    "depth": 2,
    "width": 32,
    "k": 4,
    "epochs": 1,
    "batch": 64,
    "loop_models": 2,
    "nngp_n": 128,
    "nngp_block": 64,
}


# --------------------------------------------------------------------------------------------
# Install check (no torch / jax import in the parent process)
# --------------------------------------------------------------------------------------------
def cuda_stack_missing() -> list[str]:
    """What of the CUDA stack is missing: a CPU-only torch ([] = complete; JAX stays on the CPU
    in the GPU install)."""
    probe = "import torch, sys; sys.exit(0 if torch.version.cuda else 1)"
    if subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode != 0:
        return ["torch with CUDA"]
    return []


def jax_cuda_plugin() -> str | None:
    """The installed JAX CUDA plugin (name and version), None without one."""
    for pkg in ("jax-cuda12-plugin", "jax-cuda13-plugin"):
        try:
            return f"{pkg} {importlib.metadata.version(pkg)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def loaded_cuda_libraries() -> dict[str, list[str]]:
    """cuDNN, cuBLAS(Lt), NCCL and cuSPARSE(Lt) files this process has mapped (Linux), by
    library: which build each framework actually loaded, whatever its version says."""
    found: dict[str, set[str]] = {}
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return {}
    for line in maps:
        path = line.split()[-1] if "/" in line else ""
        name = Path(path).name
        for lib in (
            "libcudnn",
            "libcublasLt",
            "libcublas",
            "libnccl",
            "libcusparseLt",
            "libcusparse",
        ):
            if name.startswith(lib + ".") or name.startswith(lib + "_"):
                found.setdefault(lib, set()).add(path)
                break
    return {lib: sorted(paths) for lib, paths in sorted(found.items())}


def ensure_cuda_stack(log: logging.Logger) -> str:
    """Install the ``gpu`` extra when something is missing; returns what was done, in words."""
    missing = cuda_stack_missing()
    if not missing:
        return "present"
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "-c",
        str(ROOT / "constraints.txt"),
        "-e",
        f"{ROOT}[all,gpu]",
    ]
    log.info("missing %s: running %s", ", ".join(missing), " ".join(cmd))
    done = subprocess.run(cmd)
    if done.returncode != 0:
        return f"pip install failed (exit {done.returncode}); missing {', '.join(missing)}"
    return f"installed (was missing {', '.join(missing)})"


# --------------------------------------------------------------------------------------------
# Part: training (subprocess)
# --------------------------------------------------------------------------------------------
def synthetic(n: int, d: int, seed: int = 0) -> tuple[Any, Any]:
    """CIFAR-sized standardised inputs and balanced binary labels (the cost does not depend on
    the values)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen)
    y = torch.arange(n) % 2
    return x, y


def plain_model(arch: Any, d: int, device: str) -> Any:
    """One network as nn.Sequential: d -> width (x depth, relu) -> n_outputs."""
    import torch

    dims = [d] + [arch.width] * arch.depth + [arch.n_outputs]
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(torch.nn.Linear(a, b, bias=arch.has_bias))
        if i < arch.depth:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers).to(device)


def plain_fit(arch: Any, x: Any, y: Any, drop: int, epochs: int, batch: int, lr: float) -> int:
    """Train one model on x minus record ``drop`` with torch.optim.SGD; returns its steps."""
    import torch

    keep = torch.ones(len(y), dtype=torch.bool, device=x.device)
    keep[drop] = False
    xs, ys = x[keep], y[keep]
    model = plain_model(arch, x.shape[1], str(x.device))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    steps = 0
    for _ in range(epochs):
        perm = torch.randperm(len(ys), device=x.device)
        for i in range(0, len(ys), batch):
            idx = perm[i : i + batch]
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(xs[idx]), ys[idx]).backward()
            opt.step()
            steps += 1
    return steps


def part_train(
    cfg: dict[str, Any], budget_s: float, log: logging.Logger, save: Callable[[dict], None]
) -> dict[str, Any]:
    """Batched ensemble vs per-model loop; sizes scaled to ``budget_s``; ``save`` keeps the
    figures so far (the ensemble's) in case the loop is killed."""
    import torch

    from lood.arch import Architecture
    from lood.train.device import describe_device, pick_device
    from lood.train.ensemble import train_ensemble
    from lood.train.primitives import EnsembleOptions
    from lood.train.spec import TrainConfig

    t_start = time.perf_counter()
    device = pick_device("auto", log=log)
    cuda = device == "cuda"
    if not cuda and not cfg["smoke"]:
        from lood.train.device import cuda_unavailable_reason

        raise RuntimeError(f"torch runs on the CPU, not a GPU: {cuda_unavailable_reason()}")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def left() -> float:
        return budget_s - (time.perf_counter() - t_start)

    arch = Architecture(
        depth=cfg["depth"],
        width=cfg["width"],
        activation="relu",
        W_std=2**0.5,
        b_std=0.0,
        parameterization="standard",
        n_outputs=2,
    )
    k, n, epochs, batch, lr = cfg["k"], cfg["n"], cfg["epochs"], cfg["batch"], 0.01
    x_cpu, y_cpu = synthetic(n, cfg["d"])

    def ensemble(n_rec: int, n_epochs: int, n_models: int) -> tuple[float, Any]:
        masks = torch.ones(n_models, n_rec, dtype=torch.bool)
        masks[torch.arange(n_models), torch.arange(n_models) % n_rec] = False  # out-model masks
        tcfg = TrainConfig(epochs=n_epochs, lr=lr, batch_size=batch, loss="cross_entropy")
        sync()
        t0 = time.perf_counter()
        res = train_ensemble(
            arch,
            tcfg,
            x_cpu[:n_rec],
            y_cpu[:n_rec],
            masks,
            list(range(n_models)),
            EnsembleOptions(device=device, chunk_size=n_models),
        )
        sync()
        return time.perf_counter() - t0, res

    ensemble(min(n, 4 * batch), 1, 2)  # warm-up: CUDA context, cuBLAS handles, allocator
    # calibration: all K models, one epoch on a tenth of the records
    n_cal = max(batch, n // 10)
    t_cal, _ = ensemble(n_cal, 1, k)
    per_epoch = t_cal * n / n_cal
    share = 0.6 * max(left(), 1.0)  # the ensemble gets at most 60 % of what is left
    scaled = []
    if per_epoch * epochs > share:
        epochs = max(1, int(share // per_epoch))
        scaled.append(f"epochs -> {epochs}")
        if per_epoch > share:
            n = max(batch, int(n * share / per_epoch))
            scaled.append(f"n -> {n}")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t_ens, res = ensemble(n, epochs, k)
    steps_ens = int(res.n_updates.max())
    log.info(
        "ensemble: %d models x %d epochs on N=%d in %.2fs (%s)",
        k,
        epochs,
        n,
        t_ens,
        res.extra.get("first_layer"),
    )
    report = {
        "device": describe_device(device),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "n": n,
        "d": cfg["d"],
        "depth": arch.depth,
        "width": arch.width,
        "k": k,
        "epochs": epochs,
        "batch": batch,
        "loss": "cross_entropy",
        "optimizer": "sgd",
        "lr": lr,
        "scaled_down": scaled,
        "calibration_s": round(t_cal, 3),
        "ensemble_first_layer": res.extra.get("first_layer"),
        "ensemble_s": round(t_ens, 3),
        "ensemble_steps_per_model": steps_ens,
        "ensemble_models_per_s": k / t_ens,
        "ensemble_peak_gpu_bytes": torch.cuda.max_memory_allocated() if cuda else None,
    }
    save(report)  # kept if the loop overruns the budget
    del res
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()

    # per-model loop: a warm-up model (which also predicts a model's time), then up to
    # loop_models timed ones; with too little budget left, fewer epochs each, extrapolated to
    # the ensemble's epochs (a model's time is linear in its steps)
    x, y = x_cpu[:n].to(device), y_cpu[:n].to(device)
    sync()
    t0 = time.perf_counter()
    warm_steps = plain_fit(arch, x[: 4 * batch], y[: 4 * batch], 0, 1, batch, lr)
    sync()
    predicted = (time.perf_counter() - t0) / warm_steps * steps_ens  # an overestimate
    loop_epochs = epochs
    if predicted > 0.5 * (left() - MARGIN_S):
        loop_epochs = max(1, min(epochs, int(epochs * 0.5 * (left() - MARGIN_S) / predicted)))
        if loop_epochs < epochs:
            scaled.append(f"loop epochs -> {loop_epochs}, times x {epochs}/{loop_epochs}")
    loop_times, steps_loop = [], 0
    for j in range(cfg["loop_models"]):
        if loop_times and left() < 2 * max(loop_times) + MARGIN_S:
            scaled.append(f"loop stopped after {len(loop_times)} models (budget)")
            break
        sync()
        t0 = time.perf_counter()
        steps_loop = plain_fit(arch, x, y, j, loop_epochs, batch, lr)
        sync()
        loop_times.append((time.perf_counter() - t0) * epochs / loop_epochs)
    per_model = sum(loop_times) / len(loop_times)
    report.update(
        {
            "loop_models_timed": len(loop_times),
            "loop_epochs_run": loop_epochs,
            "loop_s_per_model": [round(t, 3) for t in loop_times],
            "loop_steps_per_model": steps_loop * epochs // loop_epochs,
            "loop_models_per_s": 1.0 / per_model,
            "loop_s_for_k_extrapolated": round(per_model * k, 1),
            "loop_peak_gpu_bytes": torch.cuda.max_memory_allocated() if cuda else None,
            "speedup_ensemble_over_loop": per_model * k / t_ens,
            "cuda_libraries_loaded": loaded_cuda_libraries(),
            "seconds": round(time.perf_counter() - t_start, 1),
        }
    )
    return report


# --------------------------------------------------------------------------------------------
# Part: NNGP kernel (subprocess)
# --------------------------------------------------------------------------------------------
def part_nngp(
    cfg: dict[str, Any], budget_s: float, log: logging.Logger, save: Callable[[dict], None]
) -> dict[str, Any]:
    """The depth-9 NNGP kernel of N inputs on JAX's default device; N scaled to ``budget_s``."""
    t_start = time.perf_counter()
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # report what it needs
    try:  # neural-tangents imports tensorflow: keep it off the GPU
        import tensorflow as tf

        tf.config.set_visible_devices([], "GPU")
    except Exception as exc:  # noqa: BLE001  (best effort; the kernel does not need it)
        log.info("tensorflow GPU hiding skipped: %s", exc)
    import jax
    import numpy as np

    from lood.arch import Architecture
    from lood.nngp.kernel import log_jax_devices, nngp_kernel

    backend = log_jax_devices(log)
    plugin = jax_cuda_plugin()
    if backend == "cpu" and plugin and not cfg["smoke"]:
        raise RuntimeError(f"JAX runs on the CPU although {plugin} is installed")
    arch = Architecture(
        depth=cfg["depth"],
        width=cfg["width"],
        activation="relu",
        W_std=2**0.5,
        b_std=0.05,
        parameterization="ntk",
        n_outputs=2,
    )
    n, block = cfg["nngp_n"], cfg["nngp_block"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, cfg["d"]))
    # calibration on N/5 (includes compiling the block shape): the cost grows as N^2
    n_cal = max(block, n // 5)
    t0 = time.perf_counter()
    nngp_kernel(arch, x[:n_cal], batch_size=block)
    t_cal = time.perf_counter() - t0
    left = budget_s - (time.perf_counter() - t_start)
    scaled = []
    predicted = t_cal * (n / n_cal) ** 2
    if predicted > 0.8 * left:
        n = max(n_cal, int(n_cal * math.sqrt(max(0.8 * left, 0.0) / t_cal)))
        scaled.append(f"nngp_n -> {n}")
    t0 = time.perf_counter()
    K = nngp_kernel(arch, x[:n], batch_size=block)
    t_kernel = time.perf_counter() - t0
    stats = {}
    try:
        stats = jax.devices()[0].memory_stats() or {}
    except Exception:  # noqa: BLE001  (CPU devices have none)
        stats = {}
    save({"jax": jax.__version__, "backend": backend, "calibration_s": round(t_cal, 3)})
    log.info("NNGP kernel N=%d depth %d in %.2fs on %s", n, arch.depth, t_kernel, backend)
    return {
        "jax": jax.__version__,
        "backend": backend,
        "devices": [str(d) for d in jax.devices()],
        "device_kind": jax.devices()[0].device_kind,
        "n": n,
        "d": cfg["d"],
        "depth": arch.depth,
        "block": block,
        "dtype": str(K.dtype),
        "scaled_down": scaled,
        "calibration_n": n_cal,
        "calibration_s": round(t_cal, 3),
        "kernel_s": round(t_kernel, 3),
        "peak_bytes_in_use": stats.get("peak_bytes_in_use"),
        "bytes_limit": stats.get("bytes_limit"),
        "finite": bool(np.isfinite(K).all()),
        "jax_cuda_plugin": plugin,
        "expected_backend": "gpu"
        if plugin
        else "cpu (no JAX CUDA plugin: the GPU install keeps JAX on the CPU)",
        "cuda_libraries_loaded": loaded_cuda_libraries(),
        "seconds": round(time.perf_counter() - t_start, 1),
    }


PARTS = {"train": part_train, "nngp": part_nngp}


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------
def run_part(name: str, args: argparse.Namespace, budget_s: float, log: logging.Logger) -> dict:
    """Run one part in a subprocess killed at ``budget_s``; its dict, or why there is none."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{name}.json"
        cmd = [
            sys.executable,
            __file__,
            "--part",
            name,
            "--part-out",
            str(out),
            "--budget-s",
            str(budget_s),
        ] + (["--smoke"] if args.smoke else [])
        cmd += ["--set", *args.set] if args.set else []
        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(
                [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]
            ).rstrip(os.pathsep),
        )
        t0 = time.perf_counter()
        try:
            done = subprocess.run(cmd, env=env, timeout=max(budget_s, 1.0) + 10.0)
        except subprocess.TimeoutExpired:
            error = f"killed at its budget ({budget_s + 10:.0f}s)"
        else:
            error = f"exit {done.returncode}" if done.returncode else ""
        result = json.loads(out.read_text()) if out.exists() else {}
        if error and "seconds" in result:  # finished and saved, then stuck in its exit
            result["note"] = f"{error} after its figures were saved"
        elif error:  # what the part saved before it failed (its traceback too), marked
            why = result.pop("failed", "")
            result["error"] = f"{error} after {time.perf_counter() - t0:.0f}s" + (
                f": {why}" if why else ""
            )
        return result


def versions() -> dict[str, str | None]:
    """Installed versions of the packages the check depends on (None: not installed)."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in (
        "torch",
        "jax",
        "jaxlib",
        "jax-cuda12-plugin",
        "jax-cuda12-pjrt",
        "neural-tangents",
        "nvidia-cudnn-cu12",
        "nvidia-cudnn-cu13",
        "nvidia-cublas",
        "nvidia-nccl-cu13",
        "nvidia-cusparse",
    ):
        try:
            found[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            found[pkg] = None
    return found


def cudnn_owner() -> str | None:
    """Which wheel's cuDNN is on disk: nvidia-cudnn-cu12 (left by a jax[cuda12] of an earlier GPU
    install) and -cu13 (torch's) write the same files (nvidia/cudnn/lib), and the one pip
    installed last wins; matched by file size."""
    owners = []
    for pkg in ("nvidia-cudnn-cu12", "nvidia-cudnn-cu13"):
        try:
            dist = importlib.metadata.distribution(pkg)
        except importlib.metadata.PackageNotFoundError:
            continue
        for f in dist.files or []:
            if str(f).endswith("libcudnn_engines_precompiled.so.9"):
                path = Path(str(dist.locate_file(f)))
                if path.exists() and path.stat().st_size == f.size:
                    owners.append(pkg)
    return ", ".join(owners) or None


def default_out() -> Path:
    """$OUT/gpu_check.json on the device machine, else benchmarks/out/gpu_check.json."""
    base = os.environ.get("OUT")
    return Path(base) / "gpu_check.json" if base else ROOT / "benchmarks" / "out" / "gpu_check.json"


def summary(report: dict[str, Any]) -> str:
    """The figures in a few lines (a part that failed shows its error and what it saved)."""
    tr, ng = report["train"], report["nngp"]
    lines = [
        ("SMOKE RUN (tiny sizes: checks the script, measures nothing); " if report["smoke"] else "")
        + f"install: {report['install']}; budget {report['budget_s']}s, "
        f"took {report['seconds']}s"
    ]
    if "skipped" in tr:
        lines.append(f"train: skipped ({tr['skipped']})")
    if "error" in tr:
        lines.append(f"train: {tr['error']}")
    if "ensemble_s" in tr:
        gib = (tr["ensemble_peak_gpu_bytes"] or 0) / 2**30
        lines += [
            f"train on {tr['device']}",
            f"  K={tr['k']} depth {tr['depth']} width {tr['width']} d={tr['d']} N={tr['n']} "
            f"epochs {tr['epochs']} batch {tr['batch']} ({tr['ensemble_steps_per_model']} steps)",
            f"  batched ensemble: {tr['ensemble_s']:.1f}s, {tr['ensemble_models_per_s']:.3g} "
            f"models/s, peak GPU memory {gib:.2f} GiB",
        ]
    if "loop_models_per_s" in tr:
        lines += [
            f"  per-model loop:   {tr['loop_s_per_model']} s/model ({tr['loop_models_timed']} "
            f"timed), {tr['loop_models_per_s']:.3g} models/s -> "
            f"{tr['loop_s_for_k_extrapolated']}s for K (extrapolated)",
            f"  ratio ensemble/loop: {tr['speedup_ensemble_over_loop']:.2f}x",
        ]
    if tr.get("scaled_down"):
        lines.append(f"  scaled down: {tr['scaled_down']}")
    if "skipped" in ng:
        lines.append(f"nngp: skipped ({ng['skipped']})")
    if "error" in ng:
        lines.append(f"nngp: {ng['error']}")
    if "kernel_s" in ng:
        peak = ng["peak_bytes_in_use"]
        lines.append(
            f"nngp: N={ng['n']} depth {ng['depth']} d={ng['d']} on {ng['device_kind']} "
            f"({ng['backend']}): {ng['kernel_s']:.2f}s, JAX peak "
            + (f"{peak / 2**30:.2f} GiB" if peak else "n/a")
            + (f"; scaled down: {ng['scaled_down']}" if ng["scaled_down"] else "")
        )
    for name, part in (("train", tr), ("nngp", ng)):
        libs = part.get("cuda_libraries_loaded")
        if libs is not None:
            lines.append(
                f"{name} loaded: "
                + (
                    "; ".join(f"{lib} {', '.join(paths)}" for lib, paths in libs.items())
                    or "no CUDA libraries"
                )
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (CPU is fine), seconds")
    ap.add_argument(
        "--budget-s",
        type=float,
        default=480.0,
        help="wall-clock limit of the whole check; sizes scale down to fit",
    )
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default: see module doc)")
    ap.add_argument("--no-install", action="store_true", help="never run pip; use what is there")
    ap.add_argument(
        "--parts",
        nargs="+",
        choices=sorted(PARTS),
        default=sorted(PARTS),
        help="which parts to run (default: both; train alone on a torch-only node)",
    )
    ap.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=INT",
        help=f"override sizes ({', '.join(FULL)}), e.g. --set k=50 epochs=3",
    )
    ap.add_argument("--part", choices=sorted(PARTS), help=argparse.SUPPRESS)
    ap.add_argument("--part-out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    log = logging.getLogger("gpu_check")
    cfg = dict(SMOKE if args.smoke else FULL)
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in cfg:
            ap.error(f"--set {item}: unknown size {key!r} (known: {', '.join(cfg)})")
        cfg[key] = int(value)
    cfg["smoke"] = args.smoke
    if args.part:  # inside a subprocess
        saved: dict[str, Any] = {}

        def save(figures: dict) -> None:
            saved.update(figures)
            args.part_out.write_text(json.dumps(saved, indent=2))

        try:
            save(PARTS[args.part](cfg, args.budget_s, log, save))
        except Exception as exc:  # the JSON says what failed and where, not just the exit code
            save({"failed": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})
            log.error("%s failed: %s", args.part, exc)
            return 1
        return 0

    t_install = time.perf_counter()
    install = "skipped" if args.smoke or args.no_install else ensure_cuda_stack(log)
    install_s = round(time.perf_counter() - t_install, 1)
    t0 = time.perf_counter()  # the budget starts after the install
    skipped = {"skipped": "not asked for (--parts)"}
    train, nngp = dict(skipped), dict(skipped)
    kernel = "nngp" in args.parts and importlib.util.find_spec("jax") is not None
    if "nngp" in args.parts and not kernel:
        nngp = {"skipped": "jax is not installed: the ensemble part alone"}
    left = args.budget_s - MARGIN_S
    if "train" in args.parts:  # 70 % of the budget, or all of it without the kernel
        train = run_part("train", args, (0.7 if kernel else 1.0) * left, log)
    if kernel:  # the rest plus what training did not use
        left = args.budget_s - (time.perf_counter() - t0) - MARGIN_S
        nngp = run_part("nngp", args, max(left, 1.0), log)
    report = {
        "smoke": args.smoke,
        "budget_s": args.budget_s,
        "install": install,
        "install_s": install_s,
        "versions": versions(),
        "cudnn_files_from": cudnn_owner(),
        "platform": platform.platform(),
        "train": train,
        "nngp": nngp,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    out = args.out or default_out()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(summary(report))
    print(f"wrote {out}")
    failed = [
        f"{name}: {part['error']}"
        for name, part in (("train", train), ("nngp", nngp))
        if "error" in part
    ]
    for line in failed:
        print(f"FAILED {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""NNGP kernels of the fully connected architecture (neural-tangents ``stax``, float64, batched)."""

from __future__ import annotations

import importlib.metadata
import logging
import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import jax  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_enable_x64", True)
import warnings  # noqa: E402

from lood.arch import Architecture  # noqa: E402
from lood.devices import gpu_assignment  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from neural_tangents import stax  # noqa: E402


def log_jax_devices(log: logging.Logger, env: Mapping[str, str] | None = None) -> str:
    """Name JAX's backend and devices in one INFO line (returns the backend: cpu, gpu ...).

    Warns when the job was given a GPU (scheduler variables, :func:`lood.devices.gpu_assignment`)
    but JAX runs on the CPU: jaxlib alone is CPU-only, and the ``gpu`` extra keeps it so (its CUDA
    stack is torch's; README, Installing).
    """
    backend = jax.default_backend()
    log.info(
        "JAX %s, backend %s, devices %s",
        jax.__version__,
        backend,
        ", ".join(str(d) for d in jax.devices()),
    )
    given = gpu_assignment(0, env)
    if backend == "cpu" and given:
        try:
            plugin = f"jax-cuda12-plugin {importlib.metadata.version('jax-cuda12-plugin')} is "
            plugin += "installed but found no usable GPU (driver?)"
        except importlib.metadata.PackageNotFoundError:
            plugin = "no JAX CUDA plugin is installed: JAX runs on the CPU (README, Installing)"
        log.warning("JAX runs on the CPU although the job was given a GPU (%s): %s", given, plugin)
    return backend


# --------------------------------------------------------------------------------------------
# Kernel
# --------------------------------------------------------------------------------------------
def stax_network(arch: Architecture) -> tuple[Any, Any, Any]:
    """neural-tangents ``(init_fn, apply_fn, kernel_fn)`` of the same architecture as the torch net.

    ``[Dense(width), act] * depth + Dense(n_outputs)`` with the same ``W_std``/``b_std`` and
    parameterization, so its NNGP kernel is the infinite-width limit of the finite networks.
    """
    b_std = None if arch.b_std == 0 else float(arch.b_std)
    act = {"relu": stax.Relu, "gelu": lambda: stax.Gelu(approximate=False)}[arch.activation]
    layers = []
    for _ in range(arch.depth):
        layers += [
            stax.Dense(
                arch.width,
                W_std=float(arch.W_std),
                b_std=b_std,
                parameterization=arch.parameterization,
            ),
            act(),
        ]
    layers.append(
        stax.Dense(
            arch.n_outputs,
            W_std=float(arch.W_std),
            b_std=b_std,
            parameterization=arch.parameterization,
        )
    )
    return stax.serial(*layers)


@lru_cache(maxsize=16)
def _jitted_kernel_fn(arch: Architecture) -> Any:
    kernel_fn = stax_network(arch)[2]
    return jax.jit(kernel_fn, static_argnames=("get",))


def _as_inputs(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [n, d], got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} must contain at least one row")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values")
    return arr


def _pad_rows(x: np.ndarray, n: int) -> np.ndarray:
    if x.shape[0] == n:
        return x
    return np.concatenate([x, np.zeros((n - x.shape[0], x.shape[1]), dtype=x.dtype)], axis=0)


def nngp_kernel(
    arch: Architecture, x1: Any, x2: Any | None = None, batch_size: int = 0
) -> np.ndarray:
    """NNGP kernel ``K(x1, x2)`` [n1, n2] (float64) of ``arch``; ``x2=None`` means ``x1``.

    With ``batch_size > 0`` the kernel is computed in ``batch_size x batch_size`` blocks (padded to
    one compiled shape; only the upper blocks when symmetric), so peak memory beyond the output
    stays O(batch_size^2) and N = 10^4 fits easily.
    """
    x1a = _as_inputs(x1, "x1")
    symmetric = x2 is None
    x2a = x1a if symmetric else _as_inputs(x2, "x2")
    if x1a.shape[1] != x2a.shape[1]:
        raise ValueError(
            f"x1 and x2 have different feature sizes: {x1a.shape[1]} != {x2a.shape[1]}"
        )
    batch_size = int(batch_size)
    kfn = _jitted_kernel_fn(arch)
    if batch_size <= 0:
        out = kfn(x1a, None if symmetric else x2a, get="nngp")
        return np.array(out, dtype=np.float64)
    n1, n2 = x1a.shape[0], x2a.shape[0]
    b = min(batch_size, max(n1, n2))
    out = np.empty((n1, n2), dtype=np.float64)
    for i0 in range(0, n1, b):
        xi = x1a[i0 : i0 + b]
        ni = xi.shape[0]
        xi_p = _pad_rows(xi, b)
        for j0 in range(i0 if symmetric else 0, n2, b):
            xj = x2a[j0 : j0 + b]
            nj = xj.shape[0]
            blk = np.asarray(kfn(xi_p, _pad_rows(xj, b), get="nngp"), dtype=np.float64)[:ni, :nj]
            if symmetric and j0 == i0:
                blk = 0.5 * (blk + blk.T)  # exact symmetry of the diagonal blocks
            out[i0 : i0 + ni, j0 : j0 + nj] = blk
            if symmetric and j0 != i0:
                out[j0 : j0 + nj, i0 : i0 + ni] = blk.T
    return out


def nngp_diag(arch: Architecture, x: Any, batch_size: int = 256) -> np.ndarray:
    """Diagonal ``K(x_j, x_j)`` [n] of the NNGP kernel (prior variance at each query)."""
    xa = _as_inputs(x, "x")
    kfn = _jitted_kernel_fn(arch)
    b = max(1, min(int(batch_size), xa.shape[0]))
    out = np.empty(xa.shape[0], dtype=np.float64)
    for i0 in range(0, xa.shape[0], b):
        xi = xa[i0 : i0 + b]
        blk = np.asarray(kfn(_pad_rows(xi, b), None, get="nngp"), dtype=np.float64)
        out[i0 : i0 + xi.shape[0]] = np.diagonal(blk)[: xi.shape[0]]
    return out


# --------------------------------------------------------------------------------------------
# NNGP kernel and NTK together (the NTK-GP of lood.nngp.gp needs both)
# --------------------------------------------------------------------------------------------
@lru_cache(maxsize=16)
def _jitted_both(arch: Architecture) -> Any:
    kernel_fn = stax_network(arch)[2]
    return jax.jit(lambda x1, x2: kernel_fn(x1, x2, ("nngp", "ntk")))


def ntk_kernels(
    arch: Architecture, x1: Any, x2: Any | None = None, batch_size: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """NNGP kernel ``K`` and NTK ``Theta`` [n1, n2] (float64) of ``arch``; ``x2=None`` means ``x1``.

    ``batch_size > 0`` computes blocks of that size (padded to one compiled shape).
    """
    a = np.asarray(x1, dtype=np.float64)
    b = a if x2 is None else np.asarray(x2, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"x1 and x2 must be [n, d] with equal d, got {a.shape} and {b.shape}")
    fn = _jitted_both(arch)
    if batch_size <= 0:
        k = fn(a, None if x2 is None else b)
        return np.array(k.nngp, dtype=np.float64), np.array(k.ntk, dtype=np.float64)
    bs = min(int(batch_size), max(len(a), len(b)))
    out_k = np.empty((len(a), len(b)))
    out_t = np.empty((len(a), len(b)))
    for i0 in range(0, len(a), bs):
        xi = a[i0 : i0 + bs]
        for j0 in range(0, len(b), bs):
            xj = b[j0 : j0 + bs]
            k = fn(_pad_rows(xi, bs), _pad_rows(xj, bs))
            out_k[i0 : i0 + len(xi), j0 : j0 + len(xj)] = np.asarray(k.nngp)[: len(xi), : len(xj)]
            out_t[i0 : i0 + len(xi), j0 : j0 + len(xj)] = np.asarray(k.ntk)[: len(xi), : len(xj)]
    if x2 is None:  # exact symmetry
        out_k, out_t = 0.5 * (out_k + out_k.T), 0.5 * (out_t + out_t.T)
    return out_k, out_t

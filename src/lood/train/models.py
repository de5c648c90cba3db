"""Finite fully connected networks as a stacked ensemble of K independent models.

Every parameter is one tensor with a leading model axis, e.g. ``W0: [K, d_in, width]``,
``b0: [K, width]``, ..., ``W{depth}: [K, width, n_outputs]``, so that K models run as a handful of
batched matrix products (``torch.baddbmm``) instead of K Python-level forward passes.

The network is the neural-tangents ``stax`` network ``[Dense(width), act] * depth +
Dense(n_outputs)``, so its infinite-width limit is the NNGP kernel used by :mod:`lood.nngp`:

* ``parameterization == "ntk"``: W, b ~ N(0, 1); a layer computes
  ``(W_std / sqrt(fan_in)) * x @ W + b_std * b``;
* ``parameterization == "standard"``: W ~ N(0, W_std^2 / fan_in), b ~ N(0, b_std^2); a layer
  computes ``x @ W + b``;
* ``b_std == 0``: no bias parameters at all.

Weights are stored as ``[fan_in, fan_out]`` (``x @ W``), i.e. transposed w.r.t. ``nn.Linear``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lood.arch import Architecture

Params = dict[str, torch.Tensor]


# Keys that save_params adds to the safetensors header to validate the file on load.
_META_FORMAT = "_lood_format"


_META_TENSORS = "_lood_tensors"


_META_SHA256 = "_lood_sha256"


_FORMAT = "lood-ensemble-v1"


_RESERVED = (_META_FORMAT, _META_TENSORS, _META_SHA256)


def param_names(arch: Architecture) -> list[str]:
    """Parameter names in initialisation order: W0, b0, W1, b1, ..., W{depth}, b{depth}."""
    names = []
    for layer in range(arch.depth + 1):
        names.append(f"W{layer}")
        if arch.has_bias:
            names.append(f"b{layer}")
    return names


def layer_dims(arch: Architecture, d_in: int) -> list[tuple[int, int]]:
    """(fan_in, fan_out) of every dense layer, input layer first."""
    dims = [d_in] + [arch.width] * arch.depth + [arch.n_outputs]
    return list(zip(dims[:-1], dims[1:], strict=False))


def param_shapes(arch: Architecture, d_in: int, n_models: int) -> dict[str, tuple[int, ...]]:
    """Expected shape of every stacked parameter tensor."""
    shapes: dict[str, tuple[int, ...]] = {}
    for layer, (fan_in, fan_out) in enumerate(layer_dims(arch, d_in)):
        shapes[f"W{layer}"] = (n_models, fan_in, fan_out)
        if arch.has_bias:
            shapes[f"b{layer}"] = (n_models, fan_out)
    return shapes


def n_models(params: Params) -> int:
    """Number of models K in a stacked parameter dict."""
    return int(next(iter(params.values())).shape[0])


def _init_one(arch: Architecture, d_in: int, seed: int) -> list[torch.Tensor]:
    """Draw one model's parameters (float32, CPU) from a generator seeded with ``seed``.

    The draw order is W0, b0, W1, b1, ... and does not depend on the ensemble, so model k's
    initialisation is identical whether it is trained alone or with other models.
    """
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(seed))
    if arch.init == "torch":
        return _init_torch_default(arch, d_in, gen)
    out = []
    for fan_in, fan_out in layer_dims(arch, d_in):
        w = torch.randn(fan_in, fan_out, generator=gen, dtype=torch.float32)
        if arch.parameterization == "standard":
            w = w * (arch.W_std / math.sqrt(fan_in))
        out.append(w)
        if arch.has_bias:
            b = torch.randn(fan_out, generator=gen, dtype=torch.float32)
            if arch.parameterization == "standard":
                b = b * arch.b_std
            out.append(b)
    return out


def _init_torch_default(arch: Architecture, d_in: int, gen: torch.Generator) -> list[torch.Tensor]:
    """``nn.Linear``'s default initialisation, draw for draw: weight ``[fan_out, fan_in]`` (then
    transposed) and bias uniform on +-1/sqrt(fan_in), the bound of ``kaiming_uniform_(a=sqrt(5))``.
    Seeded alike, ``nn.Sequential`` of ``nn.Linear`` layers built after ``torch.manual_seed(seed)``
    holds the same numbers."""
    out = []
    for fan_in, fan_out in layer_dims(arch, d_in):
        bound = 1.0 / math.sqrt(fan_in)
        w = torch.empty(fan_out, fan_in, dtype=torch.float32).uniform_(-bound, bound, generator=gen)
        out.append(w.T.contiguous())
        if arch.has_bias:
            b = torch.empty(fan_out, dtype=torch.float32).uniform_(-bound, bound, generator=gen)
            out.append(b)
    return out


def init_params(
    arch: Architecture,
    d_in: int,
    seeds: Sequence[int],
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Params:
    """Initialise K = len(seeds) independent models; model k uses ``torch.Generator`` seed seeds[k].

    Draws happen in float32 on the CPU and are then cast, so the initial values (up to the cast)
    do not depend on ``device`` or ``dtype`` either.
    """
    if len(seeds) == 0:
        raise ValueError("init_params needs at least one seed")
    if d_in < 1:
        raise ValueError(f"d_in must be >= 1, got {d_in}")
    per_model = [_init_one(arch, d_in, s) for s in seeds]
    names = param_names(arch)
    return {
        name: torch.stack([m[i] for m in per_model]).to(device=device, dtype=dtype)
        for i, name in enumerate(names)
    }


def activation(arch: Architecture, h: torch.Tensor) -> torch.Tensor:
    if arch.activation == "relu":
        return torch.relu(h)
    return F.gelu(h)  # exact (erf) gelu, as stax.Gelu(approximate=False)


def layer_scales(arch: Architecture, fan_in: int) -> tuple[float, float]:
    """(alpha, beta) with dense(x) = alpha * x @ W + beta * b for this parameterization."""
    if arch.parameterization == "ntk":
        return arch.W_std / math.sqrt(fan_in), arch.b_std
    return 1.0, 1.0


def dense(params: Params, arch: Architecture, layer: int, h: torch.Tensor) -> torch.Tensor:
    """Pre-activation of dense layer ``layer``: ``[K, B, fan_in] -> [K, B, fan_out]``."""
    w = params[f"W{layer}"]
    alpha, beta = layer_scales(arch, w.shape[1])
    if arch.has_bias:
        return torch.baddbmm(params[f"b{layer}"].unsqueeze(1), h, w, beta=beta, alpha=alpha)
    out = torch.bmm(h, w)
    return out * alpha if alpha != 1.0 else out


def forward_from(
    params: Params, arch: Architecture, z: torch.Tensor, layer: int = 0
) -> torch.Tensor:
    """Finish the forward pass from pre-activation ``z`` of dense layer ``layer``."""
    for nxt in range(layer + 1, arch.depth + 1):
        z = dense(params, arch, nxt, activation(arch, z))
    return z


def forward(params: Params, arch: Architecture, x: torch.Tensor) -> torch.Tensor:
    """Outputs of all K models: x ``[K, B, d]`` (or ``[B, d]``, shared by all) -> ``[K, B, C]``."""
    k = n_models(params)
    if x.dim() == 2:
        x = x.unsqueeze(0).expand(k, *x.shape)
    if x.dim() != 3 or x.shape[0] != k:
        raise ValueError(f"x must be [K={k}, B, d] or [B, d], got shape {tuple(x.shape)}")
    return forward_from(params, arch, dense(params, arch, 0, x), 0)


def select_models(params: Params, idx: Sequence[int] | np.ndarray | torch.Tensor) -> Params:
    """Sub-ensemble with the models at positions ``idx`` (ints, or a boolean mask over K)."""
    index = torch.as_tensor(np.asarray(idx))
    if index.dtype == torch.bool:
        index = torch.nonzero(index).flatten()
    index = index.to(torch.long)
    return {name: p.detach().index_select(0, index.to(p.device)) for name, p in params.items()}


def _digest(params: Params) -> str:
    """sha256 over names, dtypes, shapes and bytes of all tensors, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(params):
        t = params[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_params(path: str | Path, params: Params, metadata: dict[str, str] | None = None) -> None:
    """Write stacked parameters with safetensors (never pickle).

    ``metadata`` (str -> str; e.g. the architecture, seeds) is stored in the header together with
    the expected tensor shapes/dtypes and a sha256 of the data, which :func:`load_params` checks.
    """
    from safetensors.torch import save_file

    metadata = dict(metadata or {})
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"metadata must map str to str, got {key!r}: {type(value).__name__}")
        if key in _RESERVED:
            raise ValueError(f"metadata key {key!r} is reserved")
    tensors = {name: p.detach().cpu().contiguous() for name, p in params.items()}
    spec = {name: {"shape": list(t.shape), "dtype": str(t.dtype)} for name, t in tensors.items()}
    metadata[_META_FORMAT] = _FORMAT
    metadata[_META_TENSORS] = json.dumps(spec, sort_keys=True)
    metadata[_META_SHA256] = _digest(tensors)
    save_file(tensors, str(path), metadata=metadata)
    _sort_header(Path(path))


def _sort_header(path: Path) -> None:
    """Rewrite a safetensors file's JSON header in one fixed order (metadata keys sorted, tensors
    in data order), in place: safetensors writes the metadata from a hash map whose order changes
    from process to process, so the same weights would give different bytes on every run."""
    with open(path, "r+b") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        ordered = {}
        if "__metadata__" in header:
            ordered["__metadata__"] = dict(sorted(header.pop("__metadata__").items()))
        ordered.update(sorted(header.items(), key=lambda item: item[1]["data_offsets"]))
        text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode()
        if len(text) > n:  # the same JSON in another order is never longer
            raise RuntimeError(f"{path}: cannot reorder the safetensors header in place")
        f.seek(8)
        f.write(text + b" " * (n - len(text)))  # same length: data offsets stay valid


def load_params(path: str | Path) -> tuple[Params, dict[str, str]]:
    """Read a file written by :func:`save_params`; returns (params on CPU, user metadata).

    Raises ValueError naming the file if it is unreadable, truncated or tampered with (tensor
    names, shapes or dtypes that differ from the header's record, or a data checksum mismatch).
    """
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            params = {name: f.get_tensor(name) for name in f.keys()}
    except FileNotFoundError:
        raise
    except Exception as exc:  # safetensors raises its own error types (and OSError)
        raise ValueError(f"{path}: not a readable safetensors file ({exc})") from exc
    if metadata.get(_META_FORMAT) != _FORMAT:
        raise ValueError(f"{path}: not a lood ensemble file (missing {_META_FORMAT!r} header)")
    try:
        spec = json.loads(metadata[_META_TENSORS])
    except (KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: corrupt tensor record in header ({exc})") from exc
    if set(spec) != set(params):
        raise ValueError(
            f"{path}: tensors {sorted(params)} do not match the header's record {sorted(spec)}"
        )
    for name, t in params.items():
        want_shape, want_dtype = spec[name].get("shape"), spec[name].get("dtype")
        if list(t.shape) != want_shape or str(t.dtype) != want_dtype:
            raise ValueError(
                f"{path}: tensor {name!r} is {str(t.dtype)}{list(t.shape)}, header records "
                f"{want_dtype}{want_shape}"
            )
    leading = {int(t.shape[0]) for t in params.values() if t.dim() > 0}
    if len(leading) > 1:
        raise ValueError(f"{path}: tensors disagree on the number of models: {sorted(leading)}")
    if _digest(params) != metadata.get(_META_SHA256):
        raise ValueError(f"{path}: data checksum mismatch (file modified or corrupted)")
    user = {k: v for k, v in metadata.items() if k not in _RESERVED}
    return params, user

"""Tests for lood.train.models (stacked MLP ensemble) and lood.train.ensemble (masked batched training).

The central check re-implements training plainly (torch.nn.Linear modules, torch.optim, a Python
loop over models and mini-batches in the documented data order) and requires the batched
ensemble to reach the same parameters.
"""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from lood.arch import Architecture
from lood.train.ensemble import train_ensemble, use_kernel_first_layer
from lood.train.models import forward, init_params, load_params, save_params, select_models
from lood.train.primitives import EnsembleOptions, accuracy
from lood.train.spec import TrainConfig

torch.set_num_threads(1)


# ---------------------------------------------------------------- plain reference implementation
class RefDense(nn.Module):
    def __init__(self, fan_in: int, fan_out: int, arch: Architecture) -> None:
        super().__init__()
        self.lin = nn.Linear(fan_in, fan_out, bias=arch.has_bias)
        ntk = arch.parameterization == "ntk"
        self.w_scale = arch.W_std / math.sqrt(fan_in) if ntk else 1.0
        self.b_scale = arch.b_std if ntk else 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.linear(x, self.lin.weight) * self.w_scale
        if self.lin.bias is not None:
            h = h + self.b_scale * self.lin.bias
        return h


def ref_model(arch: Architecture, d: int, seed: int, dtype: torch.dtype) -> nn.Sequential:
    dims = [d] + [arch.width] * arch.depth + [arch.n_outputs]
    init = init_params(arch, d, [seed], dtype=dtype)
    layers: list[nn.Module] = []
    for i in range(arch.depth + 1):
        dense = RefDense(dims[i], dims[i + 1], arch).to(dtype)
        with torch.no_grad():
            dense.lin.weight.copy_(init[f"W{i}"][0].T)
            if arch.has_bias:
                dense.lin.bias.copy_(init[f"b{i}"][0])
        layers.append(dense)
        if i < arch.depth:
            layers.append(nn.ReLU() if arch.activation == "relu" else nn.GELU())
    return nn.Sequential(*layers)


def ref_params(model: nn.Sequential, arch: Architecture) -> dict[str, torch.Tensor]:
    out = {}
    for i, dense in enumerate(m for m in model if isinstance(m, RefDense)):
        out[f"W{i}"] = dense.lin.weight.detach().T
        if arch.has_bias:
            out[f"b{i}"] = dense.lin.bias.detach()
    return out


def torch_scheduler(opt: torch.optim.Optimizer, tcfg: TrainConfig):
    """torch's own scheduler for ``train.lr_schedule`` (stepped once after each epoch), or None."""
    sched = torch.optim.lr_scheduler
    if tcfg.lr_schedule == "step":
        return sched.MultiStepLR(opt, milestones=list(tcfg.lr_milestones), gamma=tcfg.lr_gamma)
    if tcfg.lr_schedule == "cosine":
        return sched.CosineAnnealingLR(opt, T_max=tcfg.epochs, eta_min=0.0)
    return None


def ref_train(arch, tcfg, X, y, mask, seed, dtype) -> nn.Sequential:
    """One model, trained alone with torch.optim (and torch's lr scheduler) in the documented
    mini-batch order."""
    model = ref_model(arch, X.shape[1], seed, dtype)
    if tcfg.optimizer == "sgd":
        opt = torch.optim.SGD(
            model.parameters(), lr=tcfg.lr, momentum=tcfg.momentum, weight_decay=tcfg.weight_decay
        )
    else:
        opt = torch.optim.Adam(
            model.parameters(), lr=tcfg.lr, betas=tcfg.adam_betas, weight_decay=tcfg.weight_decay
        )
    scheduler = torch_scheduler(opt, tcfg)
    rng = np.random.default_rng(seed)
    incl = np.flatnonzero(mask)
    C = arch.n_outputs
    n = X.shape[0]
    for _ in range(tcfg.epochs):
        if tcfg.shuffle:
            order = incl[rng.permutation(len(incl))]
            batches = [
                order[i : i + tcfg.batch_size] for i in range(0, len(order), tcfg.batch_size)
            ]
            if tcfg.drop_last:  # DataLoader(drop_last=True) on the model's own records
                batches = [b for b in batches if len(b) == tcfg.batch_size]
        else:  # D in order, fixed boundaries, left-out records dropped from their batch
            blocks = [
                np.arange(i, min(i + tcfg.batch_size, n)) for i in range(0, n, tcfg.batch_size)
            ]
            if tcfg.drop_last:  # the incomplete last block of D
                blocks = [blk for blk in blocks if len(blk) == tcfg.batch_size]
            batches = [blk[mask[blk]] for blk in blocks]
        for batch in batches:
            if len(batch) == 0:
                continue
            b = torch.from_numpy(batch)
            f = model(X[b].to(dtype))
            if tcfg.loss == "mse":
                t = F.one_hot(y[b], C).to(dtype) - 1.0 / C
                loss = 0.5 * ((f - t) ** 2).sum(1).mean()
            else:
                loss = F.cross_entropy(f, y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if scheduler is not None:
            scheduler.step()
    return model


def make_data(n=40, d=12, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    y = torch.randint(0, c, (n,), generator=g)
    return X, y


def arch_of(act="relu", param="ntk", bias=True, depth=2, width=16, c=3) -> Architecture:
    return Architecture(depth, width, act, 1.4, 0.3 if bias else 0.0, param, c)


OPTIMS = [
    dict(optimizer="sgd", momentum=0.9, weight_decay=0.01, loss="mse", lr=0.05),
    dict(optimizer="sgd", momentum=0.0, weight_decay=0.0, loss="cross_entropy", lr=0.1),
    dict(optimizer="adam", momentum=0.0, weight_decay=0.01, loss="mse", lr=0.01),
    dict(optimizer="adam", momentum=0.0, weight_decay=0.0, loss="cross_entropy", lr=0.01),
]


@pytest.mark.parametrize("opt", OPTIMS, ids=lambda o: f"{o['optimizer']}-{o['loss']}")
@pytest.mark.parametrize("act", ["relu", "gelu"])
@pytest.mark.parametrize("param", ["ntk", "standard"])
@pytest.mark.parametrize("bias", [True, False])
def test_matches_plain_torch_training(opt, act, param, bias):
    X, y = make_data()
    arch = arch_of(act, param, bias)
    tcfg = TrainConfig(epochs=3, batch_size=8, **opt)
    n = X.shape[0]
    masks = np.ones((3, n), dtype=bool)
    masks[1, 5] = False  # an "out" model: 39 records, 5 batches like the in-model
    masks[2, 17:] = False  # 17 records: 3 batches, inactive on steps 3 and 4 of every epoch
    seeds = [11, 12, 13]
    Xe = torch.randn(7, X.shape[1])
    res = train_ensemble(
        arch, tcfg, X, y, masks, seeds, EnsembleOptions(eval_sets={"e": Xe}, dtype=torch.float64)
    )
    assert res.n_updates.tolist() == [15, 15, 9]
    for k in range(3):
        ref = ref_train(arch, tcfg, X, y, masks[k], seeds[k], torch.float64)
        rp = ref_params(ref, arch)
        assert set(rp) == set(res.params)
        for name, p in rp.items():
            torch.testing.assert_close(res.params[name][k], p, rtol=1e-9, atol=1e-10)
        with torch.no_grad():
            torch.testing.assert_close(
                torch.from_numpy(res.outputs["e"][k]), ref(Xe.double()), rtol=1e-9, atol=1e-10
            )


def test_matches_plain_torch_float32():
    X, y = make_data(n=50, d=20)
    arch = arch_of("gelu", "ntk", True, width=32)
    tcfg = TrainConfig(epochs=4, lr=0.05, batch_size=16, momentum=0.9)
    masks = np.ones((2, 50), dtype=bool)
    masks[1, 30:] = False
    res = train_ensemble(arch, tcfg, X, y, masks, [3, 4])
    assert res.params["W0"].dtype == torch.float32
    for k, seed in enumerate([3, 4]):
        rp = ref_params(ref_train(arch, tcfg, X, y, masks[k], seed, torch.float32), arch)
        for name, p in rp.items():
            torch.testing.assert_close(res.params[name][k], p, rtol=1e-5, atol=1e-5)


# -------------------------------------------------------------------- ensemble-level properties
def _small_problem(k=5):
    X, y = make_data(n=30, d=10)
    rng = np.random.default_rng(0)
    masks = rng.random((k, 30)) < 0.7  # random subsets of different sizes
    return X, y, masks, [100 + i for i in range(k)]


def test_independent_of_chunk_size_and_ensemble_mates():
    X, y, masks, seeds = _small_problem()
    arch = arch_of("relu", "ntk", True)
    tcfg = TrainConfig(epochs=3, lr=0.05, batch_size=4, optimizer="adam")
    full = train_ensemble(arch, tcfg, X, y, masks, seeds, EnsembleOptions(eval_sets={"x": X}))
    chunked = train_ensemble(
        arch, tcfg, X, y, masks, seeds, EnsembleOptions(eval_sets={"x": X}, chunk_size=2)
    )
    for name in full.params:
        torch.testing.assert_close(chunked.params[name], full.params[name], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(chunked.outputs["x"], full.outputs["x"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(chunked.n_updates, full.n_updates)
    alone = train_ensemble(arch, tcfg, X, y, masks[3:4], seeds[3:4])
    for name, p in select_models(full.params, [3]).items():
        torch.testing.assert_close(alone.params[name], p, rtol=1e-6, atol=1e-6)


def test_deterministic():
    X, y, masks, seeds = _small_problem(3)
    arch = arch_of("gelu", "standard", True)
    tcfg = TrainConfig(epochs=2, lr=0.05, batch_size=4, momentum=0.9)
    a = train_ensemble(arch, tcfg, X, y, masks, seeds)
    b = train_ensemble(arch, tcfg, X, y, masks, seeds)
    for name in a.params:
        assert torch.equal(a.params[name], b.params[name])


def test_out_model_never_sees_excluded_record():
    X, y = make_data(n=24, d=8)
    arch = arch_of("relu", "ntk", True)
    tcfg = TrainConfig(epochs=3, lr=0.05, batch_size=5, momentum=0.9)
    masks = np.ones((2, 24), dtype=bool)
    masks[1, 0] = False  # model 1 is the out-model of record 0 (also the padding-prone index)
    a = train_ensemble(arch, tcfg, X, y, masks, [1, 2])
    X2, y2 = X.clone(), y.clone()
    X2[0] = 4.0  # an outlier with a different label
    y2[0] = (y[0] + 1) % 3
    b = train_ensemble(arch, tcfg, X2, y2, masks, [1, 2])
    for name in a.params:
        assert torch.equal(a.params[name][1], b.params[name][1]), name  # out-model: bit-identical
    assert not torch.equal(a.params["W0"][0], b.params["W0"][0])  # in-model: changed


def test_select_models():
    arch = arch_of()
    p = init_params(arch, 5, [1, 2, 3])
    sub = select_models(p, [2, 0])
    assert torch.equal(sub["W1"][0], p["W1"][2]) and torch.equal(sub["W1"][1], p["W1"][0])
    sub = select_models(p, np.array([False, True, False]))
    assert sub["W0"].shape[0] == 1 and torch.equal(sub["W0"][0], p["W0"][1])


# --------------------------------------------------------------------------------- init / forward
@pytest.mark.parametrize("bias", [0.0, 0.5])
def test_init_output_variance_ntk_equals_standard(bias):
    d, c = 50, 4000
    x = torch.rand(64, d) * 2.0
    expect = 1.7**2 * float((x**2).mean()) + bias**2
    for param in ("ntk", "standard"):
        arch = Architecture(0, 1, "relu", 1.7, bias, param, c)
        out = forward(init_params(arch, d, [0, 1, 2]), arch, x)
        var = float(out.var(dim=-1).mean())  # over the wide output layer's units
        assert abs(var / expect - 1.0) < 0.05, (param, var, expect)


def test_forward_shapes_and_broadcast():
    arch = arch_of("gelu", "standard", True, depth=1)
    p = init_params(arch, 6, [5, 6])
    x = torch.randn(9, 6)
    out = forward(p, arch, x)
    assert out.shape == (2, 9, 3)
    torch.testing.assert_close(out, forward(p, arch, x.expand(2, 9, 6)))
    with pytest.raises(ValueError):
        forward(p, arch, torch.randn(3, 9, 6))


def test_init_model_same_alone_or_in_ensemble():
    arch = arch_of()
    one = init_params(arch, 7, [42])
    many = init_params(arch, 7, [1, 42, 3])
    for name in one:
        assert torch.equal(one[name][0], many[name][1])


# ----------------------------------------------------------------------------- failure handling
def test_nan_raises_floating_point_error_naming_model():
    X, y = make_data(n=20, d=6)
    X[3] = 1e30  # makes the loss of every model that includes record 3 overflow
    masks = np.ones((3, 20), dtype=bool)
    masks[[0, 2], 3] = False
    arch = arch_of("relu", "ntk", True)
    with pytest.raises(FloatingPointError, match=r"model\(s\) \[1\] in epoch 0"):
        train_ensemble(arch, TrainConfig(2, 0.1, 4), X, y, masks, [0, 1, 2])
    with pytest.raises(FloatingPointError, match=r"\[3\]"):  # global index across chunks
        m4 = np.vstack([masks[[0, 0, 2]], masks[1:2]])
        train_ensemble(
            arch, TrainConfig(2, 0.1, 4), X, y, m4, [0, 1, 2, 3], EnsembleOptions(chunk_size=2)
        )


def test_input_validation():
    X, y = make_data(n=10, d=4)
    arch = arch_of()
    tcfg = TrainConfig(1, 0.1, 4)
    with pytest.raises(ValueError, match="masks"):
        train_ensemble(arch, tcfg, X, y, np.ones((2, 9), dtype=bool), [0, 1])
    with pytest.raises(ValueError, match="seed"):
        train_ensemble(arch, tcfg, X, y, np.ones((2, 10), dtype=bool), [0])
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(1, 0.1, 4, optimizer="rmsprop")


def test_progress_and_metrics():
    X, y, masks, seeds = _small_problem(4)
    reports: list[dict] = []
    res = train_ensemble(
        arch_of(),
        TrainConfig(epochs=3, lr=0.05, batch_size=4),
        X,
        y,
        masks,
        seeds,
        EnsembleOptions(chunk_size=3, progress=reports.append),
    )
    assert len(reports) == 6 and reports[-1]["models_done"] == 4
    assert res.loss_history.shape == (3, 4) and np.isfinite(res.loss_history).all()
    assert res.final_train_loss.shape == (4,)
    acc = accuracy(np.array([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]]]), np.array([0, 1]))
    np.testing.assert_allclose(acc, [1.0, 0.5])


# ------------------------------------------------------------------------------------- save/load
def test_save_load_roundtrip_bit_exact(tmp_path):
    arch = arch_of("gelu", "ntk", True)
    p = init_params(arch, 5, [1, 2])
    path = tmp_path / "m.safetensors"
    meta = {"arch": json.dumps(arch.to_dict()), "seeds": "1,2"}
    save_params(path, p, meta)
    q, meta2 = load_params(path)
    assert meta2 == meta
    assert set(q) == set(p)
    for name in p:
        assert q[name].dtype == p[name].dtype and torch.equal(q[name], p[name])


def test_saved_bytes_do_not_depend_on_the_process(tmp_path):
    """safetensors writes its metadata from a hash map (another order in every process);
    save_params sorts the header, so the same weights give the same file in every run."""
    import subprocess
    import sys

    code = (
        "import sys, torch; from lood.train.models import save_params; "
        "p = {'W0': torch.arange(6.0).reshape(1, 2, 3), 'W1': torch.ones(1, 3, 2)}; "
        "save_params(sys.argv[1], p, {'arch': 'x', 'seeds': '[1]', 'role': 'in', 'z': 'y'})"
    )
    paths = [tmp_path / f"{i}.safetensors" for i in range(3)]
    for path in paths:
        subprocess.run([sys.executable, "-c", code, str(path)], check=True)
    assert len({path.read_bytes() for path in paths}) == 1
    header = json.loads(
        paths[0].read_bytes()[8 : 8 + struct.unpack("<Q", paths[0].read_bytes()[:8])[0]]
    )
    assert list(header["__metadata__"]) == sorted(header["__metadata__"])
    assert load_params(paths[0])[1] == {"arch": "x", "seeds": "[1]", "role": "in", "z": "y"}


def test_load_rejects_truncated_and_tampered(tmp_path):
    p = init_params(arch_of(), 5, [1, 2])
    good = tmp_path / "good.safetensors"
    save_params(good, p, {"k": "v"})
    raw = good.read_bytes()

    trunc = tmp_path / "trunc.safetensors"
    trunc.write_bytes(raw[: len(raw) - 100])
    with pytest.raises(ValueError, match="trunc.safetensors"):
        load_params(trunc)

    # tampered header: rewrite the recorded shape of W1 (same length, so the file still parses)
    n = struct.unpack("<Q", raw[:8])[0]
    header = raw[8 : 8 + n].decode()
    rec = json.loads(json.loads(header)["__metadata__"]["_lood_tensors"])
    assert rec["W1"]["shape"] == [2, 16, 16]
    bad_header = header.replace('\\"shape\\": [2, 16, 16]', '\\"shape\\": [2, 16, 61]', 1)
    assert bad_header != header and len(bad_header) == len(header)
    tampered = tmp_path / "tampered.safetensors"
    tampered.write_bytes(raw[:8] + bad_header.encode() + raw[8 + n :])
    with pytest.raises(ValueError, match="tampered.safetensors.*W1"):
        load_params(tampered)

    # flipped data byte: caught by the checksum
    flipped = bytearray(raw)
    flipped[-5] ^= 0xFF
    fl = tmp_path / "flipped.safetensors"
    fl.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="checksum"):
        load_params(fl)

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ValueError, match="garbage.safetensors"):
        load_params(garbage)


# ------------------------------------------------------------------- kernel-space first layer
KERNEL_OPTS = [
    dict(momentum=0.9, weight_decay=0.01, loss="mse", lr=0.05),
    dict(momentum=0.0, weight_decay=0.02, loss="mse", lr=0.1),
    dict(momentum=0.9, weight_decay=0.0, loss="cross_entropy", lr=0.05),
    dict(momentum=0.0, weight_decay=0.0, loss="cross_entropy", lr=0.1),
]


@pytest.mark.parametrize(
    "opt", KERNEL_OPTS, ids=lambda o: f"mom{o['momentum']}-wd{o['weight_decay']}-{o['loss']}"
)
@pytest.mark.parametrize("param", ["ntk", "standard"])
@pytest.mark.parametrize("bias", [True, False])
def test_kernel_first_layer_matches_plain_torch_and_standard_path(opt, param, bias):
    """Forced kernel-space SGD == torch.optim reference == forced standard path (float64), with
    uneven masks (inactive models) and chunking; d > N so W0 is not in the span of X."""
    X, y = make_data(n=20, d=30)
    arch = arch_of("gelu" if bias else "relu", param, bias, width=8)
    tcfg = TrainConfig(epochs=3, batch_size=6, **opt)
    masks = np.ones((4, 20), dtype=bool)
    masks[1, 3] = False  # out-model: 19 records, 4 batches like the in-model
    masks[2, 9:] = False  # 9 records: 2 batches, inactive on steps 2 and 3 of every epoch
    masks[3, ::2] = False  # 10 records, the even ones never seen
    seeds = [21, 22, 23, 24]
    Xe = torch.randn(5, 30, dtype=torch.float64)
    kw = dict(eval_sets={"e": Xe}, chunk_size=3, dtype=torch.float64)
    ker, std = (
        train_ensemble(arch, tcfg, X, y, masks, seeds, EnsembleOptions(first_layer=fl, **kw))
        for fl in ("kernel", "standard")
    )
    assert ker.extra["first_layer"] == "kernel" and std.extra["first_layer"] == "standard"
    assert ker.n_updates.tolist() == [12, 12, 6, 6]
    for name in std.params:
        torch.testing.assert_close(ker.params[name], std.params[name], rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(ker.outputs["e"], std.outputs["e"], rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(ker.loss_history, std.loss_history, rtol=1e-9)
    for k in (0, 2, 3):
        rp = ref_params(ref_train(arch, tcfg, X, y, masks[k], seeds[k], torch.float64), arch)
        for name, p in rp.items():
            torch.testing.assert_close(ker.params[name][k], p, rtol=1e-9, atol=1e-10)


def test_kernel_first_layer_depth0_no_bias_and_float32():
    X, y = make_data(n=30, d=50)
    masks = np.random.default_rng(1).random((3, 30)) < 0.6
    for arch, dtype, tol in [
        (Architecture(0, 1, "relu", 1.3, 0.0, "ntk", 3), torch.float64, 1e-9),  # only W0
        (arch_of("relu", "ntk", True, width=16), torch.float32, 1e-4),
    ]:
        tcfg = TrainConfig(epochs=4, lr=0.05, batch_size=7, momentum=0.9, weight_decay=0.01)
        kw = dict(eval_sets={"x": X}, dtype=dtype)
        ker, std = (
            train_ensemble(
                arch, tcfg, X, y, masks, [5, 6, 7], EnsembleOptions(first_layer=fl, **kw)
            )
            for fl in ("kernel", "standard")
        )
        assert ker.params["W0"].dtype == dtype
        for name in std.params:
            torch.testing.assert_close(ker.params[name], std.params[name], rtol=tol, atol=tol)
        np.testing.assert_allclose(ker.outputs["x"], std.outputs["x"], rtol=tol, atol=tol)


def test_kernel_first_layer_out_model_bit_identical_when_record_changes():
    X, y = make_data(n=24, d=40)
    arch = arch_of("relu", "ntk", True)
    tcfg = TrainConfig(epochs=3, lr=0.05, batch_size=5, momentum=0.9, weight_decay=0.01)
    masks = np.ones((2, 24), dtype=bool)
    masks[1, 0] = False
    a = train_ensemble(arch, tcfg, X, y, masks, [1, 2], EnsembleOptions(first_layer="kernel"))
    X2, y2 = X.clone(), y.clone()
    X2[0] = 4.0  # changes row and column 0 of X X^T and row 0 of X W0(0)
    y2[0] = (y[0] + 1) % 3
    b = train_ensemble(arch, tcfg, X2, y2, masks, [1, 2], EnsembleOptions(first_layer="kernel"))
    for name in a.params:
        assert torch.equal(a.params[name][1], b.params[name][1]), name
    assert not torch.equal(a.params["W0"][0], b.params["W0"][0])


def test_kernel_first_layer_choice():
    sgd = TrainConfig(epochs=10, lr=0.5, batch_size=64, momentum=0.9)
    adam = TrainConfig(epochs=10, lr=0.01, batch_size=64, optimizer="adam")
    steps = 10 * 10
    assert use_kernel_first_layer("auto", sgd, 600, 784, 128, steps)  # the benchmark setting
    assert use_kernel_first_layer("auto", sgd, 500, 3072, 128, steps)
    assert not use_kernel_first_layer("auto", sgd, 5000, 784, 128, 10 * 79)  # N >> d
    assert not use_kernel_first_layer("auto", adam, 600, 784, 128, steps)
    assert not use_kernel_first_layer("auto", sgd, 600, 784, 128, steps, max_bytes=601**2 * 4 - 1)
    assert not use_kernel_first_layer("standard", sgd, 600, 784, 128, steps)
    assert use_kernel_first_layer("kernel", sgd, 5000, 10, 128, steps)
    with pytest.raises(ValueError, match="sgd"):
        use_kernel_first_layer("kernel", adam, 600, 784, 128, steps)
    with pytest.raises(ValueError, match="first_layer"):
        use_kernel_first_layer("dual", sgd, 600, 784, 128, steps)
    # train_ensemble applies it automatically (and records the choice)
    X, y = make_data(n=30, d=200)
    masks = np.ones((2, 30), dtype=bool)
    arch = arch_of(width=8)
    res = train_ensemble(arch, TrainConfig(2, 0.05, 8, momentum=0.9), X, y, masks, [0, 1])
    assert res.extra["first_layer"] == "kernel"
    res = train_ensemble(arch, TrainConfig(2, 0.01, 8, optimizer="adam"), X, y, masks, [0, 1])
    assert res.extra["first_layer"] == "standard"
    tiny_gram = EnsembleOptions(kernel_max_bytes=100)
    small = train_ensemble(
        arch, TrainConfig(2, 0.05, 8, momentum=0.9), X, y, masks, [0, 1], tiny_gram
    )
    assert small.extra["first_layer"] == "standard"


# ------------------------------------------------------------------- learning-rate schedules
SCHEDULES = [
    dict(lr_schedule="step", lr_milestones=(1, 3), lr_gamma=0.3),
    dict(lr_schedule="cosine"),
]
SCHEDULE_OPTS = [
    dict(
        optimizer="sgd", momentum=0.9, weight_decay=0.01, loss="mse", lr=0.1, first_layer="kernel"
    ),
    dict(
        optimizer="sgd",
        momentum=0.9,
        weight_decay=0.0,
        loss="cross_entropy",
        lr=0.1,
        first_layer="standard",
    ),
    dict(
        optimizer="sgd",
        momentum=0.0,
        weight_decay=0.0,
        loss="cross_entropy",
        lr=0.1,
        first_layer="kernel",
    ),
    dict(
        optimizer="adam",
        momentum=0.0,
        weight_decay=0.01,
        loss="mse",
        lr=0.02,
        first_layer="standard",
    ),
]


@pytest.mark.parametrize("sched", SCHEDULES, ids=lambda s: s["lr_schedule"])
@pytest.mark.parametrize(
    "opt", SCHEDULE_OPTS, ids=lambda o: f"{o['optimizer']}-mom{o['momentum']}-{o['first_layer']}"
)
def test_lr_schedule_matches_torch_schedulers(sched, opt):
    """train.lr_schedule == torch.optim.lr_scheduler (MultiStepLR, CosineAnnealingLR) stepped
    after each epoch of a per-model torch.optim loop; kernel-space SGD keeps its momentum buffer
    right when the rate changes; uneven masks leave models inactive at the ends of epochs."""
    opt = dict(opt)
    first_layer = opt.pop("first_layer")
    X, y = make_data(n=20, d=30)
    arch = arch_of("relu", "standard", True, width=8)
    tcfg = TrainConfig(epochs=4, batch_size=6, **opt, **sched)
    masks = np.ones((3, 20), dtype=bool)
    masks[1, 3] = False
    masks[2, 9:] = False
    seeds = [31, 32, 33]
    opts = EnsembleOptions(first_layer=first_layer, dtype=torch.float64)
    res = train_ensemble(arch, tcfg, X, y, masks, seeds, opts)
    assert res.extra["first_layer"] == first_layer
    flat = train_ensemble(
        arch, TrainConfig(epochs=4, batch_size=6, **opt), X, y, masks, seeds, opts
    )
    assert not torch.allclose(res.params["W1"], flat.params["W1"])  # the schedule did something
    for k in range(3):
        rp = ref_params(ref_train(arch, tcfg, X, y, masks[k], seeds[k], torch.float64), arch)
        for name, p in rp.items():
            torch.testing.assert_close(res.params[name][k], p, rtol=1e-9, atol=1e-10)


def test_lr_at_is_torchs_rate_per_epoch():
    """The closed forms equal the rate torch's schedulers set at the start of every epoch."""
    for sched in SCHEDULES:
        tcfg = TrainConfig(epochs=7, lr=0.3, batch_size=1, **sched)
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=tcfg.lr)
        scheduler = torch_scheduler(opt, tcfg)
        for epoch in range(tcfg.epochs):
            assert tcfg.lr_at(epoch) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
            opt.step()
            scheduler.step()
    assert TrainConfig(epochs=3, lr=0.3, batch_size=1).lr_at(2) == 0.3


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(lr_schedule="step"), "needs train.lr_milestones"),
        (dict(lr_schedule="none", lr_milestones=(2,)), "only apply to lr_schedule: step"),
        (dict(lr_schedule="step", lr_milestones=(3, 2)), "strictly increasing"),
        (dict(lr_schedule="step", lr_milestones=(2, 5)), r"\[5\] are outside 1..epochs-1"),
        (dict(lr_schedule="linear"), "train.lr_schedule must be one of"),
    ],
)
def test_lr_schedule_errors_name_the_key(kw, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(epochs=5, lr=0.1, batch_size=2, **kw)


# ------------------------------------------------------------------- nn.Linear's initialisation
@pytest.mark.parametrize("bias", [True, False])
def test_torch_init_is_nn_linear_default_draw_for_draw(bias):
    """model.init: torch holds the numbers nn.Linear's reset_parameters draws (kaiming_uniform_
    with a = sqrt(5), uniform bias) for the same seed, so the networks compute the same function."""
    arch = Architecture(3, 24, "relu", 2**0.5, 1.0 if bias else 0.0, "standard", 2, init="torch")
    d, seed = 17, 1234
    params = init_params(arch, d, [seed, seed + 1])
    torch.manual_seed(seed)
    dims = [d] + [24] * 3 + [2]
    layers = []
    for i in range(4):
        layers.append(nn.Linear(dims[i], dims[i + 1], bias=bias))
        if i < 3:
            layers.append(nn.ReLU())
    ref = nn.Sequential(*layers)
    for i, lin in enumerate(m for m in ref if isinstance(m, nn.Linear)):
        torch.testing.assert_close(params[f"W{i}"][0], lin.weight.detach().T, rtol=0, atol=0)
        if bias:
            torch.testing.assert_close(params[f"b{i}"][0], lin.bias.detach(), rtol=0, atol=0)
    x = torch.randn(5, d)
    with torch.no_grad():
        torch.testing.assert_close(forward(params, arch, x)[0], ref(x), rtol=1e-6, atol=1e-6)
    assert not torch.equal(params["W0"][0], params["W0"][1])  # each seed its own draw
    normal = init_params(Architecture(3, 24, "relu", 2**0.5, 0.0, "standard", 2), d, [seed])
    assert float(normal["W0"].abs().max()) > 1.0 / math.sqrt(d)  # Gaussian, not the uniform


def test_torch_init_needs_the_standard_parameterisation():
    with pytest.raises(ValueError, match="model.init: torch .* needs model.parameterization"):
        Architecture(1, 8, "relu", 1.0, 0.0, "ntk", 2, init="torch")
    with pytest.raises(ValueError, match="model.init must be one of"):
        Architecture(1, 8, "relu", 1.0, 0.0, "standard", 2, init="xavier")


# ------------------------------------------------------------------- fixed order (no shuffling)
@pytest.mark.parametrize("first_layer", ["kernel", "standard"])
def test_fixed_order_matches_a_plain_in_order_loop(first_layer):
    """train.shuffle: false == DataLoader(shuffle=False) per model: batches at fixed boundaries
    of D, a left-out record removed from its batch, an empty batch a skipped step."""
    X, y = make_data(n=20, d=30)
    arch = arch_of("relu", "standard", False, width=8)
    tcfg = TrainConfig(
        epochs=3, batch_size=6, lr=0.1, momentum=0.9, loss="cross_entropy", shuffle=False
    )
    masks = np.ones((3, 20), dtype=bool)
    masks[1, 7] = False  # the out model of record 7: batch 1 holds 5 records
    masks[2, 6:12] = False  # batch 1 empty: 3 updates per epoch
    seeds = [41, 42, 43]
    opts = EnsembleOptions(first_layer=first_layer, dtype=torch.float64)
    res = train_ensemble(arch, tcfg, X, y, masks, seeds, opts)
    assert res.n_updates.tolist() == [12, 12, 9]
    for k in range(3):
        rp = ref_params(ref_train(arch, tcfg, X, y, masks[k], seeds[k], torch.float64), arch)
        for name, p in rp.items():
            torch.testing.assert_close(res.params[name][k], p, rtol=1e-9, atol=1e-10)
    shuffled = train_ensemble(
        arch,
        TrainConfig(epochs=3, batch_size=6, lr=0.1, momentum=0.9, loss="cross_entropy"),
        X,
        y,
        masks,
        seeds,
        EnsembleOptions(dtype=torch.float64),
    )
    assert not torch.allclose(shuffled.params["W0"], res.params["W0"])


# ------------------------------------------------------------------------------------ drop_last
@pytest.mark.parametrize("shuffle", [True, False])
def test_drop_last_skips_the_incomplete_last_batch_as_a_plain_loop(shuffle):
    """train.drop_last: 20 records in batches of 6 leave a last batch of 2 (in model) or 1 (out
    model), which is skipped every epoch: 3 updates per epoch, the same parameters as a plain
    loop without those batches; drop_last false (the default) keeps the 4th step."""
    X, y = make_data(n=20, d=30)
    arch = arch_of("relu", "standard", False, width=8)
    kw = dict(epochs=3, batch_size=6, lr=0.1, momentum=0.9, loss="cross_entropy", shuffle=shuffle)
    tcfg = TrainConfig(**kw, drop_last=True)
    masks = np.ones((3, 20), dtype=bool)
    masks[1, 19] = False  # out model of a record in the last block: 1 record left there
    masks[2, 3] = False  # out model of a record in the first block (fixed order: 5 in block 0)
    seeds = [41, 42, 43]
    res = train_ensemble(arch, tcfg, X, y, masks, seeds, EnsembleOptions(dtype=torch.float64))
    assert res.n_updates.tolist() == [9, 9, 9]
    for k in range(3):
        rp = ref_params(ref_train(arch, tcfg, X, y, masks[k], seeds[k], torch.float64), arch)
        for name, p in rp.items():
            torch.testing.assert_close(res.params[name][k], p, rtol=1e-9, atol=1e-10)
    kept = train_ensemble(
        arch, TrainConfig(**kw), X, y, masks, seeds, EnsembleOptions(dtype=torch.float64)
    )
    assert kept.n_updates.tolist() == [12, 12, 12]
    assert not torch.allclose(kept.params["W0"], res.params["W0"])

"""Snakemake entry point: NTK of the training split (float64), for nngp.kernel: ntk."""

import time

import numpy as np

from lood.arch import Architecture
from lood.data.split import Split
from lood.io import load_npz, savez
from lood.logs import setup_logging
from lood.nngp.kernel import log_jax_devices, ntk_kernels

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.ntk_kernel")
log_jax_devices(log)
split = Split.load(sm.input.split)
arch = Architecture.from_config(sm.params.model, split.n_classes)
t0 = time.perf_counter()
K, Theta = ntk_kernels(arch, split.x_train, batch_size=sm.params.batch_size)
log.info(
    "NTK %s for N=%d in %.1fs (%s); mean diagonal %.4g (NNGP kernel %.4g)",
    Theta.shape,
    len(Theta),
    time.perf_counter() - t0,
    arch,
    np.mean(np.diagonal(Theta)),
    np.mean(np.diagonal(K)),
)
# the NNGP kernel computed alongside agrees with nngp_kernel's (the NTK-GP uses that one)
dev = float(np.max(np.abs(K - load_npz(sm.input.kernel)["K"])))
log.info("max |K - nngp/kernel.npz K| = %.3g", dev)
savez(sm.output.ntk, Theta=Theta)

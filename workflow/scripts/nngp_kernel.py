"""Snakemake entry point: NNGP kernel of the training split (float64)."""

import time

from lood.arch import Architecture
from lood.data.split import Split
from lood.io import savez
from lood.logs import setup_logging
from lood.nngp.kernel import log_jax_devices, nngp_kernel

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.nngp_kernel")
log_jax_devices(log)
split = Split.load(sm.input.split)
arch = Architecture.from_config(sm.params.model, split.n_classes)
t0 = time.perf_counter()
K = nngp_kernel(arch, split.x_train, batch_size=sm.params.batch_size)
log.info("kernel %s for N=%d in %.1fs (%s)", K.shape, len(K), time.perf_counter() - t0, arch)
savez(sm.output.kernel, K=K)

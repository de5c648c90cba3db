"""Snakemake entry point: MI-FACE model inversion of the first in models (thin wrapper)."""

from lood.jobs import log_from_snakemake

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = log_from_snakemake(sm)  # the log first, then torch

import numpy as np  # noqa: E402
import torch  # noqa: E402

from lood.arch import Architecture  # noqa: E402
from lood.data.split import Split  # noqa: E402
from lood.io import savez, write_csv  # noqa: E402
from lood.privacy.reconstruction import mi_face, pixel_bounds, reconstruction_metrics  # noqa: E402
from lood.privacy.spec import InversionSpec  # noqa: E402
from lood.seeds import derive_seed  # noqa: E402
from lood.train.models import load_params, n_models, select_models  # noqa: E402

torch.set_num_threads(sm.threads)
p = InversionSpec.from_config(sm.params.inversion)
split = Split.load(sm.input.split)
arch = Architecture.from_config(sm.params.model, split.n_classes)
params, _ = load_params(sm.input.weights)
k = min(p.n_models, n_models(params))
params = select_models(params, list(range(k)))
# x = 0 (the mean image) is a stationary point of bias-free relu networks: start just off it
rng = np.random.default_rng(derive_seed(p.seed, "inversion"))
x0 = rng.normal(0.0, p.init_noise, size=split.x_train.shape[1])
res = mi_face(
    params,
    arch,
    p,
    x_init=x0,
    image_shape=tuple(split.image_shape),
    bounds=pixel_bounds(split.x_train),
    logger=log,
)
x_raw = split.unnormalize(res.x.reshape(-1, res.x.shape[-1])).reshape(res.x.shape)
# metrics in the normalised (mean-centred) space: raw images all correlate with the mean digit
metrics = reconstruction_metrics(res.x, split.x_train, split.y_train, split.n_classes)
metrics["confidence"] = res.confidence.reshape(-1)
log.info(
    "%d models x %d classes: confidence %.3f, correlation with the class mean %.3f, "
    "closest to its own class mean %.0f%%",
    k,
    split.n_classes,
    res.confidence.mean(),
    metrics["corr_class_mean"].mean(),
    100 * metrics["class_match"].mean(),
)
savez(
    sm.output.arrays,
    x=res.x,
    x_raw=x_raw,
    cost=res.cost,
    confidence=res.confidence,
    n_steps=np.asarray(res.n_steps),
)
write_csv(
    metrics,
    sm.output.metrics,
    allow_nan=["corr_class_mean", "corr_other_max", "corr_nearest_train"],
)

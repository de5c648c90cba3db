"""Snakemake entry point: PANORAMIA's baseline and MIA classifiers for the first in models."""

from lood.jobs import log_from_snakemake

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = log_from_snakemake(sm)  # the log first, then torch

import torch  # noqa: E402

from lood.arch import Architecture  # noqa: E402
from lood.data.split import Split  # noqa: E402
from lood.io import load_npz, write_csv  # noqa: E402
from lood.jobs.panoramia import Targets, audit_saved_models  # noqa: E402
from lood.privacy.panoramia import AttackSets  # noqa: E402
from lood.privacy.spec import PanoramiaSpec  # noqa: E402

torch.set_num_threads(sm.threads)
split = Split.load(sm.input.split)
targets = Targets(
    sm.input.weights,
    Architecture.from_config(sm.params.model, split.n_classes),
    sm.params.loss,
    sm.wildcards.experiment,
)
result = audit_saved_models(
    AttackSets.load(sm.input.sets),
    load_npz(sm.input.helper),
    targets,
    split,
    PanoramiaSpec.from_config(sm.params.panoramia),
    threads=sm.threads,
    log=log,
)
write_csv(result.summary, sm.output.table)
write_csv(result.thresholds, sm.output.thresholds)
write_csv(result.curves, sm.output.curves)

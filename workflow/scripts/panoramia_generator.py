"""Snakemake entry point: PANORAMIA's generator (a class-conditional VAE on the generator part of
D), the non-members it generates, and a grid of real and generated images per class."""

from lood.jobs import log_from_snakemake

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = log_from_snakemake(sm)  # the log first, then torch

import torch  # noqa: E402

from lood.data.split import Split  # noqa: E402
from lood.io import atomic_path, savez, write_csv  # noqa: E402
from lood.jobs.panoramia import generate_nonmembers, load_member_split  # noqa: E402
from lood.privacy.panoramia import save_generator  # noqa: E402
from lood.privacy.spec import PanoramiaSpec  # noqa: E402

torch.set_num_threads(sm.threads)
spec = PanoramiaSpec.from_config(sm.params.panoramia)
split = Split.load(sm.input.split)
generated = generate_nonmembers(split, load_member_split(sm.input.members), spec, log)
with atomic_path(sm.output.generator) as tmp:
    save_generator(tmp, generated.model)
generated.sets.save(sm.output.sets)
savez(sm.output.samples, **generated.grid)
write_csv(generated.metrics, sm.output.metrics)

"""Snakemake entry point: train the TracIn / influence-function model with checkpoints."""

import torch

from lood.arch import Architecture
from lood.config import derive_seed
from lood.data import Split
from lood.dp import dp_config
from lood.influence import train_with_checkpoints
from lood.io import atomic_path
from lood.logs import setup_logging
from lood.training import pick_device, train_config

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.train_influence")
torch.set_num_threads(max(1, int(sm.threads)))
split = Split.load(sm.input.split)
train = sm.params.train
arch = Architecture.from_config(sm.params.model, split.n_classes)
seed = derive_seed(int(train["seed"]), "tracin")
ckpts, loss = train_with_checkpoints(
    arch,
    train_config(train),
    torch.tensor(split.x_train, dtype=torch.float32),
    torch.tensor(split.y_train, dtype=torch.int64),
    seed=seed,
    every=int(sm.params.checkpoint_every),
    device=pick_device(train.get("device", "auto")),
    progress=log,
    dp=dp_config(train, len(split.y_train)),  # DP-SGD when the experiment trains with it
)
with atomic_path(sm.output.checkpoints) as tmp:
    ckpts.save(tmp)
log.info("influence model (%s, seed %d): final training loss %.4g, %d checkpoints at epochs %s",
         arch.activation, seed, loss, len(ckpts.epochs), ckpts.epochs.tolist())  # fmt: skip

"""Snakemake entry point: train the random-subset models of the memorization estimator."""

from lood.data import Split
from lood.logs import setup_logging
from lood.memorization import train_subsets

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.train_subsets")
train_subsets(
    split=Split.load(sm.input.split),
    model_cfg=sm.params.model,
    train_cfg=sm.params.train,
    mem_cfg=sm.params.memorization,
    out_npz=sm.output.subsets,
    threads=sm.threads,
    logger=log,
)

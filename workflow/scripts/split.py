"""Snakemake entry point: data split and differing records (thin wrapper around lood.data)."""

from lood.data.differ import choose_differ, read_differ_csv, write_differ_csv
from lood.data.readers import load_dataset
from lood.data.spec import DataSpec, DifferSpec
from lood.data.split import make_split
from lood.logs import setup_logging

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.split")
data = DataSpec.from_config(sm.params.data)
differ = DifferSpec.from_config(sm.params.differ)

ds = load_dataset(
    data.dataset,
    root=data.root,
    download=data.download,
    path=sm.input.get("data"),
)
log.info(
    "loaded %s: %d train-pool records, %d test records", ds.name, len(ds.y_train), len(ds.y_test)
)
split = make_split(
    ds,
    classes=list(data.classes),
    n_train=data.n_train,
    n_test=data.n_test,
    balanced=data.balanced,
    normalization=data.normalization,
    seed=data.seed,
)
split.save(sm.output.split)
if sm.input.get("differ_csv"):
    idx = read_differ_csv(sm.input.differ_csv, len(split.y_train))
else:
    idx = choose_differ(split.y_train, differ.n, differ.seed, strategy=differ.strategy)
write_differ_csv(sm.output.differ, idx, split.y_train)
log.info(
    "split: %d train, %d test, %d differing records",
    len(split.y_train),
    len(split.y_test),
    len(idx),
)

"""Snakemake entry point: data split and differing records (thin wrapper around lood.data)."""

from lood.data import choose_differ, load_dataset, make_split, read_differ_csv, write_differ_csv
from lood.logs import setup_logging

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.split")
data, differ = sm.params.data, sm.params.differ

ds = load_dataset(
    data["dataset"],
    root=data.get("root"),
    download=bool(data.get("download")),
    path=sm.input.get("data"),
)
log.info(
    "loaded %s: %d train-pool records, %d test records", ds.name, len(ds.y_train), len(ds.y_test)
)
split = make_split(
    ds,
    classes=data["classes"],
    n_train=data["n_train"],
    n_test=data["n_test"],
    balanced=data["balanced"],
    normalization=data["normalization"],
    seed=data["seed"],
)
split.save(sm.output.split)
if sm.input.get("differ_csv"):
    idx = read_differ_csv(sm.input.differ_csv, len(split.y_train))
else:
    idx = choose_differ(split.y_train, differ["n"], differ["seed"], strategy=differ["strategy"])
write_differ_csv(sm.output.differ, idx, split.y_train)
log.info(
    "split: %d train, %d test, %d differing records",
    len(split.y_train),
    len(split.y_test),
    len(idx),
)

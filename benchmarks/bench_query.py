"""Query optimisation success rate and cost on a finished experiment: for the first
``--n-records`` differing records, the optimised KL LOOD against the LOOD at the record itself
(success: >= 0.99 of it), the kernel cosine and pixel L2 to the record, and the wall and CPU
seconds of the whole stage (kernel objective, data starts, every ascent), as the
``optimize_query`` rule runs it. ``--data-starts 0`` is the single-start ascent.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_query.py --n-records 20
    PYTHONPATH=src .venv/bin/python benchmarks/bench_query.py --n-records 20 --data-starts 0
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

import lood.config as lc
from lood.arch import Architecture
from lood.data.split import Split
from lood.io import load_npz
from lood.nngp.query import (
    data_starts,
    initial_query,
    make_objective,
    optimize_query,
    reconstruction_row,
)
from lood.nngp.spec import QuerySpec
from lood.seeds import derive_seed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--configfile", default="config.yaml")
    ap.add_argument("--experiment", default=None)
    ap.add_argument("--n-records", type=int, default=20)
    ap.add_argument("--data-starts", type=int, default=None, help="default: the config's")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    config = lc.load_config(yaml.safe_load(Path(args.configfile).read_text()))
    name = args.experiment or next(iter(config["experiments"]))
    cfg = lc.experiment(config, name)
    q = QuerySpec.from_config(cfg["query"])
    n_data = q.data_starts if args.data_starts is None else args.data_starts
    base = Path(config["results"]) / name
    t0, c0 = time.perf_counter(), time.process_time()
    split = Split.load(base / "data" / "split.npz")
    arch = Architecture.from_config(cfg["model"], split.n_classes)
    K = load_npz(base / "nngp" / "kernel.npz")["K"]
    obj = make_objective(arch, split.x_train, K, split.y_train, float(cfg["nngp"]["sigma2"]))
    records = pd.read_csv(base / "differ.csv").differ_idx.to_numpy()[: args.n_records]
    rows = []
    for record in records:
        q0, baseline = initial_query(
            split.x_train,
            int(record),
            q.query_size,
            q.init,
            derive_seed(q.seed, "query", int(record)),
        )
        q_data, idx = data_starts(obj, K, int(record), n_data, q.query_size)
        res = optimize_query(obj, int(record), np.concatenate([q0[None], q_data]), q)
        rows.append(
            reconstruction_row(obj, res, int(record), baseline, split.unnormalize, idx, q.init)
        )
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    df = pd.DataFrame(rows)
    cols = [
        "differ_idx",
        "lood_at_record",
        "lood_optimized",
        "ratio",
        "kernel_cosine",
        "pixel_l2",
        "baseline_pixel_l2",
        "n_steps",
        "start",
        "start_record",
    ]
    print(df[cols].round(4).to_string(index=False))
    ok = df.ratio >= 0.99
    print(
        f"{name}: {n_data} data starts; {ok.sum()}/{len(df)} records reach >= 0.99 of their "
        f"LOOD; {wall:.1f} s wall, {cpu:.1f} s CPU ({wall / len(df):.2f} s per record)"
    )
    if args.out:
        df.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()

"""Snakemake entry point: gradient ascent on KL LOOD over queries (reconstruction of records)."""

import time

import numpy as np
import pandas as pd

from lood.arch import Architecture
from lood.data.split import Split
from lood.io import load_npz, savez, write_csv
from lood.logs import setup_logging
from lood.nngp.evidence import resolve_sigma2
from lood.nngp.landscape import landscape_records
from lood.nngp.query import (
    data_starts,
    initial_query,
    make_objective,
    optimize_query,
    reconstruction_row,
)
from lood.nngp.spec import QuerySpec
from lood.seeds import derive_seed

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.optimize_query")
p = QuerySpec.from_config(sm.params.query)
split = Split.load(sm.input.split)
arch = Architecture.from_config(sm.params.model, split.n_classes)
K = load_npz(sm.input.kernel)["K"]
sigma2 = resolve_sigma2(sm.params.sigma2, sm.input.get("sigma2"))
obj = make_objective(arch, split.x_train, K, split.y_train, sigma2)
records = landscape_records(pd.read_csv(sm.input.differ)["differ_idx"].to_numpy(), p.n_records)
rows, hist, best, init = [], [], [], []
for record in records:
    q0, baseline = initial_query(
        split.x_train, int(record), p.query_size, p.init, derive_seed(p.seed, "query", int(record))
    )
    q_data, idx_data = data_starts(obj, K, int(record), p.data_starts, p.query_size)
    t0 = time.perf_counter()
    res = optimize_query(
        obj, int(record), np.concatenate([q0[None], q_data]), p, log_every=50, logger=log
    )
    row = reconstruction_row(obj, res, int(record), baseline, split.unnormalize, idx_data, p.init)
    log.info(
        "record %d: LOOD %.4g at the record, %.4g -> %.4g (x %.4f) optimised in %d steps "
        "(%.1fs) from start %s %d of %d (best per start %s); kernel cosine %.3f (baseline "
        "%.3f), pixel L2 %.3f (baseline %.3f)",
        record,
        row["lood_at_record"],
        row["lood_init"],
        row["lood_optimized"],
        row["ratio"],
        row["n_steps"],
        time.perf_counter() - t0,
        row["start"],
        row["start_record"],
        row["n_starts"],
        np.array2string(res.start_best, precision=4),
        row["kernel_cosine"],
        row["baseline_kernel_cosine"],
        row["pixel_l2"],
        row["baseline_pixel_l2"],
    )
    rows.append(row)
    hist.append(
        pd.DataFrame(
            {"differ_idx": int(record), "step": np.arange(len(res.history)), "kl_lood": res.history}
        )
    )
    best.append(res.query)
    init.append(res.init)
savez(
    sm.output.queries,
    records=records,
    queries=np.stack(best),
    init=np.stack(init),
    queries_raw=np.stack([split.unnormalize(b) for b in best]),
)
write_csv(pd.concat(hist, ignore_index=True), sm.output.history)
write_csv(pd.DataFrame(rows), sm.output.table)

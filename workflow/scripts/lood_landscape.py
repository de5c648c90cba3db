"""Snakemake entry point: NNGP LOOD of each landscape record at its perturbed queries."""

import numpy as np
import pandas as pd

from lood.arch import Architecture
from lood.data.split import Split
from lood.io import load_npz, write_csv
from lood.logs import setup_logging
from lood.nngp.evidence import resolve_sigma2
from lood.nngp.gp import centred_one_hot, fit_gp
from lood.nngp.query import lood_landscape

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.lood_landscape")
split = Split.load(sm.input.split)
q = load_npz(sm.input.queries)
arch = Architecture.from_config(sm.params.model, split.n_classes)
sigma2 = resolve_sigma2(sm.params.sigma2, sm.input.get("sigma2"))
fit = fit_gp(
    load_npz(sm.input.kernel)["K"], centred_one_hot(split.y_train, split.n_classes), sigma2
)
parts = []
for record, queries in zip(q["records"], q["queries"], strict=True):
    res = lood_landscape(fit, arch, split.x_train, queries, int(record))
    parts.append(
        pd.DataFrame(
            {
                "differ_idx": int(record),
                "t": q["t"],
                "kl_lood": res["kl"],
                "mean_dist_lood": res["mean_dist"],
                "nngp_auc": res["auc"],
            }
        )
    )
    at0 = res["kl"][np.argmin(np.abs(q["t"]))]
    log.info(
        "record %d: KL LOOD max %.4g at t=%g (at t=0: %.4g)",
        record,
        res["kl"].max(),
        q["t"][np.argmax(res["kl"])],
        at0,
    )
write_csv(pd.concat(parts, ignore_index=True), sm.output[0])

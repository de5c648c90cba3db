"""r(KL LOOD, MIA AUC) of one finished experiment under the NNGP and the NTK-GP, with the
configured sigma2 and with sigma2 by the evidence (what ``nngp.kernel`` and ``nngp.sigma2: auto``
would give), recomputed offline from its data/split.npz, differ.csv, mia.csv and nngp/kernel.npz:
no network is retrained. Also times each variant (the NTK, the evidence search, the LOOD tables).

    PYTHONPATH=src .venv/bin/python benchmarks/lood_variants.py --configfile config.yaml
    PYTHONPATH=src .venv/bin/python benchmarks/lood_variants.py \\
        --configfile config/relu_vs_gelu.yaml --experiment gelu
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy import stats

import lood.config as lc
from lood.arch import Architecture
from lood.data.split import Split
from lood.io import load_npz
from lood.nngp.evidence import choose_sigma2
from lood.nngp.gp import centred_one_hot
from lood.nngp.kernel import ntk_kernels
from lood.nngp.tables import lood_table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--configfile", default="config.yaml")
    ap.add_argument("--experiment", default=None, help="default: the config's first experiment")
    ap.add_argument("--out", default=None, help="also write the table as CSV here")
    args = ap.parse_args()
    config = lc.load_config(yaml.safe_load(Path(args.configfile).read_text()))
    name = args.experiment or next(iter(config["experiments"]))
    cfg = lc.experiment(config, name)
    base = Path(config["results"]) / name
    split = Split.load(base / "data" / "split.npz")
    differ = pd.read_csv(base / "differ.csv").differ_idx.to_numpy()
    mia = pd.read_csv(base / "mia.csv").set_index("differ_idx").loc[differ]
    K = load_npz(base / "nngp" / "kernel.npz")["K"]
    arch = Architecture.from_config(cfg["model"], split.n_classes)
    t0 = time.perf_counter()
    _, theta = ntk_kernels(arch, split.x_train, batch_size=cfg["nngp"]["kernel_batch_size"])
    t_ntk = time.perf_counter() - t0
    Y = centred_one_hot(split.y_train, split.n_classes)
    fixed = cfg["nngp"]["sigma2"] if cfg["nngp"]["sigma2"] != "auto" else 0.05
    rows = []
    for kernel, mat in (("nngp", K), ("ntk", theta)):
        t0 = time.perf_counter()
        ev = choose_sigma2(mat, Y, kernel)
        t_ev = time.perf_counter() - t0
        for choice, s2 in ((f"{fixed:g}", fixed), ("auto", ev["sigma2"])):
            t0 = time.perf_counter()
            table = lood_table(
                K,
                split.y_train,
                split.n_classes,
                s2,
                differ,
                Theta=theta if kernel == "ntk" else None,
            )
            t_lood = time.perf_counter() - t0
            kl = table.kl_lood.to_numpy()
            auc = mia.mia_auc.to_numpy()
            rows.append(
                {
                    "experiment": name,
                    "kernel": kernel,
                    "sigma2": choice,
                    "sigma2_value": s2,
                    "at_bound": ev["at_bound"] if choice == "auto" else False,
                    "pearson_kl_mia": stats.pearsonr(kl, auc)[0],
                    "spearman_kl_mia": stats.spearmanr(kl, auc)[0],
                    "pearson_logkl_mia": stats.pearsonr(np.log(kl), auc)[0],
                    "pearson_gpauc_mia": stats.pearsonr(table.nngp_auc, auc)[0],
                    "kl_median": float(np.median(kl)),
                    "lood_s": t_lood,
                    "evidence_s": t_ev if choice == "auto" else 0.0,
                    "ntk_kernel_s": t_ntk if kernel == "ntk" else 0.0,
                }
            )
    df = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(df.round(4).to_string(index=False))
    print(
        f"N = {len(K)}, {len(differ)} records; mean diag K {np.mean(np.diagonal(K)):.4g}, "
        f"Theta {np.mean(np.diagonal(theta)):.4g}"
    )
    if args.out:
        df.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()

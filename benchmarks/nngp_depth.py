"""r(LOOD, MIA) of one finished experiment at each NNGP depth (``nngp.depth``), recomputed offline
from its data/split.npz, differ.csv and mia.csv: the trained networks do not change, only the
kernel's depth. Depths 1 to a few beyond the model's (``--extra``). Per depth: Pearson and
Spearman r of KL LOOD vs MIA AUC, Pearson r of the NNGP AUC vs MIA AUC (the original's headline
correlation), ours of mean-distance LOOD vs pred_diff, and the original's mean-distance metric:
sqrt(||delta||^2 / (2C)) vs sqrt(pred_diff_halves).

    PYTHONPATH=src .venv/bin/python benchmarks/nngp_depth.py --configfile config.yaml \\
        --results /tmp/results
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
from lood.nngp.kernel import nngp_kernel
from lood.nngp.spec import NNGPSpec
from lood.nngp.tables import lood_table


def depth_table(cfg: dict, base: Path, depths: list[int]) -> pd.DataFrame:
    """One row per NNGP depth: the correlations above for the experiment under ``base``."""
    split = Split.load(base / "data" / "split.npz")
    differ = pd.read_csv(base / "differ.csv").differ_idx.to_numpy()
    mia = pd.read_csv(base / "mia.csv").set_index("differ_idx").loc[differ]
    spec = NNGPSpec.from_config(cfg["nngp"])
    sigma2 = 0.05 if spec.sigma2 == "auto" else float(spec.sigma2)
    auc = mia.mia_auc.to_numpy()
    rows = []
    for depth in depths:
        model = NNGPSpec.from_config(cfg["nngp"] | {"depth": depth}).kernel_model(cfg["model"])
        arch = Architecture.from_config(model, split.n_classes)
        t0 = time.perf_counter()
        K = nngp_kernel(arch, split.x_train, batch_size=spec.kernel_batch_size)
        table = lood_table(K, split.y_train, split.n_classes, sigma2, differ)
        md = table.mean_dist_lood.to_numpy()
        rows.append(
            {
                "depth": depth,
                "model_depth": int(cfg["model"]["depth"]),
                "pearson_kl_mia": stats.pearsonr(table.kl_lood, auc)[0],
                "spearman_kl_mia": stats.spearmanr(table.kl_lood, auc)[0],
                "pearson_gpauc_mia": stats.pearsonr(table.nngp_auc, auc)[0],
                "pearson_md_diff": stats.pearsonr(md, mia.pred_diff)[0],
                "orig_md_diff": stats.pearsonr(
                    np.sqrt(md / (2 * split.n_classes)), np.sqrt(mia.pred_diff_halves)
                )[0],
                "seconds": time.perf_counter() - t0,
            }
        )
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--configfile", default="config.yaml")
    ap.add_argument("--experiment", default=None, help="default: the config's first experiment")
    ap.add_argument("--results", default=None, help="default: the config's results folder")
    ap.add_argument("--extra", type=int, default=3, help="depths beyond the model's")
    ap.add_argument("--out", default=None, help="also write the table as CSV here")
    args = ap.parse_args()
    config = lc.load_config(yaml.safe_load(Path(args.configfile).read_text()))
    name = args.experiment or next(iter(config["experiments"]))
    cfg = lc.experiment(config, name)
    base = Path(args.results or config["results"]) / name
    depths = list(range(1, int(cfg["model"]["depth"]) + args.extra + 1))
    df = depth_table(cfg, base, depths)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(f"{name} ({base}), sigma2 {cfg['nngp']['sigma2']}, {len(depths)} depths")
        print(df.round(4).to_string(index=False))
    if args.out:
        df.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()

"""Does the privacy onion predict what retrained networks show? For the records whose GP LOOD
rises most once the onion's layers are peeled (and control records whose LOOD does not move),
train in and out networks on D and on D minus every peeled record, and compare the MIA AUC.

Reads a finished experiment (``data/split.npz``, ``models/in_weights.safetensors``) and its
``onion.csv`` (``snakemake results/<experiment>/onion.csv --config 'onion={enabled: true}'``).
In models on D are the experiment's own (``in_weights``); every other model is trained here with
the experiment's ``train`` settings, ``n_in`` / ``n_out`` of them per set. The models on D minus the
peeled records reuse the seeds of their counterparts on D (the same initialisations), so the
difference in MIA AUC is not also a difference of random seeds.

    PYTHONPATH=src .venv/bin/python benchmarks/onion_retrain.py --configfile config.yaml

A script, not a rule: it retrains ~2 000 networks (minutes) to check the method once, and its
answer is a statement about the onion, not an output every experiment needs.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

import lood.config as lc
from lood.arch import Architecture
from lood.data.split import Split
from lood.figures.onion import onion_rise
from lood.io import load_npz
from lood.jobs.training import fit_ensemble, out_masks_and_seeds, saved_model_outputs, start_job
from lood.nngp.evidence import resolve_sigma2
from lood.nngp.tables import lood_table
from lood.privacy.mia import half_split_auc
from lood.privacy.signals import margin_score
from lood.seeds import derive_seed
from lood.train.spec import TrainSpec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--configfile", default="config.yaml")
    ap.add_argument("--experiment", default=None, help="default: the config's first experiment")
    ap.add_argument("--n-records", type=int, default=5, help="records whose LOOD rises most")
    ap.add_argument("--n-controls", type=int, default=5, help="records whose LOOD stays put")
    ap.add_argument(
        "--random-peel",
        action="store_true",
        help="peel as many random records (not the onion's) from D instead: a control",
    )
    ap.add_argument(
        "--retrain-in",
        action="store_true",
        help="train the in models on D here too (when the train settings differ from the saved "
        "models', e.g. train.drop_last: true) instead of reading in_weights",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="default benchmarks/out/onion_retrain[_random].csv")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    log = logging.getLogger("onion_retrain")
    config = lc.load_config(yaml.safe_load(Path(args.configfile).read_text()))
    name = args.experiment or next(iter(config["experiments"]))
    cfg = lc.experiment(config, name)
    base = Path(config["results"]) / name
    split = Split.load(base / "data" / "split.npz")
    arch = Architecture.from_config(cfg["model"], split.n_classes)
    train = TrainSpec.from_config(cfg["train"])
    onion = pd.read_csv(base / "onion.csv")
    n = len(split.y_train)
    peeled = np.sort(onion.idx[onion.removed].to_numpy())
    rise = onion_rise(onion)
    risers = rise.index[: args.n_records].to_numpy()
    rng = np.random.default_rng(0)
    steady = rise[(rise.rise - 1).abs() < 0.01].index.to_numpy()
    controls = np.sort(rng.choice(steady, size=min(args.n_controls, len(steady)), replace=False))
    records = np.concatenate([risers, controls]).astype(np.int64)
    if args.random_peel:
        pool = np.setdiff1d(np.arange(n), records)
        peeled = np.sort(rng.choice(pool, size=len(peeled), replace=False))
    log.info(
        "%s: %d peeled records (%s); risers %s, controls %s",
        name,
        len(peeled),
        "random" if args.random_peel else "the onion's",
        risers.tolist(),
        controls.tolist(),
    )
    # GP LOOD of the records on D and on D minus the peeled records, each from its own fit
    K = load_npz(base / "nngp" / "kernel.npz")["K"]
    theta = load_npz(base / "nngp" / "ntk.npz")["Theta"] if cfg["nngp"]["kernel"] == "ntk" else None
    s2_file = base / "nngp" / f"sigma2_{cfg['nngp']['kernel']}.json"
    s2 = resolve_sigma2(cfg["nngp"]["sigma2"], str(s2_file))
    gp = {}
    for tag, kept in (("D", np.arange(n)), ("peeled", np.setdiff1d(np.arange(n), peeled))):
        sub = np.ix_(kept, kept)
        tab = lood_table(
            K[sub],
            split.y_train[kept],
            split.n_classes,
            s2,
            np.array([], int),
            "all",
            Theta=None if theta is None else theta[sub],
        )
        gp[tag] = tab.assign(idx=kept).set_index("idx")

    job = start_job(split, arch, train, f"onion check of {name!r}", args.threads, log)
    x_rec = split.x_train[records]
    t0 = time.perf_counter()
    # in models: on D (the experiment's own) and on D minus the peeled records (same seeds)
    in_seeds = np.array([derive_seed(train.seed, "in", i) for i in range(train.n_in)])
    if args.retrain_in:
        in_d = fit_ensemble(
            job, np.ones((train.n_in, n), dtype=bool), in_seeds, {"rec": x_rec}
        ).outputs["rec"]
    else:
        in_d = saved_model_outputs(
            str(base / "models" / "in_weights.safetensors"), arch, x_rec[None]
        )[:, 0]
    keep = np.ones((train.n_in, n), dtype=bool)
    keep[:, peeled] = False
    in_p = fit_ensemble(job, keep, in_seeds, {"rec": x_rec}).outputs["rec"]
    # out models of each record: on D minus the record, and on D minus the record and the peel
    masks, seeds = out_masks_and_seeds(n, records, train)
    tag = "_drop_last" if train.drop_last else ""
    cache = Path("benchmarks/out") / f"onion_out_D_{name}_{'-'.join(map(str, records))}{tag}.npz"
    cache_hit = cache.exists()
    if cache_hit:  # the out models on D do not depend on the peel: train them once
        out_d = np.load(cache)["out_d"]
    else:
        out_d = fit_ensemble(job, masks, seeds, {"rec": x_rec}).outputs["rec"]
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, out_d=out_d)
    masks_p = masks.copy()
    masks_p[:, peeled] = False
    out_p = fit_ensemble(job, masks_p, seeds, {"rec": x_rec}).outputs["rec"]
    seconds = time.perf_counter() - t0
    if not args.random_peel:  # the onion's downdates agree with the refit on D minus the peel
        last = onion[onion.layer == onion.layer.max()].set_index("idx").kl_lood.loc[records]
        dev = float(np.max(np.abs(last / gp["peeled"].kl_lood.loc[records] - 1)))
        log.info("onion.csv vs refit without the peel: max relative KL LOOD difference %.2g", dev)
    k = train.n_out
    rows = []
    for j, r in enumerate(records):
        label = int(split.y_train[r])
        aucs = {}
        for tag, ins, outs in (("D", in_d, out_d), ("peeled", in_p, out_p)):
            s_in = margin_score(ins[:, j], label)
            s_out = margin_score(outs[j * k : (j + 1) * k, j], label)
            aucs[tag] = half_split_auc(
                s_in, s_out, n_splits=cfg["mia"]["n_splits"], seed=cfg["mia"]["seed"] + j
            )
        rows.append(
            {
                "idx": int(r),
                "group": "riser" if r in risers else "control",
                "kl_lood_D": gp["D"].kl_lood.loc[r],
                "kl_lood_peeled": gp["peeled"].kl_lood.loc[r],
                "kl_rise": gp["peeled"].kl_lood.loc[r] / gp["D"].kl_lood.loc[r],
                "gp_auc_D": gp["D"].nngp_auc.loc[r],
                "gp_auc_peeled": gp["peeled"].nngp_auc.loc[r],
                "mia_auc_D": aucs["D"][0],
                "mia_auc_D_std": aucs["D"][1],
                "mia_auc_peeled": aucs["peeled"][0],
                "mia_auc_peeled_std": aucs["peeled"][1],
            }
        )
    table = pd.DataFrame(rows)
    table["gp_auc_change"] = table.gp_auc_peeled - table.gp_auc_D
    table["mia_auc_change"] = table.mia_auc_peeled - table.mia_auc_D
    with pd.option_context("display.width", 220, "display.max_columns", 30):
        print(table.round(4).to_string(index=False))
    summary = table.groupby("group")[["kl_rise", "gp_auc_change", "mia_auc_change"]].mean()
    print(summary.round(4).to_string())
    print(
        f"peeled: {'random' if args.random_peel else 'onion'} ({len(peeled)} records), "
        f"train.drop_last {train.drop_last}"
    )
    n_models = len(in_seeds) * (2 if args.retrain_in else 1) + len(seeds) * (1 if cache_hit else 2)
    print(f"{n_models} networks trained in {seconds:.0f} s ({n_models / seconds:.1f}/s)")
    out = Path(
        args.out or f"benchmarks/out/onion_retrain{'_random' if args.random_peel else ''}.csv"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)


if __name__ == "__main__":
    main()

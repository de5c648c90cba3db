"""Snakemake entry point: correlation of NNGP LOOD with the retrained-model ground truth (and,
with the attacks stage on, with each attack's per-record AUC), with the ground truth's noise
ceiling from mia_halves.csv."""

import pandas as pd

from lood.figures.correlation import Panel, correlation_figure
from lood.figures.spec import PlotSpec
from lood.logs import setup_logging
from lood.privacy.mia import attack_auc_columns, noise_ceilings
from lood.privacy.spec import MiaSpec
from lood.stats import correlation_stats, with_ceilings, write_correlation_stats

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.plot_correlation")
df = pd.read_csv(sm.input.mia).merge(pd.read_csv(sm.input.lood), on=["differ_idx", "label"])
p = PlotSpec.from_config(sm.params.plots)
reliability = noise_ceilings(pd.read_csv(sm.input.halves), MiaSpec.from_config(sm.params.mia).seed)
rows = correlation_figure(
    df,
    [
        Panel("kl_lood", "mia_auc", "NNGP KL LOOD", "MIA AUC (retrained NNs)", logx=True),
        Panel(
            "mean_dist_lood", "pred_diff", "NNGP mean-distance LOOD", "prediction difference (NNs)"
        ),
        Panel("nngp_auc", "mia_auc", "NNGP AUC", "MIA AUC (retrained NNs)"),
    ],
    sm.output.figures,
    title=f"{sm.wildcards.experiment}: LOOD vs leave-one-out retraining ({len(df)} records)",
    plots=p,
    reliability=reliability,
)
if "attacks" in sm.input.keys():  # the attacks stage is on: KL LOOD vs each attack's AUC too
    attacks = pd.read_csv(sm.input.attacks)
    merged = attacks.merge(df[["differ_idx", "kl_lood"]], on="differ_idx", validate="1:1")
    rows += [
        {"x": "kl_lood", "y": col, **correlation_stats(merged.kl_lood, merged[col])}
        for col in attack_auc_columns(attacks)
    ]
for y, rel in reliability.items():
    log.info(
        "noise ceiling of %s: split-half r %.3f, Spearman-Brown %.3f (95%% %.3f-%.3f)",
        y,
        rel["split_half_r"],
        rel["reliability"],
        rel["reliability_lo"],
        rel["reliability_hi"],
    )
write_correlation_stats(with_ceilings(rows, reliability), sm.output.stats, log)

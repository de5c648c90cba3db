"""Snakemake entry point: class averages beside MI-FACE reconstructions and NNGP queries."""

import pandas as pd

from lood.data.split import Split
from lood.figures.common import save_figure
from lood.figures.privacy import inversion_figure
from lood.figures.spec import PlotSpec
from lood.io import load_npz, write_csv
from lood.logs import setup_logging
from lood.privacy.audit import experiment_label, models_epsilon
from lood.privacy.reconstruction import class_means, inversion_comparison

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.plot_inversion")
split = Split.load(sm.input.split)
x_raw = split.unnormalize(split.x_train)
means = class_means(x_raw, split.y_train, split.n_classes)  # shown
# compared in the normalised (mean-centred) space: raw images all correlate with the mean digit
means_norm = class_means(split.x_train, split.y_train, split.n_classes)
# reconstructions are shown as deviations from the mean image (the normalised space), where
# the class signal is; in raw pixels every image looks like the average digit
recons = {"class mean − mean image": means_norm}
inversions = {}
for e in sm.params.experiments:
    inv = load_npz(sm.input[f"inv_{e}"])
    eps = models_epsilon(load_npz(sm.input[f"in_{e}"]))
    recons[experiment_label(e, eps).replace("\n", ", ")] = inv["x"][0]  # the first model
    inversions[e] = (eps, pd.read_csv(sm.input[f"metrics_{e}"]), inv["confidence"])
extra, query = None, None
if "query" in sm.input.keys():
    q = load_npz(sm.input.query)
    records = q["records"].astype(int)
    query = (records, split.x_train[records], q["queries"][:, 0, :], split.y_train[records])
    extra = {"NNGP query target": x_raw[records], "NNGP optimised query": q["queries_raw"][:, 0, :]}
table = inversion_comparison(inversions, means_norm, query)
write_csv(
    table, sm.output.table, allow_nan=["epsilon", "confidence", "corr_target", "corr_class_mean"]
)
titles = [f"class {c}" for c in split.classes]
fig = inversion_figure(means, recons, split.image_shape, extra=extra, titles=titles)
save_figure(fig, sm.output.figures, dpi=PlotSpec.from_config(sm.params.plots).dpi)
for r in table.itertuples():
    log.info(
        "%s %s%s: correlation with its target %.3f, with the class mean %.3f",
        r.method,
        r.experiment,
        "" if r.record < 0 else f" record {r.record}",
        r.corr_target,
        r.corr_class_mean,
    )

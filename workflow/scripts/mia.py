"""Snakemake entry point: per-record MIA AUC and prediction difference from the in/out models,
and both again on two halves of the models (mia_halves.csv, for the noise ceiling)."""

import pandas as pd

from lood.io import load_npz, write_csv
from lood.logs import setup_logging
from lood.privacy.mia import mia_halves_table, mia_table
from lood.privacy.spec import MiaSpec

sm = snakemake  # type: ignore[name-defined]  # noqa: F821
log = setup_logging(sm.log[0], "lood.mia")
mia = MiaSpec.from_config(sm.params.mia)
differ = pd.read_csv(sm.input.differ)
models_in = load_npz(sm.input.models_in)
models_out = [load_npz(p) for p in sm.input.models_out]
table = mia_table(differ=differ, models_in=models_in, models_out=models_out, spec=mia)
write_csv(table, sm.output[0])
write_csv(mia_halves_table(differ, models_in, models_out, mia), sm.output.halves)
log.info(
    "MIA AUC (score %s) mean %.3f (min %.3f, max %.3f) over %d records",
    mia.score,
    table.mia_auc.mean(),
    table.mia_auc.min(),
    table.mia_auc.max(),
    len(table),
)

"""Membership inference on retrained models: the half-split Gaussian MIA of ``mia.csv``
(``retrained``) and the attacks of the literature (LiRA, RMIA: ``pools``, ``attacks``,
``evaluation``) with the attack stage's tables (``tables``)."""

from lood.lazy import exports

#: public name -> module of this package that defines it (what is used from outside it)
PUBLIC = {
    "attack_auc_columns": "tables",
    "attack_tables": "tables",
    "half_split_auc": "retrained",
    "MIA_SCORES": "retrained",
    "mia_halves_table": "retrained",
    "mia_landscape_table": "retrained",
    "mia_table": "retrained",
    "N_HALVES": "retrained",
    "noise_ceilings": "retrained",
    "record_mia": "retrained",
    "stack_models": "tables",
}
__all__ = sorted(PUBLIC)
__getattr__ = exports(__name__, PUBLIC)

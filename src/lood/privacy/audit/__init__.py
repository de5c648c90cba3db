"""Auditing DP training: the one-run audit (``one_run``) with its canaries (``canaries``), and
the DP experiments side by side (``dp_tables``)."""

from lood.lazy import exports

#: public name -> module of this package that defines it (what is used from outside it)
PUBLIC = {
    "audit_table": "one_run",
    "canary_inclusion": "one_run",
    "canary_scores": "canaries",
    "dp_summary": "dp_tables",
    "dp_table": "dp_tables",
    "epsilon_lower_bound": "one_run",
    "experiment_label": "dp_tables",
    "make_canaries": "canaries",
    "models_epsilon": "dp_tables",
}
__all__ = sorted(PUBLIC)
__getattr__ = exports(__name__, PUBLIC)

"""Privacy stage: the retrained-model MIA, the one-run audit and its canaries, DP tables,
MI-FACE model inversion and what reconstructions recover."""

from lood.lazy import exports

#: public name -> module of this package that defines it (imported on first use)
PUBLIC = {
    "audit_table": "audit",
    "AuditSpec": "spec",
    "Bound": "inversion",
    "canary_inclusion": "audit",
    "canary_scores": "canaries",
    "class_means": "reconstruction",
    "dp_summary": "dp_tables",
    "dp_table": "dp_tables",
    "empirical_lood": "dp_tables",
    "epsilon_lower_bound": "audit",
    "experiment_label": "dp_tables",
    "gaussian_kl": "dp_tables",
    "guess_counts": "audit",
    "half_split_auc": "mia",
    "inversion_comparison": "reconstruction",
    "InversionResult": "inversion",
    "InversionSpec": "spec",
    "make_canaries": "canaries",
    "margin_score": "mia",
    "mi_face": "inversion",
    "mia_landscape_table": "mia",
    "mia_table": "mia",
    "MiaSpec": "spec",
    "models_epsilon": "dp_tables",
    "p_value": "audit",
    "pixel_bounds": "inversion",
    "prediction_difference": "mia",
    "reconstruction_metrics": "reconstruction",
    "total_variation": "inversion",
}
__all__ = sorted(PUBLIC)
__getattr__ = exports(__name__, PUBLIC)

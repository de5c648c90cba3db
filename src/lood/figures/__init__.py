"""Every figure of the workflow (matplotlib/seaborn only: a plot job imports neither torch
nor jax)."""

from lood.lazy import exports

#: public name -> module of this package that defines it (imported on first use)
PUBLIC = {
    "activation_figure": "comparison",
    "as_image": "common",
    "attack_label": "attacks",
    "attacks_lood_figure": "attacks",
    "audit_figure": "privacy",
    "correlation_figure": "correlation",
    "dp_figure": "privacy",
    "extreme_records": "memorization",
    "histogram_figure": "correlation",
    "history_figure": "landscape",
    "influence_figure": "comparison",
    "inversion_figure": "privacy",
    "landscape_figure": "landscape",
    "log_axes": "common",
    "memorization_images_figure": "memorization",
    "onion_figure": "onion",
    "onion_rise": "onion",
    "Panel": "correlation",
    "panoramia_comparison_figure": "panoramia",
    "panoramia_curves_figure": "panoramia",
    "panoramia_samples_figure": "panoramia",
    "PlotSpec": "spec",
    "reconstruction_figure": "landscape",
    "roc_figure": "attacks",
    "save_figure": "common",
}
__all__ = sorted(PUBLIC)
__getattr__ = exports(__name__, PUBLIC)

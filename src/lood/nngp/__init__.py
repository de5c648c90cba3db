"""NNGP stage: kernels, the GP posterior and its leave-one-out downdates, LOOD tables,
landscapes and query optimisation."""

from lood.lazy import exports

#: public name -> module of this package that defines it (imported on first use)
PUBLIC = {
    "centred_one_hot": "gp",
    "fit_gp": "gp",
    "gaussian_pair_auc": "gp",
    "GPFit": "gp",
    "initial_query": "query",
    "kernel_cosine": "query",
    "kl_gaussians": "gp",
    "kl_isotropic": "gp",
    "landscape_grid": "landscape",
    "landscape_queries": "landscape",
    "landscape_records": "landscape",
    "LandscapeSpec": "spec",
    "loo_pointwise": "gp",
    "loo_query_set": "gp",
    "lood_all": "gp",
    "lood_landscape": "query",
    "lood_self": "gp",
    "lood_table": "tables",
    "LoodObjective": "query",
    "make_objective": "query",
    "nngp_diag": "kernel",
    "nngp_kernel": "kernel",
    "NNGPSpec": "spec",
    "optimize_query": "query",
    "pixel_l2": "query",
    "posterior": "gp",
    "query_lood": "query",
    "QueryResult": "query",
    "QuerySpec": "spec",
    "random_direction": "landscape",
    "raw_step_to_normalized": "landscape",
    "reconstruction_row": "query",
    "stax_network": "kernel",
    "x_minus_log1p": "gp",
}
__all__ = sorted(PUBLIC)
__getattr__ = exports(__name__, PUBLIC)

"""Cluster resources: the cost model (:mod:`.model`: plain numbers in, a :class:`Request` out),
the site's partitions, placement and limit checks (:mod:`.cluster`), and the command
``python -m lood.resources [CONFIG] [--profile P]`` (:mod:`.cli`) that prints what every job of
a config would ask for. Rule names are the workflow's: its catalogue (workflow/catalogue.py) maps
each rule onto the cost model."""

from lood.lazy import exports

#: public name -> module of this package that defines it (imported on first use)
PUBLIC = {
    "BASE_MB": "model",
    "check_request": "cluster",
    "cpu_seconds": "model",
    "cpus_for": "model",
    "data_sizes": "model",
    "DATASETS": "model",
    "ensemble_training": "model",
    "gp_lood": "model",
    "gp_queries": "model",
    "gpu_cpus": "model",
    "GPU_MAX_CPUS": "model",
    "GPU_MIN_CPUS": "model",
    "largest": "model",
    "light": "model",
    "load_catalogue": "cli",
    "MAX_STEP_CPUS": "model",
    "mia_seconds": "model",
    "MIN_RUNTIME": "model",
    "n_params": "model",
    "nngp_kernel": "model",
    "npz_shape": "model",
    "parse_cluster": "cluster",
    "parse_minutes": "cluster",
    "Partition": "cluster",
    "placement": "cluster",
    "Problem": "model",
    "Request": "model",
    "round_mem": "model",
    "RUNTIME_SAFETY": "model",
    "runtime_for": "model",
    "single_model_gradients": "model",
    "to_mb": "model",
    "Training": "model",
}

__all__ = sorted(PUBLIC)
__getattr__ = exports(__name__, PUBLIC)

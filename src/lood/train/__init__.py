"""Training stage: parsed settings (``spec``, no torch), batched primitives, the plain and
DP-SGD ensemble trainers and the torch device choice (``device``). The training jobs of the
workflow are in :mod:`lood.jobs`, above the stages."""

from lood.lazy import exports

#: public name -> module of this package that defines it (imported on first use)
PUBLIC = {
    "accuracy": "primitives",
    "calibrate_noise": "dp",
    "describe_device": "device",
    "dp_config": "dp",
    "DPConfig": "spec",
    "DPSpec": "spec",
    "EnsembleOptions": "primitives",
    "EnsembleResult": "primitives",
    "epsilon": "dp",
    "forward": "models",
    "init_params": "models",
    "load_params": "models",
    "Params": "models",
    "pick_device": "device",
    "save_params": "models",
    "spent_epsilon": "dp",
    "torch_module": "dp",
    "train_ensemble": "ensemble",
    "train_ensemble_dp": "dp",
    "train_opacus": "dp",
    "TrainConfig": "spec",
    "TrainSpec": "spec",
}
__all__ = sorted(PUBLIC)
__getattr__ = exports(__name__, PUBLIC)

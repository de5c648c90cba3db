"""Training stage: parsed settings (``spec``, no torch), batched primitives, the plain and
DP-SGD ensemble trainers, and every training job of the workflow (``jobs``)."""

from lood.lazy import exports

#: public name -> module of this package that defines it (imported on first use)
PUBLIC = {
    "accuracy": "primitives",
    "calibrate_noise": "dp",
    "dp_config": "dp",
    "DPConfig": "spec",
    "DPSpec": "spec",
    "EnsembleResult": "primitives",
    "epsilon": "dp",
    "fit_ensemble": "jobs",
    "forward": "models",
    "init_params": "models",
    "Job": "jobs",
    "load_params": "models",
    "one_run_audit": "jobs",
    "Params": "models",
    "describe_device": "jobs",
    "pick_device": "jobs",
    "retrain_out_outputs": "jobs",
    "save_params": "models",
    "saved_model_outputs": "jobs",
    "spent_epsilon": "dp",
    "start_job": "jobs",
    "torch_module": "dp",
    "train_ensemble": "ensemble",
    "train_ensemble_dp": "dp",
    "train_opacus": "dp",
    "train_role": "jobs",
    "train_subsets": "jobs",
    "train_with_checkpoints": "jobs",
    "TrainConfig": "spec",
    "TrainSpec": "spec",
}
__all__ = sorted(PUBLIC)
__getattr__ = exports(__name__, PUBLIC)

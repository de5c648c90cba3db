"""Jobs layer: every job of the workflow, above the stage packages it combines.

``prologue`` (no torch at import: the scripts' shared start, ``job_from_snakemake`` and
``log_from_snakemake``), ``training`` (the job, ``fit_ensemble``, in/out models, landscape
re-training), ``audit`` (the one-run audit), ``influence`` (subset models, the checkpointed
influence model) and ``panoramia`` (member split, generator, helper, audit of the saved
models). Stage packages never import this one; the workflow scripts do.
"""

from lood.lazy import exports

#: public name -> module of this package that defines it (imported on first use)
PUBLIC = {
    "audit_saved_models": "panoramia",
    "fit_ensemble": "training",
    "Generated": "panoramia",
    "generate_nonmembers": "panoramia",
    "Job": "training",
    "job_from_config": "training",
    "job_from_snakemake": "prologue",
    "load_member_split": "panoramia",
    "log_from_snakemake": "prologue",
    "member_split": "panoramia",
    "one_run_audit": "audit",
    "out_masks_and_seeds": "training",
    "retrain_out_outputs": "training",
    "role_masks_and_seeds": "training",
    "save_member_split": "panoramia",
    "saved_model_outputs": "training",
    "start_job": "training",
    "Targets": "panoramia",
    "train_panoramia_helper": "panoramia",
    "train_role": "training",
    "train_subsets": "influence",
    "train_with_checkpoints": "influence",
}
__all__ = sorted(PUBLIC)
__getattr__ = exports(__name__, PUBLIC)

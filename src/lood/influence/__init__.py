"""Influence stage: TracIn, influence functions and Feldman-Zhang memorization."""

from lood.lazy import exports

#: public name -> module of this package that defines it (imported on first use)
PUBLIC = {
    "cast_params": "autodiff",
    "checkpoint_epochs": "tracin",
    "Checkpoints": "tracin",
    "conjugate_gradient": "functions",
    "correctness": "memorization",
    "diff_proportion_se": "memorization",
    "example_losses": "autodiff",
    "flatten": "autodiff",
    "ggn_operator": "functions",
    "hvp_operator": "functions",
    "influence_matrix": "memorization",
    "influence_self": "functions",
    "influence_topk": "memorization",
    "InfluenceResult": "functions",
    "InfluenceSpec": "spec",
    "lissa": "functions",
    "masks_to_subsample_idx": "memorization",
    "mean_loss": "autodiff",
    "memorization": "memorization",
    "memorization_tables": "memorization",
    "MemorizationSpec": "spec",
    "model_outputs": "autodiff",
    "Operator": "functions",
    "per_example_grads": "autodiff",
    "SolveResult": "functions",
    "stack": "autodiff",
    "subsample_idx_to_masks": "memorization",
    "subset_masks": "memorization",
    "subset_size": "memorization",
    "topk_rows": "memorization",
    "tracin_contributions": "tracin",
    "tracin_self_influence": "tracin",
    "unflatten": "autodiff",
    "unstack": "autodiff",
}
__all__ = sorted(PUBLIC)
__getattr__ = exports(__name__, PUBLIC)

"""PANORAMIA, privacy measurement with generated non-members: the audit (``audit``), its
class-conditional VAE (``generator``) and the comparison with the other measurements
(``tables``)."""

from lood.lazy import exports

#: public name -> module of this package that defines it (what is used from outside it)
PUBLIC = {
    "AttackSets": "audit",
    "bound_ceiling": "audit",
    "build_attack_sets": "audit",
    "ConditionalVAE": "generator",
    "guess_grid": "audit",
    "load_generator": "generator",
    "MemberSplit": "audit",
    "model_outputs": "audit",
    "panoramia_audit": "audit",
    "panoramia_comparison": "tables",
    "PanoramiaResult": "audit",
    "real_data_classifier": "generator",
    "sample_accuracy": "generator",
    "save_generator": "generator",
    "split_members": "audit",
    "train_generator": "generator",
    "train_helper": "audit",
    "VAEConfig": "generator",
    "vae_source": "audit",
}
__all__ = sorted(PUBLIC)
__getattr__ = exports(__name__, PUBLIC)

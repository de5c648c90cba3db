"""Leave-one-out distinguishability (LOOD): NNGP estimates and retrained-model ground truth."""

__version__ = "0.1.0"

"""Data stage: dataset readers, the training/test split, the differing records."""

from lood.lazy import exports

#: public name -> module of this package that defines it (imported on first use)
PUBLIC = {
    "choose_differ": "differ",
    "Dataset": "readers",
    "DataSpec": "spec",
    "DifferSpec": "spec",
    "load_dataset": "readers",
    "load_npz_dataset": "readers",
    "make_split": "split",
    "per_class_counts": "split",
    "read_cifar10_batch": "readers",
    "read_differ_csv": "differ",
    "read_idx": "readers",
    "Split": "split",
    "write_differ_csv": "differ",
}
__all__ = sorted(PUBLIC)
__getattr__ = exports(__name__, PUBLIC)

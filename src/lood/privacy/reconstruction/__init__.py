"""Reconstruction attacks on trained networks: MI-FACE model inversion (``inversion``) and what a
reconstruction recovers (``quality``), beside the NNGP query optimisation it is compared with."""

from lood.lazy import exports

#: public name -> module of this package that defines it (what is used from outside it)
PUBLIC = {
    "class_means": "quality",
    "inversion_comparison": "quality",
    "mi_face": "inversion",
    "pixel_bounds": "inversion",
    "reconstruction_metrics": "quality",
}
__all__ = sorted(PUBLIC)
__getattr__ = exports(__name__, PUBLIC)

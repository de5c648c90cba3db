"""The early-stopping rule shared by the gradient searches for inputs that maximise what a model
leaks: the NNGP query optimisation (:func:`lood.nngp.query.optimize_query`, ascent on the KL
LOOD) and MI-FACE (:func:`lood.privacy.reconstruction.inversion.mi_face`, descent on its cost).

Both count the steps since the objective last improved by more than a relative ``tol`` and stop
after ``patience`` of them. No numpy, torch or jax import: the test is written with operators
only, so it runs elementwise on floats, numpy arrays and torch tensors alike.
"""

from __future__ import annotations

import math
from typing import Any


def improves(value: Any, best: Any, tol: float, minimize: bool = False) -> Any:
    """Whether ``value`` beats ``best`` by more than the relative ``tol``, elementwise.

    Maximising: ``value > best + tol |best|``; minimising: ``value < best - tol |best|``. Where
    ``best`` is still infinite (nothing seen yet) every value improves on it (``inf - inf`` would
    otherwise make the comparison false).
    """
    if minimize:
        gain = value < best - tol * abs(best)
    else:
        gain = value > best + tol * abs(best)
    return (abs(best) == math.inf) | gain

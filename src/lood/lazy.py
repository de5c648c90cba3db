"""Lazy public faces for the subpackages: ``from lood.train import train_ensemble`` works, but
importing ``lood.train`` alone (e.g. for its torch-free ``spec``) loads nothing heavy."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def exports(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``package.<names[attr]>`` on first access."""

    def getattr_(attr: str) -> Any:
        if attr not in names:
            raise AttributeError(f"module {package!r} has no attribute {attr!r}")
        return getattr(import_module(f"{package}.{names[attr]}"), attr)

    return getattr_

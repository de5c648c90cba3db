"""Typed settings: each config section becomes one frozen dataclass, parsed once at a job's edge.

A section class subclasses :class:`Settings` and lists the section's keys as fields; the library
takes these objects, never raw dicts. Parsing checks only the shape (every key present, no
unknown key, values cast to the field's type); the values themselves were validated by the JSON
schema (:mod:`lood.config`), and the defaults come from the schema alone, so the dataclasses have
none.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

S = TypeVar("S", bound="Settings")


def _cast(value: Any, annotation: Any, where: str) -> Any:
    """``value`` as the annotated type (int, float, str, bool, tuple, a Settings, or X | None)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None:
            if len(options) == len(typing.get_args(annotation)):
                raise ValueError(f"{where}: must not be null")
            return None
        for option in options:  # already one of the union's plain types (float | str): kept
            if option in (int, float, str) and type(value) is option:
                return value
        return _cast(value, options[0], where)
    if isinstance(annotation, type) and issubclass(annotation, Settings):
        return annotation.from_config(value, where)
    if origin is tuple:
        (item,) = {a for a in typing.get_args(annotation) if a is not Ellipsis}
        return tuple(_cast(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    if annotation is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: must be true or false, got {value!r}")
        return value
    if annotation in (int, float, str):
        if annotation is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{where}: must be an integer, got {value!r}")
        return annotation(value)
    return value


class Settings:
    """Base of the typed config sections (frozen dataclasses without defaults)."""

    @classmethod
    def from_config(cls: type[S], section: Mapping[str, Any] | S, where: str = "") -> S:
        """Parse one config section; errors name the key path (``where.key``)."""
        if isinstance(section, cls):
            return section
        where = where or getattr(cls, "SECTION", cls.__name__)
        if not isinstance(section, Mapping):
            raise ValueError(f"{where}: must be a mapping, got {type(section).__name__}")
        hints = typing.get_type_hints(cls)
        fields = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        unknown = sorted(set(section) - set(fields))
        if unknown:
            raise ValueError(f"{where}.{unknown[0]}: unknown key (allowed: {', '.join(fields)})")
        missing = [f for f in fields if f not in section]
        if missing:
            raise ValueError(
                f"{where}.{missing[0]}: missing (lood.config.with_defaults fills every default)"
            )
        values = {f: _cast(section[f], hints[f], f"{where}.{f}") for f in fields}
        return cls(**values)

    def to_config(self) -> dict[str, Any]:
        """The section as plain data again (what a rule's params hold)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

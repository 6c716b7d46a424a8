"""Option values checked against their declared types, so that ``num_samples=2.7`` is an
error that names the option instead of a run with 2.

Types come from annotations (a config dataclass's fields, a function's signature); the
supported ones are ``int``, ``float``, ``bool``, ``str``, ``dict``, ``None`` and unions of
them. Anything else (``Any``, callables, classes) is accepted as given.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import numbers
import types
import typing
from collections.abc import Callable
from typing import Any


def check_options(owner: str, values: dict[str, Any], hints: dict[str, Any]) -> dict[str, Any]:
    """``values`` with each one checked (and ints given as integral floats made ints)
    against ``hints[name]``; a TypeError names the owner, the option, the value and the
    expected type."""
    return {name: check_option(owner, name, value, hints.get(name, Any))
            for name, value in values.items()}


def check_option(owner: str, name: str, value: Any, annotation: Any) -> Any:
    accepted, converted = _convert(value, annotation)
    if not accepted:
        raise TypeError(f"Option {name}={value!r} of {owner}: expected {_describe(annotation)}, "
                        f"got {type(value).__name__} {value!r}.")
    return converted


@dataclasses.dataclass(frozen=True)
class Range:
    """The values an option may take: ``low`` <= value <= ``high`` (``low`` excluded with
    ``low_open``), finite; None for no bound on that side."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False

    def __contains__(self, value: Any) -> bool:
        if not isinstance(value, numbers.Real) or not math.isfinite(value):
            return False
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        return above and (self.high is None or value <= self.high)

    def __str__(self) -> str:
        low = None if self.low is None else f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.high is None:
            return low or "finite"
        if low is None:
            return f"<= {self.high:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"


def check_ranges(owner: str, values: dict[str, Any], ranges: dict[str, Range]) -> None:
    """A ValueError naming the owner, the option and its valid range for the first value
    outside it (None, an option's "default" where allowed, is not checked)."""
    for name, valid in ranges.items():
        value = values.get(name)
        if value is not None and value not in valid:
            raise ValueError(f"Option {name}={value!r} of {owner}: must be {valid}.")


def dataclass_hints(cls: type) -> dict[str, Any]:
    """Field name -> type of a dataclass (string annotations resolved)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls)}


def signature_hints(function: Callable) -> dict[str, Any]:
    """Keyword name -> type of a function's parameters (string annotations resolved)."""
    hints = typing.get_type_hints(function)
    return {name: hints.get(name, Any) for name in inspect.signature(function).parameters}


def _convert(value: Any, annotation: Any) -> tuple[bool, Any]:
    if annotation is Any or annotation is inspect.Parameter.empty:
        return True, value
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for option in typing.get_args(annotation):
            accepted, converted = _convert(value, option)
            if accepted:
                return True, converted
        return False, value
    if annotation is type(None):
        return value is None, value
    if annotation is bool:
        accepted = isinstance(value, bool | _numpy_bool())
        return accepted, bool(value) if accepted else value
    if annotation is int:
        if isinstance(value, bool):
            return False, value
        if isinstance(value, numbers.Integral):
            return True, int(value)
        if isinstance(value, numbers.Real) and float(value).is_integer():
            return True, int(value)
        return False, value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False, value
        return True, float(value)
    if annotation in (str, dict, list, tuple):
        return isinstance(value, annotation), value
    return True, value  # a type this checker does not model: taken as given


def _numpy_bool() -> type:
    import numpy as np

    return np.bool_


def _describe(annotation: Any) -> str:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(annotation))
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
             dict: "a dict", type(None): "null"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))

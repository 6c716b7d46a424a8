"""The two named hooks a spec may use besides agents, registered by the modules in its
``imports`` (as agents are, with :func:`agents.register`): nothing in a spec is code.

- A **method** values the training points without learning through the harness: a peer
  library (cleanlab, a worker in its own virtual environment) or a fixed-policy
  measurement. ``method(env, *, seed, **options) -> (values, info)``; its values are
  scored like an agent's, ``info`` is recorded in the row's ``extra`` (an ``info["fits"]``
  becomes the row's fits: equal compute is counted for methods too).
- A **probe** measures something on the fresh env before the agent learns (the
  gradient variance of the weak-signal study). ``probe(env, cell, **options) -> dict``,
  recorded in ``extra``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Method = Callable[..., tuple[np.ndarray, dict[str, Any]]]
Probe = Callable[..., dict[str, Any]]
_METHODS: dict[str, Method] = {}
_PROBES: dict[str, Probe] = {}


def register_method(name: str, method: Method) -> None:
    """Add a method: ``method(env, *, seed, **options) -> (values, info)``."""
    if not callable(method):
        raise TypeError(f"register_method({name!r}, ...): the method must be callable as "
                        "method(env, *, seed, **options).")
    _METHODS[name] = method


def register_probe(name: str, probe: Probe) -> None:
    """Add a probe: ``probe(env, cell, **options) -> dict`` of numbers to record."""
    if not callable(probe):
        raise TypeError(f"register_probe({name!r}, ...): the probe must be callable as "
                        "probe(env, cell, **options).")
    _PROBES[name] = probe


def method_names() -> list[str]:
    return sorted(_METHODS)


def probe_names() -> list[str]:
    return sorted(_PROBES)


def method(name: str) -> Method:
    if name not in _METHODS:
        raise ValueError(f"Unknown method {name!r}; registered: {method_names()} (a module in "
                         "the spec's imports registers it with register_method).")
    return _METHODS[name]


def probe(name: str) -> Probe:
    if name not in _PROBES:
        raise ValueError(f"Unknown probe {name!r}; registered: {probe_names()} (a module in "
                         "the spec's imports registers it with register_probe).")
    return _PROBES[name]

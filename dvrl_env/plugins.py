"""Plugins: modules outside this project whose import registers agents
(:func:`agents.register`), datasets (:func:`dvrl_env.data.registry.register_dataset`,
which registers the Gymnasium id too), predictors
(:func:`dvrl_env.predictors.register_predictor`) or bench methods and probes
(:mod:`dvrl_env.app.bench.hooks`).

Two ways in:

- a module named on the command line (``dvrl value --import my_plugin ...``): imported by
  :func:`import_plugin`, where a module that cannot be imported is an error;
- an installed distribution that declares an entry point in the group
  :data:`ENTRY_POINT_GROUP`::

      [project.entry-points."dvrl_env.plugins"]
      my_plugin = "my_plugin"

  :func:`load_plugins` imports every such module once: the ``dvrl`` command at start,
  and a library user's program on its first look-up by name that the registries cannot
  answer (an agent name :func:`agents.make` does not know, ``agents.names()``, a dataset
  name :func:`~dvrl_env.data.datasets.load_dataset` does not know, ``dataset_names()``,
  an unknown predictor name), so the built-ins never import third-party code. A plugin
  that fails to import is a one-line warning naming it, not a crash.

Only the standard library is imported here: the registries call :func:`load_plugins`
without an import cycle.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from collections.abc import Callable
from importlib import metadata

__all__ = ["ENTRY_POINT_GROUP", "PluginError", "PluginWarning", "import_plugin",
           "load_plugins", "loaded_plugins"]

#: the entry-point group an installed package declares its plugin module in
ENTRY_POINT_GROUP = "dvrl_env.plugins"


class PluginError(ImportError):
    """A module named with ``--import`` (or recorded in a run) that cannot be imported;
    ``module`` names it and ``reason`` says why, in one line."""

    def __init__(self, message: str, module: str = "", reason: str = ""):
        super().__init__(message)
        self.module, self.reason = module, reason


class PluginWarning(UserWarning):
    """An installed plugin (entry point) that failed to load: the rest go on."""


_state: dict = {"loaded": None}  # None: not yet; else the module names loaded


def import_plugin(name: str) -> None:
    """Import the module ``name`` as ``python -m`` would find it: the current directory
    is put on ``sys.path`` first if it is not there (the ``dvrl`` script does not add
    it). Anything the import raises becomes a one-line :class:`PluginError` naming the
    module and the reason."""
    if not name or not all(part.isidentifier() for part in name.split(".")):
        raise PluginError(f"--import {name!r} is not a module name; give a dotted Python "
                          "module name such as my_plugin or mypackage.plugins.", name,
                          "not a module name")
    cwd = os.getcwd()
    if not any(entry in ("", ".", cwd) for entry in sys.path):
        sys.path.insert(0, cwd)
    try:
        importlib.import_module(name)
    except Exception as err:  # noqa: BLE001  (the user's module: any failure is reported)
        reason = f"{type(err).__name__}: {err}".replace("\n", " ")
        missing = isinstance(err, ModuleNotFoundError) and err.name is not None and \
            (name == err.name or name.startswith(err.name + "."))
        fix = ("put its folder on PYTHONPATH (or run from that folder), or install it"
               if missing else "fix the error its import raises")
        raise PluginError(f"--import {name}: the module cannot be imported ({reason}); "
                          f"{fix}.", name, reason) from None


def load_plugins(warn: Callable[[str], None] | None = None) -> list[str]:
    """Import every installed plugin (entry points in :data:`ENTRY_POINT_GROUP`), once
    per process; later calls return the same list at once. A plugin whose import fails
    is reported through ``warn`` (default: a :class:`PluginWarning`) and skipped.
    Returns the module names loaded."""
    if _state["loaded"] is not None:
        return list(_state["loaded"])
    _state["loaded"] = loaded = []  # set first: a plugin that looks a name up does not recurse
    warn = warn or (lambda message: warnings.warn(message, PluginWarning, stacklevel=3))
    seen = set()
    for point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if (point.name, point.value) in seen:  # one distribution found twice on sys.path
            continue
        seen.add((point.name, point.value))
        dist = getattr(point.dist, "name", None) or "an installed distribution"
        try:
            point.load()
        except Exception as err:  # noqa: BLE001  (a broken plugin must not stop the rest)
            reason = f"{type(err).__name__}: {err}".replace("\n", " ")
            warn(f"plugin {point.name!r} ({point.value}, from {dist}) was not loaded: "
                 f"{reason}. Fix or uninstall it; everything else works without it.")
            continue
        loaded.append(point.module)
    return list(loaded)


def loaded_plugins() -> list[str]:
    """The modules :func:`load_plugins` imported (empty before it ran)."""
    return list(_state["loaded"] or [])

"""The benchmark spec: a TOML file naming the grid, read with :mod:`tomllib` (data only,
nothing in it is executed) and checked before any cell runs.

.. code-block:: toml

    name = "mine"
    seeds = [0, 1, 2]
    noise_rate = 0.2
    imports = ["my_agents"]            # modules that call agents.register, imported first
    metrics = ["auroc", "f1", "gap", "remove_high_low", "robust"]

    [budget]
    fits = 600                          # stop each agent at this many predictor fits
    updates = 400                       # cap on updates (required without fits)

    [[tasks]]
    name = "digits"
    env = "DataValuation-Digits-v0"
    options = { predictor = "logistic", batch_size = 100 }

    [[agents]]
    name = "reinforce"
    label = "reinforce-k8"              # default: the name
    options = { num_samples = 8 }
    # updates = 1000                    # this agent's cap (agents that use no fits)
    # tasks = ["digits"]                # only these tasks (default: all)
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path
from typing import Any

#: metrics a spec may ask for; detection AUROC is always recorded
METRICS = ("auroc", "f1", "gap", "remove_high_low", "robust")
TOP_KEYS = {"name", "seeds", "noise_rate", "imports", "metrics", "budget", "tasks", "agents",
            "resources"}


class SpecError(ValueError):
    """A mistake in the spec: the message names the field and the fix."""


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    env: str
    options: dict


@dataclasses.dataclass(frozen=True)
class AgentEntry:
    label: str
    name: str
    options: dict
    updates: int | None = None
    tasks: tuple[str, ...] | None = None


@dataclasses.dataclass(frozen=True)
class Spec:
    name: str
    seeds: tuple[int, ...]
    noise_rate: float
    fits: int | None
    updates: int | None
    metrics: tuple[str, ...]
    imports: tuple[str, ...]
    tasks: tuple[Task, ...]
    agents: tuple[AgentEntry, ...]
    cpus_per_cell: float = 1.0
    gpus_per_cell: float = 0.25


def load_spec(path: str | Path) -> Spec:
    """Read and check the spec at ``path``."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: the same parser, as a package
        import tomli as tomllib

    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError(f"Spec {path} does not exist; give the path of a TOML spec "
                        "(examples in benchmarks/specs/).") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"Spec {path} is not valid TOML: {err}.") from None
    return parse_spec(data, where=str(path))


def parse_spec(data: dict, where: str = "spec") -> Spec:
    """Check a parsed spec: unknown keys, env ids, agent names and budgets are refused
    with the choices, so a typo fails before hours of compute, not after."""
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {unknown}; a spec has {sorted(TOP_KEYS)}.")
    imports = tuple(_list_of(data.get("imports", []), str, "imports", where))
    import_modules(imports, where)
    name = data.get("name", Path(where).stem)
    seeds = tuple(_list_of(data.get("seeds"), int, "seeds", where, required=True))
    if not seeds or len(set(seeds)) != len(seeds):
        raise SpecError(f"{where}: seeds must be a non-empty list of distinct integers, got "
                        f"{list(seeds)}.")
    noise = data.get("noise_rate", 0.2)
    if not isinstance(noise, (int, float)) or isinstance(noise, bool) or not 0 <= noise < 1:
        raise SpecError(f"{where}: noise_rate must be a number in [0, 1), got {noise!r}.")
    fits, updates = _budget(data.get("budget"), where)
    metrics = tuple(_list_of(data.get("metrics", list(METRICS)), str, "metrics", where))
    bad = sorted(set(metrics) - set(METRICS))
    if bad:
        raise SpecError(f"{where}: unknown metric(s) {bad}; choose from {list(METRICS)}.")
    tasks = tuple(_task(t, i, where) for i, t in enumerate(_tables(data, "tasks", where)))
    _distinct([t.name for t in tasks], "task names", where)
    agent_entries = tuple(_agent(a, i, where, {t.name for t in tasks}, fits, updates)
                          for i, a in enumerate(_tables(data, "agents", where)))
    _distinct([a.label for a in agent_entries], "agent labels", where)
    resources = data.get("resources", {})
    if not isinstance(resources, dict) or set(resources) - {"cpus_per_cell", "gpus_per_cell"}:
        raise SpecError(f"{where}: [resources] takes cpus_per_cell and gpus_per_cell only.")
    cpus = resources.get("cpus_per_cell", 1.0)
    gpus = resources.get("gpus_per_cell", 0.25)
    for key, v in (("cpus_per_cell", cpus), ("gpus_per_cell", gpus)):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0:
            raise SpecError(f"{where}: resources.{key} must be a positive number, got {v!r}.")
    if gpus > 1:
        raise SpecError(f"{where}: resources.gpus_per_cell is a fraction of one GPU, at most 1; "
                        f"got {gpus}.")
    return Spec(str(name), seeds, float(noise), fits, updates, metrics, imports, tasks,
                agent_entries, float(cpus), float(gpus))


def import_modules(modules: tuple[str, ...] | list[str], where: str = "spec") -> None:
    """Import the spec's ``imports`` (modules that register agents), here and in every
    worker, before any agent is made."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise SpecError(f"{where}: imports names {module!r}, which cannot be imported "
                            f"({err}); put it on PYTHONPATH or install it.") from None


def _budget(budget: Any, where: str) -> tuple[int | None, int | None]:
    if not isinstance(budget, dict) or not budget:
        raise SpecError(f"{where}: [budget] is required, with fits = N (predictor fits per "
                        "cell, the equal-compute budget) and/or updates = N.")
    unknown = sorted(set(budget) - {"fits", "updates"})
    if unknown:
        raise SpecError(f"{where}: unknown budget key(s) {unknown}; use fits and/or updates.")
    out = []
    for key in ("fits", "updates"):
        v = budget.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise SpecError(f"{where}: budget.{key} must be a positive integer, got {v!r}.")
        out.append(v)
    return out[0], out[1]


def _task(table: dict, i: int, where: str) -> Task:
    import gymnasium as gym

    import dvrl_env  # noqa: F401  (registers the ids)

    _keys(table, {"name", "env", "options"}, f"tasks[{i}]", where)
    env = table.get("env")
    if env not in gym.registry:
        known = sorted(k for k in gym.registry if k.startswith("DataValuation"))
        raise SpecError(f"{where}: tasks[{i}].env {env!r} is not a registered env id; choose "
                        f"one of {known} (or register yours in a module listed in imports).")
    options = _options(table.get("options", {}), f"tasks[{i}].options", where)
    if "noise_rate" in options or "data_seed" in options:
        raise SpecError(f"{where}: tasks[{i}].options sets noise_rate or data_seed; the grid "
                        "sets them (noise_rate at the top, data_seed = the cell's seed).")
    return Task(str(table.get("name", env)), env, options)


def _agent(table: dict, i: int, where: str, task_names: set, fits, updates) -> AgentEntry:
    import agents

    _keys(table, {"name", "label", "options", "updates", "tasks"}, f"agents[{i}]", where)
    name = table.get("name")
    if name not in agents.names():
        raise SpecError(f"{where}: agents[{i}].name {name!r} is not a registered agent; choose "
                        f"one of {agents.names()} (or agents.register yours in a module listed "
                        "in imports).")
    options = _options(table.get("options", {}), f"agents[{i}].options", where)
    if "seed" in options or "log_dir" in options:
        raise SpecError(f"{where}: agents[{i}].options sets seed or log_dir; the grid sets "
                        "them (seed = the cell's seed).")
    own = table.get("updates")
    if own is not None and (not isinstance(own, int) or isinstance(own, bool) or own < 0):
        raise SpecError(f"{where}: agents[{i}].updates must be an integer >= 0, got {own!r}.")
    if fits is None and updates is None and own is None:
        raise SpecError(f"{where}: agents[{i}] ({name}) has no budget: give budget.fits, "
                        "budget.updates or its own updates.")
    only = table.get("tasks")
    if only is not None:
        only = tuple(_list_of(only, str, f"agents[{i}].tasks", where))
        missing = sorted(set(only) - task_names)
        if missing:
            raise SpecError(f"{where}: agents[{i}].tasks names {missing}, not among the tasks "
                            f"{sorted(task_names)}.")
    return AgentEntry(str(table.get("label", name)), name, options, own, only)


def _tables(data: dict, key: str, where: str) -> list[dict]:
    tables = data.get(key)
    if not isinstance(tables, list) or not tables or \
            not all(isinstance(t, dict) for t in tables):
        raise SpecError(f"{where}: at least one [[{key}]] table is required.")
    return tables


def _keys(table: dict, allowed: set, what: str, where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise SpecError(f"{where}: {what} has unknown key(s) {unknown}; it takes "
                        f"{sorted(allowed)}.")


def _options(options: Any, what: str, where: str) -> dict:
    if not isinstance(options, dict):
        raise SpecError(f"{where}: {what} must be a table, e.g. {{ batch_size = 100 }}.")
    json.dumps(options)  # TOML values are JSON values (dates aside)
    return dict(options)


def _list_of(value: Any, kind: type, what: str, where: str, required: bool = False) -> list:
    if value is None and required:
        raise SpecError(f"{where}: {what} is required.")
    if not isinstance(value, list) or not all(isinstance(v, kind) and not isinstance(v, bool)
                                              for v in value):
        raise SpecError(f"{where}: {what} must be a list of {kind.__name__}, got {value!r}.")
    return value


def _distinct(names: list[str], what: str, where: str) -> None:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SpecError(f"{where}: {what} must be distinct; repeated: {dupes} (give each a "
                        "label).")

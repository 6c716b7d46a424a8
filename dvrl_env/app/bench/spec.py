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

    [[methods]]                         # valued without learning (dvrl_env.app.bench.hooks)
    name = "cleanlab"                   # registered by a module in imports
    options = { folds = 5 }

    [probe]                             # measured on each agent cell's env before learning
    name = "gradient_variance"
    options = { draws = 64 }

A task may set its own ``noise_rate``. ``report = "module"`` names a module (imported
like ``imports``) whose ``report(rows, out)`` writes a study's own tables and figures
from the store's rows after every run.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from pathlib import Path
from typing import Any

from dvrl_env.evaluation import scores

#: metrics a spec may ask for (the one registry's); detection AUROC is always recorded
METRICS = scores.METRICS
TOP_KEYS = {"name", "seeds", "noise_rate", "imports", "metrics", "budget", "tasks", "agents",
            "methods", "probe", "report", "resources"}


class SpecError(ValueError):
    """A mistake in the spec: the message names the field and the fix."""


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    env: str
    options: dict
    noise_rate: float | None = None  # None: the spec's


@dataclasses.dataclass(frozen=True)
class AgentEntry:
    label: str
    name: str
    options: dict
    updates: int | None = None
    tasks: tuple[str, ...] | None = None
    kind: str = "agent"  # or "method": a registered hooks.method, no learning


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
    probe: str | None = None
    probe_options: dict = dataclasses.field(default_factory=dict)
    report: str | None = None


def load_spec(path: str | Path) -> Spec:
    """Read and check the spec at ``path``."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: the same parser, as a package
        import tomli as tomllib

    path = Path(path)
    if path.is_dir():
        raise SpecError(f"Spec {path} is a directory; give the path of a TOML spec file "
                        "(examples in benchmarks/specs/).")
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise SpecError(f"Spec {path} does not exist; give the path of a TOML spec "
                        "(examples in benchmarks/specs/).") from None
    except UnicodeDecodeError as err:
        raise SpecError(f"Spec {path} is not a text file (byte {err.start} is not UTF-8); "
                        "give the path of a TOML spec (examples in benchmarks/specs/).") from None
    except OSError as err:  # permissions, a special file
        raise SpecError(f"Spec {path} cannot be read ({err.strerror or err}); give the path "
                        "of a readable TOML spec.") from None
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
    learners = data.get("agents", [])
    fits, updates = _budget(data.get("budget"), where) if learners or "budget" in data \
        else (None, None)
    metrics = tuple(_list_of(data.get("metrics", list(METRICS)), str, "metrics", where))
    bad = sorted(set(metrics) - set(METRICS))
    if bad:
        raise SpecError(f"{where}: unknown metric(s) {bad}; choose from {list(METRICS)}.")
    tasks = tuple(_task(t, i, where) for i, t in enumerate(_tables(data, "tasks", where)))
    _distinct([t.name for t in tasks], "task names", where)
    if not learners and not data.get("methods"):
        raise SpecError(f"{where}: at least one [[agents]] (or [[methods]]) table is required.")
    names = {t.name for t in tasks}
    agent_entries = tuple(_agent(a, i, where, names, fits, updates)
                          for i, a in enumerate(_tables(data, "agents", where) if learners
                                                else []))
    agent_entries += tuple(_method(m, i, where, names)
                           for i, m in enumerate(_tables(data, "methods", where)
                                                 if "methods" in data else []))
    _distinct([a.label for a in agent_entries], "agent and method labels", where)
    probe, probe_options = _probe(data.get("probe"), where)
    report = data.get("report")
    if report is not None:
        if not isinstance(report, str):
            raise SpecError(f"{where}: report must be a module name, got {report!r}.")
        import_modules((report,), where)
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
                agent_entries, float(cpus), float(gpus), probe, probe_options, report)


#: the source hash each plugin module was imported from in this process
_SOURCES: dict[str, str] = {}


def import_modules(modules: tuple[str, ...] | list[str], where: str = "spec") -> None:
    """Import the spec's ``imports`` (modules that register agents), here and in every
    worker, before any agent is made. A module edited since this process imported it
    is reloaded, so a cell run in this process (``in_process``) runs the source its row
    names (:mod:`.code`)."""
    from dvrl_env.app.bench.code import plugin_sha256

    for module in modules:
        try:
            source = plugin_sha256(module)
            if module in sys.modules and _SOURCES.get(module, source) != source:
                importlib.reload(sys.modules[module])
            else:
                importlib.import_module(module)
            _SOURCES[module] = source
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

    _keys(table, {"name", "env", "options", "noise_rate"}, f"tasks[{i}]", where)
    env = table.get("env")
    if env not in gym.registry:
        known = sorted(k for k in gym.registry if k.startswith("DataValuation"))
        raise SpecError(f"{where}: tasks[{i}].env {env!r} is not a registered env id; choose "
                        f"one of {known} (or register yours in a module listed in imports).")
    options = _options(table.get("options", {}), f"tasks[{i}].options", where)
    if "noise_rate" in options or "data_seed" in options:
        raise SpecError(f"{where}: tasks[{i}].options sets noise_rate or data_seed; the grid "
                        "sets them (noise_rate at the top or in the task, data_seed = the "
                        "cell's seed).")
    noise = table.get("noise_rate")
    if noise is not None and (not isinstance(noise, (int, float)) or isinstance(noise, bool)
                              or not 0 <= noise < 1):
        raise SpecError(f"{where}: tasks[{i}].noise_rate must be a number in [0, 1), got "
                        f"{noise!r}.")
    return Task(str(table.get("name", env)), env, options,
                None if noise is None else float(noise))


def _agent(table: dict, i: int, where: str, task_names: set, fits, updates) -> AgentEntry:
    import agents

    name, options = _entry(table, f"agents[{i}]", {"name", "label", "options", "updates", "tasks"},
                           agents.names(), ("agent", "agents.register"), ("seed", "log_dir"),
                           where)
    own = table.get("updates")
    if own is not None and (not isinstance(own, int) or isinstance(own, bool) or own < 0):
        raise SpecError(f"{where}: agents[{i}].updates must be an integer >= 0, got {own!r}.")
    if fits is None and updates is None and own is None:
        raise SpecError(f"{where}: agents[{i}] ({name}) has no budget: give budget.fits, "
                        "budget.updates or its own updates.")
    return AgentEntry(str(table.get("label", name)), name, options, own,
                      _only(table, f"agents[{i}]", where, task_names))


def _method(table: dict, i: int, where: str, task_names: set) -> AgentEntry:
    from dvrl_env.app.bench import hooks

    name, options = _entry(table, f"methods[{i}]", {"name", "label", "options", "tasks"},
                           hooks.method_names(), ("method", "register_method"), ("seed",), where)
    return AgentEntry(str(table.get("label", name)), name, options, None,
                      _only(table, f"methods[{i}]", where, task_names), kind="method")


def _entry(table: dict, what: str, allowed: set, known: list[str], kind: tuple[str, str],
           reserved: tuple[str, ...], where: str) -> tuple[str, dict]:
    """An agent's or method's registered name and options (the grid's keys refused)."""
    _keys(table, allowed, what, where)
    name = table.get("name")
    if name not in known:
        raise SpecError(f"{where}: {what}.name {name!r} is not a registered {kind[0]}; choose "
                        f"one of {known} (or {kind[1]} yours in a module listed in imports).")
    options = _options(table.get("options", {}), f"{what}.options", where)
    if set(options) & set(reserved):
        raise SpecError(f"{where}: {what}.options sets {' or '.join(reserved)}; the grid sets "
                        "them (seed = the cell's seed).")
    return name, options


def _probe(table: Any, where: str) -> tuple[str | None, dict]:
    from dvrl_env.app.bench import hooks

    if table is None:
        return None, {}
    if not isinstance(table, dict):
        raise SpecError(f"{where}: [probe] must be a table with name and options.")
    _keys(table, {"name", "options"}, "probe", where)
    name = table.get("name")
    if name not in hooks.probe_names():
        raise SpecError(f"{where}: probe.name {name!r} is not a registered probe; choose one "
                        f"of {hooks.probe_names()} (or register_probe yours in a module listed "
                        "in imports).")
    return name, _options(table.get("options", {}), "probe.options", where)


def _only(table: dict, what: str, where: str, task_names: set) -> tuple[str, ...] | None:
    only = table.get("tasks")
    if only is None:
        return None
    only = tuple(_list_of(only, str, f"{what}.tasks", where))
    missing = sorted(set(only) - task_names)
    if missing:
        raise SpecError(f"{where}: {what}.tasks names {missing}, not among the tasks "
                        f"{sorted(task_names)}.")
    return only


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
    _json_like(options, what, where)
    return dict(options)


def _json_like(value: Any, what: str, where: str) -> None:
    """TOML values are JSON values except dates and times: refuse those by their key, as
    options are passed to agents and envs and hashed into the cell's key as JSON."""
    if isinstance(value, dict):
        for key, item in value.items():
            _json_like(item, f"{what}.{key}", where)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _json_like(item, f"{what}[{i}]", where)
    elif not isinstance(value, (str, int, float, bool)):
        raise SpecError(f"{where}: {what} is a TOML {type(value).__name__} ({value}); options "
                        "must be JSON-like values (strings, numbers, booleans, arrays, "
                        f"tables): quote it, e.g. \"{value}\".")


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

"""The layering holds: no module of the library (``dvrl_env``'s data, predictors, envs,
evaluation and its top-level helpers) or of ``agents`` imports the application
(``dvrl_env.app``: the CLI, run directories, the report, ``find_label_issues``, the bench).
Checked by walking every import of every file, those inside functions included, so a
lazy import that would invert the layers fails here rather than in a reader's head."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP = "dvrl_env.app"
#: the library and agents: every .py file under these folders, and these files
LIBRARY_FOLDERS = ("dvrl_env/data", "dvrl_env/predictors", "dvrl_env/envs",
                   "dvrl_env/evaluation", "agents")
LIBRARY_FILES = ("dvrl_env/__init__.py", "dvrl_env/atomic.py", "dvrl_env/device.py",
                 "dvrl_env/options.py", "dvrl_env/plugins.py")
#: the one allowed exception: ``dvrl_env.find_label_issues`` is forwarded, lazily, from
#: the package's ``__getattr__`` so that users keep the short name (the package's
#: ``__main__.py`` is the CLI's entry point and is not library code either)
ALLOWED = {"dvrl_env/__init__.py": {"dvrl_env.app.find"}}


def _module_name(path: str) -> str:
    """``dvrl_env/data/registry.py`` -> ``dvrl_env.data.registry`` (a package's
    ``__init__.py`` names the package)."""
    parts = list(Path(path).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, path: str) -> set[str]:
    """Every module ``source`` (the file at ``path``, relative to the repo root) imports,
    at any depth: ``import a.b``, ``from a import b`` (both ``a`` and ``a.b``, since ``b``
    may be a module), relative imports resolved against ``path``'s package, and
    ``importlib.import_module("...")`` / ``__import__("...")`` with a literal name."""
    package = _module_name(path)
    if not path.endswith("__init__.py"):
        package = package.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source, filename=path)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and node.args \
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__"):
                found.add(node.args[0].value)
    return found


def app_imports(source: str, path: str) -> list[str]:
    """The imports of ``source`` that name the application or a module under it, less
    those :data:`ALLOWED` for ``path``."""
    def under(module: str, names: set[str]) -> bool:
        return any(module == name or module.startswith(name + ".") for name in names)

    return sorted(m for m in imported_modules(source, path)
                  if under(m, {APP}) and not under(m, ALLOWED.get(path, set())))


def library_files() -> list[str]:
    files = [str(p.relative_to(ROOT)) for folder in LIBRARY_FOLDERS
             for p in sorted((ROOT / folder).rglob("*.py"))]
    return files + list(LIBRARY_FILES)


def test_library_and_agents_never_import_the_application():
    files = library_files()
    assert len(files) > 40 and "agents/progress.py" in files \
        and "dvrl_env/evaluation/metrics.py" in files  # the walk sees the library
    offending = {path: app_imports((ROOT / path).read_text(), path) for path in files}
    offending = {path: found for path, found in offending.items() if found}
    assert not offending, ("the library or agents import the application (move the "
                           f"shared name into the library): {offending}")


def test_checker_reports_an_application_import():
    source = ("import numpy as np\n"
              "from dvrl_env.app import runs\n"
              "def later():\n"
              "    import dvrl_env.app.bench.harness\n"
              "    from ..app.cli import main\n"
              "    return importlib.import_module('dvrl_env.app.report')\n")
    assert app_imports(source, "dvrl_env/evaluation/metrics.py") == [
        "dvrl_env.app", "dvrl_env.app.bench.harness", "dvrl_env.app.cli",
        "dvrl_env.app.cli.main", "dvrl_env.app.report", "dvrl_env.app.runs"]
    # the library's own imports, and a name that merely starts like the app's, pass
    assert app_imports("from dvrl_env.evaluation.logs import PROGRESS_LOG\n"
                       "import dvrl_env.application_notes\n", "agents/base.py") == []
    # the allowance is for the one file that has it
    lazy = "def __getattr__(name):\n    from dvrl_env.app.find import find_label_issues\n"
    assert app_imports(lazy, "dvrl_env/__init__.py") == []
    assert app_imports(lazy, "dvrl_env/data/registry.py") == [
        "dvrl_env.app.find", "dvrl_env.app.find.find_label_issues"]

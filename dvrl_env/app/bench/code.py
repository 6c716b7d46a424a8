"""Which code produced a number: the project's version and git commit, a hash of the
modules that decide numbers, a hash of each plugin module a spec imports, and the
versions of the libraries underneath. Every bench row records it, so a table never
mixes rows of different code without saying so (``--resume`` refuses stale rows), and
a check can tell whether a results directory is current.

Only :data:`NUMBER_DECIDING` and the plugins enter the comparison (:func:`same_code`):
the commit changes with every commit, even one that edits only a README, so it is
recorded for the reader, not compared.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path

#: the project's root (a checkout's top folder, or site-packages when installed)
ROOT = Path(__file__).resolve().parents[3]
#: folders (relative to ROOT) whose source files decide the numbers a cell reports
NUMBER_DECIDING = ("dvrl_env/envs", "dvrl_env/predictors", "dvrl_env/data",
                   "dvrl_env/evaluation", "agents")
#: libraries whose versions are recorded (their distribution names)
LIBRARIES = ("torch", "numpy", "gymnasium", "stable_baselines3")
UNKNOWN = "unknown"


def code_identity(imports: tuple[str, ...] | list[str] = ()) -> dict:
    """The identity of the code a cell runs with the plugin modules ``imports``:
    ``version``, ``commit`` (``"unknown"`` outside a git checkout or without git),
    ``dirty`` (tracked files changed; ``None`` when unknown), ``code_sha256`` (one
    SHA-256 over the sorted source files of :data:`NUMBER_DECIDING`), ``plugins``
    (``{module: sha256 of its source}``, ``"unknown"`` for a module without a source
    file) and ``libraries`` (versions of torch, numpy, gymnasium, SB3 and Python).
    Never raises for a missing git or an installed copy: those read ``"unknown"``."""
    commit, dirty = _git()
    return {"version": _version(), "commit": commit, "dirty": dirty,
            "code_sha256": tree_sha256([ROOT / folder for folder in NUMBER_DECIDING], ROOT),
            "plugins": {module: plugin_sha256(module) for module in imports},
            "libraries": {**{name: _dist_version(name) for name in LIBRARIES},
                          "python": platform.python_version()}}


def same_code(recorded: dict | None, current: dict) -> list[str]:
    """What differs between a row's recorded identity and ``current`` in the code that
    decides numbers (empty: the same); a row without a record differs in everything."""
    if not recorded:
        return ["no code recorded (a table from before rows named their code)"]
    changes = []
    if recorded.get("code_sha256") != current["code_sha256"]:
        changes.append("the number-deciding modules (" + ", ".join(NUMBER_DECIDING) + ")")
    old, new = recorded.get("plugins") or {}, current["plugins"]
    for module in sorted(set(old) | set(new)):
        if old.get(module) != new.get(module):
            changes.append(f"plugin {module}")
    return changes


def tree_sha256(paths: list[Path], root: Path) -> str:
    """One SHA-256 over the ``.py`` files under ``paths``, sorted by their path relative
    to ``root`` (names and contents both enter: a moved module changes it)."""
    files = sorted({f for p in paths for f in ([p] if p.is_file() else p.rglob("*.py"))
                    if "__pycache__" not in f.parts})
    digest = hashlib.sha256()
    for file in sorted(files, key=lambda f: f.relative_to(root).as_posix()):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def plugin_sha256(module: str) -> str:
    """The SHA-256 of ``module``'s source (of every ``.py`` file of a package), found
    without importing it; ``"unknown"`` when it has no source file (built-in, missing)."""
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return UNKNOWN
    if found is None or not found.origin or not found.origin.endswith(".py"):
        return UNKNOWN
    origin = Path(found.origin)
    if found.submodule_search_locations:  # a package: all of it
        return tree_sha256([origin.parent], origin.parent)
    return hashlib.sha256(origin.read_bytes()).hexdigest()


def to_json(identity: dict) -> str:
    """The identity as one compact JSON text (a table cell)."""
    return json.dumps(identity, sort_keys=True, separators=(",", ":"))


def from_json(text: str) -> dict | None:
    """A table cell back as a dict (``None`` when empty or not an identity)."""
    if not text:
        return None
    try:
        found = json.loads(text)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def _version() -> str:
    try:
        from dvrl_env import __version__
    except ImportError:
        return _dist_version("dvrl-env")
    return str(__version__)


def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def _git() -> tuple[str, bool | None]:
    """(commit, dirty) of the checkout at ROOT; ("unknown", None) when ROOT is not the
    top of a git checkout (an installed copy inside someone else's repository is not
    ours) or git is missing or fails."""
    try:
        top = _run(["git", "rev-parse", "--show-toplevel"])
        if Path(top).resolve() != ROOT:
            return UNKNOWN, None
        commit = _run(["git", "rev-parse", "HEAD"])
        # tracked files only: run outputs and scratch files are not code (a new,
        # untracked number-deciding module changes code_sha256 anyway)
        dirty = bool(_run(["git", "status", "--porcelain", "--untracked-files=no"]))
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN, None
    return commit, dirty


def _run(command: list[str]) -> str:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True,
                          timeout=30).stdout.strip()

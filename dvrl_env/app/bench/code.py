"""Which code produced a number: the project's version and git commit, a hash of the
modules that decide numbers, a hash of each plugin module a spec imports, and the
versions of the libraries underneath. Every bench row records it, so a table never
mixes rows of different code without saying so (``--resume`` refuses stale rows), and
a check can tell whether a results directory is current.

Only :data:`NUMBER_DECIDING` and the plugins enter the comparison (:func:`same_code`):
the commit changes with every commit, even one that edits only a README, so it is
recorded for the reader, not compared.

The hashes are of each file's *normalised* source (:func:`normalised_source`: comments,
docstrings, trailing whitespace and blank lines removed), so that editing prose does
not make every recorded row stale. It is the text that is hashed, not ``ast.dump`` or
the token stream: both differ between Python versions (f-strings are tokens of their
own from 3.12), and a row must compare equal on any Python the project supports.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import io
import json
import platform
import subprocess
import tokenize
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


def code_identity(imports: tuple[str, ...] | list[str] = (), root: Path | None = None) -> dict:
    """The identity of the code a cell runs with the plugin modules ``imports``:
    ``version``, ``commit`` (``"unknown"`` outside a git checkout or without git),
    ``dirty`` (tracked files changed; ``None`` when unknown), ``code_sha256`` (one
    SHA-256 over the sorted, normalised source files of :data:`NUMBER_DECIDING` under
    ``root``, default :data:`ROOT`), ``plugins`` (``{module: sha256 of its normalised
    source}``, ``"unknown"`` for a module without a source file) and ``libraries``
    (versions of torch, numpy, gymnasium, SB3 and Python). Never raises for a missing
    git or an installed copy: those read ``"unknown"``."""
    root = ROOT if root is None else Path(root)
    commit, dirty = _git(root)
    return {"version": _version(), "commit": commit, "dirty": dirty,
            "code_sha256": tree_sha256([root / folder for folder in NUMBER_DECIDING], root),
            "plugins": {module: plugin_sha256(module) for module in imports},
            "libraries": {**{name: _dist_version(name) for name in LIBRARIES},
                          "python": platform.python_version()}}


def code_line(imports: tuple[str, ...] | list[str] = ()) -> str:
    """The first line a ``benchmarks/*.py`` script prints into its results file, so the
    check (:mod:`.check`) can tell whether the file is current: ``# code: {JSON}``."""
    return "# code: " + to_json(code_identity(imports))


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
    to ``root`` (names and normalised contents both enter: a moved module changes it)."""
    files = sorted({f for p in paths for f in ([p] if p.is_file() else p.rglob("*.py"))
                    if "__pycache__" not in f.parts})
    digest = hashlib.sha256()
    for file in sorted(files, key=lambda f: f.relative_to(root).as_posix()):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(normalised_source(file.read_bytes())).digest())
    return digest.hexdigest()


def source_sha256(path: Path) -> str:
    """The SHA-256 of one source file's normalised text (:func:`normalised_source`)."""
    return hashlib.sha256(normalised_source(Path(path).read_bytes())).hexdigest()


def plugin_sha256(module: str) -> str:
    """The SHA-256 of ``module``'s normalised source (of every ``.py`` file of a
    package), found without importing it; ``"unknown"`` when it has no source file
    (built-in, missing)."""
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return UNKNOWN
    if found is None or not found.origin or not found.origin.endswith(".py"):
        return UNKNOWN
    origin = Path(found.origin)
    if found.submodule_search_locations:  # a package: all of it
        return tree_sha256([origin.parent], origin.parent)
    return source_sha256(origin)


def normalised_source(source: bytes) -> bytes:
    """``source`` without what cannot change a number: comments (from a COMMENT token's
    column to the line's end), module, class and function docstrings (a first statement
    that is a string, cut out by its span), trailing whitespace and blank lines. Only
    the positions come from ``ast`` and ``tokenize``; what is hashed is the remaining
    text, the same on every Python version that parses the file. A file that does not
    decode, parse or tokenize is returned as it is (its raw bytes are hashed)."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(source).readline)
        text = source.decode(encoding).replace("\r\n", "\n").replace("\r", "\n")
        tree = ast.parse(text)
        tokens = list(tokenize.generate_tokens(io.StringIO(text, newline="\n").readline))
    except (SyntaxError, UnicodeDecodeError, LookupError, ValueError, RecursionError,
            tokenize.TokenError):
        return source
    lines = text.split("\n")
    cuts: dict[int, list[tuple[int, int]]] = {}  # line index: (start, end) character spans
    for token in tokens:
        if token.type == tokenize.COMMENT:
            (row, col), end = token.start, len(lines[token.start[0] - 1])
            cuts.setdefault(row - 1, []).append((col, end))
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                 ast.AsyncFunctionDef)) or not node.body:
            continue
        first = node.body[0]
        if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)):
            continue
        start, end = first.lineno - 1, (first.end_lineno or first.lineno) - 1
        begin = _column(lines[start], first.col_offset)
        stop = _column(lines[end], first.end_col_offset or len(lines[end].encode()))
        for index in range(start, end + 1):
            cuts.setdefault(index, []).append((begin if index == start else 0,
                                               stop if index == end else len(lines[index])))
    for index, spans in cuts.items():
        line = lines[index]
        for begin, stop in sorted(spans, reverse=True):
            line = line[:begin] + line[stop:]
        lines[index] = line
    kept = [line.rstrip() for line in lines]
    return "\n".join(line for line in kept if line).encode("utf-8")


def _column(line: str, byte_offset: int) -> int:
    """``ast``'s column (UTF-8 bytes) as a character index into ``line``."""
    return len(line.encode("utf-8")[:byte_offset].decode("utf-8", errors="ignore"))


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


def _git(root: Path | None = None) -> tuple[str, bool | None]:
    """(commit, dirty) of the checkout at ``root`` (default ROOT); ("unknown", None)
    when ``root`` is not the top of a git checkout (an installed copy inside someone
    else's repository is not ours) or git is missing or fails."""
    root = ROOT if root is None else Path(root)
    try:
        top = _run(["git", "rev-parse", "--show-toplevel"], root)
        if Path(top).resolve() != root.resolve():
            return UNKNOWN, None
        commit = _run(["git", "rev-parse", "HEAD"], root)
        # tracked files only: run outputs and scratch files are not code (a new,
        # untracked number-deciding module changes code_sha256 anyway)
        dirty = bool(_run(["git", "status", "--porcelain", "--untracked-files=no"], root))
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN, None
    return commit, dirty


def _run(command: list[str], cwd: Path) -> str:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=True,
                          timeout=30).stdout.strip()

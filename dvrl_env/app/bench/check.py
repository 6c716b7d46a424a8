"""Are the numbers the README and docs cite current? Every ``benchmarks/results/...``
path cited in ``README.md``, ``benchmarks/README.md`` and ``docs/*.md`` must have been
produced by the working tree's number-deciding code (:func:`.code.same_code`), so a
change to the env, a predictor or an agent cannot leave a published table silently
describing other code.

- a bench directory (it holds ``results.csv``; a cited file inside it means it): every
  row's ``code`` must be the working tree's, with the plugins that row recorded;
- a single results file written by a ``benchmarks/*.py`` script: it must hold a line
  ``# code: {JSON}`` (:func:`.code.code_line`), current; a ``.png`` is vouched for by a
  sibling ``.txt``/``.md`` of the same stem holding that line;
- a cited path that does not exist is a problem too.

A folder that is not a bench directory (``benchmarks/results/`` itself) and a pattern
(``benchmarks/results/*.md``) are listed as not checked: they name no one result.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from dvrl_env.app.bench import code
from dvrl_env.app.bench.store import TableError, read_table

#: where results live, relative to the repository root
RESULTS = "benchmarks/results"
#: the documents whose citations must be current (globs, relative to the root)
DOCUMENTS = ("README.md", "benchmarks/README.md", "docs/*.md")
TABLE, SPEC = "results.csv", "spec.toml"
CODE_PREFIX = "# code: "
#: a single results file whose text cannot hold the code line: a sibling vouches for it
IMAGES = (".png",)
SIBLINGS = (".txt", ".md")

_CITED = re.compile(r"(?<![\w.-])benchmarks/results(?:/[\w./-]*)?")
_PATTERN = "*?<{[$|"  # a citation followed by one of these is a pattern, not a path


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One cited result: its path (relative to the root), where it is cited, and the
    problem (``None``: current, or ``note`` says why it was not checked)."""

    path: str
    where: tuple[str, ...]
    problem: str | None = None
    note: str = ""

    def line(self) -> str:
        """The script's line for it."""
        status = self.problem or f"{self.path}: {self.note or 'current'}"  # a problem names it
        return f"{status} (cited in {', '.join(self.where)})"


def check(root: Path | str = code.ROOT) -> list[str]:
    """The problems of every result cited under ``root`` (empty: all current)."""
    return [v.problem for v in verdicts(root) if v.problem]


def verdicts(root: Path | str = code.ROOT) -> list[Verdict]:
    """One verdict per cited result, in the order first cited. The number-deciding tree
    is hashed once; each set of plugins a row recorded is hashed once."""
    root = Path(root)
    current = _Identity(root)
    found = []
    for target, (where, note) in cited(root).items():
        if note:
            found.append(Verdict(target, where, note=note))
        else:
            found.append(Verdict(target, where, _problem(root, target, current)))
    return found


def cited(root: Path) -> dict[str, tuple[tuple[str, ...], str]]:
    """``{result: (where cited, note)}``: each cited path resolved to what is checked (a
    file inside a bench directory: the directory); ``note`` is non-empty for a citation
    that names no one result (a pattern, a folder of results)."""
    where: dict[str, list[str]] = {}
    notes: dict[str, str] = {}
    for document in _documents(root):
        name = document.relative_to(root).as_posix()
        text = document.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            for match in _CITED.finditer(line):
                path = match.group().rstrip(".,/")
                after = line[match.end():match.end() + 1]
                if after and after in _PATTERN:
                    target = path + "/" + line[match.end():].split()[0].rstrip(".,;:`)")
                    notes[target] = "a pattern, not a path: not checked"
                else:
                    target, note = _target(root, path)
                    if note:
                        notes[target] = note
                cites = where.setdefault(target, [])
                if f"{name}:{number}" not in cites:
                    cites.append(f"{name}:{number}")
    return {target: (tuple(cites), notes.get(target, "")) for target, cites in where.items()}


def _documents(root: Path) -> list[Path]:
    return [p for pattern in DOCUMENTS for p in sorted(root.glob(pattern)) if p.is_file()]


def _target(root: Path, path: str) -> tuple[str, str]:
    """(what a cited path means, a note when it is not checked)."""
    full = root / path
    if not full.exists():
        return path, ""  # missing: _problem says so
    bench = _bench_directory(root, full)
    if bench is not None:
        return bench.relative_to(root).as_posix(), ""
    if full.is_dir():
        return path, f"a folder of results, not one (no {TABLE}): not checked"
    return path, ""


def _bench_directory(root: Path, full: Path) -> Path | None:
    """The bench directory ``full`` is or lies in (the nearest folder under the results
    folder holding a results table), if any."""
    results = (root / RESULTS).resolve()
    folder = full.resolve() if full.is_dir() else full.resolve().parent
    while folder == results or results in folder.parents:
        if (folder / TABLE).is_file():
            return root / folder.relative_to(root.resolve())
        if folder == results:
            return None
        folder = folder.parent
    return None


class _Identity:
    """The working tree's code identity under a root, computed once per plugin set."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base = code.code_identity((), root=root)
        self.cache: dict[tuple[str, ...], dict] = {}

    def __call__(self, imports: tuple[str, ...]) -> dict:
        if imports not in self.cache:
            self.cache[imports] = {**self.base, "plugins": {
                module: code.plugin_sha256(module) for module in imports}}
        return self.cache[imports]


def _problem(root: Path, target: str, current: _Identity) -> str | None:
    full = root / target
    if not full.exists():
        return (f"{target}: cited but missing; regenerate it, or cite what exists instead")
    if full.is_dir():
        return _bench_problem(root, target, current)
    if full.suffix.lower() in IMAGES:
        return _image_problem(root, target, current)
    return _file_problem(target, full.read_text(encoding="utf-8", errors="replace"), current)


def _bench_problem(root: Path, target: str, current: _Identity) -> str | None:
    """Every row of a bench directory's table must name the working tree's code."""
    try:
        rows = read_table(root / target / TABLE, warn=lambda message: None)
    except TableError as err:
        return f"{target}: {err}"
    fix = _rerun(root, target, rows)
    if not rows:
        return f"{target}: {TABLE} has no rows; run {fix}"
    changes: dict[str, None] = {}
    stale = 0
    for row in rows:
        changed = _changes(row.get("code", ""), current)
        if changed:
            stale += 1
            changes.update(dict.fromkeys(changed))
    if not stale:
        return None
    return (f"{target}: {stale} of {len(rows)} rows are stale (measured by other code: "
            f"{'; '.join(changes)}); run {fix} from the repository root")


def _changes(recorded_json: str, current: _Identity) -> list[str]:
    """What differs between a recorded identity (a row's ``code`` cell or a file's code
    line) and the working tree's, with the plugins it recorded (empty: current)."""
    recorded = code.from_json(recorded_json)
    imports = tuple(sorted((recorded or {}).get("plugins") or {}))
    return code.same_code(recorded, current(imports))


def _rerun(root: Path, target: str, rows: list[dict]) -> str:
    """The command that brings a bench directory up to date; ``PYTHONPATH=.`` when a
    plugin the rows recorded or its spec imports is a module of the repository."""
    modules = {m for row in rows for m in ((code.from_json(row.get("code", "")) or {})
                                          .get("plugins") or {})}
    spec = root / target / SPEC
    modules |= set(_spec_imports(spec))
    local = any((root / m.split(".")[0]).is_dir() or (root / f"{m.split('.')[0]}.py").is_file()
                for m in modules)
    name = f"{target}/{SPEC}" if spec.is_file() else "<its spec.toml>"
    return (("PYTHONPATH=. " if local else "") +
            f"dvrl bench {name} --out {target} --resume --rerun-stale")


def _spec_imports(spec: Path) -> list[str]:
    """The ``imports`` of the spec copy in a bench directory (none when it is missing or
    unreadable: the command is a hint, the problem is reported anyway)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: the same parser, as a package
        import tomli as tomllib
    try:
        imports = tomllib.loads(spec.read_text(encoding="utf-8")).get("imports", [])
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return []
    return [m for m in imports if isinstance(m, str)] if isinstance(imports, list) else []


def _image_problem(root: Path, target: str, current: _Identity) -> str | None:
    """A figure is current when a sibling text file of its stem holds a current code
    line (the script wrote both in one run)."""
    full = root / target
    for suffix in SIBLINGS:
        sibling = full.with_suffix(suffix)
        if sibling.is_file():
            text = sibling.read_text(encoding="utf-8", errors="replace")
            if any(line.startswith(CODE_PREFIX) for line in text.splitlines()):
                return _file_problem(target, text, current, via=sibling.name)
    return (f"{target}: no sibling {' or '.join(full.stem + s for s in SIBLINGS)} with a "
            f"'{CODE_PREFIX}{{...}}' line naming the code that drew it; regenerate it with "
            "its benchmarks/*.py script, which prints code.code_line() first")


def _file_problem(target: str, text: str, current: _Identity, via: str = "") -> str | None:
    """Every ``# code:`` line of a results file must name the working tree's code."""
    lines = [line[len(CODE_PREFIX):] for line in text.splitlines()
             if line.startswith(CODE_PREFIX)]
    source = f" (by {via})" if via else ""
    if not lines:
        return (f"{target}: no '{CODE_PREFIX}{{...}}' line naming the code that wrote it; "
                "regenerate it with its benchmarks/*.py script, which prints "
                "code.code_line() first")
    changes: dict[str, None] = {}
    for line in lines:
        changes.update(dict.fromkeys(_changes(line.strip(), current)))
    if not changes:
        return None
    return (f"{target}: written by other code{source} ({'; '.join(changes)}); regenerate "
            "it with its benchmarks/*.py script")

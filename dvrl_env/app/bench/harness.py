"""``dvrl bench``'s work: load the spec, run the missing cells on a backend, and write
the table, the leaderboard, the figure and a copy of the spec under ``out``."""

from __future__ import annotations

import dataclasses
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from dvrl_env.app.bench import backends
from dvrl_env.app.bench.cells import expand
from dvrl_env.app.bench.code import code_identity, from_json, same_code
from dvrl_env.app.bench.leaderboard import MIN_SEEDS, leaderboard, plot_curves, seeds_warning
from dvrl_env.app.bench.spec import load_spec
from dvrl_env.app.bench.store import Store, TableError
from dvrl_env.atomic import atomic_write_text

TABLE, BOARD, FIGURE, SPEC_COPY = "results.csv", "leaderboard.md", "auroc_vs_fits.png", \
    "spec.toml"


class BenchError(ValueError):
    """A mistake in the command (not in a cell): reported in one line."""


def run_bench(spec_path: str | Path, out: str | Path, *, workers: int | None = None,
              ray: str | None = None, resume: bool = False, max_cells: int | None = None,
              threads: int | None = None, log: Callable[[str], None] | None = None,
              in_process: bool = False, allow_stale: bool = False,
              rerun_stale: bool = False, imports: Sequence[str] = ()) -> list[dict]:
    """Run every cell of the spec not yet in ``out``'s table (``resume``), at most
    ``max_cells`` of them, each with ``threads`` threads (default: its share of the
    cores; results of RL agents depend on it, so compare runs with the same); returns
    the grid's rows. ``in_process`` runs the cells in this process (for a debugger),
    not in worker processes. ``imports``: modules imported in every cell besides the
    spec's ``imports`` (``dvrl bench --import``; import them here first).

    A row measured by other number-deciding code than the working tree's (see
    :mod:`.code`) is stale: a resume refuses it, so one table never silently mixes
    code, unless ``allow_stale`` (keep those rows) or ``rerun_stale`` (run those cells
    again)."""
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    spec = load_spec(spec_path)
    if imports:
        spec = dataclasses.replace(spec, imports=tuple(dict.fromkeys((*spec.imports, *imports))))
    out = Path(out)
    table = out / TABLE
    if table.exists() and not resume:
        raise BenchError(f"{table} exists; pass --resume to run only its missing cells, or "
                         "choose a new --out.")
    if out.exists() and not out.is_dir():
        raise BenchError(f"--out {out} is a file; give a directory.")
    if in_process and (ray or (workers or 1) > 1):
        raise BenchError("in_process runs the cells one by one in this process: not with "
                         "--ray or --workers > 1.")
    if workers is not None and workers < 1:
        raise BenchError(f"--workers must be >= 1, got {workers}.")
    if workers is not None and ray:
        raise BenchError("--workers is for the local backend; with --ray, the spec's "
                         "[resources] cpus_per_cell decides how many cells run at once.")
    if threads is not None and threads < 1:
        raise BenchError(f"--threads must be >= 1, got {threads}.")
    if threads is not None and ray:
        raise BenchError("--threads is for the local backend; with --ray, the spec's "
                         "[resources] cpus_per_cell sets each cell's threads.")
    if max_cells is not None and max_cells < 0:
        raise BenchError(f"--max-cells must be >= 0, got {max_cells}.")
    if allow_stale and rerun_stale:
        raise BenchError("--allow-stale keeps the stale rows and --rerun-stale runs their "
                         "cells again: give one of them.")
    cells = expand(spec)
    try:
        store = Store(table, [c.key for c in cells], warn=log)
    except TableError as err:
        raise BenchError(str(err)) from None
    atomic_write_text(out / SPEC_COPY, Path(spec_path).read_text(encoding="utf-8"))
    done = store.done()
    stale = _stale(store, cells, done, code_identity(spec.imports), table)
    if stale and not (allow_stale or rerun_stale):
        raise BenchError(stale.message)
    if stale and allow_stale:
        log(f"warning: keeping {stale.count} stale row(s) (--allow-stale): {stale.what}.")
    if stale and rerun_stale:
        done -= stale.keys
    todo = [c for c in cells if c.key not in done]
    if max_cells is not None:
        todo = todo[:max_cells]
    where = f"Ray ({ray})" if ray else f"{workers or backends.cores()} local worker(s)"
    log(f"{spec.name}: {len(cells)} cells, {len(cells) - len(todo)} in {table} already; "
        f"running {len(todo)} on {where}.")
    if len(spec.seeds) < MIN_SEEDS:
        log(f"warning: {seeds_warning(len(spec.seeds))}")
    count = [0]

    def on_row(row: dict) -> None:
        store.add(row)
        count[0] += 1
        result = f"error: {row['error']}" if row.get("error") else f"AUROC {row['auroc']}"
        log(f"[{count[0]}/{len(todo)}] {row['task']} {row['agent']} seed {row['seed']}: "
            f"{result} ({row.get('seconds', '?')} s)")

    if todo:
        if ray:
            backends.run_ray(todo, ray, on_row, cpus_per_cell=spec.cpus_per_cell,
                             gpus_per_cell=spec.gpus_per_cell)
        else:
            try:
                backends.run_local(todo, workers or backends.cores(), on_row, threads,
                                   in_process=in_process)
            except backends.WorkerError as err:
                raise BenchError(f"{err} The table keeps every finished cell.") from None
    store.write()
    rows = store.grid_rows()
    atomic_write_text(out / BOARD, leaderboard(rows, f"Leaderboard: {spec.name}",
                                               seeds=len(spec.seeds)))
    plot_curves(rows, out / FIGURE)
    if spec.report is not None:
        written = importlib.import_module(spec.report).report(rows, out)
        log(f"{spec.report} wrote " + ", ".join(str(p) for p in written))
    missing = len(cells) - len(store.done() & {c.key for c in cells})
    log(f"wrote {table}, {out / BOARD}" + (f"; {missing} cell(s) missing or failed (--resume "
                                           "runs them)" if missing else ""))
    return rows


@dataclasses.dataclass(frozen=True)
class Stale:
    """The grid's finished cells whose rows ran other code than the working tree's."""

    keys: set[str]
    count: int
    what: str      # what changed, in words
    message: str   # the one-line refusal

    def __bool__(self) -> bool:
        return bool(self.keys)


def _stale(store: Store, cells: list, done: set[str], current: dict, table: Path) -> Stale:
    """Which finished grid cells are stale, what changed, and the refusal naming both
    (the first few cells by name) and the two ways on."""
    changes: dict[str, None] = {}
    stale = []
    for cell in cells:
        if cell.key in done:
            changed = same_code(from_json(store.rows[cell.key].get("code", "")), current)
            if changed:
                stale.append(cell)
                changes.update(dict.fromkeys(changed))
    if not stale:
        return Stale(set(), 0, "", "")
    what = "; ".join(changes)
    names = ", ".join(f"{c.task}/{c.agent}/seed {c.seed}" for c in stale[:3]) + \
        (f" and {len(stale) - 3} more" if len(stale) > 3 else "")
    message = (f"{len(stale)} of the {len(done & {c.key for c in cells})} finished cells in "
               f"{table} are stale (measured by other code: {what}; {names}); pass "
               "--rerun-stale to run them again, --allow-stale to keep their rows, or "
               "choose a new --out.")
    return Stale({c.key for c in stale}, len(stale), what, message)

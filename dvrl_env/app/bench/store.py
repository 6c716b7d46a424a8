"""The one results table: a tidy CSV, one row per cell, rewritten atomically after each
finished cell (a killed run loses at most the cells in flight, never the file; written
to disk, fsync, before it replaces the old table, so a power loss keeps one of the two).
A table cut by other means (a copy interrupted, a full disk elsewhere) loses its partial
last row with a warning: that cell runs again.

Resume skips a cell whose key has a row without an error; a cell that failed runs again
(after its cause is fixed, its new row replaces the old one). Rows of cells no longer in
the spec are kept, after the grid's rows, so no measurement is dropped silently."""

from __future__ import annotations

import csv
import io
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path

from dvrl_env.atomic import atomic_write

COLUMNS = ["key", "task", "env", "env_options", "agent", "agent_name", "options", "seed",
           "noise_rate", "budget_fits", "fits", "updates", "seconds", "auroc", "f1", "gap",
           "remove_high", "remove_low", "robust_acc", "unweighted_acc", "clean_acc", "error",
           "curve", "kind", "auprc", "extra", "gap_sd", "code"]
#: the columns before methods, probes and AUPRC: such a table is read, the new ones empty
OLD_COLUMNS = COLUMNS[:COLUMNS.index("curve") + 1]
#: every header an older table may have (columns are only ever appended): the one
#: before the hooks, and the one before rows named their code (``code``, ``gap_sd``)
ACCEPTED = (OLD_COLUMNS, COLUMNS[:COLUMNS.index("extra") + 1], COLUMNS)
#: columns that differ between identical runs (wall time)
VOLATILE = ("seconds",)


class TableError(ValueError):
    """A file at the table's path that is not a dvrl bench table (or is damaged beyond a
    cut last row): the message names the file and what is wrong."""


class Store:
    """The table at ``path``, with ``order`` (the grid's cell keys) deciding row order;
    ``warn`` is told of a cut last row that was dropped."""

    def __init__(self, path: str | Path, order: list[str],
                 warn: Callable[[str], None] | None = None):
        self.path = Path(path)
        self.order = {key: i for i, key in enumerate(order)}
        self.rows: dict[str, dict] = {r["key"]: r for r in read_table(self.path, warn)}

    def done(self) -> set[str]:
        """Keys measured without an error."""
        return {k for k, r in self.rows.items() if not r.get("error")}

    def add(self, row: dict) -> None:
        self.rows[row["key"]] = {c: row.get(c, "") for c in COLUMNS}
        self.write()

    def write(self) -> None:
        late = len(self.order)
        rows = sorted(self.rows.values(), key=lambda r: self.order.get(r["key"], late))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write(self.path, lambda f: _durable(f, buffer.getvalue()), text=True)
        _sync_folder(self.path.parent)

    def grid_rows(self) -> list[dict]:
        """The rows of the grid's cells, in grid order."""
        return [self.rows[k] for k in self.order if k in self.rows]


def read_table(path: str | Path, warn: Callable[[str], None] | None = None) -> list[dict]:
    """Rows as text (``[]`` when there is no table). Refuses a table of other columns or
    a damaged row; a last row cut short (the file does not end with a whole line) is
    dropped, with ``warn`` (default: a warning), so its cell runs again."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise TableError(f"{path} is not a dvrl bench table (byte {err.start} is not UTF-8); "
                         "choose another --out, or restore the table from a copy.") from None
    if not text:
        return []
    records = [r for r in csv.reader(io.StringIO(text, newline="")) if r]  # blank lines
    header = records.pop(0) if records else []
    if header not in ACCEPTED:
        missing = [c for c in COLUMNS if c not in header]
        unexpected = [c for c in header if c not in COLUMNS]
        raise TableError(f"{path} has the columns {header}, not a dvrl bench table's: expected "
                         f"{COLUMNS} (missing {missing}, unexpected {unexpected}); choose "
                         "another --out, or restore the table from a copy.")
    if records and (not text.endswith("\n") or len(records[-1]) != len(header)):
        cut = records.pop()
        (warn or _warn)(f"{path}: the last row is cut short ({len(cut)} of {len(header)} "
                        f"fields, starting {','.join(cut)[:40]!r}); dropped, so its cell runs "
                        "again.")
    rows = []
    for line, record in enumerate(records, start=1):
        if len(record) != len(header) or not record[0]:
            raise TableError(f"{path}: row {line} (after the header) has {len(record)} "
                             f"fields, not {len(header)}, or no key: the table is damaged; "
                             "restore it from a copy, or delete that row to run its cell "
                             "again.")
        found = dict(zip(header, record, strict=True))
        rows.append({c: found.get(c, "") for c in COLUMNS})
    return rows


def _warn(message: str) -> None:
    warnings.warn(message, stacklevel=3)


def _durable(f, content: str) -> None:
    """Write ``content`` and push it to the disk before the rename makes it the table."""
    f.write(content)
    f.flush()
    os.fsync(f.fileno())


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX; elsewhere the rename is all there is)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # a file system or platform that cannot sync a folder
        pass
    finally:
        os.close(fd)


def extra(row: dict) -> dict:
    """The row's ``extra`` (a probe's measurements, a method's info) as a dict."""
    return json.loads(row["extra"]) if row.get("extra") else {}


def number(cell: str | float | int | None) -> float:
    """A table cell as a float (NaN for empty or text)."""
    try:
        return float(cell)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")

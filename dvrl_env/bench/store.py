"""The one results table: a tidy CSV, one row per cell, rewritten atomically after each
finished cell (a killed run loses at most the cells in flight, never the file).

Resume skips a cell whose key has a row without an error; a cell that failed runs again
(after its cause is fixed, its new row replaces the old one). Rows of cells no longer in
the spec are kept, after the grid's rows, so no measurement is dropped silently."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from dvrl_env.atomic import atomic_write_text

COLUMNS = ["key", "task", "env", "env_options", "agent", "agent_name", "options", "seed",
           "noise_rate", "budget_fits", "fits", "updates", "seconds", "auroc", "f1", "gap",
           "remove_high", "remove_low", "robust_acc", "unweighted_acc", "clean_acc", "error",
           "curve", "kind", "auprc", "extra"]
#: the columns before methods, probes and AUPRC: such a table is read, the new ones empty
OLD_COLUMNS = COLUMNS[:COLUMNS.index("curve") + 1]
#: columns that differ between identical runs (wall time)
VOLATILE = ("seconds",)


class Store:
    """The table at ``path``, with ``order`` (the grid's cell keys) deciding row order."""

    def __init__(self, path: str | Path, order: list[str]):
        self.path = Path(path)
        self.order = {key: i for i, key in enumerate(order)}
        self.rows: dict[str, dict] = {r["key"]: r for r in read_table(self.path)}

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
        atomic_write_text(self.path, buffer.getvalue())

    def grid_rows(self) -> list[dict]:
        """The rows of the grid's cells, in grid order."""
        return [self.rows[k] for k in self.order if k in self.rows]


def read_table(path: str | Path) -> list[dict]:
    """Rows as text (``[]`` when there is no table); refuses a table of other columns."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is not None and list(reader.fieldnames) not in (COLUMNS,
                                                                              OLD_COLUMNS):
            raise ValueError(f"{path} has the columns {reader.fieldnames}, not a dvrl bench "
                             "table's; choose another --out.")
        return [{c: r.get(c) or "" for c in COLUMNS} for r in reader]


def extra(row: dict) -> dict:
    """The row's ``extra`` (a probe's measurements, a method's info) as a dict."""
    return json.loads(row["extra"]) if row.get("extra") else {}


def number(cell: str | float | int | None) -> float:
    """A table cell as a float (NaN for empty or text)."""
    try:
        return float(cell)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")

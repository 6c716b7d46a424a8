"""A practitioner's own table: CSV files to a :class:`ValuationDataset`.

Columns are handled as for Adult: a column whose every value parses as a number is
numeric (min-max scaled with the training split's range), any other column is
categorical (one-hot over the categories of all files). Nothing is dropped silently:
an empty cell, or a stray word in a column that is otherwise numeric, is an error that
names the file, row and column.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dvrl_env.datasets import ValuationDataset, from_arrays

HELD_OUT_FRACTION = 0.2
NUMERIC_SHARE = 0.9  # a column this numeric is taken as numeric; its stray words are errors


class TableError(ValueError):
    """A problem with the user's CSV files, with the file, row and column named."""


@dataclass(frozen=True)
class Table:
    path: Path
    header: list[str]
    rows: list[list[str]]


def read_table(path: str | Path) -> Table:
    path = Path(path)
    if not path.is_file():
        raise TableError(f"CSV file {path} does not exist.")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            rows = [[c.strip() for c in row] for row in reader if any(c.strip() for c in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise TableError(f"Cannot read {path} as a CSV file: {err}") from None
    if not header:
        raise TableError(f"{path} is empty; expected a header row and data rows.")
    if not rows:
        raise TableError(f"{path} has a header but no data rows.")
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise TableError(f"{path}, data row {i + 1}: {len(row)} fields, but the header has "
                             f"{len(header)}.")
    return Table(path, header, rows)


def _parse_float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _is_numeric(tables: list[Table], col: str) -> bool:
    cells = [row[t.header.index(col)] for t in tables for row in t.rows]
    parsed = sum(_parse_float(c) is not None for c in cells)
    if parsed == len(cells):
        return True
    if parsed >= NUMERIC_SHARE * len(cells):
        for t in tables:
            j = t.header.index(col)
            for i, row in enumerate(t.rows):
                if _parse_float(row[j]) is None:
                    what = "an empty cell" if row[j] == "" else f"the value {row[j]!r}"
                    raise TableError(
                        f"{t.path}, data row {i + 1}, column {col!r}: {what} in a numeric column; "
                        "fix or remove that row (missing values are not imputed silently)."
                    )
    return False


def load_csv(
    train: str | Path,
    label_column: str,
    *,
    valid: str | Path | None = None,
    test: str | Path | None = None,
    noise_rate: float = 0.0,
    seed: int = 0,
) -> ValuationDataset:
    """Build a dataset from CSV files; without ``valid`` (or ``test``) a fraction
    ``HELD_OUT_FRACTION`` of the training rows is held out for it, drawn with ``seed``
    (``meta["held_out"]`` says which)."""
    tables = [read_table(train)]
    held_out = []
    for name, path in (("valid", valid), ("test", test)):
        if path is None:
            held_out.append(name)
        else:
            tables.append(read_table(path))
    header = tables[0].header
    if label_column not in header:
        raise TableError(f"Label column {label_column!r} is not in {tables[0].path}; its "
                         f"columns are {header}.")
    for t in tables[1:]:
        if sorted(t.header) != sorted(header):
            raise TableError(f"{t.path} has columns {t.header}, but {tables[0].path} has {header}.")
    features = [c for c in header if c != label_column]
    if not features:
        raise TableError(f"{tables[0].path} has no feature columns besides {label_column!r}.")

    labels = sorted({row[t.header.index(label_column)] for t in tables for row in t.rows})
    if len(labels) < 2:
        raise TableError(f"Label column {label_column!r} has a single class ({labels}); data "
                         "valuation needs at least two.")
    label_index = {v: i for i, v in enumerate(labels)}
    numeric = {c: _is_numeric(tables, c) for c in features}
    categories = {c: sorted({row[t.header.index(c)] for t in tables for row in t.rows})
                  for c in features if not numeric[c]}
    names = [c if numeric[c] else f"{c}={v}" for c in features
             for v in ([None] if numeric[c] else categories[c])]

    def encode(t: Table) -> tuple[np.ndarray, np.ndarray]:
        x = np.zeros((len(t.rows), len(names)), dtype=np.float64)
        col = 0
        for c in features:
            j = t.header.index(c)
            if numeric[c]:
                x[:, col] = [float(row[j]) for row in t.rows]
                col += 1
            else:
                lookup = {v: k for k, v in enumerate(categories[c])}
                x[np.arange(len(t.rows)), col + np.array([lookup[row[j]] for row in t.rows])] = 1
                col += len(categories[c])
        y = np.array([label_index[row[t.header.index(label_column)]] for row in t.rows])
        return x, y

    x_train, y_train = encode(tables[0])
    splits = {}
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y_train))
    n_out = int(round(HELD_OUT_FRACTION * len(y_train)))
    for name in held_out:
        take, order = order[:n_out], order[n_out:]
        splits[name] = (x_train[take], y_train[take])
    x_train, y_train = x_train[np.sort(order)], y_train[np.sort(order)]
    rest = iter(tables[1:])
    for name in ("valid", "test"):
        if name not in splits:
            splits[name] = encode(next(rest))
    if len(y_train) < 2 or len(splits["valid"][1]) == 0:
        raise TableError(f"{tables[0].path} has too few rows ({len(tables[0].rows)}) to hold out "
                         f"{', '.join(held_out)}; give --valid-csv and --test-csv.")
    num = np.array([numeric[c] for c in features for _ in
                    ([None] if numeric[c] else categories[c])])
    low, high = x_train[:, num].min(axis=0), x_train[:, num].max(axis=0)
    scale = np.where(high > low, high - low, 1.0)
    for key in ("train", *splits):
        x = x_train if key == "train" else splits[key][0]
        x[:, num] = (x[:, num] - low) / scale
    meta = {"feature_names": names, "label_names": labels, "label_column": label_column,
            "held_out": held_out, "held_out_fraction": HELD_OUT_FRACTION,
            "train_rows": np.sort(order).tolist(), "source": str(tables[0].path)}
    return from_arrays(x_train, y_train, *splits["valid"], *splits["test"], noise_rate=noise_rate,
                       seed=seed, name=Path(train).stem, num_classes=len(labels), meta=meta)

"""A practitioner's own table: CSV files to a :class:`ValuationDataset`.

Columns are encoded as Adult's are, by :mod:`dvrl_env.data.columns` (one-hot and
min-max). Nothing is dropped or merged silently; the policy:

* **Missing cells** are empty cells and, ignoring case and surrounding spaces, the tokens
  ``na``, ``n/a``, ``nan``, ``null``, ``none``, ``?`` and ``missing`` (``MISSING_TOKENS``),
  plus any given with ``missing_values`` (``dvrl value --missing-value TOKEN``).
* **Numeric columns**: a column is numeric when every non-missing cell, in all files, is a
  finite number and there is at least one. It is min-max scaled with the training rows'
  range. Its missing cells get the median of the training rows (those kept for training
  after any hold-out, taken before scaling), and a column with a missing cell in any file
  gets an indicator feature ``<column>=missing`` (1.0 where missing) right after it.
* **Categorical columns**: any other column is one-hot encoded over the categories of all
  files. Its missing cells are one more category, ``(missing)`` (feature
  ``<column>=(missing)``), never merged with a real value.
* A column whose non-missing cells are at least ``NUMERIC_SHARE`` (90%) numbers but holds a
  few words is an error naming the file, line, column and value: fix the cell, or declare
  the word missing. A column taken as categorical although some cells are numbers warns,
  and so does one with more than ``MANY_CATEGORIES`` categories (an identifier column is
  better dropped with ``drop_columns``, ``dvrl value --drop-column NAME``).
* **Labels**: when every label is a number, classes are the distinct numbers, compared
  exactly (``1`` and ``1.0`` are one class; ``12345678901234567890`` and
  ``12345678901234567891`` are two, though equal as floats), named by their shortest exact
  spelling and sorted numerically; otherwise they are the distinct strings. A missing
  label is an error, and so is a label holding a control character (a stray NUL) or a
  label in the validation or test rows that never occurs in the training rows.
* **Rows** are named by the line of the file where they start, as an editor shows it: the
  header is line 1 and blank lines count (they hold no row). Errors say "line N" and
  ``meta["train_lines"]`` gives the line of each training row.

``meta["columns"]`` records what was decided for each feature column.
"""

from __future__ import annotations

import csv
import math
import shlex
import sys
import unicodedata
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np

from dvrl_env.data.columns import Column, ColumnEncoding, TableError, encode_rows
from dvrl_env.data.datasets import ValuationDataset, from_arrays
from dvrl_env.data.registry import check_seed

HELD_OUT_FRACTION = 0.2
NUMERIC_SHARE = 0.9  # a column this numeric is taken as numeric; its stray words are errors
MANY_CATEGORIES = 100  # more categories than this is probably an identifier: warn
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "?", "missing"})


@dataclass(frozen=True)
class Table:
    """The data rows of one CSV file (cells stripped) and the file line each starts on.

    A subset of the training file held out for validation or test says so in
    ``held_out_for``, so that messages about it can tell it from the training rows.
    """

    path: Path
    header: list[str]
    rows: list[list[str]]
    lines: list[int]
    held_out_for: str | None = None

    def column(self, name: str) -> list[str]:
        j = self.header.index(name)
        return [row[j] for row in self.rows]

    def subset(self, index: Iterable[int], held_out_for: str | None = None) -> Table:
        index = list(index)
        return replace(self, rows=[self.rows[i] for i in index],
                       lines=[self.lines[i] for i in index], held_out_for=held_out_for)

    def without(self, columns: Iterable[str]) -> Table:
        drop = set(columns)
        keep = [j for j, name in enumerate(self.header) if name not in drop]
        return replace(self, header=[self.header[j] for j in keep],
                       rows=[[row[j] for j in keep] for row in self.rows])


def read_table(path: str | Path) -> Table:
    """Read a CSV file, refusing a header with nameless or repeated columns and ragged rows.
    Blank lines are skipped but counted, so that line numbers match an editor's."""
    path = Path(path)
    if not path.is_file():
        raise TableError(f"CSV file {path} does not exist.")
    rows, lines = [], []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            start = reader.line_num + 1  # records may span lines: start after the last read
            for row in reader:
                if any(c.strip() for c in row):
                    rows.append([c.strip() for c in row])
                    lines.append(start)
                start = reader.line_num + 1
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise TableError(f"Cannot read {path} as a CSV file: {err}") from None
    if not any(header):
        raise TableError(f"{path} is empty; expected a header row and data rows.")
    _check_header(path, header)
    if not rows:
        raise TableError(f"{path} has a header but no data rows.")
    for row, line in zip(rows, lines, strict=True):
        if len(row) != len(header):
            raise TableError(f"{path}, line {line}: {len(row)} fields, but the header has "
                             f"{len(header)}.")
    return Table(path, header, rows, lines)


def _check_header(path: Path, header: list[str]) -> None:
    """Columns are found by name, so every one needs a name of its own."""
    for j, name in enumerate(header):
        if not name:
            raise TableError(f"{path}: column {j + 1} has no name in the header; name it, "
                             "or remove the extra comma if there is no such column.")
    positions: dict[str, list[int]] = {}
    for j, name in enumerate(header):
        positions.setdefault(name, []).append(j + 1)
    repeated = {name: cols for name, cols in positions.items() if len(cols) > 1}
    if repeated:
        clauses = [f"column name {name!r} appears "
                   f"{'twice' if len(cols) == 2 else f'{len(cols)} times'} in the header "
                   f"(columns {_and(cols)})" for name, cols in repeated.items()]
        fix = ("rename one of them" if [len(c) for c in repeated.values()] == [2]
               else "give every column its own name")
        raise TableError(f"{path}: {'; '.join(clauses)}; {fix}.")


def _and(items: Sequence) -> str:
    """``1 and 2``, ``1, 2 and 4``."""
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _parse_float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _warn(message: str) -> None:
    """A UserWarning shown at the code that called into this module, not inside it."""
    frame, level = sys._getframe(1), 2
    while frame.f_back is not None and frame.f_globals.get("__name__") == __name__:
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=level)


def _as_list(values: Iterable[str], option: str) -> list[str]:
    """A bare string would be read letter by letter: refuse it."""
    if isinstance(values, str):
        raise TypeError(f"{option} takes a list of strings, e.g. {option}=[{values!r}].")
    return list(values)


def _is_missing(cell: str, tokens: frozenset[str]) -> bool:
    return cell.lower() in tokens


def _present(cells: list[str], tokens: frozenset[str]) -> list[str | None]:
    """The cells, with None for each missing one."""
    return [None if _is_missing(c, tokens) else c for c in cells]


def _exact_number(text: str) -> Decimal:
    """A finite number as written, exactly: floats would merge ``12345678901234567890`` and
    ``12345678901234567891`` (both 1.2345678901234567e+19)."""
    try:
        return Decimal(text)
    except InvalidOperation:  # a spelling float() takes and Decimal does not: float's value
        return Decimal(float(text))


def _number_name(value: Decimal) -> str:
    """The shortest exact spelling of a number: ``1.0`` -> ``1``, ``2.5`` -> ``2.5``,
    ``-0.0`` -> ``0``; integers of up to 30 digits in full, other numbers as ``repr``
    of a float would write them (``1e-05``), without ever rounding."""
    sign, digit_tuple, exponent = value.as_tuple()
    digits = "".join(map(str, digit_tuple))
    significant = digits.rstrip("0")
    if not significant:
        return "0"
    exponent += len(digits) - len(significant)  # the value is significant * 10**exponent
    magnitude = exponent + len(significant) - 1  # the power of ten of the leading digit
    if exponent >= 0 and magnitude < 30:
        text = significant + "0" * exponent
    elif exponent < 0 and -4 <= magnitude < 16:
        point = len(significant) + exponent
        text = (f"{significant[:point]}.{significant[point:]}" if point > 0
                else f"0.{'0' * -point}{significant}")
    else:
        mantissa = significant[0] + (f".{significant[1:]}" if len(significant) > 1 else "")
        text = f"{mantissa}e{magnitude:+03d}"
    return ("-" if sign else "") + text


def _control_character(text: str) -> str | None:
    """The first control character (Unicode category Cc, e.g. NUL) in ``text``, if any."""
    if text.isprintable():  # the common case, fast
        return None
    return next((ch for ch in text if unicodedata.category(ch) == "Cc"), None)


def _label_encoding(parts: list[Table], column: str,
                    tokens: frozenset[str]) -> tuple[list[np.ndarray], list[str]]:
    """Integer labels for each split and the class names.

    Labels that are all numbers are compared as exact numbers, so ``1`` in one file and
    ``1.0`` in another are one class while numbers a float cannot tell apart stay two;
    every class of the validation and test rows must occur in the training rows, or the
    predictor could never learn it. A control character in a label (a stray NUL, a tab
    inside a quoted cell) would make a class that looks like another: it is an error.
    """
    cells = [t.column(column) for t in parts]
    for t, col in zip(parts, cells, strict=True):
        for line, cell in zip(t.lines, col, strict=True):
            if _is_missing(cell, tokens):
                raise TableError(f"{t.path}, line {line}: the label (column {column!r}) is "
                                 f"missing ({cell!r}); every row needs one, so fill it in or "
                                 "remove the row.")
            bad = _control_character(cell)
            if bad is not None:
                raise TableError(f"{t.path}, line {line}: the label (column {column!r}) "
                                 f"{cell!r} holds the control character {bad!r}; remove it "
                                 "from the file (it would make a class of its own).")
    if all(_parse_float(c) is not None for col in cells for c in col):
        exact = {c: _exact_number(c) for col in cells for c in col}  # each spelling once
        keys, spell = [[exact[c] for c in col] for col in cells], _number_name
    else:
        keys, spell = cells, str
    classes = sorted({k for col in keys for k in col})
    names = [spell(k) for k in classes]
    if len(classes) < 2:
        raise TableError(f"Label column {column!r} has a single class ({names}); data "
                         "valuation needs at least two.")
    index = {k: i for i, k in enumerate(classes)}
    ys = [np.array([index[k] for k in col], dtype=np.int64) for col in keys]
    for t, y in zip(parts[1:], ys[1:], strict=True):
        unseen = sorted(set(y.tolist()) - set(ys[0].tolist()))
        if unseen:
            where = (f"{t.path}" if t.held_out_for is None
                     else f"{t.path} (the rows held out for {t.held_out_for})")
            raise TableError(f"{where} has label(s) {[names[i] for i in unseen]} that never "
                             f"occur in the training rows of {parts[0].path}; every class "
                             "needs training points.")
    return ys, names


def _is_numeric(column: str, parts: list[Table], cells: list[list[str | None]]) -> bool:
    """Whether a column is numeric; an almost numeric one with a few words is an error, and
    a categorical one holding some numbers is said, since either may be a data-entry slip."""
    present = [(t, line, c) for t, col in zip(parts, cells, strict=True)
               for line, c in zip(t.lines, col, strict=True) if c is not None]
    words = [(t, line, c) for t, line, c in present if _parse_float(c) is None]
    if not present:
        return False
    if not words:
        return True
    n_numbers = len(present) - len(words)
    share = f"{n_numbers / len(present):.0%} ({n_numbers} of {len(present)})"
    if n_numbers >= NUMERIC_SHARE * len(present):
        t, line, word = words[0]
        raise TableError(f"{t.path}, line {line}, column {column!r}: the value {word!r} in a "
                         f"numeric column ({share} of its non-missing cells are numbers); fix "
                         f"it, or declare it missing with missing_values=[{word!r}] (dvrl value "
                         f"--missing-value {shlex.quote(word)}).")
    if n_numbers:
        examples = list(dict.fromkeys(w for _, _, w in words))[:3]
        _warn(f"Column {column!r} was one-hot encoded as categorical although {share} of "
              f"its non-missing cells are numbers; non-numeric values include "
              f"{', '.join(map(repr, examples))}. If it is numeric, fix those cells or declare "
              "them missing with missing_values=[...] (dvrl value --missing-value WORD).")
    return False


def _fitted_column(name: str, parts: list[Table],
                   tokens: frozenset[str]) -> tuple[Column, ColumnEncoding]:
    """A column over all splits' rows, fitted on the training rows (``parts[0]``)."""
    cells = [_present(t.column(name), tokens) for t in parts]
    kind = Column.numeric if _is_numeric(name, parts, cells) else Column.categorical
    column = kind(name, [c for col in cells for c in col])
    train_rows = np.arange(len(parts[0].rows))
    return column, column.fit(train_rows, training=f"the training rows of {parts[0].path}")


def _warn_many_categories(encodings: Sequence[ColumnEncoding], n_rows: int) -> None:
    """Before encoding: a column with very many categories (an identifier?) makes a wide,
    useless matrix that may not fit in memory."""
    n_features = sum(len(e.feature_names) for e in encodings)
    size = 8 * n_rows * n_features  # float64
    size_text = f"{size / 1e9:.1f} GB" if size >= 1e9 else f"{size / 1e6:.1f} MB"
    for e in encodings:
        if len(e.categories) > MANY_CATEGORIES:
            _warn(f"Column {e.column!r} has {len(e.categories)} categories: one-hot encoding "
                  f"makes {n_features} features, a float64 training+valid+test matrix of "
                  f"about {size_text}. If it is an identifier, drop it with "
                  f"drop_columns=[{e.column!r}] (dvrl value --drop-column "
                  f"{shlex.quote(e.column)}).")


def _read_tables(train: str | Path, given: dict[str, str | Path | None], label_column: str,
                 drop_columns: list[str]) -> tuple[Table, dict[str, Table | None]]:
    """The training table and the given valid/test tables, with ``drop_columns`` removed
    and the same columns in every file."""
    first = read_table(train)
    header = first.header
    if label_column not in header:
        raise TableError(f"Label column {label_column!r} is not in {first.path}; its "
                         f"columns are {header}.")
    unknown = [c for c in drop_columns if c not in header]
    if unknown:
        raise TableError(f"drop_columns names {unknown}, not columns of {first.path}; its "
                         f"columns are {header}.")
    if label_column in drop_columns:
        raise TableError(f"drop_columns names the label column {label_column!r}.")
    tables = {name: None if path is None else read_table(path).without(drop_columns)
              for name, path in given.items()}
    first = first.without(drop_columns)
    for t in tables.values():
        if t is not None and sorted(t.header) != sorted(first.header):
            raise TableError(f"{t.path} has columns {t.header}, but {first.path} has "
                             f"{first.header}.")
    if len(first.header) == 1:
        raise TableError(f"{first.path} has no feature columns besides {label_column!r}.")
    return first, tables


def _split(train: Table, given: dict[str, Table | None], seed: int) -> list[Table]:
    """[training rows, valid, test]: a split without its own file is a fraction
    ``HELD_OUT_FRACTION`` of the training file, drawn with ``seed``."""
    order = np.random.default_rng(seed).permutation(len(train.rows))
    n_out = int(round(HELD_OUT_FRACTION * len(train.rows)))
    splits = {}
    for name, table in given.items():
        if table is None:
            take, order = order[:n_out], order[n_out:]
            table = train.subset(take, held_out_for=name)
        splits[name] = table
    kept = train.subset(np.sort(order))
    if len(kept.rows) < 2 or not splits["valid"].rows:
        held_out = [name for name, t in given.items() if t is None]
        raise TableError(f"{train.path} has too few rows ({len(train.rows)}) to hold out "
                         f"{', '.join(held_out)}; give --valid-csv and --test-csv.")
    return [kept, splits["valid"], splits["test"]]


def load_csv(
    train: str | Path,
    label_column: str,
    *,
    valid: str | Path | None = None,
    test: str | Path | None = None,
    noise_rate: float = 0.0,
    seed: int = 0,
    missing_values: Iterable[str] = (),
    drop_columns: Iterable[str] = (),
    validation: str = "given",
) -> ValuationDataset:
    """Build a dataset from CSV files, by the policy of this module's docstring.

    ``validation="cross-fit"`` (no clean validation set: ``valid`` must be None) keeps
    every row of ``train`` as a training row, to be valued against the other rows by an
    env made with ``validation="cross-fit"``; the dataset's validation split is then the
    training rows themselves (``meta["validation"] == "cross-fit"``, which the env checks),
    and so is its test split unless ``test`` is given (``meta["test_is_train"]``).
    Otherwise, without ``valid`` (or ``test``) a fraction ``HELD_OUT_FRACTION`` of the
    training rows is held out for it, drawn with ``seed`` (``meta["held_out"]`` says
    which). ``missing_values`` adds tokens to ``MISSING_TOKENS``; ``drop_columns`` are
    removed before anything else.
    """
    seed = check_seed(seed, "data_seed (seed= of load_csv)")
    if validation not in ("given", "cross-fit"):
        raise ValueError(f"validation must be 'given' or 'cross-fit', got {validation!r}.")
    cross_fit = validation == "cross-fit"
    if cross_fit and valid is not None:
        raise ValueError("validation='cross-fit' values the rows against each other; a "
                         "validation file is a clean reference, so give one or the other.")
    tokens = MISSING_TOKENS | {v.strip().lower()
                               for v in _as_list(missing_values, "missing_values")}
    given = {"valid": valid, "test": test}
    first, tables = _read_tables(train, given, label_column,
                                 _as_list(drop_columns, "drop_columns"))
    if cross_fit:  # every row a training row; valid (and test, if none) are those rows
        parts = [first, first, first if tables["test"] is None else tables["test"]]
    else:
        parts = _split(first, tables, seed)
    ys, label_names = _label_encoding(parts, label_column, tokens)
    columns, encodings = zip(*(_fitted_column(c, parts, tokens)
                               for c in first.header if c != label_column), strict=True)
    _warn_many_categories(encodings, sum(len(t.rows) for t in parts))
    bounds = np.cumsum([0, *(len(t.rows) for t in parts)])
    xs = [encode_rows(columns, encodings, np.arange(a, b))
          for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    meta = {"feature_names": [name for e in encodings for name in e.feature_names],
            "label_names": label_names, "label_column": label_column,
            "columns": {e.column: e.summary() for e in encodings},
            "held_out": [] if cross_fit else [name for name, t in tables.items() if t is None],
            "held_out_fraction": HELD_OUT_FRACTION, "train_lines": parts[0].lines,
            "source": str(first.path)}
    if cross_fit:
        meta["validation"] = "cross-fit"
        meta["test_is_train"] = tables["test"] is None
    return from_arrays(xs[0], ys[0], xs[1], ys[1], xs[2], ys[2], noise_rate=noise_rate,
                       seed=seed, name=Path(train).stem, num_classes=len(label_names), meta=meta)

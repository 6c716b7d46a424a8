"""The one tabular encoder: categorical columns one-hot, numeric columns min-max scaled.

UCI Adult (:func:`dvrl_env.data.sources.load_adult`) and a user's CSV files
(:func:`dvrl_env.data.tabular.load_csv`) both go through it, so the two can never drift
apart. It works in two stages so that a large table is parsed once:

1. :class:`Column` turns a column's cells (``None`` for a missing cell) into numbers,
   over *all* rows of every split: so one-hot columns never depend on the split.
   Categories are sorted; missing cells of a categorical column are one more category,
   ``(missing)``. A numeric column keeps NaN where a cell is missing.
2. :meth:`Column.fit` takes the training rows' range (and their median, which fills
   missing cells) into a :class:`ColumnEncoding`; :func:`encode_rows` then encodes any
   rows with it. A numeric column with a missing cell anywhere gets an indicator
   feature ``<column>=missing`` right after it. A constant column is only shifted.
   Validation and test values may therefore fall outside [0, 1]: they are never
   clipped, nor scaled with their own statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["MISSING_CATEGORY", "Column", "ColumnEncoding", "TableError", "encode_rows"]

MISSING_CATEGORY = "(missing)"


class TableError(ValueError):
    """A problem with a table's cells, with the file, line or column named."""


@dataclass(frozen=True, eq=False)
class Column:
    """One feature column as numbers, over all rows of every split.

    ``values`` are float64 with NaN for missing cells when ``categories`` is empty
    (numeric), else int64 indices into ``categories``.
    """

    name: str
    values: np.ndarray
    missing: int  # missing cells over all rows
    categories: tuple[str, ...] = ()

    @classmethod
    def numeric(cls, name: str, cells: Sequence[str | None]) -> Column:
        """Cells that all read as finite numbers (the caller decides a column is numeric)."""
        values = np.array([np.nan if c is None else float(c) for c in cells], dtype=np.float64)
        values.flags.writeable = False
        return cls(name, values, int(np.isnan(values).sum()))

    @classmethod
    def categorical(cls, name: str, cells: Sequence[str | None]) -> Column:
        """One category per distinct cell, sorted; missing cells are ``(missing)``."""
        present = set(cells)
        missing = None in present
        present.discard(None)
        if missing and MISSING_CATEGORY in present:
            raise TableError(f"Column {name!r} has missing cells and cells that read "
                             f"{MISSING_CATEGORY!r}, the category missing cells get; rename "
                             "that value.")
        categories = tuple(sorted(present | ({MISSING_CATEGORY} if missing else set())))
        index = {category: k for k, category in enumerate(categories)}
        if missing:
            index[None] = index[MISSING_CATEGORY]
        values = np.array([index[c] for c in cells], dtype=np.int64)
        values.flags.writeable = False
        return cls(name, values, sum(c is None for c in cells) if missing else 0, categories)

    @property
    def is_numeric(self) -> bool:
        return not self.categories

    def fit(self, train_rows: np.ndarray, training: str = "the training rows") -> ColumnEncoding:
        """The encoding fitted on ``train_rows`` (indices into ``values``); ``training``
        names those rows in an error."""
        if not self.is_numeric:
            return ColumnEncoding(self.name, self.missing, categories=self.categories)
        train = self.values[train_rows]
        train = train[~np.isnan(train)]
        if train.size == 0:
            raise TableError(f"Column {self.name!r} has no values in {training}, so its "
                             "missing cells cannot be imputed; fill it in or drop it with "
                             f"drop_columns=[{self.name!r}].")
        low, high = float(train.min()), float(train.max())
        if not np.isfinite(high - low):  # e.g. -1e308 and 1e308: min-max would give NaN
            raise TableError(f"Column {self.name!r} spans {low:.4g} to {high:.4g} in "
                             f"{training}, a range beyond float64; scale the column first "
                             "(e.g. take logs, or divide it by a large power of ten).")
        return ColumnEncoding(self.name, self.missing, median=float(np.median(train)), low=low,
                              scale=high - low if high > low else 1.0)


@dataclass(frozen=True)
class ColumnEncoding:
    """How one column becomes features: its categories (from all rows) or its training
    rows' median and range, applied to every split alike."""

    column: str
    missing: int  # missing cells over all rows
    categories: tuple[str, ...] = ()  # categorical: one feature per category
    median: float = 0.0  # numeric: fills the missing cells
    low: float = 0.0  # numeric: (value - low) / scale, the training rows' range
    scale: float = 1.0

    @property
    def numeric(self) -> bool:
        return not self.categories

    @property
    def feature_names(self) -> list[str]:
        if self.numeric:
            return [self.column, *([f"{self.column}=missing"] if self.missing else [])]
        return [f"{self.column}={v}" for v in self.categories]

    def summary(self) -> dict:
        """What was decided for the column, for a dataset's ``meta["columns"]``."""
        if self.numeric:
            return {"kind": "numeric", "missing": self.missing,
                    **({"imputed": self.median} if self.missing else {})}
        return {"kind": "categorical", "missing": self.missing,
                "categories": len(self.categories)}

    def encode(self, values: np.ndarray) -> np.ndarray:
        """The float64 features of some rows of a :class:`Column`'s ``values``."""
        if not self.numeric:
            x = np.zeros((len(values), len(self.categories)))
            x[np.arange(len(values)), values] = 1.0
            return x
        missing = np.isnan(values)
        scaled = (np.where(missing, self.median, values) - self.low) / self.scale
        return np.column_stack([scaled, missing]) if self.missing else scaled[:, None]


def encode_rows(columns: Sequence[Column], encodings: Sequence[ColumnEncoding],
                rows: np.ndarray) -> np.ndarray:
    """The features of ``rows`` (indices into the columns), columns side by side."""
    return np.hstack([e.encode(c.values[rows]) for c, e in zip(columns, encodings, strict=True)])

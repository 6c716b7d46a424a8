"""A record of an agent's values with what it knows about them, as pyDVL's
``ValuationResult``: per-point counts and spread where the agent has them, and the
compute it spent. ``np.asarray(result)`` is the bare values, so code written for
``data_values()`` takes a result as well.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class ValuationResult:
    """One value per training point (training-set order, higher is more valuable).

    ``counts``: how many times each point was seen by the updates (what that means is
    the agent's: the ``credit`` agent counts each point once per env copy of each round
    it was in), or None. ``spread``: a per-point uncertainty on the scale of ``values``
    (a standard error), or None. ``agent``: the registry name; ``steps``: updates done;
    ``fits``: predictor fits used. The arrays are read-only copies.
    """

    values: np.ndarray
    counts: np.ndarray | None = None
    spread: np.ndarray | None = None
    agent: str = "agent"
    steps: int = 0
    fits: int = 0

    def __post_init__(self) -> None:
        values = _frozen(self.values, "values")
        object.__setattr__(self, "values", values)
        for name in ("counts", "spread"):
            array = getattr(self, name)
            if array is None:
                continue
            array = _frozen(array, name)
            if array.shape != values.shape:
                raise ValueError(f"ValuationResult: {name} has {array.size} entries, values "
                                 f"{values.size}; give one per training point (or None).")
            object.__setattr__(self, name, array)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """The values: ``np.asarray(result)`` is ``result.values``."""
        if copy is False and dtype is not None and np.dtype(dtype) != self.values.dtype:
            raise ValueError("Converting the values to another dtype needs a copy.")
        values = self.values if dtype is None else self.values.astype(dtype, copy=False)
        return values.copy() if copy else values

    def __len__(self) -> int:
        return len(self.values)

    def to_frame(self):
        """A pandas DataFrame indexed by training row: ``value``, and ``count`` and
        ``spread`` where the agent has them."""
        import pandas as pd

        columns = {"value": self.values}
        if self.counts is not None:
            columns["count"] = self.counts
        if self.spread is not None:
            columns["spread"] = self.spread
        return pd.DataFrame(columns, index=pd.RangeIndex(len(self), name="row"))


def _frozen(array, name: str) -> np.ndarray:
    array = np.array(array, dtype=np.float64)  # a copy: the agent's own arrays stay its
    if array.ndim != 1:
        raise ValueError(f"ValuationResult: {name} must be one-dimensional (one entry per "
                         f"training point), got shape {array.shape}.")
    array.flags.writeable = False
    return array

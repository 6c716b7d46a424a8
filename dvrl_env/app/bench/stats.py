"""The one interval every benchmark table uses: the mean with a Student-t 95% interval
over seeds (seeds are few, so a normal interval would be too narrow)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np


def finite(values: Iterable) -> np.ndarray:
    """The finite numbers of ``values`` (``None``, NaN and text dropped)."""
    out = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out.append(f)
    return np.asarray(out, dtype=float)


def mean_ci(values: Iterable, level: float = 0.95) -> tuple[float, float, int]:
    """Mean, half-width of the Student-t interval, and count of the finite values
    (half-width NaN for one value, everything NaN for none)."""
    from scipy import stats

    x = finite(values)
    if len(x) == 0:
        return float("nan"), float("nan"), 0
    if len(x) == 1:
        return float(x[0]), float("nan"), 1
    half = stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean()), float(half), len(x)


def fmt(mean: float, half: float, digits: int = 3, signed: bool = False) -> str:
    """``0.912 ± 0.013`` (``± n/a`` for one seed, ``n/a`` for none)."""
    if not np.isfinite(mean):
        return "n/a"
    body = f"{mean:+.{digits}f}" if signed else f"{mean:.{digits}f}"
    return body + (f" ± {half:.{digits}f}" if np.isfinite(half) else " ± n/a")

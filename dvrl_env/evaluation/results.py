"""Result records of :mod:`dvrl_env.evaluation`: plain data for ``metrics.json`` and plots.

Frozen dataclasses of numpy arrays and floats; ``to_dict()`` gives JSON-safe lists,
floats and None (NaN and inf become None, so ``json.dumps(..., allow_nan=False)``
accepts it). They live apart from the experiments so that plots and readers of saved
metrics need neither scikit-learn nor a dataset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

__all__ = [
    "DetectionScores", "DiscoveryCurve", "RemoveHighLow", "RobustLearning",
    "ValueHistogram", "ValueTrajectory",
]


def _plain(obj: Any) -> Any:
    """JSON-safe copy: arrays to lists, numpy scalars to Python, NaN/inf to None
    (so ``json.dumps(..., allow_nan=False)`` accepts it)."""
    if isinstance(obj, np.ndarray):
        obj = obj.tolist()
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (np.bool_, bool, np.integer, int)):
        return obj.item() if isinstance(obj, np.generic) else obj
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    return obj


class _Result:
    """Mixin: ``to_dict()`` for the frozen result dataclasses below."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True, eq=False)
class DiscoveryCurve(_Result):
    """Fraction of corrupted points found among the lowest-valued ``fractions`` of the data."""

    fractions: np.ndarray
    n_inspected: np.ndarray
    found: np.ndarray
    optimal: np.ndarray
    random: np.ndarray
    noise_fraction: float


@dataclass(frozen=True, eq=False)
class DetectionScores(_Result):
    """Values as a detector of corrupted points; F1 flags the ``n_flagged`` lowest."""

    auroc: float
    auprc: float
    f1: float
    precision: float
    recall: float
    n_flagged: int
    noise_fraction: float


@dataclass(frozen=True, eq=False)
class RemoveHighLow(_Result):
    """Test accuracy after removing the highest- or lowest-valued ``fractions``."""

    fractions: np.ndarray
    n_removed: np.ndarray
    remove_high: np.ndarray
    remove_low: np.ndarray
    model: str


@dataclass(frozen=True, eq=False)
class RobustLearning(_Result):
    """Test accuracy trained value-weighted, unweighted (noisy labels), and on clean labels."""

    weighted: float
    unweighted: float
    clean: float
    model: str


@dataclass(frozen=True, eq=False)
class ValueTrajectory(_Result):
    """Per-row arrays of an agent's ``progress.csv``; a column the log lacks is None.

    ``clean_mean``/``corrupted_mean`` are derived (see :func:`clean_corrupted_means`)
    when a noise fraction was given. ``columns`` holds every numeric column read.
    """

    step: np.ndarray
    mean_value: np.ndarray | None
    auroc: np.ndarray | None
    value_gap: np.ndarray | None
    reward: np.ndarray | None
    clean_mean: np.ndarray | None
    corrupted_mean: np.ndarray | None
    noise_fraction: float | None
    columns: dict[str, np.ndarray]


@dataclass(frozen=True, eq=False)
class ValueHistogram(_Result):
    """Counts of values per bin; clean/corrupted counts only when a mask was given."""

    edges: np.ndarray
    counts: np.ndarray
    counts_clean: np.ndarray | None
    counts_corrupted: np.ndarray | None

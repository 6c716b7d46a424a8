"""How good are data values? Scores that take a dataset's noise mask and a value array."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score


def detection_auroc(values: np.ndarray, noisy_mask: np.ndarray) -> float:
    """AUROC of ``-values`` as a detector of corrupted points: 1 when every corrupted
    point is valued below every clean one, 0.5 for random values."""
    noisy_mask = np.asarray(noisy_mask, dtype=bool)
    if noisy_mask.all() or not noisy_mask.any():
        return float("nan")
    return float(roc_auc_score(noisy_mask, -np.asarray(values, dtype=np.float64)))


def value_gap(values: np.ndarray, noisy_mask: np.ndarray) -> float:
    """Mean value of clean points minus mean value of corrupted points."""
    noisy_mask = np.asarray(noisy_mask, dtype=bool)
    if noisy_mask.all() or not noisy_mask.any():
        return float("nan")
    values = np.asarray(values, dtype=np.float64)
    return float(values[~noisy_mask].mean() - values[noisy_mask].mean())

"""How good are data values? The DVRL paper's experiments, for a dataset and a value array.

Every function takes a :class:`~dvrl_env.data.datasets.ValuationDataset` (or a log file) and
one value per training point (higher is more valuable), and returns a frozen dataclass
of numpy arrays and floats with a ``to_dict()`` for ``metrics.json`` (the records are
defined in :mod:`dvrl_env.evaluation.results` and re-exported here). Plots of each result live in
:mod:`dvrl_env.evaluation.plots`.

Ranking rule, shared by every experiment: points are ordered by
``np.argsort(values, kind="stable")``, so among tied values the lower training index
counts as *lower valued* (inspected first, removed first by "remove low", last by
"remove high"). Inspecting or removing a fraction ``x`` of ``n`` points means
``floor(x * n)`` points (with a 1e-9 tolerance for ``0.3 * 10 = 2.9999...``), so the
discovery curve can never exceed its optimal curve.
"""

from __future__ import annotations

import csv
import os

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from dvrl_env.data.datasets import ValuationDataset
from dvrl_env.evaluation.logs import PROGRESS_LOG
from dvrl_env.evaluation.results import (
    DetectionScores,
    DiscoveryCurve,
    RemoveHighLow,
    RobustLearning,
    ValueHistogram,
    ValueTrajectory,
)

__all__ = [
    "DEFAULT_FRACTIONS", "DetectionScores", "DiscoveryCurve", "RemoveHighLow",
    "RobustLearning", "ValueHistogram", "ValueTrajectory", "clean_corrupted_means",
    "detection_auroc", "detection_scores", "discovery_curve", "remove_high_low",
    "robust_learning", "value_gap", "value_histogram", "value_trajectory",
]

#: 0, 0.05, ..., 0.5: the x axis of the paper's discovery and removal figures.
DEFAULT_FRACTIONS = np.round(np.arange(0, 0.501, 0.05), 10)


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


# --- checks ---------------------------------------------------------------------------


def _check_values(dataset: ValuationDataset, values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (dataset.n_train,):
        raise ValueError(f"values has shape {values.shape}; expected one value per "
                         f"training point, shape ({dataset.n_train},).")
    if not np.isfinite(values).all():
        bad = int(np.argmax(~np.isfinite(values)))
        raise ValueError(f"values contains NaN or inf (first at index {bad}).")
    return values


def _known_mask(dataset: ValuationDataset, what: str) -> np.ndarray:
    mask = np.asarray(dataset.noisy_mask, dtype=bool)
    if mask.shape != (dataset.n_train,) or not mask.any():
        raise ValueError(
            f"{what} needs a known noise mask with at least one corrupted point, but "
            f"dataset {dataset.name!r} marks none as corrupted. Without a mask, use "
            "value_histogram and remove_high_low instead."
        )
    return mask


def _check_fractions(fractions, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Fractions as a float array, and ``floor(x * n)`` point counts for each."""
    fractions = np.asarray(fractions, dtype=np.float64).reshape(-1)
    if len(fractions) == 0 or not np.all((fractions >= 0) & (fractions <= 1)):
        raise ValueError(f"fractions must be a non-empty list in [0, 1], got {fractions}.")
    counts = np.floor(fractions * n + 1e-9).astype(np.int64)
    return fractions, counts


def _ranking(values: np.ndarray) -> np.ndarray:
    """Training indices from lowest to highest value; ties: lower index first."""
    return np.argsort(values, kind="stable")


# --- corrupted-sample discovery -------------------------------------------------------


def discovery_curve(
    dataset: ValuationDataset, values: np.ndarray, fractions=DEFAULT_FRACTIONS
) -> DiscoveryCurve:
    """Share of corrupted points found by inspecting the lowest-valued ``floor(x * n)``
    points, for each x in ``fractions`` (the paper's Figure 2).

    Beside it: the optimal curve ``min(x / f, 1)`` and the random curve ``x``, with f
    the actual corrupted fraction ``n_noisy / n`` (not the nominal noise rate).
    """
    values = _check_values(dataset, values)
    mask = _known_mask(dataset, "The discovery curve")
    n = len(values)
    fractions, counts = _check_fractions(fractions, n)
    found_cumulative = np.concatenate([[0], np.cumsum(mask[_ranking(values)])])
    f = float(mask.mean())
    return DiscoveryCurve(fractions=fractions, n_inspected=counts,
                          found=found_cumulative[counts] / mask.sum(),
                          optimal=np.minimum(fractions / f, 1.0), random=fractions.copy(),
                          noise_fraction=f)


def detection_scores(dataset: ValuationDataset, values: np.ndarray) -> DetectionScores:
    """AUROC, AUPRC (average precision) and F1/precision/recall of the values as a
    detector of corrupted points; lower value means "more likely corrupted".

    F1 flags the ``round(f * n)`` lowest-valued points (f the actual corrupted
    fraction, so exactly ``n_noisy`` points): as many as an oracle would flag, which
    makes precision, recall and F1 equal; all three are kept for the report's table.
    """
    values = _check_values(dataset, values)
    mask = _known_mask(dataset, "Detection scores")
    n = len(values)
    f = float(mask.mean())
    k = int(round(f * n))
    flagged = np.zeros(n, dtype=bool)
    flagged[_ranking(values)[:k]] = True
    tp = int((flagged & mask).sum())
    precision = tp / k if k else 0.0
    recall = tp / int(mask.sum())
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    return DetectionScores(auroc=detection_auroc(values, mask),
                           auprc=float(average_precision_score(mask, -values)), f1=float(f1),
                           precision=float(precision), recall=float(recall), n_flagged=k,
                           noise_fraction=f)


# --- retraining experiments -----------------------------------------------------------


def _default_model():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000)


def _model_name(model) -> str:
    return type(model).__name__


def _fit_score(model, x: np.ndarray, y: np.ndarray, dataset: ValuationDataset,
               sample_weight: np.ndarray | None = None) -> float:
    """Test accuracy of a fresh clone of ``model`` fitted on ``(x, y)``.

    A training set with a single class cannot be fitted by most classifiers; it is
    scored as the constant predictor of that class (what any classifier would learn).
    """
    from sklearn.base import clone

    classes = np.unique(y if sample_weight is None else y[sample_weight > 0])
    if len(classes) == 1:
        return float(np.mean(dataset.y_test == classes[0]))
    fitted = clone(model)
    if sample_weight is None:
        fitted.fit(x, y)
    else:
        fitted.fit(x, y, sample_weight=sample_weight)
    return float(np.mean(fitted.predict(dataset.x_test) == dataset.y_test))


def remove_high_low(
    dataset: ValuationDataset, values: np.ndarray, fractions=DEFAULT_FRACTIONS, model=None
) -> RemoveHighLow:
    """Test accuracy after removing the highest-valued, and separately the
    lowest-valued, ``floor(x * n)`` training points (the paper's Figure 3).

    Good values make "remove low" rise or hold (corrupted points go first) and
    "remove high" fall. Each point of each curve retrains a fresh
    ``sklearn.base.clone`` of ``model`` (default ``LogisticRegression(max_iter=1000)``)
    on the remaining points with their labels as used (noisy). A remainder of one
    class scores as the constant predictor of that class. Needs no noise mask.
    """
    values = _check_values(dataset, values)
    n = len(values)
    fractions, counts = _check_fractions(fractions, n)
    if counts.max() >= n:
        raise ValueError(f"Removing a fraction of {fractions.max()} leaves no training "
                         "point; use fractions below 1.")
    model = _default_model() if model is None else model
    order = _ranking(values)
    x, y = dataset.x_train, dataset.y_train
    high, low = [], []
    for k in counts:
        keep_low_removed = order[k:]
        keep_high_removed = order[: n - k]
        high.append(_fit_score(model, x[keep_high_removed], y[keep_high_removed], dataset))
        low.append(_fit_score(model, x[keep_low_removed], y[keep_low_removed], dataset))
    return RemoveHighLow(fractions=fractions, n_removed=counts, remove_high=np.asarray(high),
                         remove_low=np.asarray(low), model=_model_name(model))


def robust_learning(
    dataset: ValuationDataset, values: np.ndarray, model=None, *, normalize: bool = True
) -> RobustLearning:
    """Test accuracy of ``model`` trained with the values as sample weights, against
    the same model unweighted on the noisy labels, and on the clean labels (the ceiling).

    Weights are ``max(values, 0)``; with ``normalize`` they are rescaled to mean 1, so
    a regularised model (logistic regression's C) sees the same regularisation
    strength as the unweighted fit and only the relative weights differ.
    """
    from sklearn.utils.validation import has_fit_parameter

    values = _check_values(dataset, values)
    model = _default_model() if model is None else model
    if not has_fit_parameter(model, "sample_weight"):
        raise TypeError(
            f"{_model_name(model)}.fit takes no sample_weight, so it cannot be trained "
            "with the values as weights; pass an estimator that accepts sample_weight "
            "(e.g. LogisticRegression, RandomForestClassifier)."
        )
    weights = np.clip(values, 0.0, None)
    if not weights.any():
        raise ValueError("Every value is zero or negative, so every sample weight would be "
                         "zero; robust learning needs at least one positive value.")
    if normalize:
        weights = weights / weights.mean()
    x, y = dataset.x_train, dataset.y_train
    return RobustLearning(weighted=_fit_score(model, x, y, dataset, sample_weight=weights),
                          unweighted=_fit_score(model, x, y, dataset),
                          clean=_fit_score(model, x, dataset.y_train_clean, dataset),
                          model=_model_name(model))


# --- training logs --------------------------------------------------------------------


def clean_corrupted_means(
    mean_value: np.ndarray, gap: np.ndarray, noise_fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """Clean and corrupted mean values recovered from the logged mean and gap.

    With f the corrupted fraction, c the clean mean and r the corrupted mean, the log
    holds ``mean = (1 - f) c + f r`` and ``gap = c - r``. Substituting ``r = c - gap``
    gives ``mean = c - f gap``, so ``c = mean + f gap`` and ``r = mean - (1 - f) gap``.
    f must be the actual corrupted fraction ``noisy_mask.mean()``, in (0, 1).
    """
    if not 0.0 < noise_fraction < 1.0:
        raise ValueError(f"noise_fraction must lie strictly between 0 and 1, got "
                         f"{noise_fraction}; the means need both kinds of point.")
    gap = np.asarray(gap, dtype=np.float64)
    clean = np.asarray(mean_value, dtype=np.float64) + noise_fraction * gap
    return clean, clean - gap


def _to_float(cell: str | None) -> float:
    if cell is None or cell.strip() in ("", "None", "none", "null"):
        return float("nan")
    return float(cell)


def value_trajectory(
    log_csv_path: str | os.PathLike, noise_fraction: float | None = None
) -> ValueTrajectory:
    """Read an agent's ``progress.csv`` (columns step, mean_value, auroc, value_gap,
    reward, ...; any but ``step`` may be missing, empty cells read as NaN).

    Give ``noise_fraction`` (``dataset.noisy_mask.mean()``) to also get the clean and
    corrupted mean value per row, derived by :func:`clean_corrupted_means`.
    Non-numeric columns are skipped.
    """
    with open(log_csv_path, newline="") as f:
        reader = csv.DictReader(f)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    where = os.fspath(log_csv_path)
    if "step" not in header:
        raise ValueError(f"{where} has no 'step' column (columns: {header}); is it an "
                         f"agent's {PROGRESS_LOG}?")
    if not rows:
        raise ValueError(f"{where} has a header but no rows yet.")
    columns: dict[str, np.ndarray] = {}
    for name in header:
        try:
            columns[name] = np.array([_to_float(row.get(name)) for row in rows])
        except ValueError:
            continue  # a text column, e.g. a run name
    if "step" not in columns:
        raise ValueError(f"{where}: the 'step' column is not numeric.")
    clean = corrupted = None
    if noise_fraction is not None:
        if "mean_value" not in columns or "value_gap" not in columns:
            raise ValueError(f"{where} lacks mean_value or value_gap, so clean and corrupted "
                             "means cannot be derived (was the noise mask known in training?).")
        clean, corrupted = clean_corrupted_means(
            columns["mean_value"], columns["value_gap"], float(noise_fraction)
        )
    return ValueTrajectory(
        step=columns["step"], mean_value=columns.get("mean_value"), auroc=columns.get("auroc"),
        value_gap=columns.get("value_gap"), reward=columns.get("reward"), clean_mean=clean,
        corrupted_mean=corrupted, columns=columns,
        noise_fraction=None if noise_fraction is None else float(noise_fraction))


def value_histogram(
    values: np.ndarray, noisy_mask: np.ndarray | None = None, bins: int = 20
) -> ValueHistogram:
    """Histogram of the values, split into clean and corrupted when a mask is known.

    Both splits share one set of bin edges (over all values) so their bars line up;
    this is what a report can still show for a dataset without a noise mask.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(values) == 0 or not np.isfinite(values).all():
        raise ValueError("value_histogram needs a non-empty array of finite values.")
    edges = np.histogram_bin_edges(values, bins=bins)
    counts = np.histogram(values, bins=edges)[0]
    clean = corrupted = None
    if noisy_mask is not None:
        mask = np.asarray(noisy_mask, dtype=bool)
        if mask.shape != values.shape:
            raise ValueError(f"noisy_mask has shape {mask.shape}, values {values.shape}.")
        clean = np.histogram(values[~mask], bins=edges)[0]
        corrupted = np.histogram(values[mask], bins=edges)[0]
    return ValueHistogram(edges, counts, clean, corrupted)

"""One registry of the scores of a run's values: each metric a bench spec may ask for, the
table columns it fills and the function that computes them, with one set of removal
fractions. The bench's cells, its table reader and leaderboard, and the run report read
it, so a metric's name, its columns and its fractions are decided here once."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from dvrl_env.data.datasets import ValuationDataset
from dvrl_env.evaluation.metrics import (
    DEFAULT_FRACTIONS,
    detection_auroc,
    detection_scores,
    remove_high_low,
    robust_learning,
    value_gap,
)

#: the fractions remove-high/low removes everywhere: the report's curves, and the bench's
#: ``remove_high`` / ``remove_low``, each the mean over those above 0 (0 removes nothing)
REMOVE_FRACTIONS = DEFAULT_FRACTIONS
#: the column the leaderboard ranks agents by (and the one every bench row records)
RANK_COLUMN = "auroc"


@dataclasses.dataclass(frozen=True)
class Score:
    """A metric: the columns it fills and ``compute(dataset, values) -> {column: value}``
    (None: not defined for these values). With ``noted``, a ValueError (the metric cannot
    be taken for these values) is recorded as a note instead of failing the row."""

    columns: tuple[str, ...]
    compute: Callable[[ValuationDataset, np.ndarray], dict[str, float | None]]
    noted: bool = False


def _auroc(dataset: ValuationDataset, values: np.ndarray) -> dict[str, float | None]:
    return {"auroc": detection_auroc(values, dataset.noisy_mask)}


def _f1(dataset: ValuationDataset, values: np.ndarray) -> dict[str, float | None]:
    detection = detection_scores(dataset, values)
    return {"f1": detection.f1, "auprc": detection.auprc}


def _gap(dataset: ValuationDataset, values: np.ndarray) -> dict[str, float | None]:
    gap = value_gap(values, dataset.noisy_mask)
    # in standard deviations of the values: agents' values are on different scales
    # (credit's on its own), so only this form compares across agents
    spread = float(np.std(values))
    return {"gap": gap, "gap_sd": gap / spread if spread > 0 else None}


def _remove_high_low(dataset: ValuationDataset, values: np.ndarray) -> dict[str, float | None]:
    removal = remove_high_low(dataset, values, fractions=REMOVE_FRACTIONS)
    removed = removal.fractions > 0
    return {"remove_high": float(np.mean(removal.remove_high[removed])),
            "remove_low": float(np.mean(removal.remove_low[removed]))}


def _robust(dataset: ValuationDataset, values: np.ndarray) -> dict[str, float | None]:
    robust = robust_learning(dataset, values)  # ValueError without a positive value
    return {"robust_acc": robust.weighted, "unweighted_acc": robust.unweighted,
            "clean_acc": robust.clean}


#: metric name (as a spec's ``metrics`` lists it) -> its score; detection AUROC is always taken
SCORES: dict[str, Score] = {
    "auroc": Score(("auroc",), _auroc),
    "f1": Score(("f1", "auprc"), _f1),
    "gap": Score(("gap", "gap_sd"), _gap),
    "remove_high_low": Score(("remove_high", "remove_low"), _remove_high_low),
    "robust": Score(("robust_acc", "unweighted_acc", "clean_acc"), _robust, noted=True),
}
#: the metrics a spec may ask for, and every column they fill
METRICS = tuple(SCORES)
COLUMNS = tuple(column for score in SCORES.values() for column in score.columns)


def score_values(dataset: ValuationDataset, values: np.ndarray, metrics: tuple[str, ...],
                 notes: dict) -> dict[str, float | None]:
    """The columns of ``metrics`` (AUROC always) for ``values``; a metric that cannot be
    taken leaves its columns out and ``notes[f"{name}_note"]`` says why."""
    out: dict[str, float | None] = {}
    for name in dict.fromkeys((RANK_COLUMN, *metrics)):
        score = SCORES[name]
        try:
            out.update(score.compute(dataset, values))
        except ValueError as err:  # e.g. robust: no value > 0, no positive weight to fit with
            if not score.noted:
                raise
            notes[f"{name}_note"] = str(err)
    return out

"""The rows most likely mislabeled, as a ranked table a user can act on.

Rows are ranked by value, lowest first. Beside each row's given label stands the label
a model prefers for it, from class probabilities that never saw the row's own label: the
cross-fitted model of :mod:`dvrl_env.data.crossfit` (fitted with the values' reference
weights, so suspected rows weigh little) when the data have no clean validation set,
else the model of the clean validation set. A row is *flagged* when that model prefers
another label than the given one: the count needs no noise rate, and it is the rule
confident learning calls ``predicted_neq_given``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np

from dvrl_env.atomic import atomic_write_text
from dvrl_env.data.crossfit import (
    DEFAULT_FOLDS,
    cross_fitted_probabilities,
    make_folds,
    reference_weights,
)
from dvrl_env.data.datasets import ValuationDataset
from dvrl_env.data.marginal import validation_model_probabilities

FLAG_RULE = ("the model that never saw a row's label prefers another label for it "
             "(confident learning's predicted_neq_given rule)")
COLUMNS = ("rank", "index", "csv_line", "given_label", "preferred_label",
           "preferred_probability", "given_probability", "value", "flagged", "corrupted")


@dataclass(frozen=True, eq=False)
class LabelIssues:
    """Every training row ranked by value (lowest first), with the preferred labels."""

    order: np.ndarray  # row indices, lowest value first
    values: np.ndarray
    probabilities: np.ndarray  # (n, C): the model that never saw each row's label
    flagged: np.ndarray  # bool per row
    reference: str  # where the probabilities come from, in words

    @property
    def n_flagged(self) -> int:
        return int(self.flagged.sum())

    def rows(self, dataset: ValuationDataset, top: int | None = None) -> list[dict]:
        """The table's rows, ranked; ``top`` cuts it."""
        names = dataset.meta.get("label_names")
        lines = dataset.meta.get("train_lines")
        known = bool(dataset.noisy_mask.any())

        def label(c: int):
            return names[c] if names else int(c)

        out = []
        for rank, i in enumerate(self.order[:top], start=1):
            given, preferred = int(dataset.y_train[i]), int(self.probabilities[i].argmax())
            out.append({"rank": rank, "index": int(i),
                        "csv_line": lines[i] if lines else None,
                        "given_label": label(given), "preferred_label": label(preferred),
                        "preferred_probability": float(self.probabilities[i, preferred]),
                        "given_probability": float(self.probabilities[i, given]),
                        "value": float(self.values[i]), "flagged": bool(self.flagged[i]),
                        "corrupted": bool(dataset.noisy_mask[i]) if known else None})
        return out


def find_issues(dataset: ValuationDataset, values: np.ndarray, *, cross_fit: bool,
                folds: int = DEFAULT_FOLDS, seed: int = 0) -> LabelIssues:
    """Rank ``values`` and attach each row's preferred label. With ``cross_fit`` the
    probabilities are cross-fitted over ``folds`` (drawn with ``seed``, as the env draws
    them), the reference weighted by the values; else from the validation set."""
    values = np.asarray(values, dtype=np.float64)
    if cross_fit:
        fold_of = make_folds(dataset.y_train, folds, seed, dataset.meta.get("label_names"))
        probs, _ = cross_fitted_probabilities(dataset.x_train, dataset.y_train,
                                              dataset.num_classes, fold_of,
                                              reference_weights(values))
        reference = (f"out of fold ({folds} folds of the training rows, their given labels "
                     "weighted by the values)")
    else:
        probs = validation_model_probabilities(dataset)
        reference = "a logistic regression fitted on the validation set"
    flagged = probs.argmax(axis=1) != dataset.y_train
    order = np.argsort(values, kind="stable")
    return LabelIssues(order, values, probs, flagged, reference)


def write_label_issues(path, dataset: ValuationDataset, issues: LabelIssues) -> None:
    """``label_issues.csv``: the flagged rows, ranked lowest value first (columns
    ``COLUMNS``; ``csv_line`` and ``corrupted`` only where the data have them)."""
    rows = [r for r in issues.rows(dataset) if r["flagged"]]
    columns = [c for c in COLUMNS
               if not (c == "csv_line" and not dataset.meta.get("train_lines"))
               and not (c == "corrupted" and not dataset.noisy_mask.any())]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for rank, row in enumerate(rows, start=1):
        writer.writerow({**row, "rank": rank, "value": repr(row["value"]),
                         "preferred_probability": f"{row['preferred_probability']:.4f}",
                         "given_probability": f"{row['given_probability']:.4f}",
                         "flagged": int(row["flagged"]),
                         "corrupted": "" if row["corrupted"] is None else int(row["corrupted"])})
    atomic_write_text(path, buffer.getvalue())

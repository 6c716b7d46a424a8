"""Marginal information: what a model of the clean validation set thinks of each point.

DVRL feeds the DVE ``m = |onehot(y) - p_val(x)|``, where ``p_val`` is a model trained on
the validation set (``dvrl/dvrl.py``: ``y_pred_diff``). A point whose given label the
validation model finds unlikely has a large ``m`` at that label: on its own it is a
strong detector of flipped labels (AUROC 0.92 on Adult, 0.997 on Digits at 20% noise:
``benchmarks/specs/agent_quality.toml``).

Without a clean validation set (``validation="cross-fit"``), ``p_val`` is the
out-of-fold model of :mod:`dvrl_env.data.crossfit`: each row's probabilities come from a
model fitted on the other folds' rows, never on its own label.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from dvrl_env.data.crossfit import cross_fitted_probabilities
from dvrl_env.data.datasets import ValuationDataset
from dvrl_env.predictors import one_hot


def validation_model_probabilities(dataset: ValuationDataset) -> np.ndarray:
    """``p_val(x)`` for every training point: a logistic regression fitted on D_v.

    Shape ``(n_train, C)``; a class absent from the validation set gets probability 0.
    """
    model = LogisticRegression(max_iter=2000)
    model.fit(dataset.x_valid, dataset.y_valid)
    probs = np.zeros((dataset.n_train, dataset.num_classes), dtype=np.float32)
    probs[:, model.classes_] = model.predict_proba(dataset.x_train)
    return probs


def marginal_information(dataset: ValuationDataset, *, fold_of: np.ndarray | None = None,
                         weights: np.ndarray | None = None) -> np.ndarray:
    """``|onehot(y_train) - p_val(x_train)|``, float32 in [0, 1], shape ``(n_train, C)``;
    with ``fold_of``, ``p_val`` is cross-fitted over those folds (``weights``: the
    reference rows' sample weights)."""
    if fold_of is None:
        probs = validation_model_probabilities(dataset)
    else:
        probs, _ = cross_fitted_probabilities(dataset.x_train, dataset.y_train,
                                              dataset.num_classes, fold_of, weights)
    m = np.abs(one_hot(dataset.y_train, dataset.num_classes) - probs)
    return np.clip(m, 0.0, 1.0).astype(np.float32)

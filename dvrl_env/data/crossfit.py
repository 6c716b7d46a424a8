"""Cross-fitting: a reference for every training row built from the *other* rows.

With no clean validation set, the rows themselves are the only reference there is. They
are cut into ``folds`` parts, stratified by label; a row of part f is valued against a
reference made of the other parts (their given, possibly noisy, labels), so no row's
value comes from a model that saw its own label. Under uniform label flips a model fitted
to noisy labels still ranks a row's given label by how plausible it is (for two classes
the noisy posterior is a monotone function of the clean one), which is what a detector
needs; what the noise costs is variance, which the regularisation chosen here and the
reweighted rounds of :func:`reference_weights` win back.

:func:`cross_fitted_probabilities` is the out-of-fold model (a logistic regression, its
inverse regularisation ``C`` chosen by the out-of-fold log loss of the given labels), the
cross-fitted counterpart of :func:`dvrl_env.data.marginal.validation_model_probabilities`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

VALIDATION_MODES = ("given", "cross-fit")
DEFAULT_FOLDS = 5
#: rows of each class every fold needs: one to be valued, one in each reference
MIN_ROWS_PER_FOLD = 2
#: the inverse regularisation strengths tried; noisy labels favour the strong end
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
#: Newton steps with a Cholesky solve: few, exact iterations when rows far outnumber features
SOLVER = "newton-cholesky"


def make_folds(labels: np.ndarray, folds: int, seed: int,
               class_names: Sequence[str] | None = None) -> np.ndarray:
    """The fold of every row, ``(n,)`` int64: stratified by label (each class's rows dealt
    in turn, so fold sizes differ by at most one) and drawn with ``seed``.

    A class with fewer than ``MIN_ROWS_PER_FOLD * folds`` rows cannot be in every fold
    and every reference: a ValueError names it and the minimum.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2 for cross-fitting, got {folds!r}.")
    classes, counts = np.unique(labels, return_counts=True)
    need = MIN_ROWS_PER_FOLD * folds
    short = [(int(c), int(k)) for c, k in zip(classes, counts, strict=True) if k < need]
    if short:
        def name(c: int) -> str:
            return repr(class_names[c]) if class_names is not None else str(c)

        listed = ", ".join(f"class {name(c)} has {k}" for c, k in short)
        raise ValueError(
            f"Too few rows to cross-fit with {folds} folds: {listed} row(s); every class needs "
            f"at least {need} ({MIN_ROWS_PER_FOLD} per fold). Give a clean validation set "
            "(--valid-csv), use fewer folds (folds=2 needs "
            f"{2 * MIN_ROWS_PER_FOLD}), or add rows of that class.")
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(np.flatnonzero(labels == c)) for c in classes])
    fold_of = np.empty(len(labels), dtype=np.int64)
    fold_of[order] = (np.arange(len(labels)) + int(rng.integers(folds))) % folds
    return fold_of


def reference_weights(values: np.ndarray) -> np.ndarray:
    """Weights in [0, 1] for the next round's reference: each row's percentile rank by
    value (the lowest-valued row 0, the highest 1; ties share their mean rank), so any
    agent's values, whatever their scale, down-weight the suspected rows."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or len(values) < 2:
        raise ValueError(f"reference_weights needs one value per row (>= 2 rows), got shape "
                         f"{values.shape}.")
    if not np.isfinite(values).all():
        raise ValueError("reference_weights: the values hold NaN or inf.")
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values), dtype=np.float64)
    # ties share their mean rank, so equal values get equal weights
    _, inverse = np.unique(values, return_inverse=True)
    ranks = (np.bincount(inverse, ranks) / np.bincount(inverse))[inverse]
    return ranks / (len(values) - 1)


def check_weights(weights, n: int, fold_of: np.ndarray) -> np.ndarray:
    """``weights`` as float64 ``(n,)`` in [0, 1], or a ValueError saying what is wrong."""
    try:
        w = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("reference_weights must be numbers, one per training row.") from None
    if w.shape != (n,):
        raise ValueError(f"reference_weights must have one weight per training row, shape "
                         f"({n},), got {w.shape}.")
    if not (np.isfinite(w).all() and (w >= 0).all() and (w <= 1).all()):
        raise ValueError("reference_weights must lie in [0, 1] (e.g. "
                         "dvrl_env.data.crossfit.reference_weights(values)).")
    for f in range(int(fold_of.max()) + 1):
        if not w[fold_of != f].any():
            raise ValueError(f"reference_weights are all 0 outside fold {f}: its rows would "
                             "have no reference.")
    return w


def cross_fitted_probabilities(
    x: np.ndarray, labels: np.ndarray, num_classes: int, fold_of: np.ndarray,
    weights: np.ndarray | None = None, grid: Sequence[float] = C_GRID,
) -> tuple[np.ndarray, float]:
    """Out-of-fold class probabilities ``(n, C)`` float32 and the ``C`` that gave them.

    For each ``C`` of ``grid`` a logistic regression per fold is fitted on the other folds
    (with ``weights`` as sample weights) and predicts its fold; the ``C`` whose
    probabilities give the given labels the lowest weighted log loss wins. A class with
    no weight in a fold's reference gets probability 0 there.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    folds = int(fold_of.max()) + 1
    best: tuple[float, float, np.ndarray] | None = None
    models = [None] * folds  # warm starts from the previous C
    for c in grid:
        probs = np.zeros((n, num_classes), dtype=np.float64)
        for f in range(folds):
            fit_rows = np.flatnonzero((fold_of != f) & (w > 0))
            rows = np.flatnonzero(fold_of == f)
            present = np.unique(labels[fit_rows])
            if len(present) == 1:  # one class left in the reference: it is certain
                probs[rows, present[0]] = 1.0
                continue
            model = models[f] or LogisticRegression(max_iter=1000, warm_start=True, solver=SOLVER)
            model.set_params(C=c)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(x[fit_rows], labels[fit_rows], sample_weight=w[fit_rows])
            models[f] = model
            probs[np.ix_(rows, model.classes_)] = model.predict_proba(x[rows])
        given = np.clip(probs[np.arange(n), labels], 1e-12, 1.0)
        loss = float(-(w * np.log(given)).sum() / w.sum())
        if best is None or loss < best[0]:
            best = (loss, c, probs)
    return best[2].astype(np.float32), float(best[1])

"""pyDVL 0.10 valuations, run by the pyDVL virtual environment's python:

    .venvs/pydvl/bin/python worker_pydvl.py TASK.npz OUT.npz

Methods (``pydvl.valuation``, the 0.10 API), each valuing the training points against
the clean validation split:
- ``knn_shapley``: ``KNNShapleyValuation`` with ``KNeighborsClassifier(n_neighbors=k)``
  (exact Shapley values of a KNN classifier, Jia et al. 2019);
- ``data_oob``: ``DataOOBValuation`` of a fitted ``BaggingClassifier`` of decision trees
  (Kwon and Zou 2023; uses the training split only);
- ``loo``: ``LOOValuation`` of ``ModelUtility(LogisticRegression, SupervisedScorer
  ("accuracy", validation))``: ``u(N) - u(N - i)``. By default the model is warm
  started (``warm_start=True``, not cloned between fits): the L2-regularised logistic
  loss has one optimum, so only the number of solver steps changes (about 10x fewer).
Higher value is more valuable in all three. On error the traceback goes to stderr and
the exit status is 1.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import exchange  # noqa: E402


def _values(result, n: int) -> np.ndarray:
    """Values in training-index order (a ValuationResult may be sorted)."""
    values = np.full(n, np.nan)
    values[np.asarray(result.indices, dtype=np.int64)] = np.asarray(result.values, float)
    return values


def run(method: str, options: dict, data: dict) -> tuple[np.ndarray, dict]:
    from joblib import parallel_config
    from pydvl.valuation import Dataset

    train = Dataset(data["x_train"], data["y_train"])
    valid = Dataset(data["x_valid"], data["y_valid"])
    seed = data["seed"]
    with parallel_config(n_jobs=1):
        if method == "knn_shapley":
            from pydvl.valuation import KNNShapleyValuation
            from sklearn.neighbors import KNeighborsClassifier

            k = int(options.get("n_neighbors", 5))
            valuation = KNNShapleyValuation(KNeighborsClassifier(n_neighbors=k), valid,
                                            progress=False)
            info = {"n_neighbors": k}
        elif method == "data_oob":
            from pydvl.valuation import DataOOBValuation
            from sklearn.ensemble import BaggingClassifier
            from sklearn.tree import DecisionTreeClassifier

            n_est = int(options.get("n_estimators", 400))
            model = BaggingClassifier(DecisionTreeClassifier(), n_estimators=n_est,
                                      random_state=seed)
            model.fit(data["x_train"], data["y_train"])
            valuation = DataOOBValuation(model)
            info = {"n_estimators": n_est}
        elif method == "loo":
            from pydvl.valuation import LOOValuation, ModelUtility, SupervisedScorer
            from sklearn.linear_model import LogisticRegression

            warm = bool(options.get("warm_start", True))
            scorer = SupervisedScorer("accuracy", valid, default=0.0)
            model = LogisticRegression(max_iter=1000, warm_start=warm)
            if warm:  # start each fit at the previous solution: same optimum, fewer steps
                model.fit(data["x_train"], data["y_train"])
            utility = ModelUtility(model, scorer, clone_before_fit=not warm)
            valuation = LOOValuation(utility, progress=False)
            info = {"model": f"LogisticRegression(max_iter=1000, warm_start={warm})",
                    "scorer": "accuracy"}
        else:
            raise ValueError(f"unknown pyDVL method {method!r}")
        valuation.fit(train)
    values = _values(valuation.result, len(data["y_train"]))
    if not np.isfinite(values).all():
        raise RuntimeError(f"{method}: {int((~np.isfinite(values)).sum())} points got no value")
    return values, info


def main(task_path: str, out_path: str) -> None:
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    method, options, data = exchange.read_task(task_path)
    start = time.perf_counter()
    values, info = run(method, options, data)
    seconds = time.perf_counter() - start
    import pydvl

    exchange.write_values(out_path, values, seconds, {**info, "pydvl": pydvl.__version__})


if __name__ == "__main__":
    main(*sys.argv[1:3])

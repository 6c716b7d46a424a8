"""The peer methods, registered as ``dvrl bench`` methods (:mod:`dvrl_env.app.bench.hooks`)
when a spec imports this module: each gives one value per training point, higher =
more valuable (low = suspected corrupted), on the cell's env's dataset.

In this process (the project's ``.venv``):
- ``cleanlab``: confident learning, ``cleanlab.rank.get_label_quality_scores``
  (``method="self_confidence"``) of out-of-fold probabilities from
  ``sklearn.model_selection.cross_val_predict`` (logistic regression, 5 stratified
  folds, training split only). ``cleanlab.filter.find_label_issues`` on the same
  probabilities gives cleanlab's own flags; their F1 is kept as ``own_flags_f1``.
- ``marginal``, ``reinforce-k8``: this project's agents, plain agent cells of the spec.
In their own venvs (see :mod:`venvs`), through ``.npz`` files (see :mod:`exchange`):
- ``knn-shapley``, ``data-oob``, ``loo``: pyDVL 0.10 (``worker_pydvl.py``);
- ``opendataval-dvrl``: OpenDataVal 1.3's DVRL (``worker_opendataval.py``).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.peers import exchange, venvs
from dvrl_env.app.bench.hooks import register_method


@dataclass(frozen=True)
class Method:
    label: str
    library: str
    venv: str | None = None  # None: runs in this process
    worker_method: str = ""


METHODS: dict[str, Method] = {m.label: m for m in [
    Method("cleanlab", "cleanlab"),
    Method("knn-shapley", "pyDVL", "pydvl", "knn_shapley"),
    Method("data-oob", "pyDVL", "pydvl", "data_oob"),
    Method("loo", "pyDVL", "pydvl", "loo"),
    Method("opendataval-dvrl", "OpenDataVal", "opendataval", "dvrl"),
]}


def library_version(library: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    dist = {"cleanlab": "cleanlab", "dvrl-env": "dvrl-env"}.get(library)
    try:
        return version(dist) if dist else ""
    except PackageNotFoundError:
        return ""


def cleanlab_values(dataset, seed: int, settings: dict) -> tuple[np.ndarray, dict]:
    try:
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores
    except ImportError as err:
        raise venvs.PeerError(
            "not installable: cleanlab is not in this venv; install the extra: "
            "pip install -e '.[peers]'") from err
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    probs = cross_val_predict(LogisticRegression(max_iter=1000), dataset.x_train,
                              dataset.y_train, cv=folds, method="predict_proba")
    values = get_label_quality_scores(dataset.y_train, probs, method="self_confidence")
    # n_jobs=1: its process pool reads globals a spawned bench worker does not have
    flags = find_label_issues(dataset.y_train, probs, n_jobs=1)
    mask = np.asarray(dataset.noisy_mask, bool)
    tp = int((flags & mask).sum())
    own_f1 = 2 * tp / (int(flags.sum()) + int(mask.sum())) if tp else 0.0
    return values, {"own_flags_f1": own_f1, "own_flags": int(flags.sum())}


def cleanlab_method(env, *, seed: int) -> tuple[np.ndarray, dict]:
    """cleanlab as a ``dvrl bench`` method, on the env's dataset."""
    values, info = cleanlab_values(env.unwrapped.dataset, seed, {})
    return values, {**info, "library": "cleanlab", "version": library_version("cleanlab")}


def venv_method(method: Method):
    """A method run by its worker in its own venv (built on first use; a venv that
    cannot be built makes the cell's error, never a number)."""

    def run(env, *, seed: int, timeout: float = 3600, **options) -> tuple[np.ndarray, dict]:
        dataset = env.unwrapped.dataset
        status = venvs.ensure(method.venv)
        with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
            task, out = Path(tmp) / "task.npz", Path(tmp) / "out.npz"
            arrays = {k: getattr(dataset, k) for k in exchange.SPLITS}
            exchange.write_task(task, arrays, method=method.worker_method,
                                num_classes=dataset.num_classes, seed=seed, options=options)
            venvs.run_worker(status, task, out, timeout)
            values, seconds, info = exchange.read_values(out)
        if values.shape != (dataset.n_train,):
            raise venvs.PeerError(f"failed: worker returned {values.shape} values")
        return values, {**info, "library": method.library,
                        "version": info.pop(method.venv, ""), "method_seconds": seconds}

    return run


register_method("cleanlab", cleanlab_method)
for _method in METHODS.values():
    if _method.venv is not None:
        register_method(_method.label, venv_method(_method))

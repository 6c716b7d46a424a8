"""The methods compared, each a function ``(dataset, seed, settings) -> (values, info)``
with one value per training point, higher = more valuable (low = suspected corrupted).

In this process (the project's ``.venv``):
- ``cleanlab``: confident learning, ``cleanlab.rank.get_label_quality_scores``
  (``method="self_confidence"``) of out-of-fold probabilities from
  ``sklearn.model_selection.cross_val_predict`` (logistic regression, 5 stratified
  folds, training split only). ``cleanlab.filter.find_label_issues`` on the same
  probabilities gives cleanlab's own flags; their F1 is kept as ``own_flags_f1``.
- ``marginal``, ``reinforce-k8``: this project's agents on the same data, through
  ``agents.make(name, gym.make(env_id, noise_rate=r, data_seed=s, ...), seed=s)``.
In their own venvs (see :mod:`venvs`), through ``.npz`` files (see :mod:`exchange`):
- ``knn-shapley``, ``data-oob``, ``loo``: pyDVL 0.10 (``worker_pydvl.py``);
- ``opendataval-dvrl``: OpenDataVal 1.3's DVRL (``worker_opendataval.py``).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

try:
    from benchmarks.peers import exchange, venvs
except ModuleNotFoundError:  # run as a file
    import exchange
    import venvs

ENV_IDS = {"digits": "DataValuation-Digits-v0", "adult": "DataValuation-Adult-v0"}


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
    Method("marginal", "dvrl-env"),
    Method("reinforce-k8", "dvrl-env"),
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
    flags = find_label_issues(dataset.y_train, probs)
    mask = np.asarray(dataset.noisy_mask, bool)
    tp = int((flags & mask).sum())
    own_f1 = 2 * tp / (int(flags.sum()) + int(mask.sum())) if tp else 0.0
    return values, {"own_flags_f1": own_f1, "own_flags": int(flags.sum())}


def agent_values(name: str, options: dict, updates: int):
    def run(dataset, seed: int, settings: dict) -> tuple[np.ndarray, dict]:
        import gymnasium as gym
        import torch

        import agents
        import dvrl_env  # noqa: F401  (registers the ids)

        torch.set_num_threads(1)
        steps = settings.get("agent_updates", updates) if updates else 0
        env = gym.make(ENV_IDS[dataset.name], noise_rate=dataset.noise_rate, data_seed=seed,
                       predictor=settings.get("predictor", "logistic"), device="cpu")
        same = env.unwrapped.dataset
        if not (np.array_equal(same.y_train, dataset.y_train)
                and np.array_equal(same.x_train, dataset.x_train)):
            raise venvs.PeerError("failed: the env's data differ from load_dataset's")
        agent = agents.make(name, env, seed=seed, log_every=max(1, steps), **options)
        agent.learn(steps, progress_bar=False)
        return agent.data_values(), {"updates": steps, "fits": agent.fits_used}

    return run


IN_PROCESS = {
    "cleanlab": cleanlab_values,
    "marginal": agent_values("marginal", {}, 0),
    "reinforce-k8": agent_values("reinforce", {"num_samples": 8}, 150),
}


def worker_options(method: Method, settings: dict) -> dict:
    return {"knn_shapley": {"n_neighbors": settings.get("knn_k", 5)},
            "data_oob": {"n_estimators": settings.get("oob_estimators", 400)},
            "loo": {"warm_start": settings.get("loo_warm_start", True)},
            "dvrl": {"rl_epochs": settings.get("odv_rl_epochs", 1000)}}[method.worker_method]


def compute(label: str, dataset, seed: int, settings: dict, *, venv_status=None,
            timeout: float = 3600) -> tuple[np.ndarray, float, dict]:
    """``(values, seconds of the method itself, info)``; raises ``venvs.PeerError``."""
    method = METHODS[label]
    if method.venv is None:
        start = time.perf_counter()
        values, info = IN_PROCESS[label](dataset, seed, settings)
        return np.asarray(values, np.float64), time.perf_counter() - start, info
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        task, out = Path(tmp) / "task.npz", Path(tmp) / "out.npz"
        arrays = {k: getattr(dataset, k) for k in exchange.SPLITS}
        exchange.write_task(task, arrays, method=method.worker_method,
                            num_classes=dataset.num_classes, seed=seed,
                            options=worker_options(method, settings))
        venvs.run_worker(venv_status, task, out, timeout)
        values, seconds, info = exchange.read_values(out)
    if values.shape != (dataset.n_train,):
        raise venvs.PeerError(f"failed: worker returned {values.shape} values")
    return values, seconds, info

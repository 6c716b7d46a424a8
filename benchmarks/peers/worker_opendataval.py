"""OpenDataVal 1.3's own DVRL, run by the OpenDataVal virtual environment's python:

    .venvs/opendataval/bin/python worker_opendataval.py TASK.npz OUT.npz

``opendataval.dataval.DVRL`` with its defaults (value estimator 100 wide, 5 layers,
``rl_batch_size`` 32, lr 0.01, threshold 0.9) but ``rl_epochs`` from the task
(OpenDataVal's default is 1000), on a ``DataFetcher.from_data_splits`` of the task's
splits with one-hot labels; the predictor is OpenDataVal's own torch
``LogisticRegression`` fitted with its default training arguments (1 epoch, batch 32,
lr 0.01). Values are the estimator's selection probabilities: higher is more valuable.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import exchange  # noqa: E402


def run(options: dict, data: dict) -> tuple[np.ndarray, dict]:
    import torch
    from opendataval.dataloader import DataFetcher
    from opendataval.dataval import DVRL
    from opendataval.model import LogisticRegression

    torch.set_num_threads(1)
    torch.manual_seed(data["seed"])
    c = data["num_classes"]
    onehot = np.eye(c, dtype=np.float32)
    fetcher = DataFetcher.from_data_splits(
        data["x_train"].astype(np.float32), onehot[data["y_train"]],
        data["x_valid"].astype(np.float32), onehot[data["y_valid"]],
        data["x_test"].astype(np.float32), onehot[data["y_test"]],
        one_hot=True, random_state=data["seed"],
    )
    model = LogisticRegression(data["x_train"].shape[1], c)
    epochs = int(options.get("rl_epochs", 1000))
    evaluator = DVRL(rl_epochs=epochs, random_state=np.random.RandomState(data["seed"]))
    evaluator.train(fetcher, model)
    values = np.asarray(evaluator.data_values, dtype=np.float64).reshape(-1)
    return values, {"rl_epochs": epochs, "pred_model": "opendataval LogisticRegression"}


def main(task_path: str, out_path: str) -> None:
    warnings.filterwarnings("ignore")
    method, options, data = exchange.read_task(task_path)
    if method != "dvrl":
        raise ValueError(f"unknown OpenDataVal method {method!r}")
    start = time.perf_counter()
    values, info = run(options, data)
    seconds = time.perf_counter() - start
    from importlib.metadata import version

    exchange.write_values(out_path, values, seconds,
                          {**info, "opendataval": version("opendataval")})


if __name__ == "__main__":
    main(*sys.argv[1:3])

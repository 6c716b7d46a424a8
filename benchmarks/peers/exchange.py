"""Arrays to and from the peer workers, as ``.npz`` files.

The workers run in their own virtual environments (numpy 1.x), so this module needs
numpy and the standard library only, and writes nothing that needs pickle to read:
strings travel as numpy unicode scalars, options and info as JSON text.

A task file holds the six split arrays (``x_train``, ``y_train``, ``x_valid``,
``y_valid``, ``x_test``, ``y_test``), ``num_classes``, the method's name, its options
and a seed. A result file holds one value per training point (higher is more
valuable), the seconds the method itself took, and an info dict.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SPLITS = ("x_train", "y_train", "x_valid", "y_valid", "x_test", "y_test")


def write_task(path: str | Path, arrays: dict, *, method: str, num_classes: int,
               seed: int, options: dict | None = None) -> Path:
    """Write a task for a worker; ``arrays`` must hold every name in :data:`SPLITS`."""
    missing = [k for k in SPLITS if k not in arrays]
    if missing:
        raise ValueError(f"task arrays lack {missing}")
    path = Path(path)
    payload = {k: np.asarray(arrays[k]) for k in SPLITS}
    np.savez(path, method=np.str_(method), num_classes=np.int64(num_classes),
             seed=np.int64(seed), options=np.str_(json.dumps(options or {})), **payload)
    return path


def read_task(path: str | Path) -> tuple[str, dict, dict]:
    """``(method, options, data)``; data holds the splits, ``num_classes`` and ``seed``."""
    with np.load(path, allow_pickle=False) as f:
        data = {k: f[k] for k in SPLITS}
        data["num_classes"] = int(f["num_classes"])
        data["seed"] = int(f["seed"])
        return str(f["method"]), json.loads(str(f["options"])), data


def write_values(path: str | Path, values, seconds: float, info: dict | None = None) -> Path:
    """Write a worker's answer: values (float64, one per training point) and its time."""
    path = Path(path)
    np.savez(path, values=np.asarray(values, dtype=np.float64), seconds=np.float64(seconds),
             info=np.str_(json.dumps(info or {})))
    return path


def read_values(path: str | Path) -> tuple[np.ndarray, float, dict]:
    """``(values, seconds, info)`` as written by :func:`write_values`."""
    with np.load(path, allow_pickle=False) as f:
        return f["values"].copy(), float(f["seconds"]), json.loads(str(f["info"]))

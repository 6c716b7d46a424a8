"""Shared fixtures: small, separable problems so that every test runs in well under a second."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dvrl_env import from_arrays

torch.set_num_threads(1)


def separable_arrays(n: int = 300, d: int = 5, seed: int = 0):
    """Two classes split by the sign of the first feature, with a clear margin."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    x[:, 0] += np.where(y == 1, 1.0, -1.0)
    return x, y


@pytest.fixture
def toy_dataset():
    x, y = separable_arrays(n=400)
    return from_arrays(x[:200], y[:200], x[200:300], y[200:300], x[300:], y[300:],
                       noise_rate=0.2, seed=0, name="toy")


SMALL_ENV = {"batch_size": 32, "predictor_epochs": 2}

"""Gymnasium ids. Importing ``dvrl_env`` registers them (Gymnasium 1.x has no plugins)."""

from __future__ import annotations

import gymnasium as gym

ENTRY_POINT = "dvrl_env.envs.single:DataValuationEnv"
VECTOR_ENTRY_POINT = "dvrl_env.envs.vector:DataValuationVectorEnv"

ENV_IDS: dict[str, dict] = {
    "DataValuation-Digits-v0": {"dataset": "digits"},
    "DataValuation-Adult-v0": {"dataset": "adult"},
    "DataValuation-CIFAR10-v0": {"dataset": "cifar10"},
    "DataValuation-FashionMNIST-v0": {"dataset": "fashion_mnist"},
    "DataValuation-v0": {},  # your own data: dataset=dvrl_env.from_arrays(...)
}


def register_envs() -> None:
    """Register every id once; ``gym.make`` keyword arguments override these kwargs.

    No ``max_episode_steps``: a one-step bandit ends with ``terminated=True`` and the
    other reset modes end their episodes themselves (``episode_length``).
    ``gym.make_vec(id, num_envs=K)`` builds the batched
    :class:`~dvrl_env.DataValuationVectorEnv` (``vectorization_mode="sync"`` for a
    ``SyncVectorEnv`` of single envs).
    """
    for env_id, kwargs in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=ENTRY_POINT,
                         vector_entry_point=VECTOR_ENTRY_POINT, kwargs=dict(kwargs))

"""Gymnasium ids: one per dataset in the registry (:mod:`dvrl_env.data.registry`), plus
``DataValuation-v0`` for your own data. Importing ``dvrl_env`` registers them (Gymnasium
1.x has no plugins); a dataset registered later gets its id at once."""

from __future__ import annotations

import gymnasium as gym

from dvrl_env.data.registry import DatasetEntry, on_register

ENTRY_POINT = "dvrl_env.envs.single:DataValuationEnv"
VECTOR_ENTRY_POINT = "dvrl_env.envs.vector:DataValuationVectorEnv"
CUSTOM_ENV_ID = "DataValuation-v0"  # your own data: dataset=dvrl_env.from_arrays(...)

# id -> the kwargs it is registered with: filled by register_envs, which importing
# dvrl_env calls, and by each dataset registered after that.
ENV_IDS: dict[str, dict] = {}


def _register(env_id: str, kwargs: dict) -> None:
    ENV_IDS[env_id] = kwargs
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point=ENTRY_POINT,
                     vector_entry_point=VECTOR_ENTRY_POINT, kwargs=dict(kwargs))


def _register_dataset(entry: DatasetEntry) -> None:
    _register(entry.env_id, {"dataset": entry.name})


def register_envs() -> None:
    """Register every id once, and from now on each dataset's as it is registered;
    ``gym.make`` keyword arguments override these kwargs.

    No ``max_episode_steps``: a one-step bandit ends with ``terminated=True`` and the
    other reset modes end their episodes themselves (``episode_length``).
    ``gym.make_vec(id, num_envs=K)`` builds the batched
    :class:`~dvrl_env.DataValuationVectorEnv` (``vectorization_mode="sync"`` for a
    ``SyncVectorEnv`` of single envs). Both autoreset in ``"next_step"`` mode, as
    Gymnasium's vector wrappers need; the batched one takes ``autoreset_mode=...`` as a
    keyword (Gymnasium refuses ``vector_kwargs`` for a vector entry point).
    """
    on_register(_register_dataset)
    _register(CUSTOM_ENV_ID, {})

"""K copies of one environment that move in lockstep, for agents that score K selections.

Every sub-env is reset with the same seed, so they share the batch, the predictor's
initial weights and the mini-batch orders (common random numbers): the K rewards then
differ only through the K selections. The env draws the same random numbers whatever
the action, so the copies stay in step after the first reset.
"""

from __future__ import annotations

import copy
from functools import partial

import gymnasium as gym
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from dvrl_env.envs.batched import DataValuationVectorEnv
from dvrl_env.envs.single import DataValuationEnv


def make_vector_env(env: gym.Env, num_envs: int, *, batched: bool = True) -> gym.vector.VectorEnv:
    """A vector env of ``num_envs`` copies of ``env`` with same-step autoreset.

    For a :class:`~dvrl_env.DataValuationEnv` (unwrapped) and ``batched=True``, the
    batched :class:`~dvrl_env.DataValuationVectorEnv` with ``env``'s options and data,
    whose K predictors train as one computation; otherwise (or with ``batched=False``)
    a ``SyncVectorEnv`` of deep copies. Both give the same results up to float rounding.
    Same-step autoreset returns the next episode's first observation from the step
    that ended an episode, so a one-step bandit never spends a step on a reset.
    """
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}.")
    base = env.unwrapped
    if batched and isinstance(base, DataValuationEnv):
        return DataValuationVectorEnv.from_env(base, num_envs)
    return SyncVectorEnv(
        [partial(copy.deepcopy, base) for _ in range(num_envs)],
        autoreset_mode=AutoresetMode.SAME_STEP,
    )

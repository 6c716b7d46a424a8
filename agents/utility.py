"""What agents that learn from the reward alone share: rounds of K selections on K
lockstep copies of a *utility env*, and leave-one-out advantages.

The utility env is the env the agent was given, or a copy on the same data with the
agent's batch size and predictor (:func:`utility_env`): small batches make each point's
effect on the reward loud enough to credit (``benchmarks/reward_credit.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch

from agents.base import Agent, AgentConfig
from agents.checkpoint import saved_env_state
from dvrl_env.envs.single import DataValuationEnv
from dvrl_env.envs.vector import make_vector_env


@dataclasses.dataclass
class UtilityConfig(AgentConfig):
    num_samples: int = 8
    batch_size: int | None = 100
    predictor: str | None = "logistic"
    predictor_lr: float | None = 0.05


@dataclasses.dataclass(frozen=True)
class Round:
    """One round: the batch's training rows ``(B,)``, the K selections ``(K, B)``, their
    rewards and leave-one-out advantages ``(K,)``."""

    indices: np.ndarray
    selections: np.ndarray
    rewards: np.ndarray
    advantages: np.ndarray


class UtilityAgent(Agent):
    """Base class: :meth:`play_round` steps the K copies once; subclasses decide the
    selection probabilities and what to keep of each round."""

    config_class = UtilityConfig

    def __init__(self, env, *, seed: int = 0, **config):
        super().__init__(env, seed=seed, **config)
        c = self.config
        if c.num_samples < 2:
            raise ValueError(f"num_samples must be >= 2 (a leave-one-out advantage needs "
                             f"two selections), got {c.num_samples}.")
        self.vector_env = make_vector_env(
            utility_env(self.unwrapped, c.batch_size, c.predictor, c.predictor_lr),
            c.num_samples)
        self._info: dict | None = None

    def play_round(self, probabilities: Callable[[np.ndarray], np.ndarray]) -> Round:
        """Draw K selections of the current batch, point i kept with probability
        ``probabilities(indices)[i]`` (from the agent's generator), and step the copies."""
        k = self.config.num_samples
        if self._info is None:
            _, self._info = self.vector_env.reset(seed=[self.seed] * k)
        indices = np.asarray(self._info["indices"])[0]
        draws = torch.rand(k, len(indices), generator=self.generator).numpy()
        selections = (draws < probabilities(indices)).astype(np.int8)
        _, rewards, _, _, self._info = self.vector_env.step(selections)
        return Round(indices, selections, rewards, leave_one_out(rewards))

    def stepped_envs(self) -> list:
        return [self.vector_env]

    def _state_dict(self) -> dict:
        return {"env": None if self._info is None else saved_env_state(self.vector_env)}

    def _load_state_dict(self, state: dict) -> None:
        self._info = None
        if state["env"] is not None:
            _, self._info = self.vector_env.reset(options={"state": state["env"]})


def utility_env(base, batch_size: int | None, predictor: str | None,
                predictor_lr: float | None):
    """``base``, or a copy on the same data with this batch size (capped at the largest
    batch the env allows: n_train, or a fold's rows when cross-fitted) and predictor where
    they are set and differ from ``base``'s."""
    if not isinstance(base, DataValuationEnv):
        return base
    if batch_size is not None and batch_size < 2:
        raise ValueError(f"batch_size must be >= 2 (a batch to select from), got {batch_size}.")
    options = base.constructor_options()
    wanted = {"batch_size": None if batch_size is None
              else min(batch_size, base.config.largest_batch),
              "predictor": predictor, "predictor_lr": predictor_lr}
    changes = {k: v for k, v in wanted.items() if v is not None and v != options[k]}
    if changes.get("batch_size") == base.batch_size:
        del changes["batch_size"]  # the env's default batch size, given explicitly
    return base.with_options(**changes) if changes else base


def leave_one_out(rewards: np.ndarray) -> np.ndarray:
    """``A_k = r_k - mean_{j != k} r_j``: removes what the K copies share (the batch, the
    predictor's start, the baseline) from each reward."""
    k = len(rewards)
    return rewards - (rewards.sum() - rewards) / (k - 1)

"""Data value estimators behind one small interface.

>>> import gymnasium as gym, dvrl_env, agents
>>> env = gym.make("DataValuation-Adult-v0", noise_rate=0.2)
>>> agent = agents.make("reinforce", env, num_samples=8).learn(150)
>>> values = agent.data_values()          # one value per training point
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import gymnasium as gym

from agents.base import Agent, AgentConfig, FitBudget
from agents.baselines import MarginalInformation, RandomValues, SupervisedOracle
from agents.checkpoint import CheckpointError, read_checkpoint
from agents.credit import CreditAgent
from agents.critic import AdditiveCritic
from agents.gumbel import GumbelSoftmax
from agents.reinforce import Reinforce

AgentFactory = Callable[..., Agent]

_REGISTRY: dict[str, AgentFactory] = {
    "reinforce": Reinforce,
    "credit": CreditAgent,
    "critic": AdditiveCritic,
    "gumbel": GumbelSoftmax,
    "oracle": SupervisedOracle,
    "marginal": MarginalInformation,
    "random": RandomValues,
}


def _sb3(name: str) -> AgentFactory:
    def factory(env, *, seed: int = 0, **config) -> Agent:
        from agents import sb3

        return {"ppo": sb3.PPOAgent, "a2c": sb3.A2CAgent}[name](env, seed=seed, **config)

    return factory


_REGISTRY.update(ppo=_sb3("ppo"), a2c=_sb3("a2c"))


def names() -> list[str]:
    """The names :func:`make` accepts."""
    return sorted(_REGISTRY)


def register(name: str, factory: AgentFactory) -> None:
    """Add an agent: ``factory(env, *, seed, **config)`` returns an :class:`Agent`."""
    if not callable(factory):
        raise TypeError("factory must be callable as factory(env, *, seed, **config).")
    _REGISTRY[name] = factory


def make(name: str, env: gym.Env, *, seed: int = 0, **config) -> Agent:
    """Build the agent ``name`` for ``env``; ``config`` holds the agent's options."""
    if name not in _REGISTRY:
        raise ValueError(f"Unknown agent {name!r}; choose one of {names()}.")
    return _REGISTRY[name](env, seed=seed, **config)


def load(path: str | Path, env: gym.Env, **overrides) -> Agent:
    """Restore an agent saved with ``agent.save(path)`` for ``env``; ``overrides`` replace
    saved options that do not change what it learns (``log_dir``, ``device``).

    Nothing in the file is executed (:mod:`agents.checkpoint`); a damaged file, a
    Stable-Baselines3 zip, an unknown agent or a checkpoint trained on other data raises
    :class:`~agents.checkpoint.CheckpointError` saying which.
    """
    return from_checkpoint(read_checkpoint(path), env, path, **overrides)


def from_checkpoint(checkpoint: dict, env: gym.Env, path: str | Path = "checkpoint",
                    **overrides) -> Agent:
    """:func:`load` for a checkpoint already read with ``read_checkpoint``."""
    name = checkpoint["agent"]
    if name not in _REGISTRY:
        raise CheckpointError(f"{path} holds agent {name!r}, which is not registered here "
                              f"({names()}); register it with agents.register before loading.")
    try:
        agent = make(name, env, seed=checkpoint["seed"], **{**checkpoint["config"], **overrides})
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: agent {name!r} cannot be built from its saved "
                              f"options ({err}).") from None
    agent.load_checkpoint(checkpoint, path)
    return agent


__all__ = ["Agent", "AgentConfig", "CheckpointError", "FitBudget", "from_checkpoint", "load",
           "make", "names", "register"]

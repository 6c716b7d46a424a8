"""Data value estimators behind one small interface.

>>> import gymnasium as gym, dvrl_env, agents
>>> env = gym.make("DataValuation-Adult-v0", noise_rate=0.2)
>>> agent = agents.make("reinforce", env, num_samples=8).learn(150)
>>> values = agent.data_values()          # one value per training point
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import torch

from agents.base import Agent, AgentConfig
from agents.baselines import MarginalInformation, RandomValues, SupervisedOracle
from agents.gumbel import GumbelSoftmax
from agents.reinforce import Reinforce

AgentFactory = Callable[..., Agent]

_REGISTRY: dict[str, AgentFactory] = {
    "reinforce": Reinforce,
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


def load(path: str | Path, env: gym.Env) -> Agent:
    """Restore an agent saved with ``agent.save(path)`` for ``env``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No agent checkpoint at {path}.")
    if _is_sb3_zip(path):  # Stable-Baselines3's own format (torch checkpoints are zips too)
        from agents import sb3

        return sb3.load_from(path, env)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    agent = make(checkpoint["agent"], env, seed=checkpoint["seed"], **checkpoint["config"])
    agent.load_checkpoint(checkpoint)
    return agent


def _is_sb3_zip(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return "data" in archive.namelist()  # SB3 keeps its parameters' JSON there


__all__ = ["Agent", "AgentConfig", "load", "make", "names", "register"]

"""Data value estimators behind one small interface.

>>> import gymnasium as gym, dvrl_env, agents
>>> env = gym.make("DataValuation-Adult-v0", noise_rate=0.2)
>>> agent = agents.make("reinforce", env, num_samples=8).learn(150)
>>> values = agent.data_values()          # one value per training point
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym

from agents.base import Agent, AgentConfig
from agents.baselines import MarginalInformation, RandomValues, SupervisedOracle
from agents.callbacks import Callback, CallbackList, FitBudget
from agents.checkpoint import CheckpointError, read_checkpoint
from agents.credit import CreditAgent
from agents.critic import AdditiveCritic
from agents.gumbel import GumbelSoftmax
from agents.reinforce import Reinforce
from agents.result import ValuationResult
from dvrl_env.plugins import load_plugins

AgentFactory = Callable[..., Agent]

#: every agent :func:`make` and :func:`load` know, by name: a class or factory, or
#: ``"module:attribute"`` naming one imported when first made (Stable-Baselines3's, whose
#: import takes seconds, so ``import agents`` does not pay for it)
_REGISTRY: dict[str, AgentFactory | str] = {
    "reinforce": Reinforce,
    "credit": CreditAgent,
    "critic": AdditiveCritic,
    "gumbel": GumbelSoftmax,
    "oracle": SupervisedOracle,
    "marginal": MarginalInformation,
    "random": RandomValues,
    "ppo": "agents.sb3:PPOAgent",
    "a2c": "agents.sb3:A2CAgent",
}


def names() -> list[str]:
    """The names :func:`make` accepts (installed plugins loaded first, once:
    :mod:`dvrl_env.plugins`)."""
    load_plugins()
    return sorted(_REGISTRY)


def _known(name: str) -> bool:
    """Whether ``name`` is registered; a name not yet known loads the installed plugins
    (once) before the answer is no."""
    if name not in _REGISTRY:
        load_plugins()
    return name in _REGISTRY


def describe(name: str) -> str:
    """One line on the agent ``name``: its factory's docstring up to the first blank line
    (what ``dvrl agents`` prints, as ``dvrl envs`` prints each dataset's description)."""
    if not _known(name):
        raise ValueError(f"Unknown agent {name!r}; choose one of {names()}.")
    try:
        doc = _factory(name).__doc__ or ""
    except (ImportError, AttributeError) as err:  # a plugin that cannot be imported here
        return f"(cannot be imported: {err})"
    return " ".join(doc.strip().split("\n\n")[0].split()).replace("``", "") or "(no docstring)"


def register(name: str, factory: AgentFactory | str) -> None:
    """Add an agent: ``factory(env, *, seed, **config)`` returns an :class:`Agent`, or a
    ``"module:attribute"`` string names such a factory, imported when first made."""
    if isinstance(factory, str):
        module, sep, attribute = factory.partition(":")
        if not (module and sep and attribute):
            raise ValueError(f"register({name!r}, {factory!r}): a string factory is "
                             "'module:attribute', e.g. 'mypackage.agents:MyAgent'.")
    elif not callable(factory):
        raise TypeError("factory must be callable as factory(env, *, seed, **config), or a "
                        "'module:attribute' string naming one.")
    _REGISTRY[name] = factory


def make(name: str, env: gym.Env, *, seed: int = 0, **config) -> Agent:
    """Build the agent ``name`` for ``env``; ``config`` holds the agent's options.

    The agent takes ``name`` as its :attr:`~Agent.name`: its checkpoints record it, so
    :func:`load` rebuilds it through the same registry entry."""
    if not _known(name):
        raise ValueError(f"Unknown agent {name!r}; choose one of {names()} (or import "
                         "the module that registers it first: --import MODULE in dvrl).")
    factory = _factory(name)
    if isinstance(env, gym.vector.VectorEnv):  # agents step one env, or copies they make
        config_class = getattr(factory, "config_class", None)
        options = ({f.name for f in dataclasses.fields(config_class)}
                   if dataclasses.is_dataclass(config_class) else set())
        copies = ("the agent builds K copies itself: num_samples=K" if "num_samples" in options
                  else "the agent steps that one env (vector envs with SB3 or your own loop: "
                  "docs/rl_stacks.md)")
        raise TypeError(f"Agent {name!r} takes a single env, got a vector env "
                        f"({type(env).__name__} of {env.num_envs} envs): pass one env, e.g. "
                        f"gym.make(id, ...) or DataValuationEnv(...); {copies}.")
    agent = factory(env, seed=seed, **config)
    if not isinstance(agent, Agent):
        raise TypeError(f"The factory registered as {name!r} returned an object of type "
                        f"{type(agent).__name__!r}, not an agents.Agent.")
    agent.name = name
    return agent


def _factory(name: str) -> AgentFactory:
    entry = _REGISTRY[name]
    if isinstance(entry, str):
        module, _, attribute = entry.partition(":")
        entry = getattr(importlib.import_module(module), attribute)
    return entry


def load(path: str | Path, env: gym.Env, **overrides) -> Agent:
    """Restore an agent saved with ``agent.save(path)`` for ``env``; ``overrides`` replace
    saved options that do not change what it learns (``device``). It logs to the
    ``log_dir`` given here, or nowhere: the one saved in the file is not used, so a
    checkpoint never chooses where files are written.

    Nothing in the file is executed (:mod:`agents.checkpoint`); a damaged file, a
    Stable-Baselines3 zip, an unknown agent or a checkpoint trained on other data raises
    :class:`~agents.checkpoint.CheckpointError` saying which.
    """
    return from_checkpoint(read_checkpoint(path), env, path, **overrides)


def from_checkpoint(checkpoint: dict, env: gym.Env, path: str | Path = "checkpoint",
                    **overrides) -> Agent:
    """:func:`load` for a checkpoint already read with ``read_checkpoint``: the one place
    any agent is restored, through :func:`make` with the name and options it was saved
    with, then the agent's own state."""
    name = checkpoint["agent"]
    if not _known(name):
        raise CheckpointError(f"{path} holds agent {name!r}, which is not registered here "
                              f"({names()}); register it with agents.register before loading.")
    # where files go is the caller's choice, never the file's: a saved log_dir is dropped
    config = {k: v for k, v in checkpoint["config"].items() if k != "log_dir"}
    try:
        agent = make(name, env, seed=checkpoint["seed"], **{**config, **overrides})
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: agent {name!r} cannot be built from its saved "
                              f"options ({err}).") from None
    agent.load_checkpoint(checkpoint, path)
    return agent


__all__ = ["Agent", "AgentConfig", "Callback", "CallbackList", "CheckpointError", "FitBudget",
           "ValuationResult", "describe", "from_checkpoint", "load", "make", "names", "register"]

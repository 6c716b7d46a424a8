"""What every data value estimator shares: config, seeding, the learn loop with its
progress bar, log and callbacks, values on every training point, and checkpoints.

An agent sees the environment through Gymnasium only (observations, rewards, info)
plus ``env.unwrapped.all_observations()`` to score every point. The noise mask is
read for one thing: the detection AUROC written to the log (:mod:`agents.progress`), a
diagnostic that never feeds learning (the ``oracle`` agent alone learns from it, by
design).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from agents.callbacks import (
    CallbackLike,
    FitBudget,  # noqa: F401  (its home before agents.callbacks)
    as_callback,
)
from agents.checkpoint import (
    CheckpointError,
    check_env_identity,
    env_identity,
    metadata_json,
    write_checkpoint,
)
from agents.progress import ProgressLog
from agents.result import ValuationResult
from dvrl_env import resolve_device
from dvrl_env.options import Range, check_options, check_ranges, dataclass_hints

#: the widest hidden layer an option may ask for: a typo (``comb_dim=1e9``) is refused
#: instead of allocating gigabytes (the defaults are 10 to 100)
MAX_WIDTH = 4096


@dataclasses.dataclass
class AgentConfig:
    """Options every agent takes; subclasses add their own fields, and the valid range of
    numeric ones in ``RANGES`` (merged along the class hierarchy)."""

    RANGES: ClassVar[dict[str, Range]] = {"log_every": Range(1)}

    log_every: int = 10
    log_dir: str | None = None
    tensorboard: bool = False  # also write the log rows to TensorBoard under log_dir
    device: str = "auto"


class Agent:
    """Base class: subclasses implement :meth:`_update` and :meth:`_values_from`."""

    #: the registry name, which checkpoints record (agents.make sets the one it used)
    name: str = "agent"
    config_class: ClassVar[type[AgentConfig]] = AgentConfig

    def __init__(self, env: gym.Env, *, seed: int = 0, **config: Any):
        self.env = env
        self.seed = int(seed)
        self.config = self._parse_config(config)
        self.device = resolve_device(self.config.device)
        self.steps_done = 0
        #: called by :meth:`learn` after every update: a row every ``log_every``
        self.logger = ProgressLog(self.config.log_every, self.config.log_dir,
                                  tensorboard=self.config.tensorboard)
        self.generator = torch.Generator().manual_seed(self.seed)
        self._fits_offset: int | None = None  # the envs' fit count when learning began

    # ---- construction helpers --------------------------------------------------------
    @classmethod
    def _parse_config(cls, config: dict) -> AgentConfig:
        fields = {f.name for f in dataclasses.fields(cls.config_class)}
        unknown = sorted(set(config) - fields)
        if unknown:
            raise TypeError(f"Unknown option(s) {unknown} for agent {cls.name!r}; "
                            f"valid options: {sorted(fields)}.")
        config = check_options(f"agent {cls.name!r}", config, dataclass_hints(cls.config_class))
        ranges: dict[str, Range] = {}
        for klass in reversed(cls.config_class.__mro__):
            ranges.update(vars(klass).get("RANGES", {}))
        check_ranges(f"agent {cls.name!r}", config, ranges)
        return cls.config_class(**config)

    def seeded_module(self, build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
        """Build a network whose initial weights depend on the agent's seed only."""
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(self.seed)  # CPU only: restored
            module = build()
        return module.to(self.device)

    @property
    def unwrapped(self):
        return self.env.unwrapped

    # ---- public API ------------------------------------------------------------------
    def learn(self, total_steps: int, *, progress_bar: bool = True,
              callback: CallbackLike | list[CallbackLike] | None = None) -> Agent:
        """Run ``total_steps`` updates (outer iterations). After each, :attr:`logger`
        logs a row every ``log_every`` updates, then the callback's ``on_step(agent,
        step, logs)`` gets that row (or the update's own logs between rows); False stops
        learning. ``callback`` is an :class:`agents.callbacks.Callback`, a plain function
        ``fn(agent, step, logs)``, a list of either (all called, in order) or None."""
        if total_steps < 0:
            raise ValueError(f"total_steps must be >= 0, got {total_steps}.")
        callback = as_callback(callback)
        self._start_fit_count()
        self.logger.start()
        bar = tqdm(total=total_steps, desc=f"{self.name}", disable=not progress_bar,
                   dynamic_ncols=True)
        try:
            callback.on_start(self, total_steps)
            for _ in range(total_steps):
                logs = self._update()
                self.steps_done += 1
                bar.update(1)
                row = self.logger(self, logs)
                if row is not None:
                    logs = row
                    bar.set_postfix({k: f"{v:.3f}" for k, v in row.items()
                                     if k in ("reward", "auroc")})
                if callback.on_step(self, self.steps_done, logs) is False:
                    break
        finally:
            bar.close()
            callback.on_end(self)
        return self

    @property
    def log_rows(self) -> list[dict]:
        """The rows logged so far by this agent object (a resumed one starts empty)."""
        return self.logger.rows

    @property
    def fits_used(self) -> int:
        """Predictor fits this agent's learning has consumed, every env copy counted (the
        ``fits`` counters of the envs it steps): the budget agents are compared at."""
        if self._fits_offset is None:
            return 0
        return self._env_fits() - self._fits_offset

    def _start_fit_count(self) -> None:
        if self._fits_offset is None:
            self._fits_offset = self._env_fits()

    def _env_fits(self) -> int:
        return sum(int(getattr(env, "fits", 0)) for env in self.stepped_envs())

    def stepped_envs(self) -> list:
        """The envs whose steps this agent's learning pays for."""
        return [self.unwrapped]

    def data_values(self) -> np.ndarray:
        """One value per training point, in training-set order; higher is more valuable."""
        values = self._values_from(self.unwrapped.all_observations())
        return np.asarray(values, dtype=np.float64).reshape(-1)

    def valuation(self) -> ValuationResult:
        """The values with what the agent knows about them (per-point counts or spread
        where it has them: None here) and the compute spent: :meth:`data_values` is
        ``valuation().values``."""
        return ValuationResult(self.data_values(), agent=self.name, steps=self.steps_done,
                               fits=self.fits_used)

    def save(self, path: str | os.PathLike, *, metadata: dict | None = None) -> None:
        """Write a checkpoint atomically: tensors and plain values only, loadable with
        ``torch.load(weights_only=True)`` (:mod:`agents.checkpoint`).

        It holds everything that decides the rest of the run (weights, optimizer, the
        agent's generator, the env's RNGs and current batch, reward windows), so
        ``agents.load(path, env).learn(m)`` gives the same values, bit for bit, as going
        on without stopping. ``metadata`` (JSON-serialisable) is stored alongside.
        """
        write_checkpoint(path, {
            "agent": self.name,
            "seed": self.seed,
            "config": dataclasses.asdict(self.config),
            "steps_done": self.steps_done,
            "fits_used": self.fits_used,
            "generator": self.generator.get_state(),
            "env": env_identity(self.env),
            "metadata": metadata_json(metadata),
            "state": self._state_dict(),
        })

    def load_checkpoint(self, checkpoint: dict, path: str | os.PathLike = "checkpoint") -> None:
        """Restore what :meth:`save` wrote (as read by ``agents.checkpoint.read_checkpoint``)."""
        check_env_identity(path, checkpoint["env"], self.env)
        self.steps_done = int(checkpoint["steps_done"])
        try:
            self.generator.set_state(checkpoint["generator"])
            self._load_state_dict(checkpoint["state"])
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise CheckpointError(f"{path} does not fit agent {self.name!r} with these options "
                                  f"({err}).") from None
        self._fits_offset = self._env_fits() - int(checkpoint["fits_used"])

    # ---- for subclasses --------------------------------------------------------------
    def _update(self) -> dict:
        """One outer iteration; returns scalars to log (e.g. ``reward``)."""
        raise NotImplementedError

    def _values_from(self, observations: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def _state_dict(self) -> dict:
        """Tensors and plain values: what :meth:`save` stores besides the generator.

        By default, the state of every ``nn.Module``, optimizer and ``torch.Generator``
        the agent holds as an attribute, so a subclass that keeps its networks there is
        saved whole without overriding this; a network kept where this cannot see it (in
        a list or dict) is refused rather than saved without its weights. Override both
        this and :meth:`_load_state_dict` to save anything else."""
        return {name: value.get_state() if isinstance(value, torch.Generator)
                else value.state_dict() for name, value in self._held_state().items()}

    def _load_state_dict(self, state: dict) -> None:
        for name, value in self._held_state().items():
            if isinstance(value, torch.Generator):
                value.set_state(state[name])
            else:
                value.load_state_dict(state[name])

    def _held_state(self) -> dict[str, Any]:
        """Attribute -> each module, optimizer and generator of the agent (its own
        generator aside: :meth:`save` stores it)."""
        held, hidden = {}, []
        for name, value in vars(self).items():
            if isinstance(value, _STATEFUL) and value is not self.generator:
                held[name] = value
            elif isinstance(value, list | tuple | dict) and any(
                    isinstance(v, _STATEFUL)
                    for v in (value.values() if isinstance(value, dict) else value)):
                hidden.append(name)
        if hidden:
            raise TypeError(f"Agent {self.name!r} keeps networks, optimizers or generators in "
                            f"{hidden}, which the default _state_dict cannot save; override "
                            "_state_dict and _load_state_dict (or hold them as attributes, or "
                            "in an nn.ModuleList).")
        return held


_STATEFUL = (torch.nn.Module, torch.optim.Optimizer, torch.Generator)


def given_label_marginal(observations: dict[str, np.ndarray]) -> np.ndarray:
    """``m`` at each point's given label: 1 - p_val(given label). Works on (..., B, C)."""
    return (observations["marginal"] * observations["y"]).sum(axis=-1)

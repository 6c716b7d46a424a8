"""Hooks registered by the bench tests' specs (``imports = ["tests.bench_plugins"]``):
agents that kill their worker process (once, or always), one that sleeps (a long cell),
a method and a probe."""

from __future__ import annotations

import os
import time
from pathlib import Path

import agents
from agents.baselines import RandomValues
from dvrl_env.app.bench.hooks import register_method, register_probe


def make_dies_once(env, *, seed: int = 0, marker: str = "", **config):
    """Kills its process (no exception, no cleanup: a lost worker) unless ``marker``
    exists; creates it first, so the retry lives."""
    path = Path(marker)
    if not path.exists():
        path.write_text("died once\n")
        os._exit(1)
    return RandomValues(env, seed=seed, **config)


def make_dies(env, *, seed: int = 0, code: int = 0, signum: int = 0, **config):
    """Kills its process every time: ``os._exit(code)``, or the signal ``signum`` (9: as
    the OOM killer does)."""
    if signum:
        os.kill(os.getpid(), signum)
    os._exit(code)


def make_sleeps(env, *, seed: int = 0, pids: str = "", seconds: float = 60.0, **config):
    """Writes its process id into the folder ``pids``, then sleeps: a cell in flight."""
    (Path(pids) / f"{os.getpid()}.pid").write_text(f"{os.getpid()}\n")
    time.sleep(seconds)
    return RandomValues(env, seed=seed, **config)


def random_values(env, *, seed: int, shift: float = 0.0):
    """The random agent's values as a method (plus ``shift``: ranks unchanged)."""
    values = agents.make("random", env, seed=seed).data_values() + shift
    return values, {"fits": 7, "note": "from a method"}


def env_state(env, cell, *, scale: int = 1):
    """What the env looks like before learning: no fit yet, the cell's options."""
    return {"fits_before": int(env.unwrapped.fits),
            "num_samples_x": scale * cell.agent_options.get("num_samples", 1)}


agents.register("dies-once", make_dies_once)
agents.register("dies", make_dies)
agents.register("sleeps", make_sleeps)
register_method("random-method", random_values)
register_probe("env-state", env_state)

"""Hooks registered by the bench tests' specs (``imports = ["tests.bench_plugins"]``):
an agent that kills its worker process once, a method and a probe."""

from __future__ import annotations

import os
from pathlib import Path

import agents
from agents.baselines import RandomValues
from dvrl_env.bench.hooks import register_method, register_probe


def make_dies_once(env, *, seed: int = 0, marker: str = "", **config):
    """Kills its process (no exception, no cleanup: a lost worker) unless ``marker``
    exists; creates it first, so the retry lives."""
    path = Path(marker)
    if not path.exists():
        path.write_text("died once\n")
        os._exit(1)
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
register_method("random-method", random_values)
register_probe("env-state", env_state)

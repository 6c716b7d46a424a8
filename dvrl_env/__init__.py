"""dvrl-env: data valuation with reinforcement learning as a Gymnasium environment.

>>> import gymnasium as gym, dvrl_env
>>> env = gym.make("DataValuation-Digits-v0", noise_rate=0.2)
"""

import os

import torch

from dvrl_env.data import ValuationDataset, add_label_noise, from_arrays, load_dataset
from dvrl_env.device import resolve_device
from dvrl_env.envs import ENV_IDS, DataValuationEnv, DataValuationVectorEnv, register_envs

register_envs()


def _one_thread_after_fork() -> None:
    """torch's OpenMP thread pool does not survive ``fork``: a forked child that runs a
    parallel op waits for threads that no longer exist (``gym.make_vec(...,
    vectorization_mode="async")`` hung after the parent had stepped an env). Forked
    workers therefore run torch on one thread, as torch's own DataLoader workers do."""
    torch.set_num_threads(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_one_thread_after_fork)

def __getattr__(name: str):
    """``find_label_issues`` is imported on first use: it needs the agents and pandas."""
    if name == "find_label_issues":
        from dvrl_env.app.find import find_label_issues

        return find_label_issues
    raise AttributeError(f"module 'dvrl_env' has no attribute {name!r}")


__all__ = [
    "ENV_IDS",
    "DataValuationEnv",
    "DataValuationVectorEnv",
    "ValuationDataset",
    "add_label_noise",
    "find_label_issues",
    "from_arrays",
    "load_dataset",
    "resolve_device",
]
__version__ = "0.1.0"

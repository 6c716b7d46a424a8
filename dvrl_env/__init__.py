"""dvrl-env: data valuation with reinforcement learning as a Gymnasium environment.

>>> import gymnasium as gym, dvrl_env
>>> env = gym.make("DataValuation-Digits-v0", noise_rate=0.2)
"""

from dvrl_env.batched import DataValuationVectorEnv
from dvrl_env.datasets import ValuationDataset, add_label_noise, from_arrays, load_dataset
from dvrl_env.env import DataValuationEnv
from dvrl_env.predictors import resolve_device
from dvrl_env.registration import ENV_IDS, register_envs

register_envs()

__all__ = [
    "ENV_IDS",
    "DataValuationEnv",
    "DataValuationVectorEnv",
    "ValuationDataset",
    "add_label_noise",
    "from_arrays",
    "load_dataset",
    "resolve_device",
]
__version__ = "0.1.0"

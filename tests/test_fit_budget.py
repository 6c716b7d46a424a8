"""Compute is counted in predictor fits: exact counters in the envs, ``fits_used`` in
every agent, and a callback that stops learning at a fit budget."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import agents
import dvrl_env
from dvrl_env.envs.vector import make_vector_env

TINY = {"n_train": 60, "n_valid": 200, "n_test": 100, "batch_size": 20, "predictor_epochs": 1,
        "noise_rate": 0.2}


def test_the_single_env_counts_a_fit_per_step_and_per_fixed_baseline():
    env = dvrl_env.DataValuationEnv("adult", **TINY)
    assert env.fits == 0
    env.reset(seed=0)
    assert env.fits == 1  # the fixed baseline: the predictor trained on every point
    for _ in range(3):
        env.step(np.zeros(20, dtype=np.int8))  # even an empty selection scores a predictor
    env.reset()
    assert env.fits == 4  # a reset without a seed keeps the baseline
    baseline = env.fixed_baseline
    env.reset(seed=1)
    assert env.fits == 4  # and so does one with a seed: the baseline is the env's, trained once
    assert env.fixed_baseline == baseline
    moving = dvrl_env.DataValuationEnv("adult", baseline="moving_average", **TINY)
    moving.reset(seed=0)
    moving.step(np.ones(20, dtype=np.int8))
    assert moving.fits == 1


# the batched env's 3 slots share one fixed baseline; the 3 deep copies of an env not yet
# reset are 3 envs, each training its own
@pytest.mark.parametrize(("batched", "baselines"), [(True, 1), (False, 3)])
def test_vector_envs_count_every_copy(batched, baselines):
    env = dvrl_env.DataValuationEnv("adult", **TINY)
    envs = make_vector_env(env, 3, batched=batched)
    envs.reset(seed=[0, 0, 0])
    envs.step(np.ones((3, 20), dtype=np.int8))
    envs.step(np.ones((3, 20), dtype=np.int8))
    fits = envs.fits if batched else sum(e.unwrapped.fits for e in envs.envs)
    assert fits == baselines + 2 * 3


@pytest.mark.parametrize(("name", "config", "per_update", "baselines"), [
    ("reinforce", {}, 1, 1),
    ("reinforce", {"num_samples": 4}, 4, 1),
    ("gumbel", {}, 1, 1),
    ("ppo", {"n_steps": 3}, 3, 1),
    ("a2c", {"n_steps": 2}, 2, 1),
    ("credit", {"num_samples": 4, "batch_size": 10}, 4, 1),
    ("critic", {"num_samples": 4, "batch_size": 10}, 4, 1),
    ("random", {}, 0, 0),
])
def test_agents_report_the_fits_they_used(name, config, per_update, baselines):
    env = gym.make("DataValuation-Adult-v0", **TINY)
    agent = agents.make(name, env, seed=0, **config)
    assert agent.fits_used == 0
    agent.learn(5, progress_bar=False)
    assert agent.fits_used == 5 * per_update + baselines


def test_a_fit_budget_stops_learning_and_is_logged(tmp_path):
    env = gym.make("DataValuation-Adult-v0", **TINY)
    agent = agents.make("reinforce", env, seed=0, num_samples=4, log_every=1,
                        log_dir=str(tmp_path))
    agent.learn(1000, progress_bar=False, callback=agents.FitBudget(21))
    # one baseline shared by the 4 copies + 5 x 4 steps
    assert agent.fits_used == 21 and agent.steps_done == 5
    log = (tmp_path / "progress.csv").read_text().splitlines()
    assert log[0].split(",")[:2] == ["step", "fits"]
    assert [int(line.split(",")[1]) for line in log[1:]] == [5, 9, 13, 17, 21]
    with pytest.raises(ValueError, match="max_fits must be >= 1"):
        agents.FitBudget(0)


"""The env with other RL stacks: values from any SB3 policy or callable, vector envs given
to agents, Gymnasium's vector wrappers, the CleanRL-style example, ``dvrl agents``."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

import agents
from agents.sb3 import PerSamplePolicy, PPOAgent, policy_values
from dvrl_env import DataValuationEnv, DataValuationVectorEnv
from dvrl_env.app import cli
from tests.conftest import SMALL_ENV

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "reinforce_cleanrl.py"
B = SMALL_ENV["batch_size"]


def make(dataset, **options) -> DataValuationEnv:
    return DataValuationEnv(dataset, **{**SMALL_ENV, "predictor_epochs": 1, **options})


def direct_probabilities(policy, obs: dict[str, np.ndarray]) -> np.ndarray:
    """What users had to write: SB3's action distribution's Bernoulli probabilities."""
    tensors, _ = policy.obs_to_tensor(obs)
    with torch.no_grad():
        return policy.get_distribution(tensors).distribution.probs[0].numpy()


# ---- values from any policy ----------------------------------------------------------

def test_policy_values_of_a_per_sample_policy_are_its_selection_probabilities(toy_dataset):
    env = make(toy_dataset)
    model = PPO(PerSamplePolicy, env, n_steps=4, batch_size=4, n_epochs=1, seed=0,
                policy_kwargs={"hidden_dim": 8})
    model.learn(8)
    values = policy_values(model, env)
    assert values.shape == (env.n_train,) and np.isfinite(values).all()
    assert values.std() > 0  # a value per point, not one per position
    obs, info = env.reset(seed=3)
    np.testing.assert_allclose(values[info["indices"]], direct_probabilities(model.policy, obs),
                               rtol=1e-5, atol=1e-6)
    # the same numbers from the policy object, an SB3 vector env and the project's one
    np.testing.assert_array_equal(policy_values(model.policy, env), values)
    sb3_vec = make_vec_env(lambda: make(toy_dataset), n_envs=2)
    np.testing.assert_array_equal(policy_values(model, sb3_vec), values)
    vec = DataValuationVectorEnv(2, dataset=toy_dataset, **SMALL_ENV)
    np.testing.assert_array_equal(policy_values(model, vec), values)


def test_ppo_agent_values_are_policy_values(toy_dataset):
    env = make(toy_dataset)
    agent = PPOAgent(env, seed=0, n_steps=4, hidden_dim=8)
    agent.learn(1, progress_bar=False)
    np.testing.assert_array_equal(agent.data_values(), policy_values(agent.model, env))


def test_policy_values_of_a_flat_policy_score_rows_b_at_a_time(toy_dataset):
    env = make(toy_dataset)  # 200 rows, B = 32: six groups and one filled up from the start
    model = PPO("MultiInputPolicy", env, n_steps=4, batch_size=4, seed=0)
    values = policy_values(model, env)
    assert values.shape == (200,) and np.isfinite(values).all()
    rows = env.all_observations()
    first = direct_probabilities(model.policy, {k: v[:32] for k, v in rows.items()})
    np.testing.assert_allclose(values[:32], first, rtol=1e-5, atol=1e-6)
    last = np.r_[np.arange(192, 200), np.arange(24)]  # the last 8 rows, then rows 0-23
    direct = direct_probabilities(model.policy, {k: v[last] for k, v in rows.items()})
    np.testing.assert_allclose(values[192:], direct[:8], rtol=1e-5, atol=1e-6)


def test_policy_values_of_a_callable(toy_dataset):
    env = gym.make("DataValuation-v0", dataset=toy_dataset, **SMALL_ENV)  # wrapped
    seen = []

    def confidence(obs):  # one observation of B rows in, B probabilities out
        seen.append(obs["x"].shape)
        return 1.0 - obs["marginal"].max(axis=-1)

    values = policy_values(confidence, env)
    expected = 1.0 - env.unwrapped.all_observations()["marginal"].max(axis=-1)
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    assert set(seen) == {(B, 5)}
    with pytest.raises(ValueError, match=f"must return {B} selection probabilities"):
        policy_values(lambda obs: np.ones(3), env)
    with pytest.raises(TypeError, match="needs an SB3 policy or algorithm, or a callable"):
        policy_values(0.5, env)
    with pytest.raises(TypeError, match="needs a DataValuationEnv"):
        policy_values(confidence, gym.make("CartPole-v1"))


# ---- vector envs given to agents ------------------------------------------------------

def test_agents_given_a_vector_env_say_what_to_pass(toy_dataset):
    vec = DataValuationVectorEnv(2, dataset=toy_dataset, **SMALL_ENV)
    with pytest.raises(TypeError, match=r"'ppo' takes a single env, got a vector env "
                                        r"\(DataValuationVectorEnv of 2 envs\).*gym.make"):
        agents.make("ppo", vec)
    with pytest.raises(TypeError, match="builds K copies itself: num_samples=K"):
        agents.make("reinforce", vec)
    with pytest.raises(TypeError, match=r"PerSamplePolicy, make_vec_env\(\.\.\.\)\)"):
        PPOAgent(vec)  # built directly
    with pytest.raises(TypeError, match="DummyVecEnv of 2 envs"):
        PPOAgent(make_vec_env(lambda: make(toy_dataset), n_envs=2))


# ---- Gymnasium's vector wrappers ------------------------------------------------------

def test_make_vec_works_with_gymnasium_vector_wrappers_by_default(toy_dataset):
    from gymnasium.wrappers.vector import RecordEpisodeStatistics

    envs = RecordEpisodeStatistics(gym.make_vec("DataValuation-v0", num_envs=2,
                                                dataset=toy_dataset, **SMALL_ENV))
    assert isinstance(envs.unwrapped, DataValuationVectorEnv)
    envs.reset(seed=0)
    _, reward, terminated, _, info = envs.step(np.ones((2, B), np.int8))
    assert terminated.all()  # a one-step bandit: every step ends the episode
    np.testing.assert_allclose(info["episode"]["r"], reward, rtol=1e-6)
    assert info["episode"]["l"].tolist() == [1, 1]
    # next-step autoreset: this step only resets (reward 0); the one after trains again
    _, reward, terminated, _, _ = envs.step(np.ones((2, B), np.int8))
    assert not terminated.any() and (reward == 0).all()
    _, reward, terminated, _, _ = envs.step(np.ones((2, B), np.int8))
    assert terminated.all() and (reward != 0).all()


# ---- the CleanRL-style example --------------------------------------------------------

def load_example(monkeypatch):
    spec = importlib.util.spec_from_file_location("reinforce_cleanrl", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_cleanrl_example_finds_flipped_labels():
    """Digits, 20% flipped labels, marginal information on, seed 1: 100 updates of K = 8
    give AUROC 0.94 (seeds 0-5 at 200 updates: 0.64-0.98)."""
    run = subprocess.run(
        [sys.executable, str(EXAMPLE), "--seed", "1", "--num-updates", "100"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stderr
    auroc = float(re.search(r"detection AUROC ([0-9.]+)", run.stdout).group(1))
    assert auroc > 0.8, run.stdout


def test_cleanrl_example_is_a_module_with_main(capsys, monkeypatch):
    example = load_example(monkeypatch)
    args = example.parse_args(["--num-envs", "3", "--num-updates", "2",
                               "--no-marginal-information", "--predictor-lr", "0.1"])
    assert args == example.Args(num_envs=3, num_updates=2, marginal_information=False,
                                predictor_lr=0.1)
    auroc = example.main(args)
    assert 0.0 <= auroc <= 1.0
    assert f"detection AUROC {auroc:.3f}" in capsys.readouterr().out


# ---- dvrl agents -----------------------------------------------------------------------

def test_dvrl_agents_describes_each_agent(capsys, monkeypatch):
    monkeypatch.setitem(agents._REGISTRY, "missing_plugin", "no_such_module_xyz:Agent")
    assert cli.main(["agents"]) == 0
    lines = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert sorted(lines) == agents.names()
    assert lines["reinforce"] == ("DVRL's REINFORCE data value estimator (num_samples=K for "
                                  "the K-sample variant).")
    assert lines["ppo"] == "SB3's PPO with the per-sample policy."
    assert lines["missing_plugin"].startswith("(cannot be imported: No module named")


# ---- the guide ----------------------------------------------------------------------------

def test_the_guides_snippets_run():
    """docs/rl_stacks.md's Python blocks, in order, in one namespace."""
    text = (ROOT / "docs" / "rl_stacks.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 2
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/rl_stacks.md", "exec"), namespace)  # noqa: S102
    values, env = namespace["values"], namespace["env"]
    expected = 1 - env.unwrapped.all_observations()["marginal"].max(axis=-1)
    np.testing.assert_allclose(values, expected, rtol=1e-6)

"""The SB3 adapters: per-sample policy, update counting, logging, stopping, save/load."""

from __future__ import annotations

import csv
import zipfile

import numpy as np
import pytest
import torch

import agents
import dvrl_env
from agents.sb3 import A2CAgent, PPOAgent
from dvrl_env.evaluation import detection_auroc
from tests.conftest import separable_arrays

ALGORITHMS = [(PPOAgent, 4), (A2CAgent, 3)]  # (class, n_steps): small, fast rollouts
BATCH = 16


@pytest.fixture(scope="module")
def env():
    x, y = separable_arrays(n=400)
    dataset = dvrl_env.from_arrays(x[:200], y[:200], x[200:300], y[200:300], x[300:], y[300:],
                                   noise_rate=0.2, seed=0, name="toy")
    return dvrl_env.DataValuationEnv(dataset, batch_size=BATCH, predictor_epochs=1)


@pytest.mark.parametrize(("cls", "n_steps"), ALGORITHMS)
def test_learn_counts_updates_and_logs(env, tmp_path, cls, n_steps):
    agent = cls(env, seed=0, n_steps=n_steps, log_every=1, log_dir=str(tmp_path))
    agent.learn(3, progress_bar=False)
    assert agent.steps_done == 3
    assert agent.model.num_timesteps == 3 * n_steps  # one update = one rollout of n_steps
    values = agent.data_values()
    assert values.shape == (env.n_train,)
    assert np.all((values >= 0) & (values <= 1))
    with open(tmp_path / "progress.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    for row in rows:
        assert np.isfinite(float(row["reward"]))
        assert "value_loss" in row  # SB3's train/* metrics come along
    assert float(rows[-1]["mean_value"]) == pytest.approx(values.mean())
    # the logged AUROC is that of the values at that update, computed here independently
    auroc = detection_auroc(values, env.dataset.noisy_mask)
    assert float(rows[-1]["auroc"]) == pytest.approx(auroc, abs=1e-9)


@pytest.mark.parametrize(("cls", "n_steps"), ALGORITHMS)
def test_training_changes_the_values(env, cls, n_steps):
    agent = cls(env, seed=0, n_steps=n_steps, learning_rate=1e-2)
    before = agent.data_values()
    agent.learn(2, progress_bar=False)
    assert not np.allclose(before, agent.data_values())


@pytest.mark.parametrize(("cls", "n_steps"), ALGORITHMS)
def test_callback_false_stops_without_extra_env_step(env, cls, n_steps):
    seen: list[int] = []

    def callback(agent, step, logs):
        seen.append(step)
        assert "reward" in logs
        return step < 2

    agent = cls(env, seed=0, n_steps=n_steps, log_every=100)
    agent.learn(10, progress_bar=True, callback=callback)
    assert seen == [1, 2]
    assert agent.steps_done == 2
    assert agent.model.num_timesteps == 2 * n_steps
    agent.learn(1, progress_bar=False)  # the model is still usable, counting continues
    assert agent.steps_done == 3
    assert agent.model.num_timesteps == 3 * n_steps


@pytest.mark.parametrize(("cls", "n_steps"), ALGORITHMS)
def test_save_load_round_trip(env, tmp_path, cls, n_steps):
    agent = cls(env, seed=3, n_steps=n_steps, hidden_dim=16)
    agent.learn(2, progress_bar=False)
    path = tmp_path / "agent.pt"
    agent.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent.pt"]  # no temp file left
    assert "data" not in zipfile.ZipFile(path).namelist()  # not SB3's pickled zip
    restored = agents.load(path, env)
    assert type(restored) is cls
    assert restored.steps_done == 2 and restored.model.num_timesteps == 2 * n_steps
    assert restored.config == agent.config
    np.testing.assert_array_equal(restored.data_values(), agent.data_values())
    restored.learn(1, progress_bar=False)
    assert restored.steps_done == 3


def test_sb3_zips_are_refused(env, tmp_path):
    agent = A2CAgent(env, seed=0, n_steps=2)
    agent.model.save(tmp_path / "plain.zip")  # SB3's own format: its 'data' may be pickled
    with pytest.raises(agents.CheckpointError, match="Stable-Baselines3 zip"):
        agents.load(tmp_path / "plain.zip", env)


@pytest.mark.parametrize("share", [False, True])
@pytest.mark.parametrize("cls", [PPOAgent, A2CAgent])
def test_policy_is_permutation_equivariant(env, cls, share):
    policy = cls(env, seed=0, share_features_extractor=share).model.policy
    gen = torch.Generator().manual_seed(0)
    obs = {k: torch.rand((3, *space.shape), generator=gen)
           for k, space in env.observation_space.items()}
    perm = torch.randperm(BATCH, generator=gen)
    permuted = {k: v[:, perm] for k, v in obs.items()}
    with torch.no_grad():
        logits = policy.get_distribution(obs).distribution.logits
        logits_p = policy.get_distribution(permuted).distribution.logits
        value, value_p = policy.predict_values(obs), policy.predict_values(permuted)
    assert logits.shape == (3, BATCH)
    torch.testing.assert_close(logits_p, logits[:, perm])
    torch.testing.assert_close(value_p, value)
    assert not torch.allclose(logits[:, 0], logits[:, 1])  # rows do get their own scores
    # values on every point come from the same per-row network as the actions
    with torch.no_grad():
        direct = torch.sigmoid(policy.point_logits({k: v[:1] for k, v in obs.items()}))
    torch.testing.assert_close(direct, torch.sigmoid(logits[:1]))


def test_defaults_scale_with_batch(env):
    ppo, a2c = PPOAgent(env), A2CAgent(env)
    assert ppo.model.ent_coef == pytest.approx(0.01 / BATCH)
    assert (ppo.model.n_steps, ppo.model.batch_size) == (8, 8)
    assert a2c.model.n_steps == 5
    assert PPOAgent(env, ent_coef=0.0).model.ent_coef == 0.0


@pytest.mark.parametrize("cls", [PPOAgent, A2CAgent])
def test_unknown_option_is_a_clear_type_error(env, cls):
    with pytest.raises(TypeError, match="valid options.*n_steps"):
        cls(env, n_step=4)


def test_registered_names_build_the_agents(env):
    assert type(agents.make("ppo", env, n_steps=2)) is PPOAgent
    assert type(agents.make("a2c", env, n_steps=2)) is A2CAgent

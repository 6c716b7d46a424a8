"""DataValuationEnv: its contract (README "The environment"), reset modes, seeding and bad
input."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from dvrl_env import DataValuationEnv
from dvrl_env.predictors.training import binary_auc
from tests.conftest import SMALL_ENV


def make(ds, **kwargs) -> DataValuationEnv:
    return DataValuationEnv(ds, **{**SMALL_ENV, **kwargs})


def test_observation_is_the_batch_named_by_info_indices(toy_dataset):
    env = make(toy_dataset)
    obs, info = env.reset(seed=0)
    idx = info["indices"]
    assert len(np.unique(idx)) == 32
    np.testing.assert_array_equal(obs["x"], toy_dataset.x_train[idx])
    np.testing.assert_array_equal(obs["y"].argmax(1), toy_dataset.y_train[idx])
    everything = env.all_observations()
    for key in ("x", "y", "marginal"):
        assert obs[key].dtype == np.float32
        np.testing.assert_array_equal(obs[key], everything[key][idx])
    assert everything["x"].shape == (200, 5)
    obs2, reward, terminated, truncated, info2 = env.step(np.ones(32, dtype=np.int8))
    np.testing.assert_array_equal(info2["acted_indices"], idx)
    np.testing.assert_array_equal(obs2["x"], toy_dataset.x_train[info2["indices"]])
    assert isinstance(reward, float) and terminated is True and truncated is False
    assert info2["n_selected"] == 32
    assert reward == pytest.approx(info2["metric"] - info2["baseline"])


def test_marginal_information_flags_flipped_labels(toy_dataset):
    env = make(toy_dataset)
    obs = env.all_observations()
    given = obs["y"].argmax(1)
    m_given = obs["marginal"][np.arange(len(given)), given]
    assert m_given[toy_dataset.noisy_mask].mean() > m_given[~toy_dataset.noisy_mask].mean() + 0.3
    off = make(toy_dataset, marginal_information=False).all_observations()["marginal"]
    assert off.shape == obs["marginal"].shape and not off.any()


def test_same_seed_same_trajectory_and_pickle_round_trip(toy_dataset):
    actions = np.random.default_rng(0).integers(0, 2, size=(3, 32))

    def rollout(env, seed=7):
        out = [env.reset(seed=seed)[0]["x"]]
        for a in actions:
            obs, r, *_ = env.step(a)
            env.reset()
            out += [obs["x"], r]
        return out

    a, b = rollout(make(toy_dataset)), rollout(make(toy_dataset))
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    env = make(toy_dataset)
    env.reset(seed=7)
    clone = pickle.loads(pickle.dumps(env))
    r1 = env.step(actions[0])[1]
    r2 = clone.step(actions[0])[1]
    assert r1 == r2
    assert rollout(make(toy_dataset), seed=8)[0].tolist() != a[0].tolist()


def test_env_leaves_global_rng_alone(toy_dataset):
    torch_state, np_state = torch.random.get_rng_state(), np.random.get_state()[1].copy()
    env = make(toy_dataset)
    env.reset(seed=1)
    env.step(np.ones(32))
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state)


def _metric_after(env, selections):
    """Metric of each step for a list of (reset_before, action) pairs."""
    metrics = []
    for reset_before, action in selections:
        if reset_before:
            env.reset()
        metrics.append(env.step(action)[4]["metric"])
    return metrics


ALL, NONE = np.ones(32), np.zeros(32)
TRAIN = {"predictor_epochs": 30, "predictor_lr": 0.05}


def test_step_mode_restores_the_same_initial_weights(toy_dataset):
    env = make(toy_dataset, **TRAIN)
    env.reset(seed=0)
    untrained, trained, again = _metric_after(env, [(False, NONE), (True, ALL), (True, NONE)])
    assert trained > untrained + 0.2
    assert again == untrained  # the all-zero step scores the restored initial weights


def test_never_mode_keeps_the_predictor_across_episodes(toy_dataset):
    env = make(toy_dataset, reset_mode="never", episode_length=1, **TRAIN)
    env.reset(seed=0)
    untrained, trained, kept = _metric_after(env, [(False, NONE), (True, ALL), (True, NONE)])
    assert trained > untrained + 0.2
    assert kept == trained
    env.reset(seed=0)  # a seeded reset restores the initial weights
    assert _metric_after(env, [(False, NONE)]) == [untrained]


def test_episode_mode_keeps_within_and_restores_at_reset(toy_dataset):
    env = make(toy_dataset, reset_mode="episode", episode_length=2, **TRAIN)
    env.reset(seed=0)
    _, _, terminated, _, _ = env.step(NONE)
    assert not terminated
    untrained = _metric_after(env, [(True, NONE)])[0]
    trained = env.step(ALL)[4]["metric"]
    _, _, terminated, truncated, info = env.step(NONE)
    assert terminated and not truncated and info["metric"] == trained
    assert _metric_after(env, [(True, NONE)]) == [untrained]


def test_never_mode_truncates_episodes(toy_dataset):
    env = make(toy_dataset, reset_mode="never", episode_length=2)
    env.reset(seed=0)
    assert env.step(NONE)[2:4] == (False, False)
    assert env.step(NONE)[2:4] == (False, True)


def test_all_zero_selection_is_defined(toy_dataset):
    env = make(toy_dataset)
    env.reset(seed=0)
    _, reward, *_, info = env.step(NONE)
    assert np.isfinite(reward) and info["n_selected"] == 0


def test_baselines(toy_dataset):
    env = make(toy_dataset, baseline=0.25)
    env.reset(seed=0)
    info = env.step(ALL)[4]
    assert info["baseline"] == 0.25
    env = make(toy_dataset, baseline="moving_average", baseline_window=2)
    env.reset(seed=0)
    metrics = []
    for _ in range(4):
        info = env.step(ALL)[4]
        expected = np.mean(metrics[-2:]) if metrics else info["metric"]
        assert info["baseline"] == pytest.approx(expected)
        metrics.append(info["metric"])
        env.reset()


def test_fixed_baseline_is_the_predictor_on_everything(toy_dataset):
    env = make(toy_dataset, **TRAIN)
    _, info = env.reset(seed=0)
    assert info["baseline"] == env.fixed_baseline > 0.7
    assert env.step(ALL)[4]["baseline"] == env.fixed_baseline


@pytest.mark.parametrize("metric", ["accuracy", "auc", "neg_log_loss"])
def test_metrics_agree_with_sklearn(toy_dataset, metric):
    env = make(toy_dataset, metric=metric, **TRAIN)
    env.reset(seed=0)
    value = env.step(ALL)[4]["metric"]
    with torch.no_grad():  # sklearn's log_loss clips confident mistakes; compare unclipped
        logits = env.core.predictors.module(torch.as_tensor(toy_dataset.x_valid)).double()
    probs = torch.softmax(logits, 1).numpy()
    y = toy_dataset.y_valid
    expected = {
        "accuracy": lambda: accuracy_score(y, probs.argmax(1)),
        "auc": lambda: roc_auc_score(y, probs[:, 1]),
        "neg_log_loss": lambda: -log_loss(y, probs.clip(1e-12, 1)),
    }[metric]()
    assert value == pytest.approx(expected, abs=1e-5)
    assert value > (0.7 if metric != "neg_log_loss" else -5.0)


def test_binary_auc_matches_sklearn_with_ties():
    scores = torch.tensor([0.1, 0.4, 0.4, 0.8, 0.4, 0.2, 0.9])
    labels = torch.tensor([0, 1, 0, 1, 1, 0, 0])
    assert binary_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))


def test_custom_predictor_callable(toy_dataset):
    calls = []

    def factory():
        calls.append(1)
        return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))

    env = make(toy_dataset, predictor=factory)
    env.reset(seed=0)
    assert np.isfinite(env.step(ALL)[1]) and calls
    with pytest.raises(ValueError, match=r"must output \(batch, 2\) logits"):
        make(toy_dataset, predictor=lambda d, c: torch.nn.Linear(d, 3)).reset(seed=0)


@pytest.mark.parametrize(
    "action, message",
    [
        (np.ones(31), r"shape \(32,\)"),
        (np.ones((32, 1)), r"shape \(32,\)"),
        (np.full(32, 2), "only 0 and 1"),
        (np.full(32, 0.5), "only 0 and 1"),
    ],
)
def test_bad_actions(toy_dataset, action, message):
    env = make(toy_dataset)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(action)


def test_boolean_and_list_actions_are_accepted(toy_dataset):
    env = make(toy_dataset)
    env.reset(seed=0)
    assert env.step(np.ones(32, dtype=bool))[4]["n_selected"] == 32
    env.reset()
    assert env.step([0] * 31 + [1])[4]["n_selected"] == 1


def test_step_before_reset(toy_dataset):
    with pytest.raises(gym.error.ResetNeeded):
        make(toy_dataset).step(ALL)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"batch_size": 0}, ValueError, "batch_size must lie in 1..n_train=200"),
        ({"batch_size": 201}, ValueError, "batch_size must lie in"),
        ({"metric": "f1"}, ValueError, "Unknown metric 'f1'"),
        ({"baseline": "median"}, ValueError, "Unknown baseline"),
        ({"reset_mode": "sometimes"}, ValueError, "Unknown reset_mode"),
        ({"episode_length": 5}, ValueError, "episode_length must be 1"),
        ({"predictor": "forest"}, ValueError, "Unknown predictor 'forest'"),
        ({"n_train": 10}, ValueError, "apply to named datasets only"),
        ({"data_seed": -1}, ValueError, r"data_seed must be a whole number from 0 to 2\*\*64 - 1"),
        ({"bach_size": 10}, TypeError, r"Unknown option\(s\) \['bach_size'\].*batch_size"),
    ],
)
def test_bad_options(toy_dataset, kwargs, error, message):
    with pytest.raises(error, match=message):
        make(toy_dataset, **kwargs)


def test_missing_dataset_says_how_to_pass_one():
    with pytest.raises(ValueError, match="from_arrays"):
        gym.make("DataValuation-v0")

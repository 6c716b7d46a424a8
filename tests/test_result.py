"""The result record of values (:class:`agents.ValuationResult`): the values
``data_values()`` gives, with the per-point counts and spread of the agents that have
them."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import agents

TINY = {"n_train": 60, "n_valid": 200, "n_test": 100, "batch_size": 20, "predictor_epochs": 1,
        "noise_rate": 0.2}
K, B, ROUNDS = 4, 10, 5


def env():
    return gym.make("DataValuation-Adult-v0", **TINY)


def recorded(agent):
    """The agent, with every round it plays kept in ``agent.rounds``."""
    play, agent.rounds = agent.play_round, []

    def play_round(probabilities):
        agent.rounds.append(play(probabilities))
        return agent.rounds[-1]

    agent.play_round = play_round
    return agent


def test_the_record_holds_the_values_and_the_compute_spent():
    agent = agents.make("reinforce", env(), seed=0, num_samples=2).learn(3, progress_bar=False)
    result = agent.valuation()
    np.testing.assert_array_equal(result.values, agent.data_values())
    np.testing.assert_array_equal(np.asarray(result), agent.data_values())
    assert (result.agent, result.steps, result.fits) == ("reinforce", 3, agent.fits_used)
    assert result.counts is None and result.spread is None and len(result) == TINY["n_train"]
    assert list(result.to_frame().columns) == ["value"]
    with pytest.raises(ValueError, match="read-only"):
        result.values[0] = 1.0  # the record does not alias the agent's arrays


@pytest.mark.parametrize("smoother", ["ridge", "none"])
def test_credit_counts_are_the_rows_visits(smoother):
    agent = recorded(agents.make("credit", env(), seed=0, num_samples=K, batch_size=B,
                                 smoother=smoother))
    result = agent.learn(ROUNDS, progress_bar=False).valuation()
    np.testing.assert_array_equal(result.values, agent.data_values())
    visits = np.zeros(TINY["n_train"])
    for played in agent.rounds:
        np.add.at(visits, played.indices, K)  # each row counted once per env copy
    np.testing.assert_array_equal(result.counts, visits)
    assert result.counts.sum() == B * K * ROUNDS
    frame = result.to_frame()
    assert frame["count"].tolist() == visits.tolist()


def test_credits_spread_is_the_standard_error_of_the_raw_credit():
    agent = recorded(agents.make("credit", env(), seed=0, num_samples=K, batch_size=B,
                                 smoother="none"))
    result = agent.learn(ROUNDS, progress_bar=False).valuation()
    p = agent.config.selection_probability
    terms: list[list[float]] = [[] for _ in range(TINY["n_train"])]
    for played in agent.rounds:
        per_selection = played.advantages[:, None] * (played.selections - p) / (p * (1 - p))
        for column, row in enumerate(played.indices):
            terms[row].extend(per_selection[:, column])
    for row, samples in enumerate(terms):
        if len(samples) < 2:
            assert np.isnan(result.spread[row])
        else:
            expected = np.std(samples, ddof=1) / np.sqrt(len(samples))
            np.testing.assert_allclose(result.spread[row], expected, atol=1e-12)
            np.testing.assert_allclose(result.values[row], np.mean(samples), atol=1e-12)
    assert (np.nan_to_num(result.spread) > 0).any()
    ridge = agents.make("credit", env(), seed=0, num_samples=K, batch_size=B)
    ridge.learn(1, progress_bar=False)
    assert ridge.valuation().spread is None  # smoothed values: no spread on their scale


def test_credits_counts_and_spread_survive_a_checkpoint(tmp_path):
    agent = agents.make("credit", env(), seed=0, num_samples=K, batch_size=B, smoother="none")
    agent.learn(2, progress_bar=False).save(tmp_path / "credit.ckpt")
    restored = agents.load(tmp_path / "credit.ckpt", env())
    before, after = agent.valuation(), restored.valuation()
    np.testing.assert_array_equal(after.counts, before.counts)
    np.testing.assert_array_equal(after.spread, before.spread)


def test_critic_counts_its_replayed_rounds():
    agent = recorded(agents.make("critic", env(), seed=0, num_samples=K, batch_size=B))
    result = agent.learn(3, progress_bar=False).valuation()
    np.testing.assert_array_equal(result.values, agent.data_values())
    visits = np.zeros(TINY["n_train"])
    for played in agent.rounds:
        np.add.at(visits, played.indices, K)
    np.testing.assert_array_equal(result.counts, visits)
    assert result.spread is None


def test_a_record_refuses_counts_of_another_length():
    with pytest.raises(ValueError, match="counts has 2 entries, values 3"):
        agents.ValuationResult(np.zeros(3), counts=np.ones(2))
    with pytest.raises(ValueError, match="one-dimensional"):
        agents.ValuationResult(np.zeros((2, 2)))
    result = agents.ValuationResult([1.0, 2.0], spread=[0.1, 0.2], agent="mine")
    assert np.asarray(result, dtype=np.float32).dtype == np.float32
    assert result.to_frame()["spread"].tolist() == [0.1, 0.2]

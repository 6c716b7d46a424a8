"""Composable ``learn`` callbacks (:mod:`agents.callbacks`): a budget and a checkpointer
as separate objects, a list of them as one, and plain functions as before."""

from __future__ import annotations

import gymnasium as gym
import pytest

import agents
import agents.base
from agents.callbacks import Callback, CallbackList, FitBudget

TINY = {"n_train": 60, "n_valid": 200, "n_test": 100, "batch_size": 20, "predictor_epochs": 1,
        "noise_rate": 0.2}


@pytest.fixture
def agent():
    env = gym.make("DataValuation-Adult-v0", **TINY)
    return agents.make("reinforce", env, seed=0, num_samples=4)  # 4 fits an update


class SaveEvery(Callback):
    """Saves a checkpoint every ``every`` updates: the work a CLI's checkpointer does."""

    def __init__(self, path, every: int):
        self.path, self.every, self.saved_at = path, every, []

    def on_step(self, agent, step, logs):
        if step % self.every == 0:
            agent.save(self.path)
            self.saved_at.append(step)
        return True


class Recorder(Callback):
    """Writes each hook it gets into ``events``; stops after update ``stop_at``."""

    def __init__(self, name: str, events: list, stop_at: int | None = None):
        self.name, self.events, self.stop_at = name, events, stop_at

    def on_start(self, agent, total_steps):
        self.events.append((self.name, "start", total_steps))

    def on_step(self, agent, step, logs):
        self.events.append((self.name, step))
        return self.stop_at is None or step < self.stop_at

    def on_end(self, agent):
        self.events.append((self.name, "end", agent.steps_done))


def test_a_fit_budget_and_a_checkpointer_combine_in_a_list(tmp_path, agent):
    saver = SaveEvery(tmp_path / "agent.ckpt", every=2)
    agent.learn(1000, progress_bar=False, callback=CallbackList([FitBudget(17), saver]))
    assert agent.fits_used == 17 and agent.steps_done == 4  # 1 shared baseline + 4 x 4 fits
    assert saver.saved_at == [2, 4]  # the checkpointer saw the step the budget stopped at
    restored = agents.load(tmp_path / "agent.ckpt", gym.make("DataValuation-Adult-v0", **TINY))
    assert restored.steps_done == 4


def test_the_hooks_are_called_in_order_and_every_member_ends(agent):
    events: list = []
    first, second = Recorder("a", events, stop_at=2), Recorder("b", events)
    agent.learn(10, progress_bar=False, callback=[first, second])
    assert events == [("a", "start", 10), ("b", "start", 10),
                      ("a", 1), ("b", 1), ("a", 2), ("b", 2),
                      ("a", "end", 2), ("b", "end", 2)]


def test_on_end_runs_for_every_member_when_one_fails(agent):
    events: list = []

    class FailsAtEnd(Callback):
        def on_end(self, agent):
            raise RuntimeError("closing failed")

    with pytest.raises(RuntimeError, match="closing failed"):
        agent.learn(2, progress_bar=False, callback=[FailsAtEnd(), Recorder("b", events)])
    assert events[-1] == ("b", "end", 2)


def test_on_end_runs_when_learning_raises(agent):
    events: list = []

    def explode(agent, step, logs):
        raise ValueError("diverged")

    with pytest.raises(ValueError, match="diverged"):
        agent.learn(5, progress_bar=False, callback=[Recorder("a", events), explode])
    assert events == [("a", "start", 5), ("a", 1), ("a", "end", 1)]


def test_a_plain_function_still_works_and_only_false_stops(agent):
    seen = []
    agent.learn(3, progress_bar=False, callback=lambda a, step, logs: seen.append(step))
    assert seen == [1, 2, 3] and agent.steps_done == 3  # None goes on
    agent.learn(10, progress_bar=False, callback=lambda a, step, logs: step < 5)
    assert agent.steps_done == 5


def test_a_list_mixes_functions_and_callbacks_and_any_member_stops(agent):
    events: list = []
    agent.learn(10, progress_bar=False,
                callback=[lambda a, step, logs: step < 2, Recorder("b", events)])
    assert agent.steps_done == 2 and events[-1] == ("b", "end", 2)


def test_a_callback_that_is_not_callable_is_refused(agent):
    with pytest.raises(TypeError, match="fn\\(agent, step, logs\\)"):
        agent.learn(1, progress_bar=False, callback=3)
    assert agent.steps_done == 0


def test_fit_budget_keeps_its_old_names_and_is_still_a_plain_callable(agent):
    assert agents.FitBudget is agents.base.FitBudget is FitBudget
    agent.learn(1, progress_bar=False)
    assert agent.fits_used == 5  # 1 baseline shared by the 4 copies + 4 fits
    assert FitBudget(6)(agent, 1, {}) is True and FitBudget(5)(agent, 1, {}) is False

"""The learn loop's log: one callback for every agent (torch and Stable-Baselines3), the
CSV file's header respected on resume, TensorBoard only when asked."""

from __future__ import annotations

import csv
import sys
import types

import gymnasium as gym
import pytest

import agents
from agents.base import Agent
from agents.progress import CsvLog, ProgressLog

TINY = {"n_train": 60, "n_valid": 200, "n_test": 100, "batch_size": 20, "predictor_epochs": 1,
        "noise_rate": 0.2}
#: a torch agent and the two SB3 agents, on small settings
AGENTS = [("reinforce", {}), ("ppo", {"n_steps": 2}), ("a2c", {"n_steps": 2})]


def read_rows(path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


@pytest.mark.parametrize(("name", "config"), AGENTS)
def test_every_agent_logs_through_the_loops_callback(tmp_path, monkeypatch, name, config):
    """Torch and SB3 agents: the base loop calls the log after each update, rows land at
    the same steps with the same leading and trailing columns, and the user's callback
    gets the row at a logging step."""
    env = gym.make("DataValuation-Adult-v0", **TINY)
    agent = agents.make(name, env, seed=0, log_every=2, log_dir=str(tmp_path), **config)
    assert type(agent).learn is Agent.learn  # no agent keeps its own copy of the loop
    assert isinstance(agent.logger, ProgressLog)
    calls: list[int] = []
    log = ProgressLog.__call__

    def spy(self, agent_, logs):
        calls.append(agent_.steps_done)
        return log(self, agent_, logs)

    monkeypatch.setattr(ProgressLog, "__call__", spy)
    seen: dict[int, dict] = {}
    agent.learn(4, progress_bar=False, callback=lambda a, step, logs: seen.update({step: logs}))
    assert calls == [1, 2, 3, 4]
    fields, rows = read_rows(tmp_path / "progress.csv")
    assert [int(r["step"]) for r in rows] == [2, 4] == [r["step"] for r in agent.log_rows]
    assert fields[:4] == ["step", "fits", "time", "reward"]
    assert fields[-3:] == ["mean_value", "auroc", "value_gap"]
    assert seen[2] is agent.log_rows[0] and "auroc" not in seen[3]
    assert float(rows[-1]["mean_value"]) == pytest.approx(agent.data_values().mean())


def test_a_resumed_log_keeps_the_files_column_order(tmp_path):
    path = tmp_path / "progress.csv"
    path.write_text("step,mean_value,reward\n1,0.4,0.5\n")
    log = CsvLog(path)
    log.append({"step": 2, "reward": 0.7, "mean_value": 0.6})
    log.append({"step": 3, "reward": 0.9})  # a cell the row lacks stays empty
    assert path.read_text().splitlines() == ["step,mean_value,reward", "1,0.4,0.5",
                                             "2,0.6,0.7", "3,,0.9"]


def test_a_new_column_rewrites_the_log_with_every_column(tmp_path):
    """A column the file lacks is added at the end (earlier rows empty), not dropped and
    never written under another column's name."""
    path = tmp_path / "progress.csv"
    path.write_text("step,reward\n1,0.5\n")
    log = CsvLog(path)
    log.append({"step": 2, "loss": 0.1, "reward": 0.6})
    log.append({"step": 3, "reward": 0.7, "loss": 0.2})
    fields, rows = read_rows(path)
    assert fields == ["step", "reward", "loss"]
    assert [(r["step"], r["reward"], r["loss"]) for r in rows] == [
        ("1", "0.5", ""), ("2", "0.6", "0.1"), ("3", "0.7", "0.2")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["progress.csv"]  # no temp file


def test_an_agent_resumed_on_an_older_log_keeps_its_rows(tmp_path):
    (tmp_path / "progress.csv").write_text("step,reward,mean_value\n1,0.5,0.4\n")
    env = gym.make("DataValuation-Adult-v0", **TINY)
    agent = agents.make("reinforce", env, seed=0, log_every=1, log_dir=str(tmp_path))
    agent.learn(1, progress_bar=False)
    fields, rows = read_rows(tmp_path / "progress.csv")
    assert fields[:3] == ["step", "reward", "mean_value"] and "auroc" in fields
    assert rows[0] == {**dict.fromkeys(fields, ""), "step": "1", "reward": "0.5",
                       "mean_value": "0.4"}
    assert float(rows[1]["mean_value"]) == pytest.approx(agent.data_values().mean())


class FakeWriter:
    """Stands in for TensorBoard's SummaryWriter (tensorboard is not installed here)."""

    made: list[FakeWriter] = []

    def __init__(self, log_dir: str):
        self.log_dir, self.scalars = log_dir, []
        FakeWriter.made.append(self)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, value, step))

    def flush(self) -> None:
        pass


@pytest.fixture
def fake_tensorboard(monkeypatch):
    module = types.ModuleType("torch.utils.tensorboard")
    module.SummaryWriter = FakeWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", module)
    FakeWriter.made = []
    return FakeWriter.made


def test_tensorboard_only_when_asked(tmp_path, fake_tensorboard):
    env = gym.make("DataValuation-Adult-v0", **TINY)
    agents.make("ppo", env, n_steps=2, log_every=1, log_dir=str(tmp_path / "quiet")).learn(
        1, progress_bar=False)
    assert fake_tensorboard == []  # installed but not asked: no TensorBoard files
    agent = agents.make("ppo", env, n_steps=2, log_every=1, log_dir=str(tmp_path / "tb"),
                        tensorboard=True)
    agent.learn(2, progress_bar=False)
    [writer] = fake_tensorboard
    assert writer.log_dir == str(tmp_path / "tb" / "tensorboard")
    tags = {tag for tag, _, _ in writer.scalars}
    assert {"ppo/reward", "ppo/auroc", "ppo/value_loss", "ppo/mean_value"} <= tags
    assert sorted({step for _, _, step in writer.scalars}) == [1, 2]


def test_tensorboard_without_the_package_or_a_log_dir_is_a_clear_error(tmp_path, monkeypatch):
    env = gym.make("DataValuation-Adult-v0", **TINY)
    with pytest.raises(ValueError, match="tensorboard=True writes under log_dir"):
        agents.make("reinforce", env, tensorboard=True)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # not installed
    with pytest.raises(ValueError, match="needs the tensorboard package.*pip install"):
        agents.make("reinforce", env, tensorboard=True, log_dir=str(tmp_path))


def test_log_every_below_one_is_refused():
    with pytest.raises(ValueError, match="log_every must be >= 1"):
        ProgressLog(0)

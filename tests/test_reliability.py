"""The guarantees of docs/reliability.md, each with the case that once broke it:
checkpoints run no code, resumed runs equal uninterrupted ones bit for bit, a killed run
loses at most the updates since its last checkpoint, inputs that changed are refused,
and faults end in one line and exit status 2 with no partial output."""

from __future__ import annotations

import base64
import errno
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import agents
import dvrl_env
from dvrl_env.app import cli
from dvrl_env.app.runs import RunDir
from tests.test_cli import TINY_ENV, dvrl, read_values, start_run, wait_for_log
from tests.test_tabular import people, write_csv

TINY = {"n_train": 60, "n_valid": 200, "n_test": 100, "batch_size": 20, "predictor_epochs": 2,
        "noise_rate": 0.2}


class _RunsCommand:
    """Unpickling this calls ``os.system(command)``: what a crafted file would do."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def crafted_sb3_zip(path: Path, marker: Path) -> Path:
    """A Stable-Baselines3 zip whose ``data`` JSON holds a pickled ``os.system`` call
    (SB3's loader unpickles ``:serialized:`` entries) and a ``dvrl_agent.json`` naming
    ``ppo``: the file that once ran code through ``agents.load``."""
    payload = base64.b64encode(pickle.dumps(_RunsCommand(f"touch {marker}"))).decode()
    data = {"policy_class": {":type:": "<class 'type'>", ":serialized:": payload}}
    meta = {"agent": "ppo", "seed": 0, "steps_done": 1, "config": {}}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data", json.dumps(data))
        archive.writestr("dvrl_agent.json", json.dumps(meta))
        archive.writestr("policy.pth", b"")
    return path


def test_the_crafted_payload_does_run_code_when_unpickled(tmp_path):
    """The test's payload is live: plain pickle executes it (so the next tests mean it)."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_RunsCommand(f"touch {marker}")))
    assert marker.exists()


def crafted_torch_file(path: Path, marker: Path) -> Path:
    """A torch file whose pickle holds an ``os.system`` call."""
    torch.save({"format": "dvrl-agent", "agent": _RunsCommand(f"touch {marker}")}, path)
    return path


@pytest.mark.parametrize(("craft", "message"), [
    (crafted_sb3_zip, "Stable-Baselines3 zip.*pickled"),
    (crafted_torch_file, "not a readable dvrl-env agent checkpoint"),
])
def test_a_crafted_checkpoint_runs_nothing(tmp_path, craft, message):
    marker = tmp_path / "ran"
    path = craft(tmp_path / "agent.ckpt", marker)
    env = gym.make("DataValuation-Adult-v0", **TINY)
    with pytest.raises(agents.CheckpointError, match=message):
        agents.load(path, env)
    assert not marker.exists()


def test_resume_with_a_crafted_checkpoint_runs_nothing(tmp_path):
    out = tmp_path / "run"
    assert cli.main(["value", "--agent", "ppo", "--agent-arg", "n_steps=2", "--steps", "1",
                     "--out", str(out), "--quiet", *TINY_ENV]) == 0
    marker = tmp_path / "ran"
    crafted_sb3_zip(out / RunDir.CHECKPOINT, marker)
    result = dvrl("value", "--resume", str(out), "--steps", "2", "--quiet")
    assert result.returncode == 2 and not marker.exists()
    assert "Stable-Baselines3 zip" in result.stderr and "Traceback" not in result.stderr


# ---- exact resume ------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "config"), [
    ("reinforce", {}),
    ("reinforce", {"num_samples": 8}),
    ("gumbel", {}),
    ("ppo", {"n_steps": 2}),
    ("a2c", {"n_steps": 2}),
    ("oracle", {"eval_every": 1}),
    ("credit", {"batch_size": 10, "num_samples": 4}),
    ("critic", {"batch_size": 10, "num_samples": 4, "exploration": "values"}),
])
def test_resume_gives_the_uninterrupted_values_bit_for_bit(tmp_path, name, config):
    total, stop = 6, 3
    env = gym.make("DataValuation-Adult-v0", **TINY)
    uninterrupted = agents.make(name, env, seed=1, **config).learn(total, progress_bar=False)

    env = gym.make("DataValuation-Adult-v0", **TINY)
    first = agents.make(name, env, seed=1, **config).learn(stop, progress_bar=False)
    first.save(tmp_path / "agent.ckpt")
    at_stop = first.data_values()
    torch.manual_seed(99)  # whatever happens in between: SB3 draws from the global RNGs
    np.random.seed(99)
    resumed = agents.load(tmp_path / "agent.ckpt", gym.make("DataValuation-Adult-v0", **TINY))
    resumed.learn(total - stop, progress_bar=False)

    assert resumed.steps_done == total and resumed.fits_used == uninterrupted.fits_used
    np.testing.assert_array_equal(resumed.data_values(), uninterrupted.data_values())
    assert not np.array_equal(at_stop, uninterrupted.data_values())  # learning went on


def test_env_state_restores_the_rng_stream_and_batch():
    env = dvrl_env.DataValuationEnv("adult", reset_mode="episode", episode_length=3, **TINY)
    env.reset(seed=4)
    env.step(np.ones(20, dtype=np.int8))
    state = env.state_dict()
    expected = [env.step(np.ones(20, dtype=np.int8))[1] for _ in range(3)]
    other = dvrl_env.DataValuationEnv("adult", reset_mode="episode", episode_length=3, **TINY)
    obs, info = other.reset(options={"state": state})
    np.testing.assert_array_equal(info["indices"], state["indices"][0].numpy())  # slot 0
    assert [other.step(np.ones(20, dtype=np.int8))[1] for _ in range(3)] == expected
    smaller = dvrl_env.DataValuationEnv("adult", **{**TINY, "batch_size": 10})
    with pytest.raises(ValueError, match="does not fit this env.*batch_size is 10"):
        smaller.reset(options={"state": state})
    with pytest.raises(ValueError, match=r"Unknown reset option\(s\) \['stat'\]"):
        other.reset(options={"stat": state})


def test_a_checkpoint_for_other_data_is_refused(tmp_path):
    env = gym.make("DataValuation-Adult-v0", **TINY)
    agents.make("reinforce", env, seed=0).learn(1, progress_bar=False).save(tmp_path / "a.ckpt")
    other = gym.make("DataValuation-Adult-v0", **{**TINY, "noise_rate": 0.3})
    with pytest.raises(agents.CheckpointError, match="trained on dataset 'adult' with content"):
        agents.load(tmp_path / "a.ckpt", other)


def test_cli_resume_after_sigterm_equals_an_uninterrupted_run(tmp_path):
    """The signal reaches a run that cannot have finished (100,000 updates, minutes of
    work, against a signal sent once 3 are logged); the run it is compared with is as long
    as the stopped one's checkpoint and 3 more, whatever the machine's speed."""
    common = ["--agent", "reinforce", "--agent-arg", "num_samples=2", "--seed", "3"]
    parted = tmp_path / "parted"
    proc = start_run(parted, *common, "--steps", "100000")
    wait_for_log(parted, 3, proc)
    proc.terminate()
    assert proc.wait(timeout=60) == 143  # stopped by the signal, not finished
    stopped = torch.load(parted / RunDir.CHECKPOINT, weights_only=True)["steps_done"]
    assert 3 <= stopped < 100000
    steps = str(stopped + 3)
    whole = tmp_path / "whole"
    assert start_run(whole, *common, "--steps", steps).wait(timeout=300) == 0
    result = dvrl("value", "--resume", str(parted), "--steps", steps, "--quiet")
    assert result.returncode == 0, result.stderr
    assert read_values(parted / "values.csv") == read_values(whole / "values.csv")


def test_a_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    proc = start_run(out, "--agent", "reinforce", "--steps", "100000", "--checkpoint-every", "3")
    wait_for_log(out, 8, proc)
    proc.kill()  # SIGKILL: no handler runs
    proc.wait(timeout=60)
    checkpoint = torch.load(out / RunDir.CHECKPOINT, weights_only=True)
    saved = checkpoint["steps_done"]
    assert saved >= 6 and saved % 3 == 0
    logged = max(int(r["step"]) for r in read_values(out / "log" / "progress.csv"))
    result = dvrl("value", "--resume", str(out), "--steps", str(saved + 2))
    assert result.returncode == 0, result.stderr
    assert f"from its checkpoint at update {saved} of {saved + 2}" in result.stderr
    if logged > saved:
        assert f"{logged - saved} updates were lost and are redone" in result.stderr
    steps = [int(r["step"]) for r in read_values(out / "log" / "progress.csv")]
    assert steps == list(range(1, saved + 3))


def test_a_run_killed_before_its_first_checkpoint_restarts_cleanly(tmp_path):
    """A checkpoint every 1,000,000 updates: none is due before the kill, however fast or
    slow the machine (the default, every 60 s, would race the 3 rows waited for)."""
    out = tmp_path / "run"
    proc = start_run(out, "--agent", "random", "--steps", "100000",
                     "--checkpoint-every", "1000000")
    wait_for_log(out, 3, proc)
    proc.kill()  # SIGKILL: no handler saves one either
    proc.wait(timeout=60)
    assert not (out / RunDir.CHECKPOINT).exists()
    result = dvrl("value", "--resume", str(out), "--steps", "2")
    assert result.returncode == 0, result.stderr
    assert "no checkpoint yet: starting again from update 0" in result.stderr
    assert [int(r["step"]) for r in read_values(out / "log" / "progress.csv")] == [1, 2]


# ---- resume refuses what would silently change the run -----------------------------------

@pytest.fixture(scope="module")
def reinforce_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "reinforce"
    assert cli.main(["value", "--agent", "reinforce", "--noise-rate", "0.2", "--steps", "3",
                     "--out", str(out), "--quiet", *TINY_ENV]) == 0
    return out


@pytest.mark.parametrize("flags", [["--agent", "gumbel"], ["--seed", "4"],
                                   ["--noise-rate", "0.3"], ["--env-arg", "batch_size=10"]])
def test_resume_refuses_options_that_change_the_run(reinforce_run, capsys, flags):
    assert cli.main(["value", "--resume", str(reinforce_run), *flags]) == 2
    err = capsys.readouterr().err
    assert f"{flags[0]} cannot change it" in err and "agent 'reinforce', seed 0" in err


def test_resume_refuses_fewer_steps_than_done(reinforce_run, capsys):
    assert cli.main(["value", "--resume", str(reinforce_run), "--steps", "2"]) == 2
    assert "--steps 2 is fewer than the 3 updates" in capsys.readouterr().err


def test_resume_refuses_another_runs_checkpoint(reinforce_run, tmp_path, capsys):
    other = tmp_path / "gumbel"
    assert cli.main(["value", "--agent", "gumbel", "--noise-rate", "0.2", "--steps", "1",
                     "--out", str(other), "--quiet", *TINY_ENV]) == 0
    run = tmp_path / "run"
    shutil.copytree(reinforce_run, run)
    shutil.copy(other / RunDir.CHECKPOINT, run / RunDir.CHECKPOINT)
    assert cli.main(["value", "--resume", str(run), "--quiet"]) == 2
    assert "belongs to another run (agent 'gumbel'" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"", b"\x00garbage" * 10, "truncate"])
def test_a_damaged_checkpoint_is_one_line(reinforce_run, tmp_path, capsys, content):
    run = tmp_path / "run"
    shutil.copytree(reinforce_run, run)
    path = run / RunDir.CHECKPOINT
    path.write_bytes(path.read_bytes()[:200] if content == "truncate" else content)
    assert cli.main(["value", "--resume", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "not a readable dvrl-env agent checkpoint" in err and "Delete it" in err
    assert len(err.strip().splitlines()) == 1


# ---- evaluate refuses inputs that changed ------------------------------------------------

@pytest.fixture
def csv_run(tmp_path, monkeypatch) -> Path:
    write_csv(tmp_path / "train.csv", people(150))
    monkeypatch.chdir(tmp_path)  # the path below is relative
    out = tmp_path / "mine"
    assert cli.main(["value", "--csv", "train.csv", "--label-column", "y", "--noise-rate", "0.2",
                     "--agent", "marginal", "--steps", "1", "--out", str(out), "--quiet"]) == 0
    return out


def test_evaluate_from_elsewhere_finds_a_relative_csv(csv_run, tmp_path, monkeypatch):
    settings = json.loads((csv_run / "run.json").read_text())
    assert Path(settings["csv"]).is_absolute() and len(settings["input_sha256"]["csv"]) == 64
    monkeypatch.chdir(tmp_path.parent)
    assert cli.main(["evaluate", str(csv_run), "--quiet"]) == 0


def test_evaluate_refuses_a_csv_changed_after_the_run(csv_run, capsys):
    train = csv_run.parent / "train.csv"
    lines = train.read_text().splitlines()
    train.write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")  # rows shuffled
    before = (csv_run / "metrics.json").read_bytes()
    assert cli.main(["evaluate", str(csv_run), "--quiet"]) == 2
    assert "changed since the run" in capsys.readouterr().err
    assert (csv_run / "metrics.json").read_bytes() == before  # not overwritten


def test_evaluate_checks_values_csv_against_the_data(csv_run, capsys):
    path = csv_run / "values.csv"
    rows = path.read_text().splitlines()
    first, second = rows[1].split(","), rows[2].split(",")
    first[1], second[1] = second[1], first[1]  # swap two csv_line cells
    path.write_text("\n".join([rows[0], ",".join(first), ",".join(second), *rows[3:]]) + "\n")
    assert cli.main(["evaluate", str(csv_run), "--quiet"]) == 2
    assert "values.csv, row 1 reads" in capsys.readouterr().err


def test_numeric_labels_spelled_differently_across_files(tmp_path):
    rows = [(20 + i % 50, "oslo", i % 2) for i in range(120)]
    write_csv(tmp_path / "train.csv", rows)
    write_csv(tmp_path / "valid.csv", [(a, c, f"{y}.0") for a, c, y in rows[:40]])
    out = tmp_path / "out"
    assert cli.main(["value", "--csv", str(tmp_path / "train.csv"), "--valid-csv",
                     str(tmp_path / "valid.csv"), "--label-column", "y", "--agent", "marginal",
                     "--steps", "1", "--out", str(out), "--quiet"]) == 0
    assert {r["label"] for r in read_values(out / "values.csv")} == {"0", "1"}


def test_an_identifier_column_warns_and_can_be_dropped(tmp_path, capsys):
    rows = [(f"id{i}", *person) for i, person in enumerate(people(150))]
    write_csv(tmp_path / "train.csv", rows, header=("id", "age", "city", "y"))
    base = ["value", "--csv", str(tmp_path / "train.csv"), "--label-column", "y", "--agent",
            "marginal", "--steps", "1", "--quiet"]
    assert cli.main([*base, "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "dvrl: warning:" in err and "'id'" in err and "--drop-column id" in err
    assert cli.main([*base, "--drop-column", "id", "--out", str(tmp_path / "b")]) == 0
    assert "warning" not in capsys.readouterr().err


# ---- faults: one line, exit 2, no partial output -----------------------------------------

def test_out_under_a_file_or_unwritable(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert cli.main(["value", "--out", str(tmp_path / "file" / "run"), *TINY_ENV]) == 2
    assert "lies under the file" in capsys.readouterr().err
    assert cli.main(["value", "--out", "/proc/dvrl-run", *TINY_ENV]) == 2
    assert "Cannot write to --out /proc/dvrl-run" in capsys.readouterr().err


def test_a_full_disk_leaves_no_partial_output(tmp_path, capsys, monkeypatch):
    import dvrl_env.atomic

    real = dvrl_env.atomic.tempfile.mkstemp

    def no_space(*args, **kwargs):
        if kwargs.get("prefix", "").startswith(".metrics"):
            raise OSError(errno.ENOSPC, "No space left on device", "metrics.json")
        return real(*args, **kwargs)

    monkeypatch.setattr(dvrl_env.atomic.tempfile, "mkstemp", no_space)
    out = tmp_path / "run"
    assert cli.main(["value", "--agent", "random", "--noise-rate", "0.2", "--steps", "2",
                     "--out", str(out), "--quiet", *TINY_ENV]) == 2
    err = capsys.readouterr().err
    assert "No space left on device (metrics.json). Free space" in err
    assert "--resume" in err and len(err.strip().splitlines()) == 1
    left = sorted(p.name for p in out.iterdir())
    assert left == ["agent.ckpt", "run.json"]  # what resuming needs, and no output
    monkeypatch.undo()
    assert cli.main(["value", "--resume", str(out), "--quiet"]) == 0
    assert (out / "metrics.json").is_file()


@pytest.mark.parametrize(("name", "damage", "message"), [
    ("run.json", "truncate", "run.json is damaged"),
    ("values.csv", "truncate", "values.csv holds .* rows but the data have 60"),
    ("values.csv", "remove", r"values.csv is missing.*dvrl value --resume"),
    ("metrics.json", "truncate", r"metrics.json is damaged.*delete it"),
])
def test_evaluate_on_damaged_files_is_one_line(reinforce_run, tmp_path, capsys, name, damage,
                                               message):
    run = tmp_path / "run"
    shutil.copytree(reinforce_run, run)
    path = run / name
    if damage == "remove":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    assert cli.main(["evaluate", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert re.search(message, err), err


def test_async_vector_env_works_after_the_parent_used_torch():
    script = textwrap.dedent(f"""
        import gymnasium as gym, dvrl_env
        options = {TINY!r}
        env = gym.make("DataValuation-Adult-v0", **options)
        env.reset(seed=0)
        env.step(env.action_space.sample())  # torch's thread pool now runs in the parent
        envs = gym.make_vec("DataValuation-Adult-v0", num_envs=2, vectorization_mode="async",
                            **options)
        envs.reset(seed=0)
        _, rewards, *_ = envs.step(envs.action_space.sample())
        envs.close()
        print("stepped", len(rewards))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert result.returncode == 0, result.stderr
    assert "stepped 2" in result.stdout


def test_threads_are_set_recorded_and_reused(tmp_path):
    out = tmp_path / "run"
    try:
        assert cli.main(["value", "--agent", "random", "--steps", "1", "--threads", "2",
                         "--out", str(out), "--quiet", *TINY_ENV]) == 0
        assert json.loads((out / "run.json").read_text())["threads"] == 2
        torch.set_num_threads(1)
        assert cli.main(["value", "--resume", str(out), "--steps", "2", "--quiet"]) == 0
        assert torch.get_num_threads() == 2  # the run's count, not this process's
    finally:
        torch.set_num_threads(1)

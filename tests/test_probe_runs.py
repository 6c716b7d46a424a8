"""Issue 24's probe of run directories, checkpoints and signals, one test per case:
--overwrite removes only a run's own files and only once the new run is done, an --out
holding an input is refused, a run directory is locked, a partial run says so, a
checkpoint neither chooses where files go nor passes a damaged field, options out of range
and damaged files are one-line errors, and SIGTERM at any moment leaves a resumable run
or a clean exit."""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import agents
import dvrl_env.atomic
from dvrl_env.app import cli
from dvrl_env.app.runs import RunDir
from tests.test_cli import TINY_ENV, read_values
from tests.test_reliability import TINY, crafted_torch_file
from tests.test_tabular import people, write_csv

BASE = ["value", "--agent", "reinforce", "--noise-rate", "0.2", "--agent-arg", "log_every=1",
        "--quiet", *TINY_ENV]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("dvrl: error: ") and len(err.strip().splitlines()) == 1, err
    return err


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished 3-update run (copy it before changing it)."""
    out = tmp_path_factory.mktemp("probe") / "run"
    assert cli.main([*BASE, "--steps", "3", "--out", str(out)]) == 0
    return out


def copy_run(run: Path, to: Path) -> Path:
    subprocess.run(["cp", "-a", str(run), str(to)], check=True)
    return to


def signal_at(monkeypatch, step: int, signum: int = signal.SIGTERM) -> None:
    """SIGTERM to this process right after update ``step``, as a user's kill would."""
    real = cli.Checkpointer.on_step

    def call(self, agent, at, logs):
        if at == step:
            signal.raise_signal(signum)
        return real(self, agent, at, logs)

    monkeypatch.setattr(cli.Checkpointer, "on_step", call)


# ---- 1-3: --overwrite replaces a run's own files, once the new run is done ----------------

def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    out = tmp_path / "mine"
    (out / "log").mkdir(parents=True)
    (out / "log" / "train_2023.log").write_text("my log")
    (out / "discovery.png").write_bytes(b"my figure")
    assert cli.main([*BASE, "--steps", "1", "--out", str(out), "--overwrite"]) == 2
    assert "not a dvrl run" in one_line_error(capsys)
    assert (out / "log" / "train_2023.log").read_text() == "my log"
    assert (out / "discovery.png").read_bytes() == b"my figure"
    assert sorted(p.name for p in out.iterdir()) == ["discovery.png", "log"]  # no lock left


def test_overwrite_keeps_a_users_files_in_the_log_folder(finished, tmp_path):
    out = copy_run(finished, tmp_path / "run")
    (out / "log" / "train_2023.log").write_text("my log")
    assert cli.main([*BASE, "--steps", "2", "--out", str(out), "--overwrite"]) == 0
    assert (out / "log" / "train_2023.log").read_text() == "my log"
    assert [int(r["step"]) for r in read_values(out / "log" / "progress.csv")] == [1, 2]
    assert not list(out.glob(".replacing-*")) and not (out / RunDir.LOCK).exists()


@pytest.mark.parametrize("where", ["values.csv", "log/train.csv"])
def test_an_out_holding_an_input_is_refused(finished, tmp_path, capsys, where):
    out = copy_run(finished, tmp_path / "run")
    table = out / where
    write_csv(table, people(150))
    before = table.read_bytes()
    assert cli.main(["value", "--csv", str(table), "--label-column", "y", "--agent", "marginal",
                     "--steps", "1", "--out", str(out), "--overwrite", "--quiet"]) == 2
    assert "holds the input --csv" in one_line_error(capsys)
    assert table.read_bytes() == before and (out / "run.json").is_file()


def test_a_failed_overwrite_keeps_the_finished_run(finished, tmp_path, capsys):
    out = copy_run(finished, tmp_path / "run")
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert cli.main([*BASE, "--steps", "5", "--agent-arg", "learning_rate=1e30",
                     "--out", str(out), "--overwrite"]) == 2
    err = one_line_error(capsys)
    assert "diverged" in err and "learning_rate" in err and "earlier run" in err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert not list(out.glob(".replacing-*"))


def test_an_overwrite_stopped_by_sigterm_replaces_the_run_and_resumes(finished, tmp_path,
                                                                      monkeypatch, capsys):
    out = copy_run(finished, tmp_path / "run")
    signal_at(monkeypatch, 2)
    assert cli.main([*BASE, "--steps", "1000", "--seed", "5", "--out", str(out),
                     "--overwrite"]) == 128 + signal.SIGTERM
    assert f"resume with: dvrl value --resume {out}" in capsys.readouterr().err
    assert json.loads((out / "run.json").read_text())["seed"] == 5
    assert torch.load(out / RunDir.CHECKPOINT, weights_only=True)["steps_done"] == 2
    assert not (out / "metrics.json").exists()  # the old run's outputs went with it
    monkeypatch.undo()
    assert cli.main(["value", "--resume", str(out), "--steps", "3", "--quiet"]) == 0
    assert json.loads((out / "metrics.json").read_text())["steps_done"] == 3


def test_sigterm_while_the_new_run_moves_in_waits_for_the_move(finished, tmp_path,
                                                               monkeypatch, capsys):
    out = copy_run(finished, tmp_path / "run")
    real = RunDir.replace_with

    def replace_with(self, new):
        signal.raise_signal(signal.SIGTERM)  # held until every file has moved
        real(self, new)

    monkeypatch.setattr(RunDir, "replace_with", replace_with)
    assert cli.main([*BASE, "--steps", "2", "--seed", "5", "--out", str(out),
                     "--overwrite"]) == 128 + signal.SIGTERM
    assert "aborted (SIGTERM)" in capsys.readouterr().err
    assert json.loads((out / "run.json").read_text())["seed"] == 5
    assert json.loads((out / "metrics.json").read_text())["steps_done"] == 2
    assert [int(r["step"]) for r in read_values(out / "log" / "progress.csv")] == [1, 2]
    assert not list(out.glob(".replacing-*"))


# ---- 4: one command at a time in a run directory ------------------------------------------

@pytest.mark.parametrize("command", [
    ["value", "--resume", "RUN", "--steps", "4", "--quiet"],
    ["evaluate", "RUN", "--quiet"],
    [*BASE, "--steps", "1", "--out", "RUN", "--overwrite"],
])
def test_a_locked_run_directory_is_refused(finished, tmp_path, capsys, command):
    out = copy_run(finished, tmp_path / "run")
    before = (out / "run.json").read_bytes()
    with RunDir(out).lock():  # as another dvrl process would hold it
        assert cli.main([str(out) if a == "RUN" else a for a in command]) == 2
    assert f"is in use by process {os.getpid()}" in one_line_error(capsys)
    assert (out / "run.json").read_bytes() == before


# ---- 5: a stopped run's values are partial -----------------------------------------------

def test_evaluate_on_a_stopped_run_says_the_values_are_partial(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    signal_at(monkeypatch, 2)
    assert cli.main([*BASE, "--steps", "300", "--out", str(out)]) == 128 + signal.SIGTERM
    monkeypatch.undo()
    capsys.readouterr()
    assert cli.main(["evaluate", str(out), "--quiet"]) == 0
    assert "stopped after 2 of 300 updates: these values are partial" in capsys.readouterr().err
    assert "Updates: 2 of 300 (partial" in (out / "report.md").read_text()
    assert json.loads((out / "metrics.json").read_text())["steps_done"] == 2


# ---- 6: a checkpoint chooses no path, and its counts are checked --------------------------

def saved_agent(tmp_path: Path, log_dir: Path | None = None) -> Path:
    env = gym.make("DataValuation-Adult-v0", **TINY)
    agent = agents.make("random", env, log_every=1, log_dir=log_dir and str(log_dir))
    agent.learn(2, progress_bar=False).save(tmp_path / "a.ckpt")
    return tmp_path / "a.ckpt"


def test_a_checkpoint_does_not_choose_where_the_log_goes(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    path = saved_agent(tmp_path, elsewhere)
    rows = (elsewhere / "progress.csv").read_text()
    loaded = agents.load(path, gym.make("DataValuation-Adult-v0", **TINY))
    loaded.learn(2, progress_bar=False)
    assert loaded.config.log_dir is None
    assert (elsewhere / "progress.csv").read_text() == rows  # nothing written there


@pytest.mark.parametrize(("field", "value", "message"), [
    ("steps_done", -5, "steps_done is -5"),
    ("fits_used", -1, "fits_used is -1"),
    ("generator", torch.zeros(7, dtype=torch.uint8), "generator state"),
    ("metadata", "{not json", "metadata is not JSON"),
])
def test_a_checkpoint_with_a_damaged_field_is_refused(tmp_path, field, value, message):
    path = saved_agent(tmp_path)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint[field] = value
    torch.save(checkpoint, path)
    with pytest.raises(agents.CheckpointError, match=message):
        agents.load(path, gym.make("DataValuation-Adult-v0", **TINY))


def test_resume_with_checkpoint_metadata_that_is_not_json(finished, tmp_path, capsys):
    out = copy_run(finished, tmp_path / "run")
    checkpoint = torch.load(out / RunDir.CHECKPOINT, weights_only=True)
    checkpoint["metadata"] = "{not json"
    torch.save(checkpoint, out / RunDir.CHECKPOINT)
    assert cli.main(["value", "--resume", str(out), "--steps", "4", "--quiet"]) == 2
    assert "metadata is not JSON" in one_line_error(capsys)


# ---- 7-8: options out of range, --env with --csv ------------------------------------------

@pytest.mark.parametrize(("option", "message"), [
    ("hidden_layers=-2", "hidden_layers=-2 of agent 'reinforce': must be in [0, 100]"),
    ("hidden_dim=0", "hidden_dim=0 of agent 'reinforce': must be in [1, 4096]"),
    ("exploration_threshold=2", "exploration_threshold=2.0 of agent 'reinforce': must be in "
                                "[0.5, 1]"),
    ("comb_dim=1e9", "comb_dim=1000000000 of agent 'reinforce': must be in [1, 4096]"),
    ("learning_rate=0", "learning_rate=0.0 of agent 'reinforce': must be > 0"),
])
def test_agent_options_out_of_range_are_one_line(tmp_path, capsys, option, message):
    out = tmp_path / "run"
    assert cli.main([*BASE, "--steps", "1", "--agent-arg", option, "--out", str(out)]) == 2
    assert message in one_line_error(capsys)
    assert not out.exists()


def test_env_with_csv_is_refused(tmp_path, capsys):
    write_csv(tmp_path / "train.csv", people(150))
    assert cli.main(["value", "--env", "DataValuation-Digits-v0", "--csv",
                     str(tmp_path / "train.csv"), "--label-column", "y",
                     "--out", str(tmp_path / "out")]) == 2
    assert "--env and --csv both name the data" in one_line_error(capsys)


# ---- 9: faults that were tracebacks --------------------------------------------------------

def test_a_full_disk_at_the_first_checkpoint_is_one_line(tmp_path, capsys, monkeypatch):
    real = os.fdopen

    class Full(io.RawIOBase):
        """A file (buffered, as open's are) whose first write(2) fails with ENOSPC; space
        is free again when it is closed. Torch's writer turned that into a RuntimeError,
        "unexpected pos", and a traceback."""

        def __init__(self, fd: int):
            self.fd, self.full = fd, True

        def writable(self) -> bool:
            return True

        def write(self, data) -> int:
            if self.full:
                self.full = False
                raise OSError(errno.ENOSPC, "No space left on device")
            return os.write(self.fd, data)

        def close(self) -> None:
            if not self.closed:
                os.close(self.fd)
            super().close()

    def fdopen(fd, mode="r", *args, **kwargs):
        if mode == "wb":  # the checkpoint: the run's one binary write
            return io.BufferedWriter(Full(fd))
        return real(fd, mode, *args, **kwargs)

    monkeypatch.setattr(dvrl_env.atomic.os, "fdopen", fdopen)
    out = tmp_path / "run"
    assert cli.main([*BASE, "--steps", "3", "--checkpoint-every", "1", "--out", str(out)]) == 2
    assert "No space left on device" in one_line_error(capsys)
    assert not out.exists()  # nothing to resume: nothing left


@pytest.mark.parametrize(("key", "value", "command"), [
    ("threads", "abc", "resume"), ("env_args", "oops", "resume"),
    ("threads", "abc", "evaluate"), ("env_args", "oops", "evaluate"), ("steps", -1, "resume"),
])
def test_a_damaged_run_json_is_one_line(finished, tmp_path, capsys, key, value, command):
    out = copy_run(finished, tmp_path / "run")
    settings = json.loads((out / "run.json").read_text())
    settings[key] = value
    (out / "run.json").write_text(json.dumps(settings))
    argv = (["value", "--resume", str(out)] if command == "resume" else ["evaluate", str(out)])
    assert cli.main([*argv, "--quiet"]) == 2
    assert f"run.json is damaged: {key!r} is {value!r}" in one_line_error(capsys)


# ---- 10-11: signals, file modes, messages ---------------------------------------------------

SIGNAL_LOOP = textwrap.dedent("""
    import contextlib, io, json, os, signal, sys, threading
    import agents
    from dvrl_env.app import cli
    base, argv, delays = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
    # one agent unsignalled first: a process killed in set-up ends, but this one goes on, and
    # an import that SIGTERM cut short (torch imports lazily) would break the next runs
    settings = {"env": "DataValuation-Digits-v0", "env_args": {"n_train": 60, "n_valid": 200}}
    agents.make("reinforce", cli.build_env(settings), log_every=1).learn(1, progress_bar=False)
    outside = []  # SIGTERM outside cli.main: the harness's, noted (cli.main restores this)
    signal.signal(signal.SIGTERM, lambda signum, frame: outside.append(signum))
    parser = cli.build_parser
    def build_parser():  # the clock starts in cli.main, as the user's kill would find it
        timer.start()
        return parser()
    cli.build_parser = build_parser
    for i, delay in enumerate(delays):
        out = os.path.join(base, f"r{i}")
        timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGTERM))
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            try:  # every other run with its progress bar (tqdm) on
                shown = [a for a in argv if a != "--quiet"] if i % 2 else argv
                code = cli.main([*shown, "--out", out])
            except BaseException as exc:
                code = repr(exc)
            timer.join()
        print(json.dumps({"out": out, "delay": delay, "code": code, "err": err.getvalue(),
                          "outside": len(outside)}), flush=True)
""")


def test_sigterm_at_any_moment_leaves_a_resumable_run_or_nothing(tmp_path):
    """SIGTERM at many points of a run, set-up, learning and the first save included: each
    run ends with exit 143 and a message, and either holds a checkpoint and values that
    resume, or was removed whole. A moment when SIGTERM kills outright ends the loop."""
    delays = [0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.13, 0.17, 0.25, 0.4]
    argv = [*BASE, "--checkpoint-every", "1", "--steps", "100000"]
    result = subprocess.run([sys.executable, "-c", SIGNAL_LOOP, str(tmp_path), json.dumps(argv),
                             json.dumps(delays)], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(Path(cli.__file__).parents[2])})
    assert result.returncode == 0, result.stderr[-2000:]  # -15: SIGTERM had its default action
    runs = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(runs) == len(delays)
    stopped = []
    for run in runs:
        out = Path(run["out"])
        assert run["code"] == 128 + signal.SIGTERM and run["outside"] == 0, run
        assert "SIGTERM: stopped after" in run["err"] or "aborted (SIGTERM)" in run["err"], run
        assert "Traceback" not in run["err"]
        if "stopped after" in run["err"]:
            assert (out / RunDir.CHECKPOINT).is_file() and (out / "values.csv").is_file(), run
            stopped.append(out)
        else:  # aborted in set-up: no trace, or a run that restarts from its checkpoint
            assert not out.exists() or (out / "run.json").is_file(), run
        assert not out.exists() or not (out / RunDir.LOCK).exists()
    assert stopped, [r["err"] for r in runs]  # the loop reached learning
    done = torch.load(stopped[-1] / RunDir.CHECKPOINT, weights_only=True)["steps_done"]
    assert cli.main(["value", "--resume", str(stopped[-1]), "--steps", str(done + 1),
                     "--quiet"]) == 0


def test_sigterm_during_set_up_exits_143(tmp_path, monkeypatch, capsys):
    real = cli.build_env

    def build_env(settings):
        signal.raise_signal(signal.SIGTERM)
        return real(settings)

    monkeypatch.setattr(cli, "build_env", build_env)
    out = tmp_path / "run"
    assert cli.main([*BASE, "--steps", "2", "--out", str(out)]) == 128 + signal.SIGTERM
    assert "aborted (SIGTERM)" in capsys.readouterr().err
    assert not out.exists()


def test_outputs_follow_the_umask(finished):
    mask = os.umask(0o022)
    os.umask(mask)
    for name in ("values.csv", "run.json", RunDir.CHECKPOINT, "metrics.json"):
        assert (finished / name).stat().st_mode & 0o777 == 0o666 & ~mask, name


def test_the_checkpoint_refusal_never_advises_weights_only_false(tmp_path):
    path = crafted_torch_file(tmp_path / "agent.ckpt", tmp_path / "ran")
    with pytest.raises(agents.CheckpointError) as caught:
        agents.load(path, gym.make("DataValuation-Adult-v0", **TINY))
    assert "weights_only" not in str(caught.value) and "posix" in str(caught.value)


def test_an_os_error_names_the_fix_for_its_command(tmp_path, capsys):
    assert cli.main(["bench", str(tmp_path), "--out", str(tmp_path / "b")]) == 2
    err = one_line_error(capsys)  # a directory given as the spec: no disk to free
    assert "Free space" not in err and str(tmp_path) in err
    full = OSError(errno.ENOSPC, "No space left on device", "metrics.json")
    assert "Free space or choose another --out" in cli.os_error_message(full, cli.cmd_value)
    missing = OSError(errno.EISDIR, "Is a directory", "spec.toml")
    assert "Check the spec path" in cli.os_error_message(missing, cli.cmd_bench)


# ---- 12: a user's agent is saved with its weights -----------------------------------------

class LinearValues(agents.Agent):
    """A user's agent: a linear score trained by SGD, no _state_dict of its own."""

    name = "linear-values"

    def __init__(self, env, *, seed: int = 0, **config):
        super().__init__(env, seed=seed, **config)
        features = self.unwrapped.observation_space["x"].shape[-1]
        self.net = self.seeded_module(lambda: torch.nn.Linear(features, 1))
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=0.1)
        self.noise = torch.Generator().manual_seed(seed + 1)

    def _scores(self, observations) -> torch.Tensor:
        return self.net(torch.as_tensor(observations["x"], dtype=torch.float32)).squeeze(-1)

    def _update(self) -> dict:
        observations = self.unwrapped.all_observations()
        target = torch.rand(len(observations["x"]), generator=self.noise)
        loss = ((self._scores(observations) - target) ** 2).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"loss": float(loss.detach())}

    @torch.no_grad()
    def _values_from(self, observations) -> np.ndarray:
        return self._scores(observations).numpy()


def test_a_user_agent_without_state_dict_is_saved_with_its_weights(tmp_path, monkeypatch):
    monkeypatch.setitem(agents._REGISTRY, "linear-values", LinearValues)
    env = gym.make("DataValuation-Adult-v0", **TINY)
    agent = agents.make("linear-values", env).learn(3, progress_bar=False)
    agent.save(tmp_path / "a.ckpt")
    whole = agents.make("linear-values", gym.make("DataValuation-Adult-v0", **TINY))
    whole.learn(5, progress_bar=False)
    loaded = agents.load(tmp_path / "a.ckpt", gym.make("DataValuation-Adult-v0", **TINY))
    np.testing.assert_array_equal(loaded.data_values(), agent.data_values())
    loaded.learn(2, progress_bar=False)  # optimizer and generator restored too
    np.testing.assert_array_equal(loaded.data_values(), whole.data_values())


def test_a_user_agent_hiding_a_network_in_a_list_is_refused(tmp_path, monkeypatch):
    class Hidden(LinearValues):
        def __init__(self, env, **kwargs):
            super().__init__(env, **kwargs)
            self.heads = [torch.nn.Linear(2, 2)]

    monkeypatch.setitem(agents._REGISTRY, "hidden", Hidden)
    agent = agents.make("hidden", gym.make("DataValuation-Adult-v0", **TINY))
    with pytest.raises(TypeError, match=r"\['heads'\].*override _state_dict"):
        agent.save(tmp_path / "a.ckpt")
    assert not (tmp_path / "a.ckpt").exists()

"""``dvrl`` end to end: through the console script, on tiny configurations."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dvrl_env.app import cli
from dvrl_env.app.runs import RunDir
from tests.test_tabular import people, write_csv

DVRL = Path(sys.executable).parent / "dvrl"
TINY_ENV = ["--env-arg", "n_train=60", "--env-arg", "n_valid=200", "--env-arg", "n_test=100",
            "--env-arg", "batch_size=20", "--env-arg", "predictor_epochs=1"]
OUTPUTS = ["values.csv", "metrics.json", "report.md", "run.json", RunDir.CHECKPOINT,
           "log/progress.csv", "discovery.png", "remove_high_low.png", "robust_learning.png",
           "value_histogram.png", "value_trajectory.png"]


def dvrl_command() -> list[str]:
    """The installed ``dvrl`` script when it is this tree's entry point; one installed
    from another layout (its import names a module this tree moved) would fail or run other code,
    so then ``python -m dvrl_env``, which imports the tree under test."""
    if DVRL.exists() and f"from {cli.__name__} import main" in DVRL.read_text():
        return [str(DVRL)]
    return [sys.executable, "-m", "dvrl_env"]


def dvrl(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*dvrl_command(), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def read_values(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "digits"
    result = dvrl("value", "--env", "DataValuation-Digits-v0", "--noise-rate", "0.2",
                  "--agent", "reinforce", "--agent-arg", "num_samples=2",
                  "--agent-arg", "log_every=1", "--steps", "3", "--seed", "1",
                  "--out", str(out), *TINY_ENV)
    assert result.returncode == 0, result.stderr
    assert "AUROC" in result.stdout
    return out


def test_value_writes_every_output(finished_run):
    for name in OUTPUTS:
        path = finished_run / name
        assert path.is_file() and path.stat().st_size > 0, name
    rows = read_values(finished_run / "values.csv")
    assert len(rows) == 60 and set(rows[0]) == {"index", "label", "value", "corrupted"}
    assert sum(r["corrupted"] == "1" for r in rows) == 12
    metrics = json.loads((finished_run / "metrics.json").read_text())
    assert 0 <= metrics["detection"]["auroc"] <= 1
    assert metrics["steps_done"] == 3
    for png in finished_run.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (finished_run / "report.md").read_text()
    assert "discovery.png" in report and "DataValuation-Digits-v0" in report
    assert not list(finished_run.glob(".*"))  # no temporary files left behind


def test_evaluate_reproduces_metrics(finished_run):
    before = json.loads((finished_run / "metrics.json").read_text())
    (finished_run / "metrics.json").unlink()
    result = dvrl("evaluate", str(finished_run), "--quiet")
    assert result.returncode == 0, result.stderr
    after = json.loads((finished_run / "metrics.json").read_text())
    for key in ("detection", "discovery", "robust_learning", "remove_high_low"):
        assert after[key] == before[key], key


def test_csv_run_without_known_noise(tmp_path):
    train = write_csv(tmp_path / "train.csv", people(120))
    out = tmp_path / "mine"
    result = dvrl("value", "--csv", str(train), "--label-column", "y", "--agent", "marginal",
                  "--steps", "1", "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    rows = read_values(out / "values.csv")
    assert set(rows[0]) == {"index", "csv_line", "label", "value"}  # no mask: no corrupted
    assert {r["label"] for r in rows} <= {"no", "yes"}
    assert len(rows) == 120  # no clean set: every row valued, cross-fitted
    assert (out / "value_histogram.png").is_file() and (out / "label_issues.csv").is_file()
    assert not (out / "discovery.png").exists()
    assert not (out / "remove_high_low.png").exists()  # no test rows: no accuracy to show
    report = (out / "report.md").read_text()
    assert "No clean validation set" in report and "held out" not in report


def test_csv_run_with_the_given_validation_holds_rows_out(tmp_path):
    train = write_csv(tmp_path / "train.csv", people(120))
    out = tmp_path / "mine"
    result = dvrl("value", "--csv", str(train), "--label-column", "y", "--agent", "marginal",
                  "--env-arg", "validation=given", "--steps", "1", "--out", str(out),
                  "--quiet")
    assert result.returncode == 0, result.stderr
    assert len(read_values(out / "values.csv")) == 72  # 20% for validation, 20% for test
    assert (out / "remove_high_low.png").is_file()
    report = (out / "report.md").read_text()
    assert "held out" in report and "taken as clean" in report
    assert "which may be noisy too" in report  # test labels from the same unchecked file


@pytest.mark.parametrize(
    "args, message",
    [
        (["--csv", "{tmp}/missing.csv", "--label-column", "y"], "does not exist"),
        (["--csv", "{tmp}/train.csv", "--label-column", "label"], "Label column 'label'"),
        (["--csv", "{tmp}/one_class.csv", "--label-column", "y"], "single class"),
        (["--csv", "{tmp}/garbage.csv", "--label-column", "y"], "line 41, column 'age': the "
         "value 'abc'.*--missing-value abc"),
        (["--csv", "{tmp}/twice.csv", "--label-column", "y"], "column name 'age' appears twice"),
        (["--csv", "{tmp}/train.csv", "--label-column", "y", "--valid-csv", "{tmp}/one_class.csv"],
         "validation set holds a single class"),
        (["--env", "DataValuation-MNIST-v0"], r"Unknown env .*DataValuation-Adult-v0"),
        (["--agent", "dqn"], r"Unknown agent 'dqn'; choose one of .*reinforce"),
        (["--env-arg", "bach_size=3"], r"Unknown option\(s\) \['bach_size'\].*batch_size"),
        (["--agent-arg", "num_sample=3"], r"Unknown option\(s\) \['num_sample'\]"),
        (["--env-arg", "batch_size"], "expects key=value"),
        (["--agent-arg", "num_samples=2.7"],
         r"num_samples=2.7 of agent 'reinforce': expected an integer, got float 2.7"),
        (["--agent-arg", "num_samples=abc"], r"num_samples='abc' .*expected an integer"),
        (["--env-arg", "episode_length=abc"], r"episode_length='abc' .*an integer or null"),
        (["--env-arg", "metric=3"], r"metric=3 .*expected a string"),
        (["--steps", "-1"], "--steps must be >= 0"),
    ],
)
def test_bad_input_gives_a_message_and_exit_2(tmp_path, capsys, args, message):
    write_csv(tmp_path / "train.csv", people(40))
    write_csv(tmp_path / "one_class.csv", [(20 + i, "oslo", "yes") for i in range(40)])
    write_csv(tmp_path / "garbage.csv", [*people(39), ("abc", "oslo", "no")])
    write_csv(tmp_path / "twice.csv", people(40), header=("age", "age", "y"))
    args = [a.format(tmp=tmp_path) for a in args]
    env = [] if "--csv" in args else TINY_ENV
    code = cli.main(["value", "--out", str(tmp_path / "out"), "--steps", "1", *env, *args])
    err = capsys.readouterr().err
    assert code == 2 and "dvrl: error:" in err
    assert re.search(message, err), err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()  # a failed run leaves nothing behind


def test_non_empty_out_is_refused_unless_overwrite(finished_run, tmp_path):
    result = dvrl("value", "--out", str(finished_run), "--steps", "1", *TINY_ENV)
    assert result.returncode == 2
    assert "not empty (it holds another run)" in result.stderr and "--overwrite" in result.stderr
    assert "Traceback" not in result.stderr


def test_overwrite_replaces_the_earlier_runs_outputs(tmp_path, capsys):
    out = tmp_path / "run"
    base = ["value", "--noise-rate", "0.2", "--agent-arg", "log_every=1", "--out", str(out),
            "--quiet", *TINY_ENV]
    assert cli.main([*base, "--agent", "reinforce", "--steps", "3"]) == 0
    (out / "mine.txt").write_text("not a run output")
    assert cli.main([*base, "--agent", "random", "--steps", "2", "--overwrite"]) == 0
    log_rows = read_values(out / "log" / "progress.csv")
    assert [int(r["step"]) for r in log_rows] == [1, 2]  # no rows left from the first run
    assert json.loads((out / "run.json").read_text())["agent"] == "random"
    assert (out / "mine.txt").read_text() == "not a run output"  # not ours: kept


def start_run(out: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*dvrl_command(), "value", "--agent-arg", "log_every=1", "--out", str(out),
         "--noise-rate", "0.2", "--quiet", *TINY_ENV, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_log(out: Path, rows: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    log = out / "log" / "progress.csv"
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) > rows:
            return
        time.sleep(0.1)
    raise AssertionError(f"the run did not log {rows} updates in time")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_run_saves_and_resumes(tmp_path, sig, code):
    out = tmp_path / "run"
    proc = start_run(out, "--agent", "reinforce", "--steps", "100000")
    wait_for_log(out, 2, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "resume with: dvrl value --resume" in err and "Traceback" not in err
    interrupted_at = int(re.search(r"stopped after (\d+) of 100000 updates", err).group(1))
    assert len(read_values(out / "values.csv")) == 60 and (out / RunDir.CHECKPOINT).is_file()
    target = interrupted_at + 3
    result = dvrl("value", "--resume", str(out), "--steps", str(target), "--quiet")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps_done"] == target
    steps = [int(r["step"]) for r in read_values(out / "log" / "progress.csv")]
    assert steps == list(range(1, target + 1))  # one series, no update logged twice
    assert np.isfinite([float(r["value"]) for r in read_values(out / "values.csv")]).all()


def test_values_without_a_positive_entry_skip_robust_learning_with_a_reason(tmp_path):
    out = tmp_path / "run"
    assert cli.main(["value", "--agent", "credit", "--steps", "0", "--noise-rate", "0.2",
                     "--env-arg", "marginal_information=false", "--out", str(out), "--quiet",
                     *TINY_ENV]) == 0  # no credit yet: every value is 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["robust_learning"]["weighted"] is None
    assert "Robust learning was skipped: no value is positive" in (out / "report.md").read_text()
    assert not (out / "robust_learning.png").exists()


EXPERIMENTS = ("remove_high_low", "robust_learning", "detection_scores", "discovery_curve",
               "value_gap", "value_histogram", "value_trajectory")


def test_each_experiment_runs_once_for_metrics_and_figures(tmp_path, monkeypatch):
    """metrics.json and the figures come from one set of results: no model fitted twice."""
    from dvrl_env import evaluation

    calls: dict[str, int] = {}

    def counted(name):
        real = getattr(evaluation, name)

        def wrapper(*args, **kwargs):
            calls[name] = calls.get(name, 0) + 1
            return real(*args, **kwargs)
        return wrapper

    for name in EXPERIMENTS:
        monkeypatch.setattr(evaluation, name, counted(name))
    out = tmp_path / "run"
    assert cli.main(["value", "--agent", "random", "--steps", "1", "--noise-rate", "0.2",
                     "--agent-arg", "log_every=1", "--out", str(out), "--quiet",
                     *TINY_ENV]) == 0
    assert calls == dict.fromkeys(EXPERIMENTS, 1)
    assert (out / "robust_learning.png").is_file() and (out / "value_trajectory.png").is_file()
    calls.clear()
    assert cli.main(["evaluate", str(out), "--quiet"]) == 0
    assert calls == dict.fromkeys(EXPERIMENTS, 1)


@pytest.mark.parametrize("command, hint", [
    (["bench", "benchmarks/specs/leaderboard.toml", "--out", "OUT"],
     "dvrl bench SPEC --out DIR --resume"),
    (["value", "--env", "DataValuation-Digits-v0", "--out", "OUT"], "dvrl value --resume DIR"),
])
def test_ctrl_c_names_the_command_that_resumes(tmp_path, capsys, monkeypatch, command, hint):
    def interrupted(args):
        raise KeyboardInterrupt

    for name in ("cmd_bench", "cmd_value"):  # two distinct functions, as in the CLI
        monkeypatch.setattr(cli, name, lambda args: interrupted(args))
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in command]
    assert cli.main(argv) == 128 + signal.SIGINT
    assert hint in capsys.readouterr().err

"""``dvrl bench`` as a user comparing algorithms wants it: each row names the code that
produced it and a resume refuses rows of other code; the figure's mean and interval
over seeds; the clean - corrupted gap on one scale; a warning under 3 seeds."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

from dvrl_env.app import cli
from dvrl_env.app.bench import code, run_bench
from dvrl_env.app.bench.harness import BOARD, FIGURE, TABLE, BenchError
from dvrl_env.app.bench.leaderboard import curve_series, leaderboard, plot_curves
from dvrl_env.app.bench.run_cell import score
from dvrl_env.app.bench.stats import mean_ci
from dvrl_env.app.bench.store import COLUMNS, read_table

PLUGIN = """
import agents
from agents.baselines import RandomValues

OFFSET = {offset}

def make_mine(env, *, seed=0, **config):
    return RandomValues(env, seed=seed + OFFSET, **config)

agents.register("{name}", make_mine)
"""
TINY = ('{ predictor = "logistic", n_train = 60, n_valid = 40, n_test = 40, batch_size = 20, '
        'predictor_epochs = 1 }')
SPEC = """
name = "code"
seeds = [0, 1, 2]
imports = ["{module}"]

[budget]
fits = 4

[[tasks]]
name = "digits"
env = "DataValuation-Digits-v0"
options = {options}

[[agents]]
name = "{name}"
updates = 1
"""


def quiet(message: str) -> None:
    pass


@pytest.fixture
def plugged(tmp_path, monkeypatch):
    """A plugin module in tmp_path (a unique name per test: modules stay imported) and
    a spec that imports it: (spec path, plugin path, module name)."""
    module = f"code_plugin_{tmp_path.name.replace('-', '_')}"
    plugin = tmp_path / f"{module}.py"
    plugin.write_text(textwrap.dedent(PLUGIN.format(offset=1000, name=module)))
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(module=module, name=module, options=TINY))
    return spec, plugin, module


def test_each_row_records_the_code_that_produced_it(plugged, tmp_path):
    spec, plugin, module = plugged
    rows = run_bench(spec, tmp_path / "out", in_process=True, log=quiet)
    assert len(rows) == 3 and all(r["error"] == "" for r in rows)
    recorded = json.loads(read_table(tmp_path / "out" / TABLE)[0]["code"])
    assert set(recorded) == {"version", "commit", "dirty", "code_sha256", "plugins",
                             "libraries"}
    assert recorded["plugins"] == {module: code.source_sha256(plugin)}
    assert len(recorded["code_sha256"]) == 64
    assert set(recorded["libraries"]) == {"torch", "numpy", "gymnasium",
                                          "stable_baselines3", "python"}
    assert recorded["libraries"]["numpy"] == np.__version__
    assert recorded["commit"] == "unknown" or len(recorded["commit"]) == 40
    assert recorded == code.code_identity([module])  # the working tree's, unchanged


def test_a_resume_refuses_rows_of_an_edited_plugin_until_told(plugged, tmp_path, capsys):
    spec, plugin, module = plugged
    out = tmp_path / "out"
    run_bench(spec, out, in_process=True, log=quiet)
    before = read_table(out / TABLE)
    plugin.write_text(plugin.read_text().replace("OFFSET = 1000", "OFFSET = 2000"))
    with pytest.raises(BenchError) as err:
        run_bench(spec, out, in_process=True, resume=True, log=quiet)
    message = str(err.value)
    assert f"3 of the 3 finished cells in {out / TABLE} are stale" in message
    assert f"plugin {module}" in message and "--rerun-stale" in message
    assert "--allow-stale" in message and "\n" not in message
    assert read_table(out / TABLE) == before  # nothing touched
    # the CLI: one line, status 2
    assert cli.main(["bench", str(spec), "--out", str(out), "--resume"]) == 2
    assert capsys.readouterr().err.strip().startswith("dvrl: error: 3 of the 3 finished")
    # --allow-stale: the old rows kept, nothing run, said so
    lines: list[str] = []
    run_bench(spec, out, in_process=True, resume=True, allow_stale=True, log=lines.append)
    assert "running 0" in lines[1] and lines[0].startswith("warning: keeping 3 stale row(s)")
    assert read_table(out / TABLE) == before
    # --rerun-stale: every cell runs again and names the new plugin source
    lines.clear()
    run_bench(spec, out, in_process=True, resume=True, rerun_stale=True, log=lines.append)
    assert "running 3" in lines[0]
    new = code.source_sha256(plugin)
    after = read_table(out / TABLE)
    assert [json.loads(r["code"])["plugins"][module] for r in after] == [new] * 3
    # the edited plugin ran (reloaded in this process): other random values
    assert [r["auroc"] for r in after] != [r["auroc"] for r in before]
    lines.clear()
    run_bench(spec, out, in_process=True, resume=True, log=lines.append)  # current: no error
    assert "running 0" in lines[0]
    with pytest.raises(BenchError, match="give one of them"):
        run_bench(spec, out, resume=True, allow_stale=True, rerun_stale=True, log=quiet)


def test_a_table_from_before_rows_named_their_code_is_stale_on_resume(plugged, tmp_path):
    spec, _, _ = plugged
    out = tmp_path / "out"
    run_bench(spec, out, in_process=True, log=quiet)
    old = COLUMNS[:COLUMNS.index("extra") + 1]  # the header before code and gap_sd
    with open(out / TABLE, newline="") as f:
        rows = list(csv.DictReader(f))
    with open(out / TABLE, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=old, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    assert [r["code"] for r in read_table(out / TABLE)] == ["", "", ""]  # still readable
    with pytest.raises(BenchError, match="3 of the 3 finished cells .* are stale .*no code "
                                         "recorded"):
        run_bench(spec, out, in_process=True, resume=True, log=quiet)


def test_what_changed_is_named_and_the_commit_is_not_compared():
    current = {"code_sha256": "a" * 64, "plugins": {"p": "1"}, "commit": "c1"}
    assert code.same_code({**current, "commit": "c2"}, current) == []
    assert code.same_code({**current, "code_sha256": "b" * 64}, current) == [
        "the number-deciding modules (" + ", ".join(code.NUMBER_DECIDING) + ")"]
    assert code.same_code({**current, "plugins": {}}, current) == ["plugin p"]
    assert code.same_code(None, current)[0].startswith("no code recorded")


def test_the_code_hash_follows_the_number_deciding_files(tmp_path, monkeypatch):
    (tmp_path / "agents").mkdir()
    module = tmp_path / "agents" / "a.py"
    module.write_text("x = 1\n")
    monkeypatch.setattr(code, "ROOT", tmp_path)  # not a git checkout
    first = code.code_identity()
    assert (first["commit"], first["dirty"]) == ("unknown", None)
    module.write_text("x = 2\n")
    assert code.code_identity()["code_sha256"] != first["code_sha256"]
    monkeypatch.setenv("PATH", str(tmp_path))  # no git at all: still no crash
    monkeypatch.setattr(code, "ROOT", Path(code.__file__).resolve().parents[3])
    assert code.code_identity()["commit"] == "unknown"
    assert code.plugin_sha256("no_such_module_anywhere") == "unknown"


MODULE = '''"""A number-deciding module."""

RATE = 0.5  # the step size


def step(x):
    """One step."""
    return x * RATE
'''


def test_the_code_hash_ignores_docstrings_and_comments_but_not_code_or_names(tmp_path,
                                                                          monkeypatch):
    (tmp_path / "agents").mkdir()
    module = tmp_path / "agents" / "a.py"
    module.write_text(MODULE)
    monkeypatch.setattr(code, "ROOT", tmp_path)
    first = code.code_identity()["code_sha256"]
    assert code.code_identity(root=tmp_path)["code_sha256"] == first
    module.write_text(MODULE.replace('"""One step."""', '"""One step,\n    in two lines."""')
                      .replace("A number-deciding module.", "Another sentence.") + "\n\n")
    assert code.code_identity()["code_sha256"] == first  # docstrings and blank lines
    module.write_text(MODULE.replace("# the step size", "# a better comment   ")
                      .replace("return x * RATE", "return x * RATE  # scaled"))
    assert code.code_identity()["code_sha256"] == first  # comments, trailing spaces
    module.write_text(MODULE.replace("RATE = 0.5", "RATE = 0.25"))
    assert code.code_identity()["code_sha256"] != first  # a changed constant
    module.write_text(MODULE)
    assert code.code_identity()["code_sha256"] == first
    module.rename(tmp_path / "agents" / "b.py")
    assert code.code_identity()["code_sha256"] != first  # a renamed file
    # a string that is not a docstring, and a '#' inside a string, are code
    assert code.normalised_source(b'X = "#1"\n"""note"""\n') == b'X = "#1"\n"""note"""'
    broken = b"def broken(:  # not Python\n"
    assert code.normalised_source(broken) == broken  # no parse: the raw bytes


def test_a_plugin_hash_ignores_its_docstrings_and_comments(tmp_path, monkeypatch):
    name = f"norm_plugin_{tmp_path.name.replace('-', '_')}"
    plugin = tmp_path / f"{name}.py"
    plugin.write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    first = code.plugin_sha256(name)
    assert first == code.source_sha256(plugin) != hashlib.sha256(plugin.read_bytes()).hexdigest()
    plugin.write_text("# a new header comment\n" + MODULE.replace("One step.", "A step."))
    assert code.plugin_sha256(name) == first
    plugin.write_text(MODULE.replace("x * RATE", "x / RATE"))
    assert code.plugin_sha256(name) != first


def test_code_line_is_the_identity_a_results_file_starts_with():
    line = code.code_line()
    assert line.startswith("# code: {") and "\n" not in line
    assert code.from_json(line.removeprefix("# code: ")) == code.code_identity()


# ---- the figure's data ----------------------------------------------------------------
def _row(agent: str, seed: int, auroc: float, fits: int, curve: list | None) -> dict:
    return {"task": "t", "agent": agent, "seed": str(seed), "auroc": str(auroc),
            "fits": str(fits), "error": "", "curve": json.dumps(curve) if curve else ""}


def test_the_figure_shows_the_mean_and_interval_over_seeds_and_reference_lines(tmp_path):
    curves = [[(0, 0.5), (2, 0.6), (4, 0.7)], [(0, 0.5), (2, 0.7), (4, 0.9)],
              [(0, 0.5), (4, 0.8)]]  # the third seed has no point at 2: interpolated, 0.65
    rows = [_row("learner", s, c[-1][1], 4, [{"fits": x, "auroc": y} for x, y in c])
            for s, c in enumerate(curves)]
    rows += [_row("marginal", s, a, 0, None) for s, a in enumerate((0.61, 0.63, 0.65))]
    rows += [_row("cleanlab", 0, 0.9, 0, None)]
    (learners, references), = curve_series(rows).values()
    c = learners["learner"]
    assert list(c.fits) == [0, 2, 4] and list(c.n) == [3, 3, 3]
    for i, values in enumerate(([0.5] * 3, [0.6, 0.7, 0.65], [0.7, 0.9, 0.8])):
        mean, half, _ = mean_ci(values)
        assert c.mean[i] == pytest.approx(mean)
        assert (math.isnan(half) and math.isnan(c.half[i])) or c.half[i] == pytest.approx(half)
    assert c.half[2] > 0 and c.half[0] == 0  # one band per agent, not a line per seed
    assert set(references) == {"marginal", "cleanlab"}  # agents that fit nothing
    assert references["marginal"].mean == pytest.approx(0.63)
    assert references["marginal"].n == 3 and references["marginal"].fits == 0
    assert plot_curves(rows, tmp_path / FIGURE).stat().st_size > 0
    assert curve_series(rows[3:]) == {}  # no learning curve: no figure


# ---- the gap on one scale, the seeds warning ------------------------------------------
def test_the_gap_is_in_standard_deviations_so_scales_compare():
    mask = np.array([False, False, False, True, True])
    dataset = types.SimpleNamespace(noisy_mask=mask)
    values = np.array([1.0, 0.8, 0.9, 0.2, 0.1])
    small, large = score(dataset, values, ("gap",), {}), score(dataset, 40 * values + 3,
                                                              ("gap",), {})
    assert large["gap"] == pytest.approx(40 * small["gap"])  # the raw gap: the scale's
    assert small["gap_sd"] == pytest.approx(small["gap"] / values.std(), abs=1e-6)
    assert large["gap_sd"] == pytest.approx(small["gap_sd"], abs=1e-5)
    board = leaderboard([{**_row("a", s, 0.7, 0, None), "gap_sd": "1.5", "gap": "40",
                          "env": "E", "env_options": "", "noise_rate": "0.2",
                          "budget_fits": "", "updates": "0", "f1": "", "remove_high": "",
                          "remove_low": "", "robust_acc": "", "seconds": "1"}
                         for s in range(3)], "T")
    assert "clean - corrupted (SD)" in board and "| +1.500 ± 0.000 |" in board
    assert "standard deviation of the run's values" in board


def test_fewer_than_three_seeds_warn_in_the_output_and_the_leaderboard(plugged, tmp_path):
    spec, _, _ = plugged
    spec.write_text(spec.read_text().replace("seeds = [0, 1, 2]", "seeds = [0, 1]"))
    lines: list[str] = []
    run_bench(spec, tmp_path / "out", in_process=True, log=lines.append)
    assert lines[1].startswith("warning: only 2 seed(s): the 95% intervals over seeds are "
                               "meaningless")
    board = (tmp_path / "out" / BOARD).read_text()
    assert board.splitlines()[2].startswith("**Warning:** only 2 seed(s)")
    three = tmp_path / "three"
    spec.write_text(spec.read_text().replace("seeds = [0, 1]", "seeds = [0, 1, 2]"))
    lines.clear()
    run_bench(spec, three, in_process=True, log=lines.append)
    assert not any("warning" in line for line in lines)
    assert "Warning" not in (three / BOARD).read_text()

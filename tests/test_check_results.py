"""The check CI runs before trusting the docs: every results path the README and docs cite
must have been produced by the working tree's number-deciding code. On a toy repository
(a tmp folder with its own ``agents/`` module, plugin, README, docs and results), so a
module edit here changes the toy's hash and nothing of the project's."""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from dvrl_env.app.bench import code
from dvrl_env.app.bench.check import check, verdicts
from dvrl_env.app.bench.store import COLUMNS

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "check_results.py"
MODULE = '''"""A number-deciding module."""

RATE = 0.5  # the step size


def step(x):
    """One step."""
    return x * RATE
'''
PLUGIN = '''"""A method a spec imports."""

OFFSET = 1000
'''
README = """# Toy

Results are kept in `benchmarks/results/`; the table
(`benchmarks/results/toy/leaderboard.md`, from `benchmarks/results/toy/`), the speed
(benchmarks/results/speed.txt) and its figure benchmarks/results/speed.png.
Older ones: `benchmarks/results/*.md`.
"""


def _write_rows(folder: Path, codes: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for seed, identity in enumerate(codes):
            writer.writerow({**dict.fromkeys(COLUMNS, ""), "key": f"cell{seed}", "task": "t",
                             "agent": "a", "seed": str(seed), "auroc": "0.9", "code": identity})
    (folder / "leaderboard.md").write_text("| agent | AUROC |\n")
    (folder / "spec.toml").write_text(f'name = "toy"\nimports = ["{_plugin_name(folder)}"]\n')


def _plugin_name(folder: Path) -> str:
    return "toy_plugin_" + folder.parents[2].name.replace("-", "_")


@pytest.fixture
def toy(tmp_path, monkeypatch) -> Path:
    """A repository root whose cited results were all written by its current code: a
    bench directory of two rows that imported a plugin of the root, a speed text file
    starting with its code line and a figure beside it."""
    monkeypatch.setattr(code, "ROOT", tmp_path)  # code_line() names the toy's code
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "a.py").write_text(MODULE)
    results = tmp_path / "benchmarks" / "results"
    plugin = _plugin_name(results / "toy")
    (tmp_path / f"{plugin}.py").write_text(PLUGIN)
    identity = code.to_json(code.code_identity([plugin], root=tmp_path))
    _write_rows(results / "toy", [identity, identity])
    (results / "speed.txt").write_text(code.code_line() + "\nsteps/s 12.5\n")
    (results / "speed.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "README.md").write_text(README)
    return tmp_path


def test_results_written_by_the_current_code_pass(toy):
    assert check(toy) == []
    found = {v.path: v for v in verdicts(toy)}
    table = found["benchmarks/results/toy"]  # a file inside a bench directory means it
    assert table.problem is None and table.where == ("README.md:4",)
    assert found["benchmarks/results/speed.txt"].line().startswith(
        "benchmarks/results/speed.txt: current (cited in README.md:5)")
    assert found["benchmarks/results/speed.png"].problem is None  # by speed.txt
    # a folder of results and a pattern name no one result: listed, not problems
    assert "not checked" in found["benchmarks/results"].note
    assert "a pattern" in found["benchmarks/results/*.md"].note


def test_an_edited_number_deciding_module_makes_the_cited_results_stale(toy):
    module = toy / "agents" / "a.py"
    module.write_text(MODULE.replace('"""One step."""', '"""One step, told better."""')
                      .replace("# the step size", "# the learning rate"))
    assert check(toy) == []  # docstrings and comments decide no number
    module.write_text(MODULE.replace("RATE = 0.5", "RATE = 0.25"))
    problems = check(toy)
    assert len(problems) == 3
    table = next(p for p in problems if p.startswith("benchmarks/results/toy:"))
    assert "2 of 2 rows are stale" in table and "number-deciding" in table
    assert ("run PYTHONPATH=. dvrl bench benchmarks/results/toy/spec.toml --out "
            "benchmarks/results/toy --resume --rerun-stale") in table
    assert any(p.startswith("benchmarks/results/speed.txt: written by other code (the "
                            "number-deciding") for p in problems)
    assert any(p.startswith("benchmarks/results/speed.png: written by other code (by "
                            "speed.txt)") for p in problems)
    assert all("\n" not in p for p in problems)


def test_an_edited_plugin_makes_only_the_rows_that_imported_it_stale(toy):
    plugin = toy / f"{_plugin_name(toy / 'benchmarks' / 'results' / 'toy')}.py"
    plugin.write_text(PLUGIN.replace("OFFSET = 1000", "OFFSET = 2000"))
    problem, = check(toy)
    assert problem.startswith("benchmarks/results/toy: 2 of 2 rows are stale")
    assert f"plugin {plugin.stem}" in problem and "number-deciding" not in problem


def test_missing_code_lines_missing_results_and_old_rows_are_problems(toy):
    results = toy / "benchmarks" / "results"
    (results / "speed.txt").write_text("steps/s 12.5\n")  # no code line
    _write_rows(results / "old", [""])  # a row from before rows named their code
    (toy / "docs").mkdir()
    (toy / "docs" / "more.md").write_text("See benchmarks/results/old, "
                                          "`benchmarks/results/gone.md`.\n")
    problems = check(toy)
    assert len(problems) == 4  # speed.txt, speed.png, old, gone.md
    assert any(p.startswith("benchmarks/results/speed.txt: no '# code: {...}' line") and
               "code.code_line()" in p for p in problems)
    assert any(p.startswith("benchmarks/results/speed.png: no sibling speed.txt or "
                            "speed.md with a '# code: {...}' line") for p in problems)
    assert "benchmarks/results/gone.md: cited but missing; regenerate it, or cite what " \
           "exists instead" in problems
    old, = (p for p in problems if p.startswith("benchmarks/results/old:"))
    assert "1 of 1 rows are stale" in old and "no code recorded" in old


def _run_script(root: Path) -> subprocess.CompletedProcess:
    """The script as CI runs it, in a process of its own (about 3 s: torch's import)."""
    return subprocess.run([sys.executable, str(SCRIPT), "--root", str(root)],
                          capture_output=True, text=True, timeout=60)


def test_the_script_exits_0_when_every_cited_result_is_current(toy):
    done = _run_script(toy)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == ("5 cited result(s): 3 current, 0 not current, "
                                            "2 not checked")


def test_the_script_exits_1_after_a_number_deciding_module_changes(toy):
    (toy / "agents" / "a.py").write_text(MODULE.replace("x * RATE", "x / RATE"))
    done = _run_script(toy)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("benchmarks/results/toy: 2 of 2 rows are stale") and
               line.endswith("(cited in README.md:4)") for line in lines)
    assert lines[-1] == "5 cited result(s): 0 current, 3 not current, 2 not checked"


def test_the_script_refuses_a_root_without_a_readme(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("check_results", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with pytest.raises(SystemExit) as exit_:
        script.main(["--root", str(tmp_path)])
    assert exit_.value.code == 2
    assert f"--root {tmp_path} has no README.md: give a repository root" in \
        capsys.readouterr().err

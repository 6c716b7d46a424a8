"""``dvrl bench``: spec checks, the grid, the local and Ray backends giving the same
rows, resume after a stop, a failing cell, and agents registered by the spec's imports."""

from __future__ import annotations

import csv
import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

from dvrl_env.app import cli
from dvrl_env.app.bench import backends, run_bench
from dvrl_env.app.bench.cells import expand
from dvrl_env.app.bench.harness import BOARD, FIGURE, SPEC_COPY, TABLE, BenchError
from dvrl_env.app.bench.spec import SpecError, load_spec, parse_spec
from dvrl_env.app.bench.stats import mean_ci
from dvrl_env.app.bench.store import COLUMNS, VOLATILE, extra, read_table

TINY_OPTIONS = ('{ predictor = "logistic", n_train = 60, n_valid = 40, n_test = 40, '
                'batch_size = 20, predictor_epochs = 1 }')
TINY = f"""
name = "tiny"
seeds = [0, 1]
noise_rate = 0.2

[budget]
fits = 4

[[tasks]]
name = "digits"
env = "DataValuation-Digits-v0"
options = {TINY_OPTIONS}

[[agents]]
name = "reinforce"
options = {{ num_samples = 2 }}

[[agents]]
name = "random"
updates = 1
"""
# one agent whose option makes agents.make raise: its cells fail, the others complete
FAILING = TINY + """
[[agents]]
name = "credit"
label = "credit-bad"
options = { num_samples = -3 }
"""


def write_spec(folder: Path, text: str, name: str = "spec.toml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def rows_of(out: Path) -> list[dict]:
    with open(out / TABLE, newline="") as f:
        return [{k: v for k, v in r.items() if k not in VOLATILE} for r in csv.DictReader(f)]


def quiet(message: str) -> None:
    pass


@pytest.fixture(autouse=True, scope="module")
def one_thread_per_cell():
    """Every backend gives each cell one thread here, however many workers run: the
    rows of runs with different --workers can then be compared exactly."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(backends, "cores", lambda: 1)
        yield


@pytest.fixture(scope="module")
def reference(tmp_path_factory, one_thread_per_cell) -> Path:
    """The failing grid run at once by 2 local worker processes."""
    folder = tmp_path_factory.mktemp("reference")
    run_bench(write_spec(folder, FAILING), folder / "out", workers=2, log=quiet)
    return folder / "out"


# ---- the spec -------------------------------------------------------------------------
def spec_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(SpecError) as err:
        load_spec(write_spec(tmp_path, text))
    return str(err.value)


@pytest.mark.parametrize("old, new, expected", [
    ('name = "reinforce"', 'name = "reinforse"', "'reinforse' is not a registered agent"),
    ('env = "DataValuation-Digits-v0"', 'env = "Digits"', "'Digits' is not a registered env"),
    ("fits = 4", "fits = 0", "budget.fits must be a positive integer"),
    ("fits = 4", 'fits = "many"', "budget.fits must be a positive integer"),
    ("fits = 4", "steps = 4", "unknown budget key(s) ['steps']"),
    ("seeds = [0, 1]", "seeds = [0, 0]", "seeds must be a non-empty list of distinct"),
    ("noise_rate = 0.2", "noise_rate = 1.5", "noise_rate must be a number in [0, 1)"),
    ('name = "tiny"', 'name = "tiny"\nimports = ["no_such_module_here"]',
     "'no_such_module_here', which cannot be imported"),
    ('name = "tiny"', 'name = "tiny"\nmetrics = ["auroc", "shapley"]', "unknown metric(s)"),
    ('name = "tiny"', 'name = "tiny"\nworkers = 3', "unknown key(s) ['workers']"),
    ("updates = 1", 'updates = 1\ntasks = ["adult"]', "names ['adult'], not among the tasks"),
    ("options = { num_samples = 2 }", "options = { seed = 2 }", "sets seed or log_dir"),
])
def test_spec_errors_name_the_problem_and_the_fix(tmp_path, old, new, expected):
    assert old in TINY
    assert expected in spec_error(tmp_path, TINY.replace(old, new, 1))


def test_spec_needs_a_budget_tasks_and_valid_toml(tmp_path):
    assert "[budget] is required" in spec_error(tmp_path, TINY.replace("fits = 4", ""))
    assert "not valid TOML" in spec_error(tmp_path, TINY + "\n[[agents]\n")
    with pytest.raises(SpecError, match="at least one \\[\\[tasks\\]\\]"):
        parse_spec({"seeds": [0], "budget": {"fits": 1}, "agents": [{"name": "random"}]})
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "missing.toml")


def test_grid_expands_tasks_agents_seeds_with_stable_distinct_keys(tmp_path):
    text = TINY.replace("updates = 1", 'updates = 1\ntasks = ["digits"]') + f"""
[[tasks]]
name = "digits-b10"
env = "DataValuation-Digits-v0"
options = {TINY_OPTIONS.replace("batch_size = 20", "batch_size = 10")}
"""
    cells = expand(load_spec(write_spec(tmp_path, text)))
    # reinforce on both tasks, random (restricted) on one; two seeds each
    assert [(c.task, c.agent, c.seed) for c in cells] == [
        ("digits", "reinforce", 0), ("digits", "reinforce", 1), ("digits", "random", 0),
        ("digits", "random", 1), ("digits-b10", "reinforce", 0), ("digits-b10", "reinforce", 1)]
    assert len({c.key for c in cells}) == len(cells)
    again = expand(load_spec(write_spec(tmp_path, text, "again.toml")))
    assert [c.key for c in again] == [c.key for c in cells]  # stable across loads
    assert cells[2].updates == 1 and cells[2].fits == 4 and cells[0].updates is None


def test_mean_ci_is_the_student_t_interval():
    mean, half, n = mean_ci([1.0, 2.0, 3.0, float("nan"), None])
    assert (mean, n) == (2.0, 3)
    assert half == pytest.approx(4.302653 * 1.0 / 3 ** 0.5, rel=1e-6)  # t(0.975, 2) s/sqrt(n)
    assert mean_ci([0.7])[1] != mean_ci([0.7])[1]  # NaN: no interval from one seed


# ---- running the grid -----------------------------------------------------------------
def test_local_workers_record_a_failing_cell_and_complete_the_rest(reference):
    rows = rows_of(reference)
    assert [(r["agent"], r["seed"]) for r in rows] == [
        ("reinforce", "0"), ("reinforce", "1"), ("random", "0"), ("random", "1"),
        ("credit-bad", "0"), ("credit-bad", "1")]
    for row in rows[:4]:
        assert row["error"] == ""
        assert 0.0 <= float(row["auroc"]) <= 1.0 and row["f1"] and row["robust_acc"]
    for row in rows[:2]:  # learning stopped at the fit budget
        assert int(row["fits"]) >= 4 and int(row["budget_fits"]) == 4
    assert [int(r["fits"]) for r in rows[2:4]] == [0, 0]
    for row in rows[4:]:
        assert row["error"].startswith("ValueError: num_samples must be >= 2")
        assert row["auroc"] == ""
    board = (reference / BOARD).read_text()
    assert "| 1 |" in board and "credit-bad seed 0: ValueError" in board
    assert (reference / FIGURE).stat().st_size > 0 and (reference / SPEC_COPY).exists()


def test_a_stopped_run_resumes_to_the_same_table(tmp_path, reference):
    """Stopped after 3 cells (in this process), resumed: the table of the uninterrupted
    run by 2 worker processes."""
    spec = write_spec(tmp_path, FAILING)
    out = tmp_path / "out"
    run_bench(spec, out, workers=1, in_process=True, max_cells=3, log=quiet)
    assert len(rows_of(out)) == 3
    with pytest.raises(BenchError, match="pass --resume"):
        run_bench(spec, out, workers=1, in_process=True, log=quiet)
    lines = []
    run_bench(spec, out, workers=1, in_process=True, resume=True, log=lines.append)
    assert "3 in" in lines[0] and "running 3" in lines[0]
    assert rows_of(out) == rows_of(reference)


def test_resume_reruns_failed_cells_once_fixed(tmp_path):
    failing = FAILING.replace("seeds = [0, 1]", "seeds = [0]").replace(
        'name = "reinforce"\noptions = { num_samples = 2 }',
        'name = "random"\nlabel = "r2"\nupdates = 2')
    out = tmp_path / "out"
    rows = run_bench(write_spec(tmp_path, failing), out, workers=1, in_process=True,
                     log=quiet)
    assert [bool(r["error"]) for r in rows] == [False, False, True]
    fixed = failing.replace("num_samples = -3", "num_samples = 2")
    lines = []
    rows = run_bench(write_spec(tmp_path, fixed, "fixed.toml"), out, workers=1,
                     in_process=True, resume=True,
                     log=lines.append)
    assert "running 1" in lines[0]  # only the fixed cell ran again
    assert [r["error"] for r in rows] == ["", "", ""]
    # the failed row's key is not the fixed cell's: it stays in the file, after the grid
    assert [r["agent"] for r in rows_of(out)] == ["r2", "random", "credit-bad", "credit-bad"]


def test_agents_registered_by_the_specs_imports_run_in_workers(tmp_path, monkeypatch):
    (tmp_path / "my_bench_agents.py").write_text(textwrap.dedent("""
        import agents
        from agents.baselines import RandomValues

        def make_mine(env, *, seed=0, **config):
            return RandomValues(env, seed=seed + 1000, **config)

        agents.register("mine", make_mine)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    text = TINY.replace('name = "tiny"', 'name = "tiny"\nimports = ["my_bench_agents"]')
    text = text.replace('name = "reinforce"\noptions = { num_samples = 2 }',
                        'name = "mine"\nupdates = 1')
    rows = run_bench(write_spec(tmp_path, text), tmp_path / "out", workers=2, log=quiet)
    assert [(r["agent"], r["error"]) for r in rows][:2] == [("mine", ""), ("mine", "")]
    assert rows[0]["auroc"] != rows[2]["auroc"]  # seed + 1000: not the plain random agent's


def test_cli_bench_errors_are_one_line_with_status_2(tmp_path, capsys):
    spec = write_spec(tmp_path, TINY.replace('name = "random"', 'name = "nope"'))
    assert cli.main(["bench", str(spec), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dvrl: error:") and "'nope' is not a registered agent" in err
    assert "\n" not in err
    spec = write_spec(tmp_path, TINY, "ok.toml")
    assert cli.main(["bench", str(spec), "--out", str(tmp_path / "o"), "--workers", "0"]) == 2
    assert "--workers must be >= 1" in capsys.readouterr().err


# ---- Ray ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_local():
    """One real local Ray instance for the module: 2 CPUs, no dashboard, loopback."""
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[ray]'")
    with pytest.MonkeyPatch.context() as patch:
        # Ray's workers inherit the environment: they import this checkout's packages
        patch.setenv("PYTHONPATH", os.pathsep.join(p for p in sys.path if p))
        # Ray starts its workers at niceness 15: on a machine busy with other jobs they
        # starve (4 tiny cells took 254 s instead of 32 s here); run them at 0
        patch.setenv("RAY_worker_niceness", "0")
        ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
                 log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_gives_the_local_backends_rows(tmp_path, reference, ray_local):
    rows = run_bench(write_spec(tmp_path, TINY), tmp_path / "out", ray="auto", log=quiet)
    assert len(rows) == 4 and all(r["error"] == "" for r in rows)
    assert rows_of(tmp_path / "out") == rows_of(reference)[:4]  # same keys, same numbers


def test_a_lost_ray_worker_is_retried_and_its_cell_completes(tmp_path, ray_local):
    marker = tmp_path / "died"
    text = TINY.replace('name = "tiny"', 'name = "tiny"\nimports = ["tests.bench_plugins"]')
    text = text.replace('name = "reinforce"\noptions = { num_samples = 2 }',
                        f'name = "dies-once"\noptions = {{ marker = "{marker}" }}\nupdates = 1')
    text = text.replace("seeds = [0, 1]", "seeds = [0]")
    rows = run_bench(write_spec(tmp_path, text), tmp_path / "out", ray="auto", log=quiet)
    assert marker.read_text() == "died once\n"  # the first attempt's process died
    assert [(r["agent"], r["error"]) for r in rows] == [("dies-once", ""), ("random", "")]
    assert float(rows[0]["auroc"]) > 0


# ---- hooks: methods, probes, reports ---------------------------------------------------
PLUGGED = TINY.replace('name = "tiny"', 'name = "tiny"\nimports = ["tests.bench_plugins"]')


def test_a_method_cell_is_scored_like_an_agents(tmp_path):
    text = PLUGGED.replace('name = "reinforce"\noptions = { num_samples = 2 }',
                           'name = "random"\nlabel = "r0"\nupdates = 0')
    text += '\n[[methods]]\nname = "random-method"\noptions = { shift = 5.0 }\n'
    rows = run_bench(write_spec(tmp_path, text), tmp_path / "out", workers=1,
                     in_process=True, log=quiet)
    method = rows[-1]
    agent = next(r for r in rows if r["agent"] == "r0" and r["seed"] == method["seed"])
    assert (method["agent"], method["kind"], method["error"]) == ("random-method", "method", "")
    assert agent["kind"] == "agent" and agent["auroc"] != ""
    for column in ("auroc", "f1", "auprc", "remove_high", "remove_low", "robust_acc"):
        assert method[column] == agent[column], column  # same ranks, same scores
    assert method["gap"] == agent["gap"]  # a shift leaves clean minus corrupted alone
    assert (method["fits"], method["updates"], method["curve"]) == (7, 0, "")
    assert json.loads(method["extra"]) == {"note": "from a method"}


def test_a_probe_is_measured_before_learning_and_recorded(tmp_path):
    text = PLUGGED + '\n[probe]\nname = "env-state"\noptions = { scale = 3 }\n'
    rows = run_bench(write_spec(tmp_path, text), tmp_path / "out", workers=1,
                     in_process=True, log=quiet)
    reinforce = [json.loads(r["extra"]) for r in rows if r["agent"] == "reinforce"]
    assert reinforce == [{"fits_before": 0, "num_samples_x": 6}] * 2
    assert all(int(r["fits"]) >= 4 for r in rows if r["agent"] == "reinforce")
    # the probe is a setting: it changes the cell's key, and an unknown one is refused
    plain = {c.key for c in expand(load_spec(write_spec(tmp_path, PLUGGED, "plain.toml")))}
    assert not plain & {r["key"] for r in rows}
    assert "'nope' is not a registered probe" in spec_error(
        tmp_path, PLUGGED + '\n[probe]\nname = "nope"\n')


def test_a_tasks_noise_rate_and_curve_by_updates(tmp_path):
    text = TINY.replace("[budget]\nfits = 4", "[budget]\nupdates = 10").replace(
        'env = "DataValuation-Digits-v0"', 'env = "DataValuation-Digits-v0"\nnoise_rate = 0.3')
    text = text.replace("seeds = [0, 1]", "seeds = [0]")
    rows = run_bench(write_spec(tmp_path, text), tmp_path / "out", workers=1,
                     in_process=True, log=quiet)
    assert [float(r["noise_rate"]) for r in rows] == [0.3, 0.3]
    curve = json.loads(rows[0]["curve"])
    assert [p["step"] for p in curve] == list(range(11))  # no fit budget: every update/10


def test_a_table_of_the_columns_before_the_hooks_is_read(tmp_path):
    old = COLUMNS[:COLUMNS.index("curve") + 1]  # the table before kind, auprc and extra
    (tmp_path / "results.csv").write_text(",".join(old) + "\n" + ",".join(
        "k1" if c == "key" else "0.5" if c == "auroc" else "" for c in old) + "\n")
    rows = read_table(tmp_path / "results.csv")
    assert rows[0]["key"] == "k1" and rows[0]["auroc"] == "0.5" and rows[0]["extra"] == ""
    assert extra(rows[0]) == {}


def test_a_specs_report_module_writes_from_the_store(tmp_path):
    text = TINY.replace('name = "tiny"', 'name = "tiny"\nreport = "tests.bench_report"')
    rows = run_bench(write_spec(tmp_path, text), tmp_path / "out", workers=1,
                     in_process=True, log=quiet)
    written = (tmp_path / "out" / "report.txt").read_text()
    assert written == f"{len(rows)} rows\n"

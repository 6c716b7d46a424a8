"""Plugins: a module outside the repo that registers an agent, a dataset and a predictor,
used by ``dvrl value --import``, ``dvrl bench`` (spec imports and ``--import``) and an
installed entry point; docs/extending.md's snippets run.

The plugin module is docs/extending.md's own (its first Python block), written into
``tmp_path``. Everything that imports it runs in a subprocess (it registers names for
good), except the guide's snippets, executed here as the guide shows them.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dvrl_env import plugins
from dvrl_env.app import cli

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "extending.md"
ENV = "DataValuation-BreastCancer-v0"
SMALL = ["--env-arg", "predictor=tanh_mlp", "--env-arg", "batch_size=32", "--env-arg", "n_train=64",
         "--env-arg", "predictor_epochs=1"]


def guide_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)


def write_plugin(folder: Path) -> Path:
    """docs/extending.md's plugin module as ``folder/my_plugin.py``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "my_plugin.py"
    path.write_text(guide_blocks()[0])
    return path


def dvrl(args: list[str], cwd: Path, pythonpath: list[Path]) -> subprocess.CompletedProcess:
    """``python -m dvrl_env ARGS`` in a fresh process: this one's registries stay as they are."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in [ROOT, *pythonpath])}
    return subprocess.run([sys.executable, "-m", "dvrl_env", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def python(code: str, cwd: Path, pythonpath: list[Path]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in [ROOT, *pythonpath])}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


# ---- the guide --------------------------------------------------------------------------

@pytest.fixture
def restored_registries():
    """The guide's plugin registers into process-wide registries (env ids, datasets,
    predictors, agents, bench hooks, Gymnasium's): put each back as it was, so that later
    tests in this process see the built-ins only."""
    import gymnasium as gym

    import agents
    from dvrl_env.app.bench import hooks
    from dvrl_env.data import registry
    from dvrl_env.envs import registration
    from dvrl_env.predictors import models

    tables = [registration.ENV_IDS, registry._ENTRIES, models.PREDICTORS, agents._REGISTRY,
              hooks._METHODS, hooks._PROBES, gym.envs.registry]
    saved = [dict(table) for table in tables]
    yield
    for table, before in zip(tables, saved, strict=True):
        table.clear()
        table.update(before)


def test_the_extending_guides_snippets_run(tmp_path, monkeypatch, restored_registries):
    """Every Python block of docs/extending.md, in order, in a tmp dir: the plugin's three
    blocks in one namespace (it registers its three parts, and the saved agent resumes
    exactly), then the callbacks' block in its own (it stops at the fit budget)."""
    import agents
    from dvrl_env.app.bench import hooks
    from dvrl_env.data.registry import dataset_entry
    from dvrl_env.predictors import PREDICTORS

    monkeypatch.chdir(tmp_path)
    blocks = guide_blocks()
    assert len(blocks) == 4
    namespace: dict = {}
    for block in blocks[:3]:
        exec(compile(block, str(GUIDE), "exec"), namespace)  # noqa: S102
    assert dataset_entry("breast_cancer").env_id == ENV
    assert "tanh_mlp" in PREDICTORS and "table_reinforce" in agents.names()
    assert agents.describe("table_reinforce").startswith("One selection logit per training")
    assert {"mine"} <= set(hooks.method_names()) and {"size"} <= set(hooks.probe_names())
    assert (tmp_path / "table.ckpt").is_file()
    twin, agent = namespace["twin"], namespace["agent"]
    assert twin.steps_done == agent.steps_done == 15
    assert np.ptp(agent.data_values()) > 0  # it learned something per point
    callbacks: dict = {}
    exec(compile(blocks[3], str(GUIDE), "exec"), callbacks)  # noqa: S102
    # FitBudget(20) stopped the 10**9 steps: 1 shared baseline + 4 fits a step reach 21 at 5
    assert callbacks["agent"].steps_done == 5
    assert (tmp_path / "reinforce.ckpt").is_file()  # SaveEvery ran beside it


# ---- --import -------------------------------------------------------------------------

def test_import_unknown_module_is_one_line_exit_2(capsys):
    assert cli.main(["agents", "--import", "nosuchmodule_dvrl"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith("dvrl: error: --import nosuchmodule_dvrl: the module cannot be "
                          "imported (ModuleNotFoundError: No module named 'nosuchmodule_dvrl')")
    assert "PYTHONPATH" in err


def test_import_of_a_module_that_raises_names_it_and_the_error(tmp_path, monkeypatch, capsys):
    (tmp_path / "raising_plugin_dvrl.py").write_text("raise RuntimeError('half-written')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cli.main(["envs", "--import", "raising_plugin_dvrl"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("dvrl: error: --import raising_plugin_dvrl: the module cannot be imported "
                   "(RuntimeError: half-written); fix the error its import raises.")


def test_import_finds_modules_in_the_current_directory(tmp_path, monkeypatch):
    """As ``python -m`` does, though the ``dvrl`` script does not put the cwd on sys.path."""
    (tmp_path / "cwd_plugin_dvrl.py").write_text("FOUND = True\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    plugins.import_plugin("cwd_plugin_dvrl")
    assert sys.modules["cwd_plugin_dvrl"].FOUND and sys.path[0] == str(tmp_path)
    with pytest.raises(plugins.PluginError, match="is not a module name"):
        plugins.import_plugin("my-plugin.py")


def test_value_with_import_records_it_for_evaluate_and_resume(tmp_path, capsys):
    """(a) ``dvrl value --import``: the plugin's agent, dataset and predictor from the CLI;
    run.json records the import; without the module, evaluate and --resume refuse."""
    write_plugin(tmp_path / "plugin")
    out = tmp_path / "run"
    done = dvrl(["value", "--import", "my_plugin", "--agent", "table_reinforce", "--env", ENV,
                 *SMALL, "--steps", "3", "--checkpoint-every", "1", "--out", str(out),
                 "--quiet"], cwd=tmp_path, pythonpath=[tmp_path / "plugin"])
    assert done.returncode == 0, done.stderr
    settings = json.loads((out / "run.json").read_text())
    assert settings["imports"] == ["my_plugin"] and settings["agent"] == "table_reinforce"
    assert settings["env_args"]["predictor"] == "tanh_mlp"
    assert (out / "values.csv").is_file() and (out / "metrics.json").is_file()
    # here my_plugin is not importable: the run's agent and dataset would be unknown
    for argv in (["evaluate", str(out)], ["value", "--resume", str(out), "--steps", "4"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"dvrl: error: the run in {out} was made with --import my_plugin, "
                              "which cannot be imported now (ModuleNotFoundError"), err
        assert "\n" not in err


@pytest.mark.parametrize("how", ["spec imports", "--import"])
def test_bench_uses_the_plugin(tmp_path, how):
    """(b) ``dvrl bench``: the plugin named in the spec's imports, or given with --import
    (then imported in the worker too)."""
    write_plugin(tmp_path / "plugin")
    spec = ('imports = ["my_plugin"]\n' if how == "spec imports" else "") + (
        f'seeds = [0]\nnoise_rate = 0.2\n[budget]\nupdates = 2\n'
        f'[[tasks]]\nname = "cancer"\nenv = "{ENV}"\n'
        'options = { predictor = "tanh_mlp", batch_size = 32, n_train = 64, '
        'predictor_epochs = 1 }\n'
        '[[agents]]\nname = "table_reinforce"\n')
    (tmp_path / "spec.toml").write_text(spec)
    extra = ["--import", "my_plugin"] if how == "--import" else []
    done = dvrl(["bench", "spec.toml", "--out", "out", "--workers", "1", *extra],
                cwd=tmp_path, pythonpath=[tmp_path / "plugin"])
    assert done.returncode == 0, done.stderr
    with open(tmp_path / "out" / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["task"], r["agent"], r["error"]) for r in rows] == [
        ("cancer", "table_reinforce", "")], rows
    assert 0 <= float(rows[0]["auroc"]) <= 1


def test_bench_without_the_plugin_names_the_missing_agent(tmp_path, capsys):
    write_plugin(tmp_path / "plugin")
    (tmp_path / "spec.toml").write_text(
        f'seeds = [0]\n[budget]\nupdates = 2\n[[tasks]]\nname = "t"\nenv = "{ENV}"\n'
        '[[agents]]\nname = "table_reinforce"\n')
    assert cli.main(["bench", str(tmp_path / "spec.toml"), "--out", str(tmp_path / "o"),
                     "--import", "nosuchmodule_dvrl"]) == 2
    assert "--import nosuchmodule_dvrl" in capsys.readouterr().err


# ---- the entry-point group --------------------------------------------------------------

def installed(site: Path, name: str, module: str) -> None:
    """A distribution ``name`` as pip leaves it: its dist-info with an entry point in
    the dvrl_env.plugins group (importlib.metadata finds it on sys.path)."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{plugins.ENTRY_POINT_GROUP}]\n{name} = {module}\n")


@pytest.fixture
def site(tmp_path) -> Path:
    """A folder holding two installed plugins: docs/extending.md's and a broken one."""
    site = tmp_path / "site"
    write_plugin(site)
    installed(site, "my_plugin", "my_plugin")
    (site / "broken_plugin.py").write_text("raise ValueError('left unfinished')\n")
    installed(site, "broken_plugin", "broken_plugin")
    return site


def test_installed_plugin_is_loaded_by_the_cli_and_a_broken_one_warns(tmp_path, site):
    """(c) An installed entry point: no --import needed; a broken plugin is a warning."""
    out = tmp_path / "run"
    done = dvrl(["value", "--agent", "table_reinforce", "--env", ENV, *SMALL, "--steps", "2",
                 "--out", str(out), "--quiet"], cwd=tmp_path, pythonpath=[site])
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("dvrl: warning:")]
    assert warnings == ["dvrl: warning: plugin 'broken_plugin' (broken_plugin, from "
                        "broken_plugin) was not loaded: ValueError: left unfinished. Fix or "
                        "uninstall it; everything else works without it."]
    assert json.loads((out / "run.json").read_text())["imports"] == []
    assert (out / "values.csv").is_file()


def test_installed_plugin_is_loaded_lazily_by_the_registries(tmp_path, site):
    """In Python, the first look-up the registries cannot answer loads the plugins, once;
    the built-ins alone import nothing."""
    code = (
        "import sys, warnings\n"
        "import agents\n"
        "from dvrl_env.data import load_dataset\n"
        "from dvrl_env.plugins import PluginWarning\n"
        "assert agents.describe('reinforce') and 'my_plugin' not in sys.modules\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    data = load_dataset('breast_cancer', n_train=50, n_valid=20, n_test=20)\n"
        "    assert 'table_reinforce' in agents.names()\n"
        "assert data.n_train == 50 and data.num_classes == 2\n"
        "assert [w.category for w in caught] == [PluginWarning], caught\n"
        "print(caught[0].message)\n")
    done = python(code, cwd=tmp_path, pythonpath=[site])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("plugin 'broken_plugin' (broken_plugin, from broken_plugin) "
                                  "was not loaded: ValueError: left unfinished.")

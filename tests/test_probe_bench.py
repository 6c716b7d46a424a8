"""``dvrl bench`` under the hostile probe (issue 24): a cell that kills its worker
process, a results table cut mid-row or of other columns, a kill -9 of the bench with
workers, and spec files that are not TOML specs. Each gets one clear outcome: an error
row and the rest of the grid, a warning and a re-run, or a one-line error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from dvrl_env.app import cli
from dvrl_env.app.bench import backends, run_bench
from dvrl_env.app.bench.harness import TABLE, BenchError
from dvrl_env.app.bench.spec import SpecError, load_spec
from dvrl_env.app.bench.store import COLUMNS, Store, TableError, read_table
from tests.test_bench import TINY, TINY_OPTIONS, quiet, rows_of, write_spec

# one task, a quick agent first, then the plugins' agents (appended per test)
QUICK = f"""
name = "probe"
seeds = [0]
imports = ["tests.bench_plugins"]
metrics = ["auroc"]

[budget]
fits = 4

[[tasks]]
name = "digits"
env = "DataValuation-Digits-v0"
options = {TINY_OPTIONS}

[[agents]]
name = "random"
updates = 1
"""
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def one_thread_per_cell(monkeypatch):
    monkeypatch.setattr(backends, "cores", lambda: 1)


def dies(label: str, option: str) -> str:
    return f'\n[[agents]]\nname = "dies"\nlabel = "{label}"\noptions = {{ {option} }}\n' \
           "updates = 1\n"


# ---- a cell that kills its worker process ------------------------------------------------
def test_a_cell_killing_its_worker_is_an_error_row_and_the_others_finish(tmp_path):
    """Two workers: one cell's process is killed (SIGKILL, as the OOM killer does); the
    cell beside it, on the other worker, completes (it was "BrokenProcessPool")."""
    spec = write_spec(tmp_path, QUICK + dies("killed", f"signum = {int(signal.SIGKILL)}"))
    rows = run_bench(spec, tmp_path / "out", workers=2, log=quiet)
    assert [r["agent"] for r in rows] == ["random", "killed"]
    assert rows[0]["error"] == "" and 0 <= float(rows[0]["auroc"]) <= 1
    assert rows[1]["error"].startswith("the worker process died while running this cell "
                                       "(killed by SIGKILL"), rows[1]["error"]
    assert rows[1]["auroc"] == "" and float(rows[1]["seconds"]) > 0


def test_one_worker_survives_a_dying_cell_and_resume_retries_only_it(tmp_path):
    """One worker: the bench used to exit 3 with no message at the dying cell, and every
    --resume died at it again. Now its row says how the process ended, and a resume runs
    it (a failed cell) again, alone."""
    spec = write_spec(tmp_path, QUICK + dies("exits", "code = 7"))
    lines: list[str] = []
    rows = run_bench(spec, tmp_path / "out", workers=1, log=lines.append)
    assert [(r["agent"], r["error"]) for r in rows] == [
        ("random", ""), ("exits", "the worker process died while running this cell (exit "
                                  "code 7); --resume runs it again")]
    assert "1 cell(s) missing or failed" in lines[-1]
    lines.clear()
    rows = run_bench(spec, tmp_path / "out", workers=1, resume=True, log=lines.append)
    assert "1 in" in lines[0] and "running 1" in lines[0]
    assert "exit code 7" in rows[1]["error"] and rows[0]["error"] == ""


def test_workers_that_cannot_start_stop_the_bench_blaming_no_cell(tmp_path, monkeypatch):
    """A worker that dies before its first cell (here its main module exits, as a script
    without the ``__main__`` guard does) is one error for the bench, not N error rows."""
    bad = tmp_path / "script.py"
    bad.write_text("import sys\nsys.exit(5)\n")
    main = types.ModuleType("__main__")
    main.__file__, main.__spec__ = str(bad), None
    monkeypatch.setitem(sys.modules, "__main__", main)  # what a spawned worker runs first
    spec = write_spec(tmp_path, QUICK)
    with pytest.raises(BenchError, match="a bench worker process could not start \\(exit "
                                         "code 5; its error is printed above\\)"):
        run_bench(spec, tmp_path / "out", workers=1, log=quiet)
    assert not (tmp_path / "out" / TABLE).exists()
    with pytest.raises(BenchError, match="not with --ray or --workers > 1"):
        run_bench(spec, tmp_path / "out", workers=2, in_process=True, log=quiet)


# ---- the results table -----------------------------------------------------------------
def small_table(tmp_path: Path) -> tuple[Path, Path, list[dict]]:
    spec = write_spec(tmp_path, QUICK.replace("seeds = [0]", "seeds = [0, 1]"))
    out = tmp_path / "out"
    run_bench(spec, out, workers=1, in_process=True, log=quiet)
    return spec, out, rows_of(out)


def test_a_table_cut_mid_row_drops_that_row_with_a_warning_and_reruns_its_cell(tmp_path):
    spec, out, before = small_table(tmp_path)
    text = (out / TABLE).read_text()
    last = text.rstrip("\n").rsplit("\n", 1)[1]
    (out / TABLE).write_text(text[:len(text) - len(last) // 2])  # power lost mid-row
    warned: list[str] = []
    assert len(read_table(out / TABLE, warned.append)) == 1
    assert "the last row is cut short" in warned[0] and "runs again" in warned[0]
    lines: list[str] = []
    run_bench(spec, out, workers=1, resume=True, in_process=True, log=lines.append)
    assert any("cut short" in line for line in lines)
    assert "running 1" in next(line for line in lines if "cells," in line)
    assert rows_of(out) == before  # the cut row measured again, the same
    assert (out / TABLE).read_text().endswith("\n")


def test_a_cut_with_whole_fields_or_a_damaged_inner_row(tmp_path):
    """A cut right after a comma leaves a whole number of fields but no line end: still
    a cut row. A short row before the last is damage, not a cut: refused, by row."""
    _, out, _ = small_table(tmp_path)
    text = (out / TABLE).read_text()
    header, first, second = text.rstrip("\n").split("\n")
    (out / TABLE).write_text(text.rstrip("\n"))  # every field, no line end
    with pytest.warns(UserWarning, match="cut short"):
        assert [r["key"] for r in read_table(out / TABLE)] == [first.split(",")[0]]
    (out / TABLE).write_text(f"{header}\n{first[:30]}\n{second}\n")
    with pytest.raises(TableError, match=f"row 1 \\(after the header\\) has 3 fields, not "
                       f"{len(COLUMNS)}"):
        read_table(out / TABLE)


def test_a_table_of_other_columns_on_resume_is_one_clear_error(tmp_path, capsys):
    spec = write_spec(tmp_path, TINY)
    out = tmp_path / "out"
    out.mkdir()
    (out / TABLE).write_text("key,task,score\nabc,digits,0.5\n")
    assert cli.main(["bench", str(spec), "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"dvrl: error: {out / TABLE} has the columns ['key', 'task', "
                          "'score'], not a dvrl bench table's: expected ['key', 'task', 'env'")
    assert "unexpected ['score']" in err and "\n" not in err
    (out / TABLE).write_bytes(b"\xff\xfe\x00k\x00e\x00y")
    assert cli.main(["bench", str(spec), "--out", str(out), "--resume"]) == 2
    assert "is not a dvrl bench table (byte 0 is not UTF-8)" in capsys.readouterr().err


def test_the_table_is_synced_to_disk_before_it_replaces_the_old_one(tmp_path, monkeypatch):
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    store = Store(tmp_path / TABLE, ["k1"])
    store.add({"key": "k1", "auroc": 0.5})
    assert len(synced) >= 1  # the new file's data (and, on POSIX, the folder)
    assert read_table(tmp_path / TABLE)[0]["auroc"] == "0.5"
    assert list(read_table(tmp_path / TABLE)[0]) == COLUMNS


# ---- a kill -9 of the bench --------------------------------------------------------------
def children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie (a reaped-late zombie runs nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_and_the_resource_tracker_die_with_a_killed_bench(tmp_path):
    """SIGKILL runs no clean-up in the bench: its two busy workers and multiprocessing's
    resource tracker used to keep running (alive after 60 s)."""
    pids = tmp_path / "pids"
    pids.mkdir()
    spec = write_spec(tmp_path, QUICK.replace("seeds = [0]", "seeds = [0, 1]").replace(
        'name = "random"\nupdates = 1',
        f'name = "sleeps"\noptions = {{ pids = "{pids}", seconds = 120 }}\nupdates = 1'))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + sys.path))
    bench = subprocess.Popen([sys.executable, "-m", "dvrl_env.app.cli", "bench", str(spec),
                              "--out", str(tmp_path / "out"), "--workers", "2"],
                             cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while len(list(pids.iterdir())) < 2:
            assert bench.poll() is None, bench.stderr.read().decode()
            assert time.monotonic() < deadline, "the workers never started their cells"
            time.sleep(0.1)
        workers = {int(p.stem) for p in pids.iterdir()}
        spawned = children(bench.pid)
        assert workers < spawned  # and the resource tracker
    finally:
        bench.kill()
        bench.wait()
    deadline = time.monotonic() + 5
    while any(running(pid) for pid in spawned) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = sorted(pid for pid in spawned if running(pid))
    for pid in left:  # do not leave them behind the test either
        os.kill(pid, signal.SIGKILL)
    assert not left, f"still running 5 s after the bench's SIGKILL: {left}"


# ---- spec files ------------------------------------------------------------------------
def test_spec_files_that_are_not_specs_are_one_clear_error(tmp_path, capsys):
    folder = tmp_path / "specs"
    folder.mkdir()
    with pytest.raises(SpecError, match="is a directory; give the path of a TOML spec"):
        load_spec(folder)
    assert cli.main(["bench", str(folder), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "is a directory" in err and "Free space" not in err
    binary = tmp_path / "spec.toml"
    binary.write_bytes(b"name = \"x\"\n\x89PNG\r\n\x1a\n\xff\xd8")
    with pytest.raises(SpecError, match="is not a text file \\(byte 11 is not UTF-8\\)"):
        load_spec(binary)


def test_a_toml_datetime_in_options_is_refused_by_its_key(tmp_path):
    text = TINY.replace("options = { num_samples = 2 }",
                        "options = { num_samples = 2, extra = { when = 1979-05-27 } }")
    with pytest.raises(SpecError, match="agents\\[0\\].options.extra.when is a TOML date "
                                        "\\(1979-05-27\\); options must be JSON-like"):
        load_spec(write_spec(tmp_path, text))


def test_duplicate_cells_name_both(tmp_path, capsys):
    text = TINY + '\n[[agents]]\nname = "random"\nlabel = "random-again"\nupdates = 1\n'
    spec = write_spec(tmp_path, text)
    assert cli.main(["bench", str(spec), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("dvrl: error: Spec 'tiny': the cells (task 'digits', agent 'random', seed "
                   "0) and (task 'digits', agent 'random-again', seed 0) have the same "
                   "settings (two agents, methods or tasks with the same name and options "
                   "under other labels); remove one or change its options.")
    assert not (tmp_path / "o").exists()  # refused before any output

"""The peer comparison's pure helpers (benchmarks/peers): the .npz exchange with the
workers, intervals, resume keys, pip's error line and the table. No peer library, no
extra venv, no network."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.peers import compare, exchange, table, venvs


def _arrays(rng):
    return {"x_train": rng.normal(size=(6, 3)).astype(np.float32),
            "y_train": rng.integers(0, 3, 6), "x_valid": rng.normal(size=(4, 3)),
            "y_valid": rng.integers(0, 3, 4), "x_test": rng.normal(size=(2, 3)),
            "y_test": rng.integers(0, 3, 2)}


def test_task_and_values_round_trip_without_pickle(tmp_path):
    arrays = _arrays(np.random.default_rng(0))
    exchange.write_task(tmp_path / "t.npz", arrays, method="knn_shapley", num_classes=3,
                        seed=7, options={"n_neighbors": 5})
    method, options, data = exchange.read_task(tmp_path / "t.npz")
    assert (method, options, data["num_classes"], data["seed"]) == (
        "knn_shapley", {"n_neighbors": 5}, 3, 7)
    for k in exchange.SPLITS:
        np.testing.assert_array_equal(data[k], arrays[k])
        assert data[k].dtype == arrays[k].dtype
    with np.load(tmp_path / "t.npz", allow_pickle=False) as f:  # no object arrays
        assert all(f[k].dtype != object for k in f.files)
    exchange.write_values(tmp_path / "v.npz", [0.5, -1, 2], 1.25, {"pydvl": "0.10.0"})
    values, seconds, info = exchange.read_values(tmp_path / "v.npz")
    assert values.dtype == np.float64 and values.tolist() == [0.5, -1.0, 2.0]
    assert (seconds, info) == (1.25, {"pydvl": "0.10.0"})
    with pytest.raises(ValueError, match="x_test"):
        exchange.write_task(tmp_path / "bad.npz", {"x_train": arrays["x_train"]},
                            method="m", num_classes=3, seed=0)


def test_mean_ci_is_the_student_t_interval():
    mean, half, n = table.mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    # t(0.975, 4) = 2.7764451, s = sqrt(2.5), half = t * s / sqrt(5)
    assert (mean, n) == (3.0, 5) and half == pytest.approx(2.7764451 * np.sqrt(0.5), rel=1e-6)
    assert table.mean_ci(["0.5", "", None, "nan", 0.5])[:3] == (0.5, 0.0, 2)  # CSV cells
    assert np.isnan(table.mean_ci([0.7])[1]) and table.mean_ci([])[2] == 0
    assert table.fmt(0.91234, 0.0131) == "0.912 ± 0.013"
    assert table.fmt(0.5, float("nan")) == "0.500 ± n/a" and table.fmt(float("nan"), 1) == "n/a"


def _row(method, seed, status="ok", auroc=0.9, settings='{"k": 5}', **extra):
    return {"dataset": "adult", "noise_rate": "0.2", "seed": str(seed), "method": method,
            "library": "lib", "version": "1.0", "settings": settings, "status": status,
            "auroc": auroc, "f1": 0.6, "robust_acc": 0.8, "unweighted_acc": 0.79,
            "clean_acc": 0.82, "seconds": 1.5, "own_flags_f1": "", **extra}


def test_resume_keeps_finished_runs_and_retries_failed_ones(tmp_path):
    path = tmp_path / "peers.csv"
    table.append(path, _row("a", 0, status="failed: boom", auroc=""))
    table.append(path, _row("a", 0))  # the retry worked
    table.append(path, _row("b", 0, status="failed: boom", auroc=""))
    table.append(path, _row("a", 1, settings='{"k": 9}'))
    rows = table.read(path)
    assert len(rows) == 4 and rows[0].keys() == set(table.FIELDS)
    done = table.done(rows)
    assert ("adult", "0.2", 0, "a", '{"k": 5}') in done
    assert ("adult", "0.2", 0, "b", '{"k": 5}') not in done  # failed: tried again
    assert ("adult", "0.2", 1, "a", '{"k": 5}') not in done  # other settings: a new run
    assert table.key({**rows[0], "noise_rate": 0.2, "seed": 0}) == table.key(rows[0])


def test_markdown_shows_failures_as_such_and_never_a_number():
    rows = [_row("good", s, auroc=a) for s, a in ((0, 0.8), (1, 0.9))]
    rows += [_row("odv", s, status="not installable: ERROR: No matching distribution",
                  auroc="") for s in (0, 1)]
    rows += [_row("cl", 0, own_flags_f1=0.5)]
    text = table.markdown(rows, ["good", "odv", "cl"], title="T", command="cmd")
    lines = text.splitlines()
    assert "| good | 0.850 ± 0.635 | 1.50 |" in lines  # the headline AUROC summary
    assert "| odv | n/a | n/a |" in lines
    good = next(ln for ln in lines if "| adult | 0.2 | good |" in ln)
    assert "0.850 ± 0.635" in good and "| 2 |" in good and good.endswith("| ok |")
    odv = next(ln for ln in lines if "| adult | 0.2 | odv |" in ln)
    assert "| 0 | n/a | n/a | n/a | n/a |" in odv
    assert "not installable: ERROR: No matching distribution (2 of 2 runs)" in odv
    assert "(clean labels: ceiling)" in text and "F1 0.500 ± n/a (n=1)" in text


def test_pip_error_keeps_the_error_lines():
    log = ("Collecting torch~=2.1.0\nWARNING: retrying\n"
           "ERROR: Could not find a version that satisfies the requirement torch~=2.1.0\n"
           "ERROR: No matching distribution found for torch~=2.1.0\n")
    assert venvs.pip_error(log) == (
        "ERROR: Could not find a version that satisfies the requirement torch~=2.1.0 | "
        "ERROR: No matching distribution found for torch~=2.1.0")
    assert venvs.pip_error("a\nb\n") == "a | b"


def test_failed_venv_is_reported_not_run():
    status = venvs.VenvStatus("opendataval", ok=False, reason="ERROR: no torch")
    with pytest.raises(venvs.PeerError, match="not installable: ERROR: no torch"):
        venvs.run_worker(status, None, None, 1)
    row = compare.run_one("opendataval-dvrl", None, 0, {}, status, 1)
    assert row["status"] == "not installable: ERROR: no torch" and "auroc" not in row


def test_quick_defaults_and_settings_keys():
    args = compare.parse(["--quick"])
    assert (args.seeds, args.noise, args.reinforce_updates) == ([0, 1, 2], [0.2], 50)
    assert args.csv.name == "peers_quick.csv" and args.md.name == "peers_quick.md"
    full = compare.parse([])
    assert (full.seeds, full.noise) == ([0, 1, 2, 3, 4], [0.1, 0.2, 0.4])
    assert json.dumps(compare.settings_for("loo", compare.parse(["--loo-cold"]))) == (
        '{"loo_warm_start": false}')

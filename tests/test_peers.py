"""The peer comparison's pure helpers (benchmarks/peers): the .npz exchange with the
workers, intervals, resume keys, pip's error line and the table. No peer library, no
extra venv, no network."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.peers import exchange, table, venvs


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


def _row(method, seed, status="ok", auroc=0.9, settings='{"k": 5}', **extra):
    return {"dataset": "adult", "noise_rate": "0.2", "seed": str(seed), "method": method,
            "library": "lib", "version": "1.0", "settings": settings, "status": status,
            "auroc": auroc, "f1": 0.6, "robust_acc": 0.8, "unweighted_acc": 0.79,
            "clean_acc": 0.82, "seconds": 1.5, "own_flags_f1": "", **extra}


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


def test_peer_rows_turn_harness_rows_into_the_table_with_errors_as_status():
    store = [{"task": "adult/noise-0.2", "noise_rate": "0.2", "seed": str(s), "agent": "cl",
              "kind": "method", "options": "", "error": "", "auroc": str(a), "f1": "0.6",
              "robust_acc": "0.8", "unweighted_acc": "0.79", "clean_acc": "0.82",
              "seconds": "1.5", "extra": json.dumps({"library": "cleanlab", "version": "2.9",
                                                     "own_flags_f1": 0.5})}
             for s, a in ((0, 0.8), (1, 0.9))]
    store.append({**store[0], "agent": "odv", "error": "PeerError: not installable: no torch",
                  "auroc": "", "extra": ""})
    rows = table.peer_rows(store)
    assert [(r["dataset"], r["method"], r["status"]) for r in rows] == [
        ("adult", "cl", "ok"), ("adult", "cl", "ok"),
        ("adult", "odv", "PeerError: not installable: no torch")]
    text = table.markdown(rows, ["cl", "odv"], title="T", command="cmd")
    assert "| cl | 0.850 ± 0.635 | 1.50 |" in text.splitlines()
    assert "cleanlab 2.9" in text and "PeerError: not installable: no torch (1 of 1 runs)" in text

"""The agent-quality benchmark's bookkeeping (benchmarks/agent_quality.py); no agent runs."""

from __future__ import annotations

import csv

import pytest

from benchmarks.agent_quality import append_row, summarise


def _row(seed: int, auroc: float, env_args: str = "") -> dict:
    return {"env": "DataValuation-Adult-v0", "env_args": env_args, "agent": "marginal",
            "seed": seed, "updates": 0, "fits": 0, "auroc": auroc, "gap": 0.5, "mean_value": 0.7,
            "seconds": 1.0, "auroc_curve": "[]"}


def test_runs_with_other_env_options_get_their_own_line():
    rows = [_row(0, 0.90), _row(1, 0.92), _row(0, 0.60, '{"predictor": "logistic"}')]
    old = {k: v for k, v in _row(2, 0.94).items() if k != "env_args"}  # an older CSV's row
    lines = summarise(rows + [old]).splitlines()[2:]
    assert len(lines) == 2
    defaults = next(line for line in lines if "| defaults |" in line)
    assert "| n/a | 3 | 0 | 0 | 0.920 | 0.900 | 0.940 |" in defaults  # B, seeds, updates, fits
    assert '{"predictor": "logistic"} | marginal | n/a | 1 | 0 | 0 | 0.600 |' in lines[1]


def test_best_batch_keeps_each_agent_at_its_best_batch_size_and_names_the_others():
    def run(label: str, size: int, seed: int, auroc: float) -> dict:
        env_args = f'{{"batch_size": {size}}}' if label.startswith("ppo") else ""
        return {**_row(seed, auroc, env_args), "agent": label, "batch_size": size}

    rows = [run("ppo", 50, 0, 0.70), run("ppo", 50, 1, 0.72),
            run("ppo", 100, 0, 0.76), run("ppo", 100, 1, 0.74),
            run("credit", 100, 0, 0.88), run("credit-b50", 50, 0, 0.86),
            run("credit-k4", 100, 0, 0.80)]  # another K: its own family
    lines = summarise(rows, best_batch=True).splitlines()[2:]
    assert [line.split(" | ")[2] for line in lines] == ["ppo", "credit", "credit-k4"]
    assert "| ppo | 100 (of 50, 100) | 2 |" in lines[0]
    assert "| 0.750 | 0.740 | 0.760 |" in lines[0]
    assert "| credit | 100 (of 50, 100) | 1 |" in lines[1]
    assert "| credit-k4 | 100 | 1 |" in lines[2]


def test_append_row_writes_a_header_once_and_refuses_other_columns(tmp_path):
    path = tmp_path / "runs.csv"
    append_row(path, _row(0, 0.9))
    append_row(path, _row(1, 0.8))
    with open(path, newline="") as f:
        assert [r["seed"] for r in csv.DictReader(f)] == ["0", "1"]
    older = {k: v for k, v in _row(2, 0.7).items() if k != "env_args"}
    with pytest.raises(ValueError, match="has the columns .*pass another --csv"):
        append_row(path, older)

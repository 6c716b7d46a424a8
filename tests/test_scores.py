"""The one metric registry (:mod:`dvrl_env.evaluation.scores`): the bench's spec, table and
cells take its names and columns, and the bench and the run report remove points at the
same fractions, so their numbers agree."""

from __future__ import annotations

import numpy as np
import pytest

from dvrl_env import from_arrays
from dvrl_env.app import report
from dvrl_env.app.bench import spec, store, tables
from dvrl_env.app.bench.run_cell import score
from dvrl_env.evaluation import scores
from tests.conftest import separable_arrays
from tests.test_evaluation import noisy_dataset, with_mask  # noqa: F401  (a fixture)


def test_the_bench_reads_the_registrys_names_and_columns():
    assert spec.METRICS == tuple(scores.SCORES) == ("auroc", "f1", "gap", "remove_high_low",
                                                    "robust")
    missing = [c for c in scores.COLUMNS if c not in store.COLUMNS or c not in tables.NUMERIC]
    assert not missing, f"registry columns the bench's table does not hold: {missing}"
    assert scores.RANK_COLUMN in scores.SCORES["auroc"].columns


def test_bench_and_report_remove_at_the_same_fractions(noisy_dataset):  # noqa: F811
    values = np.where(noisy_dataset.noisy_mask, -1.0, 1.0) + np.linspace(0, 0.1, 120)
    row = score(noisy_dataset, values, scores.METRICS, {})
    curve = report.compute_results(noisy_dataset, values).remove_high_low
    np.testing.assert_array_equal(curve.fractions, scores.REMOVE_FRACTIONS)
    removed = curve.fractions > 0
    assert row["remove_high"] == pytest.approx(np.mean(curve.remove_high[removed]), abs=1e-6)
    assert row["remove_low"] == pytest.approx(np.mean(curve.remove_low[removed]), abs=1e-6)
    assert row["remove_low"] > row["remove_high"]  # good values: removing low ones helps
    assert set(row) == set(scores.COLUMNS) and row["auroc"] == 1.0


def test_a_metric_that_cannot_be_taken_is_noted_and_others_raise():
    x, y = separable_arrays(n=120, d=3, seed=1)
    ds = with_mask(from_arrays(x[:60], y[:60], x[60:90], y[60:90], x[90:], y[90:]),
                   np.arange(6))
    notes: dict = {}
    row = scores.score_values(ds, -np.ones(60), ("robust",), notes)
    assert set(row) == {"auroc"}  # robust's columns left out, not written as zeros
    assert "positive" in notes["robust_note"]
    with pytest.raises(ValueError):
        scores.score_values(ds, np.ones(59), ("auroc",), {})  # a wrong length is an error

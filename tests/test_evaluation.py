"""Evaluation experiments against hand-computed values on small arrays, and their plots."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeClassifier

from dvrl_env import from_arrays
from dvrl_env.evaluation import (
    clean_corrupted_means,
    detection_auroc,
    detection_scores,
    discovery_curve,
    remove_high_low,
    robust_learning,
    value_gap,
    value_histogram,
    value_trajectory,
)
from tests.conftest import separable_arrays

# Ten points; corrupted at 1, 4, 7. Ascending by value: 1 (noisy), 9, 7 (noisy),
# 4 (noisy), 5, 3, 2, 8, 0, 6.
HAND_VALUES = np.array([0.9, 0.1, 0.8, 0.7, 0.5, 0.6, 0.95, 0.3, 0.85, 0.2])
HAND_NOISY = np.array([1, 4, 7])


def with_mask(dataset, noisy_idx):
    """The dataset with exactly ``noisy_idx`` corrupted (binary labels flipped there)."""
    mask = np.zeros(dataset.n_train, dtype=bool)
    mask[noisy_idx] = True
    y = np.where(mask, 1 - dataset.y_train_clean, dataset.y_train_clean)
    return dataclasses.replace(dataset, y_train=y, noisy_mask=mask,
                               noise_rate=float(mask.mean()))


@pytest.fixture
def hand_dataset():
    x, y = separable_arrays(n=30, d=2, seed=1)
    return with_mask(from_arrays(x[:10], y[:10], x[10:20], y[10:20], x[20:], y[20:]),
                     HAND_NOISY)


@pytest.fixture
def noisy_dataset():
    """120 training points, the 36 (30%) corrupted ones chosen with a fixed seed."""
    x, y = separable_arrays(n=420, d=3, seed=2)
    ds = from_arrays(x[:120], y[:120], x[120:220], y[120:220], x[220:], y[220:])
    noisy = np.random.default_rng(0).choice(120, size=36, replace=False)
    return with_mask(ds, noisy)


def test_discovery_curve_matches_hand_count(hand_dataset):
    curve = discovery_curve(hand_dataset, HAND_VALUES, fractions=[0, 0.1, 0.2, 0.3, 0.4, 0.5])
    assert curve.n_inspected.tolist() == [0, 1, 2, 3, 4, 5]
    np.testing.assert_allclose(curve.found, [0, 1 / 3, 1 / 3, 2 / 3, 1, 1])
    np.testing.assert_allclose(curve.optimal, [0, 1 / 3, 2 / 3, 1, 1, 1])
    np.testing.assert_allclose(curve.random, [0, 0.1, 0.2, 0.3, 0.4, 0.5])
    assert curve.noise_fraction == pytest.approx(0.3)
    assert np.all(curve.found <= curve.optimal + 1e-12)


def test_discovery_takes_the_floor_and_breaks_ties_by_index(hand_dataset):
    # 0.15 * 10 = 1.5 -> 1 point inspected; 0.29 * 10 -> 2 points
    curve = discovery_curve(hand_dataset, HAND_VALUES, fractions=[0.15, 0.29])
    assert curve.n_inspected.tolist() == [1, 2]
    # all values tied: the lowest indices are inspected first (0, 1, 2, 3, 4, ...)
    tied = discovery_curve(hand_dataset, np.ones(10), fractions=[0.2, 0.4, 0.5])
    np.testing.assert_allclose(tied.found, [1 / 3, 1 / 3, 2 / 3])
    # the default grid is 0, 0.05, ..., 0.5
    default = discovery_curve(hand_dataset, HAND_VALUES)
    np.testing.assert_allclose(default.fractions, np.arange(11) * 0.05)
    assert default.n_inspected.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5]


def test_detection_scores_match_hand_computation(hand_dataset):
    scores = detection_scores(hand_dataset, HAND_VALUES)
    # AUROC: noisy values 0.1, 0.3, 0.5 lie below 7, 6 and 6 of the 7 clean ones
    assert scores.auroc == pytest.approx(19 / 21)
    assert scores.auroc == pytest.approx(detection_auroc(HAND_VALUES, hand_dataset.noisy_mask))
    # AP: corrupted points sit at ranks 1, 3, 4 -> precisions 1, 2/3, 3/4
    assert scores.auprc == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    assert scores.auprc == pytest.approx(
        average_precision_score(hand_dataset.noisy_mask, -HAND_VALUES))
    # flag the lowest round(0.3 * 10) = 3: indices 1, 9, 7 -> two of three corrupted
    assert scores.n_flagged == 3
    assert scores.precision == pytest.approx(2 / 3)
    assert scores.recall == pytest.approx(2 / 3)
    assert scores.f1 == pytest.approx(2 / 3)
    flagged = np.isin(np.arange(10), [1, 9, 7])
    assert scores.f1 == pytest.approx(f1_score(hand_dataset.noisy_mask, flagged))
    perfect = detection_scores(hand_dataset, (~hand_dataset.noisy_mask).astype(float))
    assert (perfect.auroc, perfect.auprc, perfect.f1) == (1.0, 1.0, 1.0)


def test_results_serialise_to_strict_json(hand_dataset):
    for result in (discovery_curve(hand_dataset, HAND_VALUES),
                   detection_scores(hand_dataset, HAND_VALUES),
                   value_histogram(HAND_VALUES, hand_dataset.noisy_mask, bins=4)):
        text = json.dumps(result.to_dict(), allow_nan=False)
        assert json.loads(text).keys() == result.to_dict().keys()
    d = discovery_curve(hand_dataset, HAND_VALUES, fractions=[0.1]).to_dict()
    assert d["found"] == [pytest.approx(1 / 3)] and d["n_inspected"] == [1]


def test_remove_high_low_ordering(noisy_dataset):
    mask = noisy_dataset.noisy_mask
    jitter = np.random.default_rng(3).uniform(0, 0.1, size=len(mask))
    values = np.where(mask, 0.2, 0.8) + jitter  # every corrupted point below every clean one
    result = remove_high_low(noisy_dataset, values)
    assert result.n_removed.tolist() == [int(np.floor(x * 120 + 1e-9))
                                         for x in np.arange(11) * 0.05]
    assert result.remove_high[0] == result.remove_low[0]  # nothing removed: same model
    # removing the 36 corrupted points (30%) first does not hurt ...
    assert result.remove_low[6] >= result.remove_low[0]
    assert result.remove_low.min() >= result.remove_low[0] - 0.02
    # ... removing the clean ones first leaves mostly corrupted labels and does
    assert result.remove_high[-1] < result.remove_low[-1] - 0.2
    assert result.remove_high[-1] < result.remove_high[0] - 0.2
    again = remove_high_low(noisy_dataset, values)
    np.testing.assert_array_equal(again.remove_high, result.remove_high)
    assert result.model == "LogisticRegression"
    json.dumps(result.to_dict(), allow_nan=False)


def test_remove_high_low_single_class_remainder_predicts_that_class():
    x = np.array([[0.0], [0.1], [1.0], [1.1]], dtype=np.float32)
    y = np.array([0, 0, 1, 1])
    x_test = np.array([[0.0], [1.0], [1.0], [0.05], [1.2]], dtype=np.float32)
    y_test = np.array([0, 1, 1, 0, 1])
    ds = from_arrays(x, y, x, y, x_test, y_test)
    values = np.array([0.9, 0.8, 0.1, 0.2])  # class 1 is low-valued
    result = remove_high_low(ds, values, fractions=[0.0, 0.5], model=DecisionTreeClassifier())
    assert result.remove_low.tolist() == [1.0, 2 / 5]  # only class 0 left: 2 of 5 test
    assert result.remove_high.tolist() == [1.0, 3 / 5]  # only class 1 left: 3 of 5
    assert result.model == "DecisionTreeClassifier"


def test_robust_learning_ceiling_and_weighting(noisy_dataset):
    values = (~noisy_dataset.noisy_mask).astype(float)  # corrupted points get weight 0
    result = robust_learning(noisy_dataset, values)
    # 30% flipped labels cost accuracy here; the clean labels and the weights win it back
    assert result.clean > result.unweighted
    assert result.weighted > result.unweighted
    assert result.clean >= result.weighted
    # zero weight on every corrupted point equals training on the clean subset
    keep = ~noisy_dataset.noisy_mask
    subset = remove_high_low(noisy_dataset, values, fractions=[0.3])
    assert subset.remove_low[0] == pytest.approx(result.weighted)
    assert keep.sum() == 120 - subset.n_removed[0]
    inverted = robust_learning(noisy_dataset, 1 - values)  # only corrupted points count
    assert inverted.weighted < result.unweighted - 0.2
    assert json.loads(json.dumps(result.to_dict()))["model"] == "LogisticRegression"


def test_clean_corrupted_means_from_log_match_direct_computation(tmp_path, hand_dataset):
    mask = hand_dataset.noisy_mask
    rng = np.random.default_rng(5)
    snapshots = [rng.uniform(size=10) for _ in range(4)]
    path = tmp_path / "progress.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "time", "reward", "mean_value", "auroc", "value_gap", "agent"])
        for step, v in enumerate(snapshots, start=1):
            writer.writerow([step, 0.5 * step, 0.01 * step, v.mean(), detection_auroc(v, mask),
                             value_gap(v, mask), "reinforce"])
    traj = value_trajectory(path, noise_fraction=float(mask.mean()))
    np.testing.assert_array_equal(traj.step, [1, 2, 3, 4])
    np.testing.assert_allclose(traj.clean_mean, [v[~mask].mean() for v in snapshots])
    np.testing.assert_allclose(traj.corrupted_mean, [v[mask].mean() for v in snapshots])
    np.testing.assert_allclose(traj.auroc, [detection_auroc(v, mask) for v in snapshots])
    np.testing.assert_allclose(traj.reward, [0.01, 0.02, 0.03, 0.04])
    assert "agent" not in traj.columns and "time" in traj.columns
    json.dumps(traj.to_dict(), allow_nan=False)
    clean, corrupted = clean_corrupted_means(np.array([0.5]), np.array([0.2]), 0.25)
    np.testing.assert_allclose([clean[0], corrupted[0]], [0.55, 0.35])


def test_value_trajectory_with_missing_columns_and_cells(tmp_path):
    path = tmp_path / "progress.csv"
    path.write_text("step,reward,mean_value\n1,0.1,0.5\n2,,0.4\n")
    traj = value_trajectory(path)
    assert traj.auroc is None and traj.value_gap is None and traj.clean_mean is None
    assert traj.reward[0] == 0.1 and np.isnan(traj.reward[1])
    assert traj.to_dict()["reward"] == [0.1, None]
    with pytest.raises(ValueError, match="lacks mean_value or value_gap"):
        value_trajectory(path, noise_fraction=0.2)


def test_value_histogram_splits_by_mask_on_shared_bins():
    values = np.array([0.0, 0.1, 0.2, 0.6, 0.9, 1.0])
    mask = np.array([True, True, False, False, False, False])
    hist = value_histogram(values, mask, bins=2)
    np.testing.assert_allclose(hist.edges, [0.0, 0.5, 1.0])
    assert hist.counts.tolist() == [3, 3]
    assert hist.counts_clean.tolist() == [1, 3]
    assert hist.counts_corrupted.tolist() == [2, 0]
    plain = value_histogram(values, bins=2)
    assert plain.counts_clean is None and plain.to_dict()["counts_corrupted"] is None


def test_error_messages(tmp_path, hand_dataset, noisy_dataset):
    no_mask = dataclasses.replace(hand_dataset, noisy_mask=np.zeros(10, dtype=bool))
    for fn in (discovery_curve, detection_scores):
        with pytest.raises(ValueError, match="needs a known noise mask"):
            fn(no_mask, HAND_VALUES)
    remove_high_low(no_mask, HAND_VALUES, fractions=[0.0])  # needs no mask
    with pytest.raises(ValueError, match=r"shape \(10,\)"):
        discovery_curve(hand_dataset, HAND_VALUES[:9])
    with pytest.raises(ValueError, match="NaN or inf"):
        detection_scores(hand_dataset, np.where(np.arange(10) == 3, np.nan, HAND_VALUES))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        discovery_curve(hand_dataset, HAND_VALUES, fractions=[0.1, 1.5])
    with pytest.raises(ValueError, match="leaves no training point"):
        remove_high_low(hand_dataset, HAND_VALUES, fractions=[1.0])
    with pytest.raises(ValueError, match="every sample weight would be zero"):
        robust_learning(noisy_dataset, -np.ones(120))
    with pytest.raises(TypeError, match="KNeighborsClassifier.fit takes no sample_weight"):
        robust_learning(noisy_dataset, np.ones(120), model=KNeighborsClassifier())
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        clean_corrupted_means(np.zeros(2), np.zeros(2), 0.0)
    bad = tmp_path / "bad.csv"
    bad.write_text("mean_value,auroc\n0.5,0.6\n")
    with pytest.raises(ValueError, match="no 'step' column"):
        value_trajectory(bad)
    bad.write_text("step,mean_value\n")
    with pytest.raises(ValueError, match="no rows"):
        value_trajectory(bad)
    with pytest.raises(ValueError, match="finite values"):
        value_histogram(np.array([]))


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_every_plot_writes_a_png_atomically(tmp_path, hand_dataset, noisy_dataset):
    from dvrl_env.evaluation import plots

    mask = noisy_dataset.noisy_mask
    values = np.where(mask, 0.2, 0.8)
    log = tmp_path / "log" / "progress.csv"
    log.parent.mkdir()
    log.write_text("step,mean_value,value_gap,auroc\n1,0.5,0.0,0.5\n2,0.6,0.3,0.8\n")
    no_auroc = tmp_path / "log" / "plain.csv"
    no_auroc.write_text("step,reward\n1,0.0\n2,0.1\n")
    out = tmp_path / "figures"
    jobs = [
        (plots.plot_discovery, discovery_curve(hand_dataset, HAND_VALUES)),
        (plots.plot_remove_high_low,
         remove_high_low(noisy_dataset, values, fractions=[0, 0.25, 0.5])),
        (plots.plot_robust_learning, robust_learning(noisy_dataset, values)),
        (plots.plot_value_trajectory, value_trajectory(log, noise_fraction=0.3)),
        (plots.plot_value_trajectory, value_trajectory(no_auroc)),
        (plots.plot_value_histogram, value_histogram(values, mask)),
        (plots.plot_value_histogram, value_histogram(values)),
    ]
    written = []
    for i, (plot, result) in enumerate(jobs):
        path = out / f"{i}_{plot.__name__}.png"
        returned = plot(result, path, title="DataValuation-Digits-v0, reinforce, seed 0")
        assert returned == path
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000
        written.append(path.name)
    assert sorted(p.name for p in out.iterdir()) == sorted(written)  # no temp files left
    # overwriting replaces the file in place, again without leftovers
    plots.plot_discovery(jobs[0][1], out / written[0], title="again")
    assert sorted(p.name for p in out.iterdir()) == sorted(written)

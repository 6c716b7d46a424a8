"""Every row valued with no clean validation set: folds, the cross-fitted env, the CSV
command, rounds, label_issues.csv and find_label_issues."""

from __future__ import annotations

import csv
import json
import signal

import numpy as np
import pandas as pd
import pytest
import torch

import agents
import dvrl_env
from dvrl_env import DataValuationEnv, DataValuationVectorEnv, from_arrays
from dvrl_env.app import cli
from dvrl_env.data.crossfit import (
    cross_fitted_probabilities,
    make_folds,
    reference_weights,
)
from dvrl_env.evaluation.metrics import detection_auroc


def blobs(n: int, classes: int = 2, seed: int = 0, weights=None):
    """Separable Gaussian blobs: labels a linear model recovers."""
    rng = np.random.default_rng(seed)
    y = rng.choice(classes, size=n, p=weights)
    centers = rng.normal(0, 3, size=(classes, 4))
    return (centers[y] + rng.normal(size=(n, 4))).astype(np.float32), y


def table(path, n=240, classes=2, noise=0.2, seed=0, weights=None):
    """A CSV of blobs with ``noise`` of its labels flipped; returns the flip mask."""
    x, y = blobs(n, classes, seed, weights)
    noisy, mask = dvrl_env.add_label_noise(y, classes, noise, seed)
    names = ["cat", "dog", "emu", "fox"]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["a", "b", "c", "d", "kind"])
        for row, label in zip(x, noisy, strict=True):
            writer.writerow([f"{v:.4f}" for v in row] + [names[label]])
    return mask


def cross_fit_dataset(n=200, classes=2, noise=0.2):
    x, y = blobs(n, classes)
    # valid/test are the training rows, as load_csv(validation="cross-fit") makes them
    return from_arrays(x, y, x, y, noise_rate=noise, seed=0,
                       meta={"validation": "cross-fit"})


def read_values(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---- folds and the out-of-fold model -----------------------------------------------------

def test_folds_are_stratified_balanced_and_seeded():
    y = np.array([0] * 53 + [1] * 17 + [2] * 30)
    fold_of = make_folds(y, 5, seed=3)
    sizes = np.bincount(fold_of)
    assert sizes.max() - sizes.min() <= 1
    for c in range(3):  # every class spread over the folds as evenly as it can be
        per_fold = np.bincount(fold_of[y == c], minlength=5)
        assert per_fold.max() - per_fold.min() <= 1
    assert np.array_equal(fold_of, make_folds(y, 5, seed=3))
    assert not np.array_equal(fold_of, make_folds(y, 5, seed=4))


def test_too_few_rows_of_a_class_names_it_and_the_minimum():
    y = np.array([0] * 40 + [1] * 7)
    with pytest.raises(ValueError, match=r"class 'dog' has 7 row\(s\); every class needs at "
                                         r"least 10 \(2 per fold\)"):
        make_folds(y, 5, seed=0, class_names=["cat", "dog"])


def test_a_rows_probabilities_never_depend_on_its_own_label():
    x, y = blobs(150)
    fold_of = make_folds(y, 5, seed=0)
    before, _ = cross_fitted_probabilities(x, y, 2, fold_of, grid=(1.0,))
    flipped = y.copy()
    flipped[7] = 1 - flipped[7]
    after, _ = cross_fitted_probabilities(x, flipped, 2, fold_of, grid=(1.0,))
    np.testing.assert_array_equal(before[7], after[7])  # its own fold's model is unchanged
    others = fold_of != fold_of[7]
    assert not np.array_equal(before[others], after[others])  # the label reaches the others


def test_reference_weights_are_percentile_ranks_with_ties_equal():
    w = reference_weights(np.array([5.0, -1.0, 3.0, 3.0, 10.0]))
    np.testing.assert_allclose(w, [0.75, 0.0, 0.375, 0.375, 1.0])


# ---- the env ---------------------------------------------------------------------------

def test_cross_fit_batches_lie_in_one_fold_and_are_scored_on_the_others():
    env = DataValuationEnv(cross_fit_dataset(), validation="cross-fit", batch_size=20,
                           predictor="logistic", predictor_lr=0.05, predictor_epochs=3,
                           reset_mode="episode", baseline="moving_average")
    fold_of = env.config.cross_fit.fold_of
    obs, info = env.reset(seed=1)
    for _ in range(4):
        batch = info["indices"]
        assert len(set(fold_of[batch])) == 1
        obs, reward, _, _, info = env.step(np.ones(20, dtype=np.int8))
        model = env.core.predictors.module  # kept after the step in "episode" mode
        outside = fold_of != fold_of[batch[0]]
        d = env.dataset
        with torch.no_grad():  # the same product as the env's, so the same rounding
            predicted = model(torch.as_tensor(d.x_train)).argmax(1).numpy()[outside]
        assert info["metric"] == pytest.approx(np.mean(predicted == d.y_train[outside]),
                                               abs=1e-6)


def test_cross_fit_fixed_baseline_is_one_per_fold_and_weights_move_the_reward():
    data = cross_fit_dataset()
    options = dict(validation="cross-fit", batch_size=20, predictor="logistic",
                   predictor_epochs=2)
    env = DataValuationEnv(data, **options)
    _, info = env.reset(seed=0)
    assert len(env.fixed_baseline) == 5 and info["baseline"] in env.fixed_baseline
    weights = np.where(data.noisy_mask, 0.0, 1.0)  # a reference without the flipped rows
    clean = DataValuationEnv(data, **options, reference_weights=weights)
    clean.reset(seed=0)
    assert clean.fixed_baseline != env.fixed_baseline  # scored on other rows


def test_vector_env_cross_fits_every_slot():
    envs = DataValuationVectorEnv(3, dataset=cross_fit_dataset(classes=3),
                                  validation="cross-fit", batch_size=16,
                                  predictor="logistic", predictor_epochs=2)
    _, info = envs.reset(seed=[0, 1, 2])
    fold_of = envs.config.cross_fit.fold_of
    for k in range(3):
        assert len(set(fold_of[info["indices"][k]])) == 1
    _, rewards, *_ = envs.step(np.ones((3, 16), dtype=np.int8))
    assert np.isfinite(rewards).all()


def test_cross_fitted_baselines_are_one_per_fold_shared_by_every_slot():
    """One fixed baseline per fold, trained once (F fits for K slots) from data_seed: the
    single env's, each slot's reward measured against its batch's fold's."""
    options = dict(dataset=cross_fit_dataset(classes=3), validation="cross-fit",
                   batch_size=16, predictor="logistic", predictor_epochs=2)
    envs = DataValuationVectorEnv(4, **options)
    _, info = envs.reset(seed=[0, 1, 2, 3])
    folds = envs.config.cross_fit.folds
    shared = envs.fixed_baselines[0]
    assert len(shared) == folds and len(set(shared)) > 1
    assert all(b == shared for b in envs.fixed_baselines) and envs.fits == folds
    fold_of = envs.config.cross_fit.fold_of
    assert info["baseline"].tolist() == [shared[fold_of[rows[0]]] for rows in info["indices"]]
    single = DataValuationEnv(**options)
    single.reset(seed=7)
    assert single.fixed_baseline == shared and single.fits == folds
    envs.reset(seed=[10, 11, 12, 13])
    assert envs.fits == folds and envs.fixed_baselines == (shared,) * 4


@pytest.mark.parametrize("bad, message", [
    ({"validation": "kfold"}, "Unknown validation 'kfold'"),
    ({"reference_weights": np.ones(200)}, "pass validation='cross-fit' with them"),
    ({"validation": "cross-fit", "reference_weights": np.ones(3)},
     r"one weight per training row, shape \(200,\)"),
    ({"validation": "cross-fit", "reference_weights": np.full(200, 2.0)}, r"lie in \[0, 1\]"),
    ({"validation": "cross-fit", "batch_size": 100}, "the smallest fold's rows"),
])
def test_cross_fit_options_are_checked(bad, message):
    x, y = blobs(200)
    data = from_arrays(x, y, x[:50], y[:50])
    with pytest.raises(ValueError, match=message):
        DataValuationEnv(data, **bad)


def test_a_dataset_loaded_for_cross_fitting_refuses_the_given_validation():
    with pytest.raises(ValueError, match="make the env with validation='cross-fit'"):
        DataValuationEnv(cross_fit_dataset())


def test_an_rl_agent_learns_in_cross_fit_mode():
    env = DataValuationEnv(cross_fit_dataset(n=300, noise=0.3), validation="cross-fit",
                           marginal_information=False)
    agent = agents.make("credit", env, seed=0, num_samples=4, batch_size=40).learn(
        40, progress_bar=False)
    assert detection_auroc(agent.data_values(), env.dataset.noisy_mask) > 0.7


# ---- the CSV command ---------------------------------------------------------------------

@pytest.mark.parametrize("classes, weights", [(2, [0.85, 0.15]), (3, None)],
                         ids=["unbalanced", "three-classes"])
def test_the_plain_csv_command_values_every_row(tmp_path, classes, weights):
    mask = table(tmp_path / "t.csv", n=300, classes=classes, weights=weights)
    out = tmp_path / "run"
    assert cli.main(["value", "--csv", str(tmp_path / "t.csv"), "--label-column", "kind",
                     "--out", str(out), "--quiet"]) == 0
    rows = read_values(out / "values.csv")
    assert [int(r["csv_line"]) for r in rows] == list(range(2, 302))  # every row, once
    values = np.array([float(r["value"]) for r in rows])
    assert detection_auroc(values, mask) > 0.9
    run = json.loads((out / "run.json").read_text())
    assert run["agent"] == "marginal" and run["rounds"] == 3
    assert run["env_args"]["validation"] == "cross-fit"
    issues = read_values(out / "label_issues.csv")
    assert issues and all(r["given_label"] != r["preferred_label"] for r in issues)
    ranked = [float(r["value"]) for r in issues]
    assert ranked == sorted(ranked)
    # the flagged rows are mostly the flipped ones
    lines = [int(r["csv_line"]) for r in issues]
    assert np.mean(mask[np.array(lines) - 2]) > 0.6
    report = (out / "report.md").read_text()
    assert report.index("## Rows most likely mislabeled") < report.index("## Settings")
    assert "No clean validation set" in report and "ceiling" not in report
    assert "there is no test set" in report


def test_a_table_too_small_to_cut_into_folds_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "t.csv"
    path.write_text("a,kind\n" + "".join(f"{i},cat\n" for i in range(30))
                    + "".join(f"{i},dog\n" for i in range(6)))
    assert cli.main(["value", "--csv", str(path), "--label-column", "kind",
                     "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "class 'dog' has 6 row(s)" in err and "at least 10" in err
    assert "Traceback" not in err


def test_rounds_need_cross_fitting(tmp_path, capsys):
    assert cli.main(["value", "--env", "DataValuation-Digits-v0", "--rounds", "2",
                     "--out", str(tmp_path / "run")]) == 2
    assert "--env-arg validation=cross-fit" in capsys.readouterr().err


def test_a_run_stopped_in_its_second_round_resumes_to_the_same_values(tmp_path, monkeypatch):
    table(tmp_path / "t.csv", n=200)
    common = ["--csv", str(tmp_path / "t.csv"), "--label-column", "kind", "--agent",
              "reinforce", "--agent-arg", "num_samples=2", "--env-arg", "batch_size=20",
              "--env-arg", "predictor_epochs=2", "--steps", "4", "--rounds", "2",
              "--checkpoint-every", "1", "--quiet"]
    assert cli.main(["value", *common, "--out", str(tmp_path / "whole")]) == 0
    original = cli.Checkpointer.on_step

    def stop_in_round_two(self, agent, step, logs):
        if self.metadata.get("round") == 1 and step == 2:
            self.stopper.signal = signal.SIGTERM
        return original(self, agent, step, logs)

    monkeypatch.setattr(cli.Checkpointer, "on_step", stop_in_round_two)
    parted = tmp_path / "parted"
    assert cli.main(["value", *common, "--out", str(parted)]) == 128 + signal.SIGTERM
    monkeypatch.setattr(cli.Checkpointer, "on_step", original)
    assert cli.main(["value", "--resume", str(parted), "--quiet"]) == 0
    assert read_values(parted / "values.csv") == read_values(tmp_path / "whole" / "values.csv")


# ---- the Python entry point --------------------------------------------------------------

@pytest.mark.parametrize("classes, weights", [(2, None), (2, [0.85, 0.15]), (3, None)],
                         ids=["balanced", "unbalanced", "three-classes"])
def test_find_label_issues_gives_one_row_per_input_row(tmp_path, classes, weights):
    mask = table(tmp_path / "t.csv", n=240, classes=classes, weights=weights)
    frame = pd.read_csv(tmp_path / "t.csv")
    frame.index = [f"r{i}" for i in range(len(frame))]  # the user's own index is kept
    issues = dvrl_env.find_label_issues(frame, label="kind", rounds=2)
    assert sorted(issues.index) == sorted(frame.index) and len(issues) == 240
    assert list(issues["rank"]) == list(range(1, 241))
    values = issues.loc[frame.index, "value"].to_numpy()
    assert detection_auroc(values, mask) > 0.9
    flagged = issues[issues.flagged]
    assert (flagged.given_label != flagged.preferred_label).all()
    assert (frame.loc[issues.index, "kind"].to_numpy() == issues.given_label.to_numpy()).all()


def test_find_label_issues_refuses_a_missing_label_column():
    with pytest.raises(ValueError, match="label 'y' is not a column"):
        dvrl_env.find_label_issues(pd.DataFrame({"a": [1, 2]}), label="y")


# ---- what the report says it measured ----------------------------------------------------

def test_without_a_test_split_the_report_says_accuracy_is_on_the_validation_set(tmp_path):
    from dvrl_env.app import report
    from dvrl_env.app.runs import RunDir

    x, y = blobs(200)
    data = from_arrays(x[:150], y[:150], x[150:], y[150:], noise_rate=0.2, seed=0)
    assert data.meta["test_is_valid"]
    values = np.random.default_rng(0).random(150)
    settings = {"env": "toy", "agent": "random", "seed": 0, "env_args": {}, "agent_args": {}}
    metrics = report.write_run(RunDir(tmp_path), data, values, settings, seconds=1.0,
                               steps_done=1)
    text = (tmp_path / "report.md").read_text()
    assert "test accuracy is measured on the validation set" in text
    assert metrics["robust_learning"]["clean"] is not None  # the noise is known here


def test_a_trajectory_without_auroc_has_no_empty_panel(tmp_path):
    import matplotlib.image

    from dvrl_env.evaluation import plots
    from dvrl_env.evaluation.results import ValueTrajectory

    def width(auroc):
        step = np.arange(1.0, 4.0)
        traj = ValueTrajectory(step=step, mean_value=np.array([0.5, 0.4, 0.3]),
                               auroc=auroc, value_gap=None, reward=None, clean_mean=None,
                               corrupted_mean=None, noise_fraction=None, columns={})
        path = plots.plot_value_trajectory(traj, tmp_path / f"{auroc is None}.png", "t")
        return matplotlib.image.imread(path).shape[1]

    assert width(None) < 0.7 * width(np.array([0.6, 0.7, 0.8]))


@pytest.mark.parametrize("name, options", [
    ("reinforce", {"num_samples": 2}), ("gumbel", {}), ("ppo", {}), ("a2c", {}),
    ("critic", {}), ("credit", {}), ("oracle", {})])
def test_every_agent_values_every_row_in_cross_fit_mode(name, options):
    data = cross_fit_dataset(n=300)
    env = DataValuationEnv(data, validation="cross-fit", batch_size=50, predictor="logistic",
                           predictor_lr=0.05, predictor_epochs=2)
    agent = agents.make(name, env, seed=0, **options).learn(2, progress_bar=False)
    values = agent.data_values()
    assert values.shape == (300,) and np.isfinite(values).all()
    assert len(np.unique(values)) > 1  # a value per row, not one constant
    assert name == "oracle" or agent.fits_used > 0  # they learned from the env's rewards


def test_a_cross_fitted_env_state_restores_exactly():
    options = dict(validation="cross-fit", batch_size=20, predictor="logistic",
                   predictor_epochs=2, reset_mode="episode")
    data = cross_fit_dataset()
    env = DataValuationEnv(data, **options)
    env.reset(seed=4)
    env.step(np.ones(20, dtype=np.int8))
    state = env.state_dict()
    ahead = [env.step(np.ones(20, dtype=np.int8))[1:] for _ in range(3)]
    other = DataValuationEnv(data, **options)
    other.reset(options={"state": state})
    assert other.fixed_baseline == env.fixed_baseline and len(other.fixed_baseline) == 5
    again = [other.step(np.ones(20, dtype=np.int8))[1:] for _ in range(3)]
    for (r1, *_, i1), (r2, *_, i2) in zip(ahead, again, strict=True):
        assert r1 == r2 and np.array_equal(i1["indices"], i2["indices"])


def test_dvrl_bench_runs_agents_in_cross_fit_mode(tmp_path):
    from dvrl_env.app.bench.harness import run_bench

    spec = tmp_path / "spec.toml"
    spec.write_text('''
name = "cross-fit"
seeds = [0]
noise_rate = 0.2

[budget]
fits = 8

[[tasks]]
name = "adult"
env = "DataValuation-Adult-v0"
options = { validation = "cross-fit", predictor = "logistic", n_train = 200, n_valid = 20, \
            n_test = 40, batch_size = 20, predictor_epochs = 1 }

[[agents]]
name = "credit"
options = { num_samples = 2, batch_size = 20 }

[[agents]]
name = "marginal"
updates = 0
''')
    rows = run_bench(spec, tmp_path / "out", workers=1, in_process=True,
                     log=lambda message: None)
    by_agent = {row["agent"]: row for row in rows}
    assert set(by_agent) == {"credit", "marginal"}
    assert all(not row["error"] for row in rows)
    assert float(by_agent["marginal"]["auroc"]) > 0.7  # the cross-fitted marginal information
    assert int(by_agent["credit"]["fits"]) >= 8

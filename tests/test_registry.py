"""The dataset registry: a new dataset is one loader plus one entry, and gets an env id;
the one tabular encoder serves Adult and CSV files alike."""

from __future__ import annotations

import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import dvrl_env
from dvrl_env.app import cli
from dvrl_env.data import registry, sources
from dvrl_env.data.columns import Column, TableError, encode_rows
from dvrl_env.data.datasets import load_dataset
from dvrl_env.data.registry import (
    DatasetEntry,
    Splits,
    dataset_entry,
    register_dataset,
    split_pool,
)
from dvrl_env.data.tabular import load_csv
from dvrl_env.predictors import PREDICTORS, register_predictor
from tests.conftest import separable_arrays

TOY = "toy_blobs"
TOY_ID = "DataValuation-ToyBlobs-v0"
SMALL = {"batch_size": 8, "predictor_epochs": 1}


def load_toy(*, n_train: int, n_valid: int, n_test: int | None, seed: int = 0) -> Splits:
    """A loader as a new dataset module would write it: a few random separable arrays."""
    asked = (n_train, n_valid, n_test)
    x, y = separable_arrays(n=n_train + n_valid + (n_test or 10), d=3, seed=seed)
    a, b = n_train, n_train + n_valid
    return Splits(x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:], 2, {"sizes": asked})


@pytest.fixture
def toy_entry():
    """The toy dataset registered for one test, then removed from the registry, ENV_IDS
    and Gymnasium so that tests iterating over the ids never see it."""
    entry = register_dataset(DatasetEntry(
        name=TOY, env_id=TOY_ID, loader=load_toy, n_train=40, n_valid=30, n_test=None,
        description="random separable blobs", aliases=("toyblobs",),
    ))
    yield entry
    registry._ENTRIES.pop(TOY)
    dvrl_env.ENV_IDS.pop(TOY_ID)
    gym.registry.pop(TOY_ID)


def test_a_registered_dataset_loads_with_its_default_sizes(toy_entry):
    ds = load_dataset("Toy-Blobs", noise_rate=0.25, seed=1)
    assert ds.name == TOY and ds.meta["source"] == TOY and ds.meta["sizes"] == (40, 30, None)
    assert (ds.n_train, len(ds.y_valid), ds.num_features) == (40, 30, 3)
    assert ds.noisy_mask.sum() == 10
    assert load_dataset("toyblobs", n_train=20).n_train == 20  # an alias, a size overridden
    with pytest.raises(ValueError, match="image datasets only"):
        load_dataset(TOY, root="/tmp")


def test_a_registered_dataset_gets_a_working_env_id(toy_entry):
    assert dvrl_env.ENV_IDS[TOY_ID] == {"dataset": TOY}
    env = gym.make(TOY_ID, noise_rate=0.2, **SMALL)
    assert env.unwrapped.dataset.name == TOY and env.unwrapped.dataset.n_train == 40
    obs, info = env.reset(seed=0)
    assert obs["x"].shape == (8, 3)
    obs, reward, terminated, truncated, info = env.step(np.ones(8, dtype=np.int8))
    assert np.isfinite(reward) and terminated and info["n_selected"] == 8
    envs = gym.make_vec(TOY_ID, num_envs=2, **SMALL)
    assert isinstance(envs, dvrl_env.DataValuationVectorEnv)
    obs, info = envs.reset(seed=0)
    assert obs["x"].shape == (2, 8, 3)
    obs, rewards, terminated, truncated, info = envs.step(np.ones((2, 8), dtype=np.int8))
    assert rewards.shape == (2,) and np.isfinite(rewards).all()


def test_dvrl_envs_lists_a_registered_dataset_with_its_description(toy_entry, capsys):
    assert cli.main(["envs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.split() == [TOY_ID, f"{TOY}:", "random", "separable", "blobs"]
               for line in lines)
    assert len(lines) == len(dvrl_env.ENV_IDS)


def test_unknown_names_list_the_registered_ones(toy_entry):
    for make in (lambda: load_dataset("mnist"),
                 lambda: gym.make("DataValuation-v0", dataset="mnist", **SMALL)):
        with pytest.raises(ValueError, match="Unknown dataset 'mnist'") as err:
            make()
        for name in ("digits", "adult", "cifar10", "fashion_mnist", TOY):
            assert repr(name) in str(err.value)


def test_conflicting_or_malformed_entries_are_refused(toy_entry):
    assert register_dataset(toy_entry) is toy_entry  # the same entry again: a no-op
    other = {"env_id": "DataValuation-Other-v0", "loader": load_toy, "n_train": 5,
             "n_valid": 5, "n_test": 5, "description": "another"}
    with pytest.raises(ValueError, match=f"name '{TOY}' is already registered"):
        register_dataset(DatasetEntry(name=TOY, **other))
    with pytest.raises(ValueError, match="name 'cifar_10' is already registered for dataset "
                                         "'cifar10'"):
        register_dataset(DatasetEntry(name="cifar_10", **other))
    with pytest.raises(ValueError, match=f"env id '{TOY_ID}' is already registered"):
        register_dataset(DatasetEntry(name="other", **{**other, "env_id": TOY_ID}))
    with pytest.raises(ValueError, match="lower case.*'my_set'"):
        DatasetEntry(name="My-Set", **other)
    with pytest.raises(ValueError, match="n_valid must be a positive integer"):
        DatasetEntry(name="other", **{**other, "n_valid": 0})
    assert "other" not in registry.dataset_names()


def test_a_loader_must_return_splits(monkeypatch):
    monkeypatch.setattr(registry, "_ENTRIES", {**registry._ENTRIES, "plain": DatasetEntry(
        name="plain", env_id="DataValuation-Plain-v0", loader=lambda **kw: tuple(load_toy(**kw)),
        n_train=5, n_valid=5, n_test=5, description="returns a plain tuple")})
    with pytest.raises(TypeError, match="returned a tuple; loaders return .*Splits"):
        load_dataset("plain")


def test_env_ids_are_the_registry_s_and_the_readme_table_s():
    expected = {e.env_id: {"dataset": e.name} for e in registry.dataset_entries()}
    expected["DataValuation-v0"] = {}  # your own data
    assert expected == dvrl_env.ENV_IDS
    assert dataset_entry("CIFAR-10").name == "cifar10"
    assert dataset_entry("FashionMNIST").is_image and not dataset_entry("adult").is_image
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = re.findall(r"^\| `(DataValuation-[\w-]+)` \|", readme, flags=re.MULTILINE)
    assert sorted(table) == sorted(dvrl_env.ENV_IDS)


# --- the one tabular encoder ------------------------------------------------------------


def test_columns_one_hot_and_min_max_fitted_on_training_rows():
    age = Column.numeric("age", ["10", "30", None, "20", "50"])
    city = Column.categorical("city", ["rome", "oslo", "rome", None, "oslo"])
    encodings = [c.fit(np.array([0, 1, 2])) for c in (age, city)]
    assert [n for e in encodings for n in e.feature_names] == [
        "age", "age=missing", "city=(missing)", "city=oslo", "city=rome"]
    # Training range 10..30, median 20 fills the missing age; 50 is not clipped.
    np.testing.assert_array_equal(encode_rows((age, city), encodings, np.arange(5)), [
        [0.0, 0, 0, 0, 1], [1.0, 0, 0, 1, 0], [0.5, 1, 0, 0, 1], [0.5, 0, 1, 0, 0],
        [2.0, 0, 0, 1, 0]])
    with pytest.raises(TableError, match="no values in the training rows"):
        Column.numeric("age", [None, None, "3"]).fit(np.array([0, 1]))


TINY_SCHEMA = (("age", False), ("city", True), ("hours", False))
TINY_ROWS = [[str(20 + 7 * i % 41), ["oslo", "paris", "rome"][i % 3], str(10 + i % 5 * 10),
              ["<=50K", ">50K"][i % 2]] for i in range(24)]


@pytest.fixture
def tiny_adult(monkeypatch):
    """The Adult loader reading a tiny three-column table instead of the shipped files."""
    monkeypatch.setattr(sources, "ADULT_COLUMNS", TINY_SCHEMA)
    monkeypatch.setattr(sources, "_read_adult_rows",
                        lambda name: TINY_ROWS if name == "adult.data.gz" else [])
    sources._adult_table.cache_clear()
    yield
    sources._adult_table.cache_clear()


def test_adult_and_csv_files_encode_one_table_alike(tiny_adult, tmp_path):
    adult = load_dataset("adult", n_train=12, n_valid=6, n_test=6, seed=3)
    parts = split_pool(len(TINY_ROWS), 12, 6, 6, 3, "tiny")
    paths = [tmp_path / f"{split}.csv" for split in ("train", "valid", "test")]
    for path, rows in zip(paths, parts, strict=True):
        path.write_text("\n".join(["age,city,hours,income",
                                   *(",".join(TINY_ROWS[i]) for i in rows)]) + "\n")
    csv = load_csv(paths[0], "income", valid=paths[1], test=paths[2])
    assert adult.meta["feature_names"] == csv.meta["feature_names"] == [
        "age", "city=oslo", "city=paris", "city=rome", "hours"]
    for split in ("x_train", "y_train", "x_valid", "y_valid", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(adult, split), getattr(csv, split))
    ages = np.array([float(TINY_ROWS[i][0]) for i in parts[0]])
    np.testing.assert_allclose(adult.x_train[:, 0], (ages - ages.min()) / np.ptp(ages))
    assert np.all(adult.x_train[:, 1:4].sum(axis=1) == 1)


def tanh_net(num_features: int, num_classes: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(num_features, 6), torch.nn.Tanh(),
                               torch.nn.Linear(6, num_classes))


@pytest.fixture
def tanh_predictor():
    spec = register_predictor("test_tanh", tanh_net, skips_unweighted=True)
    yield spec
    del PREDICTORS["test_tanh"]


@pytest.mark.float_sensitive  # one fit each, skipping or not: FIT_ATOL (test_batched)
def test_a_registered_predictor_is_used_by_name_with_its_declared_traits(tanh_predictor):
    """A predictor is one factory plus one registration; declaring that unselected points
    may be skipped changes the work, not the rewards."""
    x, y = separable_arrays(n=120, d=4, seed=1)
    data = dvrl_env.from_arrays(x[:60], y[:60], x[60:], y[60:], noise_rate=0.2, seed=0)
    options = {"batch_size": 30, "predictor_epochs": 3, "metric": "neg_log_loss"}
    named = gym.make("DataValuation-v0", dataset=data, predictor="test_tanh", **options)
    plain = gym.make("DataValuation-v0", dataset=data, predictor=tanh_net, **options)
    assert named.unwrapped.config.predictor.skips_unweighted
    assert not plain.unwrapped.config.predictor.skips_unweighted  # a callable claims nothing
    named.reset(seed=2)
    plain.reset(seed=2)
    selection = np.random.default_rng(0).integers(0, 2, 30)
    reward = named.step(selection)[1]
    assert reward == pytest.approx(plain.step(selection)[1], abs=1e-5)
    vec = gym.make_vec("DataValuation-v0", num_envs=2, dataset=data, predictor="test_tanh",
                       **options)
    vec.reset(seed=[2, 2])  # two slots seeded as the single env
    np.testing.assert_allclose(vec.step(np.stack([selection] * 2))[1], [reward] * 2, atol=1e-5)
    with pytest.raises(ValueError, match="already registered"):
        register_predictor("test_tanh", tanh_net)
    with pytest.raises(ValueError, match=r"Unknown predictor 'tanh'.*'test_tanh'"):
        gym.make("DataValuation-v0", dataset=data, predictor="tanh")


def sequential_linear(num_features: int, num_classes: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(num_features, num_classes))


def linear_without_bias(num_features: int, num_classes: int) -> torch.nn.Module:
    return torch.nn.Linear(num_features, num_classes, bias=False)


@pytest.mark.parametrize(("factory", "built"), [(sequential_linear, "a Sequential"),
                                                (linear_without_bias, "a Linear without a bias")])
@pytest.mark.parametrize("num_envs", [1, 2])
def test_linear_true_is_checked_on_the_model_built(factory, built, num_envs):
    """``linear=True`` sends training to the closed form, which reads one Linear's weight
    and bias: any other model is refused at the first reset, before any step (it crashed
    mid-step before, in the single and the stacked closed-form paths)."""
    register_predictor("test_not_linear", factory, linear=True)
    try:
        x, y = separable_arrays(n=120, d=4, seed=1)
        data = dvrl_env.from_arrays(x[:60], y[:60], x[60:], y[60:], noise_rate=0.2, seed=0)
        env = (gym.make("DataValuation-v0", dataset=data, predictor="test_not_linear")
               if num_envs == 1 else
               gym.make_vec("DataValuation-v0", num_envs=2, dataset=data,
                            predictor="test_not_linear"))
        with pytest.raises(ValueError, match=rf"'test_not_linear' is registered with "
                                             rf"linear=True, but its factory built {built};"):
            env.reset(seed=0)
    finally:
        del PREDICTORS["test_not_linear"]
    # a plain Linear with its bias is what linear=True means: it trains in closed form
    spec = register_predictor("test_linear", torch.nn.Linear, linear=True)
    try:
        assert spec.build(4, 2, 0, torch.device("cpu")).bias is not None
    finally:
        del PREDICTORS["test_linear"]

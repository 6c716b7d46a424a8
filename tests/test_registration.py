"""Every registered id passes Gymnasium's and Stable-Baselines3's env checkers."""

from __future__ import annotations

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import dvrl_env
from tests.fake_torchvision import write_fake_cifar10, write_fake_fashion_mnist

SMALL = {"batch_size": 8, "predictor_epochs": 1}


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    write_fake_cifar10(root, n_train_per_batch=20, n_test=20, seed=0)
    write_fake_fashion_mnist(root, n_train=100, n_test=20, seed=0)
    return root


def small_kwargs(env_id: str, image_root, toy_dataset) -> dict:
    if env_id in ("DataValuation-CIFAR10-v0", "DataValuation-FashionMNIST-v0"):
        extra = {"root": str(image_root), "n_train": 16, "n_valid": 80, "n_test": 10}
        if "CIFAR" in env_id:
            extra["dataset_options"] = {"verify_checksums": False}
        return {**SMALL, **extra, "noise_rate": 0.25}
    if env_id == "DataValuation-v0":
        return {**SMALL, "dataset": toy_dataset}
    return {**SMALL, "n_train": 40, "n_valid": 60, "n_test": 50, "noise_rate": 0.2}


@pytest.mark.parametrize("env_id", sorted(dvrl_env.ENV_IDS))
@pytest.mark.parametrize("reset_mode", ["step", "never"])
def test_checkers_pass_for_every_id(env_id, reset_mode, image_root, toy_dataset):
    kwargs = small_kwargs(env_id, image_root, toy_dataset)
    if reset_mode == "never":
        kwargs.update(reset_mode="never", episode_length=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Gymnasium's checker must pass with no warning
        env = gym.make(env_id, **kwargs)
        check_env(env.unwrapped, skip_render_check=True)
    with warnings.catch_warnings():
        # SB3 only warns that rank-2 Boxes inside a Dict are unconventional: the (B, d)
        # observation of a batch is this env's design, not a fault
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=".*unconventional shape.*")
        sb3_check_env(env.unwrapped)
    obs, info = env.reset(seed=0)
    assert obs["x"].shape == (8, env.unwrapped.dataset.num_features)
    assert not np.shares_memory(obs["x"], env.unwrapped.all_observations()["x"])


def test_make_kwargs_override_registered_ones(toy_dataset):
    env = gym.make("DataValuation-Digits-v0", dataset=toy_dataset, batch_size=5)
    assert env.unwrapped.dataset is toy_dataset and env.action_space.n == 5


def test_module_prefixed_id_works_without_importing_the_package():
    code = (
        "import gymnasium as gym, sys\n"
        "assert 'dvrl_env' not in sys.modules\n"
        "env = gym.make('dvrl_env:DataValuation-Adult-v0', n_train=30, n_valid=40, n_test=10,"
        " batch_size=4, predictor_epochs=1)\n"
        "print(env.unwrapped.dataset.name, env.action_space)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "adult MultiBinary(4)" in out.stdout


def test_missing_image_files_with_download_off(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"download=True"):
        gym.make("DataValuation-CIFAR10-v0", root=str(tmp_path / "nothing"))

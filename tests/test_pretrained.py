"""Pretrained image encoders, offline: the weights files are made here, in torch's cache.

Each test writes a randomly initialised torchvision ResNet-18 / Inception-v3 state dict
to ``$TORCH_HOME/hub/checkpoints/<the official file name>`` and substitutes only the
download and the SHA-256 check (random weights cannot match the published hash);
everything else, the file lookup, ``torch.load(weights_only=True)``, the architecture,
the weights' own preprocessing and the feature cache, is the real code.
"""

from __future__ import annotations

import hashlib
import pickle
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import torchvision.models as tvm
from torch import nn

import dvrl_env  # noqa: F401  (registers the ids)
from dvrl_env.data import encoders, sources
from dvrl_env.data.datasets import load_dataset
from tests.fake_torchvision import write_fake_cifar10, write_fake_fashion_mnist

pytestmark = pytest.mark.filterwarnings("ignore:The validation set has no example")

SMALL = {"n_train": 6, "n_valid": 4, "n_test": 2}  # pretrained encoders upsample: few images
RESNET = encoders.PRETRAINED["resnet18-imagenet"]
INCEPTION = encoders.PRETRAINED["inception_v3-imagenet"]


def _random_state(build) -> dict[str, torch.Tensor]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build().state_dict()


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    """``checkpoints/`` with random weights under the published file names (made once)."""
    folder = tmp_path_factory.mktemp("weights")
    torch.save(_random_state(lambda: tvm.resnet18(weights=None)), folder / RESNET.file_name)
    torch.save(_random_state(lambda: tvm.inception_v3(weights=None, init_weights=False,
                                                      aux_logits=True)),
               folder / INCEPTION.file_name)
    return folder


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    """An empty torch cache for this test; downloads fail the test unless replaced."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))

    def no_network(url, path, hash_prefix):
        raise AssertionError(f"tried to download {url}")

    monkeypatch.setattr(encoders, "_download_weights", no_network)
    return home


@pytest.fixture
def hash_checks(monkeypatch) -> list[tuple[Path, str]]:
    """Replace the SHA-256 check (random weights never match) by a record of its calls."""
    calls: list[tuple[Path, str]] = []
    monkeypatch.setattr(encoders, "_check_weights_hash",
                        lambda path, prefix: calls.append((Path(path), prefix)))
    return calls


@pytest.fixture
def cached_weights(torch_home, weights_dir, hash_checks) -> Path:
    """The weights files in place, as after a download."""
    target = torch_home / "hub" / "checkpoints"
    target.mkdir(parents=True)
    for spec in (RESNET, INCEPTION):
        (target / spec.file_name).symlink_to(weights_dir / spec.file_name)
    return target


@pytest.fixture
def fake_root(tmp_path) -> Path:
    write_fake_cifar10(tmp_path / "data", n_train_per_batch=6, n_test=20, seed=0)
    write_fake_fashion_mnist(tmp_path / "data", n_train=30, n_test=20, seed=0)
    return tmp_path / "data"


def _torchvision_reference(builder, weights, file: Path, monkeypatch) -> nn.Module:
    """torchvision's own builder with the real weights enum; only the download is replaced
    by the test's file: the model a user of ``builder(weights=weights)`` gets."""
    monkeypatch.setattr(type(weights), "get_state_dict",
                        lambda self, *a, **k: torch.load(file, weights_only=True))
    model = builder(weights=weights)
    model.fc = nn.Identity()
    return model.eval()


def _first_conv_input(module: nn.Module, conv: nn.Module, images) -> tuple[np.ndarray, tuple]:
    """Features of ``images`` through ``encode`` and the shape the first conv received."""
    seen = []
    handle = conv.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape)))
    try:
        feats = encoders.encode(images, module, device="cpu")
    finally:
        handle.remove()
    return feats, seen[0]


# --- the real code path on a test-made weights file -----------------------------------


def test_resnet18_imagenet_is_torchvisions_model_with_its_preprocessing(
        cached_weights, hash_checks, monkeypatch):
    images = np.random.default_rng(0).integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    module = encoders.make_encoder("ResNet18-ImageNet")
    assert hash_checks == [(cached_weights / "resnet18-f37072fd.pth", "f37072fd")]
    feats, shape = _first_conv_input(module, module.net.conv1, images)
    assert feats.shape == (3, 512) and feats.dtype == np.float32
    assert shape == (3, 3, 224, 224)  # resized to 256, centre crop 224
    weights = tvm.ResNet18_Weights.IMAGENET1K_V1
    ref = _torchvision_reference(tvm.resnet18, weights, cached_weights / RESNET.file_name,
                                 monkeypatch)
    with torch.no_grad():
        want = ref(weights.transforms()(torch.from_numpy(images).float() / 255)).numpy()
    np.testing.assert_allclose(feats, want, rtol=1e-4, atol=1e-5)
    assert np.array_equal(encoders.encode(images, "resnet18-imagenet"), feats)
    # gray images are repeated to three channels
    gray = images[:2, :1]
    assert np.allclose(encoders.encode(gray, module), encoders.encode(gray.repeat(3, 1), module))


def test_inception_v3_imagenet_gives_2048_features_as_torchvision_builds_it(
        cached_weights, monkeypatch):
    images = np.random.default_rng(1).integers(0, 256, (2, 3, 32, 32), dtype=np.uint8)
    module = encoders.make_encoder("inception_v3-imagenet")
    assert module.net.transform_input and module.net.AuxLogits is None
    feats, shape = _first_conv_input(module, module.net.Conv2d_1a_3x3, images)
    assert feats.shape == (2, 2048) and np.isfinite(feats).all()
    assert shape == (2, 3, 299, 299)  # resized to 342, centre crop 299
    weights = tvm.Inception_V3_Weights.IMAGENET1K_V1
    ref = _torchvision_reference(tvm.inception_v3, weights,
                                 cached_weights / INCEPTION.file_name, monkeypatch)
    with torch.no_grad():
        want = ref(weights.transforms()(torch.from_numpy(images).float() / 255)).numpy()
    np.testing.assert_allclose(feats, want, rtol=1e-4, atol=1e-5)


def test_cache_key_holds_the_weights_identity_and_changes_with_the_encoder(
        cached_weights, fake_root, monkeypatch):
    keys = {name: encoders.encoder_key(name) for name in encoders.ENCODER_NAMES}
    assert len(set(keys.values())) == len(keys)
    assert keys["resnet18-imagenet"] == "resnet18-imagenet-IMAGENET1K_V1-f37072fd"
    assert keys["inception_v3-imagenet"] == "inception_v3-imagenet-IMAGENET1K_V1-0cc3c7bd"

    random = sources.load_cifar10(root=fake_root, encoder="resnet18", verify_checksums=False,
                                  device="cpu", **SMALL)
    pretrained = sources.load_cifar10(root=fake_root, encoder="resnet18-imagenet",
                                      verify_checksums=False, device="cpu", **SMALL)
    assert pretrained[7]["encoder"] == keys["resnet18-imagenet"]
    assert not set(random[7]["cache_files"]) & set(pretrained[7]["cache_files"])
    assert all(keys["resnet18-imagenet"] in Path(p).name for p in pretrained[7]["cache_files"])
    assert pretrained[0].shape == random[0].shape == (6, 512)
    assert not np.allclose(pretrained[0], random[0])

    # reused from the cache: no encoding, and no weights needed any more
    calls = []
    monkeypatch.setattr(encoders, "encode", lambda *a, **k: calls.append(a) or 1 / 0)
    monkeypatch.setenv("TORCH_HOME", str(fake_root / "empty_torch_home"))
    again = sources.load_cifar10(root=fake_root, encoder="resnet18-imagenet",
                                 verify_checksums=False, **SMALL)
    assert calls == [] and all(np.array_equal(a, b) for a, b in zip(again[:6], pretrained[:6],
                                                                     strict=True))


def test_gray_images_through_the_env_with_pretrained_features(cached_weights, fake_root):
    env = gym.make("DataValuation-FashionMNIST-v0", root=str(fake_root),
                   encoder="resnet18-imagenet", predictor="logistic", predictor_epochs=1,
                   noise_rate=0.5, dataset_options={"progress": False}, **SMALL)
    obs, _ = env.reset(seed=0)
    assert obs["x"].shape == (6, 512) and env.unwrapped.dataset.noisy_mask.sum() == 3
    assert env.unwrapped.dataset.meta["encoder"].startswith("resnet18-imagenet-")


# --- offline, download, and files that are not the published ones --------------------


def test_offline_without_the_weights_file_names_it_its_folder_and_the_flag(torch_home,
                                                                           fake_root):
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("fashion_mnist", root=fake_root, encoder="inception_v3-imagenet",
                     download=False, **SMALL)
    message = str(err.value)
    path = torch_home / "hub" / "checkpoints" / "inception_v3_google-0cc3c7bd.pth"
    assert str(path) in message and "download=True" in message and "TORCH_HOME" in message
    assert INCEPTION.url in message
    with pytest.raises(FileNotFoundError, match="resnet18-f37072fd.pth"):
        gym.make("DataValuation-FashionMNIST-v0", root=str(fake_root),
                 encoder="resnet18-imagenet", **SMALL)


def test_download_true_fetches_the_weights_once_into_torchs_cache(
        torch_home, weights_dir, hash_checks, fake_root, monkeypatch):
    fetched = []

    def fake_download(url, path, hash_prefix):  # stands in for the network only
        fetched.append((url, Path(path), hash_prefix))
        shutil.copy(weights_dir / Path(url).name, path)

    monkeypatch.setattr(encoders, "_download_weights", fake_download)
    target = torch_home / "hub" / "checkpoints" / RESNET.file_name
    ds = load_dataset("fashion_mnist", root=fake_root, encoder="resnet18-imagenet",
                      download=True, **SMALL)
    assert fetched == [(tvm.ResNet18_Weights.IMAGENET1K_V1.url, target, "f37072fd")]
    assert target.is_file() and ds.x_train.shape == (6, 512)
    assert hash_checks == [(target, "f37072fd")]
    encoders.make_encoder("resnet18-imagenet", download=True)
    assert len(fetched) == 1  # the cached file is used


def test_a_file_that_is_not_the_published_one_is_refused(torch_home, weights_dir):
    target = torch_home / "hub" / "checkpoints"
    target.mkdir(parents=True)
    shutil.copy(weights_dir / RESNET.file_name, target / RESNET.file_name)
    with pytest.raises(ValueError, match="not the published one") as err:
        encoders.make_encoder("resnet18-imagenet")
    assert str(target / RESNET.file_name) in str(err.value) and "download=True" in str(err.value)
    digest = hashlib.sha256((target / RESNET.file_name).read_bytes()).hexdigest()
    encoders._check_weights_hash(target / RESNET.file_name, digest[:8])  # the right file passes


class _Exploit:
    """A pickle that would create a file when unpickled with code execution allowed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_weights_file_is_read_without_running_code(torch_home, hash_checks, tmp_path):
    target = torch_home / "hub" / "checkpoints"
    target.mkdir(parents=True)
    marker = tmp_path / "code_ran"
    with open(target / RESNET.file_name, "wb") as f:
        pickle.dump({"conv1.weight": _Exploit(marker)}, f, protocol=2)
    with pytest.raises(ValueError, match="cannot be read as a state dict"):
        encoders.make_encoder("resnet18-imagenet")
    assert not marker.exists()
    torch.save({"conv1.weight": torch.zeros(1)}, target / RESNET.file_name)
    with pytest.raises(ValueError, match="do not fit torchvision's resnet18"):
        encoders.make_encoder("resnet18-imagenet")


# --- chunked encoding and n_train="all" -----------------------------------------------


class _Recorder(nn.Module):
    """Mean pixel per channel; records the batches it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[tuple[tuple, torch.dtype]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append((tuple(x.shape), x.dtype))
        return x.mean(dim=(2, 3))


def test_encoding_runs_chunk_by_chunk_into_one_output():
    images = np.random.default_rng(0).integers(0, 256, (7, 3, 4, 4), dtype=np.uint8)
    module = _Recorder()
    feats = encoders.encode(images, module, chunk_size=3, progress=False)
    assert [shape[0] for shape, _ in module.batches] == [3, 3, 1]
    assert {dtype for _, dtype in module.batches} == {torch.float32}
    np.testing.assert_allclose(feats, images.mean(axis=(2, 3)) / 255, rtol=1e-6)
    with pytest.raises(ValueError, match="chunk_size"):
        encoders.encode(images, module, chunk_size=0)


def test_n_train_all_takes_every_training_image_left(fake_root):
    ds = load_dataset("fashion_mnist", root=fake_root, n_train="all", n_valid=8, n_test=10)
    assert ds.n_train == 30 - 8 and len(ds.y_valid) == 8 and len(ds.y_test) == 10
    cifar = sources.load_cifar10(root=fake_root, verify_checksums=False, n_train="all",
                                 n_valid=5, n_test=None)
    assert (len(cifar[1]), len(cifar[3]), len(cifar[5])) == (25, 5, 20)
    env = gym.make("DataValuation-FashionMNIST-v0", root=str(fake_root), n_train="all",
                   n_valid=8, n_test=10, predictor="logistic")
    assert env.unwrapped.n_train == 22 and env.unwrapped.batch_size == 22
    assert load_dataset("digits", n_train="all", n_valid=300, n_test=497).n_train == 1000
    with pytest.raises(ValueError, match="positive integer or 'all'"):
        load_dataset("fashion_mnist", root=fake_root, n_train="everything", n_valid=8)
    with pytest.raises(ValueError, match="give n_test a number"):
        load_dataset("digits", n_train="all", n_valid=300, n_test=None)
    with pytest.raises(ValueError, match="no training examples"):
        load_dataset("fashion_mnist", root=fake_root, n_train="all", n_valid=30, n_test=10)

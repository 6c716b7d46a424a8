"""Named sources (digits, Adult, CIFAR-10, Fashion-MNIST), encoders and the feature cache.

The image sets go through the real loaders on tiny files written in the real on-disk
formats (tests/fake_torchvision.py); nothing touches the network.
"""

from __future__ import annotations

import hashlib
import pickle
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from dvrl_env.data import encoders, sources
from dvrl_env.data.datasets import load_dataset
from tests.fake_torchvision import write_fake_cifar10, write_fake_fashion_mnist

# Tiny image splits cannot show every class in validation; from_arrays says so, rightly.
pytestmark = pytest.mark.filterwarnings("ignore:The validation set has no example")

SMALL = {"n_train": 12, "n_valid": 8, "n_test": 10}


@pytest.fixture
def fake_root(tmp_path):
    write_fake_cifar10(tmp_path, n_train_per_batch=6, n_test=20, seed=0)
    write_fake_fashion_mnist(tmp_path, n_train=30, n_test=20, seed=0)
    return tmp_path


def _rows_in(rows: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """For each row, the index of the identical row in ``pool`` (asserts there is one)."""
    match = (rows[:, None, :] == pool[None, :, :]).all(axis=2)
    assert match.any(axis=1).all(), "a feature row is not one of the source rows"
    return match.argmax(axis=1)


# --- digits -------------------------------------------------------------------------


def test_digits_defaults_dtypes_and_range():
    ds = load_dataset("digits")
    assert (ds.n_train, len(ds.y_valid), len(ds.y_test)) == (1000, 300, 497)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.num_features == 64 and ds.num_classes == 10
    for x in (ds.x_train, ds.x_valid, ds.x_test):
        assert x.min() >= 0.0 and x.max() <= 1.0
    assert ds.x_train.max() == 1.0  # pixels / 16, not / 255
    assert len(ds.meta["feature_names"]) == 64


def test_digits_splits_partition_the_data_and_follow_the_seed():
    from sklearn.datasets import load_digits

    full = load_digits()
    x_tr, y_tr, x_va, y_va, x_te, y_te, c, _ = sources.load_digits(
        n_train=100, n_valid=50, n_test=None, seed=3
    )
    assert c == 10 and len(y_te) == 1797 - 150
    # Together the three splits are the whole data set, each example exactly once.
    got = np.hstack([np.vstack([x_tr, x_va, x_te]) * 16, np.hstack([y_tr, y_va, y_te])[:, None]])
    want = np.hstack([full.data, full.target[:, None]])
    assert np.array_equal(np.unique(got, axis=0), np.unique(want, axis=0))
    assert len(got) == len(want)
    again = sources.load_digits(n_train=100, n_valid=50, n_test=None, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(again[:6], (x_tr, y_tr, x_va, y_va, x_te, y_te),
                                                      strict=True))
    other = sources.load_digits(n_train=100, n_valid=50, n_test=None, seed=4)
    assert not np.array_equal(other[0], x_tr)


def test_digits_too_large_says_how_many_there_are():
    with pytest.raises(ValueError, match="1797"):
        sources.load_digits(n_train=1500, n_valid=200, n_test=200)
    with pytest.raises(ValueError, match="none for the test split"):
        load_dataset("digits", n_train=1500, n_valid=297)


# --- Adult --------------------------------------------------------------------------


def test_adult_table_parses_both_files():
    table = sources._adult_table()
    assert len(table.labels) == 48842 and all(len(c.values) == 48842 for c in table.columns)
    # adult.names: 23.93% earn >50K over both files (the test file's labels end in ".").
    assert table.labels.mean() == pytest.approx(0.2393, abs=5e-4)
    names = [f"{c.name}={v}" for c in table.columns for v in c.categories]
    assert len(names) == 102 and sum(c.is_numeric for c in table.columns) == 6
    assert {"workclass=?", "occupation=?", "native-country=?"} <= set(names)  # "?" is a value
    assert not any(c.missing for c in table.columns)
    assert [c.name for c in table.columns] == [name for name, _ in sources.ADULT_COLUMNS]


def test_adult_defaults_one_hot_and_scaling():
    ds = load_dataset("adult")
    assert (ds.n_train, len(ds.y_valid), len(ds.y_test)) == (1000, 400, 2000)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert set(np.unique(ds.y_train)) == {0, 1} and ds.num_classes == 2
    names = ds.meta["feature_names"]
    assert len(names) == ds.num_features == 108
    onehot = np.array(["=" in name for name in names])
    for x in (ds.x_train, ds.x_valid, ds.x_test):
        assert set(np.unique(x[:, onehot])) == {0.0, 1.0}
        assert np.all(x[:, onehot].sum(axis=1) == 8)  # one category per categorical column
    numeric = ds.x_train[:, ~onehot]
    assert np.allclose(numeric.min(axis=0), 0.0) and np.allclose(numeric.max(axis=0), 1.0)


def test_adult_scaling_is_fitted_on_training_split_only():
    x_tr, _, x_va, _, x_te, _, _, meta = sources.load_adult(
        n_train=20, n_valid=50, n_test=500, seed=0
    )
    numeric = [meta["feature_names"].index(name) for name in meta["numeric_features"]]
    assert len(numeric) == 6
    assert x_tr[:, numeric].min() >= 0.0 and x_tr[:, numeric].max() <= 1.0
    held_out = np.vstack([x_va, x_te])[:, numeric]
    assert held_out.min() < 0.0 or held_out.max() > 1.0  # not clipped, not refitted


def test_adult_columns_are_stable_and_splits_follow_the_seed():
    a = sources.load_adult(n_train=50, n_valid=20, n_test=30, seed=1)
    b = sources.load_adult(n_train=50, n_valid=20, n_test=30, seed=1)
    c = sources.load_adult(n_train=7, n_valid=5, n_test=3, seed=2)
    assert all(np.array_equal(u, v) for u, v in zip(a[:6], b[:6], strict=True))
    assert not np.array_equal(a[0], c[0][:7])
    assert a[7]["feature_names"] == c[7]["feature_names"]
    assert a[0].shape[1] == c[0].shape[1] == 108


def test_adult_too_large_says_how_many_there_are():
    with pytest.raises(ValueError, match="48842"):
        load_dataset("adult", n_train=40000, n_valid=5000, n_test=5000)


# --- image sources: files, formats and errors ----------------------------------------


def test_fake_cifar_batches_use_the_original_pickle_keys(fake_root):
    with open(fake_root / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        entry = pickle.load(f, encoding="bytes")  # the recipe on the CIFAR-10 web page
    assert entry[b"data"].dtype == np.uint8 and entry[b"data"].shape == (6, 3072)
    assert len(entry[b"labels"]) == 6


def test_cifar10_flatten_features_are_the_raw_pixels(fake_root):
    x_tr, y_tr, x_va, y_va, x_te, y_te, c, meta = sources.load_cifar10(
        root=fake_root, verify_checksums=False, **SMALL
    )
    assert (x_tr.shape, x_va.shape, x_te.shape) == ((12, 3072), (8, 3072), (10, 3072))
    assert x_tr.dtype == np.float32 and y_tr.dtype == np.int64 and c == 10
    assert meta["class_names"][0] == "airplane" and meta["encoder"] == "flatten"
    raw, labels = [], []
    for i in range(1, 6):
        with open(fake_root / "cifar-10-batches-py" / f"data_batch_{i}", "rb") as f:
            entry = pickle.load(f, encoding="bytes")
        raw.append(entry[b"data"])
        labels += entry[b"labels"]
    pool = np.vstack(raw).astype(np.float32) / 255
    where = _rows_in(np.vstack([x_tr, x_va]), pool)
    assert len(set(where.tolist())) == 20  # train and valid are disjoint
    assert np.array_equal(np.hstack([y_tr, y_va]), np.array(labels)[where])


def test_cifar10_checksums_fail_clearly_on_unofficial_files(fake_root):
    with pytest.raises(ValueError, match="verify_checksums=False"):
        sources.load_cifar10(root=fake_root, verify_checksums=True, **SMALL)


def test_fashion_mnist_through_load_dataset(fake_root):
    ds = load_dataset("fashion_mnist", root=fake_root, **SMALL)
    assert (ds.x_train.shape, ds.x_valid.shape, ds.x_test.shape) == ((12, 784), (8, 784),
                                                                     (10, 784))
    assert ds.x_train.min() >= 0.0 and ds.x_train.max() <= 1.0 and ds.x_train.max() > 0.9
    assert ds.meta["source"] == "fashion_mnist" and ds.meta["image_shape"] == (1, 28, 28)
    again = load_dataset("FashionMNIST", root=fake_root, **SMALL)
    assert np.array_equal(again.x_train, ds.x_train)
    other = load_dataset("fashion_mnist", root=fake_root, seed=1, **SMALL)
    assert not np.array_equal(other.x_train, ds.x_train)


def test_cifar10_through_load_dataset_and_data_root_variable(fake_root, monkeypatch):
    monkeypatch.setenv("DVRL_DATA", str(fake_root))
    ds = load_dataset("cifar10", verify_checksums=False, noise_rate=0.25, **SMALL)
    assert ds.num_features == 3072 and ds.noisy_mask.sum() == 3
    assert ds.meta["root"] == str(fake_root)


@pytest.mark.parametrize(
    ("loader", "folder"),
    [(sources.load_cifar10, "cifar-10-batches-py"), (sources.load_fashion_mnist, "FashionMNIST")],
)
def test_missing_files_name_the_folder_and_the_fixes(tmp_path, monkeypatch, loader, folder):
    with pytest.raises(FileNotFoundError) as err:
        loader(root=tmp_path / "nowhere", download=False, **SMALL)
    message = str(err.value)
    assert str(tmp_path / "nowhere" / folder) in message and "download=True" in message
    monkeypatch.setenv("DVRL_DATA", str(tmp_path / "env_root"))
    with pytest.raises(FileNotFoundError, match="env_root"):
        loader(**SMALL)


def test_image_sizes_too_large_say_how_many_there_are(fake_root):
    with pytest.raises(ValueError, match="30 images"):
        sources.load_fashion_mnist(root=fake_root, n_train=25, n_valid=10, n_test=5)
    with pytest.raises(ValueError, match="20 images"):
        sources.load_cifar10(root=fake_root, verify_checksums=False, n_train=5, n_valid=5,
                             n_test=21)


# --- encoders -----------------------------------------------------------------------


def test_resnet18_gives_512_features_for_color_and_gray_images(fake_root):
    cifar = sources.load_cifar10(root=fake_root, encoder="resnet18", verify_checksums=False,
                                 device="cpu", **SMALL)
    fashion = load_dataset("fashion_mnist", root=fake_root, encoder="resnet18", **SMALL)
    for x in (cifar[0], cifar[2], cifar[4], fashion.x_train, fashion.x_test):
        assert x.shape[1] == 512 and x.dtype == np.float32 and np.isfinite(x).all()
        assert x.std(axis=0).max() > 0  # different images, different features
    assert fashion.meta["encoder"] == "resnet18"


def test_resnet18_is_seeded_without_touching_the_global_rng():
    images = torch.rand(5, 3, 32, 32)
    before = torch.random.get_rng_state()
    a = encoders.encode(images, "resnet18", seed=0)
    assert torch.equal(torch.random.get_rng_state(), before)
    b = encoders.encode(images, "resnet18", seed=0)
    c = encoders.encode(images, "resnet18", seed=1)
    assert np.array_equal(a, b) and not np.allclose(a, c)


def test_lenet_gives_84_seeded_features_for_color_and_gray_images(fake_root):
    fashion = load_dataset("fashion_mnist", root=fake_root, encoder="lenet", **SMALL)
    cifar = sources.load_cifar10(root=fake_root, encoder="LeNet", verify_checksums=False,
                                 device="cpu", **SMALL)
    for x in (cifar[0], cifar[4], fashion.x_train, fashion.x_test):
        assert x.shape[1] == 84 and x.dtype == np.float32 and np.isfinite(x).all()
        assert x.std(axis=0).max() > 0
    assert fashion.meta["encoder"] == "lenet"
    images = torch.rand(4, 3, 32, 32)
    before = torch.random.get_rng_state()
    a = encoders.encode(images, "lenet", seed=0)
    assert torch.equal(torch.random.get_rng_state(), before)
    b = encoders.encode(images, "lenet", seed=0)
    c = encoders.encode(images, "lenet", seed=1)
    assert np.array_equal(a, b) and not np.allclose(a, c)


def test_flatten_scales_uint8_and_keeps_float_images():
    pixels = np.arange(2 * 3 * 4 * 4, dtype=np.uint8).reshape(2, 3, 4, 4)
    flat = encoders.encode(pixels, "flatten")
    assert flat.shape == (2, 48) and flat.dtype == np.float32
    assert np.allclose(flat, pixels.reshape(2, -1) / 255.0)
    as_float = encoders.encode(torch.from_numpy(pixels).float() / 255, None)
    assert np.allclose(as_float, flat)
    with pytest.raises(ValueError, match="resnet18"):
        encoders.make_encoder("vgg")


class _CountingPool(nn.Module):
    """A user encoder that counts how often it runs (state_dict holds only the scale)."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(scale))
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.pool(x) * self.scale


def test_user_module_key_follows_its_weights_and_its_mode_is_restored():
    module = _CountingPool().train()
    key = encoders.encoder_key(module)
    assert key.startswith("_CountingPool-") and key == encoders.encoder_key(_CountingPool())
    assert key != encoders.encoder_key(_CountingPool(scale=2.0))
    assert encoders.encoder_key("resnet18") == "resnet18"
    feats = encoders.encode(torch.rand(3, 1, 8, 8), module)
    assert feats.shape == (3, 4) and module.training


def test_features_are_cached_and_reused(fake_root, monkeypatch):
    module = _CountingPool()
    first = sources.load_fashion_mnist(root=fake_root, encoder=module, **SMALL)
    assert module.calls == 3 and first[0].shape == (12, 4)  # train, valid, test
    assert len(list((fake_root / "dvrl_cache").glob("*.npz"))) == 3
    second = sources.load_fashion_mnist(root=fake_root, encoder=module, **SMALL)
    assert module.calls == 3
    assert all(np.array_equal(a, b) for a, b in zip(first[:6], second[:6], strict=True))

    calls = []
    real_encode = encoders.encode

    def counting_encode(*args, **kwargs):
        calls.append(1)
        return real_encode(*args, **kwargs)

    monkeypatch.setattr(encoders, "encode", counting_encode)
    load_dataset("cifar10", root=fake_root, verify_checksums=False, **SMALL)
    assert len(calls) == 3
    load_dataset("cifar10", root=fake_root, verify_checksums=False, **SMALL)
    assert len(calls) == 3
    load_dataset("cifar10", root=fake_root, verify_checksums=False, seed=5, **SMALL)
    assert len(calls) == 6  # another split is another cache entry


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong_rows"])
def test_a_damaged_cache_file_warns_and_is_rebuilt(fake_root, damage):
    clean = sources.load_cifar10(root=fake_root, verify_checksums=False, **SMALL)
    path = next(p for p in clean[7]["cache_files"] if "-train-" in p)
    if damage == "garbage":
        with open(path, "wb") as f:
            f.write(b"\x00not a zip file\xff" * 10)
    elif damage == "truncated":
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2])
    else:
        np.savez(path, features=np.zeros((3, 3072), dtype=np.float32))
    with pytest.warns(UserWarning, match="rebuilt"):
        again = sources.load_cifar10(root=fake_root, verify_checksums=False, **SMALL)
    assert np.array_equal(again[0], clean[0])
    with np.load(path) as npz:
        assert np.array_equal(npz["features"], clean[0])  # rewritten with correct values


# --- CIFAR-10 files that are damaged, unofficial or crafted ------------------------------


class _Payload:
    """Unpickling this runs a shell command that creates ``marker``: a crafted file."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        import os
        import shlex

        return os.system, (f"touch {shlex.quote(self.marker)}",)


def _official_md5(path) -> str:
    """torchvision's sum for a CIFAR-10 file name: an MD5 check that every file passes."""
    from torchvision.datasets import CIFAR10

    sums = dict(CIFAR10.train_list + CIFAR10.test_list)
    return sums.get(path.name, CIFAR10.meta["md5"])


@pytest.mark.parametrize("verify_checksums", [False, True])
@pytest.mark.parametrize("name", ["batches.meta", "data_batch_1", "test_batch"])
def test_a_crafted_cifar_pickle_is_refused_and_runs_nothing(fake_root, monkeypatch, tmp_path,
                                                            name, verify_checksums):
    folder = fake_root / "cifar-10-batches-py"
    marker = tmp_path / "payload_ran"
    with open(folder / name, "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    entry["labels" if name != "batches.meta" else "label_names"] = _Payload(marker)
    with open(folder / name, "wb") as f:
        pickle.dump(entry, f, protocol=2)
    if verify_checksums:  # as if the crafted file matched the MD5 sum: the reader must hold
        monkeypatch.setattr(sources, "_md5", _official_md5, raising=False)
        monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda *a: True)
    with pytest.raises(Exception) as err:  # noqa: B017 - the type is checked below
        sources.load_cifar10(root=fake_root, verify_checksums=verify_checksums, **SMALL)
    assert not marker.exists(), "loading the file ran its code"
    assert isinstance(err.value, ValueError)  # the CLI prints it, no traceback
    message = str(err.value)
    assert str(folder / name) in message and "system" in message and "refused" in message
    assert "download=True" in message and "\n" not in message


def test_a_damaged_cifar_pickle_names_the_file(fake_root):
    path = fake_root / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(sources.DataFileError, match=rf"{path} cannot be read as a CIFAR-10 "
                                                    r"python file \(.*\); it is damaged"):
        sources.load_cifar10(root=fake_root, verify_checksums=False, **SMALL)
    pickle.dump({"data": np.zeros((2, 3072), dtype=np.float64), "labels": [0, 1]},
                path.open("wb"))
    with pytest.raises(sources.DataFileError, match=rf"{path} holds no uint8 images"):
        sources.load_cifar10(root=fake_root, verify_checksums=False, **SMALL)
    pickle.dump({"data": np.zeros((2, 3072), dtype=np.uint8), "labels": [0, 10]},
                path.open("wb"))
    with pytest.raises(sources.DataFileError, match=r"no list of 2 labels in 0\.\.9"):
        sources.load_cifar10(root=fake_root, verify_checksums=False, **SMALL)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_cifar_batches_repacked_by_python3_are_read(fake_root, protocol):
    """A copy re-written with Python 3's pickle (any protocol) holds the same kinds of
    objects under other names (numpy._core, _codecs.encode, _frombuffer): still read."""
    clean = sources.load_cifar10(root=fake_root, verify_checksums=False, **SMALL)
    folder = fake_root / "cifar-10-batches-py"
    for path in folder.iterdir():
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        with open(path, "wb") as f:
            pickle.dump(entry, f, protocol=protocol)
    shutil.rmtree(fake_root / "dvrl_cache")
    again = sources.load_cifar10(root=fake_root, verify_checksums=False, **SMALL)
    assert all(np.array_equal(a, b) for a, b in zip(again[:6], clean[:6], strict=True))
    assert again[7]["class_names"] == clean[7]["class_names"]


def test_cifar10_checksum_failure_is_one_clear_error(fake_root, monkeypatch):
    path = fake_root / "cifar-10-batches-py" / "data_batch_1"
    found = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
    with pytest.raises(ValueError) as err:  # a ValueError: the CLI prints it, no traceback
        sources.load_cifar10(root=fake_root, verify_checksums=True, **SMALL)
    message = str(err.value)
    assert f"{path} fails the MD5 check (expected c99cafc152244af753f735de768cd75f, " \
           f"found {found}), and so do data_batch_2," in message
    assert "download=True" in message and "verify_checksums=False" in message
    assert "\n" not in message
    (fake_root / "cifar-10-batches-py" / "batches.meta").unlink()
    monkeypatch.setattr(sources, "_md5", _official_md5)  # the batches pass, the meta is gone
    with pytest.raises(ValueError, match=r"batches.meta fails the MD5 check \(expected "
                                         r"5ff9c542aee3614f3951f8cda6e48888, found no file\)"):
        sources.load_cifar10(root=fake_root, verify_checksums=True, **SMALL)


def test_cifar10_checksum_failure_through_the_cli_is_one_line(fake_root, capsys):
    from dvrl_env.app import cli

    args = ["value", "--env", "DataValuation-CIFAR10-v0", "--agent", "random", "--steps", "1",
            "--out", str(fake_root / "out"), "--env-arg", f"root={fake_root}",
            *(f"--env-arg={k}={v}" for k, v in SMALL.items())]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("dvrl: error: CIFAR-10 file ") and "fails the MD5 check" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("swap", ["other_values", "other_entry"])
def test_a_cache_swapped_for_other_finite_features_is_rebuilt(fake_root, swap):
    """Only the pixels' hash is in the file name: the contents are hashed too, so a file
    holding other features of the right shape is caught and rebuilt, not used."""
    clean = sources.load_cifar10(root=fake_root, verify_checksums=False, **SMALL)
    path = next(p for p in clean[7]["cache_files"] if "-train-" in p)
    if swap == "other_values":
        np.savez(path, features=np.random.default_rng(0).random((12, 3072), dtype=np.float32))
    else:  # a valid cache file of another split (seed 5), copied under this one's name
        other = sources.load_cifar10(root=fake_root, verify_checksums=False, seed=5, **SMALL)
        shutil.copyfile(next(p for p in other[7]["cache_files"] if "-train-" in p), path)
    with pytest.warns(UserWarning, match=r"unusable \((it holds no hash|its features do not "
                                         r"match the hash).*rebuilt"):
        again = sources.load_cifar10(root=fake_root, verify_checksums=False, **SMALL)
    assert np.array_equal(again[0], clean[0])
    with np.load(path, allow_pickle=False) as npz:  # rewritten: tensors only, no pickle
        assert np.array_equal(npz["features"], clean[0]) and npz["sha256"].dtype.kind == "U"


def test_cifar10_download_only_when_files_are_missing_or_fail_the_check(fake_root, tmp_path,
                                                                        monkeypatch):
    calls = []
    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive",
                        lambda url, root, **kw: calls.append((url, root, kw["md5"])))
    ds = sources.load_cifar10(root=fake_root, verify_checksums=False, download=True, **SMALL)
    assert calls == [] and ds[0].shape == (12, 3072)  # present, unchecked: kept as they are
    sources._download_cifar10(fake_root, verify_checksums=True)  # present, fail the check
    sources._download_cifar10(tmp_path / "empty", verify_checksums=False)  # missing
    assert [root for _, root, _ in calls] == [str(fake_root), str(tmp_path / "empty")]
    assert all(md5 == "c58f30108f718f92721af3b95e74349a" for _, _, md5 in calls)

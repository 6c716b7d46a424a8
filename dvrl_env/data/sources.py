"""Named dataset sources behind :func:`dvrl_env.data.datasets.load_dataset`.

Each source takes ``n_train, n_valid, n_test, seed`` (plus its own options) and
returns clean splits ``(x_train, y_train, x_valid, y_valid, x_test, y_test,
num_classes, meta)``: float32 features ``(n, d)``, int64 labels. Label noise is added
later by :func:`dvrl_env.data.datasets.from_arrays`. Splits are drawn with
``np.random.default_rng(seed)``, so the same seed gives the same points.
"""

from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import os
import pickle
from pathlib import Path
from typing import NamedTuple

import numpy as np

from dvrl_env.data import encoders

__all__ = [
    "default_data_root",
    "load_adult",
    "load_cifar10",
    "load_digits",
    "load_fashion_mnist",
]

DATA_DIR = Path(__file__).resolve().parent  # the Adult files ship in this package
Splits = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, dict]


def default_data_root() -> Path:
    """``$DVRL_DATA`` if set, else ``~/.cache/dvrl_env/data``: where image files and caches live."""
    return Path(os.environ.get("DVRL_DATA") or "~/.cache/dvrl_env/data").expanduser()


def _check_sizes(n_train: int, n_valid: int, n_test: int | None) -> None:
    for name, value in (("n_train", n_train), ("n_valid", n_valid), ("n_test", n_test)):
        if value is not None and (int(value) != value or value < 1):
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def _split_pool(
    n_available: int, n_train: int, n_valid: int, n_test: int | None, seed: int, what: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disjoint random train/valid/test indices into one pool; ``n_test=None``: the rest."""
    _check_sizes(n_train, n_valid, n_test)
    wanted = n_train + n_valid + (n_test or 0)
    if wanted > n_available or (n_test is None and wanted >= n_available):
        asked = f"n_train + n_valid{' + n_test' if n_test else ''} = {wanted}"
        raise ValueError(
            f"{what} has {n_available} examples, but {asked}"
            f"{'' if n_test else ' leaves none for the test split'}; ask for fewer."
        )
    perm = np.random.default_rng(seed).permutation(n_available)
    stop = n_train + n_valid
    test = perm[stop:] if n_test is None else perm[stop : stop + n_test]
    return perm[:n_train], perm[n_train:stop], test


# --- scikit-learn digits --------------------------------------------------------------


def load_digits(
    *, n_train: int = 1000, n_valid: int = 300, n_test: int | None = None, seed: int = 0
) -> Splits:
    """scikit-learn's bundled 8x8 digits (1797 images, 10 classes): works offline.

    Pixels are divided by 16 so that features lie in [0, 1]. ``n_test=None`` takes
    every example left after the training and validation splits.
    """
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    tr, va, te = _split_pool(len(y), n_train, n_valid, n_test, seed, "Digits")
    meta = {
        "feature_names": [f"pixel_{r}_{c}" for r in range(8) for c in range(8)],
        "n_available": len(y),
    }
    return x[tr], y[tr], x[va], y[va], x[te], y[te], 10, meta


# --- UCI Adult ------------------------------------------------------------------------

# (name, is_categorical) in the files' column order; the 15th column is the income label.
ADULT_COLUMNS = (
    ("age", False),
    ("workclass", True),
    ("fnlwgt", False),
    ("education", True),
    ("education-num", False),
    ("marital-status", True),
    ("occupation", True),
    ("relationship", True),
    ("race", True),
    ("sex", True),
    ("capital-gain", False),
    ("capital-loss", False),
    ("hours-per-week", False),
    ("native-country", True),
)


class _AdultTable(NamedTuple):
    features: np.ndarray  # float32 (48842, d): raw numeric values and one-hot blocks
    labels: np.ndarray  # int64, 1 where income > 50K
    feature_names: tuple[str, ...]
    numeric_columns: np.ndarray  # indices of the numeric columns in ``features``


def _read_adult_rows(name: str) -> list[list[str]]:
    """The rows of one Adult file; fields keep their trailing spaces, if any (stripped later)."""
    with gzip.open(DATA_DIR / name, "rt", encoding="latin-1", newline="") as f:
        reader = csv.reader(f, skipinitialspace=True)  # C parser: fast enough for < 1 s
        rows = []
        for row in reader:
            if not row or row[0].startswith("|"):  # blank lines, adult.test's "|1x3 Cross ..."
                continue
            if len(row) != len(ADULT_COLUMNS) + 1:
                raise ValueError(
                    f"{name}, line {reader.line_num}: expected 15 fields, got {len(row)}."
                )
            rows.append(row)
    return rows


@functools.lru_cache(maxsize=1)
def _adult_table() -> _AdultTable:
    """Both Adult files parsed into one table, once per process (the arrays are read-only)."""
    rows = _read_adult_rows("adult.data.gz") + _read_adult_rows("adult.test.gz")
    columns = list(zip(*rows, strict=True))
    # Strip each distinct value once rather than every field; adult.test writes ">50K.".
    income = {value: value.strip().rstrip(".") for value in set(columns[-1])}
    if not set(income.values()) <= {">50K", "<=50K"}:
        raise ValueError(f"Unexpected Adult labels: {sorted(set(income.values()))}.")
    # First the columns' layout, then one float32 table filled in place (the values are
    # integers below 2**24, so float32 holds them exactly).
    layout, names, numeric = [], [], []
    for column, (name, categorical) in zip(columns[:-1], ADULT_COLUMNS, strict=True):
        start = len(names)
        if categorical:
            # Categories come from the whole table, so the columns never depend on the split.
            stripped = {value: value.strip() for value in set(column)}
            categories = sorted(set(stripped.values()))
            index = {category: start + i for i, category in enumerate(categories)}
            layout.append({value: index[clean] for value, clean in stripped.items()})
            names += [f"{name}={category}" for category in categories]
        else:
            layout.append(start)
            numeric.append(start)
            names.append(name)
    n_rows = len(rows)
    features = np.zeros((n_rows, len(names)), dtype=np.float32)
    all_rows = np.arange(n_rows)
    for column, where in zip(columns[:-1], layout, strict=True):
        if isinstance(where, dict):
            features[all_rows, [where[value] for value in column]] = 1.0
        else:
            features[:, where] = np.array(column, dtype=np.float64)
    labels = np.array([income[value] == ">50K" for value in columns[-1]], dtype=np.int64)
    numeric_columns = np.array(numeric)
    for arr in (features, labels, numeric_columns):
        arr.flags.writeable = False
    return _AdultTable(features, labels, tuple(names), numeric_columns)


def load_adult(
    *, n_train: int = 1000, n_valid: int = 400, n_test: int | None = 2000, seed: int = 0
) -> Splits:
    """UCI Adult (census income > 50K), shipped in ``dvrl_env/data``: the paper's tabular set.

    Both files (adult.data and adult.test, 48842 rows) form one pool that the splits are
    drawn from. Missing values ("?") are kept as a category of their own, as in the
    files. Categorical columns are one-hot encoded with categories from the whole table
    (108 stable columns, names in ``meta["feature_names"]``); numeric columns are
    min-max scaled with the minimum and maximum of the *training* split only (a
    constant column is only shifted), so validation and test values may fall slightly
    outside [0, 1]. ``n_test=None`` takes every remaining row.
    """
    table = _adult_table()
    tr, va, te = _split_pool(len(table.labels), n_train, n_valid, n_test, seed, "Adult")
    x_tr, x_va, x_te = (table.features[idx].astype(np.float64) for idx in (tr, va, te))
    num = table.numeric_columns
    low = x_tr[:, num].min(axis=0)
    span = x_tr[:, num].max(axis=0) - low
    span[span == 0] = 1.0
    for x in (x_tr, x_va, x_te):
        x[:, num] = (x[:, num] - low) / span
    y = table.labels
    meta = {
        "feature_names": list(table.feature_names),
        "numeric_features": [table.feature_names[i] for i in num],
        "scaling": "min-max on the training split",
        "n_available": len(y),
        "license": "CC BY 4.0 (UCI Machine Learning Repository), see data/ADULT_ATTRIBUTION.md",
    }
    x_tr, x_va, x_te = (x.astype(np.float32) for x in (x_tr, x_va, x_te))
    return x_tr, y[tr], x_va, y[va], x_te, y[te], 2, meta


# --- torchvision image sets -----------------------------------------------------------


def _missing_files(folder: Path, names: list[str], title: str, download_hint: str) -> None:
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{title} files not found in {folder} (missing: {', '.join(missing)}). Either pass "
            f"download=True to fetch them ({download_hint}), or put the standard files at "
            f"that path. The root is root= or $DVRL_DATA, else ~/.cache/dvrl_env/data."
        )


def _lenient_cifar10():
    """CIFAR10 that only checks the files exist: same pickle format, same loader, no MD5."""
    from torchvision.datasets import CIFAR10

    class UncheckedCIFAR10(CIFAR10):
        def _check_integrity(self) -> bool:
            folder = Path(self.root) / self.base_folder
            return all((folder / name).is_file() for name, _ in self.train_list + self.test_list)

        def _load_meta(self) -> None:
            path = Path(self.root) / self.base_folder / self.meta["filename"]
            if path.is_file():
                with open(path, "rb") as f:
                    self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
            else:
                self.classes = [str(i) for i in range(10)]
            self.class_to_idx = {name: i for i, name in enumerate(self.classes)}

    return UncheckedCIFAR10


def _encode_splits(
    name: str,
    root: Path,
    pools: tuple[np.ndarray, np.ndarray],
    labels: tuple[np.ndarray, np.ndarray],
    sizes: tuple[int, int, int | None],
    seed: int,
    encoder,
    device: str,
) -> tuple[list[np.ndarray], dict]:
    """Draw the splits from the (train, test) image pools and encode each one, cached."""
    n_train, n_valid, n_test = sizes
    _check_sizes(n_train, n_valid, n_test)
    n_pool, n_test_pool = len(labels[0]), len(labels[1])
    if n_train + n_valid > n_pool:
        raise ValueError(
            f"{name}'s training files hold {n_pool} images, but n_train + n_valid = "
            f"{n_train + n_valid}; ask for fewer."
        )
    if n_test is not None and n_test > n_test_pool:
        raise ValueError(
            f"{name}'s test files hold {n_test_pool} images, but n_test = {n_test}; ask for fewer."
        )
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n_pool)
    test = rng.permutation(n_test_pool)[: n_test or n_test_pool]
    picks = (
        ("train", 0, perm[:n_train]),
        ("valid", 0, perm[n_train : n_train + n_valid]),
        ("test", 1, test),
    )
    key = encoders.encoder_key(encoder)
    arrays, files = [], []
    for split, pool, idx in picks:
        images = np.ascontiguousarray(pools[pool][idx])
        path = encoders.feature_cache_path(
            root, dataset=name, split=split, encoder=key, seed=seed, n=len(idx),
            fingerprint=hashlib.sha256(images.tobytes()).hexdigest()[:12],
        )
        compute = functools.partial(encoders.encode, images, encoder, seed=seed, device=device)
        arrays += [encoders.cached_features(path, compute, n_rows=len(idx)),
                   np.asarray(labels[pool], dtype=np.int64)[idx]]
        files.append(str(path))
    meta = {
        "encoder": key,
        "encoder_seed": seed,
        "image_shape": tuple(int(s) for s in pools[0].shape[1:]),
        "root": str(root),
        "cache_files": files,
        "n_available": {"train_files": n_pool, "test_files": n_test_pool},
    }
    return arrays, meta


def load_cifar10(
    *,
    n_train: int = 4000,
    n_valid: int = 1000,
    n_test: int | None = 2000,
    seed: int = 0,
    root: str | Path | None = None,
    download: bool = False,
    encoder=None,
    verify_checksums: bool = True,
    device: str = "auto",
) -> Splits:
    """CIFAR-10 through torchvision: train+valid from the training batches, test from test_batch.

    Files live under ``root/cifar-10-batches-py`` (``root`` defaults to
    :func:`default_data_root`). Images, floats in [0, 1] shaped (N, 3, 32, 32), pass
    once through ``encoder`` (default ``"flatten"``, see :mod:`dvrl_env.data.encoders`) and
    the features are cached under ``root/dvrl_cache``. torchvision checks the files'
    MD5 sums; ``verify_checksums=False`` skips that and only checks the files exist,
    reading the same pickle format with the same loader: the deliberate path for
    small test files or re-packed copies. ``n_test=None`` takes the whole test batch.
    """
    from torchvision.datasets import CIFAR10

    root = Path(root).expanduser() if root is not None else default_data_root()
    folder = root / CIFAR10.base_folder
    if not download:
        names = [n for n, _ in CIFAR10.train_list + CIFAR10.test_list]
        _missing_files(folder, names, "CIFAR-10", "about 170 MB")
    cls = CIFAR10 if verify_checksums else _lenient_cifar10()
    try:
        train_set = cls(str(root), train=True, download=download)
        test_set = cls(str(root), train=False, download=download)
    except RuntimeError as err:
        if download:
            raise
        raise RuntimeError(
            f"The CIFAR-10 files in {folder} exist but fail torchvision's MD5 check ({err}): "
            "they are corrupted, partial or not the official files. Delete them and pass "
            "download=True, or pass verify_checksums=False to read them without checksums "
            "(same pickle format, e.g. small test files)."
        ) from err
    pools = tuple(np.asarray(s.data).transpose(0, 3, 1, 2) for s in (train_set, test_set))
    labels = (np.asarray(train_set.targets), np.asarray(test_set.targets))
    arrays, meta = _encode_splits(
        "cifar10", root, pools, labels, (n_train, n_valid, n_test), seed, encoder, device
    )
    meta["class_names"] = list(train_set.classes)
    meta["verify_checksums"] = verify_checksums
    return (*arrays, 10, meta)


def load_fashion_mnist(
    *,
    n_train: int = 4000,
    n_valid: int = 1000,
    n_test: int | None = 2000,
    seed: int = 0,
    root: str | Path | None = None,
    download: bool = False,
    encoder=None,
    device: str = "auto",
) -> Splits:
    """Fashion-MNIST through torchvision: train+valid from the 60k training images, test from t10k.

    Files live under ``root/FashionMNIST/raw`` as the four uncompressed idx files;
    torchvision only checks that they exist, so no checksum option is needed. Images,
    floats in [0, 1] shaped (N, 1, 28, 28), pass once through ``encoder`` (default
    ``"flatten"``) and the features are cached under ``root/dvrl_cache``.
    """
    from torchvision.datasets import FashionMNIST

    root = Path(root).expanduser() if root is not None else default_data_root()
    folder = root / "FashionMNIST" / "raw"
    if not download:
        names = [f"{p}-{kind}" for p in ("train", "t10k")
                 for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")]
        _missing_files(folder, names, "Fashion-MNIST", "about 30 MB")
    train_set = FashionMNIST(str(root), train=True, download=download)
    test_set = FashionMNIST(str(root), train=False, download=download)
    pools = tuple(s.data.numpy()[:, None] for s in (train_set, test_set))
    labels = (train_set.targets.numpy(), test_set.targets.numpy())
    arrays, meta = _encode_splits(
        "fashion_mnist", root, pools, labels, (n_train, n_valid, n_test), seed, encoder, device
    )
    meta["class_names"] = list(train_set.classes)
    return (*arrays, 10, meta)

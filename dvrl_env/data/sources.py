"""The built-in datasets: each loader and, beside it, its registry entry.

Each loader takes ``n_train, n_valid, n_test, seed`` (plus its own options) and returns
clean :class:`~dvrl_env.data.registry.Splits`: float32 features ``(n, d)``, int64 labels.
Label noise is added later by :func:`dvrl_env.data.datasets.from_arrays`. Splits are
drawn with ``np.random.default_rng(seed)``, so the same seed gives the same points. The
default sizes live in the entries (:mod:`dvrl_env.data.registry`), not here.
"""

from __future__ import annotations

import codecs
import csv
import functools
import gzip
import hashlib
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from dvrl_env.data import encoders
from dvrl_env.data.columns import Column, encode_rows
from dvrl_env.data.registry import (
    DatasetEntry,
    Splits,
    check_sizes,
    register_dataset,
    resolve_n_train,
    split_pool,
)

__all__ = [
    "DataFileError",
    "default_data_root",
    "load_adult",
    "load_cifar10",
    "load_digits",
    "load_fashion_mnist",
]

DATA_DIR = Path(__file__).resolve().parent  # the Adult files ship in this package


def default_data_root() -> Path:
    """``$DVRL_DATA`` if set, else ``~/.cache/dvrl_env/data``: where image files and caches live."""
    return Path(os.environ.get("DVRL_DATA") or "~/.cache/dvrl_env/data").expanduser()


# --- scikit-learn digits --------------------------------------------------------------


def load_digits(*, n_train: int | str, n_valid: int, n_test: int | None, seed: int = 0) -> Splits:
    """scikit-learn's bundled 8x8 digits (1797 images, 10 classes): works offline.

    Pixels are divided by 16 so that features lie in [0, 1]. ``n_test=None`` takes
    every example left after the training and validation splits; ``n_train="all"`` (with
    a number for ``n_test``) every example left after the other two.
    """
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    tr, va, te = split_pool(len(y), n_train, n_valid, n_test, seed, "Digits")
    meta = {
        "feature_names": [f"pixel_{r}_{c}" for r in range(8) for c in range(8)],
        "n_available": len(y),
    }
    return Splits(x[tr], y[tr], x[va], y[va], x[te], y[te], 10, meta)


register_dataset(DatasetEntry(
    name="digits", env_id="DataValuation-Digits-v0", loader=load_digits,
    n_train=1000, n_valid=300, n_test=None,
    description="scikit-learn's bundled digits (8x8 pixels, 10 classes), offline",
))


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
    columns: tuple[Column, ...]  # every row of both files, in ADULT_COLUMNS order
    labels: np.ndarray  # int64, 1 where income > 50K


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
    """Both Adult files parsed into columns, once per process (the arrays are read-only).
    Fields are stripped; "?" stays a category of its own, as in the files."""
    rows = _read_adult_rows("adult.data.gz") + _read_adult_rows("adult.test.gz")
    cells = list(zip(*rows, strict=True))
    # Strip each distinct value once rather than every field; adult.test writes ">50K.".
    income = {value: value.strip().rstrip(".") for value in set(cells[-1])}
    if not set(income.values()) <= {">50K", "<=50K"}:
        raise ValueError(f"Unexpected Adult labels: {sorted(set(income.values()))}.")
    columns = []
    for column, (name, categorical) in zip(cells[:-1], ADULT_COLUMNS, strict=True):
        stripped = {value: value.strip() for value in set(column)}
        kind = Column.categorical if categorical else Column.numeric
        columns.append(kind(name, [stripped[value] for value in column]))
    labels = np.array([income[value] == ">50K" for value in cells[-1]], dtype=np.int64)
    labels.flags.writeable = False
    return _AdultTable(tuple(columns), labels)


def load_adult(*, n_train: int | str, n_valid: int, n_test: int | None, seed: int = 0) -> Splits:
    """UCI Adult (census income > 50K), shipped in ``dvrl_env/data``: the paper's tabular set.

    Both files (adult.data and adult.test, 48842 rows) form one pool that the splits are
    drawn from. Missing values ("?") are kept as a category of their own, as in the
    files. Columns go through the shared tabular encoder (:mod:`dvrl_env.data.columns`):
    categorical ones one-hot with categories from the whole table (108 stable columns,
    names in ``meta["feature_names"]``), numeric ones min-max scaled with the minimum
    and maximum of the *training* split only (a constant column is only shifted), so
    validation and test values may fall slightly outside [0, 1]. ``n_test=None`` takes
    every remaining row.
    """
    table = _adult_table()
    y = table.labels
    tr, va, te = split_pool(len(y), n_train, n_valid, n_test, seed, "Adult")
    encodings = [column.fit(tr) for column in table.columns]
    x_tr, x_va, x_te = (encode_rows(table.columns, encodings, idx).astype(np.float32)
                        for idx in (tr, va, te))
    meta = {
        "feature_names": [name for e in encodings for name in e.feature_names],
        "numeric_features": [e.column for e in encodings if e.numeric],
        "scaling": "min-max on the training split",
        "n_available": len(y),
        "license": "CC BY 4.0 (UCI Machine Learning Repository), see data/ADULT_ATTRIBUTION.md",
    }
    return Splits(x_tr, y[tr], x_va, y[va], x_te, y[te], 2, meta)


register_dataset(DatasetEntry(
    name="adult", env_id="DataValuation-Adult-v0", loader=load_adult,
    n_train=1000, n_valid=400, n_test=2000,
    description="UCI Adult census income (shipped with the package), the paper's tabular set",
))


# --- torchvision image sets -----------------------------------------------------------


class DataFileError(ValueError):
    """A data file that is damaged, not the official one, or unsafe to read; the message
    names the file and the fix (a ValueError, so the CLI prints it without a traceback)."""


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """The numpy callables a pickled array needs, under every module name numpy has
    pickled them from (``numpy.core`` before numpy 2, ``numpy._core`` since)."""
    reconstruct = np.zeros(0).__reduce__()[0]  # numpy's _reconstruct, wherever it lives
    scalar = np.float64(0).__reduce__()[0]
    frombuffer = np.zeros(0).__reduce_ex__(5)[0]  # protocol 5's array builder
    found = {}
    for core in ("numpy.core", "numpy._core"):
        found[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        found[(f"{core}.multiarray", "scalar")] = scalar
        found[(f"{core}.numeric", "_frombuffer")] = frombuffer
    return found


class _RefusedGlobal(pickle.UnpicklingError):
    """A global that CIFAR-10's format never holds."""


def _latin1_bytes(text: str, encoding: str) -> bytes:
    """``_codecs.encode`` as Python 3 pickles bytes in protocols 0-2, latin-1 only: no
    other codec (whose lookup could import a module) is reached from a file."""
    if encoding not in ("latin1", "latin-1"):
        raise _RefusedGlobal(f"_codecs.encode with the codec {encoding!r}")
    return codecs.encode(text, "latin-1")


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles only what CIFAR-10's python files hold: dicts, lists, strings, bytes,
    numbers and numpy arrays. Any other global (``os.system``, a class to build) is
    refused before it is looked up, so a crafted file runs nothing."""

    allowed: dict[tuple[str, str], Any] = {
        **_numpy_globals(),
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_bytes,  # bytes, as Python 3 writes protocols 0-2
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise _RefusedGlobal(f"{module}.{name}") from None


def _read_cifar_pickle(path: Path) -> Any:
    """One CIFAR-10 python file, read with :class:`_CifarUnpickler` (``latin1``, as
    torchvision reads the Python 2 originals)."""
    try:
        with open(path, "rb") as f:
            return _CifarUnpickler(f, encoding="latin1").load()
    except _RefusedGlobal as err:
        raise DataFileError(
            f"{path} is not a CIFAR-10 python file: it asks for {err}, which that format "
            "never holds, so it was refused and nothing in it ran. Delete it and pass "
            "download=True for the official files."
        ) from None
    except Exception as err:  # a damaged pickle fails in many ways; none is a bug here
        raise DataFileError(
            f"{path} cannot be read as a CIFAR-10 python file ({type(err).__name__}: {err}); "
            "it is damaged or in another format. Delete it and pass download=True for the "
            "official files."
        ) from None


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)  # torchvision's checksums are MD5
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_md5(paths: dict[Path, str]) -> None:
    """Each file against the MD5 sum torchvision lists for the official CIFAR-10 files:
    one error naming the first file that fails, what was expected and what was found,
    and the others that fail."""
    failed = []
    for path, expected in paths.items():
        found = _md5(path) if path.is_file() else "no file"
        if found != expected:
            failed.append((path, expected, found))
    if failed:
        path, expected, found = failed[0]
        others = [p.name for p, _, _ in failed[1:]]
        raise DataFileError(
            f"CIFAR-10 file {path} fails the MD5 check (expected {expected}, found {found})"
            + (f", and so {'does' if len(others) == 1 else 'do'} {', '.join(others)}"
               if others else "")
            + ": corrupted, partial or not the official files. Delete them and pass "
            "download=True to fetch the originals, or pass verify_checksums=False (env: "
            "dataset_options={'verify_checksums': False}) to read files that are deliberately "
            "not the originals (same format, e.g. small test files)."
        )


class _CifarSplit(NamedTuple):
    data: np.ndarray  # uint8 (N, 3, 32, 32)
    targets: np.ndarray  # int64 (N,)
    classes: list[str]


def _read_cifar10(folder: Path, names: list[str], verify_checksums: bool) -> _CifarSplit:
    """The batches ``names`` and ``batches.meta`` of one CIFAR-10 folder, checked (MD5
    sums when ``verify_checksums``, structure always) and read without running code."""
    from torchvision.datasets import CIFAR10

    sums = dict(CIFAR10.train_list + CIFAR10.test_list)
    meta_path = folder / CIFAR10.meta["filename"]
    if verify_checksums:
        _check_md5({**{folder / n: sums[n] for n in names}, meta_path: CIFAR10.meta["md5"]})
    if meta_path.is_file():
        meta = _read_cifar_pickle(meta_path)
        classes = meta.get("label_names") if isinstance(meta, dict) else None
        if not (isinstance(classes, list) and len(classes) >= 2
                and all(isinstance(c, str) for c in classes)):
            raise DataFileError(f"{meta_path} holds no list of class names under "
                                "'label_names'; it is not CIFAR-10's batches.meta.")
    else:  # only reached with verify_checksums=False: the names are not needed
        classes = [str(i) for i in range(10)]
    images, targets = [], []
    for name in names:
        path = folder / name
        entry = _read_cifar_pickle(path)
        data = entry.get("data") if isinstance(entry, dict) else None
        labels = entry.get("labels", entry.get("fine_labels")) if isinstance(entry, dict) \
            else None
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
                or data.shape[1] != 3 * 32 * 32:
            raise DataFileError(f"{path} holds no uint8 images shaped (n, 3072) under 'data'; "
                                "it is not a CIFAR-10 batch.")
        try:
            labels = np.asarray(labels)
        except Exception:  # a ragged or odd object: reported below
            labels = np.asarray(None)
        if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer) \
                or (len(labels) and (labels.min() < 0 or labels.max() >= len(classes))):
            raise DataFileError(f"{path} holds no list of {len(data)} labels in "
                                f"0..{len(classes) - 1} under 'labels'; it is not a "
                                "CIFAR-10 batch.")
        images.append(data.reshape(-1, 3, 32, 32))
        targets.append(labels.astype(np.int64))
    return _CifarSplit(np.concatenate(images), np.concatenate(targets), list(classes))


def _download_cifar10(root: Path, verify_checksums: bool) -> None:
    """Fetch and unpack the official archive unless the files are there (and, with
    ``verify_checksums``, pass the MD5 check); torchvision checks the archive's MD5."""
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import download_and_extract_archive

    folder = root / CIFAR10.base_folder
    wanted = {folder / n: md5 for n, md5 in CIFAR10.train_list + CIFAR10.test_list}
    wanted[folder / CIFAR10.meta["filename"]] = CIFAR10.meta["md5"]
    if all(p.is_file() for p in wanted) and not verify_checksums:
        return
    if all(p.is_file() and _md5(p) == md5 for p, md5 in wanted.items()):
        return
    download_and_extract_archive(CIFAR10.url, str(root), filename=CIFAR10.filename,
                                 md5=CIFAR10.tgz_md5)


class _ImageFiles(NamedTuple):
    """Where a torchvision image set's files lie under the root: they are checked before
    torchvision opens them, since its own message names no fix."""

    name: str  # the registry name, also the feature cache's
    title: str
    folder: str
    files: tuple[str, ...]
    download_size: str


def _load_image_set(
    files: _ImageFiles,
    open_split: Callable[[Path, bool], Any],
    pixels: Callable[[Any], np.ndarray],
    *,
    sizes: tuple[int | str, int, int | None],
    seed: int,
    root: str | Path | None,
    download: bool,
    encoder,
    device: str,
    chunk_size: int | None,
    progress: bool,
) -> Splits:
    """What CIFAR-10 and Fashion-MNIST share: check the files, draw train and valid from
    the training files and test from the test files, encode each split once (cached).

    ``open_split(root, train)`` opens the torchvision training or test set and
    ``pixels(dataset)`` gives its uint8 images as ``(N, C, H, W)``; they stay uint8
    until the encoder takes them chunk by chunk. ``n_train="all"``: every training
    image not drawn for validation. ``download`` also lets a pretrained encoder fetch
    its weights.
    """
    n_train, n_valid, n_test = sizes
    check_sizes(n_train, n_valid, n_test)
    root = Path(root).expanduser() if root is not None else default_data_root()
    folder = root / files.folder
    missing = [name for name in files.files if not (folder / name).is_file()]
    if missing and not download:
        raise FileNotFoundError(
            f"{files.title} files not found in {folder} (missing: {', '.join(missing)}). Either "
            f"pass download=True to fetch them ({files.download_size}), or put the standard "
            "files at that path. The root is root= or $DVRL_DATA, else ~/.cache/dvrl_env/data."
        )
    sets = [open_split(root, train) for train in (True, False)]
    pools = [pixels(s) for s in sets]
    labels = [np.asarray(s.targets, dtype=np.int64) for s in sets]
    n_pool, n_test_pool = len(labels[0]), len(labels[1])
    n_train = resolve_n_train(n_train, n_pool - n_valid, f"{files.name}'s training files "
                              f"({n_pool} images, n_valid = {n_valid})")
    if n_train + n_valid > n_pool:
        raise ValueError(
            f"{files.name}'s training files hold {n_pool} images, but n_train + n_valid = "
            f"{n_train + n_valid}; ask for fewer."
        )
    if n_test is not None and n_test > n_test_pool:
        raise ValueError(f"{files.name}'s test files hold {n_test_pool} images, but n_test = "
                         f"{n_test}; ask for fewer.")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n_pool)
    test = rng.permutation(n_test_pool)[: n_test or n_test_pool]
    picks = (
        ("train", 0, perm[:n_train]),
        ("valid", 0, perm[n_train : n_train + n_valid]),
        ("test", 1, test),
    )
    key = encoders.encoder_key(encoder)
    # built on the first cache miss, then shared by the splits; never when all are cached
    model = functools.cache(lambda: encoders.built(encoder, seed=seed, download=download))
    arrays, cache_files = [], []
    for split, pool, idx in picks:
        images = np.ascontiguousarray(pools[pool][idx])
        path = encoders.feature_cache_path(
            root, dataset=files.name, split=split, encoder=key, seed=seed, n=len(idx),
            fingerprint=hashlib.sha256(images.tobytes()).hexdigest()[:12],
        )

        def compute(images: np.ndarray = images) -> np.ndarray:
            return encoders.encode(images, model(), seed=seed, device=device,
                                   chunk_size=chunk_size, progress=progress)

        arrays += [encoders.cached_features(path, compute, n_rows=len(idx)), labels[pool][idx]]
        cache_files.append(str(path))
    meta = {
        "encoder": key,
        "encoder_seed": seed,
        "image_shape": tuple(int(s) for s in pools[0].shape[1:]),
        "root": str(root),
        "cache_files": cache_files,
        "n_available": {"train_files": n_pool, "test_files": n_test_pool},
        "class_names": list(sets[0].classes),
    }
    return Splits(*arrays, len(sets[0].classes), meta)


def load_cifar10(
    *,
    n_train: int | str,
    n_valid: int,
    n_test: int | None,
    seed: int = 0,
    root: str | Path | None = None,
    download: bool = False,
    encoder=None,
    verify_checksums: bool = True,
    device: str = "auto",
    chunk_size: int | None = None,
    progress: bool = True,
) -> Splits:
    """CIFAR-10 through torchvision: train+valid from the training batches, test from test_batch.

    Files live under ``root/cifar-10-batches-py`` (``root`` defaults to
    :func:`default_data_root`). Images, floats in [0, 1] shaped (N, 3, 32, 32), pass
    once through ``encoder`` (default ``"flatten"``, see :mod:`dvrl_env.data.encoders`) and
    the features are cached under ``root/dvrl_cache``. The files' MD5 sums are checked
    against torchvision's list; ``verify_checksums=False`` skips that and only checks the
    files exist: the deliberate path for small test files or re-packed copies. Either
    way the pickles are read by an unpickler that builds only what the format holds
    (dicts, lists, strings, numbers, numpy arrays), so a crafted file is refused with a
    :class:`DataFileError` and runs nothing. ``n_test=None`` takes the whole test batch;
    ``n_train="all"`` every one of the 50,000 training images not drawn for validation.
    A pretrained ``encoder`` (``"resnet18-imagenet"``, ``"inception_v3-imagenet"``)
    fetches its weights too when ``download=True``. Encoding runs in chunks of
    ``chunk_size`` images (default: the encoder's) on ``device`` (``"auto"``: the GPU
    when there is one), with a progress bar on a terminal unless ``progress=False``.
    """
    from torchvision.datasets import CIFAR10

    def open_split(root: Path, train: bool) -> _CifarSplit:
        if download and train:  # the training split is opened first; once is enough
            _download_cifar10(root, verify_checksums)
        names = [name for name, _ in (CIFAR10.train_list if train else CIFAR10.test_list)]
        return _read_cifar10(root / CIFAR10.base_folder, names, verify_checksums)

    files = _ImageFiles("cifar10", "CIFAR-10", CIFAR10.base_folder,
                        tuple(n for n, _ in CIFAR10.train_list + CIFAR10.test_list), "about 170 MB")
    splits = _load_image_set(
        files, open_split, lambda s: s.data,  # already (N, 3, 32, 32)
        sizes=(n_train, n_valid, n_test), seed=seed, root=root, download=download,
        encoder=encoder, device=device, chunk_size=chunk_size, progress=progress,
    )
    splits.meta["verify_checksums"] = verify_checksums
    return splits


register_dataset(DatasetEntry(
    name="cifar10", env_id="DataValuation-CIFAR10-v0", loader=load_cifar10,
    n_train=4000, n_valid=1000, n_test=2000, is_image=True, aliases=("cifar_10",),
    description="CIFAR-10 through torchvision (root=, download=True), pixels or an encoder",
))


def load_fashion_mnist(
    *,
    n_train: int | str,
    n_valid: int,
    n_test: int | None,
    seed: int = 0,
    root: str | Path | None = None,
    download: bool = False,
    encoder=None,
    device: str = "auto",
    chunk_size: int | None = None,
    progress: bool = True,
) -> Splits:
    """Fashion-MNIST through torchvision: train+valid from the 60k training images, test from t10k.

    Files live under ``root/FashionMNIST/raw`` as the four uncompressed idx files;
    torchvision only checks that they exist, so no checksum option is needed. Images,
    floats in [0, 1] shaped (N, 1, 28, 28), pass once through ``encoder`` (default
    ``"flatten"``; gray images are repeated to three channels for the conv nets) and the
    features are cached under ``root/dvrl_cache``. The other options are CIFAR-10's:
    ``n_train="all"`` is every one of the 60,000 training images not drawn for validation.
    """
    from torchvision.datasets import FashionMNIST

    def open_split(root: Path, train: bool) -> FashionMNIST:
        return FashionMNIST(str(root), train=train, download=download)

    files = _ImageFiles("fashion_mnist", "Fashion-MNIST", "FashionMNIST/raw",
                        tuple(f"{p}-{kind}" for p in ("train", "t10k")
                              for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")),
                        "about 30 MB")
    return _load_image_set(
        files, open_split, lambda s: s.data.numpy()[:, None],  # gray: one channel
        sizes=(n_train, n_valid, n_test), seed=seed, root=root, download=download,
        encoder=encoder, device=device, chunk_size=chunk_size, progress=progress,
    )


register_dataset(DatasetEntry(
    name="fashion_mnist", env_id="DataValuation-FashionMNIST-v0", loader=load_fashion_mnist,
    n_train=4000, n_valid=1000, n_test=2000, is_image=True, aliases=("fashionmnist",),
    description="Fashion-MNIST through torchvision (root=, download=True), as CIFAR-10",
))

"""Tiny CIFAR-10 and Fashion-MNIST files in the real on-disk formats, for offline tests.

The files are read by the same code as the real data sets (dvrl-env's restricted
unpickler for CIFAR-10, torchvision's loader for Fashion-MNIST). CIFAR-10 batches are
Python 2 pickles like the originals, byte for byte in kind: strings and an array's raw
data as byte strings (``b"data"`` with ``encoding="bytes"``, ``"data"`` with
``encoding="latin1"``), numpy's array builder under its old name ``numpy.core``. The
images are random, so CIFAR-10 MD5 sums do not match: load them with
``verify_checksums=False``. Fashion-MNIST files are the
uncompressed big-endian idx files that torchvision reads after extraction.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np

__all__ = ["CIFAR10_CLASSES", "write_fake_cifar10", "write_fake_fashion_mnist"]

CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]


class _Py2Str(str):
    """A str that pickles as a Python 2 byte string (opcode BINSTRING), as cPickle wrote."""


class _Py2Pickler(pickle._Pickler):
    """The pure-Python pickler, taught to write as Python 2's cPickle wrote the originals:
    :class:`_Py2Str` and bytes (an array's raw data, its dtype code) as byte strings
    (opcode BINSTRING), numpy's array builder under its old module ``numpy.core``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj: str | bytes) -> None:
        raw = obj if isinstance(obj, bytes) else obj.encode("latin-1")
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[_Py2Str] = _save_py2_str
    dispatch[bytes] = _save_py2_str

    def save_global(self, obj, name=None) -> None:
        module = pickle.whichmodule(obj, name or obj.__qualname__)
        if module.startswith("numpy._core."):
            module = "numpy.core." + module.removeprefix("numpy._core.")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)


def _dump_py2(obj: dict, path: Path) -> None:
    with open(path, "wb") as f:
        _Py2Pickler(f, protocol=2).dump(obj)


def _labels(rng: np.random.Generator, n: int) -> np.ndarray:
    """Every class about equally often (in a random order), so small splits see most classes."""
    return rng.permutation(np.arange(n) % 10)


def write_fake_cifar10(
    root: str | Path, n_train_per_batch: int = 6, n_test: int = 20, seed: int = 0
) -> Path:
    """Write ``root/cifar-10-batches-py`` with five training batches, a test batch and meta.

    Returns the batch folder. The training set holds ``5 * n_train_per_batch`` images.
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    train_labels = _labels(rng, 5 * n_train_per_batch)
    batches = [(f"data_batch_{i + 1}", f"training batch {i + 1} of 5", i) for i in range(5)]
    batches.append(("test_batch", "testing batch 1 of 1", None))
    for name, label, part in batches:
        if part is None:
            labels = _labels(rng, n_test)
        else:
            labels = train_labels[part * n_train_per_batch : (part + 1) * n_train_per_batch]
        entry = {
            _Py2Str("batch_label"): _Py2Str(label),
            _Py2Str("labels"): [int(v) for v in labels],
            _Py2Str("data"): rng.integers(0, 256, size=(len(labels), 3072), dtype=np.uint8),
            _Py2Str("filenames"): [_Py2Str(f"fake_{name}_{i}.png") for i in range(len(labels))],
        }
        _dump_py2(entry, folder / name)
    meta = {
        _Py2Str("num_cases_per_batch"): n_train_per_batch,
        _Py2Str("label_names"): [_Py2Str(c) for c in CIFAR10_CLASSES],
        _Py2Str("num_vis"): 3072,
    }
    _dump_py2(meta, folder / "batches.meta")
    return folder


def _write_idx(path: Path, array: np.ndarray) -> None:
    """idx format: magic (0, 0, 0x08 = uint8, ndim), big-endian uint32 dims, then the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_fake_fashion_mnist(
    root: str | Path, n_train: int = 30, n_test: int = 20, seed: int = 0
) -> Path:
    """Write the four uncompressed idx files under ``root/FashionMNIST/raw``; return it."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "FashionMNIST" / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        _write_idx(folder / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte", _labels(rng, n).astype(np.uint8))
    return folder

"""The one record type every part of dvrl-env passes around, and its builders.

A :class:`ValuationDataset` holds features (already encoded), integer labels, the
clean labels and the noise mask. Builders check their input once, here, so that the
environment, agents and evaluation can trust the record.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dvrl_env.data.registry import (
    ALL,
    Splits,
    check_seed,
    check_sizes,
    dataset_entry,
    dataset_names,
)

__all__ = [
    "ValuationDataset",
    "add_label_noise",
    "dataset_names",
    "from_arrays",
    "load_dataset",
]


@dataclass(frozen=True, eq=False)
class ValuationDataset:
    """Training, validation and test splits of one classification problem.

    Attributes:
        x_train, x_valid, x_test: float32 features, shape ``(n, d)``.
        y_train: int64 training labels *as used* (after label noise).
        y_train_clean: int64 training labels before noise.
        noisy_mask: bool, True where ``y_train != y_train_clean`` was made by noise.
        y_valid, y_test: int64 clean labels.
        num_classes: C; labels lie in ``0..C-1``.
        name: a short name used in logs, plots and cache keys.
        noise_rate: the fraction of training labels that were flipped.
        meta: free-form provenance (source, encoder, seed, column names).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    y_train_clean: np.ndarray
    noisy_mask: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    name: str = "custom"
    noise_rate: float = 0.0
    meta: dict = field(default_factory=dict)

    @property
    def n_train(self) -> int:
        return len(self.y_train)

    @property
    def num_features(self) -> int:
        return int(self.x_train.shape[1])

    def fingerprint(self) -> str:
        """SHA-256 of every split's features and labels (noise included): equal data give
        equal hashes, whatever file or generator they came from. Checkpoints and runs
        record it, so values are never read back against other data."""
        digest = hashlib.sha256()
        for name in ("x_train", "y_train", "y_train_clean", "x_valid", "y_valid", "x_test",
                     "y_test"):
            array = np.ascontiguousarray(getattr(self, name))
            digest.update(f"{name}{array.dtype.str}{array.shape}".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()

    def __repr__(self) -> str:
        return (
            f"ValuationDataset(name={self.name!r}, n_train={self.n_train}, "
            f"n_valid={len(self.y_valid)}, n_test={len(self.y_test)}, "
            f"num_features={self.num_features}, num_classes={self.num_classes}, "
            f"noise_rate={self.noise_rate}, n_noisy={int(self.noisy_mask.sum())})"
        )


def add_label_noise(
    labels: np.ndarray, num_classes: int, noise_rate: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Flip exactly ``round(noise_rate * n)`` labels, each to a uniformly chosen other class.

    This is the official DVRL corruption (``dvrl/data_loading.py: corrupt_label``).
    Returns ``(noisy_labels, noisy_mask)``; the same seed gives the same flips.
    """
    if not 0.0 <= noise_rate <= 1.0:
        raise ValueError(f"noise_rate must lie in [0, 1], got {noise_rate}.")
    seed = check_seed(seed)
    labels = np.asarray(labels, dtype=np.int64)
    n_flip = int(round(noise_rate * len(labels)))
    mask = np.zeros(len(labels), dtype=bool)
    if n_flip == 0:
        return labels.copy(), mask
    if num_classes < 2:
        raise ValueError("Label noise needs at least two classes.")
    rng = np.random.default_rng(seed)
    flip = rng.choice(len(labels), size=n_flip, replace=False)
    # An offset in 1..C-1 moves each label to a different class, uniformly.
    offset = rng.integers(1, num_classes, size=n_flip)
    noisy = labels.copy()
    noisy[flip] = (labels[flip] + offset) % num_classes
    mask[flip] = True
    return noisy, mask


def _as_features(x, split: str) -> np.ndarray:
    try:
        with np.errstate(over="ignore"):  # a value beyond float32 is reported below, by name
            arr = np.asarray(x, dtype=np.float32)
    except OverflowError as err:  # a Python int beyond even float64
        raise ValueError(f"x_{split} holds a number too large for float32 ({err}); features "
                         "are stored as float32, so scale them first.") from None
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"x_{split} must be numeric; convert categorical columns to numbers first ({err})."
        ) from None
    if arr.ndim == 1:
        raise ValueError(
            f"x_{split} has shape {arr.shape}; expected (n_samples, n_features). "
            "For a single feature use x.reshape(-1, 1)."
        )
    if arr.ndim > 2:
        arr = arr.reshape(len(arr), -1)
    if not np.isfinite(arr).all():
        _check_float32_range(x, arr, split)
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"x_{split} contains NaN or inf (first at row {bad[0]}, column {bad[1]}); "
            "impute or drop those values before valuation."
        )
    return np.ascontiguousarray(arr)


def _check_float32_range(x, arr: np.ndarray, split: str) -> None:
    """Values finite as given but beyond float32's range became inf in ``arr``: say so,
    rather than call them NaN or inf, which they were not."""
    try:
        wide = np.asarray(x, dtype=np.float64).reshape(arr.shape)
    except (TypeError, ValueError, OverflowError):
        return
    overflow = np.isfinite(wide) & ~np.isfinite(arr)
    if overflow.any():
        row, column = np.argwhere(overflow)[0]
        largest = np.abs(wide[np.isfinite(wide)]).max()
        raise ValueError(
            f"x_{split} has values that overflow float32 (largest magnitude {largest:.4g}, "
            f"first at row {row}, column {column}; float32 holds up to "
            f"{np.finfo(np.float32).max:.4g}): features are stored as float32, so scale them "
            "first (e.g. standardise each column, or take logs)."
        )


def _as_labels(y, split: str, n: int) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(
            f"y_{split} must be one-dimensional integer labels, got shape {arr.shape}."
        )
    if len(arr) != n:
        raise ValueError(
            f"x_{split} has {n} rows but y_{split} has {len(arr)} labels; they must match."
        )
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(
            arr == np.round(arr)
        ):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(
                f"y_{split} must hold integer class labels 0..C-1 (got dtype {arr.dtype}); "
                "encode string labels first, e.g. with sklearn.preprocessing.LabelEncoder."
            )
    return arr.astype(np.int64)


def from_arrays(
    x_train,
    y_train,
    x_valid,
    y_valid,
    x_test=None,
    y_test=None,
    *,
    noise_rate: float = 0.0,
    seed: int = 0,
    name: str = "custom",
    num_classes: int | None = None,
    meta: dict | None = None,
) -> ValuationDataset:
    """Build a :class:`ValuationDataset` from in-memory arrays, checking them.

    ``y_*`` are integer labels in ``0..C-1``; C is ``num_classes`` or one more than
    the largest label seen. Label noise (``noise_rate``) is applied to the training
    labels only, with ``seed``. Without a test split, the validation split is reused
    for testing (and ``meta["test_is_valid"]`` says so).
    """
    seed = check_seed(seed)
    x_train = _as_features(x_train, "train")
    x_valid = _as_features(x_valid, "valid")
    y_train = _as_labels(y_train, "train", len(x_train))
    y_valid = _as_labels(y_valid, "valid", len(x_valid))
    meta = dict(meta or {})
    if (x_test is None) != (y_test is None):
        raise ValueError("Give both x_test and y_test, or neither.")
    if x_test is None:
        x_test, y_test = x_valid, y_valid
        meta["test_is_valid"] = True
    else:
        x_test = _as_features(x_test, "test")
        y_test = _as_labels(y_test, "test", len(x_test))
    if len(x_train) == 0:
        raise ValueError("The training set is empty; data valuation needs training points.")
    if len(x_valid) == 0:
        raise ValueError(
            "The validation set is empty; DVRL needs a clean validation set for its reward "
            "(hold out part of your data, e.g. 10-20%)."
        )
    for split, x in (("valid", x_valid), ("test", x_test)):
        if x.shape[1] != x_train.shape[1]:
            raise ValueError(
                f"x_{split} has {x.shape[1]} features but x_train has {x_train.shape[1]}."
            )
    largest = int(max(y_train.max(), y_valid.max(), y_test.max() if len(y_test) else 0))
    smallest = int(min(y_train.min(), y_valid.min(), y_test.min() if len(y_test) else 0))
    if num_classes is None:
        num_classes = largest + 1
    if smallest < 0 or largest >= num_classes:
        raise ValueError(
            f"Labels must lie in 0..{num_classes - 1}, found values from {smallest} to "
            f"{largest}; re-encode them (sklearn.preprocessing.LabelEncoder)."
        )
    if num_classes < 2:
        raise ValueError("Data valuation needs at least two classes; all labels are equal.")
    present = np.unique(y_valid).tolist()
    if len(present) < 2:
        raise ValueError(
            f"The validation set holds a single class ({present[0]}); the reward and the "
            "marginal information compare classes there, so it needs at least two. Hold out "
            "a larger or stratified validation split."
        )
    missing = sorted(set(range(num_classes)) - set(present))
    if missing:
        names = meta.get("label_names")  # a CSV's labels as written: say them, not indices
        named = (f" ({', '.join(repr(str(names[i])) for i in missing)})"
                 if isinstance(names, list) and len(names) == num_classes else "")
        warnings.warn(
            f"The validation set has no example of class(es) {missing}{named}; its reward cannot "
            "credit points of those classes. Use a larger or stratified validation split.",
            stacklevel=2,
        )
    y_noisy, mask = add_label_noise(y_train, num_classes, noise_rate, seed)
    return ValuationDataset(
        x_train=x_train,
        y_train=y_noisy,
        y_train_clean=y_train,
        noisy_mask=mask,
        x_valid=x_valid,
        y_valid=y_valid,
        x_test=x_test,
        y_test=y_test,
        num_classes=int(num_classes),
        name=name,
        noise_rate=float(noise_rate),
        meta=meta,
    )


# --- named datasets: their facts live in the registry (dvrl_env.data.registry) -------


def load_dataset(
    name: str,
    *,
    root: str | Path | None = None,
    download: bool = False,
    n_train: int | str | None = None,
    n_valid: int | None = None,
    n_test: int | None = None,
    noise_rate: float = 0.0,
    encoder=None,
    seed: int = 0,
    **source_options,
) -> ValuationDataset:
    """Load a named dataset, split it with ``seed`` and corrupt ``noise_rate`` of its labels.

    Names are the registry's (:func:`dataset_names`): ``"digits"`` (scikit-learn's
    bundled digits, offline), ``"adult"`` (UCI Adult, shipped with the package),
    ``"cifar10"`` and ``"fashion_mnist"`` (torchvision files under ``root``;
    ``download=True`` fetches them; images pass through ``encoder`` once and the
    features are cached under ``root``), and any added with
    :func:`~dvrl_env.data.registry.register_dataset`. A size left ``None`` is the
    entry's default (``n_test=None`` for digits: every remaining example);
    ``n_train="all"`` takes every example the validation and test splits leave (for the
    image sets: every training image not drawn for validation).
    ``source_options`` go to the dataset's loader.
    """
    entry = dataset_entry(name)
    seed = check_seed(seed, "data_seed (seed= of load_dataset)")
    given = {"n_train": n_train, "n_valid": n_valid, "n_test": n_test}
    sizes = {key: getattr(entry, key) if value is None else value
             for key, value in given.items()}
    check_sizes(**sizes)
    sizes = {key: value if value is None or value == ALL else int(value)
             for key, value in sizes.items()}
    options = dict(source_options)
    if entry.is_image:
        options.update(root=root, download=download, encoder=encoder)
    elif encoder is not None or root is not None or download:
        unused = [k for k, v in (("encoder", encoder), ("root", root), ("download", download)) if v]
        raise ValueError(f"Option(s) {unused} apply to image datasets only, not {entry.name!r}.")
    splits = entry.loader(**sizes, seed=seed, **options)
    if not isinstance(splits, Splits):
        raise TypeError(f"The loader of dataset {entry.name!r} returned a "
                        f"{type(splits).__name__}; loaders return "
                        "dvrl_env.data.registry.Splits.")
    meta = {**splits.meta, "source": entry.name, "data_seed": seed}
    return from_arrays(
        splits.x_train, splits.y_train, splits.x_valid, splits.y_valid, splits.x_test,
        splits.y_test, noise_rate=noise_rate, seed=seed, name=entry.name,
        num_classes=splits.num_classes, meta=meta,
    )

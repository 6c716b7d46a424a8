"""The dataset registry: one entry per named dataset, the single place its facts live.

An entry holds a dataset's name, Gymnasium id, loader, default sizes, image flag and a
one-line description. :func:`~dvrl_env.data.datasets.load_dataset`, the Gymnasium ids
(:mod:`dvrl_env.envs.registration`), error messages and the README's table all come
from here, so adding a dataset is one module (its loader) plus one
:func:`register_dataset` call::

    def load_toy(*, n_train, n_valid, n_test, seed=0) -> Splits: ...

    register_dataset(DatasetEntry(
        name="toy", env_id="DataValuation-Toy-v0", loader=load_toy,
        n_train=100, n_valid=50, n_test=50, description="a toy problem"))

after which ``load_dataset("toy")`` and ``gym.make("DataValuation-Toy-v0")`` work. The
built-in entries sit beside their loaders in :mod:`dvrl_env.data.sources`.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from dvrl_env.plugins import load_plugins

__all__ = [
    "ALL",
    "DatasetEntry",
    "Splits",
    "check_seed",
    "check_sizes",
    "dataset_entries",
    "dataset_entry",
    "dataset_names",
    "on_register",
    "register_dataset",
    "resolve_n_train",
    "split_pool",
]


class Splits(NamedTuple):
    """What every loader returns: clean splits, float features ``(n, d)``, int labels.

    Label noise is added later, by :func:`~dvrl_env.data.datasets.from_arrays`, so that
    every dataset is corrupted the same way.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    meta: dict


Loader = Callable[..., Splits]


@dataclass(frozen=True)
class DatasetEntry:
    """One named dataset.

    Attributes:
        name: the name :func:`~dvrl_env.data.datasets.load_dataset` takes, lower case.
        env_id: its Gymnasium id, registered with ``dataset=name``.
        loader: called as ``loader(n_train=, n_valid=, n_test=, seed=, **options)`` and
            returns :class:`Splits`; an image loader also takes ``root=``, ``download=``
            and ``encoder=``.
        n_train, n_valid, n_test: default sizes; ``n_test=None`` lets the loader take
            every remaining example. A loader is also given ``n_train="all"`` when a user
            asks for every example the other splits leave
            (:func:`resolve_n_train` turns it into a number).
        description: one line for listings and docs.
        is_image: whether the loader reads image files (and takes the options above).
        aliases: other spellings ``load_dataset`` accepts (lower case, ``_`` for ``-``).
    """

    name: str
    env_id: str
    loader: Loader
    n_train: int | str
    n_valid: int
    n_test: int | None
    description: str
    is_image: bool = False
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for spelling in (self.name, *self.aliases):
            if not spelling or _key(spelling) != spelling:
                raise ValueError(f"Dataset name {spelling!r} must be non-empty, lower case and "
                                 f"use '_' rather than '-', e.g. {_key(spelling) or 'my_data'!r}.")
        if not callable(self.loader):
            raise TypeError(f"The loader of dataset {self.name!r} must be callable, got "
                            f"{type(self.loader).__name__}.")
        check_sizes(self.n_train, self.n_valid, self.n_test)


_ENTRIES: dict[str, DatasetEntry] = {}
_LISTENERS: list[Callable[[DatasetEntry], None]] = []


def _key(name: str) -> str:
    """How names are compared: ``"Fashion-MNIST"`` and ``"fashion_mnist"`` are one name."""
    return name.strip().lower().replace("-", "_")


ALL = "all"  # n_train="all": every example the other splits leave


def check_sizes(n_train: int | str, n_valid: int, n_test: int | None) -> None:
    """Split sizes must be positive integers; ``n_test`` may be None and ``n_train`` may
    be ``"all"`` (the loader resolves both against what it holds)."""
    for name, value in (("n_train", n_train), ("n_valid", n_valid), ("n_test", n_test)):
        if value is None or (name == "n_train" and value == ALL):
            continue
        integral = (isinstance(value, numbers.Real) and not isinstance(value, bool)
                    and float(value).is_integer())
        if not integral or value < 1:
            also = f" or {ALL!r}" if name == "n_train" else ""
            raise ValueError(f"{name} must be a positive integer{also}, got {value!r}.")


def check_seed(seed: int, option: str = "seed") -> int:
    """``seed`` as an int, if it is a whole number in ``0..2**64 - 1``: numpy's generators
    refuse negative seeds and torch's those of 2**64 and more, with messages that name no
    option; this one names ``option``."""
    integral = (isinstance(seed, numbers.Real) and not isinstance(seed, bool)
                and float(seed).is_integer())
    if not integral or not 0 <= seed < 2**64:
        raise ValueError(f"{option} must be a whole number from 0 to 2**64 - 1 (it seeds the "
                         f"data splits and the label noise), got {seed!r}.")
    return int(seed)


def resolve_n_train(n_train: int | str, available: int, what: str) -> int:
    """``n_train`` as a number: ``"all"`` is the ``available`` examples the other splits
    leave, which must be at least one."""
    if n_train != ALL:
        return int(n_train)
    if available < 1:
        raise ValueError(f"n_train='all' leaves no training examples in {what}; ask for "
                         "smaller validation or test splits.")
    return int(available)


def split_pool(
    n_available: int, n_train: int | str, n_valid: int, n_test: int | None, seed: int,
    what: str = "the dataset",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disjoint random train, validation and test indices into a pool of ``n_available``
    examples: what a loader needs to turn one table into :class:`Splits`, as the
    built-in loaders do. The sizes are checked as :func:`check_sizes` does;
    ``n_test=None`` takes every example the other two leave, and ``n_train="all"`` (with
    a number for ``n_test``) every example the validation and test splits leave. The
    same ``seed`` gives the same indices; asking for more than the pool holds raises a
    ValueError naming ``what``::

        train, valid, test = split_pool(len(y), n_train, n_valid, n_test, seed, "toy")
        return Splits(x[train], y[train], x[valid], y[valid], x[test], y[test], 2, {})
    """
    check_sizes(n_train, n_valid, n_test)
    if n_train == ALL:
        if n_test is None:
            raise ValueError(f"n_train='all' and n_test=None both ask {what} for the examples "
                             "left over; give n_test a number.")
        n_train = resolve_n_train(n_train, n_available - n_valid - n_test, what)
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


def register_dataset(entry: DatasetEntry) -> DatasetEntry:
    """Add a dataset; its Gymnasium id is registered at once (see :func:`on_register`).

    Registering an equal entry again does nothing, so a module that registers its
    dataset may be imported twice; a name, alias or id already used by another entry
    is refused.
    """
    if _ENTRIES.get(entry.name) == entry:
        return entry
    for other in _ENTRIES.values():
        taken = {other.name, *other.aliases} & {entry.name, *entry.aliases}
        if taken or other.env_id == entry.env_id:
            what = f"name {sorted(taken)[0]!r}" if taken else f"env id {entry.env_id!r}"
            raise ValueError(f"Dataset {entry.name!r}: the {what} is already registered for "
                             f"dataset {other.name!r}; choose another.")
    _ENTRIES[entry.name] = entry
    for listener in _LISTENERS:
        listener(entry)
    return entry


def on_register(listener: Callable[[DatasetEntry], None]) -> None:
    """Call ``listener`` with every entry registered so far and every one registered later.

    :mod:`dvrl_env.envs.registration` registers the Gymnasium ids this way, so this
    module needs no Gymnasium. Adding the same listener twice has no effect.
    """
    if listener in _LISTENERS:
        return
    _LISTENERS.append(listener)
    for entry in list(_ENTRIES.values()):
        listener(entry)


def dataset_names() -> list[str]:
    """The registered names, in registration order (installed plugins loaded first,
    once: :mod:`dvrl_env.plugins`)."""
    load_plugins()
    return list(_ENTRIES)


def dataset_entries() -> list[DatasetEntry]:
    """The registered entries, in registration order (installed plugins loaded first)."""
    load_plugins()
    return list(_ENTRIES.values())


def dataset_entry(name: str) -> DatasetEntry:
    """The entry of a name or alias, compared as lower case with ``-`` read as ``_``."""
    key = _key(name) if isinstance(name, str) else name
    for attempt in range(2):  # a name not yet known loads the installed plugins, once
        for entry in _ENTRIES.values():
            if key == entry.name or key in entry.aliases:
                return entry
        if attempt == 0:
            load_plugins()
    raise ValueError(f"Unknown dataset {name!r}; choose one of {dataset_names()} or register "
                     "your own with dvrl_env.data.registry.register_dataset.")

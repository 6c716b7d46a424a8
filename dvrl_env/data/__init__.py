"""Datasets: the valuation dataset and its checks (:mod:`.datasets`), the dataset registry
(:mod:`.registry`) and the built-in datasets registered there (:mod:`.sources`), the
tabular encoder (:mod:`.columns`), CSV reading (:mod:`.tabular`), image encoders
(:mod:`.encoders`) and the marginal information (:mod:`.marginal`). The Adult files ship
beside this module."""

from dvrl_env.data import sources  # noqa: F401  (registers the built-in datasets)
from dvrl_env.data.datasets import ValuationDataset, add_label_noise, from_arrays, load_dataset
from dvrl_env.data.registry import (
    DatasetEntry,
    Splits,
    dataset_names,
    register_dataset,
    split_pool,
)

__all__ = ["DatasetEntry", "Splits", "ValuationDataset", "add_label_noise", "dataset_names",
           "from_arrays", "load_dataset", "register_dataset", "split_pool"]

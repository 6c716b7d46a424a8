"""Datasets: the valuation dataset and its checks (:mod:`.datasets`), the named sources
(:mod:`.sources`), CSV reading (:mod:`.tabular`), image encoders (:mod:`.encoders`) and
the marginal information (:mod:`.marginal`). The Adult files ship beside this module."""

from dvrl_env.data.datasets import ValuationDataset, add_label_noise, from_arrays, load_dataset

__all__ = ["ValuationDataset", "add_label_noise", "from_arrays", "load_dataset"]

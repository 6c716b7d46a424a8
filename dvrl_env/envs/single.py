"""The DVRL environment: select part of a training batch, get the validation reward.

The rules live in :mod:`dvrl_env.envs.core`; this env is their one-slot view.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from dvrl_env.data.datasets import ValuationDataset
from dvrl_env.envs.core import (
    DATA_OPTIONS,
    EnvConfig,
    SlotCore,
    option_names,
    reset_state_option,
    selection_array,
)
from dvrl_env.options import check_options, signature_hints


class DataValuationEnv(gym.Env):
    """Data valuation with reinforcement learning (DVRL, Yoon, Arik and Pfister 2020).

    ## Description
    Each step shows a batch of B training points. The agent (a data value estimator)
    selects some of them; a predictor is trained on the selected points and the reward
    is its validation performance minus a baseline. An agent that learns to select the
    points that help gives, through its selection probabilities, a value per point.

    ## Observation
    ``Dict`` of float32 arrays for the B points of the batch:
    ``x`` ``Box(B, d)`` the features (bounds: per-feature min and max over the training
    set), ``y`` ``Box(B, C)`` the one-hot label as given (possibly noisy), and
    ``marginal`` ``Box(B, C)`` the marginal information ``|onehot(y) - p_val(x)|`` of
    a logistic model trained on the validation set (zeros when
    ``marginal_information=False``). The noise mask never enters an observation.

    ## Action
    ``MultiBinary(B)``: 1 selects the point. An all-zero selection is allowed: the
    predictor is then not trained, and the reward is the score of its current weights
    minus the baseline (in ``reset_mode="step"`` the untrained initial predictor).

    ## Reward
    ``metric(predictor, validation set) - baseline``, a Python float. The predictor is
    trained as in the official code: ``predictor_epochs`` passes over the whole batch
    in shuffled mini-batches of ``predictor_batch_size``, Adam, cross-entropy weighted
    by the selection (a mini-batch's loss is ``sum(s_i l_i) / len(mini-batch)``).

    Scale, for a loop of your own (docs/rl_stacks.md): the ``"fixed"`` baseline is the
    predictor trained on all ``n_train`` rows while a step trains on at most B, so the
    rewards are almost always negative (Digits, B = 100, half selected: -0.15 on average);
    only differences between selections of the same batch carry signal, a few hundredths
    (compare K selections, or subtract a running mean; normalise the advantages).
    ``predictor="logistic"`` needs ``predictor_lr`` about 0.05: at the default 1e-3 it
    barely trains (0.54 validation accuracy there instead of 0.80).

    ## Episode end
    ``reset_mode="step"`` (official, a contextual bandit): the predictor is restored to
    the same initial weights before every step, and every step ends the episode
    (``terminated=True``). ``"episode"``: restored at ``reset()``, kept and trained
    further through ``episode_length`` steps, then ``terminated=True``. ``"never"``:
    kept across episodes (restored only by ``reset(seed=...)``); episodes are cut after
    ``episode_length`` steps with ``truncated=True``.

    ## Info
    ``metric``, ``baseline``, ``n_selected``, ``indices`` (the training-set rows of the
    batch in the returned observation, so actions can be mapped to points) and, after a
    step, ``acted_indices`` (the rows of the batch the action selected from).

    ## Arguments
    * ``dataset``: a registered name (``"digits"``, ``"adult"``, ``"cifar10"``,
      ``"fashion_mnist"``, or one added with :func:`~dvrl_env.data.registry.register_dataset`)
      or a :class:`~dvrl_env.ValuationDataset` (e.g. from :func:`~dvrl_env.from_arrays`).
    * ``n_train``, ``n_valid``, ``n_test``, ``noise_rate``, ``root``, ``download``,
      ``encoder``: passed to :func:`~dvrl_env.load_dataset` for a named dataset.
    * ``data_seed``: the split and label-noise seed of a named dataset, and the folds' seed
      with ``validation="cross-fit"`` (default 0).
    * ``dataset_options``: further options of a named dataset's source, e.g.
      ``{"verify_checksums": False}`` for CIFAR-10 files that are not the originals.
    * ``batch_size``: B, default ``min(2000, n_train)`` as in the official code.
    * ``predictor``: ``"mlp"`` (default), ``"logistic"``, or a callable returning a
      fresh ``torch.nn.Module`` mapping ``(n, d)`` features to ``(n, C)`` logits.
    * ``predictor_epochs`` (100), ``predictor_batch_size`` (256), ``predictor_lr``
      (1e-3, Keras' Adam default).
    * ``metric``: ``"accuracy"`` (default), ``"auc"`` (two classes), ``"neg_log_loss"``.
    * ``baseline``: ``"fixed"`` (official: the score of the predictor trained on the
      whole training set; one per env, its initial weights and epoch orders drawn from
      ``data_seed``, trained once at the first reset and kept by later ones, whatever
      their seed),
      ``"moving_average"`` (the paper's pseudo-code: mean metric of the previous
      ``baseline_window`` steps; the first step's baseline is its own metric), or a number.
    * ``baseline_window``: window of the moving average (default 20).
    * ``marginal_information``: include ``m`` in observations (default True).
    * ``validation``: ``"given"`` (default: rewards and ``m`` from the dataset's validation
      set) or ``"cross-fit"``, for data with no clean validation set: the training rows
      are cut into ``folds`` (default 5) parts stratified by label (drawn with
      ``data_seed``); each batch is drawn from one part and the reward is the predictor's
      metric on the rows of the *other* parts, with their given labels, weighted by
      ``reference_weights`` (one weight in [0, 1] per training row, default all 1; e.g.
      :func:`dvrl_env.data.crossfit.reference_weights` of a previous round's values, to
      down-weight suspected rows). ``m`` is then cross-fitted too
      (:mod:`dvrl_env.data.crossfit`), so no row's observation or reward comes from a
      model that saw its own label. The ``"fixed"`` baseline is one per part (each
      trained once, from ``data_seed``). The
      noisy reference (uniform flips) shrinks the rewards towards a constant but, in
      expectation, keeps which selections score higher.
    * ``reset_mode``: ``"step"`` (default), ``"episode"`` or ``"never"``, see above.
    * ``episode_length``: steps per episode for ``"episode"`` and ``"never"`` (default 10).
    * ``device``: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.

    ## Seeding
    ``reset(seed=s)`` seeds the env's ``np_random`` and, from it, an env-local
    ``torch.Generator``; batches, mini-batch orders and the predictor's initial weights
    all come from there, never from the global RNG. The fixed baseline's come from
    ``data_seed``: it is the data's, not the episode's.

    ## Saving and restoring
    :meth:`state_dict` holds everything that decides the env's future (its RNGs, current
    batch, step counter, predictor weights and baselines) as tensors and plain values;
    ``reset(options={"state": state})`` puts an env built with the same options back
    there and returns the saved batch's observation, so a run resumed from a checkpoint
    continues exactly as if it had not stopped.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        dataset: str | ValuationDataset | None = None,
        *,
        n_train: int | str | None = None,
        n_valid: int | None = None,
        n_test: int | None = None,
        noise_rate: float | None = None,
        data_seed: int = 0,
        root: str | None = None,
        download: bool | None = None,
        encoder: Any = None,
        dataset_options: dict | None = None,
        batch_size: int | None = None,
        predictor: Any = "mlp",
        predictor_epochs: int = 100,
        predictor_batch_size: int = 256,
        predictor_lr: float = 1e-3,
        metric: str = "accuracy",
        baseline: str | float = "fixed",
        baseline_window: int = 20,
        marginal_information: bool = True,
        validation: str = "given",
        folds: int = 5,
        reference_weights: Any = None,
        reset_mode: str = "step",
        episode_length: int | None = None,
        device: str = "auto",
        **unknown: Any,
    ):
        options = {k: v for k, v in locals().items() if k not in ("self", "unknown")}
        if unknown:
            raise TypeError(
                f"Unknown option(s) {sorted(unknown)} for DataValuationEnv; valid options: "
                f"{sorted(self.option_names())}."
            )
        check_options("DataValuationEnv", options, signature_hints(DataValuationEnv.__init__))
        self._use(EnvConfig.from_options(options))

    @classmethod
    def from_config(cls, config: EnvConfig) -> DataValuationEnv:
        """A single env on an existing config (its data shared, not loaded again)."""
        self = cls.__new__(cls)
        self._use(config)
        return self

    def _use(self, config: EnvConfig) -> None:
        self.config = config
        self.core = SlotCore(config, 1)
        self.observation_space = config.observation_space
        self.action_space = config.action_space

    # ---- construction helpers ------------------------------------------------------
    def constructor_options(self) -> dict[str, Any]:
        """The keyword arguments this env was built with (``dataset`` included), so
        ``DataValuationEnv(**env.constructor_options())`` builds the same env."""
        return dict(self.config.options)

    def with_options(self, **changes: Any) -> DataValuationEnv:
        """A new env on this env's data (shared, not reloaded) with some options changed,
        e.g. ``env.with_options(batch_size=100)`` for an agent that wants small batches."""
        unknown = sorted(set(changes) - set(self.option_names()) - {"dataset"})
        if unknown:
            raise TypeError(f"Unknown option(s) {unknown}; valid options: "
                            f"{sorted(self.option_names())}.")
        options = self.constructor_options()
        for name in DATA_OPTIONS:
            options[name] = None  # they built the dataset, which is passed as it is
        return DataValuationEnv(**{**options, "dataset": self.dataset, **changes})

    @staticmethod
    def option_names() -> list[str]:
        return option_names(DataValuationEnv.__init__)

    # ---- Gymnasium API ---------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        state = reset_state_option(options)
        if state is not None:
            self.core.load_state_dict(state)
            slot = self.core.slots[0]
            self._np_random, self._np_random_seed = slot.np_random, slot.np_random_seed
            indices = self.core.indices[0].cpu().numpy()
        else:
            fresh = ({0: (self.np_random, self.np_random_seed)}
                     if self.core.needs_seeding(0, seed) else {})
            indices = self.core.reset([0], fresh)[0]
        return self.core.observe(self.core.indices[0]), self.core.reset_info(0, indices)

    def step(self, action):
        if not self.core.slots[0].ready:
            raise gym.error.ResetNeeded("Call reset() before step().")
        selection = selection_array(action, (self.batch_size,), "a selection vector")
        step = self.core.step(selection[None])
        return (self.core.observe(self.core.indices[0]), float(step.rewards[0]),
                bool(step.terminated[0]), bool(step.truncated[0]), step.info(0))

    # ---- what agents may use besides step/reset ----------------------------------------
    def all_observations(self) -> dict[str, np.ndarray]:
        """``x``, ``y`` and ``marginal`` for all ``n_train`` points in training-set order.

        The same arrays as in observations, so a DVE trained on batches can score every
        point. Returns copies.
        """
        return {k: v.copy() for k, v in self.config.observations.items()}

    @property
    def dataset(self) -> ValuationDataset:
        return self.config.dataset

    @property
    def n_train(self) -> int:
        return self.config.n_train

    @property
    def batch_size(self) -> int:
        return self.config.batch_size

    @property
    def reset_mode(self) -> str:
        return self.config.reset_mode

    @property
    def episode_length(self) -> int:
        return self.config.episode_length

    @property
    def metric(self) -> str:
        return self.config.metric

    @property
    def baseline(self) -> str | float:
        return self.config.baseline

    @property
    def predictor_lr(self) -> float:
        return self.config.predictor_lr

    @property
    def marginal_information(self) -> bool:
        return self.config.marginal_information

    @property
    def device(self):
        return self.config.device

    @property
    def fits(self) -> int:
        """Predictor fits this env has performed: one per step (whatever the selection:
        each step scores a predictor) and one for the fixed baseline (one per fold when
        cross-fitted), trained once at the first reset. The unit of compute in which
        agents are compared."""
        return self.core.fits

    @property
    def fixed_baseline(self) -> float | None:
        """The fixed baseline's metric (after the first reset; one per fold when
        cross-fitted), else None: the env's, the same whatever the reset seed."""
        return self.core.slots[0].fixed_baseline

    def state_dict(self) -> dict[str, Any]:
        """The env's state after a reset, for ``reset(options={"state": ...})``: that of
        a one-slot :class:`~dvrl_env.DataValuationVectorEnv`."""
        return self.core.state_dict()


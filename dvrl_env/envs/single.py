"""The DVRL environment: select part of a training batch, get the validation reward."""

from __future__ import annotations

import json
from collections import deque
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from dvrl_env.data.datasets import ValuationDataset, load_dataset
from dvrl_env.data.marginal import marginal_information as compute_marginal_information
from dvrl_env.device import resolve_device
from dvrl_env.options import check_options, signature_hints
from dvrl_env.predictors import (
    METRICS,
    PREDICTORS,
    build_predictor,
    epoch_permutations,
    fit_weighted,
    one_hot,
    resolve_predictor,
    restore,
    score,
    snapshot,
)
from dvrl_env.predictors.closed_form import fit_logistic, uses_closed_form

RESET_MODES = ("step", "episode", "never")
BASELINES = ("fixed", "moving_average")


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
    * ``dataset``: a name (``"digits"``, ``"adult"``, ``"cifar10"``, ``"fashion_mnist"``)
      or a :class:`~dvrl_env.ValuationDataset` (e.g. from :func:`~dvrl_env.from_arrays`).
    * ``n_train``, ``n_valid``, ``n_test``, ``noise_rate``, ``root``, ``download``,
      ``encoder``: passed to :func:`~dvrl_env.load_dataset` for a named dataset.
    * ``data_seed``: the split and label-noise seed of a named dataset (default 0).
    * ``dataset_options``: further options of a named dataset's source, e.g.
      ``{"verify_checksums": False}`` for CIFAR-10 files that are not the originals.
    * ``batch_size``: B, default ``min(2000, n_train)`` as in the official code.
    * ``predictor``: ``"mlp"`` (default), ``"logistic"``, or a callable returning a
      fresh ``torch.nn.Module`` mapping ``(n, d)`` features to ``(n, C)`` logits.
    * ``predictor_epochs`` (100), ``predictor_batch_size`` (256), ``predictor_lr``
      (1e-3, Keras' Adam default).
    * ``metric``: ``"accuracy"`` (default), ``"auc"`` (two classes), ``"neg_log_loss"``.
    * ``baseline``: ``"fixed"`` (official: the score of the predictor trained on the
      whole training set from the initial weights, computed at seeding),
      ``"moving_average"`` (the paper's pseudo-code: mean metric of the previous
      ``baseline_window`` steps; the first step's baseline is its own metric), or a number.
    * ``baseline_window``: window of the moving average (default 20).
    * ``marginal_information``: include ``m`` in observations (default True).
    * ``reset_mode``: ``"step"`` (default), ``"episode"`` or ``"never"``, see above.
    * ``episode_length``: steps per episode for ``"episode"`` and ``"never"`` (default 10).
    * ``device``: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.

    ## Seeding
    ``reset(seed=s)`` seeds the env's ``np_random`` and, from it, an env-local
    ``torch.Generator``; batches, mini-batch orders and the predictor's initial weights
    all come from there, never from the global RNG.

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
        n_train: int | None = None,
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
        data_options = {
            "n_train": n_train, "n_valid": n_valid, "n_test": n_test, "noise_rate": noise_rate,
            "root": root, "download": download, "encoder": encoder,
            **(dataset_options or {}),
        }
        self.dataset = self._resolve_dataset(dataset, data_options, data_seed)
        self._check_options(
            metric, baseline, baseline_window, reset_mode, predictor_epochs,
            predictor_batch_size, predictor_lr,
        )
        n, d, c = self.dataset.n_train, self.dataset.num_features, self.dataset.num_classes
        self.batch_size = int(min(2000, n) if batch_size is None else batch_size)
        if not 1 <= self.batch_size <= n:
            raise ValueError(f"batch_size must lie in 1..n_train={n}, got {batch_size}.")
        if reset_mode == "step":
            if episode_length not in (None, 1):
                raise ValueError("reset_mode='step' makes every step an episode; "
                                 "episode_length must be 1 (or use reset_mode='episode').")
            episode_length = 1
        self.episode_length = 10 if episode_length is None else int(episode_length)
        if self.episode_length < 1:
            raise ValueError(f"episode_length must be >= 1, got {episode_length}.")
        self.reset_mode = reset_mode
        self.metric = metric
        self.baseline = baseline
        self.baseline_window = int(baseline_window)
        self.marginal_information = bool(marginal_information)
        self.predictor_epochs = int(predictor_epochs)
        self.predictor_batch_size = int(predictor_batch_size)
        self.predictor_lr = float(predictor_lr)
        self.device = resolve_device(device)
        self._predictor_factory = resolve_predictor(predictor)
        # the logistic predictor trains in closed form on the CPU (same result, ~20x faster);
        # built-in predictors skip unselected points in forward and backward passes
        self._fit = (fit_logistic if uses_closed_form(self._predictor_factory, self.device)
                     else partial(fit_weighted, skip_unweighted=self._predictor_factory
                                  in PREDICTORS.values()))
        self._options = options

        marginal = (compute_marginal_information(self.dataset) if self.marginal_information
                    else np.zeros((n, c), dtype=np.float32))
        self._obs_arrays = {  # host copies, for all_observations()
            "x": self.dataset.x_train,
            "y": one_hot(self.dataset.y_train, c),
            "marginal": marginal,
        }
        to = {"device": self.device}
        self._obs_tensors = {k: torch.as_tensor(v, **to) for k, v in self._obs_arrays.items()}
        self._y_train = torch.as_tensor(self.dataset.y_train, **to)
        self._x_valid = torch.as_tensor(self.dataset.x_valid, **to)
        self._y_valid = torch.as_tensor(self.dataset.y_valid, **to)

        b = self.batch_size
        low, high = self.dataset.x_train.min(axis=0), self.dataset.x_train.max(axis=0)
        high = np.where(high > low, high, low + 1.0)  # a constant feature still gets a range
        x_low, x_high = np.broadcast_to(low, (b, d)), np.broadcast_to(high, (b, d))
        self.observation_space = spaces.Dict({
            "x": spaces.Box(x_low.copy(), x_high.copy(), dtype=np.float32),
            "y": spaces.Box(0.0, 1.0, (b, c), dtype=np.float32),
            "marginal": spaces.Box(0.0, 1.0, (b, c), dtype=np.float32),
        })
        self.action_space = spaces.MultiBinary(b)

        self._generator: torch.Generator | None = None
        self._predictor: torch.nn.Module | None = None
        self._initial_weights: list[torch.Tensor] | None = None
        self._fixed_baseline: float | None = None
        self._history: deque[float] = deque(maxlen=max(1, self.baseline_window))
        self._indices: torch.Tensor | None = None
        self._t = 0
        self._fits = 0

    # ---- construction helpers ------------------------------------------------------
    def constructor_options(self) -> dict[str, Any]:
        """The keyword arguments this env was built with (``dataset`` included), so
        ``DataValuationEnv(**env.constructor_options())`` builds the same env."""
        return dict(self._options)

    def with_options(self, **changes: Any) -> DataValuationEnv:
        """A new env on this env's data (shared, not reloaded) with some options changed,
        e.g. ``env.with_options(batch_size=100)`` for an agent that wants small batches."""
        unknown = sorted(set(changes) - set(self.option_names()) - {"dataset"})
        if unknown:
            raise TypeError(f"Unknown option(s) {unknown}; valid options: "
                            f"{sorted(self.option_names())}.")
        options = self.constructor_options()
        for name in ("n_train", "n_valid", "n_test", "noise_rate", "root", "download",
                     "encoder", "dataset_options"):
            options[name] = None  # they built the dataset, which is passed as it is
        return DataValuationEnv(**{**options, "dataset": self.dataset, **changes})

    @staticmethod
    def option_names() -> list[str]:
        import inspect

        params = inspect.signature(DataValuationEnv.__init__).parameters
        return [p for p in params if p not in ("self", "unknown")]

    @staticmethod
    def _resolve_dataset(dataset, data_options: dict, data_seed: int) -> ValuationDataset:
        given = {k: v for k, v in data_options.items() if v is not None}
        if isinstance(dataset, ValuationDataset):
            if given:
                raise ValueError(
                    f"Option(s) {sorted(given)} apply to named datasets only; a "
                    "ValuationDataset is used as it is (build it with those options instead)."
                )
            return dataset
        if isinstance(dataset, str):
            return load_dataset(dataset, seed=data_seed, **given)
        raise ValueError(
            "Pass dataset=<name> (digits, adult, cifar10, fashion_mnist) or "
            "dataset=dvrl_env.from_arrays(x_train, y_train, x_valid, y_valid) for your own data"
            + ("." if dataset is None else f"; got {type(dataset).__name__}.")
        )

    @staticmethod
    def _check_options(metric, baseline, window, reset_mode, epochs, batch_size, lr) -> None:
        if metric not in METRICS:
            raise ValueError(f"Unknown metric {metric!r}; choose one of {list(METRICS)}.")
        if isinstance(baseline, str) and baseline not in BASELINES:
            raise ValueError(f"Unknown baseline {baseline!r}; choose one of {list(BASELINES)} "
                             "or a number.")
        if not isinstance(baseline, str) and not np.isfinite(float(baseline)):
            raise ValueError(f"A numeric baseline must be finite, got {baseline}.")
        if reset_mode not in RESET_MODES:
            raise ValueError(f"Unknown reset_mode {reset_mode!r}; choose one of "
                             f"{list(RESET_MODES)}.")
        if window < 1 or epochs < 1 or batch_size < 1 or not lr > 0:
            raise ValueError("baseline_window, predictor_epochs and predictor_batch_size must "
                             "be >= 1 and predictor_lr > 0.")

    # ---- Gymnasium API ---------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        state = reset_state_option(options)
        if state is not None:
            self._load_state(state)
            return self._observation(self._indices), self._reset_info()
        if seed is not None or self._generator is None:
            self._seed_torch_state()
        elif self.reset_mode != "never":
            restore(self._predictor, self._initial_weights)
        self._t = 0
        self._indices = self._sample_batch()
        return self._observation(self._indices), self._reset_info()

    def _reset_info(self) -> dict:
        info = {"indices": self._indices.cpu().numpy()}
        if self._fixed_baseline is not None:
            info["baseline"] = self._fixed_baseline
        return info

    def step(self, action):
        if self._indices is None:
            raise gym.error.ResetNeeded("Call reset() before step().")
        selection = selection_array(action, (self.batch_size,), "a selection vector")
        weights = torch.as_tensor(selection, device=self.device)
        if self.reset_mode == "step":
            restore(self._predictor, self._initial_weights)
        n_selected = int(selection.sum())
        orders = epoch_permutations(self.batch_size, self.predictor_epochs, self._generator,
                                    self.device)  # drawn whatever the action: copies stay in step
        if n_selected > 0:
            self._fit(
                self._predictor, self._obs_tensors["x"][self._indices],
                self._y_train[self._indices], weights, orders=orders,
                batch_size=self.predictor_batch_size, lr=self.predictor_lr,
            )
        metric = score(self._predictor, self._x_valid, self._y_valid, self.metric)
        baseline = self._baseline_for(metric)
        self._history.append(metric)
        self._t += 1
        self._fits += 1
        ended = self._t >= self.episode_length
        terminated = ended and self.reset_mode != "never"
        truncated = ended and self.reset_mode == "never"
        acted = self._indices
        self._indices = self._sample_batch()
        info = {
            "metric": metric,
            "baseline": baseline,
            "n_selected": n_selected,
            "indices": self._indices.cpu().numpy(),
            "acted_indices": acted.cpu().numpy(),
        }
        return self._observation(self._indices), float(metric - baseline), terminated, \
            truncated, info

    # ---- what agents may use besides step/reset ----------------------------------------
    def all_observations(self) -> dict[str, np.ndarray]:
        """``x``, ``y`` and ``marginal`` for all ``n_train`` points in training-set order.

        The same arrays as in observations, so a DVE trained on batches can score every
        point. Returns copies.
        """
        return {k: v.copy() for k, v in self._obs_arrays.items()}

    @property
    def n_train(self) -> int:
        return self.dataset.n_train

    @property
    def fits(self) -> int:
        """Predictor fits this env has performed: one per step (whatever the selection:
        each step scores a predictor) and one per fixed baseline trained at seeding. The
        unit of compute in which agents are compared."""
        return self._fits

    @property
    def fixed_baseline(self) -> float | None:
        """The fixed baseline's metric (after the first reset), else None."""
        return self._fixed_baseline

    def state_dict(self) -> dict[str, Any]:
        """The env's state after a reset, for ``reset(options={"state": ...})``."""
        if self._indices is None:
            raise gym.error.ResetNeeded("The env has no state before its first reset().")
        return {
            "np_random": numpy_generator_state(self.np_random),
            "np_random_seed": self._np_random_seed,
            "generator": self._generator.get_state(),
            "predictor": {k: v.detach().cpu().clone()
                          for k, v in self._predictor.state_dict().items()},
            "initial_weights": [t.detach().cpu().clone() for t in self._initial_weights],
            "fixed_baseline": self._fixed_baseline,
            "history": list(self._history),
            "indices": self._indices.cpu().clone(),
            "t": self._t,
            "fits": self._fits,
        }

    def _load_state(self, state: dict) -> None:
        try:
            indices = torch.as_tensor(state["indices"], dtype=torch.long)
            if indices.shape != (self.batch_size,) or int(indices.max()) >= self.n_train:
                raise ValueError(f"its batch has shape {tuple(indices.shape)}, this env's "
                                 f"batch_size is {self.batch_size} of {self.n_train} points")
            self._np_random = numpy_generator_from_state(state["np_random"])
            self._np_random_seed = state["np_random_seed"]
            self._generator = torch.Generator(device=self.device)
            self._generator.set_state(state["generator"])
            if self._predictor is None:
                self._predictor = build_predictor(
                    self._predictor_factory, self.dataset.num_features,
                    self.dataset.num_classes, 0, self.device)
            self._predictor.load_state_dict(state["predictor"])
            self._initial_weights = [t.to(self.device).clone() for t in state["initial_weights"]]
            if len(self._initial_weights) != len(self._predictor.state_dict()):
                raise ValueError("its predictor has another number of weight tensors")
            baseline = state["fixed_baseline"]
            self._fixed_baseline = None if baseline is None else float(baseline)
            self._history = deque((float(v) for v in state["history"]),
                                  maxlen=max(1, self.baseline_window))
            self._t = int(state["t"])
            self._fits = int(state["fits"])
            self._indices = indices.to(self.device)
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"The saved env state does not fit this env ({err}); it must come "
                             "from env.state_dict() of an env built with the same options.") \
                from None

    # ---- internals ---------------------------------------------------------------------
    def _seed_torch_state(self) -> None:
        """Draw the torch generator, initial weights and fixed baseline from np_random."""
        torch_seed, init_seed, baseline_seed = draw_seeds(self.np_random)
        self._generator = torch.Generator(device=self.device).manual_seed(torch_seed)
        self._predictor = build_predictor(
            self._predictor_factory, self.dataset.num_features, self.dataset.num_classes,
            init_seed, self.device,
        )
        self._initial_weights = snapshot(self._predictor)
        self._history.clear()
        if self.baseline == "fixed":
            self._fixed_baseline = self._train_on_everything(baseline_seed)
            restore(self._predictor, self._initial_weights)
        elif not isinstance(self.baseline, str):
            self._fixed_baseline = float(self.baseline)

    def _train_on_everything(self, seed: int) -> float:
        self._fits += 1
        generator = torch.Generator(device=self.device).manual_seed(seed)
        self._fit(
            self._predictor, self._obs_tensors["x"], self._y_train,
            torch.ones(self.n_train, device=self.device),
            orders=epoch_permutations(self.n_train, self.predictor_epochs, generator, self.device),
            batch_size=self.predictor_batch_size, lr=self.predictor_lr,
        )
        return score(self._predictor, self._x_valid, self._y_valid, self.metric)

    def _baseline_for(self, metric: float) -> float:
        if self.baseline == "moving_average":
            return float(np.mean(self._history)) if self._history else metric
        return self._fixed_baseline

    def _sample_batch(self) -> torch.Tensor:
        perm = torch.randperm(self.n_train, generator=self._generator, device=self.device)
        return perm[: self.batch_size]

    def _observation(self, indices: torch.Tensor) -> dict[str, np.ndarray]:
        return {k: t[indices].cpu().numpy() for k, t in self._obs_tensors.items()}

    # ---- pickling: torch.Generator has no pickle support -----------------------------
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        gen = state.pop("_generator")
        state["_generator_state"] = None if gen is None else gen.get_state()
        return state

    def __setstate__(self, state: dict) -> None:
        gen_state = state.pop("_generator_state")
        self.__dict__.update(state)
        self._generator = None
        if gen_state is not None:
            self._generator = torch.Generator(device=self.device)
            self._generator.set_state(gen_state)


def draw_seeds(np_random: np.random.Generator) -> tuple[int, int, int]:
    """The torch generator's, the initial weights' and the fixed baseline's seeds."""
    torch_seed, init_seed, baseline_seed = (int(s) for s in np_random.integers(0, 2**62, size=3))
    return torch_seed, init_seed, baseline_seed


def reset_state_option(options: dict | None, known: tuple[str, ...] = ("state",)) -> dict | None:
    """``options["state"]`` of a reset, after refusing options the env does not know."""
    if not options:
        return None
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"Unknown reset option(s) {unknown}; the env takes {list(known)}, "
                         "e.g. options={'state': env.state_dict()} to restore a saved state.")
    return options.get("state")


def numpy_generator_state(generator: np.random.Generator) -> str:
    """A NumPy generator's state as JSON text (it holds 128-bit integers)."""
    return json.dumps(generator.bit_generator.state)


_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


def numpy_generator_from_state(text: str) -> np.random.Generator:
    """The generator :func:`numpy_generator_state` describes."""
    state = json.loads(text)
    kind = state.get("bit_generator")
    if kind not in _BIT_GENERATORS:
        raise ValueError(f"unknown NumPy bit generator {kind!r}")
    bit_generator = getattr(np.random, kind)()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def selection_array(action, shape: tuple[int, ...], what: str) -> np.ndarray:
    """``action`` as float32 0/1 of ``shape``, or a ValueError that says what is wrong."""
    arr = np.asarray(action)
    if arr.shape != shape:
        raise ValueError(f"The action must be {what} of shape {shape} (MultiBinary), got "
                         f"shape {arr.shape}.")
    valid = (arr == 0) | (arr == 1)
    if not valid.all():
        raise ValueError(f"The action must hold only 0 and 1 (a selection), got values "
                         f"such as {arr[~valid][:5].tolist()}.")
    return arr.astype(np.float32)

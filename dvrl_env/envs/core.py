"""The DVRL rules over K slots, written once.

:class:`EnvConfig` is what every slot shares: the resolved options, the data as tensors
on the device, the predictor spec and the spaces of one slot. :class:`SlotCore` runs K
slots on one config: batch sampling, seeding, the predictor's training, the reward and
its baseline, and episode ends. :class:`~dvrl_env.DataValuationEnv` is its view with
K = 1 and :class:`~dvrl_env.DataValuationVectorEnv` its view with K slots; they only
translate between the core and Gymnasium's single and vector APIs.

Each slot keeps its own ``np_random``, torch generator, initial weights, moving-average
history and step counter, seeded and consumed in the same order whatever K is, so slot k
of a K-slot core follows a one-slot core reset with the same seed. The fixed baseline is
a property of the data, the predictor and the options, not of a slot: one per core (one
per fold when cross-fitted), seeded from ``data_seed``, trained once at the first reset
that needs it and shared by every slot, as the official DVRL trains it once. The
K predictors train together (:class:`~dvrl_env.predictors.stacked.StackedPredictors`),
one slot's alone (:class:`~dvrl_env.predictors.single.SinglePredictor`).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections import deque
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from dvrl_env.data.crossfit import VALIDATION_MODES, check_weights, make_folds
from dvrl_env.data.datasets import ValuationDataset, load_dataset
from dvrl_env.data.marginal import marginal_information as compute_marginal_information
from dvrl_env.data.registry import dataset_names
from dvrl_env.device import resolve_device
from dvrl_env.predictors import (
    METRICS,
    PredictorSpec,
    one_hot,
    resolve_predictor,
    stacked_epoch_permutations,
    weighted_metrics,
)
from dvrl_env.predictors.closed_form import uses_closed_form
from dvrl_env.predictors.single import SinglePredictor
from dvrl_env.predictors.stacked import StackedPredictors

RESET_MODES = ("step", "episode", "never")
#: mixed with ``data_seed`` into the fixed baseline's seeds (its initial weights and
#: epoch orders), so that they differ from the data's own draws with that seed
BASELINE_SEED_KEY = 0x6261_7365  # "base"
BASELINES = ("fixed", "moving_average")
#: options that build a named dataset (a ValuationDataset is used as it is)
DATA_OPTIONS = ("n_train", "n_valid", "n_test", "noise_rate", "root", "download", "encoder",
                "dataset_options")


@dataclasses.dataclass(frozen=True, eq=False)
class CrossFit:
    """The reference of ``validation="cross-fit"``: the training rows are cut into folds
    (:func:`~dvrl_env.data.crossfit.make_folds`, drawn with ``data_seed``); a batch is
    drawn from one fold and its predictor is scored on the rows of the other folds,
    weighted by ``reference_weights``."""

    fold_of: np.ndarray  # (n,) the fold of every training row
    weights: np.ndarray  # (n,) the reference weight of every row, in [0, 1]
    rows: list[torch.Tensor]  # the training rows of each fold, on the device
    fold_tensor: torch.Tensor  # fold_of on the device
    reference: torch.Tensor  # (F, n) on the device: row weights when fold f is valued

    @classmethod
    def build(cls, dataset: ValuationDataset, folds: int, seed: int, weights,
              device: torch.device) -> CrossFit:
        fold_of = make_folds(dataset.y_train, folds, seed, dataset.meta.get("label_names"))
        w = (np.ones(dataset.n_train) if weights is None
             else check_weights(weights, dataset.n_train, fold_of))
        reference = np.stack([w * (fold_of != f) for f in range(folds)]).astype(np.float32)
        return cls(fold_of, w, [torch.as_tensor(np.flatnonzero(fold_of == f), device=device)
                                for f in range(folds)],
                   torch.as_tensor(fold_of, device=device),
                   torch.as_tensor(reference, device=device))

    @property
    def folds(self) -> int:
        return len(self.rows)

    def fold_of_batches(self, indices: torch.Tensor) -> torch.Tensor:
        """The fold of each batch ``(K, B)``: a batch lies in one fold."""
        return self.fold_tensor[indices[:, 0]]


@dataclasses.dataclass(frozen=True, eq=False)
class EnvConfig:
    """Everything K slots share; built once by :meth:`from_options`, then only read."""

    options: dict[str, Any]
    dataset: ValuationDataset
    batch_size: int
    episode_length: int
    reset_mode: str
    metric: str
    baseline: str | float
    baseline_window: int
    marginal_information: bool
    cross_fit: CrossFit | None  # None: rewards on the dataset's validation set
    predictor: PredictorSpec
    predictor_epochs: int
    predictor_batch_size: int
    predictor_lr: float
    device: torch.device
    observations: dict[str, np.ndarray]  # host arrays of every training point
    tensors: dict[str, torch.Tensor]  # on the device: x, y, marginal, labels, x/y_valid
    observation_space: spaces.Dict
    action_space: spaces.MultiBinary

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> EnvConfig:
        """``options`` as :class:`~dvrl_env.DataValuationEnv` takes them, checked."""
        o = options
        data_options = {name: o[name] for name in DATA_OPTIONS if name != "dataset_options"}
        data_options.update(o["dataset_options"] or {})
        dataset = _resolve_dataset(o["dataset"], data_options, o["data_seed"])
        _check_options(o)
        _check_validation(o, dataset)
        n, d, c = dataset.n_train, dataset.num_features, dataset.num_classes
        device = resolve_device(o["device"])
        cross_fit = (None if o["validation"] == "given" else
                     CrossFit.build(dataset, o["folds"], o["data_seed"], o["reference_weights"],
                                    device))
        largest = _largest_batch(n, cross_fit)
        batch_size = int(min(2000, largest) if o["batch_size"] is None else o["batch_size"])
        if not 1 <= batch_size <= largest:
            within = (f"n_train={n}" if cross_fit is None else
                      f"{largest}, the smallest fold's rows ({cross_fit.folds} folds of "
                      f"{n} rows)")
            raise ValueError(f"batch_size must lie in 1..{within}, got {o['batch_size']}.")
        episode_length = o["episode_length"]
        if o["reset_mode"] == "step":
            if episode_length not in (None, 1):
                raise ValueError("reset_mode='step' makes every step an episode; "
                                 "episode_length must be 1 (or use reset_mode='episode').")
            episode_length = 1
        episode_length = 10 if episode_length is None else int(episode_length)
        if episode_length < 1:
            raise ValueError(f"episode_length must be >= 1, got {o['episode_length']}.")
        mi = bool(o["marginal_information"])
        observations = {
            "x": dataset.x_train,
            "y": one_hot(dataset.y_train, c),
            "marginal": (compute_marginal_information(
                dataset, **({} if cross_fit is None else
                            {"fold_of": cross_fit.fold_of, "weights": cross_fit.weights}))
                         if mi else np.zeros((n, c), dtype=np.float32)),
        }
        host = {**observations, "labels": dataset.y_train, "x_valid": dataset.x_valid,
                "y_valid": dataset.y_valid}
        tensors = {k: torch.as_tensor(v, device=device) for k, v in host.items()}
        low, high = dataset.x_train.min(axis=0), dataset.x_train.max(axis=0)
        high = np.where(high > low, high, low + 1.0)  # a constant feature still gets a range
        b = batch_size
        observation_space = spaces.Dict({
            "x": spaces.Box(np.broadcast_to(low, (b, d)).copy(),
                            np.broadcast_to(high, (b, d)).copy(), dtype=np.float32),
            "y": spaces.Box(0.0, 1.0, (b, c), dtype=np.float32),
            "marginal": spaces.Box(0.0, 1.0, (b, c), dtype=np.float32),
        })
        return cls(
            options=dict(options), dataset=dataset, batch_size=batch_size,
            episode_length=episode_length, reset_mode=o["reset_mode"], metric=o["metric"],
            baseline=o["baseline"], baseline_window=int(o["baseline_window"]),
            marginal_information=mi, cross_fit=cross_fit,
            predictor=resolve_predictor(o["predictor"]),
            predictor_epochs=int(o["predictor_epochs"]),
            predictor_batch_size=int(o["predictor_batch_size"]),
            predictor_lr=float(o["predictor_lr"]), device=device, observations=observations,
            tensors=tensors, observation_space=observation_space,
            action_space=spaces.MultiBinary(b),
        )

    @property
    def n_train(self) -> int:
        return self.dataset.n_train

    @property
    def largest_batch(self) -> int:
        """The largest ``batch_size`` these data allow."""
        return _largest_batch(self.n_train, self.cross_fit)


def _largest_batch(n_train: int, cross_fit: CrossFit | None) -> int:
    """n_train, or under cross-fitting the smallest fold's rows: a batch lies in one fold."""
    return n_train if cross_fit is None else min(len(rows) for rows in cross_fit.rows)


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
        f"Pass dataset=<name> ({', '.join(dataset_names())}) or "
        "dataset=dvrl_env.from_arrays(x_train, y_train, x_valid, y_valid) for your own data"
        + ("." if dataset is None else f"; got {type(dataset).__name__}.")
    )


def _check_validation(o: dict, dataset: ValuationDataset) -> None:
    """The reference the rewards are measured on, and the options that go with it."""
    if o["validation"] not in VALIDATION_MODES:
        raise ValueError(f"Unknown validation {o['validation']!r}; choose one of "
                         f"{list(VALIDATION_MODES)} (\"cross-fit\": no clean validation set, "
                         "every training row valued against the other folds).")
    if o["validation"] == "given":
        if o["reference_weights"] is not None:
            raise ValueError("reference_weights weight the cross-fitted reference; pass "
                             "validation='cross-fit' with them.")
        if dataset.meta.get("validation") == "cross-fit":
            raise ValueError(f"Dataset {dataset.name!r} has no validation set of its own (it "
                             "was loaded for cross-fitting); make the env with "
                             "validation='cross-fit'.")


def _check_options(o: dict) -> None:
    if o["metric"] not in METRICS:
        raise ValueError(f"Unknown metric {o['metric']!r}; choose one of {list(METRICS)}.")
    baseline = o["baseline"]
    if isinstance(baseline, str) and baseline not in BASELINES:
        raise ValueError(f"Unknown baseline {baseline!r}; choose one of {list(BASELINES)} "
                         "or a number.")
    if not isinstance(baseline, str) and not np.isfinite(float(baseline)):
        raise ValueError(f"A numeric baseline must be finite, got {baseline}.")
    if not 0 <= o["data_seed"] < 2**64:
        raise ValueError(f"data_seed must be a whole number from 0 to 2**64 - 1 (it seeds the "
                         f"data, the folds and the fixed baseline), got {o['data_seed']}.")
    if o["reset_mode"] not in RESET_MODES:
        raise ValueError(f"Unknown reset_mode {o['reset_mode']!r}; choose one of "
                         f"{list(RESET_MODES)}.")
    if o["baseline_window"] < 1 or o["predictor_epochs"] < 1 or \
            o["predictor_batch_size"] < 1 or not o["predictor_lr"] > 0:
        raise ValueError("baseline_window, predictor_epochs and predictor_batch_size must "
                         "be >= 1 and predictor_lr > 0.")


@dataclasses.dataclass
class Slot:
    """What one slot keeps of its own; the data and options are the config's."""

    history: deque
    np_random: np.random.Generator | None = None
    np_random_seed: int | None = None
    generator: torch.Generator | None = None
    # the core's, copied at seeding; kept per slot so that saved states restore as saved.
    # A list: one per fold (cross-fit)
    fixed_baseline: float | list[float] | None = None
    t: int = 0
    ready: bool = False  # reset since it was built

    # torch.Generator does not pickle or deepcopy: its state does
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        gen = state.pop("generator")
        state["generator_state"] = None if gen is None else (gen.device, gen.get_state())
        return state

    def __setstate__(self, state: dict) -> None:
        saved = state.pop("generator_state")
        self.__dict__.update(state, generator=None)
        if saved is not None:
            self.generator = torch.Generator(device=saved[0])
            self.generator.set_state(saved[1])


@dataclasses.dataclass(frozen=True)
class Transition:
    """One step of K slots: per-slot arrays, and the batches acted on and drawn next."""

    metrics: list[float]
    baselines: list[float]
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    n_selected: np.ndarray
    acted_indices: np.ndarray  # (K, B)
    indices: np.ndarray  # (K, B): the next batches

    def info(self, k: int) -> dict:
        """Slot k's step info, as the single env returns it."""
        return {"metric": self.metrics[k], "baseline": self.baselines[k],
                "n_selected": int(self.n_selected[k]), "indices": self.indices[k],
                "acted_indices": self.acted_indices[k]}


class SlotCore:
    """K slots of the DVRL environment on one :class:`EnvConfig`.

    ``max_episode_steps`` truncates a slot's episode after that many steps, as
    ``TimeLimit`` would (the vector env's option; the single env leaves it to wrappers).
    """

    def __init__(self, config: EnvConfig, num_slots: int, *,
                 max_episode_steps: int | None = None):
        if int(num_slots) < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_slots}.")
        if max_episode_steps is not None and int(max_episode_steps) < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps}.")
        self.config = config
        self.num_slots = int(num_slots)
        self.max_episode_steps = None if max_episode_steps is None else int(max_episode_steps)
        window = max(1, config.baseline_window)
        self.slots = [Slot(history=deque(maxlen=window)) for _ in range(self.num_slots)]
        self.predictors: StackedPredictors | SinglePredictor | None = None
        self.indices: torch.Tensor | None = None  # (K, B) training rows of each batch
        # one for every slot, trained at the first reset that needs it, never again
        self.fixed_baseline: float | list[float] | None = None
        self.fits = 0

    # ---- episodes ----------------------------------------------------------------------
    def needs_seeding(self, k: int, seed: int | None) -> bool:
        """A slot draws new RNGs and weights when given a seed or never seeded;
        otherwise a reset keeps its streams going."""
        return seed is not None or self.slots[k].generator is None

    def reset(self, slots: Sequence[int],
              fresh: dict[int, tuple[np.random.Generator, int | None]]) -> dict[int, np.ndarray]:
        """Start a new episode in ``slots``; those in ``fresh`` are first seeded from
        their ``(np_random, seed)``. Returns each slot's new batch (training rows)."""
        self._seed(fresh)
        kept = [k for k in slots if k not in fresh]
        if kept and self.config.reset_mode != "never":
            self.predictors.restore(kept)
        return self._start_episodes(slots)

    def step(self, selection: np.ndarray, active: Sequence[int] | None = None) -> Transition:
        """Train the predictors of the ``active`` slots (default: all) on their selections
        (rows of ``selection``, ``(K, B)`` of 0/1) and score them. Other slots are left
        as they are, with reward 0."""
        active = list(range(self.num_slots)) if active is None else list(active)
        if not all(self.slots[k].ready for k in active):
            raise gym.error.ResetNeeded("Call reset() before step().")
        c, k_all = self.config, self.num_slots
        n_selected = selection.sum(axis=1).astype(np.int64)
        if c.reset_mode == "step":
            self.predictors.restore(active)
        metrics = [float("nan")] * k_all
        if active:
            # drawn whatever the action, so copies seeded alike stay in step
            orders = stacked_epoch_permutations(c.batch_size, c.predictor_epochs,
                                                [self.slots[k].generator for k in active],
                                                c.device)
            trained = [i for i, k in enumerate(active) if n_selected[k] > 0]
            if trained:
                slots = torch.as_tensor([active[i] for i in trained], device=c.device)
                if len(trained) < len(active):
                    orders = orders[torch.as_tensor(trained, device=c.device)]
                self._fit([active[i] for i in trained], self.indices[slots],
                          torch.as_tensor(selection, device=c.device)[slots], orders)
            metrics = self._score(self.indices)
        self.fits += len(active)

        acted = self.indices.cpu().numpy()
        if active:
            indices = self.indices.clone()  # earlier arrays may share its memory
            for k in active:
                indices[k] = self._sample_batch(k)
            self.indices = indices
        rewards = np.zeros(k_all, dtype=np.float64)
        terminated = np.zeros(k_all, dtype=np.bool_)
        truncated = np.zeros(k_all, dtype=np.bool_)
        baselines = [float("nan")] * k_all
        folds = self._folds(torch.as_tensor(acted))
        for k in active:
            slot = self.slots[k]
            baselines[k] = self._baseline_for(slot, metrics[k], folds[k])
            slot.history.append(metrics[k])
            slot.t += 1
            ended = slot.t >= c.episode_length
            terminated[k] = ended and c.reset_mode != "never"
            truncated[k] = (ended and c.reset_mode == "never") or (
                self.max_episode_steps is not None and slot.t >= self.max_episode_steps)
            rewards[k] = float(metrics[k] - baselines[k])
        return Transition(metrics, baselines, rewards, terminated, truncated, n_selected,
                          acted, self.indices.cpu().numpy())

    def reset_info(self, k: int, indices: np.ndarray) -> dict:
        info = {"indices": indices}
        baseline = self.slots[k].fixed_baseline
        if isinstance(baseline, list):  # cross-fitted: the baseline of this batch's fold
            baseline = baseline[self._folds(torch.as_tensor(indices[None]))[0]]
        if baseline is not None:
            info["baseline"] = baseline
        return info

    def observe(self, indices: torch.Tensor) -> dict[str, np.ndarray]:
        """The observation of the batches ``indices`` (any shape ending in B)."""
        flat, tensors = indices.reshape(-1), self.config.tensors
        # index_select: several times faster than tensors[k][indices]
        return {k: tensors[k].index_select(0, flat).reshape(*indices.shape, *tensors[k].shape[1:])
                .cpu().numpy() for k in self.config.observations}

    # ---- saving and restoring ----------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Every slot's state and the predictors', once all slots have been reset."""
        if not all(slot.ready for slot in self.slots):
            raise gym.error.ResetNeeded("The env has no state before its first reset().")
        return {
            "num_envs": self.num_slots,
            "slots": [{"np_random": numpy_generator_state(s.np_random),
                       "np_random_seed": s.np_random_seed,
                       "generator": s.generator.get_state(),
                       "fixed_baseline": s.fixed_baseline,
                       "history": list(s.history), "t": s.t} for s in self.slots],
            "predictors": self.predictors.state_dict(),
            "indices": self.indices.cpu().clone(),
            "fits": self.fits,
            "fixed_baseline": self.fixed_baseline,
        }

    def load_state_dict(self, state: dict) -> None:
        c = self.config
        try:
            if state["num_envs"] != self.num_slots:
                raise ValueError(f"it has {state['num_envs']} slots, this env {self.num_slots}")
            indices = torch.as_tensor(state["indices"], dtype=torch.long)
            if indices.shape != (self.num_slots, c.batch_size) or \
                    int(indices.max()) >= c.n_train:
                raise ValueError(f"its batches have shape {tuple(indices.shape)}; this env has "
                                 f"{self.num_slots} slot(s) and its batch_size is "
                                 f"{c.batch_size} of {c.n_train} points")
            if self.predictors is None:
                module = self._build(0)  # its weights are overwritten by the saved ones
                self.predictors = self._stack(dict.fromkeys(range(self.num_slots), module))
            self.predictors.load_state_dict(state["predictors"])
            for slot, saved in zip(self.slots, state["slots"], strict=True):
                slot.np_random = numpy_generator_from_state(saved["np_random"])
                slot.np_random_seed = saved["np_random_seed"]
                slot.generator = torch.Generator(device=c.device)
                slot.generator.set_state(saved["generator"])
                slot.fixed_baseline = _baseline_value(saved["fixed_baseline"])
                slot.history.clear()
                slot.history.extend(float(v) for v in saved["history"])
                slot.t, slot.ready = int(saved["t"]), True
            self.indices = indices.to(c.device)
            self.fits = int(state["fits"])
            # absent from states saved before it was shared: trained at the next seeding
            shared = _baseline_value(state.get("fixed_baseline"))
            if shared is not None:
                self.fixed_baseline = shared
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"The saved env state does not fit this env ({err}); it must come "
                             "from state_dict() of an env with the same options and number "
                             "of sub-envs.") from None

    # ---- internals ---------------------------------------------------------------------
    def _seed(self, fresh: dict[int, tuple[np.random.Generator, int | None]]) -> None:
        """Draw each fresh slot's torch generator and initial weights from its np_random,
        and give it the core's fixed baseline (trained here the first time)."""
        if not fresh:
            return
        c = self.config
        modules = {}
        for k, (np_random, seed) in sorted(fresh.items()):
            slot = self.slots[k]
            slot.np_random, slot.np_random_seed = np_random, seed
            torch_seed, init_seed = draw_seeds(np_random)
            slot.generator = torch.Generator(device=c.device).manual_seed(torch_seed)
            modules[k] = self._build(init_seed)
            slot.history.clear()
        if self.predictors is None:
            filler = next(iter(modules.values()))  # stands in for slots not reset yet
            self.predictors = self._stack({k: modules.get(k, filler)
                                           for k in range(self.num_slots)})
        else:
            self.predictors.set_initial(modules)
        if c.baseline == "fixed":
            fixed = self._fixed_baseline()
        else:
            fixed = None if isinstance(c.baseline, str) else float(c.baseline)
        for k in fresh:
            self.slots[k].fixed_baseline = list(fixed) if isinstance(fixed, list) else fixed

    def _fixed_baseline(self) -> float | list[float]:
        """The core's fixed baseline: the predictor trained on all training rows (on each
        fold's rows when cross-fitted, scored on the other folds), trained at the first
        call and kept. Its initial weights and epoch orders come from ``data_seed``, not
        from a slot, so every slot of every core with these options gets the same one."""
        if self.fixed_baseline is None:
            c = self.config
            rng = np.random.default_rng([int(c.options["data_seed"]), BASELINE_SEED_KEY])
            init_seed, order_seed = (int(s) for s in rng.integers(0, 2**62, size=2))
            if c.cross_fit is None:
                self.fixed_baseline = self._train_baseline(
                    init_seed, order_seed, torch.arange(c.n_train, device=c.device))
            else:
                self.fixed_baseline = [self._train_baseline(init_seed, order_seed, rows)
                                       for rows in c.cross_fit.rows]
        return self.fixed_baseline

    def _train_baseline(self, init_seed: int, order_seed: int, rows: torch.Tensor) -> float:
        """One predictor from the weights of ``init_seed``, trained on all of ``rows`` in
        epoch orders drawn from ``order_seed``, scored as a slot whose batch lies in
        ``rows`` is (on the reference of ``rows``' fold when cross-fitted)."""
        c = self.config
        predictor = SinglePredictor([self._build(init_seed)],
                                    closed_form=uses_closed_form(c.predictor, c.device),
                                    skip_unweighted=c.predictor.skips_unweighted)
        generator = torch.Generator(device=c.device).manual_seed(order_seed)
        n = len(rows)
        orders = stacked_epoch_permutations(n, c.predictor_epochs, [generator], c.device)
        predictor.fit([0], c.tensors["x"], c.tensors["labels"], rows[None],
                      torch.ones(1, n, device=c.device), orders,
                      batch_size=c.predictor_batch_size, lr=c.predictor_lr)
        self.fits += 1
        return self._score(rows[:1][None], predictor)[0]

    def _folds(self, indices: torch.Tensor) -> list[int | None]:
        """The fold of each batch of ``indices`` ``(K, B)`` (None without cross-fitting)."""
        cross_fit = self.config.cross_fit
        if cross_fit is None:
            return [None] * len(indices)
        return cross_fit.fold_of_batches(indices.to(cross_fit.fold_tensor.device)).tolist()

    def _score(self, indices: torch.Tensor,
                predictors: StackedPredictors | SinglePredictor | None = None) -> list[float]:
        """Every slot's metric (of ``predictors``, default the slots'): on the validation
        set, or, cross-fitted, on the training rows outside the fold of its batch
        ``indices[k]``, weighted by the reference."""
        c = self.config
        predictors = self.predictors if predictors is None else predictors
        if c.cross_fit is None:
            return predictors.metrics(c.tensors["x_valid"], c.tensors["y_valid"], c.metric)
        weights = c.cross_fit.reference[c.cross_fit.fold_of_batches(indices)]
        return weighted_metrics(predictors.logits(c.tensors["x"]), c.tensors["labels"],
                                weights, c.metric)

    def _build(self, seed: int) -> torch.nn.Module:
        c = self.config
        return c.predictor.build(c.dataset.num_features, c.dataset.num_classes, seed, c.device)

    def _stack(self, modules: dict[int, torch.nn.Module]) -> StackedPredictors | SinglePredictor:
        """The slots' predictors as one set, trained as the predictor spec allows."""
        c = self.config
        kind = SinglePredictor if self.num_slots == 1 else StackedPredictors
        return kind([modules[k] for k in range(self.num_slots)],
                    closed_form=uses_closed_form(c.predictor, c.device),
                    skip_unweighted=c.predictor.skips_unweighted)

    def _fit(self, slots: list[int], rows: torch.Tensor, weights: torch.Tensor,
             orders: torch.Tensor) -> None:
        """Train predictors ``slots`` on their ``rows``, ``weights`` and ``orders``."""
        c = self.config
        self.predictors.fit(slots, c.tensors["x"], c.tensors["labels"], rows, weights, orders,
                            batch_size=c.predictor_batch_size, lr=c.predictor_lr)

    def _baseline_for(self, slot: Slot, metric: float, fold: int | None) -> float:
        if self.config.baseline == "moving_average":
            return float(np.mean(slot.history)) if slot.history else metric
        if isinstance(slot.fixed_baseline, list):
            return slot.fixed_baseline[fold]
        return slot.fixed_baseline

    def _sample_batch(self, k: int) -> torch.Tensor:
        c, generator = self.config, self.slots[k].generator
        if c.cross_fit is not None:  # B rows of one fold, the fold drawn first
            fold = int(torch.randint(c.cross_fit.folds, (1,), generator=generator,
                                     device=c.device))
            rows = c.cross_fit.rows[fold]
            perm = torch.randperm(len(rows), generator=generator, device=c.device)
            return rows[perm[: c.batch_size]]
        perm = torch.randperm(c.n_train, generator=generator, device=c.device)
        return perm[: c.batch_size]

    def _start_episodes(self, slots: Sequence[int]) -> dict[int, np.ndarray]:
        """Step counters to 0 and a fresh batch for each slot in ``slots``."""
        if not len(slots):
            return {}
        c = self.config
        indices = (torch.zeros(self.num_slots, c.batch_size, dtype=torch.long, device=c.device)
                   if self.indices is None
                   else self.indices.clone())  # earlier arrays may share its memory
        for k in slots:
            self.slots[k].t, self.slots[k].ready = 0, True
            indices[k] = self._sample_batch(k)
        self.indices = indices
        rows = indices.cpu().numpy()
        return {k: rows[k].copy() for k in slots}


def option_names(init) -> list[str]:
    """The keyword options of an env's ``__init__``."""
    params = inspect.signature(init).parameters
    return [p for p in params if p not in ("self", "unknown")]


def draw_seeds(np_random: np.random.Generator) -> tuple[int, int]:
    """A slot's torch generator's and initial weights' seeds (the fixed baseline's come
    from ``data_seed``: it is the core's, not the slot's)."""
    torch_seed, init_seed = (int(s) for s in np_random.integers(0, 2**62, size=2))
    return torch_seed, init_seed


def _baseline_value(saved) -> float | list[float] | None:
    """A saved fixed baseline as the core keeps it: None, a float, or one per fold."""
    if saved is None:
        return None
    return [float(b) for b in saved] if isinstance(saved, list) else float(saved)


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

"""A vector env of K DVRL sub-envs whose K predictors train as one batched computation."""

from __future__ import annotations

import dataclasses
from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from dvrl_env.envs.single import (
    DataValuationEnv,
    draw_seeds,
    numpy_generator_from_state,
    numpy_generator_state,
    reset_state_option,
    selection_array,
)
from dvrl_env.predictors import PREDICTORS, build_predictor, stacked_epoch_permutations
from dvrl_env.predictors.closed_form import uses_closed_form
from dvrl_env.predictors.stacked import StackedPredictors, slot_mask


@dataclasses.dataclass
class _SubEnv:
    """What one sub-env keeps of its own; the data and options are the template's."""

    history: deque
    np_random: np.random.Generator | None = None
    np_random_seed: int | None = None
    generator: torch.Generator | None = None
    fixed_baseline: float | None = None
    t: int = 0
    ready: bool = False


class DataValuationVectorEnv(VectorEnv):
    """K :class:`~dvrl_env.DataValuationEnv` sub-envs, their predictors trained together.

    ## Description
    The same results as ``SyncVectorEnv([DataValuationEnv(**options)] * K,
    autoreset_mode=SAME_STEP)`` (up to float rounding), faster: the dataset, features,
    marginal information and validation set are held once, and the K predictors train
    as one computation (:class:`~dvrl_env.predictors.stacked.StackedPredictors`: stacked weights,
    ``vmap`` of ``functional_call``, one backward pass and one Adam step per
    mini-batch for all K). On CUDA everything stays on the device between steps.

    Each sub-env keeps its own ``np_random``, torch generator, initial weights, fixed
    baseline, moving-average history, step counter and batch, seeded and consumed exactly
    as a single env's, so sub-env k follows the single env reset with the same seed.

    ## Observation, Action, Reward
    Those of :class:`~dvrl_env.DataValuationEnv`, batched: observation arrays
    ``(K, B, ...)``, actions ``(K, B)`` of 0/1, rewards ``(K,)``.

    ## Episode end
    As the single env's ``reset_mode``; ``max_episode_steps`` also truncates an episode
    after that many steps, as ``TimeLimit`` would. Autoreset is same-step
    (``metadata["autoreset_mode"]``): a sub-env whose episode ended is reset within
    ``step``, which returns its next episode's first observation, with the last one in
    ``info["final_obs"]`` and its info in ``info["final_info"]``, as ``SyncVectorEnv``.

    ## Arguments
    * ``num_envs``: K.
    * ``max_episode_steps``: optional time limit per episode.
    * every option of :class:`~dvrl_env.DataValuationEnv` (``dataset``, ``batch_size``,
      ``predictor``, ``reset_mode``, ...), shared by the K sub-envs.

    ``gym.make_vec(id, num_envs=K, **options)`` builds one for every registered id;
    :meth:`from_env` builds one around an existing env without loading its data again.

    ## Seeding
    ``reset(seed=s)`` seeds sub-env k with ``s + k``, ``reset(seed=[s_0, ...])`` with
    ``s_k``; sub-envs given the same seed move in lockstep (same batches, same initial
    weights, same mini-batch orders).

    ## Saving and restoring
    As the single env's: :meth:`state_dict` after a reset, and
    ``reset(options={"state": state})`` on a vector env with the same options and
    ``num_envs`` continues exactly from there.
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int = 1, *, max_episode_steps: int | None = None,
                 **env_options: Any):
        self._setup(DataValuationEnv(**env_options), num_envs, max_episode_steps)

    @classmethod
    def from_env(cls, env: gym.Env, num_envs: int, *,
                 max_episode_steps: int | None = None) -> DataValuationVectorEnv:
        """K sub-envs with ``env``'s options, sharing its data (``env`` is only read)."""
        base = env.unwrapped
        if not isinstance(base, DataValuationEnv):
            raise TypeError(f"from_env needs a DataValuationEnv, got {type(base).__name__}.")
        self = cls.__new__(cls)
        self._setup(base, num_envs, max_episode_steps)
        return self

    def _setup(self, template: DataValuationEnv, num_envs: int,
               max_episode_steps: int | None) -> None:
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}.")
        if max_episode_steps is not None and int(max_episode_steps) < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps}.")
        self.template = template
        self.num_envs = int(num_envs)
        self.max_episode_steps = None if max_episode_steps is None else int(max_episode_steps)
        self.metadata = dict(type(self).metadata)
        self.render_mode = None
        self.device = template.device
        self.single_observation_space = template.observation_space
        self.single_action_space = template.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        window = max(1, template.baseline_window)
        self._subs = [_SubEnv(history=deque(maxlen=window)) for _ in range(self.num_envs)]
        self._predictors: StackedPredictors | None = None
        self._indices: torch.Tensor | None = None  # (K, B) training rows of each batch
        self._fits = 0

    # ---- Gymnasium API ---------------------------------------------------------------
    def reset(self, *, seed: int | list[int | None] | None = None,
              options: dict | None = None):
        state = reset_state_option(options, known=("state", "reset_mask"))
        if state is not None:
            self._load_state(state)
            infos: dict = {}
            rows = self._indices.cpu().numpy()
            for k in range(self.num_envs):
                infos = self._add_info(infos, self._reset_info(k, rows[k].copy()), k)
            return self._observe(self._indices), infos
        seeds = self._seed_list(seed)
        slots = self._reset_slots(dict(options or {}).get("reset_mask"))
        fresh = [k for k in slots if seeds[k] is not None or self._subs[k].generator is None]
        for k in fresh:
            self._subs[k].np_random, self._subs[k].np_random_seed = seeding.np_random(seeds[k])
        self._seed_torch_state(fresh)
        kept = [k for k in slots if k not in fresh]
        if kept and self.template.reset_mode != "never":
            self._predictors.restore(self._mask(kept))
        batches = self._start_episodes(slots)
        infos: dict = {}
        for k in slots:
            infos = self._add_info(infos, self._reset_info(k, batches[k]), k)
        return self._observe(self._indices), infos

    def step(self, actions):
        if not all(sub.ready for sub in self._subs):
            raise gym.error.ResetNeeded("Call reset() before step().")
        env, k_all = self.template, self.num_envs
        selection = selection_array(actions, (k_all, env.batch_size),
                                    f"{k_all} selection vectors (one per sub-env)")
        n_selected = selection.sum(axis=1).astype(np.int64)
        if env.reset_mode == "step":
            self._predictors.restore(self._mask(range(k_all)))
        orders = stacked_epoch_permutations(env.batch_size, env.predictor_epochs,
                                            [s.generator for s in self._subs], self.device)
        self._train(np.flatnonzero(n_selected > 0).tolist(), self._indices,
                    torch.as_tensor(selection, device=self.device), orders)
        metrics = self._predictors.metrics(env._x_valid, env._y_valid, env.metric)
        self._fits += k_all

        acted = self._indices.cpu().numpy()
        self._indices = torch.stack([self._sample_batch(k) for k in range(k_all)])
        step_indices = self._indices.cpu().numpy()
        step_obs = self._observe(self._indices)
        rewards = np.zeros(k_all, dtype=np.float64)
        terminated = np.zeros(k_all, dtype=np.bool_)
        truncated = np.zeros(k_all, dtype=np.bool_)
        step_infos = []
        for k, sub in enumerate(self._subs):
            baseline = self._baseline_for(sub, metrics[k])
            sub.history.append(metrics[k])
            sub.t += 1
            ended = sub.t >= env.episode_length
            terminated[k] = ended and env.reset_mode != "never"
            truncated[k] = (ended and env.reset_mode == "never") or (
                self.max_episode_steps is not None and sub.t >= self.max_episode_steps)
            rewards[k] = float(metrics[k] - baseline)
            step_infos.append({
                "metric": metrics[k], "baseline": baseline, "n_selected": int(n_selected[k]),
                "indices": step_indices[k], "acted_indices": acted[k],
            })

        ended = np.flatnonzero(terminated | truncated).tolist()  # same-step autoreset
        if ended and env.reset_mode != "never":
            self._predictors.restore(self._mask(ended))
        batches = self._start_episodes(ended)
        infos: dict = {}
        for k in range(k_all):
            info = step_infos[k]
            if k in batches:
                final_obs = {key: value[k].copy() for key, value in step_obs.items()}
                infos = self._add_info(infos, {"final_obs": final_obs, "final_info": info}, k)
                info = self._reset_info(k, batches[k])
            infos = self._add_info(infos, info, k)
        obs = self._observe(self._indices) if ended else step_obs
        return obs, rewards, terminated, truncated, infos

    # ---- what agents may use besides step/reset ----------------------------------------
    def all_observations(self) -> dict[str, np.ndarray]:
        """The sub-envs' shared data, as :meth:`DataValuationEnv.all_observations`."""
        return self.template.all_observations()

    @property
    def dataset(self):
        return self.template.dataset

    @property
    def fits(self) -> int:
        """Predictor fits of all K sub-envs, counted as :attr:`DataValuationEnv.fits`."""
        return self._fits

    @property
    def fixed_baselines(self) -> tuple[float | None, ...]:
        return tuple(sub.fixed_baseline for sub in self._subs)

    @property
    def np_random(self) -> tuple[np.random.Generator, ...]:
        """Each sub-env's ``np_random`` (seeded at random when it has none yet)."""
        for sub in self._subs:
            if sub.np_random is None:
                sub.np_random, sub.np_random_seed = seeding.np_random()
        return tuple(sub.np_random for sub in self._subs)

    @property
    def np_random_seed(self) -> tuple[int | None, ...]:
        return tuple(sub.np_random_seed for sub in self._subs)

    def state_dict(self) -> dict[str, Any]:
        """Every sub-env's state and the stacked predictors, once all have been reset."""
        if not all(sub.ready for sub in self._subs):
            raise gym.error.ResetNeeded("The vector env has no state before its first reset().")
        return {
            "num_envs": self.num_envs,
            "subs": [{"np_random": numpy_generator_state(sub.np_random),
                      "np_random_seed": sub.np_random_seed,
                      "generator": sub.generator.get_state(),
                      "fixed_baseline": sub.fixed_baseline,
                      "history": list(sub.history), "t": sub.t} for sub in self._subs],
            "predictors": self._predictors.state_dict(),
            "indices": self._indices.cpu().clone(),
            "fits": self._fits,
        }

    def _load_state(self, state: dict) -> None:
        env = self.template
        try:
            if state["num_envs"] != self.num_envs:
                raise ValueError(f"it has {state['num_envs']} sub-envs, this one {self.num_envs}")
            indices = torch.as_tensor(state["indices"], dtype=torch.long)
            if indices.shape != (self.num_envs, env.batch_size) or \
                    int(indices.max()) >= env.n_train:
                raise ValueError(f"its batches have shape {tuple(indices.shape)}")
            if self._predictors is None:
                module = build_predictor(env._predictor_factory, env.dataset.num_features,
                                         env.dataset.num_classes, 0, self.device)
                self._predictors = self._stack([module] * self.num_envs)
            self._predictors.load_state_dict(state["predictors"])
            for sub, saved in zip(self._subs, state["subs"], strict=True):
                sub.np_random = numpy_generator_from_state(saved["np_random"])
                sub.np_random_seed = saved["np_random_seed"]
                sub.generator = torch.Generator(device=self.device)
                sub.generator.set_state(saved["generator"])
                baseline = saved["fixed_baseline"]
                sub.fixed_baseline = None if baseline is None else float(baseline)
                sub.history.clear()
                sub.history.extend(float(v) for v in saved["history"])
                sub.t, sub.ready = int(saved["t"]), True
            self._indices = indices.to(self.device)
            self._fits = int(state["fits"])
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"The saved vector env state does not fit this env ({err}); it "
                             "must come from state_dict() of a vector env with the same options "
                             "and num_envs.") from None

    # ---- internals ---------------------------------------------------------------------
    def _seed_list(self, seed) -> list[int | None]:
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, int | np.integer):
            return [int(seed) + k for k in range(self.num_envs)]
        seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"If seeds are passed as a list the length must match "
                             f"num_envs={self.num_envs} but got length={len(seeds)}.")
        return seeds

    def _reset_slots(self, reset_mask) -> list[int]:
        if reset_mask is None:
            return list(range(self.num_envs))
        if not isinstance(reset_mask, np.ndarray) or reset_mask.dtype != np.bool_ \
                or reset_mask.shape != (self.num_envs,) or not reset_mask.any():
            raise ValueError(f"options['reset_mask'] must be a numpy bool array of shape "
                             f"({self.num_envs},) with at least one True, got {reset_mask!r}.")
        return np.flatnonzero(reset_mask).tolist()

    def _mask(self, slots) -> torch.Tensor:
        return slot_mask(self.num_envs, slots, self.device)

    def _seed_torch_state(self, fresh: list[int]) -> None:
        """As ``DataValuationEnv._seed_torch_state`` for each sub-env in ``fresh``; the
        fixed baselines train as one batch."""
        if not fresh:
            return
        env = self.template
        modules, baseline_seeds = {}, []
        for k in fresh:
            sub = self._subs[k]
            torch_seed, init_seed, baseline_seed = draw_seeds(sub.np_random)
            sub.generator = torch.Generator(device=self.device).manual_seed(torch_seed)
            modules[k] = build_predictor(env._predictor_factory, env.dataset.num_features,
                                         env.dataset.num_classes, init_seed, self.device)
            baseline_seeds.append(baseline_seed)
            sub.history.clear()
        if self._predictors is None:
            filler = modules[fresh[0]]  # stands in for sub-envs not reset yet
            self._predictors = self._stack([modules.get(k, filler)
                                            for k in range(self.num_envs)])
        else:
            self._predictors.set_initial(modules)
        if env.baseline == "fixed":
            self._fits += len(fresh)
            n = env.n_train
            generators = [torch.Generator(device=self.device).manual_seed(s)
                          for s in baseline_seeds]
            orders = stacked_epoch_permutations(n, env.predictor_epochs, generators, self.device)
            rows = torch.arange(n, device=self.device).expand(len(fresh), n)
            self._train(fresh, rows, torch.ones(len(fresh), n, device=self.device), orders,
                        subset=True)
            metrics = self._predictors.metrics(env._x_valid, env._y_valid, env.metric)
            self._predictors.restore(self._mask(fresh))
            for k in fresh:
                self._subs[k].fixed_baseline = metrics[k]
        else:
            fixed = None if isinstance(env.baseline, str) else float(env.baseline)
            for k in fresh:
                self._subs[k].fixed_baseline = fixed

    def _stack(self, modules: list) -> StackedPredictors:
        """The K predictors as one stack, trained as the template's predictor says."""
        factory = self.template._predictor_factory
        return StackedPredictors(modules, closed_form=uses_closed_form(factory, self.device),
                                 skip_unweighted=factory in PREDICTORS.values())

    def _train(self, slots: list[int], rows: torch.Tensor, weights: torch.Tensor,
               orders: torch.Tensor, subset: bool = False) -> None:
        """Train predictors ``slots``; ``rows``, ``weights``, ``orders`` hold either every
        sub-env's (``subset=False``) or only those of ``slots``."""
        if not subset and len(slots) < self.num_envs:
            index = torch.as_tensor(slots, dtype=torch.long, device=self.device)
            rows, weights, orders = rows[index], weights[index], orders[index]
        env = self.template
        self._predictors.fit(slots, env._obs_tensors["x"], env._y_train, rows, weights, orders,
                             batch_size=env.predictor_batch_size, lr=env.predictor_lr)

    def _baseline_for(self, sub: _SubEnv, metric: float) -> float:
        if self.template.baseline == "moving_average":
            return float(np.mean(sub.history)) if sub.history else metric
        return sub.fixed_baseline

    def _sample_batch(self, k: int) -> torch.Tensor:
        perm = torch.randperm(self.template.n_train, generator=self._subs[k].generator,
                              device=self.device)
        return perm[: self.template.batch_size]

    def _start_episodes(self, slots: list[int]) -> dict[int, np.ndarray]:
        """Step counters to 0 and a fresh batch for each sub-env in ``slots``."""
        if not slots:
            return {}
        indices = (torch.zeros(self.num_envs, self.template.batch_size, dtype=torch.long,
                               device=self.device) if self._indices is None
                   else self._indices.clone())  # earlier arrays may share its memory
        for k in slots:
            self._subs[k].t, self._subs[k].ready = 0, True
            indices[k] = self._sample_batch(k)
        self._indices = indices
        rows = indices.cpu().numpy()
        return {k: rows[k].copy() for k in slots}

    def _reset_info(self, k: int, indices: np.ndarray) -> dict:
        info = {"indices": indices}
        if self._subs[k].fixed_baseline is not None:
            info["baseline"] = self._subs[k].fixed_baseline
        return info

    def _observe(self, indices: torch.Tensor) -> dict[str, np.ndarray]:
        return {k: t[indices].cpu().numpy() for k, t in self.template._obs_tensors.items()}

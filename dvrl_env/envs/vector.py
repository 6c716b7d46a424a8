"""Vectors of DVRL envs: :class:`DataValuationVectorEnv`, the core's view with K slots
whose predictors train as one computation, and :func:`make_vector_env`, K copies of an
env that move in lockstep for agents that score K selections.

Lockstep copies are reset with one seed, so they share the batch, the predictor's
initial weights and the mini-batch orders (common random numbers): the K rewards then
differ only through the K selections. The env draws the same random numbers whatever
the action, so the copies stay in step after the first reset.
"""

from __future__ import annotations

import copy
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv
from gymnasium.vector.utils import batch_space

from dvrl_env.envs.core import EnvConfig, SlotCore, reset_state_option, selection_array
from dvrl_env.envs.single import DataValuationEnv


class DataValuationVectorEnv(VectorEnv):
    """K :class:`~dvrl_env.DataValuationEnv` sub-envs, their predictors trained together.

    ## Description
    The view with K slots of the core (:mod:`dvrl_env.envs.core`) whose one-slot view is
    the single env. The same results as ``SyncVectorEnv([DataValuationEnv(**options)] *
    K, autoreset_mode=mode)`` (up to float rounding), faster: the dataset, features,
    marginal information and validation set are held once, and the K predictors train
    as one computation (:class:`~dvrl_env.predictors.stacked.StackedPredictors`: stacked
    weights, one batched forward and backward pass and one Adam step per mini-batch for
    all K). On CUDA everything stays on the device between steps.

    Each sub-env keeps its own ``np_random``, torch generator, initial weights,
    moving-average history, step counter and batch, seeded and consumed exactly as a
    single env's, so sub-env k follows the single env reset with the same seed. The fixed
    baseline is one for all K (one per fold when cross-fitted): drawn from ``data_seed``
    and trained once, at the first reset, it is the single env's with the same options,
    so a K-slot reset costs one baseline fit, not K.

    ## Observation, Action, Reward
    Those of :class:`~dvrl_env.DataValuationEnv`, batched: observation arrays
    ``(K, B, ...)``, actions ``(K, B)`` of 0/1, rewards ``(K,)``.

    ## Episode end
    As the single env's ``reset_mode``; ``max_episode_steps`` also truncates an episode
    after that many steps, as ``TimeLimit`` would. ``autoreset_mode`` (in
    ``metadata["autoreset_mode"]``) says what happens to a sub-env whose episode ended,
    as in ``SyncVectorEnv``:

    * ``"next_step"`` (the default, as Gymnasium's ``SyncVectorEnv``; its vector wrappers
      such as ``RecordEpisodeStatistics`` and ``FlattenObservation`` accept no other
      autoreset but ``"disabled"``): the next ``step`` resets it instead of stepping it,
      ignores its action and returns its first observation with reward 0. In a
      one-step bandit (``reset_mode="step"``) every other step is such a reset.
    * ``"same_step"`` (the fastest: a one-step bandit never spends a step on a reset; the
      agents' copies from :func:`make_vector_env` use it): it is reset within ``step``,
      which returns its next episode's first observation, with the last one in
      ``info["final_obs"]`` and its info in ``info["final_info"]``. Gymnasium's vector
      wrappers refuse it.
    * ``"disabled"``: the caller resets it with ``reset(options={"reset_mask": mask})``
      before stepping it again.

    ## Arguments
    * ``num_envs``: K.
    * ``max_episode_steps``: optional time limit per episode.
    * ``autoreset_mode``: ``"next_step"`` (default), ``"same_step"`` or ``"disabled"`` (or
      an ``AutoresetMode``), see above. Through ``gym.make_vec`` pass it as a keyword,
      ``gym.make_vec(id, num_envs=K, autoreset_mode="same_step")``: Gymnasium takes no
      ``vector_kwargs`` for an env's own vector entry point.
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

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, *, max_episode_steps: int | None = None,
                 autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
                 **env_options: Any):
        self._setup(DataValuationEnv(**env_options).config, num_envs, max_episode_steps,
                    autoreset_mode)

    @classmethod
    def from_env(cls, env: gym.Env, num_envs: int, *, max_episode_steps: int | None = None,
                 autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
                 ) -> DataValuationVectorEnv:
        """K sub-envs with ``env``'s options, sharing its data (``env`` is only read)."""
        base = env.unwrapped
        if not isinstance(base, DataValuationEnv):
            raise TypeError(f"from_env needs a DataValuationEnv, got {type(base).__name__}.")
        self = cls.__new__(cls)
        self._setup(base.config, num_envs, max_episode_steps, autoreset_mode)
        return self

    def _setup(self, config: EnvConfig, num_envs: int, max_episode_steps: int | None,
               autoreset_mode: str | AutoresetMode) -> None:
        self.core = SlotCore(config, num_envs, max_episode_steps=max_episode_steps)
        self.config = config
        self.num_envs = self.core.num_slots
        self.max_episode_steps = self.core.max_episode_steps
        self.autoreset_mode = _autoreset_mode(autoreset_mode)
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}
        self.render_mode = None
        self.device = config.device
        self.single_observation_space = config.observation_space
        self.single_action_space = config.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._ended = np.zeros(self.num_envs, dtype=np.bool_)  # episodes awaiting a reset

    # ---- Gymnasium API ---------------------------------------------------------------
    def reset(self, *, seed: int | list[int | None] | None = None,
              options: dict | None = None):
        state = reset_state_option(options, known=("state", "reset_mask"))
        if state is not None:
            self.core.load_state_dict(state)
            self._ended[:] = False
            rows = self.core.indices.cpu().numpy()
            infos: dict = {}
            for k in range(self.num_envs):
                infos = self._add_info(infos, self.core.reset_info(k, rows[k].copy()), k)
            return self.core.observe(self.core.indices), infos
        seeds = self._seed_list(seed)
        slots = self._reset_slots(dict(options or {}).get("reset_mask"))
        fresh = {k: seeding.np_random(seeds[k]) for k in slots
                 if self.core.needs_seeding(k, seeds[k])}
        batches = self.core.reset(slots, fresh)
        self._ended[slots] = False
        infos = {}
        for k in slots:
            infos = self._add_info(infos, self.core.reset_info(k, batches[k]), k)
        return self.core.observe(self.core.indices), infos

    def step(self, actions):
        k_all, mode = self.num_envs, self.autoreset_mode
        selection = selection_array(actions, (k_all, self.config.batch_size),
                                    f"{k_all} selection vectors (one per sub-env)")
        if mode == AutoresetMode.DISABLED and self._ended.any():
            raise gym.error.ResetNeeded(
                f"Sub-env(s) {np.flatnonzero(self._ended).tolist()} ended their episode; with "
                "autoreset_mode='disabled' reset them first: "
                "reset(options={'reset_mask': mask}).")
        resetting = np.flatnonzero(self._ended).tolist() if mode == AutoresetMode.NEXT_STEP \
            else []
        active = [k for k in range(k_all) if k not in resetting]
        step = self.core.step(selection, active)
        ended = step.terminated | step.truncated
        step_obs = self.core.observe(self.core.indices)
        infos: dict = {}
        if mode == AutoresetMode.SAME_STEP:
            batches = self.core.reset(np.flatnonzero(ended).tolist(), {})
            for k in active:
                if k in batches:
                    final_obs = {key: value[k].copy() for key, value in step_obs.items()}
                    infos = self._add_info(infos, {"final_obs": final_obs,
                                                   "final_info": step.info(k)}, k)
                    infos = self._add_info(infos, self.core.reset_info(k, batches[k]), k)
                else:
                    infos = self._add_info(infos, step.info(k), k)
        else:
            batches = self.core.reset(resetting, {})
            for k in range(k_all):
                info = (self.core.reset_info(k, batches[k]) if k in batches else step.info(k))
                infos = self._add_info(infos, info, k)
            self._ended = ended
        obs = self.core.observe(self.core.indices) if batches else step_obs
        return obs, step.rewards, step.terminated, step.truncated, infos

    # ---- what agents may use besides step/reset ----------------------------------------
    def all_observations(self) -> dict[str, np.ndarray]:
        """The sub-envs' shared data, as :meth:`DataValuationEnv.all_observations`."""
        return {k: v.copy() for k, v in self.config.observations.items()}

    @property
    def dataset(self):
        return self.config.dataset

    @property
    def fits(self) -> int:
        """Predictor fits of all K sub-envs, counted as :attr:`DataValuationEnv.fits`."""
        return self.core.fits

    @property
    def fixed_baselines(self) -> tuple[float | None, ...]:
        """Each sub-env's fixed baseline: the env's one, once a sub-env was reset."""
        return tuple(slot.fixed_baseline for slot in self.core.slots)

    @property
    def np_random(self) -> tuple[np.random.Generator, ...]:
        """Each sub-env's ``np_random`` (seeded at random when it has none yet)."""
        for slot in self.core.slots:
            if slot.np_random is None:
                slot.np_random, slot.np_random_seed = seeding.np_random()
        return tuple(slot.np_random for slot in self.core.slots)

    @property
    def np_random_seed(self) -> tuple[int | None, ...]:
        return tuple(slot.np_random_seed for slot in self.core.slots)

    def state_dict(self) -> dict[str, Any]:
        """Every sub-env's state and the stacked predictors, once all have been reset."""
        if self._ended.any():
            raise gym.error.ResetNeeded("Sub-envs wait for their reset (next_step or disabled "
                                        "autoreset); save the state after it.")
        return self.core.state_dict()

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


_AUTORESET_NAMES = {"same_step": AutoresetMode.SAME_STEP,
                    "next_step": AutoresetMode.NEXT_STEP, "disabled": AutoresetMode.DISABLED}


def _autoreset_mode(mode: str | AutoresetMode) -> AutoresetMode:
    """An ``AutoresetMode``, its value (``"SameStep"``) or its name (``"same_step"``)."""
    if isinstance(mode, AutoresetMode):
        return mode
    by_value = {m.value: m for m in AutoresetMode}
    if mode in _AUTORESET_NAMES or mode in by_value:
        return _AUTORESET_NAMES.get(mode) or by_value[mode]
    raise ValueError(f"Unknown autoreset_mode {mode!r}; choose one of "
                     f"{list(_AUTORESET_NAMES)} or a gymnasium.vector.AutoresetMode.")


def make_vector_env(env: gym.Env, num_envs: int, *, batched: bool = True) -> gym.vector.VectorEnv:
    """A vector env of ``num_envs`` copies of ``env`` with same-step autoreset.

    For a :class:`~dvrl_env.DataValuationEnv` (unwrapped) and ``batched=True``, the
    batched :class:`~dvrl_env.DataValuationVectorEnv` with ``env``'s options and data,
    whose K predictors train as one computation; otherwise (or with ``batched=False``)
    a ``SyncVectorEnv`` of deep copies. Both give the same results up to float rounding.
    Same-step autoreset returns the next episode's first observation from the step
    that ended an episode, so a one-step bandit never spends a step on a reset.
    """
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}.")
    base = env.unwrapped
    if batched and isinstance(base, DataValuationEnv):
        return DataValuationVectorEnv.from_env(base, num_envs,
                                               autoreset_mode=AutoresetMode.SAME_STEP)
    return SyncVectorEnv(
        [partial(copy.deepcopy, base) for _ in range(num_envs)],
        autoreset_mode=AutoresetMode.SAME_STEP,
    )

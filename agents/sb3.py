"""Stable-Baselines3's PPO and A2C as data value estimators, with a per-sample policy.

The policy is permutation-equivariant: one shared network maps each of the B rows
``[x, y, marginal]`` of an observation to a Bernoulli logit (the actor), and the critic
mean-pools the per-row features over the batch. :class:`SB3Agent` puts the
:class:`~agents.base.Agent` interface on top: the base class's learn loop, progress bar,
log and callbacks drive it, and its checkpoints are the tensor files every agent writes
(SB3's zip pickles Python objects, which loading would execute; ``self.model.save``
still writes one for SB3's own tools).

One *update* (one step of the base loop) is one SB3 iteration: ``model.learn`` of
exactly one rollout of ``n_steps`` env steps (each trains one predictor), followed by
SB3's training phase (PPO: ``n_epochs`` passes over the rollout in mini-batches of
``batch_size``; A2C: one gradient step). Consecutive calls continue SB3's counters and
last observation (``reset_num_timesteps=False``), so k updates draw what one
``model.learn(k * n_steps)`` would: the schedules are constant, nothing else depends on
the call's length.

Seeding: SB3 seeds Python's, NumPy's and the *global* torch RNG with ``seed`` at
construction, and resets the env with ``seed`` on the first rollout; the env itself draws
from its own generator. A checkpoint stores those global RNG states and loading restores
them, so a resumed agent draws what an uninterrupted one would have.

Using SB3 yourself (docs/rl_stacks.md): ``PPO(PerSamplePolicy, env)`` (or A2C, with SB3's
``make_vec_env`` for several copies) learns per-point values, and
:func:`policy_values` turns that policy, any other SB3 policy with ``MultiBinary``
actions, or a plain callable into one value per training row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import BernoulliDistribution
from stable_baselines3.common.policies import BasePolicy, MultiInputActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.utils import configure_logger
from stable_baselines3.common.vec_env import VecEnv
from torch import nn

from agents.base import MAX_WIDTH, Agent, AgentConfig
from agents.checkpoint import global_rng_state, saved_env_state, set_global_rng_state
from dvrl_env.options import Range

_CHUNK = 65536  # rows per forward pass when scoring every training point


# ---- the permutation-equivariant policy ------------------------------------------------

class PerSampleExtractor(BaseFeaturesExtractor):
    """Shared MLP on each row ``[x, y, marginal]``: (N, B, d + 2C) -> (N, B, hidden_dim)."""

    def __init__(self, observation_space: spaces.Dict, hidden_dim: int = 64,
                 hidden_layers: int = 2):
        super().__init__(observation_space, features_dim=hidden_dim)
        width = observation_space["x"].shape[-1] + 2 * observation_space["y"].shape[-1]
        layers: list[nn.Module] = []
        for _ in range(max(1, hidden_layers)):
            layers += [nn.Linear(width, hidden_dim), nn.ReLU()]
            width = hidden_dim
        self.net = nn.Sequential(*layers)

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(torch.cat([obs["x"], obs["y"], obs["marginal"]], dim=-1))


class PerSampleHeads(nn.Module):
    """SB3's ``mlp_extractor`` slot: the actor keeps one latent per row, the critic
    mean-pools rows (so the value ignores their order) and adds one layer."""

    def __init__(self, features_dim: int):
        super().__init__()
        self.latent_dim_pi = self.latent_dim_vf = features_dim
        self.critic = nn.Sequential(nn.Linear(features_dim, features_dim), nn.ReLU())

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_actor(features), self.forward_critic(features)

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        return features

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        return self.critic(features.mean(dim=-2))


class PointLogit(nn.Module):
    """Actor head: the same Linear(h, 1) on every row -> (N, B) Bernoulli logits."""

    def __init__(self, latent_dim: int):
        super().__init__()
        self.linear = nn.Linear(latent_dim, 1)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.linear(latent).squeeze(-1)


class PerSamplePolicy(MultiInputActorCriticPolicy):
    """Actor-critic for ``MultiBinary(B)`` actions whose logits are permutation-equivariant
    in the B rows and whose value is permutation-invariant.

    Built through SB3's hooks: the features extractor is :class:`PerSampleExtractor`,
    ``_build_mlp_extractor`` installs :class:`PerSampleHeads`, and ``_build`` swaps SB3's
    ``Linear(h, B)`` action net (which would tie each logit to a position) for
    :class:`PointLogit`, then rebuilds the optimizer. With
    ``share_features_extractor=False`` (the default here) the critic has its own
    per-row network, so value regression does not move the data values.

    Stock SB3 takes it as any policy class: ``PPO(PerSamplePolicy, env,
    policy_kwargs={"hidden_dim": 64})`` on one env or on ``make_vec_env(...)`` copies;
    :func:`policy_values` then gives the data values. SB3's ``"MultiInputPolicy"``
    cannot learn them: its flat MLP sees B x d numbers with no weight shared across
    points (docs/rl_stacks.md).
    """

    def __init__(self, observation_space: spaces.Dict, action_space: spaces.MultiBinary,
                 lr_schedule: Any, hidden_dim: int = 64, hidden_layers: int = 2,
                 **kwargs: Any):
        kwargs["features_extractor_class"] = PerSampleExtractor
        kwargs["features_extractor_kwargs"] = {"hidden_dim": hidden_dim,
                                               "hidden_layers": hidden_layers}
        kwargs["net_arch"] = []  # unused: PerSampleHeads replaces SB3's MLP
        kwargs.setdefault("share_features_extractor", False)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = PerSampleHeads(self.features_dim)

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        self.action_net = PointLogit(self.mlp_extractor.latent_dim_pi)
        if self.ortho_init:
            self.action_net.apply(lambda m: self.init_weights(m, gain=0.01))
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1),
                                              **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(self.features_extractor_kwargs)
        return data

    def point_logits(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Selection logits (N, B') for any number B' of rows: the actor alone."""
        features = BasePolicy.extract_features(self, obs, self.pi_features_extractor)
        return self.action_net(self.mlp_extractor.forward_actor(features))


# ---- values from any policy ---------------------------------------------------------

def policy_values(policy: BasePolicy | BaseAlgorithm | Callable[[dict], Any],
                  env: Any) -> np.ndarray:
    """The selection probability of each of the env's ``n_train`` training rows under
    ``policy``, in training-set order: the data values an agent would report.

    ``policy`` is an SB3 policy or algorithm (``PPO(...)``, ``model.policy``) whose
    actions are ``MultiBinary(B)``, or a callable taking one observation (a dict of
    ``(B, ...)`` arrays, as the env returns) and returning B selection probabilities.
    ``env`` is the env it acts on: a single env (wrapped or not), a
    :class:`~dvrl_env.DataValuationVectorEnv`, or an SB3 ``VecEnv`` of them.

    A :class:`PerSamplePolicy` scores every row on its own (one pass over all rows). Any
    other policy sees the rows in training order, B at a time (the last group is filled
    up with rows from the start): a flat policy's probability for a row depends on the
    B-1 rows beside it, so its values are only as good as that policy is per point.
    """
    observations = _all_observations(env)
    n = len(observations["x"])
    if isinstance(policy, BaseAlgorithm):
        policy = policy.policy
    if isinstance(policy, PerSamplePolicy):
        return _per_sample_values(policy, observations).astype(np.float64)
    batch = _batch_size(env)
    rows = np.arange(-(-n // batch) * batch) % n  # B at a time, the last group filled up
    groups = {k: v[rows].reshape(-1, batch, *v.shape[1:]) for k, v in observations.items()}
    if isinstance(policy, BasePolicy):
        probabilities = _sb3_probabilities(policy, groups)
    elif callable(policy):
        probabilities = np.stack([_callable_probabilities(policy, groups, g, batch)
                                  for g in range(len(rows) // batch)])
    else:
        raise TypeError(f"policy_values needs an SB3 policy or algorithm, or a callable "
                        f"observation -> B probabilities; got {type(policy).__name__}.")
    return np.asarray(probabilities, dtype=np.float64).reshape(-1)[:n]


@torch.no_grad()
def _per_sample_values(policy: PerSamplePolicy,
                       observations: dict[str, np.ndarray]) -> np.ndarray:
    """``sigmoid(point_logits)`` of every row, ``_CHUNK`` rows per forward pass."""
    policy.set_training_mode(False)
    out = []
    for start in range(0, len(observations["x"]), _CHUNK):
        obs = {k: torch.as_tensor(v[start:start + _CHUNK][None], dtype=torch.float32,
                                  device=policy.device)
               for k, v in observations.items()}
        out.append(torch.sigmoid(policy.point_logits(obs))[0].cpu())
    return torch.cat(out).numpy()


@torch.no_grad()
def _sb3_probabilities(policy: BasePolicy, groups: dict[str, np.ndarray]) -> np.ndarray:
    """The Bernoulli probabilities of SB3's action distribution, (groups, B)."""
    policy.set_training_mode(False)
    out = []
    for start in range(0, len(groups["x"]), 256):
        obs = {k: torch.as_tensor(v[start:start + 256], dtype=torch.float32,
                                  device=policy.device) for k, v in groups.items()}
        distribution = policy.get_distribution(obs)
        if not isinstance(distribution, BernoulliDistribution):
            raise TypeError(f"policy_values needs a policy with MultiBinary actions (one "
                            f"Bernoulli per point); this one's distribution is "
                            f"{type(distribution).__name__}.")
        out.append(distribution.distribution.probs.cpu().numpy())
    return np.concatenate(out)


def _callable_probabilities(policy: Callable[[dict], Any], groups: dict[str, np.ndarray],
                            g: int, batch: int) -> np.ndarray:
    out = policy({k: v[g].copy() for k, v in groups.items()})
    if isinstance(out, torch.Tensor):
        out = out.detach().cpu().numpy()
    out = np.asarray(out, dtype=np.float64)
    if out.size != batch:
        raise ValueError(f"The policy callable must return {batch} selection probabilities "
                         f"(one per row of the observation), got shape {out.shape}.")
    return out.reshape(batch)


def _all_observations(env: Any) -> dict[str, np.ndarray]:
    if isinstance(env, VecEnv):  # SB3's: ask its first sub-env (works across processes)
        return env.env_method("all_observations", indices=0)[0]
    base = getattr(env, "unwrapped", env)
    if not hasattr(base, "all_observations"):
        raise TypeError(f"policy_values needs a DataValuationEnv (or a vector env of them), "
                        f"got {type(env).__name__}.")
    return base.all_observations()


def _batch_size(env: Any) -> int:
    """B: the rows of one observation."""
    space = getattr(env, "single_observation_space", None) or env.observation_space
    return int(space["x"].shape[0])


def _vector_env_error(env: Any) -> str:
    kind = f"{type(env).__name__} of {env.num_envs} envs"
    return (f"The SB3 agents take a single env, got a vector env ({kind}): pass one env, "
            "e.g. gym.make('DataValuation-Digits-v0') or DataValuationEnv(...). Each "
            "update steps it n_steps times (one SB3 rollout); to run SB3 on several "
            "copies, use SB3 directly: PPO(agents.sb3.PerSamplePolicy, make_vec_env(...)) "
            "and agents.sb3.policy_values (docs/rl_stacks.md).")


# ---- the Agent interface ------------------------------------------------------------

class _RolloutLogs(BaseCallback):
    """What one rollout's env steps report: the mean reward, validation metric (the
    env's ``info["metric"]``) and fraction of points selected."""

    def __init__(self):
        super().__init__()
        self.rewards: list[float] = []
        self.metrics: list[float] = []
        self.selected: list[float] = []

    def _on_step(self) -> bool:
        self.rewards.extend(float(r) for r in self.locals["rewards"])
        self.metrics.extend(float(i["metric"]) for i in self.locals["infos"] if "metric" in i)
        self.selected.append(float(np.mean(self.locals["actions"])))
        return True

    def logs(self) -> dict[str, float]:
        return {"reward": float(np.mean(self.rewards)),
                "metric": float(np.mean(self.metrics)) if self.metrics else float("nan"),
                "selected": float(np.mean(self.selected))}


@dataclasses.dataclass
class SB3Config(AgentConfig):
    RANGES: ClassVar[dict[str, Range]] = {
        "learning_rate": Range(0, low_open=True), "hidden_dim": Range(1, MAX_WIDTH),
        "hidden_layers": Range(0, 100)}

    learning_rate: float = 1e-3
    n_steps: int = 8
    ent_coef: float | None = None  # None: 0.01 / B
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    gamma: float = 0.99
    gae_lambda: float = 0.95
    normalize_advantage: bool = True
    hidden_dim: int = 64
    hidden_layers: int = 2
    share_features_extractor: bool = False
    verbose: int = 0


@dataclasses.dataclass
class PPOConfig(SB3Config):
    batch_size: int | None = None  # None: the whole rollout (n_steps)
    n_epochs: int = 4
    clip_range: float = 0.2
    target_kl: float | None = None


@dataclasses.dataclass
class A2CConfig(SB3Config):
    n_steps: int = 5
    gae_lambda: float = 1.0
    normalize_advantage: bool = False
    use_rms_prop: bool = True


class SB3Agent(Agent):
    """An SB3 on-policy algorithm with :class:`PerSamplePolicy`; values are the policy's
    selection probabilities ``sigmoid(logit)`` on every training point.

    Defaults suit expensive env steps (each trains a predictor) and B actions per step:
    a short rollout (``n_steps``), ``learning_rate`` 1e-3 (runs are a few hundred
    updates), and ``ent_coef = 0.01 / B``: SB3's entropy is summed over the B points
    while the per-point learning signal of one scalar reward shrinks with B, so the
    bonus is 0.01 of the *mean* per-point entropy. The model is ``self.model``.
    """

    name: str = "sb3"
    config_class: ClassVar[type[AgentConfig]] = SB3Config
    algorithm: ClassVar[type[BaseAlgorithm]]

    def __init__(self, env: gym.Env, *, seed: int = 0, **config: Any):
        if isinstance(env, gym.vector.VectorEnv | VecEnv):
            raise TypeError(_vector_env_error(env))
        super().__init__(env, seed=seed, **config)
        c = self.config
        if c.n_steps < 1:
            raise ValueError(f"n_steps must be >= 1, got {c.n_steps}.")
        num_points = int(np.prod(self.unwrapped.action_space.shape))
        ent_coef = 0.01 / num_points if c.ent_coef is None else c.ent_coef
        self.model = self.algorithm(
            PerSamplePolicy, env, learning_rate=c.learning_rate, n_steps=c.n_steps,
            ent_coef=ent_coef, vf_coef=c.vf_coef, max_grad_norm=c.max_grad_norm,
            gamma=c.gamma, gae_lambda=c.gae_lambda, normalize_advantage=c.normalize_advantage,
            policy_kwargs={"hidden_dim": c.hidden_dim, "hidden_layers": c.hidden_layers,
                           "share_features_extractor": c.share_features_extractor},
            verbose=c.verbose, seed=self.seed, device=self.device, **self._algorithm_kwargs(),
        )
        # one logger for every update (SB3 would build one per learn call); its train/*
        # values join the update's logs, and the agent's log writes them (TensorBoard too)
        self.model.set_logger(configure_logger(c.verbose))

    def _algorithm_kwargs(self) -> dict[str, Any]:
        return {}

    # ---- Agent API -------------------------------------------------------------------
    def _update(self) -> dict:
        """One SB3 iteration: a rollout of ``n_steps`` env steps, then SB3's training
        phase; logs the rollout's means and SB3's ``train/*`` values."""
        model = self.model
        rollout = _RolloutLogs()
        model.learn(model.n_steps * model.n_envs, callback=rollout,
                    reset_num_timesteps=model.num_timesteps == 0)
        return {**rollout.logs(),
                **{k.removeprefix("train/"): float(v)
                   for k, v in model.logger.name_to_value.items() if k.startswith("train/")}}

    def _values_from(self, observations: dict[str, np.ndarray]) -> np.ndarray:
        return _per_sample_values(self.model.policy, observations)

    # ---- checkpoints: tensors and JSON, never SB3's pickled zip ------------------------
    def _state_dict(self) -> dict:
        """The policy and its optimizer, SB3's counters, the last observation, the global
        RNGs (SB3 samples actions and mini-batches from them) and the env's state."""
        model = self.model
        last_obs = None if model._last_obs is None else \
            {k: torch.as_tensor(v) for k, v in model._last_obs.items()}
        starts = model._last_episode_starts
        return {
            "policy": model.policy.state_dict(),
            "optimizer": model.policy.optimizer.state_dict(),
            "num_timesteps": int(model.num_timesteps),
            "n_updates": int(model._n_updates),
            "episode_num": int(model._episode_num),
            "last_obs": last_obs,
            "last_episode_starts": None if starts is None else torch.as_tensor(starts),
            "global_rng": global_rng_state(),
            "env": None if last_obs is None else saved_env_state(self.unwrapped),
        }

    def _load_state_dict(self, state: dict) -> None:
        model = self.model
        model.policy.load_state_dict(state["policy"])
        model.policy.optimizer.load_state_dict(state["optimizer"])
        model.num_timesteps = int(state["num_timesteps"])
        model._n_updates = int(state["n_updates"])
        model._episode_num = int(state["episode_num"])
        if state["last_obs"] is not None and state["env"] is not None:
            # the env state goes in through a reset, which SB3's wrappers must see
            model.env.set_options({"state": state["env"]})
            model._last_obs = model.env.reset()
            model._last_episode_starts = state["last_episode_starts"].numpy()
        else:  # an env without state_dict: SB3 resets it when learning starts
            model._last_obs = None
        set_global_rng_state(state["global_rng"])


class PPOAgent(SB3Agent):
    """SB3's PPO with the per-sample policy.

    One update: ``n_steps`` (8) env steps, then ``n_epochs`` (4) passes in mini-batches of
    ``batch_size`` (default the whole rollout). The ratio ``pi/pi_old`` is the joint
    probability of all B selections (log-probabilities are summed over B), so
    ``clip_range`` (0.2) and ``target_kl`` (None; if set, scale it with B) bound the
    change of the whole selection: a conservative trust region, per-point steps stay small.
    """

    name = "ppo"
    config_class = PPOConfig
    algorithm = PPO

    def _algorithm_kwargs(self) -> dict[str, Any]:
        c = self.config
        return {"batch_size": c.n_steps if c.batch_size is None else c.batch_size,
                "n_epochs": c.n_epochs, "clip_range": c.clip_range, "target_kl": c.target_kl}


class A2CAgent(SB3Agent):
    """SB3's A2C with the per-sample policy: one update is ``n_steps`` (5) env steps and
    one gradient step (RMSprop by default, as SB3)."""

    name = "a2c"
    config_class = A2CConfig
    algorithm = A2C

    def _algorithm_kwargs(self) -> dict[str, Any]:
        return {"use_rms_prop": self.config.use_rms_prop}



__all__ = ["A2CAgent", "PPOAgent", "PerSamplePolicy", "SB3Agent", "policy_values"]

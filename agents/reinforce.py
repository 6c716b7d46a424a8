"""REINFORCE: DVRL as the official code trains it, and a variance-reduced variant.

One update (outer iteration):
1. observe a batch of B points and compute selection probabilities h = DVE(x, y, m);
2. draw K selection vectors s_k ~ Bernoulli(h) (an all-zero draw is redrawn);
3. step the env with each s_k: a predictor trained on the selection, reward r_k;
4. minimise ``-mean_k (r_k - b_k) * sum_i log pi(s_k,i) + exploration penalty``.

``num_samples=1`` (official): b = 0 and r is the env's reward, i.e. validation metric
minus the env's fixed baseline. ``num_samples=K > 1``: the K rewards come from K
copies of the env moving in lockstep (same batch, same predictor initial weights, same
mini-batch orders), and ``b_k`` is the mean reward of the other K - 1 (leave-one-out),
which removes the env's baseline and most of the variance that the batch and the
predictor's randomness put into one scalar reward for B actions.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from agents.checkpoint import saved_env_state
from agents.dve import DVEAgent, DVEConfig, exploration_penalty
from dvrl_env.envs.vector import make_vector_env
from dvrl_env.options import Range


@dataclasses.dataclass
class ReinforceConfig(DVEConfig):
    #: the exploration penalty keeps the mean selection probability in [1 - t, t]
    RANGES: ClassVar[dict[str, Range]] = {
        "num_samples": Range(1), "exploration_threshold": Range(0.5, 1),
        "exploration_weight": Range(0), "max_redraws": Range(1)}

    num_samples: int = 1
    exploration_threshold: float = 0.9
    exploration_weight: float = 1e3
    max_redraws: int = 100


class Reinforce(DVEAgent):
    """DVRL's REINFORCE data value estimator (``num_samples=K`` for the K-sample variant).

    Options: ``num_samples`` (K, default 1), ``learning_rate`` (0.01), ``hidden_dim``
    (100), ``hidden_layers`` (3), ``comb_dim`` (10), ``architecture`` (``"official"``
    or ``"skip"``, see :class:`~agents.dve.DataValueEstimator`),
    ``exploration_threshold`` (0.9), ``exploration_weight`` (1e3), ``log_every``,
    ``log_dir``, ``device``.
    """

    name = "reinforce"
    config_class = ReinforceConfig

    def __init__(self, env, *, seed: int = 0, **config):
        super().__init__(env, seed=seed, **config)
        self.num_samples = int(self.config.num_samples)
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}.")
        self.vector_env = make_vector_env(env, self.num_samples) if self.num_samples > 1 else None
        self._obs: dict | None = None

    # ---- one update --------------------------------------------------------------------
    def _update(self) -> dict:
        if self._obs is None:
            self._obs = self._reset(seed=self.seed)
        loss, logs = self._loss()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return logs

    def gradient_estimate(self, seed: int) -> torch.Tensor:
        """One draw of the gradient an update would follow, as a flat tensor.

        Resets the env (all K copies) with ``seed``, so calls with the same seed see the
        same batch, predictor initial weights and mini-batch orders; draws K fresh
        selections from the agent's generator, steps the env for their rewards, and
        returns the gradient of the update's loss (exploration penalty included) with
        respect to the DVE's parameters, concatenated in ``dve.parameters()`` order.
        Parameters and optimizer are left unchanged; the next update starts from a
        fresh ``reset(seed=agent.seed)``. For measuring the estimator's variance.
        """
        self._obs = self._reset(seed=seed)
        try:
            loss, _ = self._loss()
            params = list(self.dve.parameters())
            grads = torch.autograd.grad(loss, params, allow_unused=True)
        finally:
            self._obs = None
        return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                          for p, g in zip(params, grads, strict=True)]).detach().cpu()

    def _loss(self) -> tuple[torch.Tensor, dict]:
        """The loss of one update on the current batch (steps the env), and its logs."""
        logits = self.dve(*self._tensors(self._obs))
        probs = torch.sigmoid(logits)
        selections = self._draw(probs.detach(), self.num_samples)
        rewards, metric = self._rewards(selections)
        if self.num_samples > 1:
            advantages = rewards - (rewards.sum() - rewards) / (self.num_samples - 1)
        else:
            advantages = rewards
        log_prob = (selections * F.logsigmoid(logits) + (1 - selections) * F.logsigmoid(-logits))
        loss = -(advantages.to(self.device) * log_prob.sum(dim=1)).mean()
        loss = loss + exploration_penalty(
            probs, self.config.exploration_threshold, self.config.exploration_weight)
        return loss, {"reward": float(rewards.mean()), "metric": metric,
                      "selected": float(selections.mean()), "loss": loss.item()}

    def _draw(self, probs: torch.Tensor, k: int) -> torch.Tensor:
        """K Bernoulli selections, redrawing any all-zero one (as the official code)."""
        probs = probs.cpu()
        out = torch.rand(k, len(probs), generator=self.generator) < probs
        for _ in range(self.config.max_redraws):
            empty = ~out.any(dim=1)
            if not empty.any():
                break
            out[empty] = torch.rand(int(empty.sum()), len(probs), generator=self.generator) < probs
        return out.float().to(self.device)

    def _rewards(self, selections: torch.Tensor) -> tuple[torch.Tensor, float]:
        actions = selections.cpu().numpy().astype(np.int8)
        if self.vector_env is None:
            obs, reward, terminated, truncated, info = self.env.step(actions[0])
            self._obs = self._reset() if terminated or truncated else obs
            return torch.tensor([reward], dtype=torch.float32), info["metric"]
        obs, rewards, _, _, infos = self.vector_env.step(actions)
        self._check_lockstep(infos)
        self._obs = obs
        final = infos.get("final_info", infos)
        metric = float(np.mean(final["metric"])) if "metric" in final else float("nan")
        return torch.as_tensor(rewards, dtype=torch.float32), metric

    def stepped_envs(self) -> list:
        return [self.unwrapped if self.vector_env is None else self.vector_env]

    # ---- checkpoints -------------------------------------------------------------------
    def _state_dict(self) -> dict:
        """The DVE and optimizer, and the env's state once it has a batch (the K copies'
        when K > 1): restoring it puts the env back on the same batch and RNG stream."""
        env = self.env.unwrapped if self.vector_env is None else self.vector_env
        return {**super()._state_dict(),
                "env": None if self._obs is None else saved_env_state(env)}

    def _load_state_dict(self, state: dict) -> None:
        super()._load_state_dict(state)
        self._obs = None
        if state["env"] is not None:
            target = self.env if self.vector_env is None else self.vector_env
            self._obs = target.reset(options={"state": state["env"]})[0]

    # ---- observations ------------------------------------------------------------------
    def _reset(self, seed: int | None = None) -> dict:
        if self.vector_env is None:
            return self.env.reset(seed=seed)[0]
        seeds = None if seed is None else [seed] * self.num_samples
        obs, infos = self.vector_env.reset(seed=seeds)
        self._check_lockstep(infos)
        return obs

    def _tensors(self, obs: dict) -> tuple[torch.Tensor, ...]:
        """The batch as tensors; the K sub-envs' observations are one and the same."""
        if self.vector_env is not None:
            obs = {k: v[0] for k, v in obs.items()}
        return tuple(torch.as_tensor(obs[k], device=self.device) for k in ("x", "y", "marginal"))

    @staticmethod
    def _check_lockstep(infos: dict) -> None:
        indices = np.asarray(infos["indices"])
        if not (indices == indices[0]).all():
            raise RuntimeError("The K sub-envs no longer see the same batch; they must be "
                               "copies of one env reset with one seed.")

"""The report's Gumbel-softmax DVE: a relaxed Bernoulli selection trained end to end."""

from __future__ import annotations

import dataclasses
from collections import deque
from typing import ClassVar

import torch

from agents.checkpoint import saved_env_state
from agents.dve import DVEAgent, DVEConfig, exploration_penalty
from dvrl_env.options import Range


@dataclasses.dataclass
class GumbelConfig(DVEConfig):
    RANGES: ClassVar[dict[str, Range]] = {
        "temperature": Range(0, low_open=True), "moving_average_window": Range(1),
        "exploration_threshold": Range(0.5, 1), "exploration_weight": Range(0)}

    temperature: float = 0.5
    moving_average_window: int = 20
    exploration_threshold: float = 0.9
    exploration_weight: float = 1e3


class GumbelSoftmax(DVEAgent):
    """Binary Concrete (relaxed Bernoulli) selection with straight-through hard samples.

    Each update draws logistic noise g, forms ``soft = sigmoid((logit h + g) / tau)``,
    sends ``hard = soft > 0.5`` to the env and minimises
    ``-(reward - delta) * mean(hard + soft - stop_grad(soft)) + exploration penalty``,
    with delta the mean reward of the previous ``moving_average_window`` updates.

    What its gradient can credit: the derivative of ``mean(s)`` with respect to point i's
    logit is ``soft_i (1 - soft_i) / (tau B)``, positive for every point. A reward above
    delta therefore raises the selection probability of *every* point in the batch,
    selected or not, helpful or harmful; only the size of the push differs, by how close
    each relaxed sample fell to 0.5. It can move the overall selection rate, but it
    cannot tell which points earned the reward: there is no per-point credit
    assignment, unlike REINFORCE's ``sum_i log pi(s_i)``.

    Options: ``temperature`` (0.5), ``moving_average_window`` (20), and those of the DVE
    (``learning_rate``, ``hidden_dim``, ``hidden_layers``, ``comb_dim``, ``architecture``).
    """

    name = "gumbel"
    config_class = GumbelConfig

    def __init__(self, env, *, seed: int = 0, **config):
        super().__init__(env, seed=seed, **config)
        if not self.config.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.config.temperature}.")
        self._rewards: deque[float] = deque(maxlen=self.config.moving_average_window)
        self._obs: dict | None = None

    def _update(self) -> dict:
        if self._obs is None:
            self._obs = self.env.reset(seed=self.seed)[0]
        logits = self.dve(*(torch.as_tensor(self._obs[k], device=self.device)
                            for k in ("x", "y", "marginal")))
        u = torch.rand(logits.shape, generator=self.generator).clamp(1e-6, 1 - 1e-6)
        noise = (torch.log(u) - torch.log1p(-u)).to(self.device)
        soft = torch.sigmoid((logits + noise) / self.config.temperature)
        hard = (soft > 0.5).float()
        selection = hard + soft - soft.detach()  # straight-through
        obs, reward, terminated, truncated, info = self.env.step(
            hard.detach().cpu().numpy().astype("int8"))
        self._obs = self.env.reset()[0] if terminated or truncated else obs
        delta = sum(self._rewards) / len(self._rewards) if self._rewards else 0.0
        self._rewards.append(reward)
        loss = -(reward - delta) * selection.mean() + exploration_penalty(
            torch.sigmoid(logits), self.config.exploration_threshold,
            self.config.exploration_weight)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"reward": float(reward), "metric": info["metric"],
                "selected": float(hard.mean()), "loss": loss.item()}

    def _state_dict(self) -> dict:
        return {**super()._state_dict(), "rewards": list(self._rewards),
                "env": None if self._obs is None else saved_env_state(self.unwrapped)}

    def _load_state_dict(self, state: dict) -> None:
        super()._load_state_dict(state)
        self._rewards.clear()
        self._rewards.extend(float(r) for r in state["rewards"])
        self._obs = None
        if state["env"] is not None:
            self._obs = self.env.reset(options={"state": state["env"]})[0]

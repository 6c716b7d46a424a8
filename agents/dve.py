"""The data value estimator network of the official DVRL code, and a variant that
keeps a direct path for the marginal information."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from agents.base import MAX_WIDTH, Agent, AgentConfig
from dvrl_env.options import Range
from dvrl_env.predictors.training import make_adam

ARCHITECTURES = ("official", "skip")


class DataValueEstimator(nn.Module):
    """h(x, y, m): a selection logit per point.

    ``architecture="official"`` (``dvrl/dvrl.py: data_value_evaluator``): [x, onehot y]
    through ReLU layers ``hidden_dim`` x ``hidden_layers`` then a ``comb_dim``
    bottleneck; the marginal information m is concatenated after it; [comb_dim + C] ->
    comb_dim -> 1. On wide inputs the few bottleneck units can drown m, and the DVE can
    lose the signal it was given: on Digits (64 pixel features) the marginal information
    alone has AUROC 0.997, the official DVE ends at 0.25-0.58 (README "Agents",
    ``benchmarks/specs/agent_quality.toml``).

    ``architecture="skip"`` adds ``skip_weight * logit(1 - m_y)`` to the logit, where
    ``1 - m_y`` is the validation model's probability of the given label: the DVE starts
    at the marginal information's ranking and RL learns a correction on top of it. It is
    meant for envs with marginal information on (without it the path is a constant).
    """

    def __init__(self, num_features: int, num_classes: int, *, hidden_dim: int = 100,
                 hidden_layers: int = 3, comb_dim: int = 10, architecture: str = "official"):
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(f"Unknown DVE architecture {architecture!r}; "
                             f"choose one of {list(ARCHITECTURES)}.")
        self.architecture = architecture
        layers: list[nn.Module] = []
        width = num_features + num_classes
        for _ in range(hidden_layers):
            layers += [nn.Linear(width, hidden_dim), nn.ReLU()]
            width = hidden_dim
        layers += [nn.Linear(width, comb_dim), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Linear(comb_dim + num_classes, comb_dim), nn.ReLU(), nn.Linear(comb_dim, 1)
        )
        if architecture == "skip":
            self.skip_weight = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor, y: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """Logits of shape ``x.shape[:-1]`` (any leading batch dimensions)."""
        z = self.body(torch.cat([x, y], dim=-1))
        logit = self.head(torch.cat([z, m], dim=-1)).squeeze(-1)
        if self.architecture == "skip":
            p_given = (1.0 - (m * y).sum(-1)).clamp(0.01, 0.99)
            logit = logit + self.skip_weight * torch.logit(p_given)
        return logit


def exploration_penalty(probs: torch.Tensor, threshold: float = 0.9,
                        weight: float = 1e3) -> torch.Tensor:
    """The official ``1e3 * (max(mean h - 0.9, 0) + max(0.1 - mean h, 0))``: keeps the
    mean selection probability inside [1 - threshold, threshold]."""
    mean = probs.mean()
    return weight * (torch.relu(mean - threshold) + torch.relu((1.0 - threshold) - mean))


def as_tensors(observations: dict, device: torch.device) -> tuple[torch.Tensor, ...]:
    return tuple(torch.as_tensor(observations[k], dtype=torch.float32, device=device)
                 for k in ("x", "y", "marginal"))


# ---- agents whose policy is a DataValueEstimator ----------------------------------------

@dataclasses.dataclass
class DVEConfig(AgentConfig):
    RANGES: ClassVar[dict[str, Range]] = {
        "learning_rate": Range(0, low_open=True), "hidden_dim": Range(1, MAX_WIDTH),
        "hidden_layers": Range(0, 100), "comb_dim": Range(1, MAX_WIDTH)}

    learning_rate: float = 0.01
    hidden_dim: int = 100
    hidden_layers: int = 3
    comb_dim: int = 10
    architecture: str = "official"


class DVEAgent(Agent):
    """An agent whose values are the selection probabilities of a :class:`DataValueEstimator`."""

    config_class = DVEConfig

    def __init__(self, env, *, seed: int = 0, **config):
        super().__init__(env, seed=seed, **config)
        space = self.unwrapped.observation_space
        num_features, num_classes = space["x"].shape[-1], space["y"].shape[-1]
        c = self.config
        self.dve = self.seeded_module(lambda: DataValueEstimator(
            num_features, num_classes, hidden_dim=c.hidden_dim, hidden_layers=c.hidden_layers,
            comb_dim=c.comb_dim, architecture=c.architecture))
        self.optimizer = make_adam(self.dve.parameters(), c.learning_rate)

    def probabilities(self, observations: dict) -> torch.Tensor:
        return torch.sigmoid(self.dve(*as_tensors(observations, self.device)))

    @torch.no_grad()
    def _values_from(self, observations: dict) -> np.ndarray:
        return self.probabilities(observations).cpu().numpy()

    def _state_dict(self) -> dict:
        return {"dve": self.dve.state_dict(), "optimizer": self.optimizer.state_dict()}

    def _load_state_dict(self, state: dict) -> None:
        self.dve.load_state_dict(state["dve"])
        self.optimizer.load_state_dict(state["optimizer"])

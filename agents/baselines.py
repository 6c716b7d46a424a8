"""Agents that do not learn from rewards: the yardsticks every RL agent must beat."""

from __future__ import annotations

import copy
import dataclasses
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from agents.base import MAX_WIDTH, Agent, AgentConfig, given_label_marginal
from agents.dve import DataValueEstimator, as_tensors
from dvrl_env.options import Range
from dvrl_env.predictors.training import make_adam


class MarginalInformation(Agent):
    """The value is the validation model's probability of the given label, ``1 - m_y``.

    No RL: the marginal information alone, the report's hypothesis 3 baseline. Needs an
    env with ``marginal_information=True``.
    """

    name = "marginal"

    def __init__(self, env, *, seed: int = 0, **config):
        super().__init__(env, seed=seed, **config)
        if not self.unwrapped.all_observations()["marginal"].any():
            raise ValueError("The marginal agent reads the marginal information, which this "
                             "env turns off; make the env with marginal_information=True.")

    def _update(self) -> dict:
        return {}

    def _values_from(self, observations: dict) -> np.ndarray:
        return 1.0 - given_label_marginal(observations)


class RandomValues(Agent):
    """Uniform random values, fixed by the seed: the floor (AUROC about 0.5)."""

    name = "random"

    def _update(self) -> dict:
        return {}

    def _values_from(self, observations: dict) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        return rng.random(len(observations["x"]))


@dataclasses.dataclass
class OracleConfig(AgentConfig):
    RANGES: ClassVar[dict[str, Range]] = {
        "batch_size": Range(1), "learning_rate": Range(0, low_open=True),
        "hidden_dim": Range(1, MAX_WIDTH), "hidden_layers": Range(0, 100),
        "comb_dim": Range(1, MAX_WIDTH), "eval_every": Range(1)}

    folds: int = 5
    batch_size: int = 256
    learning_rate: float = 1e-3
    hidden_dim: int = 100
    hidden_layers: int = 3
    comb_dim: int = 10
    architecture: str = "official"
    early_stopping_fraction: float = 0.2
    eval_every: int = 10


class SupervisedOracle(Agent):
    """The DVE architecture trained with supervision on the true noise mask.

    The ceiling for the architecture (the report's "explicit corruption signal"
    ablation; hypothesis 4). It is cross-fitted: the training set is cut into
    ``folds`` parts, one DVE per part is trained on the *other* parts' masks, and each
    point's value comes from the DVE that never saw its mask, so the score measures what
    the architecture can learn, not what it can memorise. Within each fold's training
    part, ``early_stopping_fraction`` of the points is kept aside and the weights with
    the lowest loss there (checked every ``eval_every`` updates) give the values, so a
    long run does not end in overfitting. One update is one Adam step on a mini-batch
    of ``batch_size`` points for each fold's DVE.
    """

    name = "oracle"
    config_class = OracleConfig

    def __init__(self, env, *, seed: int = 0, **config):
        super().__init__(env, seed=seed, **config)
        c = self.config
        if c.folds < 2:
            raise ValueError(f"folds must be >= 2 for cross-fitting, got {c.folds}.")
        self.observations = as_tensors(self.unwrapped.all_observations(), self.device)
        # the one agent that reads the mask, by design
        clean = ~self.unwrapped.dataset.noisy_mask
        self.targets = torch.as_tensor(clean, dtype=torch.float32, device=self.device)
        n = len(clean)
        self.fold_of = np.random.default_rng(self.seed).permutation(n) % c.folds
        num_features, num_classes = self.observations[0].shape[1], self.observations[1].shape[1]
        self.models = self.seeded_module(lambda: torch.nn.ModuleList(
            DataValueEstimator(num_features, num_classes, hidden_dim=c.hidden_dim,
                               hidden_layers=c.hidden_layers, comb_dim=c.comb_dim,
                               architecture=c.architecture)
            for _ in range(c.folds)))
        self.optimizer = make_adam(self.models.parameters(), c.learning_rate)
        self.best_models = copy.deepcopy(self.models)
        self.best_losses = [float("inf")] * c.folds
        rng = np.random.default_rng(self.seed + 1)
        self._train_rows, self._stop_rows = [], []
        for f in range(c.folds):
            rows = rng.permutation(np.flatnonzero(self.fold_of != f))
            n_stop = int(round(c.early_stopping_fraction * len(rows)))
            self._stop_rows.append(torch.as_tensor(rows[:n_stop], device=self.device))
            self._train_rows.append(rows[n_stop:])

    def _update(self) -> dict:
        loss = 0.0
        for model, rows in zip(self.models, self._train_rows, strict=True):
            pick = torch.randint(len(rows), (min(self.config.batch_size, len(rows)),),
                                 generator=self.generator)
            idx = torch.as_tensor(rows, device=self.device)[pick.to(self.device)]
            logits = model(*(t[idx] for t in self.observations))
            loss = loss + F.binary_cross_entropy_with_logits(logits, self.targets[idx])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if (self.steps_done + 1) % self.config.eval_every == 0:
            self._keep_best()
        return {"loss": loss.item() / len(self.models)}

    @torch.no_grad()
    def _keep_best(self) -> None:
        for f, (model, rows) in enumerate(zip(self.models, self._stop_rows, strict=True)):
            if len(rows) == 0:
                self.best_models[f].load_state_dict(model.state_dict())
                continue
            logits = model(*(t[rows] for t in self.observations))
            loss = F.binary_cross_entropy_with_logits(logits, self.targets[rows]).item()
            if loss < self.best_losses[f]:
                self.best_losses[f] = loss
                self.best_models[f].load_state_dict(model.state_dict())

    @torch.no_grad()
    def _values_from(self, observations: dict) -> np.ndarray:
        tensors = as_tensors(observations, self.device)
        if len(tensors[0]) != len(self.fold_of):
            raise ValueError("The oracle scores the training set it was cross-fitted on.")
        values = np.empty(len(self.fold_of))
        for f in range(len(self.models)):
            # before the first check the best weights are the current ones
            model = self.models[f] if np.isinf(self.best_losses[f]) else self.best_models[f]
            rows = np.flatnonzero(self.fold_of == f)
            idx = torch.as_tensor(rows, device=self.device)
            values[rows] = torch.sigmoid(model(*(t[idx] for t in tensors))).cpu().numpy()
        return values

    def _state_dict(self) -> dict:
        return {"models": self.models.state_dict(), "best": self.best_models.state_dict(),
                "best_losses": torch.tensor(self.best_losses),
                "optimizer": self.optimizer.state_dict()}

    def _load_state_dict(self, state: dict) -> None:
        self.models.load_state_dict(state["models"])
        self.best_models.load_state_dict(state["best"])
        self.best_losses = state["best_losses"].tolist()
        self.optimizer.load_state_dict(state["optimizer"])

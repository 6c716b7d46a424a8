"""One predictor behind the interface of :class:`~dvrl_env.predictors.stacked.StackedPredictors`.

An env with one slot trains its predictor as a plain module with
:func:`~dvrl_env.predictors.training.fit_weighted` (or in closed form): faster than a
stack of one, and the single env's numbers exactly. Its state dict has the stacked
layout (a leading axis of 1), so a single env's state and a one-slot vector env's are
the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from torch import nn

from dvrl_env.predictors.closed_form import fit_logistic
from dvrl_env.predictors.training import fit_weighted, restore, score, snapshot


class SinglePredictor:
    """Arguments as :class:`~dvrl_env.predictors.stacked.StackedPredictors`', with one module."""

    def __init__(self, modules: list[nn.Module], *, closed_form: bool = False,
                 skip_unweighted: bool = False):
        if len(modules) != 1:
            raise ValueError(f"SinglePredictor holds one predictor, got {len(modules)}.")
        self.module = modules[0]
        self.initial = snapshot(self.module)
        self.closed_form = closed_form
        self._fit = partial(fit_weighted, skip_unweighted=skip_unweighted)

    def __len__(self) -> int:
        return 1

    def set_initial(self, modules: dict[int, nn.Module]) -> None:
        self.module.load_state_dict(modules[0].state_dict())
        self.initial = snapshot(self.module)

    def restore(self, slots: Sequence[int]) -> None:
        if len(slots):
            restore(self.module, self.initial)

    def fit(self, slots: list[int], x: torch.Tensor, y: torch.Tensor, rows: torch.Tensor,
            weights: torch.Tensor, orders: torch.Tensor, *, batch_size: int, lr: float) -> None:
        if not slots:
            return
        if self.closed_form:  # indexes the rows itself: no gather of the batch first
            fit_logistic(self.module, x, y, weights[0], orders=orders[0], rows=rows[0],
                         batch_size=batch_size, lr=lr)
        else:
            self._fit(self.module, x[rows[0]], y[rows[0]], weights[0], orders=orders[0],
                      batch_size=batch_size, lr=lr)

    def metrics(self, x: torch.Tensor, y: torch.Tensor, metric: str) -> list[float]:
        return [score(self.module, x, y, metric)]

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The predictor's logits on ``x``, ``(1, n, C)`` as a stack of one's."""
        self.module.eval()
        return self.module(x).unsqueeze(0)

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        names = list(self.module.state_dict())
        params = dict(self.module.named_parameters())

        def stacked(tensors: dict) -> dict:
            return {k: v.detach().cpu().clone().unsqueeze(0) for k, v in tensors.items()}

        current = self.module.state_dict()
        return {"params": stacked({k: current[k] for k in names if k in params}),
                "buffers": stacked({k: current[k] for k in names if k not in params}),
                "initial": stacked(dict(zip(names, self.initial, strict=True)))}

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        current = self.module.state_dict()
        saved = {**state["params"], **state["buffers"]}
        if set(saved) != set(current) or set(state["initial"]) != set(current):
            raise ValueError(f"its predictor's weights are {sorted(saved)}, "
                             f"not {sorted(current)}")
        for name, tensor in current.items():
            tensor.copy_(saved[name][0])  # a shape mismatch raises RuntimeError
        self.initial = [state["initial"][name][0].to(tensor.device).clone()
                        for name, tensor in current.items()]

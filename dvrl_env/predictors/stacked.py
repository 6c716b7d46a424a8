"""K predictors of one architecture trained together: what the batched vector env trains.

Their parameters are stacked along a leading axis of size K
(:func:`torch.func.stack_module_state`) and one :func:`torch.vmap` of
:func:`torch.func.functional_call` runs the K forward passes as one; the loss is the
sum of the K weighted mini-batch losses, so one backward pass gives every predictor its
own gradient, and one Adam over the stacked tensors makes K independent Adam steps
(Adam is elementwise). The schedule and loss are those of
:func:`~dvrl_env.predictors.fit_weighted`, so each predictor ends where a single env's
would, up to float rounding.

The logistic predictor on the CPU is the exception: it trains in closed form
(:mod:`dvrl_env.predictors.closed_form`), which is faster than any stacked autograd pass: one
predictor after the other (the single env's numbers exactly), or all K as the columns
of one matrix when they visit the same rows in the same order (sub-envs in lockstep).
Predictors that visit the same rows also share the feature gathers in the vmap path.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state

from dvrl_env.predictors.closed_form import augment, fit_logistic_arrays
from dvrl_env.predictors.training import compact_visits, make_adam, stacked_metrics


class StackedPredictors:
    """K predictors, their current and initial weights stacked along a first axis.

    Arguments: ``modules`` (K freshly built predictors of one architecture, on one
    device), ``closed_form`` (train as in :mod:`dvrl_env.predictors.closed_form`: only for
    ``torch.nn.Linear`` predictors on the CPU) and ``skip_unweighted`` (leave unselected
    points out of the passes, see :func:`~dvrl_env.predictors.fit_weighted`).
    """

    def __init__(self, modules: list[nn.Module], *, closed_form: bool = False,
                 skip_unweighted: bool = False):
        params, buffers = stack_module_state(modules)
        self.params = {k: v.detach() for k, v in params.items()}
        self.buffers = {k: v.detach() for k, v in buffers.items()}
        self.initial = {k: v.clone() for k, v in (self.params | self.buffers).items()}
        self.base = copy.deepcopy(modules[0]).to("meta")
        self.closed_form = closed_form
        self.skip_unweighted = skip_unweighted
        self._x_aug = None  # the training features with a ones column, for closed form

    def __len__(self) -> int:
        return next(iter(self.initial.values())).shape[0]

    # ---- weights ---------------------------------------------------------------------
    def set_initial(self, modules: dict[int, nn.Module]) -> None:
        """Make each ``modules[slot]``'s weights predictor ``slot``'s initial and current
        weights."""
        for slot, module in modules.items():
            tensors = dict(module.named_parameters()) | dict(module.named_buffers())
            for name, value in tensors.items():
                self.initial[name][slot].copy_(value.detach())
        self.restore(list(modules))

    @torch.no_grad()
    def restore(self, slots: Sequence[int]) -> None:
        """Put predictors ``slots`` back to their initial weights, without a host sync."""
        if not len(slots):
            return
        mask = slot_mask(len(self), slots, self.initial_device)
        for name, current in (self.params | self.buffers).items():
            keep = mask.view(-1, *([1] * (current.dim() - 1)))
            current.copy_(torch.where(keep, self.initial[name], current))

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        """Current and initial weights (CPU copies), for :meth:`load_state_dict`."""
        def copy_of(tensors):
            return {k: v.detach().cpu().clone() for k, v in tensors.items()}

        return {"params": copy_of(self.params), "buffers": copy_of(self.buffers),
                "initial": copy_of(self.initial)}

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        for key, own in (("params", self.params), ("buffers", self.buffers),
                         ("initial", self.initial)):
            saved = state[key]
            if set(saved) != set(own):
                raise ValueError(f"its predictors' {key} are {sorted(saved)}, not {sorted(own)}")
            for name, tensor in own.items():
                tensor.copy_(saved[name])  # a shape mismatch raises RuntimeError

    @property
    def initial_device(self) -> torch.device:
        return next(iter(self.initial.values())).device

    # ---- training and scoring --------------------------------------------------------
    def fit(self, slots: list[int], x: torch.Tensor, y: torch.Tensor, rows: torch.Tensor,
            weights: torch.Tensor, orders: torch.Tensor, *, batch_size: int, lr: float) -> None:
        """Train predictors ``slots`` (``A`` of them) in place, as ``fit_weighted`` would.

        ``rows`` ``(A, N)``: each one's batch, as rows of ``x`` ``(n, d)`` and ``y``;
        ``weights`` ``(A, N)`` its selection; ``orders`` ``(A, epochs, N)`` its
        mini-batch orders. The other predictors are left as they are.
        """
        if not slots:
            return
        visits = rows.gather(1, orders.reshape(len(slots), -1)).view(orders.shape)
        visit_weights = weights.gather(1, orders.reshape(len(slots), -1)).view(orders.shape)
        # sub-envs in lockstep (seeded alike) visit the same rows: gather them once
        shared = bool((visits == visits[0]).all()) if len(slots) > 1 else True
        if self.closed_form:
            self._fit_closed_form(slots, x, y, visits, visit_weights, shared, batch_size, lr)
        else:
            self._fit_autograd(slots, x, y, visits, visit_weights, shared, batch_size, lr)

    def _fit_autograd(self, slots, x, y, visits, visit_weights, shared, batch_size, lr):
        everyone = slots == list(range(len(self)))
        index = None if everyone else torch.as_tensor(slots, device=visits.device)
        params = {k: (v if everyone else v[index]).requires_grad_() for k, v in self.params.items()}
        buffers = self.buffers if everyone else {k: v[index] for k, v in self.buffers.items()}
        optimizer = make_adam(params.values(), lr)
        n, lengths = visits.shape[2], None
        if self.skip_unweighted:
            perm, lengths = compact_visits(visit_weights, batch_size, union=shared)
            visits, visit_weights = visits.gather(2, perm), visit_weights.gather(2, perm)
        if shared:
            visits = visits[:1]
        visit_labels = y[visits]
        in_dims = (0, 0, None, None, 0, None) if shared else (0, 0, 0, 0, 0, None)
        batch_losses = (self._only_loss if len(slots) == 1 else
                        torch.vmap(self._one_loss, in_dims=in_dims, randomness="different"))
        self.base.train()
        for epoch in range(visits.shape[1]):
            x_epoch = x[visits[:, epoch]]  # (A or 1, N, d): one gather per epoch
            y_epoch = visit_labels[:, epoch]
            if shared:
                x_epoch, y_epoch = x_epoch[0], y_epoch[0]
            for j, start in enumerate(range(0, n, batch_size)):
                size = min(batch_size, n - start)
                part = slice(start, start + (size if lengths is None else lengths[epoch][j]))
                losses = batch_losses(params, buffers, x_epoch[..., part, :], y_epoch[..., part],
                                      visit_weights[:, epoch, part], size)
                optimizer.zero_grad(set_to_none=True)
                losses.sum().backward()
                optimizer.step()
        self.base.eval()
        with torch.no_grad():
            for name, value in params.items():
                value.requires_grad_(False)
                if not everyone:
                    self.params[name][index] = value
            if not everyone:
                for name, value in buffers.items():
                    self.buffers[name][index] = value

    def _fit_closed_form(self, slots, x, y, visits, visit_weights, shared, batch_size, lr):
        if self._x_aug is None or self._x_aug[0] is not x:
            self._x_aug = (x, augment(x.numpy()))
        weight, bias = self.params["weight"].numpy(), self.params["bias"].numpy()
        labels, visits, visit_weights = y.numpy(), visits.numpy(), visit_weights.numpy()
        groups = [(slots, 0)] if shared else [([slot], i) for i, slot in enumerate(slots)]
        for group, first in groups:
            w, b = weight[group], bias[group]  # copies (fancy index): trained, then put back
            fit_logistic_arrays(w, b, self._x_aug[1], labels, visits[first],
                                visit_weights[first:first + len(group)],
                                batch_size=batch_size, lr=lr)
            weight[group], bias[group] = w, b

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Every predictor's logits on ``x``: ``(K, n, C)``."""
        self.base.eval()
        forward = torch.vmap(self._one_forward, in_dims=(0, 0, None), randomness="different")
        return forward(self.params, self.buffers, x)

    def metrics(self, x: torch.Tensor, y: torch.Tensor, metric: str) -> list[float]:
        return stacked_metrics(self.logits(x), y, metric)

    # ---- one predictor, vmapped over K -------------------------------------------------
    def _one_forward(self, params, buffers, x):
        return functional_call(self.base, (params, buffers), (x,), tie_weights=False)

    def _only_loss(self, params, buffers, x, y, w, size):
        """One predictor (of a stack of 1): a vmap would only cost, about 2x."""
        first = {k: v[0] for k, v in params.items()}
        return self._one_loss(first, {k: v[0] for k, v in buffers.items()}, x, y, w[0], size)

    def _one_loss(self, params, buffers, x, y, w, size):
        losses = F.cross_entropy(self._one_forward(params, buffers, x), y, reduction="none")
        return (losses * w).sum() / size


def slot_mask(k: int, slots, device: torch.device) -> torch.Tensor:
    mask = torch.zeros(k, dtype=torch.bool)
    mask[list(slots)] = True
    return mask.to(device)

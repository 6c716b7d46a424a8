"""K predictors of one architecture trained together: what the batched vector env trains.

Their parameters are stacked along a leading axis of size K
(:func:`torch.func.stack_module_state`), and one Adam over the stacked tensors makes K
independent Adam steps (Adam is elementwise). The schedule and loss are those of
:func:`~dvrl_env.predictors.fit_weighted`, so each predictor ends where a single env's
would, up to float rounding. How the K passes run depends on the module:

* a ``torch.nn.Linear``, or a ``torch.nn.Sequential`` of those and elementwise layers
  (:func:`layer_plan`): explicit forward and backward passes, one batched matrix product
  per layer and direction, no autograd graph; with a batch of one mini-batch,
  predictors that selected about as many points train together, so that few padded
  visits are computed;
* any other module: one :func:`torch.vmap` of :func:`torch.func.functional_call` over
  the sum of the K losses, whose one backward pass gives every predictor its gradient;
  predictors that visit the same rows share the feature gathers;
* the logistic predictor on the CPU: closed form
  (:mod:`dvrl_env.predictors.closed_form`), all K in one compiled call, each on its own
  rows and order (the single env's numbers exactly).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state

from dvrl_env.predictors.closed_form import train_logistic
from dvrl_env.predictors.training import compact_visits, make_adam, minibatches, stacked_metrics


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
        self.layers = layer_plan(modules[0])
        self.skip_unweighted = skip_unweighted

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
        if self.closed_form:
            self._fit_closed_form(slots, x, y, rows, weights, orders, batch_size, lr)
            return
        visits = rows.gather(1, orders.reshape(len(slots), -1)).view(orders.shape)
        visit_weights = weights.gather(1, orders.reshape(len(slots), -1)).view(orders.shape)
        # sub-envs in lockstep (seeded alike) visit the same rows: gather them once
        shared = bool((visits == visits[0]).all()) if len(slots) > 1 else True
        if self.layers is None:
            self._fit_autograd(slots, x, y, visits, visit_weights, shared, batch_size, lr)
            return
        for group in self._groups_by_selection(visit_weights, shared, batch_size):
            self._fit_layered([slots[i] for i in group], x, y, visits[group],
                              visit_weights[group], shared, batch_size, lr)

    def _groups_by_selection(self, visit_weights, shared, batch_size) -> list[list[int]]:
        """Predictors that train together, as positions in ``visit_weights``.

        A mini-batch's products run on as many visits as its predictor with the most
        selected ones, so with a batch of one mini-batch per epoch (each predictor then
        sees its whole selection every epoch) predictors are grouped by how many points
        they selected, :data:`GROUP_SLOTS` to a group: with random half selections at
        B = 64 and K = 256, the padded visits computed fall from 35% over the selected
        ones to 4%. Otherwise (several mini-batches, or predictors that visit the same
        rows, or no skipping) all train together."""
        a, _, n = visit_weights.shape
        if shared or not self.skip_unweighted or n > batch_size or a <= GROUP_SLOTS:
            return [list(range(a))]
        counts = (visit_weights[:, 0] != 0).sum(dim=1)
        ranked = torch.argsort(counts, stable=True).tolist()
        return [ranked[i:i + GROUP_SLOTS] for i in range(0, a, GROUP_SLOTS)]

    def _compacted(self, visits, visit_weights, shared, batch_size):
        """The visits and their weights with each mini-batch's weighted visits first, and
        how many lead per epoch and mini-batch (None: no skipping; see
        :func:`compact_visits`); the visits of one predictor only when ``shared``."""
        lengths = None
        if self.skip_unweighted:
            perm, lengths = compact_visits(visit_weights, batch_size, union=shared)
            visits, visit_weights = visits.gather(2, perm), visit_weights.gather(2, perm)
        return (visits[:1] if shared else visits), visit_weights, lengths

    def _fit_autograd(self, slots, x, y, visits, visit_weights, shared, batch_size, lr):
        everyone = slots == list(range(len(self)))
        index = None if everyone else torch.as_tensor(slots, device=visits.device)
        params = {k: (v if everyone else v[index]).requires_grad_() for k, v in self.params.items()}
        buffers = self.buffers if everyone else {k: v[index] for k, v in self.buffers.items()}
        optimizer = make_adam(params.values(), lr)
        n = visits.shape[2]
        visits, visit_weights, lengths = self._compacted(visits, visit_weights, shared, batch_size)
        visit_labels = y[visits]
        in_dims = (0, 0, None, None, 0, None) if shared else (0, 0, 0, 0, 0, None)
        if len(slots) == 1:
            batch_losses = self._only_loss
        else:
            batch_losses = torch.vmap(self._one_loss, in_dims=in_dims, randomness="different")
        self.base.train()
        for epoch in range(visits.shape[1]):
            x_epoch = x[visits[:, epoch]]  # (A or 1, N, d): one gather per epoch
            y_epoch = visit_labels[:, epoch]
            if shared:
                x_epoch, y_epoch = x_epoch[0], y_epoch[0]
            for part, size in minibatches(n, batch_size,
                                          None if lengths is None else lengths[epoch]):
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

    @torch.no_grad()
    def _fit_layered(self, slots, x, y, visits, visit_weights, shared, batch_size, lr):
        """``_fit_autograd`` for a layer plan, without autograd: each mini-batch is one
        forward and one backward pass of batched matrix products, whose weight gradients
        land in the buffers Adam reads (contiguous, so nothing is copied or reallocated
        per step), and only the mini-batch's weighted visits are gathered."""
        everyone = slots == list(range(len(self)))
        index = None if everyone else torch.as_tensor(slots, device=visits.device)
        params = self.params if everyone else {k: v[index] for k, v in self.params.items()}
        for value in params.values():
            value.grad = torch.empty_like(value)
        optimizer = make_adam(params.values(), lr)
        n = visits.shape[2]
        visits, visit_weights, lengths = self._compacted(visits, visit_weights, shared, batch_size)
        try:
            for epoch in range(visits.shape[1]):
                for part, size in minibatches(n, batch_size,
                                              None if lengths is None else lengths[epoch]):
                    rows = visits[:, epoch, part].reshape(-1)  # (A or 1) * L
                    shape = (visits.shape[0], part.stop - part.start)
                    # index_select: several times faster than x[rows] with 2-D rows
                    self._layered_gradients(params, x.index_select(0, rows).view(*shape, -1),
                                            y.index_select(0, rows).view(shape),
                                            visit_weights[:, epoch, part] / size)
                    optimizer.step()
        finally:
            for value in params.values():
                value.grad = None
        if not everyone:
            for name, value in params.items():
                self.params[name][index] = value

    def _layered_gradients(self, params, x, y, w):
        """Set each ``params[...].grad`` to the gradient of the A predictors' losses
        ``sum_i w_i * cross_entropy(f(x_i), y_i)``: ``x`` ``(A or 1, L, d)``, ``y``
        ``(A or 1, L)``, ``w`` ``(A, L)``."""
        inputs: list[torch.Tensor] = []
        logits = self._layered_forward(params, x, inputs)
        a, length, _ = logits.shape
        # d loss / d logits = w * (softmax - onehot), rounded as autograd rounds it
        w = w.unsqueeze(2)
        grad = torch.log_softmax(logits, dim=2).exp_().mul_(w)
        grad.scatter_add_(2, y.expand(a, length).unsqueeze(2), -w)
        first = next(i for i, step in enumerate(self.layers) if isinstance(step, str))
        for i in range(len(self.layers) - 1, first - 1, -1):
            step, inp = self.layers[i], inputs[i]
            if isinstance(step, str):
                weight = params[f"{step}weight"]
                torch.bmm(grad.mT, inp.expand(a, *inp.shape[1:]), out=weight.grad)
                if f"{step}bias" in params:
                    torch.sum(grad, dim=1, out=params[f"{step}bias"].grad)
                if i > first:
                    grad = torch.bmm(grad, weight)
            else:
                grad = elementwise_backward(step, inp, grad)

    def _fit_closed_form(self, slots, x, y, rows, weights, orders, batch_size, lr):
        weight, bias = self.params["weight"].numpy(), self.params["bias"].numpy()
        params = np.concatenate([weight[slots], bias[slots][:, :, None]], axis=2)
        train_logistic(params, x.numpy(), y.numpy(), rows.numpy(), weights.numpy(),
                       orders.numpy(), batch_size=batch_size, lr=lr)
        weight[slots], bias[slots] = params[:, :, :-1], params[:, :, -1]

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Every predictor's logits on ``x``: ``(K, n, C)``."""
        self.base.eval()
        if self.layers is not None:
            return self._layered_forward(self.params, x)
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

    # ---- a stack of linear layers, as batched matrix products ----------------------------
    def _layered_forward(self, params, x, inputs: list | None = None):
        """The A predictors' logits ``(A, n, C)`` on ``x`` (``(A, n, d)``, or ``(1, n, d)``
        or ``(n, d)`` shared), one batched matrix product per layer: several times faster
        than a vmap of the module on small mini-batches, where per-call costs dominate.
        ``inputs`` (for the backward pass) gets each layer's input."""
        h = x
        for step in self.layers:
            if inputs is not None:
                inputs.append(h)
            if isinstance(step, str):
                weight = params[f"{step}weight"].mT
                bias = params.get(f"{step}bias")
                h = h @ weight if bias is None else torch.baddbmm(
                    bias.unsqueeze(1), h.expand(len(weight), *h.shape[-2:]), weight)
            else:  # an in-place activation would overwrite the input kept or given
                h = step(h.clone() if getattr(step, "inplace", False) else h)
        return h


#: predictors per group when they are grouped by selection size (``_groups_by_selection``):
#: smaller groups pad less but pay the per-call costs more often
GROUP_SLOTS = 32

#: layers that act on each number alone, the same in train and eval mode
ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Identity)


def layer_plan(module: nn.Module) -> list | None:
    """How to run K copies of ``module`` as batched matrix products: a list of parameter
    prefixes (a linear layer) and elementwise layers, in order; None when ``module`` is
    not a ``torch.nn.Linear`` or a ``torch.nn.Sequential`` of those two kinds (it then
    runs through ``torch.vmap``). Exact types: a subclass may compute something else."""
    if type(module) is nn.Linear:
        return [""]
    if type(module) is not nn.Sequential:
        return None
    plan: list = []
    for name, layer in module.named_children():
        if type(layer) is nn.Linear:
            plan.append(f"{name}.")
        elif type(layer) in ELEMENTWISE:
            plan.append(layer)
        else:
            return None
    return plan


def elementwise_backward(layer: nn.Module, inp: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """The gradient with respect to ``inp`` of an elementwise ``layer``, given ``grad``
    with respect to ``layer(inp)``; ReLU's with the kernel autograd uses for it (a mask
    and ``masked_fill_`` cost 10x more), any other's through autograd."""
    if type(layer) is nn.ReLU:
        return torch.ops.aten.threshold_backward(grad, inp, 0)
    with torch.enable_grad():
        inp = inp.detach().requires_grad_()
        out = layer(inp.clone() if getattr(layer, "inplace", False) else inp)
        return torch.autograd.grad(out, inp, grad)[0]


def slot_mask(k: int, slots, device: torch.device) -> torch.Tensor:
    mask = torch.zeros(k, dtype=torch.bool)
    mask[list(slots)] = True
    return mask.to(device)

"""Training and scoring a predictor: the official DVRL inner loop (``epochs`` passes over
the batch in shuffled mini-batches, cross-entropy weighted by the selection vector) and
the validation metrics. Nothing here knows about the environment.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from numba import njit
from torch import nn

METRICS = ("accuracy", "auc", "neg_log_loss")


def snapshot(model: nn.Module) -> list[torch.Tensor]:
    """A detached copy of every parameter and buffer, for :func:`restore`."""
    return [t.detach().clone() for t in model.state_dict().values()]


def restore(model: nn.Module, weights: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for tensor, saved in zip(model.state_dict().values(), weights, strict=True):
            tensor.copy_(saved)


def epoch_permutations(
    n: int, epochs: int, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """One random order of ``range(n)`` per epoch, shape ``(epochs, n)``, in one call.

    ``torch.rand(epochs, n, generator).argsort(dim=1)``, computed by :func:`argsort_rows`.
    """
    return argsort_rows(torch.rand(epochs, n, generator=generator, device=device))


def stacked_epoch_permutations(
    n: int, epochs: int, generators: list[torch.Generator], device: torch.device
) -> torch.Tensor:
    """:func:`epoch_permutations` for each generator, in order, shape ``(K, epochs, n)``.

    Each generator is consumed exactly as by :func:`epoch_permutations`; the K sorts run
    as one, and only once when every generator drew the same numbers (copies in lockstep).
    """
    draws = [torch.rand(epochs, n, generator=g, device=device) for g in generators]
    if all(torch.equal(draws[0], d) for d in draws[1:]):
        return argsort_rows(draws[0]).unsqueeze(0).expand(len(draws), epochs, n)
    return argsort_rows(torch.stack(draws))


def argsort_rows(r: torch.Tensor) -> torch.Tensor:
    """``r.argsort(dim=-1)`` bit for bit, about 5x faster on the CPU for ``torch.rand`` draws.

    CPU ``torch.rand`` floats are multiples of 2**-24, so each value and its column make
    one int64 key and a plain integer sort orders a row. Rows with a tied value (where
    torch's unstable sort picks its own order) are sorted by torch itself; so is any
    input that is not on that grid, or not on the CPU.
    """
    n = r.shape[-1]
    if r.device.type != "cpu" or r.dtype != torch.float32 or r.numel() == 0 or n >= 2**30:
        return r.argsort(dim=-1)
    rows = r.reshape(-1, n)
    bits = max(1, (n - 1).bit_length()) + 1  # a spare bit: ties leave gaps < 2**(bits - 1)
    keys = _sort_keys(rows.numpy(), bits)
    if keys.shape != rows.shape:  # not torch.rand's grid: no shortcut
        return r.argsort(dim=-1)
    keys.sort(axis=1)
    tied = np.flatnonzero(_columns_of_sorted_keys(keys, bits))
    out = torch.from_numpy(keys)
    if len(tied):
        tied_rows = torch.from_numpy(tied)
        out[tied_rows] = rows[tied_rows].argsort(dim=1)
    return out.reshape(r.shape)


@njit(cache=True)
def _sort_keys(rows, bits):
    """``value * 2**24 << bits | column`` per entry; an empty array if a value is off the
    2**-24 grid or outside [0, 1] (where the shifted key could overflow)."""
    count, n = rows.shape
    keys = np.empty((count, n), dtype=np.int64)
    for i in range(count):
        for j in range(n):
            scaled = rows[i, j] * np.float32(16777216.0)
            key = np.int64(scaled)
            if key != scaled or key < 0 or key > 16777216:
                return np.empty((0, 0), dtype=np.int64)
            keys[i, j] = (key << bits) | j
    return keys


@njit(cache=True)
def _columns_of_sorted_keys(keys, bits):
    """Keep each sorted key's column, in place; return which rows hold a tied value."""
    count, n = keys.shape
    tied = np.zeros(count, dtype=np.bool_)
    gap = np.int64(1) << (bits - 1)
    mask = (np.int64(1) << bits) - 1
    for i in range(count):
        for j in range(1, n):
            if keys[i, j] - keys[i, j - 1] < gap:
                tied[i] = True
                break
        for j in range(n):
            keys[i, j] &= mask
    return tied


def make_adam(params, lr: float, *, weight_decay: float | None = None) -> torch.optim.Optimizer:
    """Adam (AdamW when given a ``weight_decay``), fused where this torch supports it:
    5-8x less optimiser overhead on CPU than the per-tensor loop, 2-3x less than
    ``foreach``. The predictors and the agents' networks all step through it."""
    params = list(params)
    kind, extra = ((torch.optim.Adam, {}) if weight_decay is None else
                   (torch.optim.AdamW, {"weight_decay": weight_decay}))
    try:
        return kind(params, lr=lr, fused=True, **extra)
    except (RuntimeError, TypeError, ValueError):  # torch < 2.4 on the CPU
        return kind(params, lr=lr, **extra)


def fit_weighted(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    weights: torch.Tensor,
    *,
    orders: torch.Tensor,
    batch_size: int,
    lr: float,
    skip_unweighted: bool = False,
) -> None:
    """Train in place with Adam on cross-entropy weighted per sample.

    ``orders`` holds one permutation of ``range(len(x))`` per epoch (see
    :func:`epoch_permutations`). As Keras' ``fit(sample_weight=s)`` in the official
    code, a mini-batch's loss is ``sum(s_i * l_i) / len(mini-batch)``: points with
    ``s_i = 0`` take no part while the mini-batch schedule stays that of the batch.
    ``skip_unweighted=True`` leaves those points out of the forward and backward passes
    too (:func:`compact_visits`), which gives the same gradients, up to float rounding,
    for any model whose per-sample losses do not depend on each other (not BatchNorm).
    """
    optimizer = make_adam(model.parameters(), lr)
    n, lengths = len(x), None
    if skip_unweighted:
        perm, lengths = compact_visits(weights[orders].unsqueeze(0), batch_size)
        orders = orders.gather(1, perm[0])
    model.train()
    for epoch, order in enumerate(orders):
        x_epoch, y_epoch, w_epoch = x[order], y[order], weights[order]  # one gather per epoch
        for part, size in minibatches(n, batch_size, None if lengths is None else lengths[epoch]):
            losses = F.cross_entropy(model(x_epoch[part]), y_epoch[part], reduction="none")
            loss = (losses * w_epoch[part]).sum() / size
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    model.eval()


def minibatches(n: int, batch_size: int, lengths: list[int] | None = None):
    """An epoch's mini-batches over ``n`` visits: ``(part, size)`` per mini-batch, where
    ``size`` is its length in the schedule (the loss's divisor) and ``part`` the slice of
    visits to compute, its first ``lengths[j]`` when given (see :func:`compact_visits`)."""
    for j, start in enumerate(range(0, n, batch_size)):
        size = min(batch_size, n - start)
        yield slice(start, start + (size if lengths is None else lengths[j])), size


def compact_visits(visit_weights: torch.Tensor, batch_size: int,
                   union: bool = False) -> tuple[torch.Tensor, list[list[int]]]:
    """Move each mini-batch's weighted visits to its front, keeping their order.

    ``visit_weights`` ``(A, epochs, N)``: A predictors' weights of the N visits of each
    epoch, which mini-batches of ``batch_size`` split. Returns ``perm`` (gather the last
    axis of the visits and their weights with it) and, per epoch and mini-batch, how many
    leading visits hold every predictor's weighted ones (at least 1): the rest weigh 0
    for everyone. ``union=True`` puts first the visits any predictor weights, the same
    for all A (for predictors that visit the same rows). No loop, no host sync but the
    lengths.
    """
    a, epochs, n = visit_weights.shape
    device = visit_weights.device
    kept = visit_weights != 0
    if union:
        kept = kept.any(dim=0, keepdim=True).expand(a, epochs, n)
    kept_int = kept.to(torch.int64)
    position = torch.arange(n, device=device)
    starts = torch.arange(0, n, batch_size, device=device)
    batch = position // batch_size
    count = torch.nn.functional.pad(kept_int.cumsum(-1), (1, 0))  # kept visits before i
    # index_select: advanced indexing of a last axis is far slower on the CPU
    before = count.index_select(-1, starts)  # (A, epochs, batches): kept before each
    in_batch = count.index_select(-1, (starts + batch_size).clamp(max=n)) - before
    rank_kept = count[..., :-1] - before.index_select(-1, batch)  # kept before i in batch
    rank_other = position - starts[batch] - rank_kept
    target = starts[batch] + torch.where(kept, rank_kept,
                                         in_batch.index_select(-1, batch) + rank_other)
    perm = torch.empty_like(target).scatter_(-1, target, position.expand_as(target))
    return perm, in_batch.amax(dim=0).clamp(min=1).tolist()


def metric_from_logits(logits: torch.Tensor, y: torch.Tensor, metric: str) -> float:
    """Validation performance, higher is better: accuracy, ROC AUC or -log loss."""
    if metric == "accuracy":
        return float((logits.argmax(dim=1) == y).float().mean())
    if metric == "neg_log_loss":
        return -float(F.cross_entropy(logits, y))
    if metric == "auc":
        if logits.shape[1] != 2:
            raise ValueError("metric='auc' needs two classes; use 'accuracy' or 'neg_log_loss'.")
        return binary_auc(torch.softmax(logits, dim=1)[:, 1], y)
    raise ValueError(f"Unknown metric {metric!r}; choose one of {list(METRICS)}.")


def binary_auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """ROC AUC with ties counted half (Mann-Whitney U), without leaving torch: the weighted
    statistic with every weight 1 (the same sums, so the same floats)."""
    return weighted_binary_auc(scores, labels, torch.ones_like(scores, dtype=torch.float64))


@torch.no_grad()
def score(model: nn.Module, x: torch.Tensor, y: torch.Tensor, metric: str) -> float:
    model.eval()
    return metric_from_logits(model(x), y, metric)


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    out = np.zeros((len(labels), num_classes), dtype=np.float32)
    out[np.arange(len(labels)), labels] = 1.0
    return out


def weighted_metrics(logits: torch.Tensor, y: torch.Tensor, weights: torch.Tensor,
                     metric: str) -> list[float]:
    """:func:`stacked_metrics` with a weight per row and predictor: ``weights`` is
    ``(K, n)``, each predictor scored on its own weighted rows (rows of weight 0 left out).
    AUC is the weighted Mann-Whitney statistic (ties counted half)."""
    weights = weights.to(logits.dtype)
    total = weights.sum(dim=1)
    if metric == "accuracy":
        correct = (logits.argmax(dim=2) == y).to(logits.dtype)
        return ((correct * weights).sum(dim=1) / total).tolist()
    if metric == "neg_log_loss":
        k, n, c = logits.shape
        losses = F.cross_entropy(logits.reshape(k * n, c), y.repeat(k), reduction="none")
        return (-(losses.view(k, n) * weights).sum(dim=1) / total).tolist()
    if metric == "auc":
        if logits.shape[2] != 2:
            raise ValueError("metric='auc' needs two classes; use 'accuracy' or 'neg_log_loss'.")
        return [weighted_binary_auc(one[:, 1] - one[:, 0], y, w)
                for one, w in zip(logits, weights, strict=True)]
    raise ValueError(f"Unknown metric {metric!r}; choose one of {list(METRICS)}.")


def weighted_binary_auc(scores: torch.Tensor, labels: torch.Tensor,
                        weights: torch.Tensor) -> float:
    """ROC AUC where each pair (positive i, negative j) counts ``w_i w_j``, ties half."""
    scores, weights = scores.double(), weights.double()
    pos, neg = labels == 1, labels == 0
    w_pos, w_neg = weights[pos], weights[neg]
    if w_pos.sum() == 0 or w_neg.sum() == 0:
        return 0.5
    order = torch.argsort(scores[neg])
    sorted_neg, cum = scores[neg][order], torch.cumsum(w_neg[order], 0)
    cum = torch.cat([cum.new_zeros(1), cum])
    below = cum[torch.searchsorted(sorted_neg, scores[pos], right=False)]
    at_or_below = cum[torch.searchsorted(sorted_neg, scores[pos], right=True)]
    u = (w_pos * (below + 0.5 * (at_or_below - below))).sum()
    return float(u / (w_pos.sum() * w_neg.sum()))


def stacked_metrics(logits: torch.Tensor, y: torch.Tensor, metric: str) -> list[float]:
    """:func:`metric_from_logits` of K predictors at once: ``logits`` is ``(K, n, C)``.

    Accuracy and log loss come back in one host copy; AUC is computed per predictor.
    """
    if metric == "accuracy":
        return (logits.argmax(dim=2) == y).float().mean(dim=1).tolist()
    if metric == "neg_log_loss":
        k, n, c = logits.shape
        losses = F.cross_entropy(logits.reshape(k * n, c), y.repeat(k), reduction="none")
        return (-losses.view(k, n).mean(dim=1)).tolist()
    return [metric_from_logits(one, y, metric) for one in logits]

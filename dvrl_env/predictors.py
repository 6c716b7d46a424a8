"""Predictors: the models trained on a selected subset, in plain torch.

The environment builds one with :func:`build_predictor`, trains it with
:func:`fit_weighted` (the official DVRL inner loop: ``epochs`` passes over the batch in
shuffled mini-batches, cross-entropy weighted by the selection vector) and scores it
with :func:`score`. Nothing here knows about the environment.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PredictorFactory = Callable[[int, int], nn.Module]

METRICS = ("accuracy", "auc", "neg_log_loss")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when it is available, else the CPU."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r} was asked for but CUDA is not available; "
                         "use device='auto' or 'cpu'.")
    return device


def mlp(num_features: int, num_classes: int, hidden: int = 100) -> nn.Module:
    """Two ReLU layers of ``hidden`` units: the official DVRL image-example predictor."""
    return nn.Sequential(
        nn.Linear(num_features, hidden), nn.ReLU(),
        nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )


def logistic(num_features: int, num_classes: int) -> nn.Module:
    """Multinomial logistic regression: one linear layer on the features."""
    return nn.Linear(num_features, num_classes)


PREDICTORS: dict[str, PredictorFactory] = {"mlp": mlp, "logistic": logistic}


def resolve_predictor(spec: str | Callable[..., nn.Module]) -> PredictorFactory:
    """A name from :data:`PREDICTORS`, or a callable returning a fresh ``nn.Module``.

    A callable is called with ``(num_features, num_classes)`` when it takes two
    arguments, with none otherwise.
    """
    if isinstance(spec, str):
        if spec not in PREDICTORS:
            raise ValueError(f"Unknown predictor {spec!r}; choose one of {list(PREDICTORS)} "
                             "or pass a callable returning a fresh torch.nn.Module.")
        return PREDICTORS[spec]
    if not callable(spec):
        raise TypeError(f"predictor must be a name or a callable, got {type(spec).__name__}.")
    try:
        n_params = len(inspect.signature(spec).parameters)
    except (TypeError, ValueError):
        n_params = 2
    return _IgnoreShapes(spec) if n_params == 0 else spec


class _IgnoreShapes:
    """Adapts a zero-argument factory; a class rather than a lambda so envs pickle."""

    def __init__(self, factory: Callable[[], nn.Module]):
        self.factory = factory

    def __call__(self, num_features: int, num_classes: int) -> nn.Module:
        return self.factory()


def build_predictor(
    factory: PredictorFactory, num_features: int, num_classes: int, seed: int,
    device: torch.device,
) -> nn.Module:
    """Build a predictor whose initial weights depend on ``seed`` only.

    Module constructors draw from the global torch RNG; it is forked and restored
    around the call, so the caller's global random state is left untouched.
    """
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)  # CPU only: fork_rng restores it
        model = factory(num_features, num_classes)
    if not isinstance(model, nn.Module):
        raise TypeError(f"The predictor factory returned {type(model).__name__}, "
                        "not a torch.nn.Module.")
    model = model.to(device)
    with torch.no_grad():
        out = model(torch.zeros(2, num_features, device=device))
    if out.shape != (2, num_classes):
        raise ValueError(f"The predictor maps (2, {num_features}) inputs to {tuple(out.shape)}; "
                         f"it must output (batch, {num_classes}) logits.")
    return model


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
    """One random order of ``range(n)`` per epoch, shape ``(epochs, n)``, in one call."""
    return torch.rand(epochs, n, generator=generator, device=device).argsort(dim=1)


def make_adam(params, lr: float) -> torch.optim.Optimizer:
    """Adam, fused where this torch supports it (5-8x less optimiser overhead on CPU)."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr)


def fit_weighted(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    weights: torch.Tensor,
    *,
    orders: torch.Tensor,
    batch_size: int,
    lr: float,
) -> None:
    """Train in place with Adam on cross-entropy weighted per sample.

    ``orders`` holds one permutation of ``range(len(x))`` per epoch (see
    :func:`epoch_permutations`). As Keras' ``fit(sample_weight=s)`` in the official
    code, a mini-batch's loss is ``sum(s_i * l_i) / len(mini-batch)``: points with
    ``s_i = 0`` take no part while the mini-batch schedule stays that of the batch.
    """
    optimizer = make_adam(model.parameters(), lr)
    model.train()
    for order in orders:
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            losses = F.cross_entropy(model(x[idx]), y[idx], reduction="none")
            loss = (losses * weights[idx]).sum() / len(idx)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    model.eval()


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
    """ROC AUC with ties counted half (Mann-Whitney U), without leaving torch."""
    scores = scores.double()
    pos, neg = scores[labels == 1], scores[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        return 0.5
    sorted_neg = torch.sort(neg).values
    below = torch.searchsorted(sorted_neg, pos, right=False)
    at_or_below = torch.searchsorted(sorted_neg, pos, right=True)
    u = (below.double() + 0.5 * (at_or_below - below).double()).sum()
    return float(u / (len(pos) * len(neg)))


@torch.no_grad()
def score(model: nn.Module, x: torch.Tensor, y: torch.Tensor, metric: str) -> float:
    model.eval()
    return metric_from_logits(model(x), y, metric)


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    out = np.zeros((len(labels), num_classes), dtype=np.float32)
    out[np.arange(len(labels)), labels] = 1.0
    return out

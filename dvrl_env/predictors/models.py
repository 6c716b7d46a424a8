"""Predictors: the models trained on a selected subset, in plain torch.

The environment builds one with :func:`build_predictor` and trains it with
:mod:`dvrl_env.predictors.training`. Nothing here knows about the environment.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from dvrl_env.plugins import load_plugins

PredictorFactory = Callable[[int, int], nn.Module]

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


@dataclass(frozen=True)
class PredictorSpec:
    """A predictor factory and what the env may assume about the models it builds.

    * ``skips_unweighted``: each point's loss depends on that point alone (no
      BatchNorm), so points with selection weight 0 may be left out of the forward and
      backward passes: the same gradients, less work.
    * ``linear``: the model is one ``torch.nn.Linear`` (with a bias) on the features,
      which trains in closed form on the CPU (:mod:`dvrl_env.predictors.closed_form`);
      checked on every model built (:func:`is_plain_linear`).

    A callable passed as ``predictor=`` claims neither.
    """

    factory: PredictorFactory
    name: str | None = None
    skips_unweighted: bool = False
    linear: bool = False

    def build(self, num_features: int, num_classes: int, seed: int,
              device: torch.device) -> nn.Module:
        """The factory's model, refused before any training when it is not what
        ``linear=True`` claims (the closed form reads its ``weight`` and ``bias``)."""
        model = build_predictor(self.factory, num_features, num_classes, seed, device)
        if self.linear and not is_plain_linear(model):
            what = type(model).__name__ + (" without a bias" if type(model) is nn.Linear else "")
            raise ValueError(
                f"Predictor {self.name or self.factory!r} is registered with linear=True, but "
                f"its factory built a {what}; linear=True needs one torch.nn.Linear with a "
                "bias (it trains in closed form). Return nn.Linear(num_features, num_classes) "
                "or register it without linear=True.")
        return model


def is_plain_linear(model: nn.Module) -> bool:
    """One ``torch.nn.Linear`` with a bias, of that exact type (a subclass may compute
    something else): what the closed form trains."""
    return type(model) is nn.Linear and model.bias is not None


PREDICTORS: dict[str, PredictorSpec] = {}


def register_predictor(name: str, factory: PredictorFactory, *, skips_unweighted: bool = False,
                       linear: bool = False) -> PredictorSpec:
    """Make ``predictor=name`` build models with ``factory(num_features, num_classes)``."""
    if name in PREDICTORS:
        raise ValueError(f"A predictor named {name!r} is already registered.")
    PREDICTORS[name] = PredictorSpec(factory, name, skips_unweighted, linear)
    return PREDICTORS[name]


register_predictor("mlp", mlp, skips_unweighted=True)
register_predictor("logistic", logistic, skips_unweighted=True, linear=True)


def resolve_predictor(spec: str | PredictorSpec | Callable[..., nn.Module]) -> PredictorSpec:
    """A registered name (:data:`PREDICTORS`), a :class:`PredictorSpec`, or a callable
    returning a fresh ``nn.Module``.

    A callable is called with ``(num_features, num_classes)`` when it takes two
    arguments, with none otherwise.
    """
    if isinstance(spec, PredictorSpec):
        return spec
    if isinstance(spec, str):
        if spec not in PREDICTORS:  # not yet known: the installed plugins may add it
            load_plugins()
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
    return PredictorSpec(_IgnoreShapes(spec) if n_params == 0 else spec)


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

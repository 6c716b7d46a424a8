"""The models an env trains on a selected subset: what they are (:mod:`.models`), how they
train and score (:mod:`.training`), the logistic predictor's closed-form steps
(:mod:`.closed_form`) and K predictors trained as one computation (:mod:`.stacked`)."""

from dvrl_env.predictors.models import (
    PREDICTORS,
    PredictorFactory,
    PredictorSpec,
    build_predictor,
    logistic,
    mlp,
    register_predictor,
    resolve_predictor,
)
from dvrl_env.predictors.training import (
    METRICS,
    epoch_permutations,
    fit_weighted,
    one_hot,
    restore,
    score,
    snapshot,
    stacked_epoch_permutations,
    weighted_metrics,
)

__all__ = [
    "METRICS",
    "PREDICTORS",
    "PredictorFactory",
    "PredictorSpec",
    "build_predictor",
    "epoch_permutations",
    "fit_weighted",
    "logistic",
    "mlp",
    "one_hot",
    "register_predictor",
    "resolve_predictor",
    "restore",
    "score",
    "snapshot",
    "stacked_epoch_permutations",
    "weighted_metrics",
]

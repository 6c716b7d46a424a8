"""Per-point credit from the reward alone, accumulated over every round and smoothed over
features with cross-fitting.

Each round (one *update*) steps K lockstep copies of the env on one batch of B points
with K random selections ``s_k`` (each point kept with probability p) and takes the
leave-one-out advantages ``A_k = r_k - mean_{j != k} r_j``. Point i is credited with

    credit_i = mean over the rounds it was in and k of  A_k (s_ki - p) / (p (1 - p)),

an estimate of ``E[A | s_i = 1] - E[A | s_i = 0]``: how much including i moves the
validation metric. Unlike REINFORCE, which takes one noisy gradient step per fit and
forgets it, nothing is thrown away: every fit adds to the credit of the B points it saw.
The batch size decides how loud each point is: one point moves a predictor trained on
100 points far more than one trained on 1,000 (``benchmarks/reward_credit.py``).

The raw credit is noisy, so values come from a smoother: a ridge regression of the
credit on each point's features ``[x, onehot y, x (outer) onehot y]`` (and the marginal
information when the env gives it), weighted by how often each point was seen and
*cross-fitted*: the points are cut into ``folds`` parts and each part's values come from
a regression fitted on the other parts, so no point's value comes from a fit to its own
noisy credit. ``smoother="none"`` gives the raw credit.

Relation to the literature: with p = 1/2 and every subset equally likely, the credit is
the *maximum-sample-reuse* estimate of the Data Banzhaf value (Wang and Jia, 2023): the
mean utility of subsets containing i minus that of subsets without it, where every
sampled subset informs every point in it; here the subsets are drawn within batches and
the utility is the env's reward, with K lockstep copies sharing the predictor's
randomness (common random numbers). Regressing the utility on the selection vector is
a *linear datamodel* (Ilyas et al., 2022), whose coefficients are, for independent
p = 1/2 selections, the same credit; smoothing it over features is what lets the
estimate reach points through their neighbours, as a DVE would.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold

from agents.base import given_label_marginal
from agents.result import ValuationResult
from agents.utility import UtilityAgent, UtilityConfig

SMOOTHERS = ("ridge", "none")
RIDGE_ALPHAS = np.logspace(-1, 4, 12)


@dataclasses.dataclass
class CreditConfig(UtilityConfig):
    selection_probability: float = 0.5
    smoother: str = "ridge"
    folds: int = 5
    marginal_weight: float = 0.1


class CreditAgent(UtilityAgent):
    """Data values from per-point reward credit, smoothed with cross-fitting.

    The utility is the env's reward on copies of the env that share its data, with this
    agent's batch size and predictor where they are set (None keeps the env's): by
    default B = 100 and a logistic predictor trained with learning rate 0.05, the choice
    measured best (``benchmarks/results/credit_choices/`` and ``reward_only_*.md``:
    with the env's default 1e-3, 100 Adam steps barely move a logistic model and the
    rewards say little).

    Options: ``num_samples`` (K lockstep copies per round, 8), ``batch_size`` (100, or
    n_train when there are fewer points),
    ``predictor`` (``"logistic"``), ``predictor_lr`` (0.05), ``selection_probability``
    (p, 0.5), ``smoother`` (``"ridge"`` or ``"none"``), ``folds`` (5),
    ``marginal_weight`` (0.1: with marginal information in the env, the credit's weight
    next to it, see :meth:`_mixed_with_marginal`), ``log_every``, ``log_dir``. One update
    is one round: K predictor fits.
    """

    name = "credit"
    config_class = CreditConfig

    def __init__(self, env, *, seed: int = 0, **config):
        super().__init__(env, seed=seed, **config)
        c = self.config
        if not 0.0 < c.selection_probability < 1.0:
            raise ValueError(f"selection_probability must lie in (0, 1), got "
                             f"{c.selection_probability}.")
        if c.smoother not in SMOOTHERS:
            raise ValueError(f"Unknown smoother {c.smoother!r}; choose one of {list(SMOOTHERS)}.")
        if c.folds < 2:
            raise ValueError(f"folds must be >= 2 for cross-fitting, got {c.folds}.")
        n = len(self.unwrapped.all_observations()["x"])
        self.credit_sum = np.zeros(n)
        # the sum of squared per-selection credits, for the raw credit's standard error
        # (None after loading a checkpoint written before it was kept)
        self.credit_sq_sum: np.ndarray | None = np.zeros(n)
        self.seen = np.zeros(n)
        self._values: np.ndarray | None = None  # cached smoothed values

    # ---- one round ---------------------------------------------------------------------
    def _update(self) -> dict:
        p = self.config.selection_probability
        played = self.play_round(lambda indices: np.full(len(indices), p))
        terms = played.advantages[:, None] * (played.selections - p)  # (K, B)
        np.add.at(self.credit_sum, played.indices, terms.sum(0) / (p * (1 - p)))
        if self.credit_sq_sum is not None:
            np.add.at(self.credit_sq_sum, played.indices, ((terms / (p * (1 - p))) ** 2).sum(0))
        np.add.at(self.seen, played.indices, len(played.selections))
        self._values = None
        return {"reward": float(np.mean(played.rewards)),
                "selected": float(played.selections.mean()),
                "seen": float((self.seen > 0).mean())}

    @property
    def credit(self) -> np.ndarray:
        """Each training point's raw credit (0 for points not seen yet)."""
        return self.credit_sum / np.maximum(self.seen, 1)

    def valuation(self) -> ValuationResult:
        """The values with ``counts`` = :attr:`seen` (K per round a point was in, so they
        sum to batch_size x K x rounds) and, when the values are the raw credit
        (``smoother="none"``), ``spread`` = its standard error over the point's
        selections (NaN for a point seen fewer than twice). Smoothed values have no
        spread on their own scale: None."""
        result = super().valuation()
        spread = None
        if self.config.smoother == "none" and self.credit_sq_sum is not None:
            seen, mean = self.seen, self.credit
            with np.errstate(divide="ignore", invalid="ignore"):
                variance = (self.credit_sq_sum - seen * mean ** 2) / (seen - 1)
                spread = np.where(seen > 1, np.sqrt(np.maximum(variance, 0.0) / seen), np.nan)
        return dataclasses.replace(result, counts=self.seen, spread=spread)

    # ---- values ------------------------------------------------------------------------
    def _values_from(self, observations: dict) -> np.ndarray:
        if len(observations["x"]) != len(self.seen):
            raise ValueError("The credit agent values the training set it was credited on.")
        if self.config.smoother == "none":
            return self.credit
        if self._values is None:
            self._values = self._smoothed(observations)
            if observations["marginal"].any():
                self._values = self._mixed_with_marginal(self._values, observations)
        return self._values

    def _smoothed(self, observations: dict) -> np.ndarray:
        """Out-of-fold ridge predictions of the credit from each point's features."""
        features = smoother_features(observations)
        credit, weight = self.credit, self.seen
        values = np.zeros(len(credit))
        folds = KFold(self.config.folds, shuffle=True, random_state=self.seed)
        for train, test in folds.split(features):
            train = train[weight[train] > 0]
            if len(train) < 2:
                continue  # too little credit yet: those values stay 0
            model = RidgeCV(alphas=RIDGE_ALPHAS).fit(features[train], credit[train],
                                                     sample_weight=weight[train])
            values[test] = model.predict(features[test])
        return values

    def _mixed_with_marginal(self, smoothed: np.ndarray, observations: dict) -> np.ndarray:
        """``z(marginal logit) + c z(smoothed credit)`` with c = ``marginal_weight``.

        The credit measures how much a point helps the predictor, which is not the same
        as whether its label was flipped; where the marginal information is given it is
        the better detector, and the credit only reorders points it finds close. Measured
        on Adult (seeds 0 / 1 / 2, 2,400 fits, study ``mix`` of
        ``benchmarks/specs/credit_choices.toml``, table in
        ``benchmarks/results/credit_choices/``): c = 0.1 keeps the marginal's 0.925 /
        0.900 / 0.918, c = 0.5 loses 0.002-0.003 and c = 2 loses 0.009-0.013.
        ``marginal_weight=0`` gives the marginal information's ranking."""
        p = np.clip(1.0 - given_label_marginal(observations), 0.01, 0.99)
        prior, learned = _z(np.log(p / (1.0 - p))), _z(smoothed)
        return prior + self.config.marginal_weight * learned

    # ---- checkpoints -------------------------------------------------------------------
    def _state_dict(self) -> dict:
        state = {**super()._state_dict(), "credit_sum": torch.from_numpy(self.credit_sum.copy()),
                 "seen": torch.from_numpy(self.seen.copy())}
        if self.credit_sq_sum is not None:
            state["credit_sq_sum"] = torch.from_numpy(self.credit_sq_sum.copy())
        return state

    def _load_state_dict(self, state: dict) -> None:
        credit_sum, seen = state["credit_sum"].numpy(), state["seen"].numpy()
        if credit_sum.shape != self.credit_sum.shape or seen.shape != self.seen.shape:
            raise ValueError(f"its credit covers {len(credit_sum)} points, this env has "
                             f"{len(self.seen)}")
        squares = state.get("credit_sq_sum")  # absent from older checkpoints: no spread
        if squares is not None and squares.shape != credit_sum.shape:
            raise ValueError(f"its squared credit covers {len(squares)} points, its credit "
                             f"{len(credit_sum)}")
        self.credit_sum, self.seen = credit_sum.copy(), seen.copy()
        self.credit_sq_sum = None if squares is None else squares.numpy().copy()
        self._values = None
        super()._load_state_dict(state)


def _z(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / (values.std() + 1e-12)


def smoother_features(observations: dict) -> np.ndarray:
    """``[x, onehot y, x (outer) onehot y]``, plus the marginal information when present:
    a linear model on them can give each class its own direction in feature space."""
    x = observations["x"].reshape(len(observations["x"]), -1).astype(np.float64)
    y = observations["y"].astype(np.float64)
    parts = [x, y, (x[:, :, None] * y[:, None, :]).reshape(len(x), -1)]
    if observations["marginal"].any():
        parts.append(observations["marginal"].astype(np.float64))
    return np.hstack(parts)

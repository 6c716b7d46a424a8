"""What do the rewards say about each point, beyond the marginal information?

    dvrl bench benchmarks/specs/reward_credit.toml --out benchmarks/results/reward_credit \
        --workers 1 --threads 1

This module registers the ``reward-credit`` method (:mod:`dvrl_env.app.bench.hooks`) the
spec's cells run, and is the spec's ``report`` (``reward_credit.md``).

The agent-quality target for ``reinforce`` on Adult asks RL to rank corrupted labels
better than the marginal information it starts from. This measures how much the
rewards could possibly add, with no DVE in between: the policy is held fixed (``marginal``:
each point is selected with the validation model's probability of its label, where
``reinforce`` with ``architecture="skip"`` starts; ``half``: probability 1/2, the most
informative draws), and each round steps K lockstep copies of the env (same batch,
same predictor start and mini-batch order) with K selections and takes leave-one-out
advantages ``A_k``. A point's *credit* is the REINFORCE score of its own selection,

    credit_i = mean over rounds and k of  A_k (s_ki - h_i) / (h_i (1 - h_i)),

an estimate of ``E[A | s_i = 1] - E[A | s_i = 0]``: the per-point signal a DVE's
gradient is built from. Reported per seed (detection AUROC, higher = corrupted points
ranked lower):

- ``marginal``: the marginal information alone;
- ``credit``: the credit alone (0.5 = the rewards say nothing about the point);
- ``pooled``: the credit smoothed over features (cross-fitted ridge regression on
  [x, onehot y, x * (2y - 1)]), what a DVE that generalises across points could extract;
- ``ceiling``: the best of ``z(marginal logit) + c * z(pooled or raw credit)`` over a
  grid of c, *chosen with the noise mask*: an optimistic bound on what RL adds.

Rounds are counted like ``reinforce`` updates: 150 rounds of K = 8 are the predictor
fits the agent-quality target allows. One Adult round with the default MLP predictor
takes about 3 s here (one thread); with ``--predictor logistic`` about 0.07 s.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold

import dvrl_env  # noqa: F401  (registers the ids)
from agents.base import given_label_marginal
from dvrl_env.app.bench.hooks import register_method
from dvrl_env.app.bench.tables import group, markdown_table, parsed, write_report
from dvrl_env.envs.vector import make_vector_env
from dvrl_env.evaluation import detection_auroc

COMBINATION_WEIGHTS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


def given_label_probability(observations: dict) -> np.ndarray:
    """``p_val(y_i | x_i) = 1 - m_{i, y_i}``, clipped to [0.01, 0.99] as the skip DVE does."""
    return np.clip(1.0 - given_label_marginal(observations), 0.01, 0.99)


def point_credit(env: gym.Env, policy: np.ndarray, *, rounds: int, num_samples: int,
                 seed: int) -> tuple[np.ndarray, int]:
    """Mean REINFORCE score of each training point's selection under a fixed policy, and
    the predictor fits it took (the K copies' counter).

    ``policy[i]`` is training point i's selection probability. Points never drawn into
    a batch get credit 0.
    """
    if num_samples < 2:
        raise ValueError("num_samples must be >= 2 for a leave-one-out advantage.")
    vector_env = make_vector_env(env, num_samples)
    rng = np.random.default_rng(seed)
    n_train = env.unwrapped.dataset.n_train
    total, seen = np.zeros(n_train), np.zeros(n_train)
    _, info = vector_env.reset(seed=[seed] * num_samples)
    for _ in range(rounds):
        indices = np.asarray(info["indices"])[0]
        h = policy[indices]
        selections = (rng.random((num_samples, len(indices))) < h).astype(np.int8)
        _, rewards, _, _, info = vector_env.step(selections)
        advantages = rewards - (rewards.sum() - rewards) / (num_samples - 1)
        score = (advantages[:, None] * (selections - h)).sum(0) / (h * (1.0 - h))
        np.add.at(total, indices, score)
        np.add.at(seen, indices, num_samples)
    vector_env.close()
    return total / np.maximum(seen, 1), vector_env.fits


def pooled_credit(credit: np.ndarray, observations: dict, seed: int) -> np.ndarray:
    """Credit predicted from each point's features by ridge regression fitted on the
    other folds (so a point's own credit never enters its prediction)."""
    x, y = observations["x"].reshape(len(credit), -1), observations["y"]
    sign = 2.0 * y.argmax(-1, keepdims=True) - 1.0
    features = np.hstack([x, y, x * sign])
    out = np.zeros_like(credit)
    for train, test in KFold(5, shuffle=True, random_state=seed).split(features):
        model = RidgeCV(alphas=np.logspace(-1, 4, 12)).fit(features[train], credit[train])
        out[test] = model.predict(features[test])
    return out


def _z(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / (values.std() + 1e-12)


def ceiling(marginal_logit: np.ndarray, credit: np.ndarray,
            mask: np.ndarray) -> tuple[float, float]:
    """Best AUROC of ``z(marginal_logit) + c z(credit)`` over the grid of c, and that c."""
    return max((detection_auroc(_z(marginal_logit) + c * _z(credit), mask), c)
               for c in COMBINATION_WEIGHTS)


def reward_credit(env: gym.Env, *, seed: int, policy: str = "marginal", rounds: int = 150,
                  num_samples: int = 8) -> tuple[np.ndarray, dict]:
    """The method: each point's credit under the fixed ``policy`` (``marginal`` or
    ``half``); info: the marginal, pooled and ceiling AUROCs and the fits used."""
    if policy not in ("marginal", "half"):
        raise ValueError(f"policy must be 'marginal' or 'half', got {policy!r}.")
    observations = env.unwrapped.all_observations()
    mask = env.unwrapped.dataset.noisy_mask
    p_given = given_label_probability(observations)
    fixed = p_given if policy == "marginal" else np.full_like(p_given, 0.5)
    credit, fits = point_credit(env, fixed, rounds=rounds, num_samples=num_samples, seed=seed)
    pooled = pooled_credit(credit, observations, seed)
    marginal_logit = np.log(p_given / (1.0 - p_given))
    best = max(ceiling(marginal_logit, credit, mask), ceiling(marginal_logit, pooled, mask))
    return credit, {"fits": fits, "marginal": detection_auroc(marginal_logit, mask),
                    "pooled": detection_auroc(pooled, mask), "ceiling": best[0],
                    "ceiling_c": best[1]}


register_method("reward-credit", reward_credit)


def table(rows: list[dict]) -> str:
    body = []
    for (task, _label), runs in group(rows, ["task", "agent"]).items():
        per_seed = {name: " / ".join(f"{r[name]:.3f}" for r in runs)
                    for name in ("marginal", "auroc", "pooled", "ceiling")}
        cs = " / ".join(f"{r['ceiling_c']:g}" for r in runs)
        opts = runs[0]["options"]
        body.append([task, runs[0]["env_options"].get("predictor", "mlp"),
                     runs[0]["env_options"].get("metric", "accuracy"), opts["policy"],
                     f"{opts['rounds']} x {opts['num_samples']}", int(runs[0]["fits"]),
                     " ".join(str(r["seed"]) for r in runs), per_seed["marginal"],
                     per_seed["auroc"], per_seed["pooled"],
                     f"{per_seed['ceiling']} ({cs})",
                     f"{np.mean([r['seconds'] for r in runs]):.0f}"])
    return markdown_table(["task", "predictor", "metric", "policy", "rounds x K", "fits",
                           "seeds", "marginal", "credit", "pooled", "ceiling (c)",
                           "s / seed"], body)


def report(store_rows: list[dict], out: Path) -> list[Path]:
    md = write_report(Path(out) / "reward_credit.md", "What the rewards say beyond the "
                      "marginal information", [
        f"From `{out}/results.csv`; per seed. marginal: the marginal information alone; "
        "credit: the credit alone (0.5: the rewards say nothing); pooled: the credit "
        "smoothed over features; ceiling: the best of z(marginal logit) + c z(credit) "
        "over c, chosen with the noise mask (an optimistic bound).",
        table(parsed(store_rows))])
    return [md]

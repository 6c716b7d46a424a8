"""What do the rewards say about each point, beyond the marginal information?

    python benchmarks/reward_credit.py                                # Adult, seeds 0 1 2
    python benchmarks/reward_credit.py --predictor logistic --rounds 1500 --policy half

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

import argparse
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold

import dvrl_env  # noqa: F401  (registers the ids)
from agents.base import given_label_marginal
from dvrl_env.envs.vector import make_vector_env
from dvrl_env.evaluation import detection_auroc

try:
    from benchmarks.agent_quality import append_row, set_threads, write_table
except ModuleNotFoundError:  # run as a file
    from agent_quality import append_row, set_threads, write_table

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


def run_one(env_id: str, seed: int, args: argparse.Namespace) -> dict:
    start = time.perf_counter()
    env = gym.make(env_id, noise_rate=args.noise_rate, data_seed=seed,
                   predictor=args.predictor, metric=args.metric)
    observations = env.unwrapped.all_observations()
    mask = env.unwrapped.dataset.noisy_mask
    p_given = given_label_probability(observations)
    policy = p_given if args.policy == "marginal" else np.full_like(p_given, 0.5)
    credit, fits = point_credit(env, policy, rounds=args.rounds,
                                num_samples=args.num_samples, seed=seed)
    pooled = pooled_credit(credit, observations, seed)
    marginal_logit = np.log(p_given / (1.0 - p_given))
    best = max(ceiling(marginal_logit, credit, mask), ceiling(marginal_logit, pooled, mask))
    return {
        "env": env_id, "seed": seed, "predictor": args.predictor, "metric": args.metric,
        "policy": args.policy, "rounds": args.rounds, "num_samples": args.num_samples,
        "fits": fits,
        "marginal": detection_auroc(marginal_logit, mask),
        "credit": detection_auroc(credit, mask), "pooled": detection_auroc(pooled, mask),
        "ceiling": best[0], "ceiling_c": best[1], "seconds": time.perf_counter() - start,
    }


SETTINGS = ("env", "predictor", "metric", "policy", "rounds", "num_samples")


def summarise(rows: list[dict]) -> str:
    lines = ["| env | predictor | metric | policy | rounds x K | fits | seeds | marginal "
             "| credit | pooled | ceiling (c) | s / seed |", "|---" * 12 + "|"]
    keys = list(dict.fromkeys(tuple(str(r[k]) for k in SETTINGS) for r in rows))
    for key in keys:
        group = [r for r in rows if tuple(str(r[k]) for k in SETTINGS) == key]
        per_seed = {name: " / ".join(f"{float(r[name]):.3f}" for r in group)
                    for name in ("marginal", "credit", "pooled", "ceiling")}
        cs = " / ".join(f"{float(r['ceiling_c']):g}" for r in group)
        secs = np.mean([float(r["seconds"]) for r in group])
        env_id, predictor, metric, policy, rounds, k = key
        lines.append(f"| {env_id} | {predictor} | {metric} | {policy} | {rounds} x {k} | "
                     f"{group[0]['fits']} | "
                     f"{' '.join(str(r['seed']) for r in group)} | {per_seed['marginal']} | "
                     f"{per_seed['credit']} | {per_seed['pooled']} | {per_seed['ceiling']} "
                     f"({cs}) | {secs:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="DataValuation-Adult-v0")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--noise-rate", type=float, default=0.2)
    parser.add_argument("--predictor", default="mlp", choices=["mlp", "logistic"])
    parser.add_argument("--metric", default="accuracy")
    parser.add_argument("--policy", default="marginal", choices=["marginal", "half"])
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--num-samples", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--csv", default="benchmarks/results/reward_credit.csv")
    parser.add_argument("--summarise", action="store_true",
                        help="run nothing: print (and write as .md) the table of --csv")
    args = parser.parse_args(argv)
    out = Path(args.csv)
    if not args.summarise:
        set_threads(args.threads)
        out.parent.mkdir(parents=True, exist_ok=True)
        for seed in args.seeds:
            row = run_one(args.env, seed, args)
            append_row(out, row)
            print(f"seed {seed}: marginal {row['marginal']:.3f} credit {row['credit']:.3f} "
                  f"pooled {row['pooled']:.3f} ceiling {row['ceiling']:.3f} "
                  f"(c={row['ceiling_c']:g}) {row['seconds']:.0f} s", flush=True)
    write_table(out, summarise)
    return 0


if __name__ == "__main__":
    sys.exit(main())

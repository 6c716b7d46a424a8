"""REINFORCE on the DVRL vector env, CleanRL style: one file, read it top to bottom.

    python examples/reinforce_cleanrl.py                       # Digits, 20% flipped labels
    python examples/reinforce_cleanrl.py --num-updates 500 --no-marginal-information

The env (``DataValuationVectorEnv``, K sub-envs) shows a batch of B training points;
the policy selects some, a predictor is trained on them, and the reward is its
validation accuracy minus a baseline. The policy is one small network applied to each
point (``[x, onehot y, marginal]`` -> a logit): the same weights for every point, so
what it learns on a batch values every training row. At the end the values (the
selection probabilities of all rows) are scored against the flipped-label mask: the
detection AUROC (1: every flipped label valued below every clean one, 0.5: chance).

Two things a loop-writer needs to know (docs/rl_stacks.md):

* The default ``baseline="fixed"`` is the score of a predictor trained on all n_train
  rows, while a step trains on the B selected ones, so every reward is negative. Only
  differences between selections carry signal: the K sub-envs are reset with one seed,
  so they see the same batch, and each selection's advantage is its reward minus the
  mean of the other K - 1 (leave-one-out).
* ``predictor="logistic"`` needs ``predictor_lr`` about 0.05: with the default 1e-3
  its few Adam steps barely move it, and the rewards barely depend on the selection.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import time

import gymnasium as gym
import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

import dvrl_env  # noqa: F401  (registers the DataValuation-* ids)


@dataclasses.dataclass
class Args:
    env_id: str = "DataValuation-Digits-v0"  # a registered id (dvrl envs lists them)
    seed: int = 1  # seeds Python, NumPy, torch and the env, once, below
    noise_rate: float = 0.2  # fraction of training labels flipped (the points to find)
    num_envs: int = 8  # K: selections scored per batch
    num_updates: int = 200  # policy gradient steps (each costs K predictor fits)
    batch_size: int = 100  # B: training points per observation
    predictor: str = "logistic"  # the model trained on each selection: logistic or mlp
    predictor_lr: float = 0.05  # 0.05 for logistic (the env's default 1e-3 barely trains it)
    predictor_epochs: int = 20  # passes over the selected points per step
    marginal_information: bool = True  # show each point's |onehot(y) - p_valid(x)| to the policy
    learning_rate: float = 0.01  # Adam step size of the policy
    hidden_dim: int = 64  # width of the per-point network
    threads: int = 1  # torch threads: these models are small, more threads only wait
    exploration_threshold: float = 0.9  # DVRL's: penalise a mean selection above it or < 1 - it
    exploration_weight: float = 1000.0  # weight of that penalty


def parse_args(argv: list[str] | None = None) -> Args:
    """One flag per field of Args (``--num-envs 4``, ``--no-marginal-information``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for field in dataclasses.fields(Args):
        flag = "--" + field.name.replace("_", "-")
        if isinstance(field.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction,
                                default=field.default)
        else:  # every other field is an int, float or str: its default's type parses it
            parser.add_argument(flag, type=type(field.default), default=field.default,
                                help=f"(default: {field.default})")
    return Args(**vars(parser.parse_args(argv)))


class PerPointPolicy(nn.Module):
    """The same MLP on every row of the batch: (..., B, features) -> (..., B) logits."""

    def __init__(self, num_features: int, hidden_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(num_features, hidden_dim), nn.ReLU(),
                                 nn.Linear(hidden_dim, hidden_dim), nn.ReLU(),
                                 nn.Linear(hidden_dim, 1))

    def forward(self, obs: dict[str, np.ndarray]) -> torch.Tensor:
        rows = np.concatenate([obs["x"], obs["y"], obs["marginal"]], axis=-1)
        return self.net(torch.as_tensor(rows, dtype=torch.float32)).squeeze(-1)



def main(args: Args) -> float:
    """Train, print the progress and the detection AUROC, and return the AUROC."""
    # ---- seeding: once, here ----
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)

    # ---- env: K sub-envs, their K predictors trained as one computation ----
    # autoreset "same_step": each step ends a one-step episode (the official contextual
    # bandit) and returns the next batch at once; the default "next_step" would spend
    # every other step on a reset (Gymnasium's vector wrappers need that one).
    envs = gym.make_vec(
        args.env_id, num_envs=args.num_envs, autoreset_mode="same_step",
        noise_rate=args.noise_rate, batch_size=args.batch_size, predictor=args.predictor,
        predictor_lr=args.predictor_lr, predictor_epochs=args.predictor_epochs,
        marginal_information=args.marginal_information,
    )
    space = envs.single_observation_space
    num_features = space["x"].shape[-1] + space["y"].shape[-1] + space["marginal"].shape[-1]
    policy = PerPointPolicy(num_features, args.hidden_dim)
    optimizer = torch.optim.Adam(policy.parameters(), lr=args.learning_rate)

    # one seed for all K: the same batch in every sub-env (common random numbers), so
    # their rewards differ only through the K selections
    obs, info = envs.reset(seed=[args.seed] * args.num_envs)
    start = time.time()
    for update in range(1, args.num_updates + 1):
        logits = policy(obs)                                    # (K, B)
        dist = torch.distributions.Bernoulli(logits=logits)
        selection = dist.sample()                               # (K, B) of 0/1
        obs, reward, terminated, truncated, info = envs.step(selection.numpy().astype(np.int8))

        # rewards are all negative (see the docstring): compare the K selections instead
        reward = torch.as_tensor(reward, dtype=torch.float32)   # (K,)
        k = args.num_envs
        advantage = reward - (reward.sum() - reward) / (k - 1)  # leave-one-out
        # the differences are a few hundredths of accuracy: normalised, the step size does
        # not depend on the metric's scale
        advantage = advantage / (advantage.std() + 1e-8)
        loss = -(advantage * dist.log_prob(selection).sum(-1)).mean()
        # more points train a better predictor, so without this the policy learns to
        # select everything and the K selections stop differing (DVRL's exploration term)
        mean_p = torch.sigmoid(logits).mean()
        loss = loss + args.exploration_weight * (
            torch.relu(mean_p - args.exploration_threshold)
            + torch.relu(1 - args.exploration_threshold - mean_p))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

        if update % 20 == 0 or update == args.num_updates:
            print(f"update {update:4d}  reward {reward.mean():+.4f}  "
                  f"selected {selection.mean():.2f}  {time.time() - start:.1f}s")

    # ---- values: the selection probability of every training row ----
    base = envs.unwrapped  # DataValuationVectorEnv
    with torch.no_grad():
        values = torch.sigmoid(policy(base.all_observations())).numpy()
    noisy = base.dataset.noisy_mask  # for evaluation only: never in an observation
    auroc = roc_auc_score(noisy, -values)  # low value = flagged as flipped
    print(f"detection AUROC {auroc:.3f}  ({noisy.sum()} flipped of {len(values)} rows)")
    envs.close()
    return float(auroc)


if __name__ == "__main__":
    main(parse_args())

"""``python -m dvrl_env demo``: a first look at an environment, offline, in seconds.

It plays a few steps with random selections and prints the reward of each, then the
detection AUROC of the marginal information (the no-RL baseline). The full command
line (``dvrl value``) replaces this demo.
"""

from __future__ import annotations

import argparse
import sys
import time

import gymnasium as gym
import numpy as np

import dvrl_env
from dvrl_env.evaluation import detection_auroc


def demo(env_id: str, steps: int, seed: int, noise_rate: float) -> None:
    start = time.perf_counter()
    env = gym.make(env_id, noise_rate=noise_rate)
    data = env.unwrapped.dataset
    print(f"{env_id}: {data}")
    obs, info = env.reset(seed=seed)
    print(f"fixed baseline (predictor on all {data.n_train} points): "
          f"{info['baseline']:.4f} validation {env.unwrapped.metric}")
    for step in range(steps):
        action = env.action_space.sample()
        obs, reward, terminated, truncated, info = env.step(action)
        print(f"step {step}: selected {info['n_selected']:4d} of {len(action)}  "
              f"metric {info['metric']:.4f}  reward {reward:+.4f}")
        if terminated or truncated:
            obs, info = env.reset()
    marginal = env.unwrapped.all_observations()
    given = (marginal["marginal"] * marginal["y"]).sum(axis=1)
    auroc = detection_auroc(1.0 - given, data.noisy_mask)
    print(f"marginal information alone: detection AUROC {auroc:.3f} "
          f"({int(data.noisy_mask.sum())} flipped labels of {data.n_train})")
    print(f"done in {time.perf_counter() - start:.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dvrl_env")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="random selections on an env, printing rewards")
    p.add_argument("--env", default="DataValuation-Digits-v0", choices=sorted(dvrl_env.ENV_IDS))
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise-rate", type=float, default=0.2)
    sub.add_parser("envs", help="list the registered env ids")
    args = parser.parse_args(argv)
    if args.command == "envs":
        print("\n".join(sorted(dvrl_env.ENV_IDS)))
        return 0
    np.set_printoptions(precision=4)
    demo(args.env, args.steps, args.seed, args.noise_rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())

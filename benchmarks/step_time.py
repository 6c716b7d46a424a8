"""Wall time of one environment step (one predictor training) with an env's defaults.

    python benchmarks/step_time.py                       # DataValuation-Adult-v0
    python benchmarks/step_time.py --env DataValuation-Digits-v0 --steps 20

Prints the time to make the env, the first seeded reset (which trains the fixed
baseline's predictor on every training point) and the median, min and max of
``--steps`` steps with random selections.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import gymnasium as gym
import torch

import dvrl_env  # noqa: F401  (registers the ids)
from dvrl_env.app.bench.code import code_line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="DataValuation-Adult-v0")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    print(code_line(), flush=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    env = gym.make(args.env, device=args.device)
    made = time.perf_counter()
    env.reset(seed=0)
    reset = time.perf_counter()
    times = []
    for _ in range(args.steps):
        action = env.action_space.sample()
        t = time.perf_counter()
        _, _, terminated, truncated, _ = env.step(action)
        times.append(time.perf_counter() - t)
        if terminated or truncated:
            env.reset()
    u = env.unwrapped
    print(f"{args.env}: n_train={u.n_train}, B={u.batch_size}, predictor epochs="
          f"{u.predictor_epochs}, mini-batch={u.predictor_batch_size}, device={u.device}, "
          f"torch threads={torch.get_num_threads()}")
    print(f"make {made - start:.2f} s | first reset (fixed baseline) {reset - made:.2f} s")
    print(f"step: median {statistics.median(times):.3f} s, min {min(times):.3f} s, "
          f"max {max(times):.3f} s over {len(times)} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""cProfile of one environment step: where the time of a step goes.

    python benchmarks/profile_step.py --env DataValuation-Adult-v0 --predictor logistic
    python benchmarks/profile_step.py --num-envs 8          # the batched vector env
    python benchmarks/profile_step.py --num-envs 256 --batch-size 64 --baseline moving_average

Prints the top functions by own time for one step (and, for the single env, the reset
that a same-step autoreset adds), after two warm-up steps. One thread, like the other
benchmarks, so that numbers compare across machines with different core counts.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import gymnasium as gym
import numpy as np
import torch

import dvrl_env  # noqa: F401  (registers the ids)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="DataValuation-Adult-v0")
    parser.add_argument("--predictor", default="mlp")
    parser.add_argument("--num-envs", type=int, default=0,
                        help="0: one DataValuationEnv; K: the batched vector env of K")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the env's")
    parser.add_argument("--baseline", default=None,
                        help="moving_average skips the fixed baseline's training at reset")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    options = {"predictor": args.predictor, "device": args.device}
    if args.batch_size is not None:
        options["batch_size"] = args.batch_size
    if args.baseline is not None:
        options["baseline"] = args.baseline
    rng = np.random.default_rng(0)
    if args.num_envs:
        # same-step: every step trains (next-step, the default, resets every other step)
        env = gym.make_vec(args.env, num_envs=args.num_envs, autoreset_mode="same_step",
                           **options)
        env.reset(seed=0)
        shape = env.action_space.shape

        def one_step():
            env.step(rng.integers(0, 2, size=shape))
    else:
        env = gym.make(args.env, **options).unwrapped
        env.reset(seed=0)
        shape = env.action_space.shape

        def one_step():
            env.step(rng.integers(0, 2, size=shape))
            env.reset()

    for _ in range(2):
        one_step()
    start = time.perf_counter()
    one_step()
    print(f"one step: {time.perf_counter() - start:.4f} s "
          f"({args.env}, predictor={args.predictor}, num_envs={args.num_envs})")
    profile = cProfile.Profile()
    profile.enable()
    one_step()
    profile.disable()
    pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()

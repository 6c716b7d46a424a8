"""Throughput: predictor trainings per second, and REINFORCE iterations per second.

    python benchmarks/throughput.py                    # every regime (about 20 minutes)
    python benchmarks/throughput.py --regime recipe    # the official recipe, profiled
    python benchmarks/throughput.py --regime small     # small batches, many slots
    python benchmarks/throughput.py --quick            # small sizes, a smoke test
    python benchmarks/throughput.py --device cuda      # the same on a GPU

Three regimes, each run side by side in one process on ``--threads`` CPU threads
(default 1), next to this machine's float32 matrix-multiply peak measured in the same
run:

* ``large``: Adult and Digits with their defaults (n_train 1000, B 1000, 100 epochs in
  mini-batches of 256, i.e. 400 Adam steps per training), MLP and logistic predictors,
  K in 1, 8, 32. Trainings per second (one env step trains one predictor per sub-env)
  of (a) one ``DataValuationEnv``, (b) a ``SyncVectorEnv`` of K copies of it (same-step
  autoreset) and (c) the batched ``DataValuationVectorEnv``, and (c)'s achieved GFLOP/s
  as a share of the peak.
* ``small``: the regime of learning from the reward alone, MLP predictor, B in 64 and
  256, K in 64 and 256. Besides (c)/(b) it prints "at peak": the (c)/(b) that the
  batched env would reach if its fits ran at the matmul peak, the ceiling of this
  machine for that ratio.
* ``recipe``: the official recipe's ``reinforce`` (``num_samples=1``) with the logistic
  predictor on Adult, in outer iterations per second (the official TensorFlow code:
  2000 iterations in 39 s, 50.9 it/s, with a scikit-learn logistic regression), with a
  profile of where an iteration's time goes; and ``num_samples=8`` over the batched and
  the Sync vector env.

Sub-envs get seeds s, s+1, ... (not in lockstep); actions are random selections.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import csv
import os
import pstats
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dvrl_env  # noqa: E402,F401  (registers the ids)
from agents.reinforce import Reinforce  # noqa: E402
from dvrl_env.app.bench.code import code_line  # noqa: E402
from dvrl_env.envs.vector import make_vector_env  # noqa: E402

QUICK = {"n_train": 200, "n_valid": 100, "n_test": 50, "batch_size": 128,
         "predictor_epochs": 4}


class Stepper:
    """Steps one env (or vector env) with random selections and adds up the wall time."""

    def __init__(self, env, seed: int = 0):
        self.env, self.seconds, self.steps = env, 0.0, 0
        self.single = not isinstance(env, gym.vector.VectorEnv)
        self.rng = np.random.default_rng(seed)
        env.reset(seed=seed)

    def step(self, timed: bool = True) -> None:
        action = self.rng.integers(0, 2, size=self.env.action_space.shape, dtype=np.int8)
        start = time.perf_counter()
        self.env.step(action)
        if self.single:
            self.env.reset()
        if timed:
            self.seconds += time.perf_counter() - start
            self.steps += 1

    @property
    def per_second(self) -> float:
        return self.steps / self.seconds


def matmul_peak_gflops(device: str, size: int = 512, repeats: int = 20) -> float:
    """This machine's float32 matrix-multiply rate on ``device`` (best of ``repeats``
    products of two ``size`` x ``size`` matrices), on the threads torch is set to."""
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       "cpu" if device == "auto" else device)
    a, b = (torch.randn(size, size, device=dev) for _ in range(2))
    best = float("inf")
    for _ in range(repeats + 2):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if dev.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def products_gflops(device: str, k: int, rows: int, widths: list[int],
                    repeats: int = 10) -> float:
    """The rate of the batched matrix products alone that one Adam step of K stacked MLPs
    makes (per layer: the forward product, the weight gradient and, past the first
    layer, the input gradient) on ``rows`` visits each: the ceiling of the batched env's
    fits at these shapes, below the 512 x 512 peak because the products are small."""
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       "cpu" if device == "auto" else device)
    layers = list(zip(widths[:-1], widths[1:], strict=True))
    h = [torch.randn(k, rows, a, device=dev) for a, _ in layers]
    g = [torch.randn(k, rows, b, device=dev) for _, b in layers]
    w = [torch.randn(k, b, a, device=dev) for a, b in layers]
    flop = sum(2 * k * rows * a * b * (2 if i == 0 else 3) for i, (a, b) in enumerate(layers))
    best = float("inf")
    for _ in range(repeats + 2):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(len(layers)):
            torch.bmm(h[i], w[i].mT)
            torch.bmm(g[i].mT, h[i])
            if i:
                torch.bmm(g[i], w[i])
        if dev.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return flop / best / 1e9


def padded_rows(minibatch: int, k: int, seed: int = 0) -> int:
    """Visits a batched mini-batch computes: the most selected of K random half
    selections of ``minibatch`` points (one draw)."""
    return int(np.random.default_rng(seed).binomial(minibatch, 0.5, size=k).max())


def fit_gflop(env) -> float:
    """Floating-point work of one env step's training and scoring, in GFLOP: the linear
    layers' multiply-adds, 6 per weight per visited point (forward and backward) over
    ``epochs`` passes of the batch, half of it selected by a random action (unselected
    points are skipped when the predictor allows), and 2 per weight per validation point."""
    config = env.config
    module = config.predictor.build(config.dataset.num_features, config.dataset.num_classes,
                                    0, torch.device("cpu"))
    weights = sum(m.in_features * m.out_features for m in module.modules()
                  if isinstance(m, torch.nn.Linear))
    visited = config.batch_size * (0.5 if config.predictor.skips_unweighted else 1.0)
    train = 6 * weights * visited * config.predictor_epochs
    return (train + 2 * weights * len(config.dataset.y_valid)) / 1e9


def trainings_table(env_id: str, predictor: str, ks, options: dict, warmup: int,
                    steps: int, sync_max_k: int, peak: float) -> list[dict]:
    """Trainings per second of one env, Sync and batched, their steps interleaved
    (single, Sync, batched, single, ...) so that a change in the machine's load falls
    on all three alike; Sync only up to ``sync_max_k`` copies."""
    base = gym.make(env_id, predictor=predictor, **options).unwrapped
    single = Stepper(base)
    name = env_id.removeprefix("DataValuation-").removesuffix("-v0")
    gflop = fit_gflop(base)
    measured = []
    for k in ks:
        steppers = [single, Stepper(make_vector_env(base, k))]
        if k <= sync_max_k:
            # what gym.make_vec(..., vectorization_mode="sync") builds, without loading
            # the data K times
            steppers.append(Stepper(gym.vector.SyncVectorEnv(
                [lambda: copy.deepcopy(base)] * k, autoreset_mode=AutoresetMode.SAME_STEP)))
        for round_ in range(warmup + steps):
            for stepper in steppers:
                stepper.step(timed=round_ >= warmup)
        t_sync = steppers[2].per_second * k if len(steppers) > 2 else float("nan")
        measured.append((k, t_sync, steppers[1].per_second * k))
        print(f"  {name:8s} {predictor:8s} K={k:<3d} single {single.per_second:8.2f}  "
              f"sync {t_sync:8.2f}  batched {measured[-1][2]:8.2f} "
              f"({measured[-1][2] * gflop:.1f} GFLOP/s)", flush=True)
    return [{"env": name, "predictor": predictor, "B": base.config.batch_size, "K": k,
             "single": single.per_second, "sync": t_sync, "batched": t_batched,
             "batched/sync": t_batched / t_sync, "batched GFLOP/s": t_batched * gflop,
             "of peak": t_batched * gflop / peak, "at peak": peak / gflop / t_sync}
            for k, t_sync, t_batched in measured]


def print_table(title: str, rows: list[dict], peak: float) -> None:
    print(f"\n{title}")
    header = (f"| {'env':8s} | {'predictor':9s} | {'B':>4s} | {'K':>3s} | {'(a) single':>10s} | "
              f"{'(b) Sync':>9s} | {'(c) batched':>11s} | {'(c)/(b)':>7s} | "
              f"{'at peak':>7s} | {'(c) GFLOP/s':>11s} | {'of peak':>7s} |")
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for r in rows:
        print(f"| {r['env']:8s} | {r['predictor']:9s} | {r['B']:4d} | {r['K']:3d} | "
              f"{r['single']:10.2f} | {r['sync']:9.2f} | {r['batched']:11.2f} | "
              f"{r['batched/sync']:7.2f} | {r['at peak']:7.1f} | "
              f"{r['batched GFLOP/s']:11.1f} | {r['of peak']:7.0%} |")
    print(f"(GFLOP/s: the linear layers' work of the fits, see fit_gflop; peak: {peak:.1f} "
          "GFLOP/s, measured above; at peak: (c)/(b) if (c) ran at that peak)")


#: what an iteration of the official recipe is made of, by the functions that do it
RECIPE_PARTS = {
    "predictor fit (closed-form logistic)": ("closed_form.py", "fit_logistic"),
    "mini-batch orders (torch.rand + sort)": ("training.py", "stacked_epoch_permutations"),
    "predictor validation score": ("single.py", "metrics"),
    "DVE backward": ("<method 'run_backward'", None),
    "DVE forward": ("dve.py", "forward"),
    "DVE Adam step": ("adam.py", "adam"),
}


def recipe_profile(options: dict, iterations: int) -> list[tuple[str, float]]:
    """Shares of one official-recipe iteration's time, from cProfile's cumulative times
    of the functions in :data:`RECIPE_PARTS` (the rest: env and agent bookkeeping)."""
    env = gym.make("DataValuation-Adult-v0", predictor="logistic", **options)
    agent = Reinforce(env, seed=0, num_samples=1, log_every=10**9, device=options["device"])
    agent.learn(3, progress_bar=False)
    profile = cProfile.Profile()
    profile.enable()
    agent.learn(iterations, progress_bar=False)
    profile.disable()
    stats = pstats.Stats(profile).stats
    total = sum(tt for _, _, tt, _, _ in stats.values())
    shares = []
    for label, (where, name) in RECIPE_PARTS.items():
        seconds = sum(ct for (file, _, func), (_, _, _, ct, _) in stats.items()
                      if (file.endswith(where) and (name is None or func == name))
                      or (name is None and func.startswith(where)))
        shares.append((label, seconds / total))
    shares.append(("everything else", 1.0 - sum(share for _, share in shares)))
    return shares


def reinforce_rate(options: dict, num_samples: int, iterations: int, batched: bool) -> float:
    env = gym.make("DataValuation-Adult-v0", predictor="logistic", **options)
    agent = Reinforce(env, seed=0, num_samples=num_samples, log_every=10**9,
                      device=options["device"])
    if num_samples > 1 and not batched:
        agent.vector_env = make_vector_env(env, num_samples, batched=False)
    agent.learn(3, progress_bar=False)  # warm-up (and the first reset's baseline)
    start = time.perf_counter()
    agent.learn(iterations, progress_bar=False)
    return iterations / (time.perf_counter() - start)


SMALL = {"batch_sizes": [64, 256], "ks": [64, 256]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke test")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--regime", nargs="+", choices=["large", "small", "recipe"],
                        default=["large", "small", "recipe"])
    parser.add_argument("--envs", nargs="+",
                        default=["DataValuation-Adult-v0", "DataValuation-Digits-v0"])
    parser.add_argument("--predictors", nargs="+", default=["mlp", "logistic"],
                        help="predictors of the large regime (small: mlp)")
    parser.add_argument("--ks", nargs="+", type=int, default=None,
                        help="K of the large regime (default 1 8 32)")
    parser.add_argument("--small-ks", nargs="+", type=int, default=SMALL["ks"])
    parser.add_argument("--small-batch-sizes", nargs="+", type=int,
                        default=SMALL["batch_sizes"])
    parser.add_argument("--csv", default=None, help="also write the tables here")
    parser.add_argument("--sync-max-k", type=int, default=256,
                        help="measure SyncVectorEnv only up to this K (it is K single envs)")
    args = parser.parse_args(argv)
    print(code_line(), flush=True)
    torch.set_num_threads(args.threads)
    options = {"device": args.device, **(QUICK if args.quick else {})}
    warmup, steps = (1, 1) if args.quick else (1, 2)
    print(f"device={args.device} threads={args.threads} torch={torch.__version__} "
          f"{'quick sizes ' + str(QUICK) if args.quick else 'env defaults'}; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
    peak = matmul_peak_gflops(args.device)
    print(f"float32 matrix-multiply peak here (512 x 512 products): {peak:.1f} GFLOP/s",
          flush=True)
    if not args.quick:
        for k, minibatch in ((32, 256), (64, 64), (256, 64)):
            rows = padded_rows(minibatch, k)
            rate = products_gflops(args.device, k, rows, [108, 100, 100, 2])
            print(f"  the batched products alone at an Adult MLP fit's shapes, K={k}, "
                  f"{rows} rows (mini-batches of {minibatch}): {rate:.1f} GFLOP/s, "
                  f"{rate / peak:.0%} of that peak", flush=True)

    tables = {}
    if "large" in args.regime:
        ks = args.ks or ([1, 4] if args.quick else [1, 8, 32])
        tables["Large batches: predictor trainings per second"] = [
            row for env_id in args.envs for predictor in args.predictors
            for row in trainings_table(env_id, predictor, ks, options, warmup, steps,
                                       args.sync_max_k, peak)]
    if "small" in args.regime:
        sizes = [16] if args.quick else args.small_batch_sizes
        ks = [4, 8] if args.quick else args.small_ks
        tables["Small batches, many slots (MLP): predictor trainings per second"] = [
            row for env_id in args.envs for b in sizes
            for row in trainings_table(env_id, "mlp", ks, {**options, "batch_size": b},
                                       warmup, steps, args.sync_max_k, peak)]
    rates, shares = {}, []
    if "recipe" in args.regime:
        iterations = 10 if args.quick else 100
        rates = {
            "reinforce official (K=1), logistic": reinforce_rate(options, 1, iterations, True),
            "reinforce K=8, logistic, batched env": reinforce_rate(options, 8,
                                                                   iterations // 4, True),
            "reinforce K=8, logistic, SyncVectorEnv": reinforce_rate(options, 8,
                                                                     iterations // 4, False),
        }
        shares = recipe_profile(options, iterations)

    for title, rows in tables.items():
        print_table(title, rows, peak)
    print(f"(load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs)")
    if rates:
        print("\nREINFORCE outer iterations per second, Adult"
              + (" (quick sizes)" if args.quick else " defaults (B=1000, 400 Adam steps)"))
        for name, rate in rates.items():
            print(f"  {name:40s} {rate:7.1f} it/s")
        print("Where an official-recipe iteration's time goes (cProfile, cumulative):")
        for label, share in shares:
            print(f"  {label:40s} {share:6.1%}")
    if args.csv:
        rows = [row for table in tables.values() for row in table]
        fields = list(rows[0]) if rows else ["env", "predictor", "single"]
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
            for name, rate in rates.items():
                writer.writerow({"env": "Adult", "predictor": name, "single": rate})


if __name__ == "__main__":
    main()

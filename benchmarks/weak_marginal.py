"""Weak marginal information: a 50-point validation set, where the validation model is
poor. Does the reward-only credit help, next to ``marginal`` and confident learning?

    python benchmarks/weak_marginal.py                 # Adult and Digits, seeds 0 1 2

Rows per (dataset, seed), all with ``n_valid=50``, noise 0.2, 1000 training points:
``marginal`` (the validation model's probability of the given label), ``cleanlab``
(confident learning's self-confidence from out-of-fold logistic regression on the noisy
training split: no validation set at all; needs ``pip install -e '.[peers]'``),
``credit`` with the marginal information in the env (mixed in at its default weight)
and ``credit`` without it, both at ``--fits`` predictor fits. Writes
``benchmarks/results/weak_marginal.csv`` and ``.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import agents
import dvrl_env  # noqa: F401  (registers the ids)
from dvrl_env.evaluation import detection_auroc

try:
    from benchmarks.agent_quality import append_row, set_threads, write_table
    from benchmarks.peers.methods import cleanlab_values
except ModuleNotFoundError:  # run as a file
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.agent_quality import append_row, set_threads, write_table
    from benchmarks.peers.methods import cleanlab_values

METHODS = ("marginal", "cleanlab", "credit (MI on)", "credit (MI off)")


def run_one(env_id: str, method: str, seed: int, args: argparse.Namespace) -> dict:
    start = time.perf_counter()
    env = gym.make(env_id, noise_rate=args.noise_rate, data_seed=seed, n_valid=args.n_valid,
                   predictor="logistic", marginal_information=method != "credit (MI off)")
    dataset = env.unwrapped.dataset
    fits = 0
    if method == "cleanlab":
        values, _ = cleanlab_values(dataset, seed, {})
    else:
        agent = agents.make("marginal" if method == "marginal" else "credit", env, seed=seed)
        if method != "marginal":
            agent.learn(10**9, progress_bar=False, callback=agents.FitBudget(args.fits))
        values, fits = agent.data_values(), agent.fits_used
    return {"env": env_id, "n_valid": args.n_valid, "method": method, "seed": seed,
            "fits": fits, "auroc": detection_auroc(values, dataset.noisy_mask),
            "seconds": time.perf_counter() - start}


def summarise(rows: list[dict]) -> str:
    lines = ["| env | n_valid | method | fits | AUROC per seed | median |",
             "|---|---|---|---|---|---|"]
    keys = list(dict.fromkeys((r["env"], str(r["n_valid"]), r["method"]) for r in rows))
    for env_id, n_valid, method in keys:
        group = [r for r in rows if (r["env"], str(r["n_valid"]), r["method"]) ==
                 (env_id, n_valid, method)]
        aurocs = [float(r["auroc"]) for r in group]
        lines.append(f"| {env_id} | {n_valid} | {method} | {group[0]['fits']} | "
                     f"{' / '.join(f'{a:.3f}' for a in aurocs)} | {np.median(aurocs):.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", nargs="+",
                        default=["DataValuation-Adult-v0", "DataValuation-Digits-v0"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--n-valid", type=int, default=50)
    parser.add_argument("--noise-rate", type=float, default=0.2)
    parser.add_argument("--fits", type=int, default=2400)
    parser.add_argument("--csv", default="benchmarks/results/weak_marginal.csv")
    args = parser.parse_args(argv)
    set_threads(1)
    out = Path(args.csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    for env_id in args.env:
        for method in METHODS:
            for seed in args.seeds:
                row = run_one(env_id, method, seed, args)
                append_row(out, row)
                print(f"{env_id} {method} seed {seed}: AUROC {row['auroc']:.3f} "
                      f"({row['seconds']:.0f} s)", flush=True)
    write_table(out, summarise)
    return 0


if __name__ == "__main__":
    sys.exit(main())

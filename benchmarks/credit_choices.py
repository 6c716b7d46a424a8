"""The measurements behind the defaults of the ``credit`` and ``critic`` agents.

    python benchmarks/credit_choices.py              # all three studies
    python benchmarks/credit_choices.py --study mix

- ``lr``: the utility predictor's learning rate (Digits, B = 50, MI off): the env's
  default 1e-3 against 0.01 and 0.05.
- ``mix``: with the marginal information on (Adult), the credit's weight c in
  ``z(marginal logit) + c z(smoothed credit)``; one learning run per seed, every c
  scored on the same credit.
- ``critic``: the critic's width and gradient steps per round (seed 0, MI off).

Every run: noise 0.2, logistic env predictor, 2,400 predictor fits. Writes
``benchmarks/results/credit_choices.csv`` and ``.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import gymnasium as gym

import agents
import dvrl_env  # noqa: F401  (registers the ids)
from dvrl_env.evaluation import detection_auroc

try:
    from benchmarks.agent_quality import append_row, set_threads, write_table
except ModuleNotFoundError:  # run as a file
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.agent_quality import append_row, set_threads, write_table

ADULT, DIGITS = "DataValuation-Adult-v0", "DataValuation-Digits-v0"
STUDIES = {
    "lr": [(DIGITS, "credit", {"batch_size": 50, "predictor_lr": lr}, False)
           for lr in (None, 0.01, 0.05)],
    "critic": [(env_id, "critic", options, False) for env_id in (ADULT, DIGITS)
               for options in ({"hidden_dim": 64, "gradient_steps": 4},
                               {"hidden_dim": 16, "gradient_steps": 2},
                               {"hidden_dim": 16, "gradient_steps": 8},
                               {"hidden_dim": 16, "gradient_steps": 16},
                               {"hidden_dim": 16, "gradient_steps": 8,
                                "exploration": "values"})],
}
MIX_WEIGHTS = (0.0, 0.1, 0.5, 2.0)


def learned(env_id: str, name: str, options: dict, seed: int, marginal: bool, fits: int):
    env = gym.make(env_id, noise_rate=0.2, data_seed=seed, predictor="logistic",
                   marginal_information=marginal)
    agent = agents.make(name, env, seed=seed, log_every=10**6, **options)
    agent.learn(10**9, progress_bar=False, callback=agents.FitBudget(fits))
    return agent, env.unwrapped.dataset.noisy_mask


def rows_for(study: str, seeds: list[int], fits: int):
    if study == "mix":
        for seed in seeds:
            start = time.perf_counter()
            agent, mask = learned(ADULT, "credit", {}, seed, True, fits)
            for weight in MIX_WEIGHTS:
                agent.config.marginal_weight = weight
                agent._values = None  # the same credit, mixed at another weight
                yield {"study": study, "env": ADULT, "agent": "credit",
                       "options": f"marginal_weight={weight}", "seed": seed,
                       "fits": agent.fits_used, "auroc": detection_auroc(agent.data_values(), mask),
                       "seconds": time.perf_counter() - start}
        return
    for env_id, name, options, marginal in STUDIES[study]:
        for seed in seeds if study == "lr" else [0]:
            start = time.perf_counter()
            agent, mask = learned(env_id, name, options, seed, marginal, fits)
            yield {"study": study, "env": env_id, "agent": name,
                   "options": " ".join(f"{k}={v}" for k, v in options.items()), "seed": seed,
                   "fits": agent.fits_used, "auroc": detection_auroc(agent.data_values(), mask),
                   "seconds": time.perf_counter() - start}


def summarise(rows: list[dict]) -> str:
    lines = ["| study | env | agent | options | fits | AUROC per seed |",
             "|---|---|---|---|---|---|"]
    keys = list(dict.fromkeys((r["study"], r["env"], r["agent"], r["options"]) for r in rows))
    for key in keys:
        group = [r for r in rows if (r["study"], r["env"], r["agent"], r["options"]) == key]
        per_seed = " / ".join(f"{float(r['auroc']):.3f}" for r in group)
        lines.append(f"| {' | '.join(key)} | {group[0]['fits']} | {per_seed} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", nargs="+", default=["mix", "critic", "lr"],
                        choices=["lr", "mix", "critic"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--fits", type=int, default=2400)
    parser.add_argument("--csv", default="benchmarks/results/credit_choices.csv")
    args = parser.parse_args(argv)
    set_threads(1)
    out = Path(args.csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    for study in args.study:
        for row in rows_for(study, args.seeds, args.fits):
            append_row(out, row)
            print(f"{row['study']} {row['env']} {row['agent']} {row['options']} seed "
                  f"{row['seed']}: AUROC {row['auroc']:.3f}", flush=True)
    write_table(out, summarise)
    return 0


if __name__ == "__main__":
    sys.exit(main())

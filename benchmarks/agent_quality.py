"""How well does each agent find corrupted labels? Detection AUROC over data seeds.

    python benchmarks/agent_quality.py --env DataValuation-Adult-v0 --seeds 0 1 2
    python benchmarks/agent_quality.py --env DataValuation-Digits-v0 --agents reinforce-k8-skip
    python benchmarks/agent_quality.py --summarise benchmarks/results/agent_quality_*.csv
    python benchmarks/agent_quality.py --fits 2400 --env-arg marginal_information=false \
        --env-arg predictor='"logistic"' --agents credit reinforce-k8   # equal compute

Each (agent, seed) run makes the env with ``noise_rate`` (default 0.2) and
``data_seed=seed``, trains the agent for its number of updates (or, with ``--fits N``,
until it has used N predictor fits, every env copy counted: agents with different K and
batch sizes then compare at equal compute) and scores ``data_values()`` against the dataset's noise
mask. Every finished run is appended to
``--csv`` at once, so a long benchmark that is stopped keeps what it measured; the
summary table (median, min and max AUROC over seeds, mean clean-minus-corrupted value
gap, updates, wall time per run) is printed at the end and written as markdown.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from threadpoolctl import threadpool_limits

import agents
import dvrl_env  # noqa: F401  (registers the ids)
from dvrl_env.evaluation import detection_auroc, value_gap

# label: (agent name, options, updates)
AGENTS: dict[str, tuple[str, dict, int]] = {
    "random": ("random", {}, 0),
    "marginal": ("marginal", {}, 0),
    "oracle": ("oracle", {}, 1000),
    "reinforce-official": ("reinforce", {}, 300),
    "reinforce-k8": ("reinforce", {"num_samples": 8}, 150),
    "reinforce-k8-skip": ("reinforce", {"num_samples": 8, "architecture": "skip"}, 150),
    "gumbel": ("gumbel", {}, 300),
    "ppo": ("ppo", {}, 40),
    "a2c": ("a2c", {}, 60),
    "credit": ("credit", {}, 300),
    "credit-b50": ("credit", {"batch_size": 50}, 300),
    "credit-raw": ("credit", {"smoother": "none"}, 300),
    "credit-k4": ("credit", {"num_samples": 4}, 600),
    "credit-k16": ("credit", {"num_samples": 16}, 150),
    "credit-k32": ("credit", {"num_samples": 32}, 75),
    "critic": ("critic", {}, 300),
    "critic-b100": ("critic", {"batch_size": 100}, 300),
}
#: agents that never step an env: a fit budget does not apply to them
NO_FITS = ("random", "marginal", "oracle")


def run_one(env_id: str, label: str, seed: int, noise_rate: float, updates: int | None,
            env_kwargs: dict, fits: int | None = None) -> dict:
    name, options, default_updates = AGENTS[label]
    updates = default_updates if updates is None else updates
    budget = fits is not None and name not in NO_FITS
    start = time.perf_counter()
    env = gym.make(env_id, noise_rate=noise_rate, data_seed=seed, **env_kwargs)
    agent = agents.make(name, env, seed=seed, log_every=max(1, updates // 10), **options)
    agent.learn(10**9 if budget else updates, progress_bar=False,
                callback=agents.FitBudget(fits) if budget else None)
    values = agent.data_values()
    mask = env.unwrapped.dataset.noisy_mask
    curve = [round(r["auroc"], 3) for r in agent.log_rows if "auroc" in r]
    return {
        "env": env_id, "env_args": _env_args(env_kwargs), "agent": label, "seed": seed,
        "updates": agent.steps_done, "fits": agent.fits_used,
        "batch_size": learned_batch_size(agent),
        "auroc": detection_auroc(values, mask), "gap": value_gap(values, mask),
        "mean_value": float(values.mean()), "seconds": time.perf_counter() - start,
        "auroc_curve": json.dumps(curve),
    }


def learned_batch_size(agent: agents.Agent) -> int | str:
    """The batch size B of the env the agent's learning stepped (its own utility env's
    for ``credit`` and ``critic``); ``""`` for agents that step none."""
    stepped = agent.stepped_envs()
    if not stepped or agent.fits_used == 0:
        return ""
    space = getattr(stepped[0], "single_action_space", stepped[0].action_space)
    return int(space.shape[-1])


def append_row(path: Path, row: dict) -> None:
    """Append one finished run to ``path`` (written with a header if new), so a stopped
    benchmark keeps what it measured; refuses a file whose columns differ."""
    new = not path.exists() or path.stat().st_size == 0
    if not new:
        with open(path, newline="") as f:
            header = next(csv.reader(f), [])
        if header != list(row):
            raise ValueError(f"{path} has the columns {header}, this run writes {list(row)}; "
                             "pass another --csv.")
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def write_table(out: Path, summarise) -> str:
    """``summarise`` every row of ``out`` (earlier runs' too), print the table and write
    it beside ``out`` as ``.md``."""
    with open(out, newline="") as f:
        table = summarise(list(csv.DictReader(f)))
    print(table)
    out.with_suffix(".md").write_text(table + "\n")
    return table


def set_threads(count: int) -> None:
    """torch's and numpy/BLAS's threads (the logistic predictor fits in numpy)."""
    torch.set_num_threads(count)
    threadpool_limits(count)


def _env_args(env_kwargs: dict) -> str:
    """The ``--env-arg`` options as one CSV cell, ``""`` for the env's defaults."""
    return json.dumps(env_kwargs, sort_keys=True) if env_kwargs else ""


def summarise(rows: list[dict], best_batch: bool = False) -> str:
    """One line per (env, env options, agent); runs with other env options never mix.

    ``best_batch``: one line per (env, agent with its options but the batch size), the
    batch size whose median AUROC is highest, with the sizes tried."""
    lines = ["| env | env options | agent | B | seeds | updates | fits | AUROC median | min "
             "| max | clean - corrupted | s / run |", "|---" * 12 + "|"]

    def key(r: dict) -> tuple[str, str, str]:
        return r["env"], r.get("env_args") or "", r["agent"]

    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(key(r), []).append(r)
    tried: dict[tuple, list[str]] = {}
    if best_batch:
        best: dict[tuple, tuple] = {}
        for k, group in groups.items():
            family = (k[0], _family(k[2]))
            tried.setdefault(family, []).append(str(group[0].get("batch_size", "")))
            if family not in best or _median(group) > _median(groups[best[family]]):
                best[family] = k
        groups = {k: groups[k] for k in best.values()}
    for env_id, env_args, label in sorted(groups, key=lambda k: (k[0], list(AGENTS).index(k[2]),
                                                                 k[1])):
        group = groups[env_id, env_args, label]
        auroc = np.array([float(r["auroc"]) for r in group])
        gap = np.mean([float(r["gap"]) for r in group])
        secs = np.mean([float(r["seconds"]) for r in group])
        size = group[0].get("batch_size", "")
        others = sorted({b for b in tried.get((env_id, _family(label)), []) if b}, key=int)
        if len(others) > 1:
            size = f"{size} (of {', '.join(others)})"
        lines.append(f"| {env_id} | {env_args or 'defaults'} | {label} | {size or 'n/a'} | "
                     f"{len(group)} | {group[0]['updates']} | {group[0].get('fits', 'n/a')} | "
                     f"{np.median(auroc):.3f} | {auroc.min():.3f} | {auroc.max():.3f} | "
                     f"{gap:+.3f} | {secs:.0f} |")
    return "\n".join(lines)


def _median(group: list[dict]) -> float:
    return float(np.median([float(r["auroc"]) for r in group]))


def _family(label: str) -> str:
    """An agent with its options, the batch size left out: labels that differ only in B
    (``credit``, ``credit-b50``) are one family."""
    name, options, _ = AGENTS[label]
    return json.dumps([name, {k: v for k, v in options.items() if k != "batch_size"}],
                      sort_keys=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", nargs="+", default=["DataValuation-Adult-v0"])
    parser.add_argument("--agents", nargs="+", default=list(AGENTS), choices=list(AGENTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--noise-rate", type=float, default=0.2)
    parser.add_argument("--updates", type=int, default=None,
                        help="override every agent's number of updates")
    parser.add_argument("--fits", type=int, default=None,
                        help="learn until this many predictor fits (agents that step envs)")
    parser.add_argument("--env-arg", action="append", default=[], metavar="KEY=JSON",
                        help="extra env option, e.g. --env-arg predictor='\"logistic\"'")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 lets two benchmarks share 2 cores)")
    parser.add_argument("--csv", default="benchmarks/results/agent_quality.csv")
    parser.add_argument("--summarise", nargs="+", metavar="CSV", default=None,
                        help="run nothing: print (and write to --csv's .md) the table of "
                             "these earlier runs' CSVs")
    parser.add_argument("--best-batch", action="store_true",
                        help="with --summarise: each agent at its best batch size only")
    args = parser.parse_args(argv)
    if args.summarise:
        rows = []
        for path in args.summarise:
            with open(path, newline="") as f:
                rows.extend(csv.DictReader(f))
        table = summarise(rows, best_batch=args.best_batch)
        print(table)
        Path(args.csv).with_suffix(".md").write_text(table + "\n")
        return 0
    set_threads(args.threads)
    env_kwargs = {k: json.loads(v) for k, v in (a.split("=", 1) for a in args.env_arg)}
    out = Path(args.csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for env_id in args.env:
        for label in args.agents:
            for seed in args.seeds:
                row = run_one(env_id, label, seed, args.noise_rate, args.updates, env_kwargs,
                              args.fits)
                rows.append(row)
                append_row(out, row)
                print(f"{env_id} {label} seed {seed}: AUROC {row['auroc']:.3f} gap "
                      f"{row['gap']:+.3f} ({row['seconds']:.0f} s) curve {row['auroc_curve']}",
                      flush=True)
    table = summarise(rows)
    print(table)
    out.with_suffix(".md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``dvrl``: value a dataset's training points from the command line.

    dvrl value --env DataValuation-Digits-v0 --env-arg noise_rate=0.2 --agent reinforce \\
        --agent-arg num_samples=8 --steps 50 --out runs/digits
    dvrl value --csv train.csv --label-column y --noise-rate 0.2 --out runs/mine
    dvrl evaluate runs/digits
    dvrl envs | dvrl agents

This is the one module of ``dvrl_env`` that imports ``agents``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym

import dvrl_env
from dvrl_env.atomic import atomic_write_text
from dvrl_env.tabular import load_csv

RUN_FILE = "run.json"
CHECKPOINT = "agent.ckpt"


class UserError(Exception):
    """A mistake in the command or its input: reported in one line, exit status 2."""


def parse_assignments(items: list[str], flag: str) -> dict[str, Any]:
    """``key=value`` pairs; a value is parsed as JSON when it can be (numbers, true,
    null, lists), else kept as a string."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"{flag} expects key=value, got {item!r}.")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


# ---- building a run -------------------------------------------------------------------
def build_env(settings: dict) -> gym.Env:
    env_args = dict(settings["env_args"])
    try:
        if settings.get("csv"):
            dataset = load_csv(settings["csv"], settings["label_column"],
                               valid=settings.get("valid_csv"), test=settings.get("test_csv"),
                               noise_rate=settings.get("noise_rate") or 0.0,
                               seed=env_args.pop("data_seed", 0))
            return gym.make("DataValuation-v0", dataset=dataset, **env_args)
        if settings["env"] not in dvrl_env.ENV_IDS:
            raise UserError(f"Unknown env {settings['env']!r}; choose one of "
                            f"{sorted(dvrl_env.ENV_IDS)} (or --csv for your own table).")
        if settings.get("noise_rate") is not None:
            env_args.setdefault("noise_rate", settings["noise_rate"])
        return gym.make(settings["env"], **env_args)
    except (ValueError, TypeError, FileNotFoundError) as err:
        raise UserError(str(err)) from None


def build_agent(settings: dict, env: gym.Env, out: Path):
    import agents

    if settings["agent"] not in agents.names():
        raise UserError(f"Unknown agent {settings['agent']!r}; choose one of {agents.names()}.")
    try:
        return agents.make(settings["agent"], env, seed=settings["seed"],
                           log_dir=str(out / "log"), **settings["agent_args"])
    except (ValueError, TypeError) as err:
        raise UserError(str(err)) from None


def check_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a directory.")
    if out.exists() and any(out.iterdir()) and not overwrite:
        what = "another run" if (out / RUN_FILE).exists() else "other files"
        raise UserError(f"--out {out} is not empty (it holds {what}); choose a new directory, "
                        f"pass --overwrite to replace it, or --resume {out} to continue it.")


def clear_previous_run(out: Path) -> None:
    """For ``--overwrite``: remove what an earlier run wrote to ``out``, so that its log
    rows and figures cannot mix with the new run's; other files are left alone."""
    from dvrl_env import report

    for name in (RUN_FILE, CHECKPOINT, *report.OUTPUT_FILES):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / report.LOG_FILE.parent, ignore_errors=True)


# ---- commands -------------------------------------------------------------------------
def cmd_value(args: argparse.Namespace) -> int:
    from dvrl_env import report

    if args.resume:
        out = Path(args.resume)
        if not (out / RUN_FILE).is_file():
            raise UserError(f"--resume {out}: no {RUN_FILE} there; it is not a dvrl run directory.")
        settings = json.loads((out / RUN_FILE).read_text())
        if args.steps is not None:
            settings["steps"] = args.steps
    else:
        if args.out is None:
            raise UserError("--out DIR is required (where values, metrics and plots go).")
        if args.csv and args.label_column is None:
            raise UserError("--csv needs --label-column NAME (the column holding the labels).")
        out = Path(args.out)
        check_out_dir(out, args.overwrite)
        settings = {
            "env": None if args.csv else args.env, "csv": args.csv,
            "label_column": args.label_column, "valid_csv": args.valid_csv,
            "test_csv": args.test_csv, "noise_rate": args.noise_rate,
            "env_args": parse_assignments(args.env_arg, "--env-arg"),
            "agent": args.agent, "agent_args": parse_assignments(args.agent_arg, "--agent-arg"),
            "steps": 100 if args.steps is None else args.steps, "seed": args.seed,
        }
    start = time.perf_counter()
    env = build_env(settings)
    agent = build_agent(settings, env, out)
    if not args.resume and out.is_dir():  # --overwrite, now that the settings are valid
        clear_previous_run(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / RUN_FILE, json.dumps(settings, indent=2))
    if args.resume and (out / CHECKPOINT).exists():
        import agents

        agent = agents.load(out / CHECKPOINT, env)
        agent.config.log_dir = str(out / "log")
    remaining = max(0, settings["steps"] - agent.steps_done)
    try:
        agent.learn(remaining, progress_bar=not args.quiet)
    except KeyboardInterrupt:
        agent.save(out / CHECKPOINT)
        report.write_values(out, env.unwrapped.dataset, agent.data_values())
        print(f"\ninterrupted after {agent.steps_done} of {settings['steps']} updates; the "
              f"checkpoint and values so far are in {out}.\nresume with: dvrl value --resume "
              f"{shlex.quote(str(out))}", file=sys.stderr)
        return 130
    agent.save(out / CHECKPOINT)
    values = agent.data_values()
    elapsed = time.perf_counter() - start
    metrics = report.write_run(out, env.unwrapped.dataset, values, settings,
                               seconds=elapsed, steps_done=agent.steps_done)
    if not args.quiet:
        print(report.summary(metrics))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from dvrl_env import report

    out = Path(args.run_dir)
    if not (out / RUN_FILE).is_file():
        raise UserError(f"{out} is not a dvrl run directory (no {RUN_FILE}).")
    settings = json.loads((out / RUN_FILE).read_text())
    env = build_env(settings)
    metrics = report.evaluate_dir(out, env.unwrapped.dataset, settings)
    if not args.quiet:
        print(report.summary(metrics))
    return 0


def cmd_envs(args: argparse.Namespace) -> int:
    for env_id, kwargs in sorted(dvrl_env.ENV_IDS.items()):
        print(f"{env_id:32s} {kwargs.get('dataset', 'your data: dataset=from_arrays(...)')}")
    return 0


def cmd_agents(args: argparse.Namespace) -> int:
    import agents

    print("\n".join(agents.names()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dvrl", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    value = sub.add_parser("value", help="learn data values and evaluate them")
    value.add_argument("--env", default="DataValuation-Digits-v0", help="a registered env id")
    value.add_argument("--csv", help="your own training table instead of --env")
    value.add_argument("--label-column", help="the label column of --csv")
    value.add_argument("--valid-csv", help="clean validation table (default: hold out 20%%)")
    value.add_argument("--test-csv", help="test table (default: hold out 20%%)")
    value.add_argument("--noise-rate", type=float, default=None,
                       help="flip this fraction of training labels (to measure detection)")
    value.add_argument("--agent", default="reinforce")
    value.add_argument("--steps", type=int, default=None, help="agent updates (default 100)")
    value.add_argument("--seed", type=int, default=0)
    value.add_argument("--out", help="output directory")
    value.add_argument("--env-arg", action="append", default=[], metavar="KEY=VALUE")
    value.add_argument("--agent-arg", action="append", default=[], metavar="KEY=VALUE")
    value.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    value.add_argument("--resume", metavar="DIR", help="continue an interrupted run")
    value.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    value.set_defaults(func=cmd_value)
    evaluate = sub.add_parser("evaluate", help="recompute metrics and plots of a finished run")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--quiet", action="store_true")
    evaluate.set_defaults(func=cmd_evaluate)
    sub.add_parser("envs", help="list env ids").set_defaults(func=cmd_envs)
    sub.add_parser("agents", help="list agent names").set_defaults(func=cmd_agents)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as err:
        print(f"dvrl: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""``dvrl``: value a dataset's training points from the command line.

    dvrl value --env DataValuation-Digits-v0 --env-arg noise_rate=0.2 --agent reinforce \\
        --agent-arg num_samples=8 --steps 50 --out runs/digits
    dvrl value --csv train.csv --label-column y --noise-rate 0.2 --out runs/mine
    dvrl evaluate runs/digits
    dvrl bench benchmarks/specs/leaderboard.toml --out runs/leaderboard --workers 2
    dvrl envs | dvrl agents
    dvrl value --import my_plugin --agent my_agent --env DataValuation-Mine-v0 --out runs/mine

``--import MODULE`` (every command) imports a module that registers agents, datasets,
predictors or bench hooks before anything else; installed plugins (the entry-point group
``dvrl_env.plugins``, :mod:`dvrl_env.plugins`) are loaded at start.

The command line is the application (:mod:`dvrl_env.app`): it sits above both the
library (data, predictors, envs, evaluation) and ``agents``, and imports either; neither
imports it (tests/test_layers.py).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import math
import shlex
import shutil
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym

import dvrl_env
from agents.callbacks import Callback
from dvrl_env.app import find, runs
from dvrl_env.app.runs import RunDir, RunError
from dvrl_env.data.registry import dataset_entry
from dvrl_env.data.tabular import load_csv
from dvrl_env.plugins import PluginError, import_plugin, load_plugins, loaded_plugins

#: without --checkpoint-every, a checkpoint is written when this many seconds have passed
CHECKPOINT_SECONDS = 60.0
#: exit statuses: a user error, and 128 + the signal that stopped a run
EXIT_ERROR = 2


class UserError(Exception):
    """A mistake in the command or its input: reported in one line, exit status 2."""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM aborting a command: the exit status is 128 + ``signum``."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


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


def set_threads(count: int) -> None:
    """One deliberate thread count for torch and the BLAS libraries (see ``--threads``)."""
    from dvrl_env.app.bench.run_cell import set_threads as pin_threads

    if count < 1:
        raise UserError(f"--threads must be >= 1, got {count}.")
    pin_threads(count)


# ---- building a run -------------------------------------------------------------------
def build_env(settings: dict, reference_weights=None) -> gym.Env:
    """The run's env (with a cross-fitted round's ``reference_weights``); warnings about
    the data (columns taken as categorical, many categories, classes missing from
    validation) are printed, not lost."""
    env_args = dict(settings["env_args"])
    if reference_weights is not None:
        env_args["reference_weights"] = reference_weights
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            env = _make_env(settings, env_args)
        except (ValueError, TypeError, FileNotFoundError) as err:
            # gym.make appends the kwargs to a TypeError: the first part says it all
            raise UserError(str(err).split(" was raised from the environment creator")[0]) \
                from None
    for warning in caught:
        if issubclass(warning.category, UserWarning):
            print(f"dvrl: warning: {warning.message}", file=sys.stderr)
    return env


def _make_env(settings: dict, env_args: dict) -> gym.Env:
    if settings.get("csv"):
        from dvrl_env.options import check_option

        seed = check_option("--env-arg", "data_seed", env_args.pop("data_seed", 0), int)
        cross_fit = env_args.get("validation") == "cross-fit" and not settings.get("valid_csv")
        dataset = load_csv(settings["csv"], settings["label_column"],
                           valid=settings.get("valid_csv"), test=settings.get("test_csv"),
                           noise_rate=settings.get("noise_rate") or 0.0, seed=seed,
                           missing_values=settings.get("missing_values") or (),
                           drop_columns=settings.get("drop_columns") or (),
                           validation="cross-fit" if cross_fit else "given")
        if cross_fit:
            env_args["data_seed"] = seed  # the folds are drawn with it
        return gym.make("DataValuation-v0", dataset=dataset, **env_args)
    if settings["env"] not in dvrl_env.ENV_IDS:
        raise UserError(f"Unknown env {settings['env']!r}; choose one of "
                        f"{sorted(dvrl_env.ENV_IDS)} (or --csv for your own table).")
    if settings.get("noise_rate") is not None:
        env_args.setdefault("noise_rate", settings["noise_rate"])
    return gym.make(settings["env"], **env_args)


def build_agent(settings: dict, env: gym.Env, run: RunDir):
    import agents

    try:
        return agents.make(settings["agent"], env, seed=settings["seed"],
                           log_dir=log_dir(run), **settings["agent_args"])
    except (ValueError, TypeError) as err:  # an unknown agent or option names the choices
        raise UserError(str(err)) from None


def log_dir(run: RunDir) -> str:
    """The agent's ``log_dir``, absolute: the agent writes the run's log there."""
    return str(run.log_dir.resolve())


def check_new_out(run: RunDir, overwrite: bool) -> bool:
    """Whether ``run`` holds an earlier run that ``--overwrite`` replaces; any other
    non-empty folder is refused: --overwrite replaces a run's own files, nothing else."""
    out = run.path
    if not any(p.name != RunDir.LOCK for p in out.iterdir()):
        return False
    is_run = run.run_file.exists()
    if not overwrite:
        what = "another run" if is_run else "other files"
        raise UserError(f"--out {out} is not empty (it holds {what}); choose a new directory, "
                        f"pass --overwrite to replace it, or --resume {out} to continue it.")
    if not is_run:
        names = sorted(p.name for p in out.iterdir() if p.name != RunDir.LOCK)
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise UserError(f"--out {out} holds files that are not a dvrl run ({shown}; no "
                        f"{RunDir.RUN}), and --overwrite replaces only a run; choose a new or "
                        "empty directory for --out.")
    return True


def check_inputs_outside(out: Path, settings: dict) -> None:
    """An --out holding an input file is refused: the run writes and replaces files there."""
    folder = out.resolve()
    for key, path in runs.input_files(settings).items():
        if Path(path).resolve().is_relative_to(folder):
            raise UserError(f"--out {out} holds the input --{key.replace('_', '-')} {path}; a "
                            "run writes and replaces files in --out, so choose an --out that "
                            "holds none of its input files.")


class Stopper:
    """SIGINT and SIGTERM during learning and the checkpoint written after it: the first
    asks the agent to stop after the update in progress (so the checkpoint is a state the
    run really passed through, and no save is cut short); a second aborts at once,
    keeping the last checkpoint."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signal: int | None = None
        self._previous: dict = {}

    def __enter__(self) -> Stopper:
        if threading.current_thread() is threading.main_thread():  # only it gets signals
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame) -> None:
        if self.signal is not None:
            raise Interrupted(signum)
        self.signal = signum


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM held until the block ends (then handled as usual): moving a new
    run over an old one is never cut half-way."""
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class Checkpointer(Callback):
    """The callback that saves the checkpoint every ``every`` updates (or, without it,
    every CHECKPOINT_SECONDS) and stops learning when a signal came."""

    def __init__(self, run: RunDir, settings: dict, stopper: Stopper, every: int | None,
                 replaces: RunDir | None = None, round_state: dict | None = None):
        self.path = run.checkpoint
        self.metadata = {"run": json.loads(json.dumps(runs.identity(settings))),
                         **(round_state or {})}
        self.stopper, self.every, self.replaces = stopper, every, replaces
        self.last = time.monotonic()

    def on_step(self, agent, step: int, logs: dict) -> bool:
        if self.stopper.signal is not None:
            return False  # saved after learn returns
        if not math.isfinite(logs.get("mean_value", 0.0)):  # diverged: stop before saving it
            check_finite(agent.data_values(), agent, self.replaces)
        due = (step % self.every == 0) if self.every else \
            time.monotonic() - self.last >= CHECKPOINT_SECONDS
        if due:
            self.save(agent)
        return True

    def save(self, agent) -> None:
        agent.save(self.path, metadata=self.metadata)
        self.last = time.monotonic()


# ---- commands -------------------------------------------------------------------------
RESUME_FIXED = (("--env", "env"), ("--csv", "csv"), ("--label-column", "label_column"),
                ("--valid-csv", "valid_csv"), ("--test-csv", "test_csv"),
                ("--noise-rate", "noise_rate"), ("--agent", "agent"), ("--seed", "seed"),
                ("--out", "out"), ("--env-arg", "env_arg"), ("--agent-arg", "agent_arg"),
                ("--overwrite", "overwrite"), ("--missing-value", "missing_value"),
                ("--drop-column", "drop_column"), ("--rounds", "rounds"))


def cmd_value(args: argparse.Namespace) -> int:
    args.started = time.perf_counter()  # the run's wall time includes loading the data
    if args.steps is not None and args.steps < 0:
        raise UserError(f"--steps must be >= 0, got {args.steps}.")
    if args.checkpoint_every is not None and args.checkpoint_every < 1:
        raise UserError(f"--checkpoint-every must be >= 1 update, got {args.checkpoint_every}.")
    return resume_run(args) if args.resume else new_run(args)


def new_run(args: argparse.Namespace) -> int:
    if args.out is None:
        raise UserError("--out DIR is required (where values, metrics and plots go).")
    if args.csv and args.label_column is None:
        raise UserError("--csv needs --label-column NAME (the column holding the labels).")
    if args.csv and args.env:
        raise UserError("--env and --csv both name the data; give --env ID for a registered "
                        "dataset or --csv FILE for your own table, not both.")
    run = RunDir(args.out)
    env_args = parse_assignments(args.env_arg, "--env-arg")
    # a table with no clean validation file: every row valued against the other rows
    no_clean_set = bool(args.csv) and not args.valid_csv
    if no_clean_set:
        env_args.setdefault("validation", "cross-fit")
    cross_fit = env_args.get("validation") == "cross-fit"
    agent = args.agent or (CROSS_FIT_AGENT if cross_fit else DEFAULT_AGENT)
    rounds = (DEFAULT_ROUNDS if cross_fit else 1) if args.rounds is None else args.rounds
    if rounds < 1 or (rounds > 1 and not cross_fit):
        raise UserError(f"--rounds {rounds}: " + (
            "give at least 1." if rounds < 1 else "rounds re-weight the cross-fitted "
            "reference, so they need --env-arg validation=cross-fit (the default with --csv "
            "and no --valid-csv)."))
    settings = {
        "env": None if args.csv else (args.env or DEFAULT_ENV), "csv": args.csv,
        "label_column": args.label_column, "valid_csv": args.valid_csv,
        "test_csv": args.test_csv, "noise_rate": args.noise_rate,
        "missing_values": args.missing_value, "drop_columns": args.drop_column,
        "env_args": env_args, "agent": agent,
        "agent_args": parse_assignments(args.agent_arg, "--agent-arg"),
        "steps": (find.default_steps(agent) if args.steps is None else args.steps),
        "seed": 0 if args.seed is None else args.seed,
        "threads": 1 if args.threads is None else args.threads,
        "rounds": rounds,
        # modules that registered what the run uses: resume and evaluate import them again
        "imports": list(args.imports),
    }
    check_inputs_outside(run.path, settings)
    set_threads(settings["threads"])
    existed = run.path.exists()
    runs.check_out_dir(run.path)  # a file, or under one, or unwritable: refused before anything
    try:
        with run.lock():
            return start_run(run, settings, args)
    finally:
        if not existed and run.path.is_dir() and not any(run.path.iterdir()):
            run.path.rmdir()  # a run that failed before writing anything leaves no folder


def start_run(run: RunDir, settings: dict, args: argparse.Namespace) -> int:
    """A new run in ``run`` (locked). Replacing an earlier run (--overwrite), it runs in a
    folder inside ``run`` and takes the old run's place only once it has finished or was
    stopped by a signal (resumable): a run that fails leaves the old one whole."""
    replacing = check_new_out(run, args.overwrite)
    target = run.new_replacement() if replacing else run
    try:
        env = build_env(settings)
        agent = build_agent(settings, env, target)
        settings = runs.record_inputs(settings)
        settings["dataset_sha256"] = env.unwrapped.dataset.fingerprint()
        target.write_settings(settings)
        return execute(target, settings, env, agent, args, replaces=run if replacing else None)
    except BaseException:
        if replacing:
            shutil.rmtree(target.path, ignore_errors=True)  # the old run stays as it was
        elif not run.checkpoint.exists():  # nothing worth resuming: leave no trace
            run.remove_files()
        raise


def resume_run(args: argparse.Namespace) -> int:
    return with_locked_run(args.resume, continue_run, args)


def with_locked_run(path: str, command, args: argparse.Namespace) -> int:
    """``command(run, args)`` on the run directory at ``path``, holding its lock; a folder
    that is not a run directory is said before anything is written there."""
    run = RunDir(path)
    run.read_settings()
    with run.lock():
        return command(run, args)


def continue_run(run: RunDir, args: argparse.Namespace) -> int:
    import agents
    from agents.checkpoint import read_checkpoint

    out = run.path
    conflicts = [flag for flag, name in RESUME_FIXED
                 if getattr(args, name) not in (None, [], False)]
    settings = run.read_settings()
    if conflicts:
        raise UserError(f"--resume {out} continues the run as {run.RUN} records it (agent "
                        f"{settings['agent']!r}, seed {settings['seed']}); {', '.join(conflicts)} "
                        "cannot change it. Start a new run with --out for other settings.")
    settings["imports"] = import_recorded(run, settings, args.imports)
    run.check_inputs(settings)
    if args.threads is not None and args.threads != settings.get("threads", 1):
        print(f"dvrl: warning: the run used --threads {settings.get('threads', 1)}; with "
              f"{args.threads} its floats may round differently from an uninterrupted run.",
              file=sys.stderr)
    set_threads(args.threads or settings.get("threads", 1))
    path = run.checkpoint
    checkpoint = read_checkpoint(path) if path.exists() else None
    round_state = {"round": 0, "reference_weights": None}
    if checkpoint is not None:
        check_checkpoint_run(checkpoint, settings, run)
        round_state = checkpoint_round(checkpoint, path)
    env = build_env(settings, round_state["reference_weights"])
    run.check_dataset(settings, env.unwrapped.dataset.fingerprint())
    if checkpoint is not None:
        agent = agents.from_checkpoint(checkpoint, env, path, log_dir=log_dir(run))
    else:
        agent = build_agent(settings, env, run)
    steps = settings["steps"] if args.steps is None else args.steps
    if steps < agent.steps_done:
        raise UserError(f"--steps {steps} is fewer than the {agent.steps_done} updates the run "
                        f"in {out} has done; give --steps >= {agent.steps_done} (or none to "
                        f"finish its {settings['steps']}).")
    settings["steps"] = steps
    last_logged = run.truncate_log(agent.steps_done)
    if not args.quiet:
        print(resume_note(out, agent.steps_done, steps, last_logged, path.exists()),
              file=sys.stderr)
    run.write_settings(settings)
    return execute(run, settings, env, agent, args, round_state=round_state)


def import_recorded(run: RunDir, settings: dict, extra: list[str]) -> list[str]:
    """Import the modules the run was made with (its ``--import``), then ``extra`` ones
    given now (already imported by :func:`main`); returns them all, in order. One that
    cannot be imported now is refused: the run's agent or dataset would be unknown."""
    recorded = settings.get("imports", [])
    for name in recorded:
        try:
            import_plugin(name)
        except PluginError as err:
            raise UserError(f"the run in {run.path} was made with --import {name}, which "
                            f"cannot be imported now ({err.reason}); put its folder on "
                            "PYTHONPATH (or run from that folder) or install it, then run "
                            "again.") from None
    return list(dict.fromkeys([*recorded, *extra]))


def checkpoint_round(checkpoint: dict, path: Path) -> dict:
    """The round a checkpoint was saved in and that round's reference weights."""
    from agents.checkpoint import CheckpointError

    meta = json.loads(checkpoint["metadata"])
    state = {"round": meta.get("round", 0), "reference_weights": meta.get("reference_weights")}
    if not isinstance(state["round"], int) or state["round"] < 0 or not (
            state["reference_weights"] is None or isinstance(state["reference_weights"], list)):
        raise CheckpointError(f"{path}: its round ({state['round']!r}) or reference weights "
                              "are damaged.")
    return state


def check_checkpoint_run(checkpoint: dict, settings: dict, run: RunDir) -> None:
    """The checkpoint must be this run's: same agent, seed, data and options."""
    saved = json.loads(checkpoint["metadata"]).get("run")
    current = json.loads(json.dumps(runs.identity(settings)))
    if checkpoint["agent"] != settings["agent"] or saved != current:
        differ = sorted(k for k in current if (saved or {}).get(k) != current[k])
        raise UserError(f"{run.checkpoint} belongs to another run (agent "
                        f"{checkpoint['agent']!r}; its settings differ from {run.RUN} in "
                        f"{differ or ['agent']}). Put this run's checkpoint back, or delete "
                        "it to restart the run from update 0.")


def resume_note(out: Path, done: int, steps: int, last_logged: int | None,
                had_checkpoint: bool) -> str:
    start = (f"resuming {out} from its checkpoint at update {done} of {steps}" if had_checkpoint
             else f"{out} has no checkpoint yet: starting again from update 0 of {steps}")
    if last_logged is not None and last_logged > done:
        start += (f"; the log had reached update {last_logged}, so {last_logged - done} "
                  "updates were lost and are redone")
    return start + "."


def execute(run: RunDir, settings: dict, env: gym.Env, agent, args: argparse.Namespace,
            replaces: RunDir | None = None, round_state: dict | None = None) -> int:
    """Learn up to ``settings["steps"]`` in each of ``settings["rounds"]`` rounds, with
    periodic checkpoints, then write the outputs (staged: all or none of them appear).
    With ``replaces``, the finished (or signal-stopped) run then takes the place of the
    run there.

    A round after the first values the rows again against a reference re-weighted by the
    previous round's values (:func:`~dvrl_env.data.crossfit.reference_weights`), with a
    fresh agent; the checkpoint records the round and its weights."""
    from dvrl_env.app import report
    from dvrl_env.data.crossfit import reference_weights

    start = getattr(args, "started", None) or time.perf_counter()
    dataset = env.unwrapped.dataset
    stopper = Stopper()
    rounds = settings.get("rounds", 1)
    state = dict(round_state or {"round": 0, "reference_weights": None})
    home = replaces or run  # where the run's files are once this returns
    with stopper:  # a first signal while saving is noted, not raised inside the save
        while True:
            checkpointer = Checkpointer(run, settings, stopper, args.checkpoint_every,
                                        replaces, state)
            remaining = settings["steps"] - agent.steps_done
            if rounds > 1 and not args.quiet:
                print(f"round {state['round'] + 1} of {rounds}" + (
                    "" if state["round"] == 0 else ": the reference re-weighted by the "
                    "previous round's values") + f" ({time.perf_counter() - start:.0f} s "
                    "so far)", file=sys.stderr)
            # a bar for one update of an agent that learns nothing would only be noise
            agent.learn(remaining, progress_bar=not args.quiet and settings["steps"] > 1,
                        callback=checkpointer)
            values = agent.data_values()
            check_finite(values, agent, replaces)  # a diverged state replaces no checkpoint
            checkpointer.save(agent)
            if stopper.signal is not None or state["round"] + 1 >= rounds:
                break
            weights = reference_weights(values)
            state = {"round": state["round"] + 1, "reference_weights": weights.tolist()}
            env = build_env(settings, weights)
            agent = build_agent(settings, env, run)
            Checkpointer(run, settings, stopper, None, replaces, state).save(agent)  # its start
        if stopper.signal is not None:
            with run.staged() as stage:
                report.write_values(stage, dataset, values)
            if replaces is not None:
                with signals_deferred():
                    replaces.replace_with(run)
            name = signal.Signals(stopper.signal).name
            where = f" (round {state['round'] + 1} of {rounds})" if rounds > 1 else ""
            print(f"\n{name}: stopped after {agent.steps_done} of {settings['steps']} updates"
                  f"{where}; the checkpoint and values so far are in {home.path}.\nresume "
                  f"with: dvrl value --resume {shlex.quote(str(home.path))}", file=sys.stderr)
            return 128 + stopper.signal
    with run.staged() as stage:
        metrics = report.write_run(stage, dataset, values, settings,
                                   seconds=time.perf_counter() - start,
                                   steps_done=agent.steps_done, log_file=run.log_file)
    if replaces is not None:
        with signals_deferred():
            replaces.replace_with(run)
    if not args.quiet:
        print(report.summary(metrics))
    return 0


def check_finite(values, agent, replaces: RunDir | None) -> None:
    """NaN or infinite values (a diverged agent) are an error, not outputs to score."""
    import numpy as np

    bad = int(np.count_nonzero(~np.isfinite(values)))
    if bad:
        kept = f"; the earlier run in {replaces.path} is kept" if replaces is not None else ""
        raise UserError(f"agent {agent.name!r} diverged: {bad} of its {len(values)} values are "
                        f"NaN or infinite after {agent.steps_done} updates, so no values were "
                        f"written{kept}. Lower --agent-arg learning_rate, or start from another "
                        "--seed.")


def cmd_evaluate(args: argparse.Namespace) -> int:
    return with_locked_run(args.run_dir, evaluate_run, args)


def evaluate_run(run: RunDir, args: argparse.Namespace) -> int:
    from dvrl_env.app import report

    settings = run.read_settings()
    import_recorded(run, settings, args.imports)
    run.check_inputs(settings)
    set_threads(args.threads or settings.get("threads", 1))
    env = build_env(settings)
    dataset = env.unwrapped.dataset
    run.check_dataset(settings, dataset.fingerprint())
    try:
        values = report.read_values(run, dataset)
    except (FileNotFoundError, ValueError) as err:
        raise UserError(str(err)) from None
    previous = run.read_metrics() or {}
    steps_done = checkpoint_steps(run)
    if steps_done is None:
        steps_done = previous.get("steps_done")
    if steps_done is not None and steps_done < settings["steps"]:
        print(f"dvrl: warning: the run in {run.path} stopped after {steps_done} of "
              f"{settings['steps']} updates: these values are partial (dvrl value --resume "
              f"{shlex.quote(str(run.path))} finishes it).", file=sys.stderr)
    with run.staged() as stage:
        metrics = report.write_run(stage, dataset, values, settings,
                                   seconds=previous.get("seconds"),
                                   steps_done=steps_done, log_file=run.log_file)
    if not args.quiet:
        print(report.summary(metrics))
    return 0


def checkpoint_steps(run: RunDir) -> int | None:
    """The updates the run's checkpoint has done (its values were written with it), or
    None without a readable checkpoint."""
    from agents.checkpoint import CheckpointError, read_checkpoint

    if not run.checkpoint.is_file():
        return None
    try:
        return read_checkpoint(run.checkpoint)["steps_done"]
    except CheckpointError as err:
        print(f"dvrl: warning: {err}", file=sys.stderr)
        return None


def cmd_bench(args: argparse.Namespace) -> int:
    from dvrl_env.app.bench.harness import BenchError, run_bench
    from dvrl_env.app.bench.spec import SpecError

    try:
        # --import and the installed plugins: imported in every worker too
        run_bench(args.spec, args.out, workers=args.workers, ray=args.ray, resume=args.resume,
                  max_cells=args.max_cells, threads=args.threads,
                  allow_stale=args.allow_stale, rerun_stale=args.rerun_stale,
                  imports=[*args.imports, *loaded_plugins()])
    except (SpecError, BenchError) as err:
        raise UserError(str(err)) from None
    return 0


def cmd_envs(args: argparse.Namespace) -> int:
    for env_id, kwargs in sorted(dvrl_env.ENV_IDS.items()):
        if "dataset" in kwargs:
            entry = dataset_entry(kwargs["dataset"])
            print(f"{env_id:32s} {entry.name}: {entry.description}")
        else:
            print(f"{env_id:32s} your data: dataset=from_arrays(...), or --csv")
    return 0


def cmd_agents(args: argparse.Namespace) -> int:
    import agents

    for name in agents.names():
        print(f"{name:12s} {agents.describe(name)}")
    return 0


DEFAULT_ENV = "DataValuation-Digits-v0"
DEFAULT_AGENT = "reinforce"
DEFAULT_STEPS = find.DEFAULT_STEPS
#: with --csv and no --valid-csv: the cross-fitted marginal information, three rounds (the
#: best ranking measured, benchmarks/specs/label_issues.toml; RL agents add nothing to it)
CROSS_FIT_AGENT, DEFAULT_ROUNDS = find.DEFAULT_AGENT, find.DEFAULT_ROUNDS
NON_LEARNING_AGENTS = find.NON_LEARNING_AGENTS
THREADS_HELP = ("torch and BLAS threads (default 1: these models are small, and more threads "
                "than free cores slow a busy machine down many times)")


IMPORT_HELP = ("import MODULE first (repeatable): your module that registers agents, "
               "datasets, predictors or bench methods (docs/extending.md). It is found as "
               "python -m finds modules: the current directory (added to the path if "
               "missing), then PYTHONPATH and the installed packages. Installed plugins "
               "(entry-point group dvrl_env.plugins) are loaded without it")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dvrl", description=__doc__.split("\n\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--import", dest="imports", action="append", default=[],
                        metavar="MODULE", help=IMPORT_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    value = sub.add_parser(
        "value", parents=[common], help="learn data values and evaluate them")
    value.add_argument("--env", help=f"a registered env id (default {DEFAULT_ENV})")
    value.add_argument("--csv", help="your own training table instead of --env")
    value.add_argument("--label-column", help="the label column of --csv")
    value.add_argument("--valid-csv", help="clean validation table (default: none; every row "
                                           "is valued against the other rows, cross-fitted)")
    value.add_argument("--test-csv", help="test table (default: none)")
    value.add_argument("--noise-rate", type=float, default=None,
                       help="flip this fraction of training labels (to measure detection)")
    value.add_argument("--missing-value", action="append", default=[], metavar="WORD",
                       help="with --csv: a cell spelling that means missing, besides the "
                            "empty cell and NA, N/A, NaN, null, None, ?, missing")
    value.add_argument("--drop-column", action="append", default=[], metavar="NAME",
                       help="with --csv: leave this column out (e.g. an identifier)")
    value.add_argument("--agent", help=f"an agent name (default {DEFAULT_AGENT}; with --csv "
                                       f"and no --valid-csv, {CROSS_FIT_AGENT})")
    value.add_argument("--steps", type=int, default=None,
                       help=f"agent updates (default {DEFAULT_STEPS}, 1 for the agents that "
                            f"learn nothing: {', '.join(NON_LEARNING_AGENTS)}; with --resume: "
                            "the new total)")
    value.add_argument("--seed", type=int, help="the agent's seed (default 0)")
    value.add_argument("--rounds", type=int, metavar="N",
                       help="cross-fitted valuation: value N times, each round's reference "
                            f"re-weighted by the previous round's values (default "
                            f"{DEFAULT_ROUNDS} with cross-fitting, else 1)")
    value.add_argument("--out", help="output directory")
    value.add_argument("--env-arg", action="append", default=[], metavar="KEY=VALUE")
    value.add_argument("--agent-arg", action="append", default=[], metavar="KEY=VALUE")
    value.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    value.add_argument("--resume", metavar="DIR",
                       help="continue a stopped run from its last checkpoint")
    value.add_argument("--checkpoint-every", type=int, metavar="N",
                       help="write the checkpoint every N updates (default: every "
                            f"{CHECKPOINT_SECONDS:.0f} s)")
    value.add_argument("--threads", type=int, help=THREADS_HELP)
    value.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    value.set_defaults(func=cmd_value)
    evaluate = sub.add_parser(
        "evaluate", parents=[common], help="recompute metrics and plots of a finished run")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--threads", type=int, help=THREADS_HELP)
    evaluate.add_argument("--quiet", action="store_true")
    evaluate.set_defaults(func=cmd_evaluate)
    bench = sub.add_parser(
        "bench", parents=[common], help="run a benchmark grid (a TOML spec) and rank agents")
    bench.add_argument("spec", help="the grid's TOML spec (see benchmarks/specs/)")
    bench.add_argument("--out", required=True,
                       help="directory for results.csv, leaderboard.md, the figure, the spec")
    bench.add_argument("--workers", type=int, metavar="N",
                       help="local worker processes (default: the cores), each pinned to its "
                            "share of threads")
    bench.add_argument("--threads", type=int, metavar="N",
                       help="torch and BLAS threads per cell (default: the cores / --workers); "
                            "an RL agent's result depends on it, so keep it when comparing")
    bench.add_argument("--ray", metavar="auto|ADDRESS",
                       help="run the cells as Ray tasks: auto (a cluster started here with "
                            "`ray start --head`, else a local one) or a cluster's address")
    bench.add_argument("--resume", action="store_true",
                       help="run only the cells missing (or failed) in --out's table")
    bench.add_argument("--max-cells", type=int, metavar="N",
                       help="run at most N of the missing cells, then write the outputs")
    bench.add_argument("--allow-stale", action="store_true",
                       help="with --resume: keep rows measured by other code than this tree's")
    bench.add_argument("--rerun-stale", action="store_true",
                       help="with --resume: run the cells of such stale rows again")
    bench.set_defaults(func=cmd_bench)
    sub.add_parser(
        "envs", parents=[common], help="list env ids").set_defaults(func=cmd_envs)
    sub.add_parser(
        "agents", parents=[common], help="list agent names").set_defaults(func=cmd_agents)
    return parser


def main(argv: list[str] | None = None) -> int:
    from agents.checkpoint import CheckpointError

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None  # as Ctrl-C
    args = argparse.Namespace(func=None)
    try:
        args = build_parser().parse_args(argv)
        import_plugins(args.imports)
        return args.func(args)
    except (UserError, RunError) as err:
        return error(str(err))
    except CheckpointError as err:
        return error(f"{err} (a run restarts from update 0 once its {RunDir.CHECKPOINT} is "
                     "deleted)")
    except OSError as err:  # a full disk, a file that vanished: not a bug to trace
        return error(os_error_message(err, args.func))
    except KeyboardInterrupt as err:
        signum = getattr(err, "signum", signal.SIGINT)
        kept = ("the table keeps every finished cell (dvrl bench SPEC --out DIR --resume runs "
                "the rest)" if args.func is cmd_bench else "the last checkpoint, if any, is "
                "kept (dvrl value --resume DIR continues from it)")
        print(f"\ndvrl: aborted ({signal.Signals(signum).name}); {kept}.", file=sys.stderr)
        return 128 + signum
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def import_plugins(modules: list[str]) -> None:
    """Before anything else: the installed plugins (a broken one is a warning), then each
    ``--import`` module (one that cannot be imported is an error)."""
    load_plugins(warn=lambda message: print(f"dvrl: warning: {message}", file=sys.stderr))
    for name in modules:
        try:
            import_plugin(name)
        except PluginError as err:
            raise UserError(str(err)) from None


def os_error_message(err: OSError, command) -> str:
    """One line for an OSError, with the fix that fits the command that met it."""
    where = f" ({err.filename})" if err.filename else ""
    what = f"{err.strerror or err}{where}."
    full = err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    if command is cmd_bench:
        return what + (" Free space, or choose another --out" if full else
                       " Check the spec path (a TOML file) and --out (a writable directory)"
                       ) + "; dvrl bench SPEC --out DIR --resume runs the cells not yet done."
    if command is cmd_evaluate:
        return what + (" Free space" if full else " Check the run directory and its files"
                       ) + ", then run dvrl evaluate again."
    return what + (" Free space or choose another --out" if full else
                   " Check --out (a writable directory) and the input files") + \
        ", then run again (a run with a checkpoint continues with dvrl value --resume DIR)."


def _interrupt(signum: int, frame) -> None:
    raise Interrupted(signum)


def error(message: str) -> int:
    print(f"dvrl: error: {message}", file=sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())

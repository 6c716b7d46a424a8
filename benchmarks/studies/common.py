"""Shared machinery of the hypothesis studies: run specs, resumable CSVs, intervals,
markdown tables and plots.

A study is a list of :class:`RunSpec` (one agent on one env for one seed). Each finished
run becomes one CSV row, written at once (atomically, the whole file), so a stopped
study keeps what it measured and a re-run skips every (study, config, seed) whose row
was made with the same settings (the ``spec`` hash); rows made with other settings are
kept in the file but left out of the tables. Every number in a table is the mean over
seeds with a 95% Student-t interval.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import io
import json
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from dvrl_env.atomic import atomic_write_text
from dvrl_env.bench.stats import fmt, mean_ci  # noqa: F401  (the studies' tables use both)
from dvrl_env.data.registry import dataset_entries, dataset_entry

_LIMITS: list = []  # keeps the thread limits set by setup() alive
RESULTS = Path(__file__).resolve().parents[1] / "results" / "studies"
DATASETS = {name: dataset_entry(name).env_id for name in ("adult", "digits")}
IMAGE_DATASETS = {e.name: e.env_id for e in dataset_entries() if e.is_image}

# label: (agent name, options, updates in a full run, updates in --quick)
AGENTS: dict[str, tuple[str, dict, int, int]] = {
    "reinforce-k1": ("reinforce", {}, 300, 120),
    "reinforce-k8": ("reinforce", {"num_samples": 8}, 150, 60),
    "reinforce-k8-skip": ("reinforce", {"num_samples": 8, "architecture": "skip"}, 150, 60),
    "gumbel": ("gumbel", {}, 300, 120),
    "ppo": ("ppo", {}, 40, 20),
    "a2c": ("a2c", {}, 60, 24),
    "oracle": ("oracle", {}, 1000, 500),
    "marginal": ("marginal", {}, 0, 0),
}

AGENTS_FULL = ", ".join(f"{label} {full}" for label, (_, _, full, _) in AGENTS.items() if full)


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run: ``agents.make(agent, gym.make(env_id, ...), seed=seed, **options)``.

    ``fields`` are the table's grouping columns (dataset, agent label, mode, ...); their
    values, joined, are the run's ``config``.
    """

    study: str
    fields: dict
    seed: int
    env_id: str
    agent: str
    updates: int
    env_kwargs: dict = dataclasses.field(default_factory=dict)
    options: dict = dataclasses.field(default_factory=dict)
    noise_rate: float = 0.2
    log_points: int = 10

    @property
    def config(self) -> str:
        return ";".join(f"{k}={v}" for k, v in self.fields.items())

    @property
    def spec_hash(self) -> str:
        settings = [self.env_id, self.agent, self.updates, self.env_kwargs, self.options,
                    self.noise_rate, self.log_points]
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]

    @property
    def key(self) -> tuple[str, str, int, str]:
        return (self.study, self.config, int(self.seed), self.spec_hash)


def agent_spec(study: str, label: str, seed: int, env_id: str, *, quick: bool,
               fields: dict, env_kwargs: dict, noise_rate: float = 0.2,
               updates: int | None = None, **extra_options) -> RunSpec:
    """A :class:`RunSpec` for an :data:`AGENTS` label (updates from the table)."""
    name, options, full, short = AGENTS[label]
    return RunSpec(study, {**fields}, seed, env_id, name,
                   (short if quick else full) if updates is None else updates,
                   dict(env_kwargs), {**options, **extra_options}, noise_rate)


def execute(spec: RunSpec, before_learning: Callable | None = None) -> dict:
    """Make the env and agent, learn, score the values; one CSV row.

    ``before_learning(env, spec)`` may return extra columns (measured before learning).
    The row's ``curve`` holds the learning curve (step 0 included) as JSON.
    """
    import gymnasium as gym

    import agents
    import dvrl_env  # noqa: F401  (registers the ids)
    from dvrl_env.evaluation import detection_auroc, robust_learning, value_gap

    start = time.perf_counter()
    env = gym.make(spec.env_id, noise_rate=spec.noise_rate, data_seed=spec.seed,
                   **spec.env_kwargs)
    extra = before_learning(env, spec) if before_learning is not None else {}
    agent = agents.make(spec.agent, env, seed=spec.seed,
                        log_every=max(1, spec.updates // spec.log_points), **spec.options)
    dataset = env.unwrapped.dataset
    mask = dataset.noisy_mask
    initial = agent.data_values()
    agent.learn(spec.updates, progress_bar=False)
    values = agent.data_values()
    robust = robust_learning(dataset, values)
    log = [{"step": 0, "auroc": detection_auroc(initial, mask)}] + agent.log_rows
    curve = {key: [_round(r.get(key)) for r in log] for key in ("step", "auroc", "reward")}
    return {"study": spec.study, "config": spec.config, "seed": spec.seed,
            "spec": spec.spec_hash, **spec.fields, "env": spec.env_id, "agent_name": spec.agent,
            "updates": spec.updates, "fits": agent.fits_used,
            "auroc": detection_auroc(values, mask),
            "gap": value_gap(values, mask), "robust_acc": robust.weighted,
            "unweighted_acc": robust.unweighted, "clean_acc": robust.clean, **extra,
            "seconds": round(time.perf_counter() - start, 2), "curve": json.dumps(curve)}


def _round(value):
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


# ---- CSV with resume ------------------------------------------------------------------

def read_rows(path: Path) -> list[dict]:
    """Rows of a study CSV, numbers parsed (``""`` becomes NaN); [] if there is none."""
    if not Path(path).exists():
        return []
    with open(path, newline="") as f:
        return [{k: v if k in _TEXT_COLUMNS else _parse(v) for k, v in row.items()}
                for row in csv.DictReader(f)]


# a row's identity stays text: a spec hash such as "69007202e6" must not become a float
_TEXT_COLUMNS = ("study", "config", "spec")


def _parse(cell: str | None):
    if cell is None:
        return float("nan")
    try:
        return int(cell)
    except ValueError:
        pass
    try:
        return float(cell) if cell != "" else float("nan")
    except ValueError:
        return cell


def write_rows(path: Path, rows: list[dict]) -> None:
    """Write every row (the union of their columns, in order of appearance), atomically."""
    fields: dict[str, None] = {}
    for row in rows:
        fields.update(dict.fromkeys(row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def row_key(row: dict) -> tuple[str, str, int, str]:
    return (str(row["study"]), str(row["config"]), int(row["seed"]), str(row["spec"]))


def run_all(specs: list[RunSpec], csv_path: Path, *,
            before_learning: Callable | None = None) -> list[dict]:
    """Run every spec whose row is not in ``csv_path`` yet, appending each row as it
    finishes; returns the rows of ``specs`` (old and new), in spec order."""
    rows = read_rows(csv_path)
    done = {row_key(r): r for r in rows}
    todo = [s for s in specs if s.key not in done]
    print(f"{len(specs) - len(todo)} of {len(specs)} runs already in {csv_path}; "
          f"{len(todo)} to run.", flush=True)
    for i, spec in enumerate(todo, 1):
        row = execute(spec, before_learning)
        rows.append(row)
        done[spec.key] = row
        write_rows(csv_path, rows)
        print(f"[{i}/{len(todo)}] {spec.config} seed {spec.seed}: AUROC {row['auroc']:.3f} "
              f"gap {row['gap']:+.3f} robust acc {row['robust_acc']:.3f} "
              f"({row['seconds']:.0f} s)", flush=True)
    return [done[s.key] for s in specs]


# ---- statistics and tables ------------------------------------------------------------

def cell(values: Iterable[float], digits: int = 3, signed: bool = False) -> str:
    mean, half, _ = mean_ci(values)
    return fmt(mean, half, digits, signed)


def outcome_cells(runs: list[dict]) -> list[str]:
    """The last columns of every study table: gap, robust acc and seconds per run."""
    return [cell((r["gap"] for r in runs), signed=True), cell(r["robust_acc"] for r in runs),
            f"{sum(r['seconds'] for r in runs) / len(runs):.0f}"]


def fits_cell(runs: list[dict], fallback: str = "n/a") -> str:
    """Predictor fits per run as recorded; rows written before fits were counted have
    none and show ``fallback``."""
    fits = sorted({int(r["fits"]) for r in runs
                   if isinstance(r.get("fits"), (int, float)) and math.isfinite(r["fits"])})
    if not fits:
        return fallback
    return str(fits[0]) if len(fits) == 1 else f"{fits[0]}-{fits[-1]}"


def group(rows: list[dict], keys: list[str]) -> dict[tuple, list[dict]]:
    """Rows grouped by the values of ``keys``, groups in order of first appearance."""
    out: dict[tuple, list[dict]] = {}
    for row in rows:
        out.setdefault(tuple(row[k] for k in keys), []).append(row)
    return out


def paired(rows: list[dict], reference: dict[tuple, float], keys: list[str],
           metric: str = "auroc") -> list[float]:
    """Per-seed differences ``row[metric] - reference[(row[k] for k in keys), seed]``."""
    return [r[metric] - reference[(*[r[k] for k in keys], r["seed"])] for r in rows
            if (*[r[k] for k in keys], r["seed"]) in reference]


def markdown_table(headers: list[str], body: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def write_report(path: Path, title: str, sections: list[str]) -> None:
    atomic_write_text(path, f"# {title}\n\n" + "\n\n".join(s.strip() for s in sections) + "\n")


# ---- command line ---------------------------------------------------------------------

def parser(doc: str, study: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="small version (2 seeds, n_train 300, fewer updates), < 10 min")
    p.add_argument("--seeds", nargs="+", type=int, default=None,
                   help="data and agent seeds (default 0-4, with --quick 0 1)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch and BLAS threads (default 1)")
    p.add_argument("--noise-rate", type=float, default=0.2, help="label flip rate (0.2)")
    p.add_argument("--predictor", default="logistic", choices=["logistic", "mlp"],
                   help="the env's predictor: logistic (default, ~15x faster) or mlp "
                        "(the official 2-layer MLP)")
    p.add_argument("--out", type=Path, default=RESULTS,
                   help=f"output folder (default benchmarks/results/studies); files "
                        f"{study}[_quick].*")
    return p


def setup(args: argparse.Namespace, study: str) -> tuple[list[int], dict, Path]:
    """Threads, seeds, the base env options and the output stem, printing quick changes."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    # numpy's BLAS too: the closed-form logistic predictor's small matrix products run
    # ~30x slower with 2 OpenBLAS threads on a busy 2-core machine than with one
    _LIMITS.append(threadpool_limits(limits=args.threads))
    seeds = args.seeds or ([0, 1] if args.quick else [0, 1, 2, 3, 4])
    env_kwargs: dict = {"predictor": args.predictor}
    if args.quick:
        env_kwargs["n_train"] = 300
        updates = ", ".join(f"{label} {quick}" for label, (_, _, full, quick) in AGENTS.items()
                            if full)
        print(f"--quick changes: seeds {seeds} (full: 0-4), n_train 300 (full: the dataset "
              f"default, 1000), updates {updates} (full: {AGENTS_FULL}); outputs "
              f"{study}_quick.*", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    return seeds, env_kwargs, args.out / (f"{study}_quick" if args.quick else study)


def settings_section(args: argparse.Namespace, seeds: list[int], env_kwargs: dict,
                     rows: list[dict], command: str) -> str:
    total = sum(r["seconds"] for r in rows)
    return (f"Command: `{command}`\n\nSeeds {seeds} (data split, label noise and agent "
            f"seed); noise rate {args.noise_rate}; env options {env_kwargs}; "
            f"{len(rows)} runs, {total / 60:.1f} min of run time in all. Cells: mean ± "
            "half-width of the 95% Student-t interval over seeds. AUROC: detection of "
            "flipped labels by low values; gap: mean value of clean minus corrupted "
            "points; robust acc: test accuracy of logistic regression trained with the "
            "values as sample weights.")


# image sets at n_train 1000 (300 with --quick, from the base options): a predictor fit
# on 3072 flattened CIFAR pixels costs ~50x one on Adult
IMAGE_SIZES = {"n_train": 1000, "n_valid": 500, "n_test": 1000}
IMAGE_SIZES_QUICK = {"n_valid": 300, "n_test": 500}
IMAGE_ENCODER = "resnet18"  # the report's encoder; learnability.py compares more
# the pretrained encoder --quick runs: Inception-v3 encodes ~4x slower on a CPU
QUICK_PRETRAINED = ("resnet18-imagenet",)
# {dataset: (env id, env options)}: what every study runs on, images or not
TABULAR_SETS = {name: (env_id, {}) for name, env_id in DATASETS.items()}


def study_datasets(quick: bool, notes: list[str],
                   pretrained: bool = False) -> dict[str, tuple[str, dict]]:
    """``{dataset: (env id, env options)}``: Adult and Digits always, CIFAR-10 and
    Fashion-MNIST (random-init ResNet-18 features) where their files are here, and with
    ``pretrained`` the same sets on each pretrained encoder whose weights are in torch's
    cache (``"cifar10-inception_v3-imagenet"``, ...; with ``quick`` ResNet-18 only)."""
    sets = dict(TABULAR_SETS)
    sizes = IMAGE_SIZES_QUICK if quick else IMAGE_SIZES
    found = image_datasets(notes)
    extra = [e for e in (pretrained_encoders(notes) if pretrained and found else [])
             if not quick or e in QUICK_PRETRAINED]
    for name, env_id in found.items():
        sets[name] = (env_id, {"encoder": IMAGE_ENCODER, "download": False, **sizes})
        for encoder in extra:
            sets[f"{name}-{encoder}"] = (env_id, {"encoder": encoder, "download": False,
                                                  **sizes})
    return sets


def pretrained_encoders(notes: list[str]) -> list[str]:
    """The pretrained encoders whose weights file is in torch's cache (nothing is
    downloaded); a skip note for each of the others."""
    from dvrl_env.data import encoders

    found = []
    for name, weights in encoders.PRETRAINED.items():
        if weights.path().is_file():
            found.append(name)
        else:
            note = (f"{name} features skipped: its weights file {weights.path()} is missing "
                    "(fetch it once with download=True)")
            print(note, flush=True)
            notes.append(note)
    return found


def skipped_section(notes: list[str]) -> str:
    return ("Skipped: " + "; ".join(notes)) if notes else "No dataset was skipped."


def image_datasets(notes: list[str]) -> dict[str, str]:
    """The image ids whose files exist under the data root; a skip note for the others."""
    from dvrl_env.data.datasets import load_dataset

    found = {}
    for name, env_id in IMAGE_DATASETS.items():
        try:
            load_dataset(name, n_train=10, n_valid=10, n_test=10, download=False)
        except (FileNotFoundError, RuntimeError) as err:
            note = f"{env_id} skipped: {str(err).splitlines()[0]}"
            print(note, flush=True)
            notes.append(note)
        else:
            found[name] = env_id
    return found



def reference_accuracies(rows: list[dict], key: str = "dataset") -> str:
    """What robust acc compares with: the same model unweighted, and on clean labels."""
    lines = [f"- {name[0]}: unweighted on the noisy labels "
             f"{cell(r['unweighted_acc'] for r in runs)}, on the clean labels "
             f"{cell(r['clean_acc'] for r in runs)}"
             for name, runs in group(rows, [key]).items()]
    return "Robust-learning reference (test accuracy, logistic regression):\n" + "\n".join(lines)


"""A finished run's outputs: values.csv, metrics.json, the figures and report.md.

``write_run`` is called by ``dvrl value`` and ``evaluate_dir`` by ``dvrl evaluate``;
both go through :func:`compute_metrics`, so a re-evaluation reproduces the metrics.
Every file is written atomically.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from dvrl_env import evaluation, plots
from dvrl_env.atomic import atomic_write_text
from dvrl_env.datasets import ValuationDataset

VALUES_FILE = "values.csv"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
LOG_FILE = Path("log") / "progress.csv"
FIGURE_FILES = ("discovery.png", "value_histogram.png", "remove_high_low.png",
                "robust_learning.png", "value_trajectory.png")
OUTPUT_FILES = (VALUES_FILE, METRICS_FILE, REPORT_FILE, *FIGURE_FILES)


def noise_known(dataset: ValuationDataset) -> bool:
    return bool(dataset.noisy_mask.any())


def write_values(out: Path, dataset: ValuationDataset, values: np.ndarray) -> Path:
    """One row per training point: its index in the training set (and, for a CSV, its
    data row in the training file), the label as used, the value, and ``corrupted``
    when the noise mask is known. Values keep full precision, so re-reading is exact."""
    label_names = dataset.meta.get("label_names")
    csv_rows = dataset.meta.get("train_rows")
    header = ["index", *(["csv_row"] if csv_rows else []), "label", "value",
              *(["corrupted"] if noise_known(dataset) else [])]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for i, (label, value) in enumerate(zip(dataset.y_train, values, strict=True)):
        row = [i, *([csv_rows[i]] if csv_rows else []),
               label_names[label] if label_names else int(label), repr(float(value))]
        if noise_known(dataset):
            row.append(int(dataset.noisy_mask[i]))
        writer.writerow(row)
    return atomic_write_text(out / VALUES_FILE, buffer.getvalue())


def read_values(out: Path, n_train: int) -> np.ndarray:
    path = out / VALUES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; the run did not finish writing its values.")
    with open(path) as f:
        values = np.array([float(row["value"]) for row in csv.DictReader(f)])
    if len(values) != n_train:
        raise ValueError(f"{path} holds {len(values)} values but the dataset has {n_train} "
                         "training points; it belongs to another run.")
    return values


def compute_metrics(dataset: ValuationDataset, values: np.ndarray) -> dict:
    """Every experiment the data allows: detection and discovery need a noise mask."""
    metrics: dict = {"n_train": dataset.n_train, "noise_known": noise_known(dataset),
                     "mean_value": float(np.mean(values))}
    if noise_known(dataset):
        metrics["detection"] = evaluation.detection_scores(dataset, values).to_dict()
        metrics["discovery"] = evaluation.discovery_curve(dataset, values).to_dict()
        metrics["value_gap"] = evaluation.value_gap(values, dataset.noisy_mask)
    metrics["remove_high_low"] = evaluation.remove_high_low(dataset, values).to_dict()
    metrics["robust_learning"] = evaluation.robust_learning(dataset, values).to_dict()
    return metrics


def write_figures(out: Path, dataset: ValuationDataset, values: np.ndarray, title: str) -> list:
    """The PNGs, from recomputed results (cheap next to learning)."""
    mask = dataset.noisy_mask if noise_known(dataset) else None
    figures = [plots.plot_value_histogram(evaluation.value_histogram(values, mask),
                                          out / "value_histogram.png", title),
               plots.plot_remove_high_low(evaluation.remove_high_low(dataset, values),
                                          out / "remove_high_low.png", title),
               plots.plot_robust_learning(evaluation.robust_learning(dataset, values),
                                          out / "robust_learning.png", title)]
    if mask is not None:
        figures.insert(0, plots.plot_discovery(evaluation.discovery_curve(dataset, values),
                                               out / "discovery.png", title))
    if (out / LOG_FILE).is_file():
        fraction = float(mask.mean()) if mask is not None else None
        trajectory = evaluation.value_trajectory(out / LOG_FILE, noise_fraction=fraction)
        figures.append(plots.plot_value_trajectory(trajectory, out / "value_trajectory.png",
                                                   title))
    return [Path(f).name for f in figures]


def run_title(settings: dict) -> str:
    source = settings.get("env") or Path(settings.get("csv") or "data").name
    return f"{source} | {settings['agent']} | seed {settings['seed']}"


def write_run(out: Path, dataset: ValuationDataset, values: np.ndarray, settings: dict, *,
              seconds: float, steps_done: int) -> dict:
    write_values(out, dataset, values)
    metrics = {"settings": settings, "steps_done": steps_done, "seconds": round(seconds, 2),
               **compute_metrics(dataset, values)}
    return _finish(out, dataset, values, metrics)


def evaluate_dir(out: Path, dataset: ValuationDataset, settings: dict) -> dict:
    values = read_values(out, dataset.n_train)
    previous = {}
    if (out / METRICS_FILE).is_file():
        previous = json.loads((out / METRICS_FILE).read_text())
    metrics = {"settings": settings, "steps_done": previous.get("steps_done"),
               "seconds": previous.get("seconds"), **compute_metrics(dataset, values)}
    return _finish(out, dataset, values, metrics)


def _finish(out: Path, dataset: ValuationDataset, values: np.ndarray, metrics: dict) -> dict:
    title = run_title(metrics["settings"])
    metrics["figures"] = write_figures(out, dataset, values, title)
    atomic_write_text(out / METRICS_FILE, json.dumps(metrics, indent=2, allow_nan=False))
    atomic_write_text(out / REPORT_FILE, render_report(metrics, dataset, title))
    return metrics


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def render_report(metrics: dict, dataset: ValuationDataset, title: str) -> str:
    s = metrics["settings"]
    lines = [f"# Data values: {title}", "", "## Settings", "", "| setting | value |",
             "|---|---|"]
    for key in ("env", "csv", "label_column", "valid_csv", "test_csv", "noise_rate", "agent",
                "steps", "seed"):
        if s.get(key) is not None:
            lines.append(f"| {key} | `{s[key]}` |")
    for key in ("env_args", "agent_args"):
        if s.get(key):
            lines.append(f"| {key} | `{json.dumps(s[key])}` |")
    lines.append(f"| data | {dataset!r} |")
    held = dataset.meta.get("held_out")
    if held:
        lines.append(f"| held out | {', '.join(held)}: "
                     f"{dataset.meta['held_out_fraction']:.0%} of the training file each |")
    lines += ["", f"Updates: {metrics['steps_done']}, wall time: {metrics['seconds']} s.", "",
              "## Metrics", "", "| metric | value |", "|---|---|"]
    if metrics["noise_known"]:
        d = metrics["detection"]
        lines += [f"| detection AUROC | {_fmt(d['auroc'])} |",
                  f"| detection AUPRC | {_fmt(d['auprc'])} |",
                  f"| F1 at the noise rate ({d['n_flagged']} lowest flagged) | {_fmt(d['f1'])} |",
                  f"| mean value clean - corrupted | {_fmt(metrics['value_gap'])} |"]
    r = metrics["robust_learning"]
    lines += [f"| test accuracy, trained with values as weights | {_fmt(r['weighted'])} |",
              f"| test accuracy, unweighted | {_fmt(r['unweighted'])} |",
              f"| test accuracy, clean labels (ceiling) | {_fmt(r['clean'])} |"]
    if not metrics["noise_known"]:
        lines += ["", "The training labels' corruption is unknown (no --noise-rate), so "
                  "detection and discovery cannot be scored; the histogram and remove "
                  "high/low curves still show how the values rank the data."]
    lines += ["", "## Figures", ""]
    lines += [f"![{name}]({name})" for name in metrics["figures"]]
    return "\n".join(lines) + "\n"


def summary(metrics: dict) -> str:
    s, r = metrics["settings"], metrics["robust_learning"]
    lines = [f"{run_title(s)}: {metrics['steps_done']} updates in {metrics['seconds']} s"]
    if metrics["noise_known"]:
        d = metrics["detection"]
        lines.append(f"  detection AUROC {_fmt(d['auroc'])}  F1 {_fmt(d['f1'])}  "
                     f"clean - corrupted value {_fmt(metrics['value_gap'])}")
    lines.append(f"  robust learning: test accuracy {_fmt(r['weighted'])} with values as "
                 f"weights, {_fmt(r['unweighted'])} without, {_fmt(r['clean'])} on clean labels")
    return "\n".join(lines)

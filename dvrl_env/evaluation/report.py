"""A finished run's outputs: values.csv, metrics.json, the figures and report.md.

``dvrl value`` and ``dvrl evaluate`` both call :func:`write_run` (into a staging folder,
see :mod:`dvrl_env.runs`), which goes through :func:`compute_metrics`, so a
re-evaluation reproduces the metrics; :func:`read_values` reads values.csv back, checked
row by row against the data. Every file is written atomically.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from dvrl_env import evaluation
from dvrl_env.atomic import atomic_write_text
from dvrl_env.data.datasets import ValuationDataset
from dvrl_env.evaluation import plots
from dvrl_env.runs import LOG_FILE

VALUES_FILE = "values.csv"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
FIGURE_FILES = ("discovery.png", "value_histogram.png", "remove_high_low.png",
                "robust_learning.png", "value_trajectory.png")
OUTPUT_FILES = (VALUES_FILE, METRICS_FILE, REPORT_FILE, *FIGURE_FILES)


def noise_known(dataset: ValuationDataset) -> bool:
    return bool(dataset.noisy_mask.any())


def write_values(out: Path, dataset: ValuationDataset, values: np.ndarray) -> Path:
    """One row per training point: its index in the training set (and, for a CSV, the
    line of the training file it came from), the label as used, the value, and
    ``corrupted`` when the noise mask is known. Values keep full precision, so
    re-reading is exact."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(_value_rows(dataset, values))
    return atomic_write_text(out / VALUES_FILE, buffer.getvalue())


def _value_rows(dataset: ValuationDataset, values: np.ndarray | None) -> list[list]:
    """values.csv as rows, header first (``value`` cells None when ``values`` is None)."""
    label_names = dataset.meta.get("label_names")
    csv_lines = dataset.meta.get("train_lines")
    known = noise_known(dataset)
    rows: list[list] = [["index", *(["csv_line"] if csv_lines else []), "label", "value",
                         *(["corrupted"] if known else [])]]
    for i, label in enumerate(dataset.y_train):
        value = None if values is None else repr(float(values[i]))
        rows.append([i, *([csv_lines[i]] if csv_lines else []),
                     label_names[label] if label_names else int(label), value,
                     *([int(dataset.noisy_mask[i])] if known else [])])
    return rows


def read_values(out: Path, dataset: ValuationDataset) -> np.ndarray:
    """The values of ``out/values.csv``, after checking every row against ``dataset``:
    its index, label (and CSV line) must be the ones :func:`write_values` writes, so a
    shuffled, edited or foreign file is refused instead of scored."""
    path = out / VALUES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the run stopped before writing its "
                                f"values; finish it with dvrl value --resume {out}.")
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"{path} cannot be read ({err}).") from None
    expected = _value_rows(dataset, None)
    if not rows or rows[0] != expected[0]:
        raise ValueError(f"{path} has columns {rows[0] if rows else []}, expected "
                         f"{expected[0]}: it is damaged or belongs to another run.")
    if len(rows) - 1 != dataset.n_train:
        raise ValueError(f"{path} holds {len(rows) - 1} rows but the data have "
                         f"{dataset.n_train} training points: it is truncated or belongs to "
                         "another run.")
    value_at = expected[0].index("value")
    values = np.empty(dataset.n_train)
    for i, (row, want) in enumerate(zip(rows[1:], expected[1:], strict=True)):
        given = [cell for j, cell in enumerate(row) if j != value_at]
        wanted = [str(cell) for j, cell in enumerate(want) if j != value_at]
        if given != wanted:
            raise ValueError(f"{path}, row {i + 1} reads {row}, but the run's data say "
                             f"{wanted} (besides the value): the file was edited, shuffled or "
                             "belongs to another run.")
        try:
            values[i] = float(row[value_at])
        except ValueError:
            raise ValueError(f"{path}, row {i + 1}: the value {row[value_at]!r} is not a "
                             "number; the file is damaged.") from None
    if not np.isfinite(values).all():
        raise ValueError(f"{path} holds NaN or infinite values; the file is damaged.")
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
    metrics["robust_learning"] = (
        evaluation.robust_learning(dataset, values).to_dict() if can_weight(values) else
        {"weighted": None, "unweighted": None, "clean": None, "skipped": NO_WEIGHTS})
    return metrics


NO_WEIGHTS = ("no value is positive, so no point can be used as a weight (e.g. a credit "
              "agent before its first update)")


def can_weight(values: np.ndarray) -> bool:
    """Robust learning weights points by ``max(value, 0)``: it needs a positive value."""
    return bool((np.asarray(values) > 0).any())


def write_figures(out: Path, dataset: ValuationDataset, values: np.ndarray, title: str,
                  log_file: Path | None = None) -> list:
    """The PNGs, from recomputed results (cheap next to learning); the value trajectory
    when ``log_file`` (default ``out/log/progress.csv``) exists."""
    mask = dataset.noisy_mask if noise_known(dataset) else None
    figures = [plots.plot_value_histogram(evaluation.value_histogram(values, mask),
                                          out / "value_histogram.png", title),
               plots.plot_remove_high_low(evaluation.remove_high_low(dataset, values),
                                          out / "remove_high_low.png", title)]
    if can_weight(values):
        figures.append(plots.plot_robust_learning(evaluation.robust_learning(dataset, values),
                                                  out / "robust_learning.png", title))
    if mask is not None:
        figures.insert(0, plots.plot_discovery(evaluation.discovery_curve(dataset, values),
                                               out / "discovery.png", title))
    log_file = out / LOG_FILE if log_file is None else log_file
    if log_file.is_file():
        fraction = float(mask.mean()) if mask is not None else None
        trajectory = evaluation.value_trajectory(log_file, noise_fraction=fraction)
        figures.append(plots.plot_value_trajectory(trajectory, out / "value_trajectory.png",
                                                   title))
    return [Path(f).name for f in figures]


def run_title(settings: dict) -> str:
    source = settings.get("env") or Path(settings.get("csv") or "data").name
    return f"{source} | {settings['agent']} | seed {settings['seed']}"


def write_run(out: Path, dataset: ValuationDataset, values: np.ndarray, settings: dict, *,
              seconds: float | None, steps_done: int | None,
              log_file: Path | None = None) -> dict:
    """values.csv, metrics.json, the figures and report.md into ``out``."""
    write_values(out, dataset, values)
    metrics = {"settings": settings, "steps_done": steps_done,
               "seconds": None if seconds is None else round(seconds, 2),
               **compute_metrics(dataset, values)}
    title = run_title(settings)
    metrics["figures"] = write_figures(out, dataset, values, title, log_file)
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
    columns = dataset.meta.get("columns")
    if columns:
        lines.append(f"| columns | {column_summary(columns)} |")
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
    if r.get("skipped"):
        lines += ["", f"Robust learning was skipped: {r['skipped']}."]
    if not metrics["noise_known"]:
        lines += ["", "The training labels' corruption is unknown (no --noise-rate), so "
                  "detection and discovery cannot be scored; the histogram and remove "
                  "high/low curves still show how the values rank the data."]
    lines += ["", "## Figures", ""]
    lines += [f"![{name}]({name})" for name in metrics["figures"]]
    return "\n".join(lines) + "\n"


def column_summary(columns: dict) -> str:
    """How each CSV column was read (``meta["columns"]`` of :func:`~dvrl_env.load_csv`)."""
    parts = []
    for name, info in columns.items():
        details = [f"{info['categories']} categories"] if "categories" in info else []
        if info.get("missing"):
            details.append(f"{info['missing']} missing" + (
                f", imputed with {info['imputed']:g}" if "imputed" in info else ""))
        parts.append(f"`{name}` {info['kind']}" + (f" ({', '.join(details)})" if details else ""))
    return "; ".join(parts)


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

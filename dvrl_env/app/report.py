"""A finished run's outputs: values.csv, metrics.json, the figures and report.md.

``dvrl value`` and ``dvrl evaluate`` both call :func:`write_run` (into a staging folder,
see :mod:`dvrl_env.app.runs`, which names every file). It computes every experiment once
(:func:`compute_results`) and writes both ``metrics.json`` and the figures from those
results, so a re-evaluation reproduces the metrics and no model is fitted twice;
:func:`read_values` reads values.csv back, checked row by row against the data. Every
file is written atomically.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path

import numpy as np

from dvrl_env import evaluation
from dvrl_env.app.runs import RunDir
from dvrl_env.atomic import atomic_write_text
from dvrl_env.data.crossfit import DEFAULT_FOLDS
from dvrl_env.data.datasets import ValuationDataset
from dvrl_env.evaluation import plots
from dvrl_env.evaluation.label_issues import FLAG_RULE, find_issues, write_label_issues
from dvrl_env.evaluation.results import (
    DetectionScores,
    DiscoveryCurve,
    RemoveHighLow,
    RobustLearning,
    ValueHistogram,
    ValueTrajectory,
)
from dvrl_env.evaluation.scores import REMOVE_FRACTIONS


def noise_known(dataset: ValuationDataset) -> bool:
    return bool(dataset.noisy_mask.any())


def no_test_rows(dataset: ValuationDataset) -> bool:
    """Every row was valued and none was held out: test accuracy would be in-sample."""
    return bool(dataset.meta.get("test_is_train"))


def write_values(out: RunDir, dataset: ValuationDataset, values: np.ndarray) -> Path:
    """One row per training point: its index in the training set (and, for a CSV, the
    line of the training file it came from), the label as used, the value, and
    ``corrupted`` when the noise mask is known. Values keep full precision, so
    re-reading is exact."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(_value_rows(dataset, values))
    return atomic_write_text(out.values, buffer.getvalue())


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


def read_values(run: RunDir, dataset: ValuationDataset) -> np.ndarray:
    """The run's values.csv, after checking every row against ``dataset``: its index,
    label (and CSV line) must be the ones :func:`write_values` writes, so a shuffled,
    edited or foreign file is refused instead of scored."""
    path = run.values
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the run stopped before writing its "
                                f"values; finish it with dvrl value --resume {run.path}.")
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


@dataclasses.dataclass(frozen=True, eq=False)
class RunResults:
    """Every experiment a run's data allow, computed once; ``metrics.json`` and the
    figures are both written from it. A field is None where the data do not allow it:
    detection, discovery and the value gap need a noise mask, robust learning a positive
    value, the trajectory a log."""

    histogram: ValueHistogram
    remove_high_low: RemoveHighLow | None  # None: no test rows apart from the training rows
    robust_learning: RobustLearning | None
    detection: DetectionScores | None
    discovery: DiscoveryCurve | None
    value_gap: float | None
    trajectory: ValueTrajectory | None


NO_WEIGHTS = ("no value is positive, so no point can be used as a weight (e.g. a credit "
              "agent before its first update)")


def can_weight(values: np.ndarray) -> bool:
    """Robust learning weights points by ``max(value, 0)``: it needs a positive value."""
    return bool((np.asarray(values) > 0).any())


def compute_results(dataset: ValuationDataset, values: np.ndarray,
                    log_file: Path | None = None) -> RunResults:
    """Run every experiment once; the value trajectory when ``log_file`` exists."""
    mask = dataset.noisy_mask if noise_known(dataset) else None
    trajectory = None
    if log_file is not None and log_file.is_file():
        fraction = float(mask.mean()) if mask is not None else None
        trajectory = evaluation.value_trajectory(log_file, noise_fraction=fraction)
    no_test = no_test_rows(dataset)
    return RunResults(
        histogram=evaluation.value_histogram(values, mask),
        remove_high_low=(None if no_test else
                         evaluation.remove_high_low(dataset, values, fractions=REMOVE_FRACTIONS)),
        robust_learning=(evaluation.robust_learning(dataset, values)
                         if can_weight(values) and not no_test else None),
        detection=None if mask is None else evaluation.detection_scores(dataset, values),
        discovery=None if mask is None else evaluation.discovery_curve(dataset, values),
        value_gap=None if mask is None else evaluation.value_gap(values, mask),
        trajectory=trajectory)


def metrics_from(dataset: ValuationDataset, values: np.ndarray, results: RunResults) -> dict:
    """The metrics of ``metrics.json`` (besides settings, timing and figures)."""
    metrics: dict = {"n_train": dataset.n_train, "noise_known": noise_known(dataset),
                     "mean_value": float(np.mean(values))}
    if results.detection is not None:
        metrics["detection"] = results.detection.to_dict()
        metrics["discovery"] = results.discovery.to_dict()
        metrics["value_gap"] = results.value_gap
    no_test = no_test_rows(dataset)
    metrics["remove_high_low"] = (None if results.remove_high_low is None
                                  else results.remove_high_low.to_dict())
    metrics["robust_learning"] = (
        results.robust_learning.to_dict() if results.robust_learning is not None else
        {"weighted": None, "unweighted": None, "clean": None,
         "skipped": NO_TEST if no_test else NO_WEIGHTS})
    if results.robust_learning is not None and not noise_known(dataset):
        metrics["robust_learning"]["clean"] = None  # the clean labels are not known
    metrics["test"] = test_statement(dataset)
    return metrics


NO_TEST = ("there is no test set (every row of the table was valued); give one with "
           "--test-csv to measure accuracy")


def write_figures(out: RunDir, results: RunResults, title: str) -> list[str]:
    """The PNGs the results allow, into ``out``; returns their file names."""
    figures = [plots.plot_value_histogram(results.histogram, out.figure("value_histogram"),
                                          title)]
    if results.remove_high_low is not None:
        figures.append(plots.plot_remove_high_low(results.remove_high_low,
                                                  out.figure("remove_high_low"), title))
    if results.robust_learning is not None:
        figures.append(plots.plot_robust_learning(results.robust_learning,
                                                  out.figure("robust_learning"), title))
    if results.discovery is not None:
        figures.insert(0, plots.plot_discovery(results.discovery, out.figure("discovery"),
                                               title))
    if results.trajectory is not None:
        figures.append(plots.plot_value_trajectory(results.trajectory,
                                                   out.figure("value_trajectory"), title))
    return [Path(f).name for f in figures]


def run_title(settings: dict) -> str:
    source = settings.get("env") or Path(settings.get("csv") or "data").name
    return f"{source} | {settings['agent']} | seed {settings['seed']}"


def write_run(out: RunDir, dataset: ValuationDataset, values: np.ndarray, settings: dict, *,
              seconds: float | None, steps_done: int | None,
              log_file: Path | None = None) -> dict:
    """values.csv, metrics.json, the figures and report.md into ``out``; the value
    trajectory is read from ``log_file`` (the run's log, outside a staging folder)."""
    write_values(out, dataset, values)
    env_args = settings.get("env_args") or {}
    cross_fit = env_args.get("validation") == "cross-fit"
    issues = find_issues(dataset, values, cross_fit=cross_fit,
                         folds=env_args.get("folds", DEFAULT_FOLDS),
                         seed=env_args.get("data_seed", 0))
    write_label_issues(out.label_issues, dataset, issues)
    results = compute_results(dataset, values, log_file)
    metrics = {"settings": settings, "steps_done": steps_done,
               "seconds": None if seconds is None else round(seconds, 2),
               "reference": reference_statement(dataset, cross_fit),
               "label_issues": {"n_flagged": issues.n_flagged, "rule": FLAG_RULE,
                                "probabilities": issues.reference,
                                "top": issues.rows(dataset, TOP_ISSUES)},
               **metrics_from(dataset, values, results)}
    title = run_title(settings)
    metrics["figures"] = write_figures(out, results, title)
    atomic_write_text(out.metrics, json.dumps(metrics, indent=2, allow_nan=False))
    atomic_write_text(out.report, render_report(metrics, dataset, title))
    return metrics


#: rows of the label-issue table that report.md shows
TOP_ISSUES = 20


def reference_statement(dataset: ValuationDataset, cross_fit: bool) -> str:
    """Where rewards and the marginal information were measured, in plain words."""
    if cross_fit:
        return ("No clean validation set: every row was valued against the other rows "
                "(cross-fitted folds), with their labels as given. That reference is your "
                "own, possibly noisy, data; it is never a row's own label.")
    if dataset.meta.get("held_out"):
        return (f"The reference is {dataset.meta['held_out_fraction']:.0%} of your rows, "
                "held out and taken as clean; if they are as noisy as the rest, so is the "
                "reference.")
    return "The reference is the dataset's validation set, taken as clean."


def test_statement(dataset: ValuationDataset) -> str | None:
    """What "test accuracy" was measured on, when it is not a clean test set."""
    if no_test_rows(dataset):
        return None  # nothing to measure on: said where the section would be
    if dataset.meta.get("test_is_valid"):
        return ("There is no test set: test accuracy is measured on the validation set, "
                "the same rows the reward was measured on.")
    if dataset.meta.get("label_column") is not None and not noise_known(dataset):
        return ("Test accuracy is measured on the test rows' labels as given, which may be "
                "noisy too.")
    return None


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def render_report(metrics: dict, dataset: ValuationDataset, title: str) -> str:
    s = metrics["settings"]
    lines = [f"# Data values: {title}", "", *issues_section(metrics),
             "## Settings", "", "| setting | value |", "|---|---|"]
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
    done = metrics["steps_done"]
    if done is not None and isinstance(s.get("steps"), int) and done < s["steps"]:
        done = f"{done} of {s['steps']} (partial: the run was stopped before its last update)"
    lines += ["", f"Updates: {done}, wall time: {metrics['seconds']} s.", "",
              metrics["reference"], "", "## Metrics", "", "| metric | value |", "|---|---|"]
    if metrics["noise_known"]:
        d = metrics["detection"]
        lines += [f"| detection AUROC | {_fmt(d['auroc'])} |",
                  f"| detection AUPRC | {_fmt(d['auprc'])} |",
                  f"| F1 at the noise rate ({d['n_flagged']} lowest flagged) | {_fmt(d['f1'])} |",
                  f"| mean value clean - corrupted | {_fmt(metrics['value_gap'])} |"]
    r = metrics["robust_learning"]
    if not r.get("skipped"):
        lines += [f"| test accuracy, trained with values as weights | {_fmt(r['weighted'])} |",
                  f"| test accuracy, unweighted | {_fmt(r['unweighted'])} |"]
        if r["clean"] is not None:
            lines.append(f"| test accuracy, clean labels (ceiling) | {_fmt(r['clean'])} |")
    if metrics.get("test"):
        lines += ["", metrics["test"]]
    if r.get("skipped"):
        lines += ["", f"Robust learning and remove high / low were skipped: {r['skipped']}."
                  if "test set" in r["skipped"] else
                  f"Robust learning was skipped: {r['skipped']}."]
    if not metrics["noise_known"]:
        lines += ["", "The training labels' corruption is unknown (no --noise-rate), so "
                  "detection and discovery cannot be scored; the histogram and remove "
                  "high/low curves still show how the values rank the data."]
    lines += ["", "## Figures", ""]
    lines += [f"![{name}]({name})" for name in metrics["figures"]
              if name != RunDir.FIGURES["value_histogram"]]  # shown at the top
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


def issues_section(metrics: dict) -> list[str]:
    """report.md's lead: the most likely mislabeled rows and the value histogram."""
    issues = metrics["label_issues"]
    top = issues["top"]
    has_line = top and top[0]["csv_line"] is not None
    has_truth = top and top[0]["corrupted"] is not None
    lines = ["## Rows most likely mislabeled", "",
             f"{issues['n_flagged']} of {metrics['n_train']} rows are flagged: {issues['rule']}; "
             f"its probabilities come from {issues['probabilities']}. All flagged rows, "
             f"ranked, are in `{RunDir.LABEL_ISSUES}`; every row's value is in "
             f"`{RunDir.VALUES}`. The {len(top)} lowest-valued rows:", "",
             "| rank | " + ("line | " if has_line else "row | ") + "given label | "
             "preferred label (probability) | value | flagged |"
             + (" corrupted |" if has_truth else ""),
             "|---|---|---|---|---|---|" + ("---|" if has_truth else "")]
    for row in top:
        where = row["csv_line"] if has_line else row["index"]
        lines.append(f"| {row['rank']} | {where} | {row['given_label']} | "
                     f"{row['preferred_label']} ({row['preferred_probability']:.2f}) | "
                     f"{row['value']:.4g} | {'yes' if row['flagged'] else ''} |"
                     + (f" {'yes' if row['corrupted'] else ''} |" if has_truth else ""))
    histogram = RunDir.FIGURES["value_histogram"]
    return lines + ["", f"![{histogram}]({histogram})", ""]


def summary(metrics: dict) -> str:
    s, r = metrics["settings"], metrics["robust_learning"]
    rounds = s.get("rounds") or 1
    done = (f"{metrics['steps_done']} updates" if rounds == 1 else
            f"{rounds} rounds of {metrics['steps_done']} update(s)")
    lines = [f"{run_title(s)}: {done} in {metrics['seconds']} s"]
    if metrics["noise_known"]:
        d = metrics["detection"]
        lines.append(f"  detection AUROC {_fmt(d['auroc'])}  F1 {_fmt(d['f1'])}  "
                     f"clean - corrupted value {_fmt(metrics['value_gap'])}")
    issues = metrics["label_issues"]
    lines.append(f"  {issues['n_flagged']} of {metrics['n_train']} rows flagged as likely "
                 "mislabeled (label_issues.csv)")
    if not r.get("skipped"):
        lines.append(f"  robust learning: test accuracy {_fmt(r['weighted'])} with values as "
                     f"weights, {_fmt(r['unweighted'])} without" + (
                         f", {_fmt(r['clean'])} on clean labels" if r["clean"] is not None
                         else ""))
    return "\n".join(lines)

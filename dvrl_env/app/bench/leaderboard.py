"""From the table: a Markdown leaderboard per task (agents ranked by median detection
AUROC over seeds, with the 95% Student-t interval of the mean and each seed's value)
and the figure of AUROC against predictor fits per agent (mean and interval over seeds)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from dvrl_env.app.bench.stats import finite, fmt, mean_ci
from dvrl_env.app.bench.store import number
from dvrl_env.atomic import atomic_write
from dvrl_env.evaluation.scores import RANK_COLUMN, REMOVE_FRACTIONS


def _by(rows: list[dict], key: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in rows:
        out.setdefault(row[key], []).append(row)
    return out


def _median(rows: list[dict], column: str) -> float:
    x = finite(number(r[column]) for r in rows)
    return float(np.median(x)) if len(x) else float("nan")


def _interval(rows: list[dict], column: str, signed: bool = False) -> str:
    mean, half, _ = mean_ci(number(r[column]) for r in rows)
    return fmt(mean, half, signed=signed)


def _span(rows: list[dict], column: str) -> str:
    values = sorted({int(number(r[column])) for r in rows if math.isfinite(number(r[column]))})
    if not values:
        return "n/a"
    return str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}"


#: fewer seeds than this give intervals too wide to rank by (2 seeds: t = 12.7)
MIN_SEEDS = 3


def seeds_warning(seeds: int) -> str:
    """The warning for a grid of fewer than :data:`MIN_SEEDS` seeds."""
    return (f"only {seeds} seed(s): the 95% intervals over seeds are meaningless with fewer "
            f"than {MIN_SEEDS} (with 2 seeds the half-width is 6.4 times the two seeds' "
            f"difference); give at least {MIN_SEEDS} seeds before ranking agents.")


def _removed() -> str:
    """The removal fractions the remove high / low columns average, as the reader sees them."""
    removed = [f for f in REMOVE_FRACTIONS if f > 0]
    return f"{min(removed):.0%}, {removed[1]:.0%}, ..., {max(removed):.0%}"


def leaderboard(rows: list[dict], title: str, seeds: int | None = None) -> str:
    """The Markdown leaderboard of ``rows`` (the grid's rows); ``seeds``: the grid's
    seed count (default: the distinct seeds in ``rows``), warned about below 3."""
    lines = [f"# {title}", ""]
    seeds = len({r["seed"] for r in rows}) if seeds is None else seeds
    if seeds < MIN_SEEDS:
        lines += [f"**Warning:** {seeds_warning(seeds)}", ""]
    for task, task_rows in _by(rows, "task").items():
        first = task_rows[0]
        budget = first["budget_fits"] or "none (updates only)"
        lines += [f"## {task}", "",
                  f"`{first['env']}` {first['env_options'] or '(default options)'}; noise "
                  f"rate {first['noise_rate']}; fit budget {budget} per cell.", "",
                  "| rank | agent | median AUROC | mean ± 95% CI | AUROC per seed | fits | "
                  "updates | F1 | clean - corrupted (SD) | remove high / low | robust acc | "
                  "s / cell |", "|---" * 12 + "|"]
        failed = []
        ok_by_agent = {}
        for agent, agent_rows in _by(task_rows, "agent").items():
            failed += [r for r in agent_rows if r["error"]]
            ok = [r for r in agent_rows if not r["error"]]
            if ok:
                ok_by_agent[agent] = ok
        ranked = sorted(ok_by_agent.items(), key=lambda kv: -_median(kv[1], RANK_COLUMN)
                        if math.isfinite(_median(kv[1], RANK_COLUMN)) else math.inf)
        for rank, (agent, ok) in enumerate(ranked, 1):
            seeds = ", ".join(f"{r['seed']}: {number(r['auroc']):.3f}" for r in ok)
            removal = f"{_interval(ok, 'remove_high')} / {_interval(ok, 'remove_low')}"
            seconds = np.mean(finite(number(r["seconds"]) for r in ok))
            lines.append(f"| {rank} | {agent} | {_median(ok, 'auroc'):.3f} | "
                         f"{_interval(ok, 'auroc')} | {seeds} | {_span(ok, 'fits')} | "
                         f"{_span(ok, 'updates')} | {_interval(ok, 'f1')} | "
                         f"{_interval(ok, 'gap_sd', signed=True)} | {removal} | "
                         f"{_interval(ok, 'robust_acc')} | {seconds:.0f} |")
        if failed:
            lines += ["", "Failed cells:"]
            lines += [f"- {r['agent']} seed {r['seed']}: {r['error']}" for r in failed]
        lines.append("")
    lines.append("AUROC: detection of the flipped labels by low values (0.5 is chance). Mean ± "
                 "the half-width of the 95% Student-t interval over seeds. Clean - corrupted (SD): "
                 "the mean value of clean points minus that of corrupted points, divided by "
                 "the standard deviation of the run's values (agents' values are on "
                 "different scales, so the raw gap, the table's gap column, does not compare "
                 "across agents; n/a for rows recorded before gap_sd). Remove high / low: "
                 "mean test accuracy of logistic regression after removing "
                 f"{_removed()} of the "
                 "highest / lowest valued points. Robust acc: test accuracy of logistic "
                 "regression weighted by the values.")
    return "\n".join(lines) + "\n"


@dataclasses.dataclass(frozen=True)
class Curve:
    """One agent's AUROC against fits over seeds: at each of ``fits`` (the seeds'
    recorded points, each seed's curve interpolated between its own points), the mean,
    the half-width of the 95% interval (NaN where fewer than 2 seeds reach) and the
    seeds counted."""

    fits: np.ndarray
    mean: np.ndarray
    half: np.ndarray
    n: np.ndarray


@dataclasses.dataclass(frozen=True)
class Reference:
    """An agent with no learning curve (it fits nothing: a method, marginal): its mean
    AUROC and interval over seeds, drawn as a horizontal line."""

    mean: float
    half: float
    n: int
    fits: float  # mean fits (0 for most: methods, random)


def curve_series(rows: list[dict]) -> dict[str, tuple[dict[str, Curve], dict[str, Reference]]]:
    """The figure's data per task: the learning agents' curves, and the reference
    lines of the others; tasks without any learning curve are left out."""
    out = {}
    for task, task_rows in _by([r for r in rows if not r["error"]], "task").items():
        curves, references = {}, {}
        for agent, agent_rows in _by(task_rows, "agent").items():
            seeds = [json.loads(r["curve"]) for r in agent_rows if r["curve"]]
            seeds = [c for c in seeds if any(p["fits"] > 0 for p in c)]
            if seeds:
                curves[agent] = _curve(seeds)
            else:
                mean, half, n = mean_ci(number(r[RANK_COLUMN]) for r in agent_rows)
                fits = finite(number(r["fits"]) for r in agent_rows)
                references[agent] = Reference(mean, half, n,
                                              float(fits.mean()) if len(fits) else 0.0)
        if curves:
            out[task] = (curves, references)
    return out


def _curve(seeds: list[list[dict]]) -> Curve:
    """Mean and interval over seeds' curves on the union of their fit counts; a seed
    counts only within its own range (not extrapolated)."""
    points = []
    for curve in seeds:
        pairs = sorted((p["fits"], _nan(p["auroc"])) for p in curve)
        pairs = [(x, y) for x, y in pairs if math.isfinite(y)]
        points.append((np.array([x for x, _ in pairs], float),
                       np.array([y for _, y in pairs], float)))
    grid = np.unique(np.concatenate([x for x, _ in points]))
    stats = []
    for at in grid:
        values = [float(np.interp(at, x, y)) for x, y in points
                  if len(x) and x[0] <= at <= x[-1]]
        stats.append(mean_ci(values))
    mean, half, n = (np.array(column, dtype=float) for column in zip(*stats, strict=True))
    return Curve(grid, mean, half, n.astype(int))


def plot_curves(rows: list[dict], path: Path) -> Path | None:
    """AUROC against predictor fits, one panel per task, one colour per agent: the mean
    over seeds as a line, its 95% interval as a band; agents that fit nothing as dashed
    horizontal lines at their mean AUROC. None when no row has a curve with fits."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = curve_series(rows)
    if not tasks:
        return None
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    for ax, (task, (curves, references)) in zip(axes[0], tasks.items(), strict=True):
        for i, (agent, c) in enumerate(curves.items()):
            colour = f"C{i % 10}"
            ax.plot(c.fits, c.mean, color=colour, label=f"{agent} (n={c.n.max()})")
            ax.fill_between(c.fits, c.mean - c.half, c.mean + c.half, color=colour, alpha=0.2,
                            lw=0)
        for j, (agent, r) in enumerate(references.items(), len(curves)):
            what = "fits nothing" if r.fits == 0 else f"{r.fits:.0f} fits, no curve"
            ax.axhline(r.mean, color=f"C{j % 10}", lw=1.2, ls="--",
                       label=f"{agent}: {r.mean:.3f} ({what}, n={r.n})")
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set(title=task, xlabel="predictor fits", ylim=(0, 1),  # AUROC's range
               ylabel="detection AUROC (mean, 95% CI over seeds)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
    return path


def _nan(value) -> float:
    return float("nan") if value in ("", None) else float(value)

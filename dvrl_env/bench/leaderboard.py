"""From the table: a Markdown leaderboard per task (agents ranked by median detection
AUROC over seeds, with the 95% Student-t interval of the mean and each seed's value)
and the figure of AUROC against predictor fits per agent."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from dvrl_env.atomic import atomic_write
from dvrl_env.bench.stats import finite, fmt, mean_ci
from dvrl_env.bench.store import number


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


def leaderboard(rows: list[dict], title: str) -> str:
    """The Markdown leaderboard of ``rows`` (the grid's rows)."""
    lines = [f"# {title}", ""]
    for task, task_rows in _by(rows, "task").items():
        first = task_rows[0]
        budget = first["budget_fits"] or "none (updates only)"
        lines += [f"## {task}", "",
                  f"`{first['env']}` {first['env_options'] or '(default options)'}; noise "
                  f"rate {first['noise_rate']}; fit budget {budget} per cell.", "",
                  "| rank | agent | median AUROC | mean ± 95% CI | AUROC per seed | fits | "
                  "updates | F1 | clean - corrupted | remove high / low | robust acc | "
                  "s / cell |", "|---" * 12 + "|"]
        failed = []
        ok_by_agent = {}
        for agent, agent_rows in _by(task_rows, "agent").items():
            failed += [r for r in agent_rows if r["error"]]
            ok = [r for r in agent_rows if not r["error"]]
            if ok:
                ok_by_agent[agent] = ok
        ranked = sorted(ok_by_agent.items(), key=lambda kv: -_median(kv[1], "auroc")
                        if math.isfinite(_median(kv[1], "auroc")) else math.inf)
        for rank, (agent, ok) in enumerate(ranked, 1):
            seeds = ", ".join(f"{r['seed']}: {number(r['auroc']):.3f}" for r in ok)
            removal = f"{_interval(ok, 'remove_high')} / {_interval(ok, 'remove_low')}"
            seconds = np.mean(finite(number(r["seconds"]) for r in ok))
            lines.append(f"| {rank} | {agent} | {_median(ok, 'auroc'):.3f} | "
                         f"{_interval(ok, 'auroc')} | {seeds} | {_span(ok, 'fits')} | "
                         f"{_span(ok, 'updates')} | {_interval(ok, 'f1')} | "
                         f"{_interval(ok, 'gap', signed=True)} | {removal} | "
                         f"{_interval(ok, 'robust_acc')} | {seconds:.0f} |")
        if failed:
            lines += ["", "Failed cells:"]
            lines += [f"- {r['agent']} seed {r['seed']}: {r['error']}" for r in failed]
        lines.append("")
    lines.append("AUROC: detection of the flipped labels by low values (0.5 is chance). Mean ± "
                 "the half-width of the 95% Student-t interval over seeds. Remove high / low: "
                 "mean test accuracy of logistic regression after removing the 10-50% "
                 "highest / lowest valued points. Robust acc: test accuracy of logistic "
                 "regression weighted by the values.")
    return "\n".join(lines) + "\n"


def plot_curves(rows: list[dict], path: Path) -> Path | None:
    """AUROC against predictor fits, one panel per task, one colour per agent (each
    seed a line); None when no row has a curve with fits."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = {t: [r for r in rs if r["curve"] and not r["error"]]
             for t, rs in _by(rows, "task").items()}
    tasks = {t: rs for t, rs in tasks.items() if any(number(r["fits"]) > 0 for r in rs)}
    if not tasks:
        return None
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    for ax, (task, task_rows) in zip(axes[0], tasks.items(), strict=True):
        for i, (agent, agent_rows) in enumerate(_by(task_rows, "agent").items()):
            if not any(number(r["fits"]) > 0 for r in agent_rows):
                continue
            for j, row in enumerate(agent_rows):
                curve = json.loads(row["curve"])
                ax.plot([p["fits"] for p in curve], [_nan(p["auroc"]) for p in curve],
                        color=f"C{i % 10}", alpha=0.7, label=agent if j == 0 else None)
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set(title=task, xlabel="predictor fits", ylabel="detection AUROC")
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
    return path


def _nan(value) -> float:
    return float("nan") if value in ("", None) else float(value)

"""The peer comparison's table, the report of ``benchmarks/specs/peers.toml``: the
harness's rows (one per cell, in the one store) as one line per (dataset, noise,
method), mean and 95% interval over seeds; a method that could not run shows its
error, never a number."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from dvrl_env.app.bench.stats import fmt, mean_ci
from dvrl_env.app.bench.store import extra, number
from dvrl_env.atomic import atomic_write_text

#: the table's method order
METHODS = ["cleanlab", "knn-shapley", "data-oob", "loo", "opendataval-dvrl", "marginal",
           "reinforce-k8"]

def key(row: dict) -> tuple:
    """What makes two rows the same run (a changed setting makes a new run)."""
    return (row["dataset"], f"{float(row['noise_rate']):g}", int(row["seed"]), row["method"],
            row["settings"])


def latest(rows: list[dict]) -> dict[tuple, dict]:
    """The last row written for each run."""
    return {key(r): r for r in rows}


def peer_rows(store_rows: list[dict]) -> list[dict]:
    """The harness's rows as this table's: a failed cell keeps its error as its status."""
    out = []
    for row in store_rows:
        info = extra(row)
        out.append({"dataset": row["task"].split("/")[0], "noise_rate": row["noise_rate"],
                    "seed": row["seed"], "method": row["agent"], "settings": row["options"],
                    "library": info.get("library", "dvrl-env" if row["kind"] != "method"
                                        else ""),
                    "version": info.get("version", ""),
                    "status": row["error"] or "ok",
                    **{c: number(row.get(c)) for c in ("auroc", "f1", "robust_acc",
                                                       "unweighted_acc", "clean_acc",
                                                       "seconds")},
                    "own_flags_f1": info.get("own_flags_f1", "")})
    return out


def report(store_rows: list[dict], out: Path) -> list[Path]:
    """``peers.md`` beside the store: the spec's ``report``."""
    out = Path(out)
    text = markdown(peer_rows(store_rows), METHODS, title=f"Peer comparison ({out.name})",
                    command=f"dvrl bench {out}/spec.toml --out {out} --resume")
    return [atomic_write_text(out / "peers.md", text)]


def _seconds(secs: float) -> str:
    if not np.isfinite(secs):
        return "n/a"
    return f"{secs:.2f}" if secs < 10 else f"{secs:.0f}"


def _plain(v):
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=True)
    if isinstance(v, float):
        return "" if not math.isfinite(v) else f"{v:.6g}"
    return v


def auroc_summary(rows: list[dict], methods: list[str]) -> list[str]:
    """The headline: one line per method, detection AUROC (mean ± 95% interval) in each
    (dataset, noise) column, then the mean wall time per run."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in latest(rows).values():  # failed runs keep their method's line, as n/a
        runs = groups[(r["method"], r["dataset"], float(r["noise_rate"]))]
        if r["status"] == "ok":
            runs.append(r)
    columns = sorted({(d, n) for _, d, n in groups})
    order = {m: i for i, m in enumerate(methods)}
    present = sorted({m for m, _, _ in groups}, key=lambda m: (order.get(m, len(order)), m))
    lines = ["| method | " + " | ".join(f"{d} {n:g}" for d, n in columns) + " | s / run |",
             "|---|" + "---|" * (len(columns) + 1)]
    for method in present:
        cells = [fmt(*mean_ci(r["auroc"] for r in groups.get((method, d, n), []))[:2])
                 for d, n in columns]
        runs = [r for (m, _, _), rs in groups.items() if m == method for r in rs]
        secs = mean_ci(r["seconds"] for r in runs)[0]
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {_seconds(secs)} |")
    return lines


def markdown(rows: list[dict], methods: list[str], *, title: str, command: str) -> str:
    """One line per (dataset, noise, method): mean ± 95% interval over seeds, and the
    unweighted and clean-label accuracies beside robust learning."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in latest(rows).values():
        groups[(r["dataset"], float(r["noise_rate"]), r["method"])].append(r)
    cells = sorted({(d, n) for d, n, _ in groups})
    order = {m: i for i, m in enumerate(methods)}
    lines = [f"# {title}", "", f"Command: `{command}`", "",
             "Detection AUROC by dataset and noise rate (mean ± 95% Student-t interval "
             "over seeds):", "", *auroc_summary(rows, methods), "",
             "Detection AUROC and F1 (flagging as many lowest-valued points as there are "
             "corrupted ones) against the noise mask; robust-learning accuracy: test accuracy "
             "of logistic regression trained with weights max(value, 0) rescaled to mean 1 "
             "(`dvrl_env.evaluation.robust_learning`); seconds: the method's own wall time "
             "per run (one thread). Mean ± 95% Student-t interval over seeds (n).", "",
             "| dataset | noise | method | library | n | AUROC | F1 | robust acc | s / run "
             "| status |", "|---|---|---|---|---|---|---|---|---|---|"]
    for dataset, noise in cells:
        present = sorted((m for d, n, m in groups if (d, n) == (dataset, noise)),
                         key=lambda m: (order.get(m, len(order)), m))
        for method in present:
            runs = groups[(dataset, noise, method)]
            ok = [r for r in runs if r["status"] == "ok"]
            bad = [r for r in runs if r["status"] != "ok"]
            status = "ok" if not bad else (
                f"{bad[-1]['status']} ({len(bad)} of {len(runs)} runs)")
            col = {f: fmt(*mean_ci(r[f] for r in ok)[:2]) for f in
                   ("auroc", "f1", "robust_acc")}
            secs = mean_ci(r["seconds"] for r in ok)[0]
            lib = runs[-1]["library"] + (f" {runs[-1]['version']}" if runs[-1]["version"] else "")
            lines.append(f"| {dataset} | {noise:g} | {method} | {lib} | {len(ok)} | "
                         f"{col['auroc']} | {col['f1']} | {col['robust_acc']} | "
                         f"{_seconds(secs)} | "
                         f"{status.replace('|', '/')} |")
        base = [r for m in present for r in groups[(dataset, noise, m)] if r["status"] == "ok"]
        by_seed = {int(r["seed"]): r for r in base}.values()
        for label, field in (("(unweighted, noisy labels)", "unweighted_acc"),
                             ("(clean labels: ceiling)", "clean_acc")):
            stats = mean_ci(r[field] for r in by_seed)
            lines.append(f"| {dataset} | {noise:g} | {label} | sklearn | {stats[2]} | | | "
                         f"{fmt(*stats[:2])} | | |")
    own = [r for r in latest(rows).values() if r["own_flags_f1"] not in ("", None)]
    if own:
        lines += ["", "cleanlab's own flags (`find_label_issues`, its own count of issues), "
                  "F1 against the noise mask:", ""]
        own_groups: dict[tuple, list] = defaultdict(list)
        for r in own:
            own_groups[(r["dataset"], float(r["noise_rate"]))].append(r["own_flags_f1"])
        lines += [f"- {d} at noise {n:g}: F1 {fmt(*mean_ci(v)[:2])} (n={len(v)})"
                  for (d, n), v in sorted(own_groups.items())]
    return "\n".join(lines) + "\n"

"""Markdown tables from the store's rows, for the leaderboard and the studies' reports:
rows with their numbers parsed, groups, ``mean ± interval`` cells (:mod:`.stats`),
per-seed paired differences."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from dvrl_env.app.bench.stats import fmt, mean_ci
from dvrl_env.app.bench.store import extra, number
from dvrl_env.atomic import atomic_write_text
from dvrl_env.evaluation import scores

#: the store's columns that hold numbers
NUMERIC = ("seed", "noise_rate", "budget_fits", "fits", "updates", "seconds", *scores.COLUMNS)


def parsed(rows: Iterable[dict]) -> list[dict]:
    """The rows without an error, numbers as floats (``seed`` an int), the options and
    ``env_options`` as dicts, and ``extra``'s fields merged in."""
    out = []
    for row in rows:
        if row.get("error"):
            continue
        r = {**row, **{c: number(row.get(c)) for c in NUMERIC}}
        r["seed"] = int(r["seed"])
        r["env_options"] = json.loads(row["env_options"]) if row.get("env_options") else {}
        r["options"] = json.loads(row["options"]) if row.get("options") else {}
        r.update(extra(row))
        out.append(r)
    return out


def group(rows: list[dict], keys: list[str]) -> dict[tuple, list[dict]]:
    """Rows grouped by the values of ``keys``, groups in order of first appearance."""
    out: dict[tuple, list[dict]] = {}
    for row in rows:
        out.setdefault(tuple(row[k] for k in keys), []).append(row)
    return out


def cell(values: Iterable, digits: int = 3, signed: bool = False) -> str:
    """``mean ± half-width`` of the 95% Student-t interval."""
    mean, half, _ = mean_ci(values)
    return fmt(mean, half, digits, signed)


def paired(rows: list[dict], reference: dict[tuple, float], keys: list[str],
           metric: str = "auroc") -> list[float]:
    """Per-seed differences ``row[metric] - reference[(row[k] for k in keys), seed]``."""
    return [r[metric] - reference[(*[r[k] for k in keys], r["seed"])] for r in rows
            if (*[r[k] for k in keys], r["seed"]) in reference]


def span(rows: list[dict], column: str, fallback: str = "n/a") -> str:
    """The values of an integer column: ``600`` or ``300-2400``."""
    values = sorted({int(r[column]) for r in rows if r[column] == r[column]})
    if not values:
        return fallback
    return str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}"


def markdown_table(headers: list[str], body: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def write_report(path: Path, title: str, sections: list[str]) -> Path:
    """``# title`` and the sections, written atomically."""
    atomic_write_text(path, f"# {title}\n\n" + "\n\n".join(s.strip() for s in sections) + "\n")
    return path

"""The reward-only table's report: each agent at its best batch size. The cells are
``benchmarks/specs/reward_only_equal_fits.toml`` (every agent without the marginal
information at 2,400 predictor fits, B = 50, 100, 200), run by ``dvrl bench``, whose
``leaderboard.md`` lists every (task, agent); this module is the spec's ``report`` and
writes ``best_batch.md`` beside it.

    dvrl bench benchmarks/specs/reward_only_equal_fits.toml \
        --out benchmarks/results/reward_only_equal_fits --workers 1 --threads 1

The batch size of a cell is its env's ``batch_size`` or, for agents that learn on their
own utility env (``credit``, ``critic``), their ``batch_size`` option ("default": the
agent's own default). Labels that differ only in B form one family; the family's line
is the B with the highest median AUROC over seeds, with the sizes tried.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dvrl_env.app.bench.tables import cell, group, markdown_table, parsed, span, write_report


def batch_size(row: dict) -> str:
    size = row["options"].get("batch_size", row["env_options"].get("batch_size"))
    return "default" if size is None else str(size)


def family(row: dict) -> str:
    """The agent with its options, the batch size left out."""
    options = {k: v for k, v in row["options"].items() if k != "batch_size"}
    return json.dumps([row["agent_name"], options], sort_keys=True)


def best_batch(rows: list[dict]) -> str:
    """One line per (env, family): the batch size with the highest median AUROC."""
    for r in rows:
        r["B"], r["family"] = batch_size(r), family(r)
    groups = group(rows, ["env", "family", "B", "agent"])
    best: dict[tuple, tuple] = {}
    tried: dict[tuple, list[str]] = {}
    for key, runs in groups.items():
        fam = key[:2]
        tried.setdefault(fam, []).append(key[2])
        median = float(np.median([r["auroc"] for r in runs]))
        if fam not in best or median > best[fam][0]:
            best[fam] = (median, key)
    body = []
    for fam, (median, key) in best.items():
        runs = groups[key]
        aurocs = [r["auroc"] for r in runs]
        sizes = tried[fam]
        b = key[2] + (f" (of {', '.join(sizes)})" if len(sizes) > 1 else "")
        body.append([key[0], key[3], b, len(runs), span(runs, "updates"), span(runs, "fits"),
                     f"{median:.3f}", cell(aurocs), f"{min(aurocs):.3f}", f"{max(aurocs):.3f}",
                     cell((r["gap"] for r in runs), signed=True),
                     f"{np.mean([r['seconds'] for r in runs]):.0f}"])
    return markdown_table(["env", "agent", "B", "seeds", "updates", "fits", "AUROC median",
                           "mean ± 95% CI", "min", "max", "clean - corrupted", "s / run"], body)


def report(store_rows: list[dict], out: Path) -> list[Path]:
    rows = parsed(store_rows)
    md = write_report(Path(out) / "best_batch.md", "Each agent at its best batch size", [
        f"From `{out}/results.csv` (`dvrl bench {out}/spec.toml --out {out} --resume` "
        "re-renders it); every batch size is in leaderboard.md. Mean ± half-width of the "
        "95% Student-t interval over seeds.", best_batch(rows)])
    return [md]

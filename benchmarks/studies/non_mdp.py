"""Hypothesis 1, "the problem is not a pure MDP": the same agents under the env's
predictor-reset modes. The cells are ``benchmarks/specs/non_mdp.toml`` (``--quick``:
``non_mdp_quick.toml``, 2 seeds, n_train 300, fewer updates), run by ``dvrl bench``;
this module is the spec's ``report``: the table and learning curves from the store.

    dvrl bench benchmarks/specs/non_mdp.toml --out benchmarks/results/studies/non_mdp \
        --workers 1 --threads 1

``reset_mode="step"`` restores the predictor before every step (the official contextual
bandit); ``"episode"`` keeps training it through ``episode_length`` steps (5 and 20
here); ``"never"`` never restores it. Per (dataset, agent, mode): detection AUROC,
clean-minus-corrupted value gap, robust-learning accuracy, and the AUROC change against
the same agent in ``"step"`` mode (paired by seed).

Time on this 2-core machine, one thread: the quick spec about 3 min, the full one (160
cells) about 50 min (7-33 s a cell).
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.studies import common
from dvrl_env.app.bench.tables import write_report


def mode_of(env_options: dict) -> str:
    mode = env_options.get("reset_mode", "step")
    return f"episode-{env_options['episode_length']}" if mode == "episode" else mode


def table(rows: list[dict]) -> str:
    return common.paired_table(rows, "mode", lambda r: r["mode"] == "step", ["dataset", "agent"],
                               ["dataset", "reset mode", "AUROC - step mode"])


def report(store_rows: list[dict], out: Path) -> list[Path]:
    rows = common.study_rows(store_rows)
    for r in rows:
        r["mode"] = mode_of(r["env_options"])
    images = common.curve_figures(rows, "mode", out, "by reset mode")
    md = write_report(common.stem(out).with_suffix(".md"),
                      "Hypothesis 1: is DVRL an MDP? Reset modes", [
        common.settings_section(rows, out),
        "Modes: step = predictor restored before every step (official bandit); episode-T = "
        "restored every T steps; never = never restored (episodes cut every 10 steps). "
        "\"AUROC - step mode\": the paired per-seed difference to the same agent in step "
        "mode.", table(rows), common.reference_accuracies(rows),
        *(f"![{p.stem} learning curves]({p.name})" for p in images)])
    return [md, *images]

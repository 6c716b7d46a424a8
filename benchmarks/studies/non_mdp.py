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

from benchmarks.studies import common, figures
from dvrl_env.bench.tables import cell, group, markdown_table, paired, write_report


def mode_of(env_options: dict) -> str:
    mode = env_options.get("reset_mode", "step")
    return f"episode-{env_options['episode_length']}" if mode == "episode" else mode


def table(rows: list[dict]) -> str:
    step = {(r["dataset"], r["agent"], r["seed"]): r["auroc"] for r in rows
            if r["mode"] == "step"}
    body = []
    for (dataset, label, mode), runs in group(rows, ["dataset", "agent", "mode"]).items():
        delta = ("-" if mode == "step" else
                 cell(paired(runs, step, ["dataset", "agent"]), signed=True))
        body.append([dataset, label, mode, int(runs[0]["updates"]), common.fits_cell(runs),
                     len(runs), cell(r["auroc"] for r in runs), delta,
                     *common.outcome_cells(runs)])
    return markdown_table(
        ["dataset", "agent", "reset mode", "updates", "fits", "seeds", "AUROC",
         "AUROC - step mode", "gap", "robust acc", "s / run"], body)


def report(store_rows: list[dict], out: Path) -> list[Path]:
    rows = common.study_rows(store_rows)
    for r in rows:
        r["mode"] = mode_of(r["env_options"])
    stem = common.stem(out)
    images = []
    for (dataset,), runs in group(rows, ["dataset"]).items():
        path = stem.parent / f"{stem.name}_curves_{dataset}.png"
        figures.plot_curves(runs, ["mode"], "agent", path,
                            f"{dataset}: detection AUROC while learning, by reset mode "
                            "(mean over seeds, band: min-max)")
        images.append(path)
    md = write_report(stem.with_suffix(".md"), "Hypothesis 1: is DVRL an MDP? Reset modes", [
        common.settings_section(rows, out),
        "Modes: step = predictor restored before every step (official bandit); episode-T = "
        "restored every T steps; never = never restored (episodes cut every 10 steps). "
        "\"AUROC - step mode\": the paired per-seed difference to the same agent in step "
        "mode.", table(rows), common.reference_accuracies(rows),
        *(f"![{p.stem} learning curves]({p.name})" for p in images)])
    return [md, *images]

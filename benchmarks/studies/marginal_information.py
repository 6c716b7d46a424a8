"""Hypothesis 3, "marginal information is crucial": every agent with it on and off,
beside the marginal information alone. The cells are
``benchmarks/specs/marginal_information.toml`` (``_quick``: 2 seeds, n_train 300), run
by ``dvrl bench``; this module is the spec's ``report``.

    dvrl bench benchmarks/specs/marginal_information.toml \
        --out benchmarks/results/studies/marginal_information --workers 1 --threads 1

Agents: ``reinforce`` K=1 (official), K=8 (leave-one-out) and K=8 with the ``skip``
DVE, ``gumbel``, ``ppo``, ``a2c`` and the cross-fitted supervised ``oracle``, each with
the env's ``marginal_information`` True and False, on Adult and Digits (20% flipped
labels). The ``marginal`` agent (the validation model's probability of the given label,
no RL) is the baseline. "RL adds" is the agent's AUROC minus the marginal baseline's,
paired by seed (same split and noise).

Time on this 2-core machine, one thread: the quick spec about 3 min, the full one (150
cells) about 45 min.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.studies import common, figures
from dvrl_env.app.bench.stats import mean_ci
from dvrl_env.app.bench.tables import group, write_report


def table(rows: list[dict]) -> str:
    return common.paired_table(rows, "marginal_info", lambda r: r["agent"] == "marginal",
                               ["dataset"], ["dataset", "marginal info",
                                             "RL adds (AUROC - marginal)"])


def bar_plot(rows: list[dict], path: Path) -> None:
    panels, hlines = {}, {}
    for (dataset,), runs in group(rows, ["dataset"]).items():
        series = {}
        for (mi,), part in group([r for r in runs if r["agent"] != "marginal"],
                                 ["marginal_info"]).items():
            stats = {a: mean_ci(r["auroc"] for r in g)
                     for (a,), g in group(part, ["agent"]).items()}
            series[f"marginal info {mi}"] = (list(stats), [s[0] for s in stats.values()],
                                             [s[1] for s in stats.values()])
        panels[dataset] = series
        mean = mean_ci(r["auroc"] for r in runs if r["agent"] == "marginal")[0]
        hlines[dataset] = (mean, f"marginal alone ({mean:.3f})")
    figures.plot_bars(panels, path, title="Detection AUROC with and without marginal "
                      "information (95% intervals)", ylabel="detection AUROC", hlines=hlines)


def report(store_rows: list[dict], out: Path) -> list[Path]:
    rows = common.study_rows(store_rows)
    stem = common.stem(out)
    bars = stem.parent / f"{stem.name}_auroc.png"
    bar_plot(rows, bars)
    images = [bars, *common.curve_figures([r for r in rows if r["agent"] != "marginal"],
                                          "marginal_info", out, "marginal information on/off")]
    md = write_report(stem.with_suffix(".md"), "Hypothesis 3: is marginal information "
                      "crucial? Every agent with it on and off", [
        common.settings_section(rows, out),
        "marginal = the validation model's probability of each point's given label (no "
        "RL, needs marginal information on). RL adds = agent AUROC - marginal AUROC on "
        "the same seed; for the oracle it is what supervision on the true mask adds. "
        "reinforce-k8-skip without marginal information has a constant skip path.",
        table(rows), common.reference_accuracies(rows),
        *(f"![{p.stem}]({p.name})" for p in images)])
    return [md, *images]

"""Hypothesis 4, "per-sample values may not be learnable": the supervised ceiling of the
DVE architecture against the RL agents. The cells are
``benchmarks/specs/learnability.toml`` (``_quick``: 2 seeds, n_train 300), run by
``dvrl bench``; this module is the spec's ``report``.

    dvrl bench benchmarks/specs/learnability.toml \
        --out benchmarks/results/studies/learnability --workers 1 --threads 1

The cross-fitted ``oracle`` (the DVE architecture trained on the true noise mask of the
other folds; each point valued by a DVE that never saw its mask) against ``reinforce``
K=8 and ``ppo``, with marginal information on and off; the ``marginal`` baseline (no
learning) for reference. "- oracle" is the agent's AUROC minus the oracle's on the same
seed and marginal setting: how far RL stays below what the architecture can learn.
Image feature sets (CIFAR-10, Fashion-MNIST through an encoder) are more tasks in the
spec, ``options = { encoder = "lenet", download = false, n_train = 1000, ... }``, where
their files are under the data root.

Time on this 2-core machine, one thread: the quick spec about 2 min, the full one on
Adult and Digits (70 cells) about 20 min.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.studies import common, figures
from dvrl_env.app.bench.stats import mean_ci
from dvrl_env.app.bench.tables import group, write_report


def table(rows: list[dict]) -> str:
    return common.paired_table(rows, "marginal_info", lambda r: r["agent"] == "oracle",
                               ["dataset", "marginal_info"],
                               ["features", "marginal info", "- oracle"])


def bar_plot(rows: list[dict], path: Path) -> None:
    panels = {}
    for (mi,), part in group(rows, ["marginal_info"]).items():
        series = {}
        for (label,), runs in group(part, ["agent"]).items():
            stats = {f: mean_ci(r["auroc"] for r in g)
                     for (f,), g in group(runs, ["dataset"]).items()}
            series[label] = (list(stats), [s[0] for s in stats.values()],
                             [s[1] for s in stats.values()])
        panels[f"marginal information {mi}"] = series
    figures.plot_bars(panels, path, title="Supervised ceiling (oracle) against RL agents "
                      "(95% intervals)", ylabel="detection AUROC")


def report(store_rows: list[dict], out: Path) -> list[Path]:
    rows = common.study_rows(store_rows)
    stem = common.stem(out)
    bars = stem.parent / f"{stem.name}_auroc.png"
    bar_plot(rows, bars)
    md = write_report(stem.with_suffix(".md"), "Hypothesis 4: are per-sample values "
                      "learnable? The supervised ceiling against RL", [
        common.settings_section(rows, out),
        "oracle = the DVE architecture trained with supervision on the true noise mask, "
        "cross-fitted over 5 folds with early stopping (the ceiling for the "
        "architecture); - oracle = agent AUROC minus oracle AUROC on the same seed and "
        "marginal setting. marginal = the marginal information alone (no learning).",
        table(rows), common.reference_accuracies(rows), f"![AUROC by feature set]({bars.name})"])
    return [md, bars]

"""PNG figures of the results in :mod:`dvrl_env.evaluation`.

Each ``plot_*`` function takes a result object, an output ``path`` and a ``title``
(callers name the env, agent and seed in it), and writes the PNG atomically: a killed
run leaves the old figure or none, never half a file. Matplotlib is imported inside
the functions, and figures are drawn on a bare Agg canvas (no pyplot), so importing
``dvrl_env`` stays light and plotting works without a display or global state.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from dvrl_env.atomic import atomic_write
from dvrl_env.evaluation.results import (
    DiscoveryCurve,
    RemoveHighLow,
    RobustLearning,
    ValueHistogram,
    ValueTrajectory,
)

__all__ = [
    "plot_discovery",
    "plot_remove_high_low",
    "plot_robust_learning",
    "plot_value_histogram",
    "plot_value_trajectory",
]


def _figure(ncols: int = 1, width: float = 6.0, height: float = 4.5) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols)
    return fig, axes


def _save(fig, path: str | os.PathLike, title: str) -> Path:
    """Title the figure and write it as PNG via a same-folder temporary file."""
    fig.suptitle(title)

    def write(f) -> None:
        fig.savefig(f, format="png", dpi=110)

    return atomic_write(path, write)


def plot_discovery(result: DiscoveryCurve, path: str | os.PathLike, title: str) -> Path:
    """Corrupted-sample discovery: found, optimal and random curves."""
    fig, ax = _figure()
    ax.plot(result.fractions, result.found, "o-", label="data values")
    ax.plot(result.fractions, result.optimal, "--", color="tab:green", label="optimal")
    ax.plot(result.fractions, result.random, ":", color="tab:gray", label="random")
    ax.set_xlabel("fraction of training data inspected (lowest values first)")
    ax.set_ylabel("fraction of corrupted points found")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", title=f"corrupted: {result.noise_fraction:.0%}")
    return _save(fig, path, title)


def plot_remove_high_low(result: RemoveHighLow, path: str | os.PathLike, title: str) -> Path:
    """Test accuracy as the highest- or lowest-valued points are removed."""
    fig, ax = _figure()
    ax.plot(result.fractions, result.remove_high, "o-", color="tab:red",
            label="remove highest-valued")
    ax.plot(result.fractions, result.remove_low, "s-", color="tab:blue",
            label="remove lowest-valued")
    ax.set_xlabel("fraction of training data removed")
    ax.set_ylabel(f"test accuracy ({result.model})")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    return _save(fig, path, title)


def plot_robust_learning(result: RobustLearning, path: str | os.PathLike, title: str) -> Path:
    """Bar chart: value-weighted, unweighted and clean-label test accuracy."""
    fig, ax = _figure(width=7.0)
    names = ["unweighted\n(noisy labels)", "value-weighted\n(noisy labels)",
             "clean labels\n(ceiling)"]
    accs = [result.unweighted, result.weighted, result.clean]
    colors = ["tab:gray", "tab:blue", "tab:green"]
    bars = ax.bar(names, accs, color=colors, label=[n.replace("\n", " ") for n in names])
    ax.bar_label(bars, labels=[f"{a:.3f}" for a in accs], padding=2)
    ax.set_ylabel(f"test accuracy ({result.model})")
    ax.set_xlabel("training")
    ax.set_ylim(0, 1.22)
    ax.legend(loc="upper center", ncols=3, fontsize="small")
    return _save(fig, path, title)


def _finite(x: np.ndarray | None) -> bool:
    return x is not None and bool(np.isfinite(x).any())


def plot_value_trajectory(result: ValueTrajectory, path: str | os.PathLike, title: str) -> Path:
    """Left: clean and corrupted mean value (or the overall mean without a noise
    fraction) per step. Right: detection AUROC per step, only when logged (without a
    noise mask there is none, and no empty panel)."""
    has_auroc = _finite(result.auroc)
    fig, axes = _figure(ncols=2, width=10.0) if has_auroc else _figure()
    left, right = axes if has_auroc else (axes, None)
    step = result.step
    if _finite(result.clean_mean):
        left.plot(step, result.clean_mean, color="tab:blue", label="clean points")
        left.plot(step, result.corrupted_mean, color="tab:red", label="corrupted points")
    if _finite(result.mean_value):
        left.plot(step, result.mean_value, ":", color="tab:gray", label="all points")
    left.set_xlabel("step")
    left.set_ylabel("mean value")
    left.grid(alpha=0.3)
    if left.lines:
        left.legend(loc="best")
    else:
        _no_data(left, "no mean value in the log")
    if has_auroc:
        right.plot(step, result.auroc, color="tab:purple", label="detection AUROC")
        right.axhline(0.5, ls=":", color="tab:gray", label="random (0.5)")
        right.set_ylim(-0.02, 1.02)
        right.legend(loc="best")
        right.set_xlabel("step")
        right.set_ylabel("AUROC of -value for corrupted points")
        right.grid(alpha=0.3)
    if len(step) > 1 and np.isfinite(step).all() and step.min() < step.max():
        for ax in (left, right) if has_auroc else (left,):
            ax.set_xlim(step.min(), step.max())
    return _save(fig, path, title)


def _no_data(ax, text: str) -> None:
    """Say why a panel is empty, with a legend entry so every panel has one."""
    ax.plot([], [], " ", label=text)
    ax.legend(loc="center", frameon=False)
    ax.set_yticks([])


def plot_value_histogram(result: ValueHistogram, path: str | os.PathLike, title: str) -> Path:
    """Histogram of values, clean and corrupted overlaid when the mask is known."""
    fig, ax = _figure()
    edges = result.edges
    series: list[tuple[np.ndarray, str, str]] = []
    if result.counts_clean is not None and result.counts_corrupted is not None:
        series.append((result.counts_clean, "clean points", "tab:blue"))
        series.append((result.counts_corrupted, "corrupted points", "tab:red"))
    else:
        series.append((result.counts, "all points", "tab:blue"))
    for counts, label, color in series:
        ax.stairs(counts, edges, fill=True, alpha=0.45, color=color, label=label)
    ax.set_xlabel("data value")
    ax.set_ylabel("number of training points")
    ax.legend(loc="best")
    return _save(fig, path, title)

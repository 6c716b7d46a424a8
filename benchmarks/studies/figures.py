"""Figures of the hypothesis studies: learning curves, lines and grouped bars (PNG, Agg)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dvrl_env.app.bench.tables import group
from dvrl_env.atomic import atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(rows: list[dict], line_keys: list[str], facet_key: str, path: Path,
                title: str, metric: str = "auroc") -> None:
    """Mean learning curve over seeds (shaded: min to max), one line per ``line_keys``
    group, one panel per ``facet_key`` value."""
    plt = _pyplot()
    facets = list(group(rows, [facet_key]))
    ncols = 2 if len(facets) in (2, 4) else min(len(facets), 3)
    nrows = -(-len(facets) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6 * ncols, 4.2 * nrows), squeeze=False)
    for ax in axes.flat[len(facets):]:
        ax.axis("off")
    for ax, facet in zip(axes.flat, facets, strict=False):
        for label, runs in group([r for r in rows if (r[facet_key],) == facet], line_keys).items():
            curves = [json.loads(r["curve"]) for r in runs if r["curve"]]
            if not curves:
                continue
            steps = [p["step"] for p in curves[0]]
            ys = np.array([[np.nan if p[metric] in ("", None) else p[metric] for p in c]
                           for c in curves if len(c) == len(steps)], dtype=float)
            if len(steps) < 2 or ys.size == 0:
                continue
            line, = ax.plot(steps, np.nanmean(ys, axis=0), label=" ".join(map(str, label)))
            ax.fill_between(steps, np.nanmin(ys, axis=0), np.nanmax(ys, axis=0),
                            color=line.get_color(), alpha=0.15)
        ax.set(title=f"{facet[0]}", xlabel="update", ylabel=f"detection {metric.upper()}"
               if metric == "auroc" else metric)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def plot_lines(series: dict[str, tuple[list, list, list]], path: Path, *, title: str,
               xlabel: str, ylabel: str, logx: bool = False, logy: bool = False) -> None:
    """One line with 95% error bars per series: ``{label: (xs, means, half_widths)}``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for label, (xs, means, halfs) in series.items():
        ax.errorbar(xs, means, yerr=np.nan_to_num(halfs), marker="o", capsize=3, label=label)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if logx:
        ax.set_xscale("log", base=2)
    if logy:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def plot_bars(panels: dict[str, dict[str, tuple[list, list, list]]], path: Path, *,
              title: str, ylabel: str, hlines: dict[str, tuple[float, str]] | None = None
              ) -> None:
    """Grouped bars with 95% error bars: ``{panel: {series: (categories, means, halfs)}}``;
    ``hlines`` draws a labelled reference line in a panel."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), 4.6), squeeze=False)
    labels = list(dict.fromkeys(label for series in panels.values() for label in series))
    for ax, (panel, series) in zip(axes[0], panels.items(), strict=True):
        categories = list(dict.fromkeys(c for cats, _, _ in series.values() for c in cats))
        width = 0.8 / max(1, len(series))
        for i, (label, (cats, means, halfs)) in enumerate(series.items()):
            xs = [categories.index(c) + (i - (len(series) - 1) / 2) * width for c in cats]
            ax.bar(xs, means, width, yerr=np.nan_to_num(halfs), capsize=3, label=label,
                   color=f"C{labels.index(label) % 10}")  # one colour per series everywhere
        if hlines and panel in hlines:
            value, label = hlines[panel]
            ax.axhline(value, color="black", linestyle="--", linewidth=1, label=label)
        ax.set_xticks(range(len(categories)), categories, rotation=30, ha="right", fontsize=8)
        ax.set(title=panel, ylabel=ylabel, ylim=(0, 1.05))
        ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path: Path) -> None:
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    _pyplot().close(fig)

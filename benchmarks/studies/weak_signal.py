"""Hypothesis 2, "the validation signal is too weak": one scalar reward for B actions.
The cells are ``benchmarks/specs/weak_signal.toml`` (``_quick``: 2 seeds, n_train 300,
B 64 and all, 60 updates, 32 draws), run by ``dvrl bench``; this module registers the
spec's probe and is its ``report``.

    dvrl bench benchmarks/specs/weak_signal.toml \
        --out benchmarks/results/studies/weak_signal --workers 1 --threads 1

``reinforce`` with K = 1, 2, 4, 8, 16 selections per batch (K > 1: leave-one-out
baseline) and env batch sizes B = 64, 256 and all points. Before each cell learns, the
``gradient_variance`` probe *measures* the policy-gradient estimator at the DVE's
initial weights: ``draws`` independent estimates (``Reinforce.gradient_estimate``:
fresh selections and rewards on one fixed batch, predictor start and mini-batch order)
give

- rel. variance ``tr Cov(g) / |mean g|^2`` (scale-free; 0 is a noiseless estimate),
- SNR ``(|mean g|^2 - tr Cov / D) / tr Cov``: squared signal over the noise of one
  estimate, debiased for the D draws (<= 0: no signal is detectable at all),
- SNR per fit = SNR / K, the same per predictor training, i.e. per unit of compute
  (averaging K single-sample estimates would give K x the K=1 SNR),

and then the cell trains the agent for its updates (each costs K predictor fits).
Plots: ``weak_signal_snr.png`` and ``weak_signal_auroc.png``.

Time on this 2-core machine, one thread: the quick spec about 3 min, the full one (150
cells) about 45 min to 1 h (7 s for K=1, B=64 up to about 70 s for K=16, B=1000).
"""

from __future__ import annotations

from pathlib import Path

import torch

from benchmarks.studies import common, figures
from dvrl_env.app.bench.hooks import register_probe
from dvrl_env.app.bench.stats import mean_ci
from dvrl_env.app.bench.tables import cell, group, markdown_table, write_report

KS = [1, 2, 4, 8, 16]


def gradient_variance(env, cell, *, draws: int) -> dict:
    """Variance of the policy-gradient estimate at the DVE's initial weights, from
    ``draws`` estimates of a ``reinforce`` agent with the cell's options."""
    import agents

    agent = agents.make("reinforce", env, seed=cell.seed, **cell.agent_options)
    grads = torch.stack([agent.gradient_estimate(seed=cell.seed) for _ in range(draws)])
    grads = grads.double()
    trace = float(grads.var(dim=0).sum())
    mean_sq = float(grads.mean(dim=0).pow(2).sum())
    snr = (mean_sq - trace / draws) / trace if trace > 0 else float("nan")
    return {"draws": draws, "grad_trace": trace, "grad_mean_sq": mean_sq,
            "rel_var": trace / mean_sq if mean_sq > 0 else float("nan"),
            "snr": snr, "snr_per_fit": snr / agent.config.num_samples}


register_probe("gradient_variance", gradient_variance)


def _fields(rows: list[dict]) -> list[dict]:
    for r in rows:
        r["B"] = int(r["env_options"]["batch_size"])
        r["K"] = int(r["options"].get("num_samples", 1))
    return rows


def table(rows: list[dict]) -> str:
    body = []
    for (dataset, b, k), runs in group(rows, ["dataset", "B", "K"]).items():
        body.append([dataset, b, k, common.fits_cell(runs), len(runs),
                     cell((r["rel_var"] for r in runs), 2),
                     cell((r["snr"] for r in runs), 3, signed=True),
                     cell((r["snr_per_fit"] for r in runs), 3, signed=True),
                     cell(r["auroc"] for r in runs), *common.outcome_cells(runs)])
    return markdown_table(
        ["dataset", "B", "K", "fits", "seeds", "rel. variance", "SNR", "SNR per fit",
         "AUROC", "gap", "robust acc", "s / run"], body)


def plots(rows: list[dict], stem: Path) -> list[Path]:
    images = []
    for metric, ylabel in (("snr", "gradient SNR of one estimate"),
                           ("auroc", "detection AUROC after learning")):
        series = {}
        for (dataset, b), runs in group(rows, ["dataset", "B"]).items():
            per_k = group(runs, ["K"])
            stats = [mean_ci(r[metric] for r in per_k[(k,)]) for k in KS if (k,) in per_k]
            series[f"{dataset} B={b}"] = ([k for k in KS if (k,) in per_k],
                                          [s[0] for s in stats], [s[1] for s in stats])
        path = stem.parent / f"{stem.name}_{metric}.png"
        figures.plot_lines(series, path, title=f"REINFORCE with K samples: {ylabel}",
                           xlabel="K, selections per batch (log 2)", ylabel=ylabel, logx=True)
        images.append(path)
    return images


def report(store_rows: list[dict], out: Path) -> list[Path]:
    rows = _fields(common.study_rows(store_rows))
    stem = common.stem(out)
    images = plots(rows, stem)
    md = write_report(stem.with_suffix(".md"), "Hypothesis 2: is the signal too weak? "
                      "Gradient variance against K and B", [
        common.settings_section(rows, out),
        "Gradient columns are measured at the DVE's initial weights over the `draws` "
        "estimates of one fixed batch (selection noise only; see the module docstring). "
        "rel. variance = tr Cov / |mean|^2; SNR = debiased |mean|^2 / tr Cov of one "
        "estimate (<= 0: no detectable signal); SNR per fit = SNR / K. fits = predictor "
        "trainings per run (K x updates).", table(rows), common.reference_accuracies(rows),
        *(f"![{p.stem}]({p.name})" for p in images)])
    return [md, *images]

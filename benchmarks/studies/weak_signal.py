"""Hypothesis 2, "the validation signal is too weak": one scalar reward for B actions.

    python benchmarks/studies/weak_signal.py            # full: 5 seeds
    python benchmarks/studies/weak_signal.py --quick    # 2 seeds, n_train 300, B 64 and all

``reinforce`` with K = 1, 2, 4, 8, 16 selections per batch (K > 1: leave-one-out
baseline) and env batch sizes B = 64, 256 and all points. For each (K, B) and seed it
*measures* the policy-gradient estimator at the DVE's initial weights: ``--draws``
independent estimates (``Reinforce.gradient_estimate``: fresh selections and rewards
on one fixed batch, predictor start and mini-batch order) give

- rel. variance ``tr Cov(g) / |mean g|^2`` (scale-free; 0 is a noiseless estimate),
- SNR ``(|mean g|^2 - tr Cov / D) / tr Cov``: squared signal over the noise of one
  estimate, debiased for the D draws (<= 0: no signal is detectable at all),
- SNR per fit = SNR / K, the same per predictor training, i.e. per unit of compute
  (averaging K single-sample estimates would give K x the K=1 SNR),

and then trains the agent for a fixed number of updates (each costs K predictor fits)
and reports the AUROC, gap and robust-learning accuracy reached. Plots:
``weak_signal[_quick]_snr.png`` and ``..._auroc.png``.

Time on this 2-core machine, one thread, sharing it with two other jobs: ``--quick``
2.5 min (measured); the full default (logistic predictor, Adult and Digits at n_train
1000, 150 updates, 64 draws, 150 runs) about 45 min to 1 h (estimated from timed
full-size runs: 7 s for K=1, B=64 up to about 70 s for K=16, B=1000 on Digits);
``--predictor mlp`` roughly 15x that.
"""

from __future__ import annotations

import sys

import torch

try:
    from benchmarks.studies import common, figures
except ModuleNotFoundError:  # run as a file
    import common
    import figures

STUDY = "weak_signal"
KS = [1, 2, 4, 8, 16]


def measure_gradient(env, spec) -> dict:
    """Variance of the policy-gradient estimate at the DVE's initial weights."""
    import agents

    draws = int(spec.fields["draws"])
    agent = agents.make("reinforce", env, seed=spec.seed, **spec.options)
    grads = torch.stack([agent.gradient_estimate(seed=spec.seed) for _ in range(draws)])
    grads = grads.double()
    trace = float(grads.var(dim=0).sum())
    mean_sq = float(grads.mean(dim=0).pow(2).sum())
    snr = (mean_sq - trace / draws) / trace if trace > 0 else float("nan")
    return {"grad_trace": trace, "grad_mean_sq": mean_sq,
            "rel_var": trace / mean_sq if mean_sq > 0 else float("nan"),
            "snr": snr, "snr_per_fit": snr / spec.options["num_samples"]}


def specs(args, seeds: list[int], env_kwargs: dict,
          sets: dict[str, tuple[str, dict]] = common.TABULAR_SETS) -> list:
    """``sets``: ``{dataset: (env id, options)}``, e.g. from ``common.study_datasets``."""
    updates = args.updates or (60 if args.quick else 150)
    draws = args.draws or (32 if args.quick else 64)
    out = []
    for name, (env_id, options) in sets.items():
        kwargs = {**env_kwargs, **options}
        n_train = kwargs.get("n_train", 1000)
        batches = [64, n_train] if args.quick else [64, 256, n_train]
        out += [common.RunSpec(STUDY, {"dataset": name, "B": b, "K": k, "draws": draws},
                               seed, env_id, "reinforce", updates, {**kwargs, "batch_size": b},
                               {"num_samples": k}, args.noise_rate)
                for b in batches for k in KS for seed in seeds]
    return out


def table(rows: list[dict]) -> str:
    body = []
    for (dataset, b, k), runs in common.group(rows, ["dataset", "B", "K"]).items():
        body.append([dataset, b, k, common.fits_cell(runs, fallback=str(k * runs[0]["updates"])),
                     len(runs),
                     common.cell((r["rel_var"] for r in runs), 2),
                     common.cell((r["snr"] for r in runs), 3, signed=True),
                     common.cell((r["snr_per_fit"] for r in runs), 3, signed=True),
                     common.cell(r["auroc"] for r in runs),
                     *common.outcome_cells(runs)])
    return common.markdown_table(
        ["dataset", "B", "K", "fits", "seeds", "rel. variance", "SNR", "SNR per fit",
         "AUROC", "gap", "robust acc", "s / run"], body)


def plots(rows: list[dict], stem) -> list[str]:
    images = []
    for metric, ylabel in (("snr", "gradient SNR of one estimate"),
                           ("auroc", "detection AUROC after learning")):
        series = {}
        for (dataset, b), runs in common.group(rows, ["dataset", "B"]).items():
            per_k = common.group(runs, ["K"])
            stats = [common.mean_ci(r[metric] for r in per_k[(k,)]) for k in KS
                     if (k,) in per_k]
            series[f"{dataset} B={b}"] = ([k for k in KS if (k,) in per_k],
                                          [s[0] for s in stats], [s[1] for s in stats])
        path = stem.parent / f"{stem.name}_{metric}.png"
        figures.plot_lines(series, path, title=f"REINFORCE with K samples: {ylabel}",
                          xlabel="K, selections per batch (log 2)", ylabel=ylabel,
                          logx=True)
        images.append(f"![{metric} against K]({path.name})")
    return images


def main(argv: list[str] | None = None) -> int:
    parser = common.parser(__doc__, STUDY)
    parser.add_argument("--draws", type=int, default=None,
                        help="gradient estimates per (K, B, seed) (64, --quick 32)")
    parser.add_argument("--updates", type=int, default=None,
                        help="updates per run (150, --quick 60)")
    args = parser.parse_args(argv)
    seeds, env_kwargs, stem = common.setup(args, STUDY)
    if args.quick:
        print("--quick here: B 64 and 300 (full: 64, 256, 1000), 60 updates (full 150), "
              "32 gradient draws (full 64); the --updates and --draws options win.")
    notes: list[str] = []
    sets = common.study_datasets(args.quick, notes)
    rows = common.run_all(specs(args, seeds, env_kwargs, sets), stem.with_suffix(".csv"),
                          before_learning=measure_gradient)
    text = table(rows)
    print(text)
    command = "python benchmarks/studies/weak_signal.py" + (" --quick" if args.quick else "")
    common.write_report(stem.with_suffix(".md"), "Hypothesis 2: is the signal too weak? "
                        "Gradient variance against K and B", [
        common.settings_section(args, seeds, env_kwargs, rows, command),
        common.skipped_section(notes),
        "Gradient columns are measured at the DVE's initial weights over the `draws` "
        "estimates of one fixed batch (selection noise only; see the module docstring). "
        "rel. variance = tr Cov / |mean|^2; SNR = debiased |mean|^2 / tr Cov of one "
        "estimate (<= 0: no detectable signal); SNR per fit = SNR / K. fits = predictor "
        "trainings per run (K x updates).", text, common.reference_accuracies(rows),
        *plots(rows, stem)])
    return 0


if __name__ == "__main__":
    sys.exit(main())

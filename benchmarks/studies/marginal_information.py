"""Hypothesis 3, "marginal information is crucial": every agent with it on and off,
beside the marginal information alone.

    python benchmarks/studies/marginal_information.py            # full: 5 seeds
    python benchmarks/studies/marginal_information.py --quick    # 2 seeds, n_train 300

Agents: ``reinforce`` K=1 (official), K=8 (leave-one-out) and K=8 with the ``skip``
DVE, ``gumbel``, ``ppo``, ``a2c`` and the cross-fitted supervised ``oracle``, each with
the env's ``marginal_information`` True and False, on Adult and Digits (20% flipped
labels) and, where their files are under the data root, CIFAR-10 and Fashion-MNIST
features from a random-init ResNet-18 and (where the weights are in torch's cache) the
ImageNet-pretrained ResNet-18 and Inception-v3 (``cifar10-inception_v3-imagenet``, the
official DVRL's features; ``--quick``: ResNet-18 only); a note says what was
skipped. The ``marginal`` agent (the validation model's probability of the given
label, no RL) is the baseline. "RL adds" is the agent's AUROC minus the marginal baseline's,
paired by seed (same split and noise): how much the agent adds on top of the signal it
is handed (for the oracle: what supervision on the true mask adds). Plots:
``marginal_information[_quick]_auroc.png`` and ``..._curves_<dataset>.png``.

Time on this 2-core machine, one thread, sharing it with two other jobs: ``--quick``
2.8 min (measured); the full default (logistic predictor, n_train 1000, 150 runs) about
45 min (estimated from timed full-size runs, 10-30 s each); ``--predictor mlp`` roughly
15x that (the oracle does not train predictors and stays at ~20 s).
"""

from __future__ import annotations

import sys

try:
    from benchmarks.studies import common, figures
except ModuleNotFoundError:  # run as a file
    import common
    import figures

STUDY = "marginal_information"
AGENTS = ["reinforce-k1", "reinforce-k8", "reinforce-k8-skip", "gumbel", "ppo", "a2c",
          "oracle"]


def specs(seeds: list[int], env_kwargs: dict, quick: bool, noise_rate: float,
          sets: dict[str, tuple[str, dict]] = common.TABULAR_SETS) -> list:
    """``sets``: ``{dataset: (env id, options)}``, e.g. from ``common.study_datasets``."""
    out = []
    for name, (env_id, options) in sets.items():
        runs = [("marginal", True)] + [(a, mi) for a in AGENTS for mi in (True, False)]
        for label, mi in runs:
            fields = {"dataset": name, "agent": label, "marginal_info": "on" if mi else "off"}
            out += [common.agent_spec(STUDY, label, seed, env_id, quick=quick, fields=fields,
                                      env_kwargs={**env_kwargs, **options,
                                                  "marginal_information": mi},
                                      noise_rate=noise_rate) for seed in seeds]
    return out


def marginal_reference(rows: list[dict]) -> dict:
    return {(r["dataset"], r["seed"]): r["auroc"] for r in rows if r["agent"] == "marginal"}


def table(rows: list[dict]) -> str:
    reference = marginal_reference(rows)
    body = []
    for (dataset, label, mi), runs in common.group(
            rows, ["dataset", "agent", "marginal_info"]).items():
        adds = ("-" if label == "marginal" else
                common.cell(common.paired(runs, reference, ["dataset"]), signed=True))
        body.append([dataset, label, mi, runs[0]["updates"], common.fits_cell(runs), len(runs),
                     common.cell(r["auroc"] for r in runs), adds,
                     *common.outcome_cells(runs)])
    return common.markdown_table(
        ["dataset", "agent", "marginal info", "updates", "fits", "seeds", "AUROC",
         "RL adds (AUROC - marginal)", "gap", "robust acc", "s / run"], body)


def bar_plot(rows: list[dict], path) -> None:
    panels, hlines = {}, {}
    for (dataset,), runs in common.group(rows, ["dataset"]).items():
        series = {}
        for (mi,), part in common.group([r for r in runs if r["agent"] != "marginal"],
                                         ["marginal_info"]).items():
            stats = {a: common.mean_ci(r["auroc"] for r in g)
                     for (a,), g in common.group(part, ["agent"]).items()}
            series[f"marginal info {mi}"] = (list(stats), [s[0] for s in stats.values()],
                                             [s[1] for s in stats.values()])
        panels[dataset] = series
        mean = common.mean_ci(r["auroc"] for r in runs if r["agent"] == "marginal")[0]
        hlines[dataset] = (mean, f"marginal alone ({mean:.3f})")
    figures.plot_bars(panels, path, title="Detection AUROC with and without marginal "
                     "information (95% intervals)", ylabel="detection AUROC", hlines=hlines)


def main(argv: list[str] | None = None) -> int:
    args = common.parser(__doc__, STUDY).parse_args(argv)
    seeds, env_kwargs, stem = common.setup(args, STUDY)
    notes: list[str] = []
    sets = common.study_datasets(args.quick, notes, pretrained=True)
    rows = common.run_all(specs(seeds, env_kwargs, args.quick, args.noise_rate, sets),
                          stem.with_suffix(".csv"))
    text = table(rows)
    print(text)
    bars = stem.parent / f"{stem.name}_auroc.png"
    bar_plot(rows, bars)
    images = [f"![AUROC with and without marginal information]({bars.name})"]
    learners = [r for r in rows if r["agent"] != "marginal"]
    for (dataset,), runs in common.group(learners, ["dataset"]).items():
        path = stem.parent / f"{stem.name}_curves_{dataset}.png"
        figures.plot_curves(runs, ["marginal_info"], "agent", path,
                           f"{dataset}: detection AUROC while learning, marginal information "
                           "on/off (mean over seeds, band: min-max)")
        images.append(f"![{dataset} learning curves]({path.name})")
    command = ("python benchmarks/studies/marginal_information.py"
               + (" --quick" if args.quick else ""))
    common.write_report(stem.with_suffix(".md"), "Hypothesis 3: is marginal information "
                        "crucial? Every agent with it on and off", [
        common.settings_section(args, seeds, env_kwargs, rows, command),
        common.skipped_section(notes),
        "marginal = the validation model's probability of each point's given label (no "
        "RL, needs marginal information on). RL adds = agent AUROC - marginal AUROC on "
        "the same seed; for the oracle it is what supervision on the true mask adds. "
        "reinforce-k8-skip without marginal information has a constant skip path.",
        text, common.reference_accuracies(rows), *images])
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Hypothesis 4, "per-sample values may not be learnable": the supervised ceiling of the
DVE architecture against the RL agents, on tabular data and on image features.

    python benchmarks/studies/learnability.py            # full: 5 seeds
    python benchmarks/studies/learnability.py --quick    # 2 seeds, n_train 300

The cross-fitted ``oracle`` (the DVE architecture trained on the true noise mask of the
other folds; each point valued by a DVE that never saw its mask) against ``reinforce``
K=8 and ``ppo``, with marginal information on and off; the ``marginal`` baseline
(no learning) for reference. Feature sets: Adult (tabular), Digits (8x8 pixels), and
CIFAR-10 / Fashion-MNIST (n_train 1000) through five encoders (flattened pixels, a
random-init ResNet-18, a random-init LeNet-style conv net, and the ImageNet-pretrained
ResNet-18 and Inception-v3, the official DVRL's features; ``--quick``: LeNet and
pretrained ResNet-18) when their files are under the data root (``$DVRL_DATA`` or
``~/.cache/dvrl_env/data``) and, for the pretrained ones, the weights in torch's cache.
Nothing is downloaded; a note says what was skipped. "- oracle" is the agent's AUROC
minus the oracle's on the same seed and marginal setting: how far RL stays below what
the architecture can learn.
Plot: ``learnability[_quick]_auroc.png``.

Time on this 2-core machine, one thread, sharing it with two other jobs: ``--quick``
2.2 min (measured, Adult and Digits); the full default on Adult and Digits (logistic
predictor, n_train 1000, 70 runs) about 20 min (estimated from timed full-size runs).
Each image set adds 3 encoders x 35 runs: predictor fits grow with the feature width
(LeNet 84, ResNet-18 512, Inception-v3 2048, flattened pixels 784 or 3072 against
Digits' 64), so from under an hour (LeNet) to several hours (flattened CIFAR-10),
estimated, not measured; the encoded features are cached under the data root. The
pretrained encoders add their encoding, 2,500 images per seed and set: on this busy
CPU about 10 min (ResNet-18, 4.2-4.9 images/s) and 20 min (Inception-v3, 1.7-2.0
images/s) per seed, extrapolated from ``benchmarks/encode_time.py``'s measured rates.
"""

from __future__ import annotations

import sys

try:
    from benchmarks.studies import common, figures
except ModuleNotFoundError:  # run as a file
    import common
    import figures

STUDY = "learnability"
AGENTS = ["oracle", "reinforce-k8", "ppo"]
ENCODERS = ["flatten", "resnet18", "lenet", "resnet18-imagenet", "inception_v3-imagenet"]
QUICK_ENCODERS = ["lenet", *common.QUICK_PRETRAINED]


def feature_sets(quick: bool, notes: list[str]) -> dict[str, tuple[str, dict]]:
    """``{label: (env id, env options)}`` for every feature set available here: a
    pretrained encoder only where its weights are in torch's cache."""
    sets = {"adult (tabular)": (common.DATASETS["adult"], {}),
            "digits (pixels)": (common.DATASETS["digits"], {})}
    sizes = common.IMAGE_SIZES_QUICK if quick else common.IMAGE_SIZES
    images = common.image_datasets(notes)
    pretrained = common.pretrained_encoders(notes) if images else []
    encoders = [e for e in (QUICK_ENCODERS if quick else ENCODERS)
                if "imagenet" not in e or e in pretrained]
    for name, env_id in images.items():
        for encoder in encoders:
            sets[f"{name} ({encoder})"] = (env_id, {"encoder": encoder, "download": False,
                                                    **sizes})
    return sets


def specs(sets: dict, seeds: list[int], env_kwargs: dict, quick: bool,
          noise_rate: float) -> list:
    out = []
    for features, (env_id, options) in sets.items():
        runs = [("marginal", True)] + [(a, mi) for a in AGENTS for mi in (True, False)]
        for label, mi in runs:
            fields = {"features": features, "agent": label,
                      "marginal_info": "on" if mi else "off"}
            kwargs = {**env_kwargs, **options, "marginal_information": mi}
            out += [common.agent_spec(STUDY, label, seed, env_id, quick=quick, fields=fields,
                                      env_kwargs=kwargs, noise_rate=noise_rate)
                    for seed in seeds]
    return out


def table(rows: list[dict]) -> str:
    oracle = {(r["features"], r["marginal_info"], r["seed"]): r["auroc"] for r in rows
              if r["agent"] == "oracle"}
    body = []
    for (features, label, mi), runs in common.group(
            rows, ["features", "agent", "marginal_info"]).items():
        below = ("-" if label == "oracle" else common.cell(
            common.paired(runs, oracle, ["features", "marginal_info"]), signed=True))
        body.append([features, label, mi, runs[0]["updates"], common.fits_cell(runs), len(runs),
                     common.cell(r["auroc"] for r in runs), below,
                     *common.outcome_cells(runs)])
    return common.markdown_table(
        ["features", "agent", "marginal info", "updates", "fits", "seeds", "AUROC", "- oracle",
         "gap", "robust acc", "s / run"], body)


def bar_plot(rows: list[dict], path) -> None:
    panels = {}
    for (mi,), part in common.group(rows, ["marginal_info"]).items():
        series = {}
        for (label,), runs in common.group(part, ["agent"]).items():
            stats = {f: common.mean_ci(r["auroc"] for r in g)
                     for (f,), g in common.group(runs, ["features"]).items()}
            series[label] = (list(stats), [s[0] for s in stats.values()],
                             [s[1] for s in stats.values()])
        panels[f"marginal information {mi}"] = series
    figures.plot_bars(panels, path, title="Supervised ceiling (oracle) against RL agents "
                     "(95% intervals)", ylabel="detection AUROC")


def main(argv: list[str] | None = None) -> int:
    args = common.parser(__doc__, STUDY).parse_args(argv)
    seeds, env_kwargs, stem = common.setup(args, STUDY)
    notes: list[str] = []
    sets = feature_sets(args.quick, notes)
    rows = common.run_all(specs(sets, seeds, env_kwargs, args.quick, args.noise_rate),
                          stem.with_suffix(".csv"))
    text = table(rows)
    print(text)
    bars = stem.parent / f"{stem.name}_auroc.png"
    bar_plot(rows, bars)
    command = "python benchmarks/studies/learnability.py" + (" --quick" if args.quick else "")
    common.write_report(stem.with_suffix(".md"), "Hypothesis 4: are per-sample values "
                        "learnable? The supervised ceiling against RL", [
        common.settings_section(args, seeds, env_kwargs, rows, command),
        "oracle = the DVE architecture trained with supervision on the true noise mask, "
        "cross-fitted over 5 folds with early stopping (the ceiling for the "
        "architecture); - oracle = agent AUROC minus oracle AUROC on the same seed and "
        "marginal setting. marginal = the marginal information alone (no learning).",
        common.skipped_section(notes), text, common.reference_accuracies(rows, "features"),
        f"![AUROC by feature set]({bars.name})"])
    return 0


if __name__ == "__main__":
    sys.exit(main())

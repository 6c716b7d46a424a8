"""Hypothesis 1, "the problem is not a pure MDP": the same agents under the env's
predictor-reset modes.

    python benchmarks/studies/non_mdp.py            # full: 5 seeds
    python benchmarks/studies/non_mdp.py --quick    # 2 seeds, n_train 300, few updates

``reset_mode="step"`` restores the predictor before every step (the official contextual
bandit); ``"episode"`` keeps training it through ``episode_length`` steps (5 and 20
here); ``"never"`` never restores it. Agents: ``reinforce`` with 1 and 8 samples,
``ppo`` and ``gumbel``, on Adult and Digits (20% flipped labels). Per (dataset, agent,
mode): detection AUROC, clean-minus-corrupted value gap, robust-learning accuracy, the
AUROC change against the same agent in ``"step"`` mode (paired by seed), and learning
curves (``non_mdp[_quick]_curves_<dataset>.png``).

Time on this 2-core machine, one thread, sharing it with two other jobs: ``--quick``
2.8 min (measured); the full default (logistic predictor, n_train 1000, 160 runs) about
50 min (estimated from timed full-size runs: 7-17 s each on Adult, 16-33 s on Digits);
``--predictor mlp`` roughly 15x that.
"""

from __future__ import annotations

import sys

try:
    from benchmarks.studies import common, figures
except ModuleNotFoundError:  # run as a file
    import common
    import figures

STUDY = "non_mdp"
AGENTS = ["reinforce-k1", "reinforce-k8", "ppo", "gumbel"]
MODES = {"step": {"reset_mode": "step"},
         "episode-5": {"reset_mode": "episode", "episode_length": 5},
         "episode-20": {"reset_mode": "episode", "episode_length": 20},
         "never": {"reset_mode": "never"}}


def specs(seeds: list[int], env_kwargs: dict, quick: bool, noise_rate: float,
          sets: dict[str, tuple[str, dict]] = common.TABULAR_SETS):
    """``sets``: ``{dataset: (env id, options)}``, e.g. from ``common.study_datasets``."""
    return [common.agent_spec(STUDY, label, seed, env_id, quick=quick,
                              fields={"dataset": name, "agent": label, "mode": mode},
                              env_kwargs={**env_kwargs, **options, **MODES[mode]},
                              noise_rate=noise_rate)
            for name, (env_id, options) in sets.items() for label in AGENTS
            for mode in MODES for seed in seeds]


def table(rows: list[dict]) -> str:
    step = {(r["dataset"], r["agent"], r["seed"]): r["auroc"] for r in rows
            if r["mode"] == "step"}
    body = []
    for (dataset, label, mode), runs in common.group(rows, ["dataset", "agent", "mode"]).items():
        delta = ("-" if mode == "step" else
                 common.cell(common.paired(runs, step, ["dataset", "agent"]), signed=True))
        body.append([dataset, label, mode, runs[0]["updates"], common.fits_cell(runs), len(runs),
                     common.cell(r["auroc"] for r in runs), delta,
                     *common.outcome_cells(runs)])
    return common.markdown_table(
        ["dataset", "agent", "reset mode", "updates", "fits", "seeds", "AUROC", "AUROC - step mode",
         "gap", "robust acc", "s / run"], body)


def main(argv: list[str] | None = None) -> int:
    args = common.parser(__doc__, STUDY).parse_args(argv)
    seeds, env_kwargs, stem = common.setup(args, STUDY)
    notes: list[str] = []
    sets = common.study_datasets(args.quick, notes)
    rows = common.run_all(specs(seeds, env_kwargs, args.quick, args.noise_rate, sets),
                          stem.with_suffix(".csv"))
    text = table(rows)
    print(text)
    images = []
    for dataset, runs in common.group(rows, ["dataset"]).items():
        path = stem.parent / f"{stem.name}_curves_{dataset[0]}.png"
        figures.plot_curves(runs, ["mode"], "agent", path,
                           f"{dataset[0]}: detection AUROC while learning, by reset mode "
                           "(mean over seeds, band: min-max)")
        images.append(f"![{dataset[0]} learning curves]({path.name})")
    command = "python benchmarks/studies/non_mdp.py" + (" --quick" if args.quick else "")
    common.write_report(stem.with_suffix(".md"), "Hypothesis 1: is DVRL an MDP? Reset modes", [
        common.settings_section(args, seeds, env_kwargs, rows, command),
        common.skipped_section(notes),
        "Modes: step = predictor restored before every step (official bandit); episode-T = "
        "restored every T steps; never = never restored (episodes cut every 10 steps). "
        "\"AUROC - step mode\": the paired per-seed difference to the same agent in step "
        "mode.", text, common.reference_accuracies(rows), *images])
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What else was tried to rank a noisy table's rows without a clean set: variants of the
cross-fitted marginal information, on the Adult-as-CSV tables of
``benchmarks/specs/label_issues.toml`` (1,670 rows drawn with each seed, the project's
CSV encoding, the bench's flips). Prints each variant's detection AUROC per seed and the
median, beside the default (3 rounds, ``C_GRID``, rank weights), which the bench measures
through the command itself.

    python benchmarks/label_issues_variants.py [--noise-rate 0.2] [--seeds 0 1 2 3 4]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.label_issues import adult_cells, write_table  # noqa: E402
from dvrl_env.app.bench.code import code_line  # noqa: E402
from dvrl_env.data.crossfit import (  # noqa: E402
    C_GRID,
    cross_fitted_probabilities,
    make_folds,
    reference_weights,
)
from dvrl_env.data.datasets import add_label_noise  # noqa: E402
from dvrl_env.data.tabular import load_csv  # noqa: E402
from dvrl_env.evaluation.metrics import detection_auroc  # noqa: E402

FINE_GRID = (0.003, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 3.0, 10.0)


def given_probability(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    return probs[np.arange(len(y)), y]


def rounds(x, y, *, n_rounds=3, grid=C_GRID, power=1.0, fold_draws=1, normalise=False,
           folds=5):
    """The default's loop with one thing changed: the C grid, the weights' sharpness,
    fold draws averaged, the number of folds, or scores divided by their class's mean
    (confident learning's per-class threshold)."""
    weights = None
    for _ in range(n_rounds):
        probs = np.mean([cross_fitted_probabilities(x, y, 2, make_folds(y, folds, draw),
                                                    weights, grid=grid)[0]
                         for draw in range(fold_draws)], axis=0)
        score = given_probability(probs, y)
        if normalise:
            score = score / np.array([score[y == c].mean() for c in range(2)])[y]
        weights = reference_weights(score) ** power
    return score


def relabel(x, y, *, n_rounds=3):
    """EM-style: each row also counts with the other label, weighted by the chance that
    its given label is wrong."""
    fold_of = make_folds(y, 5, 0)
    probs, _ = cross_fitted_probabilities(x, y, 2, fold_of)
    for _ in range(n_rounds - 1):
        wrong = 1.0 - given_probability(probs, y)
        both, _ = cross_fitted_probabilities(
            np.concatenate([x, x]), np.concatenate([y, 1 - y]), 2,
            np.concatenate([fold_of, fold_of]), np.concatenate([1.0 - wrong, wrong]))
        probs = both[: len(y)]
    return given_probability(probs, y)


VARIANTS = {
    "default (3 rounds)": lambda x, y: rounds(x, y),
    "1 round": lambda x, y: rounds(x, y, n_rounds=1),
    "5 rounds": lambda x, y: rounds(x, y, n_rounds=5),
    "finer C grid (12 values)": lambda x, y: rounds(x, y, grid=FINE_GRID),
    "three fold draws averaged": lambda x, y: rounds(x, y, fold_draws=3),
    "10 folds": lambda x, y: rounds(x, y, folds=10),
    "10 folds, finer C grid": lambda x, y: rounds(x, y, folds=10, grid=FINE_GRID),
    "weights = rank ** 2": lambda x, y: rounds(x, y, power=2.0),
    "weights = rank ** 0.5": lambda x, y: rounds(x, y, power=0.5),
    "per-class normalised score": lambda x, y: rounds(x, y, normalise=True),
    "relabelling (EM)": relabel,
}


ORACLE = "oracle: clean-label reference"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--noise-rate", type=float, default=0.2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    print(code_line(["benchmarks.label_issues"]), flush=True)
    scores: dict[str, list[float]] = {name: [] for name in [*VARIANTS, ORACLE]}
    for seed in args.seeds:
        header, rows = adult_cells(seed)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "adult.csv"
            write_table(path, header, rows)
            data = load_csv(path, "income", validation="cross-fit")
        y, mask = add_label_noise(data.y_train, 2, args.noise_rate, seed)
        for name, variant in VARIANTS.items():
            scores[name].append(detection_auroc(variant(data.x_train, y), mask))
        # the ceiling of this model family: the same folds and model fitted to the clean
        # labels (an oracle no user has), scoring the given ones
        oracle, _ = cross_fitted_probabilities(data.x_train, data.y_train, 2,
                                               make_folds(y, 5, 0))
        scores.setdefault(ORACLE, []).append(detection_auroc(given_probability(oracle, y),
                                                             mask))
        print(f"seed {seed}: " + ", ".join(f"{n} {v[-1]:.4f}" for n, v in scores.items()),
              flush=True)
    print(f"\nAdult-as-CSV, noise {args.noise_rate}, median over seeds {args.seeds}:")
    for name, values in scores.items():
        print(f"  {name:28s} {np.median(values):.4f}")


if __name__ == "__main__":
    main()

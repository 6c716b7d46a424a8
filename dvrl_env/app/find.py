"""``find_label_issues``: the ``dvrl value --csv`` job for a notebook, in one call.

    >>> import pandas as pd, dvrl_env
    >>> issues = dvrl_env.find_label_issues(pd.read_csv("train.csv"), label="income")
    >>> issues[issues.flagged].head(20)       # most likely mislabeled first

The table goes through the same CSV policy as ``dvrl value --csv`` (missing values,
numeric and categorical columns, :mod:`dvrl_env.data.tabular`), every row is valued with
no clean validation set (cross-fitted, ``validation="cross-fit"``) in ``rounds``
re-weighted rounds, and the result has one row per input row.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from dvrl_env.data.crossfit import DEFAULT_FOLDS

#: the defaults of ``dvrl value --csv`` without --valid-csv (dvrl_env.app.cli uses them too)
DEFAULT_AGENT = "marginal"
DEFAULT_ROUNDS = 3
#: updates per round of an agent that learns, unless told
DEFAULT_STEPS = 100
#: agents that learn nothing: one update is all they take
NON_LEARNING_AGENTS = ("marginal", "random")


def default_steps(agent: str) -> int:
    """Updates when none are given: one for the agents that learn nothing."""
    return 1 if agent in NON_LEARNING_AGENTS else DEFAULT_STEPS


def find_label_issues(
    table: Any,
    label: str,
    *,
    agent: str = DEFAULT_AGENT,
    steps: int | None = None,
    rounds: int = DEFAULT_ROUNDS,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    env_options: dict | None = None,
    agent_options: dict | None = None,
    missing_values: tuple[str, ...] = (),
    drop_columns: tuple[str, ...] = (),
    progress_bar: bool = False,
):
    """Value every row of ``table`` (a pandas DataFrame or a CSV path) and rank the rows
    most likely mislabeled first.

    Returns a DataFrame indexed like ``table`` (for a path: by CSV line, the header being
    line 1), sorted by ``rank``, with columns ``rank`` (1 = lowest value), ``value``,
    ``given_label``, ``preferred_label`` (the label a model that never saw the row's own
    label prefers), ``preferred_probability``, ``given_probability`` and ``flagged``
    (that model prefers another label than the given one). ``agent`` is any registered
    agent name; one that learns runs ``steps`` updates per round (default 100).
    """
    import pandas as pd

    import agents
    from dvrl_env.data.crossfit import reference_weights
    from dvrl_env.data.tabular import load_csv
    from dvrl_env.envs.single import DataValuationEnv
    from dvrl_env.evaluation.label_issues import find_issues

    if not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be an integer >= 1, got {rounds!r}.")
    with tempfile.TemporaryDirectory(prefix="dvrl-find-") as tmp:
        if isinstance(table, pd.DataFrame):
            if label not in table.columns:
                raise ValueError(f"label {label!r} is not a column of the table; its columns "
                                 f"are {list(table.columns)}.")
            path = Path(tmp) / "table.csv"
            table.to_csv(path, index=False)
            index = table.index
        else:
            path, index = Path(table), None
        dataset = load_csv(path, label, validation="cross-fit", seed=seed,
                           missing_values=missing_values, drop_columns=drop_columns)
    if index is None:
        index = pd.Index(dataset.meta["train_lines"], name="csv_line")
    steps = default_steps(agent) if steps is None else int(steps)
    options = {"validation": "cross-fit", "folds": folds, "data_seed": seed,
               **(env_options or {})}
    weights = None
    for _ in range(rounds):
        env = DataValuationEnv(dataset, **options, reference_weights=weights)
        values = agents.make(agent, env, seed=seed, **(agent_options or {})).learn(
            steps, progress_bar=progress_bar).data_values()
        weights = reference_weights(values)
    issues = find_issues(dataset, values, cross_fit=True, folds=folds, seed=seed)
    rows = issues.rows(dataset)
    frame = pd.DataFrame({
        "rank": [r["rank"] for r in rows],
        "value": [r["value"] for r in rows],
        "given_label": [r["given_label"] for r in rows],
        "preferred_label": [r["preferred_label"] for r in rows],
        "preferred_probability": [r["preferred_probability"] for r in rows],
        "given_probability": [r["given_probability"] for r in rows],
        "flagged": [r["flagged"] for r in rows],
    }, index=index[np.asarray([r["index"] for r in rows])])
    return frame

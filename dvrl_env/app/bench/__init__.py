"""``dvrl bench``: run a grid of (task, agent, seed) cells from a TOML spec on this
machine or on a Ray cluster, keep one tidy table, and rank the agents.

:mod:`.spec` reads and checks the spec, :mod:`.cells` expands it into cells with stable
keys, :mod:`.run_cell` runs one cell, :mod:`.store` keeps the table (atomic, resumable),
:mod:`.backends` runs cells locally or on Ray, :mod:`.leaderboard` ranks agents and
draws AUROC against fits, :mod:`.stats` holds the one interval function.
"""

from dvrl_env.app.bench.harness import run_bench  # noqa: F401

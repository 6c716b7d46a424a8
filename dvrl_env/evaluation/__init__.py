"""How good are data values? Metrics (:mod:`.metrics`), their result records
(:mod:`.results`), figures (:mod:`.plots`), the one registry of a run's scores that
the bench and the report read (:mod:`.scores`) and the training log's file names
(:mod:`.logs`); the report of a run is the application's (:mod:`dvrl_env.app.report`)."""

from dvrl_env.evaluation.metrics import *  # noqa: F403  (the metrics are the public API)
from dvrl_env.evaluation.metrics import __all__  # noqa: F401

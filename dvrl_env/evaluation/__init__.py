"""How good are data values? Metrics (:mod:`.metrics`), their result records
(:mod:`.results`), figures (:mod:`.plots`) and the report of a run (:mod:`.report`)."""

from dvrl_env.evaluation.metrics import *  # noqa: F403  (the metrics are the public API)
from dvrl_env.evaluation.metrics import __all__  # noqa: F401

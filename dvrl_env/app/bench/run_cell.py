"""Run one cell: make the env (``noise_rate``, ``data_seed = seed``) and the agent,
learn to the budget, score the values. The same function runs in this process, in a
worker process and in a Ray task, so every backend gives the same row."""

from __future__ import annotations

import dataclasses
import json
import math
import time
import traceback

import numpy as np

from agents.callbacks import Callback
from dvrl_env.app.bench.cells import Cell

#: learning-curve points recorded per cell (AUROC at evenly spaced fit counts)
CURVE_POINTS = 10
#: more updates than any budget reaches: with budget.fits only, the fits stop learning
NO_CAP = 10**7


def set_threads(count: int) -> None:
    """Pin torch and the BLAS libraries to ``count`` threads, so parallel cells do not
    oversubscribe the cores (the logistic predictor's numpy products slow down many
    times on a busy machine with more threads than free cores)."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(max(1, int(count)))
    _LIMITS[:] = [threadpool_limits(limits=max(1, int(count)))]


_LIMITS: list = []


class Budget(Callback):
    """The ``learn`` callback beside ``agents.FitBudget`` (which stops at the fit
    budget): records AUROC at evenly spaced fit counts (at evenly spaced updates when
    there is no fit budget), and refuses an agent that a fit budget alone can never stop."""

    def __init__(self, cell: Cell, mask: np.ndarray, initial: float):
        self.fits, self.cell, self.mask = cell.fits, cell, mask
        self.curve: list[dict] = [{"step": 0, "fits": 0, "auroc": _round(initial)}]
        # the curve's axis: fits with a fit budget, else updates
        self.by_fits = cell.fits is not None
        self.every = (cell.fits if self.by_fits else cell.updates or 0) / CURVE_POINTS
        self.next_point = self.every

    def on_step(self, agent, step: int, logs: dict) -> bool:
        from dvrl_env.evaluation import detection_auroc

        used = agent.fits_used
        if self.fits is not None and used == 0 and self.cell.updates is None:
            raise ValueError(f"agent {self.cell.agent!r} used no predictor fits in update "
                             f"{step}, so budget.fits can never stop it; give it its own "
                             "`updates = N` in the spec.")
        where = used if self.by_fits else step
        if self.every and where >= self.next_point:
            self.curve.append({"step": step, "fits": used,
                               "auroc": _round(detection_auroc(agent.data_values(), self.mask))})
            while self.next_point <= where:
                self.next_point += self.every
        return True


def run_cell(cell: Cell, threads: int | None = None) -> dict:
    """The cell's row; an exception becomes the row's ``error`` (the grid goes on)."""
    start = time.perf_counter()
    row = {"key": cell.key, "task": cell.task, "env": cell.env,
           "env_options": _json(cell.env_options), "agent": cell.agent,
           "agent_name": cell.agent_name, "options": _json(cell.agent_options),
           "seed": cell.seed, "noise_rate": cell.noise_rate,
           "budget_fits": "" if cell.fits is None else cell.fits}
    try:
        from dvrl_env.app.bench.code import code_identity, to_json

        # the code as the cell starts: resume compares it with the working tree's
        row["code"] = to_json(code_identity(cell.imports))
        if threads is not None:
            set_threads(threads)
        row.update(_measure(cell))
        row["error"] = ""
    except Exception as err:  # noqa: BLE001  (recorded in the table; the grid goes on)
        last = traceback.extract_tb(err.__traceback__)[-1:]
        where = f" (at {last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno})" if last else ""
        row["error"] = f"{type(err).__name__}: {err}{where}".replace("\n", " ")
    row["seconds"] = round(time.perf_counter() - start, 2)
    return row


def _measure(cell: Cell) -> dict:
    import gymnasium as gym

    import dvrl_env  # noqa: F401  (registers the ids)
    from dvrl_env.app.bench import hooks
    from dvrl_env.app.bench.spec import import_modules

    import_modules(cell.imports)
    env = gym.make(cell.env, noise_rate=cell.noise_rate, data_seed=cell.seed,
                   **cell.env_options)
    extra: dict = {}
    if cell.probe is not None:
        extra.update(hooks.probe(cell.probe)(env, cell, **cell.probe_options))
    if cell.kind == "method":
        values, info = hooks.method(cell.agent_name)(env, seed=cell.seed, **cell.agent_options)
        info = dict(info)
        out: dict = {"fits": int(info.pop("fits", 0)), "updates": 0}
        extra.update(info)
        curve: list[dict] = []
    else:
        values, out, curve = _learn(cell, env)
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    dataset = env.unwrapped.dataset
    if values.shape != (dataset.n_train,) or not np.isfinite(values).all():
        raise ValueError(f"{cell.agent} gave {values.shape[0]} values, not all finite or "
                         "not one per training point; it must give one finite value per "
                         f"training point ({dataset.n_train}).")
    out.update(score(dataset, values, cell.metrics, extra))
    out["kind"] = cell.kind
    out["curve"] = json.dumps(curve, separators=(",", ":")) if curve else ""
    out["extra"] = json.dumps(extra, sort_keys=True, separators=(",", ":")) if extra else ""
    return out


def _learn(cell: Cell, env) -> tuple[np.ndarray, dict, list[dict]]:
    """Make the agent, learn to the budget: its values, fits, updates and curve."""
    import agents
    from dvrl_env.evaluation import detection_auroc

    agent = agents.make(cell.agent_name, env, seed=cell.seed,
                        **_quiet(cell.agent_name, cell.agent_options))
    mask = env.unwrapped.dataset.noisy_mask
    budget = Budget(cell, mask, detection_auroc(agent.data_values(), mask))
    stop = [] if cell.fits is None else [agents.FitBudget(cell.fits)]
    agent.learn(NO_CAP if cell.updates is None else cell.updates, progress_bar=False,
                callback=agents.CallbackList([budget, *stop]))
    values = agent.data_values()
    out = {"fits": agent.fits_used, "updates": agent.steps_done}
    last = budget.curve[-1]
    if (out["fits"] and last["fits"] != out["fits"]) or \
            (not budget.by_fits and last["step"] != out["updates"]):
        budget.curve.append({"step": agent.steps_done, "fits": out["fits"],
                             "auroc": _round(detection_auroc(values, mask))})
    return values, out, budget.curve


def _quiet(agent_name: str, options: dict) -> dict:
    """``options`` with the agent's own progress log off (``log_every`` past any budget)
    unless the spec sets it: :class:`Budget` records the curve, and a log row costs a
    full valuation (4-5 s for ``credit`` on Digits, two thirds of its cell). Logging
    reads values only, so the numbers are the same either way."""
    import agents

    config_class = getattr(agents._factory(agent_name), "config_class", None)
    fields = ({f.name for f in dataclasses.fields(config_class)}
              if dataclasses.is_dataclass(config_class) else set())
    return {"log_every": NO_CAP, **options} if "log_every" in fields else dict(options)


def score(dataset, values: np.ndarray, metrics: tuple[str, ...], notes: dict) -> dict:
    """The cell's measures of ``values``, from the one registry
    (:mod:`dvrl_env.evaluation.scores`), rounded for the table (``notes`` gets why a
    measure could not be taken: a robust fit needs some positive weight)."""
    from dvrl_env.evaluation.scores import score_values

    return {column: _round(value)
            for column, value in score_values(dataset, values, metrics, notes).items()}


def _json(options: dict) -> str:
    return json.dumps(options, sort_keys=True, separators=(",", ":")) if options else ""


def _round(value) -> float | str:
    """6 digits: the table is the same text on every backend and machine."""
    if value is None or not math.isfinite(value):
        return ""
    return round(float(value), 6)


def error_row(cell: Cell, message: str) -> dict:
    """The row of a cell that never returned one (its worker died, every retry spent)."""
    return {"key": cell.key, "task": cell.task, "env": cell.env,
            "env_options": _json(cell.env_options), "agent": cell.agent,
            "agent_name": cell.agent_name, "options": _json(cell.agent_options),
            "seed": cell.seed, "noise_rate": cell.noise_rate,
            "budget_fits": "" if cell.fits is None else cell.fits,
            "error": message.replace("\n", " ")}

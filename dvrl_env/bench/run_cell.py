"""Run one cell: make the env (``noise_rate``, ``data_seed = seed``) and the agent,
learn to the budget, score the values. The same function runs in this process, in a
worker process and in a Ray task, so every backend gives the same row."""

from __future__ import annotations

import json
import math
import time
import traceback

import numpy as np

from dvrl_env.bench.cells import Cell

#: learning-curve points recorded per cell (AUROC at evenly spaced fit counts)
CURVE_POINTS = 10
#: removal fractions averaged into remove_high / remove_low
REMOVE_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5)
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


class Budget:
    """The ``learn`` callback: stops at the fit budget, records AUROC at evenly spaced
    fit counts, and refuses an agent that a fit budget alone can never stop."""

    def __init__(self, cell: Cell, mask: np.ndarray, initial: float):
        self.fits, self.cell, self.mask = cell.fits, cell, mask
        self.curve: list[dict] = [{"step": 0, "fits": 0, "auroc": _round(initial)}]
        every = (cell.fits or 0) / CURVE_POINTS
        self.next_point = every
        self.every = every

    def __call__(self, agent, step: int, logs: dict) -> bool:
        from dvrl_env.evaluation import detection_auroc

        used = agent.fits_used
        if self.fits is not None and used == 0 and self.cell.updates is None:
            raise ValueError(f"agent {self.cell.agent!r} used no predictor fits in update "
                             f"{step}, so budget.fits can never stop it; give it its own "
                             "`updates = N` in the spec.")
        if self.every and used >= self.next_point:
            self.curve.append({"step": step, "fits": used,
                               "auroc": _round(detection_auroc(agent.data_values(), self.mask))})
            while self.next_point <= used:
                self.next_point += self.every
        return self.fits is None or used < self.fits


def run_cell(cell: Cell, threads: int | None = None) -> dict:
    """The cell's row; an exception becomes the row's ``error`` (the grid goes on)."""
    start = time.perf_counter()
    row = {"key": cell.key, "task": cell.task, "env": cell.env,
           "env_options": _json(cell.env_options), "agent": cell.agent,
           "agent_name": cell.agent_name, "options": _json(cell.agent_options),
           "seed": cell.seed, "noise_rate": cell.noise_rate,
           "budget_fits": "" if cell.fits is None else cell.fits}
    try:
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

    import agents
    import dvrl_env  # noqa: F401  (registers the ids)
    from dvrl_env.bench.spec import import_modules
    from dvrl_env.evaluation import (
        detection_auroc,
        detection_scores,
        remove_high_low,
        robust_learning,
        value_gap,
    )

    import_modules(cell.imports)
    env = gym.make(cell.env, noise_rate=cell.noise_rate, data_seed=cell.seed,
                   **cell.env_options)
    agent = agents.make(cell.agent_name, env, seed=cell.seed, **cell.agent_options)
    dataset = env.unwrapped.dataset
    mask = dataset.noisy_mask
    budget = Budget(cell, mask, detection_auroc(agent.data_values(), mask))
    agent.learn(NO_CAP if cell.updates is None else cell.updates, progress_bar=False,
                callback=budget)
    values = agent.data_values()
    out: dict = {"fits": agent.fits_used, "updates": agent.steps_done,
                 "auroc": _round(detection_auroc(values, mask))}
    if out["fits"] and budget.curve[-1]["fits"] != out["fits"]:
        budget.curve.append({"step": agent.steps_done, "fits": out["fits"],
                             "auroc": out["auroc"]})
    if "f1" in cell.metrics:
        out["f1"] = _round(detection_scores(dataset, values).f1)
    if "gap" in cell.metrics:
        out["gap"] = _round(value_gap(values, mask))
    if "remove_high_low" in cell.metrics:
        removal = remove_high_low(dataset, values, fractions=np.array(REMOVE_FRACTIONS))
        out["remove_high"] = _round(float(np.mean(removal.remove_high)))
        out["remove_low"] = _round(float(np.mean(removal.remove_low)))
    if "robust" in cell.metrics:
        robust = robust_learning(dataset, values)
        out.update(robust_acc=_round(robust.weighted), unweighted_acc=_round(robust.unweighted),
                   clean_acc=_round(robust.clean))
    out["curve"] = json.dumps(budget.curve, separators=(",", ":"))
    return out


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

"""Callbacks for :meth:`Agent.learn <agents.base.Agent.learn>`, composable as in
Stable-Baselines3's ``common/callbacks.py``: stopping at a budget, saving checkpoints and
recording a curve are separate objects, and a list of them is one callback.

>>> agent.learn(10**9, callback=[FitBudget(2400), MyCheckpointer(...)])

``learn`` calls :meth:`Callback.on_start` once, :meth:`Callback.on_step` after every
update (False stops learning) and :meth:`Callback.on_end` once however learning ends.
A plain function ``callback(agent, step, logs)`` still works: returning False stops.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agents.base import Agent


class Callback:
    """Base class: override the hooks you need; the defaults do nothing and never stop."""

    def on_start(self, agent: Agent, total_steps: int) -> None:
        """Before the first update of a ``learn`` call (``total_steps`` asked for)."""

    def on_step(self, agent: Agent, step: int, logs: dict) -> bool:
        """After update ``step`` (the agent's ``steps_done``), with its logged row or the
        update's own logs between rows; False stops learning."""
        return True

    def on_end(self, agent: Agent) -> None:
        """After the last update, however learning ended (the budget, a stop, an error):
        the place to release what ``on_start`` took."""

    def __call__(self, agent: Agent, step: int, logs: dict) -> bool:
        """A callback is also the plain callable older code calls."""
        return self.on_step(agent, step, logs)


class FunctionCallback(Callback):
    """A plain ``fn(agent, step, logs)``: returning False (not merely a falsy value, so a
    function returning None goes on) stops learning."""

    def __init__(self, fn: Callable[[Agent, int, dict], Any]):
        if not callable(fn):
            raise TypeError(f"A callback must be a Callback or callable as "
                            f"fn(agent, step, logs), got {type(fn).__name__!r}.")
        self.fn = fn

    def on_step(self, agent: Agent, step: int, logs: dict) -> bool:
        return self.fn(agent, step, logs) is not False


class CallbackList(Callback):
    """Several callbacks as one, called in order. Every member sees every step (a curve
    recorder after a budget still records the step the budget stops at); learning stops
    when any member returns False; every member's ``on_end`` runs, even if an earlier
    one raised (the first error is raised after all have run)."""

    def __init__(self, callbacks: Iterable[CallbackLike]):
        self.callbacks = [as_callback(c) for c in callbacks]

    def on_start(self, agent: Agent, total_steps: int) -> None:
        for callback in self.callbacks:
            callback.on_start(agent, total_steps)

    def on_step(self, agent: Agent, step: int, logs: dict) -> bool:
        go_on = True
        for callback in self.callbacks:
            go_on = (callback.on_step(agent, step, logs) is not False) and go_on
        return go_on

    def on_end(self, agent: Agent) -> None:
        error: BaseException | None = None
        for callback in self.callbacks:
            try:
                callback.on_end(agent)
            except Exception as err:  # noqa: BLE001  (the others still end; raised below)
                error = error or err
        if error is not None:
            raise error


class FitBudget(Callback):
    """Stops learning once the agent has used ``max_fits`` predictor fits: agents with
    different K and batch sizes then compare at equal compute
    (``agent.learn(10**9, callback=FitBudget(2400))``)."""

    def __init__(self, max_fits: int):
        if max_fits < 1:
            raise ValueError(f"max_fits must be >= 1, got {max_fits}.")
        self.max_fits = int(max_fits)

    def on_step(self, agent: Agent, step: int, logs: dict) -> bool:
        return agent.fits_used < self.max_fits


#: what ``learn(callback=...)`` takes
CallbackLike = Callback | Callable[["Agent", int, dict], Any]


def as_callback(callback: CallbackLike | Iterable[CallbackLike] | None) -> Callback:
    """One :class:`Callback` from a Callback, a plain callable, a list or tuple of
    either (a :class:`CallbackList`), or None (one that does nothing)."""
    if callback is None:
        return Callback()
    if isinstance(callback, Callback):
        return callback
    if isinstance(callback, list | tuple):
        return CallbackList(callback)
    return FunctionCallback(callback)


__all__ = ["Callback", "CallbackLike", "CallbackList", "FitBudget", "FunctionCallback",
           "as_callback"]

"""The learn loop's log: one row every ``log_every`` updates, kept in memory, appended to
``log_dir/progress.csv`` and, when asked, written to TensorBoard.

:meth:`agents.base.Agent.learn` calls the agent's :class:`ProgressLog` after every
update, for every agent (Stable-Baselines3's included), so all of them log the same
columns at the same steps. The noise mask is read for one diagnostic only, the detection
AUROC and clean - corrupted value gap of a row, which never feeds learning.
"""

from __future__ import annotations

import csv
import io
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dvrl_env.atomic import atomic_write_text
from dvrl_env.evaluation import detection_auroc, value_gap
from dvrl_env.evaluation.logs import PROGRESS_LOG, TENSORBOARD_DIR

if TYPE_CHECKING:
    from agents.base import Agent


class CsvLog:
    """Rows appended to a CSV file under the header it already has, in that header's
    column order (a resumed run's log, or an older one, stays one table).

    A row with a column the file lacks rewrites the file once, atomically, with the new
    column added at the end and left empty in the earlier rows: no row is ever written
    under a header that does not name its cells, and no value is dropped.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.fields: list[str] = []  # the file's header, read at the first row

    def append(self, row: dict[str, Any]) -> None:
        if not self.fields or not self.path.exists():
            self.fields = self._header()
        new = [key for key in row if key not in self.fields]
        if not self.fields or new:
            self._rewrite([*self.fields, *new], row)
            return
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.fields, restval="",
                           lineterminator="\n").writerow(row)

    def _header(self) -> list[str]:
        if not self.path.is_file():
            return []
        with open(self.path, newline="") as f:
            return next(csv.reader(f), [])

    def _rewrite(self, fields: list[str], row: dict[str, Any]) -> None:
        """The file's rows and ``row`` under ``fields``, replacing the file atomically."""
        rows: list[dict] = []
        if self.fields:
            with open(self.path, newline="") as f:
                rows = list(csv.DictReader(f))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows([*rows, row])
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, buffer.getvalue())
        self.fields = fields


class ProgressLog:
    """The log the learn loop calls after every update: every ``every``-th update it
    makes one row (step, fits used, seconds since ``learn`` began, the update's logs,
    mean value, and with a known noise mask the detection AUROC and value gap), keeps it
    in :attr:`rows`, appends it to ``log_dir/progress.csv`` and, with ``tensorboard``,
    writes its numbers to TensorBoard under ``log_dir/tensorboard``."""

    def __init__(self, every: int, log_dir: str | Path | None = None, *,
                 tensorboard: bool = False):
        if every < 1:
            raise ValueError(f"log_every must be >= 1 (updates between log rows), got {every}.")
        self.every = int(every)
        self.rows: list[dict[str, Any]] = []
        self.csv = None if log_dir is None else CsvLog(Path(log_dir) / PROGRESS_LOG)
        self._tensorboard_class = _summary_writer(log_dir) if tensorboard else None
        self._tensorboard = None  # the writer, made at the first row
        self._tensorboard_dir = None if log_dir is None else Path(log_dir) / TENSORBOARD_DIR
        self._started = time.perf_counter()

    def start(self) -> None:
        """Called as ``learn`` begins: a row's ``time`` counts from here."""
        self._started = time.perf_counter()

    def __call__(self, agent: Agent, logs: dict[str, Any]) -> dict[str, Any] | None:
        """The row logged after this update, or None when it is not a logging step."""
        if agent.steps_done % self.every:
            return None
        values = agent.data_values()
        row = {"step": agent.steps_done, "fits": agent.fits_used,
               "time": round(time.perf_counter() - self._started, 3), **logs,
               "mean_value": float(values.mean())}
        dataset = getattr(agent.unwrapped, "dataset", None)
        if dataset is not None and dataset.noisy_mask.any():
            finite = bool(np.isfinite(values).all())  # a diverged agent: NaN, not a crash
            row["auroc"] = detection_auroc(values, dataset.noisy_mask) if finite else math.nan
            row["value_gap"] = value_gap(values, dataset.noisy_mask) if finite else math.nan
        self.rows.append(row)
        if self.csv is not None:
            self.csv.append(row)
        if self._tensorboard_class is not None:
            self._write_tensorboard(agent.name, row)
        return row

    def _write_tensorboard(self, tag: str, row: dict[str, Any]) -> None:
        if self._tensorboard is None:
            self._tensorboard = self._tensorboard_class(str(self._tensorboard_dir))
        for key, value in row.items():
            if key != "step" and isinstance(value, int | float):
                self._tensorboard.add_scalar(f"{tag}/{key}", value, row["step"])
        self._tensorboard.flush()


def _summary_writer(log_dir: str | Path | None) -> type:
    """TensorBoard's writer class, or a ValueError saying what ``tensorboard=True`` needs."""
    if log_dir is None:
        raise ValueError("tensorboard=True writes under log_dir; give log_dir as well.")
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ValueError("tensorboard=True needs the tensorboard package (pip install "
                         f"tensorboard); without it, log_dir's {PROGRESS_LOG} holds the same "
                         "rows.") from None
    return SummaryWriter

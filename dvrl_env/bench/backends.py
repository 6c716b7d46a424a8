"""Where cells run: worker processes on this machine, or Ray tasks on a cluster. Both
call :func:`~dvrl_env.bench.run_cell.run_cell` and hand each row to ``on_row`` as soon
as it is finished, so the table grows (and survives) cell by cell."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from dvrl_env.bench.cells import Cell
from dvrl_env.bench.run_cell import error_row, run_cell

OnRow = Callable[[dict], None]
#: Ray re-runs a cell whose worker died (a node lost, the process killed) this often
RAY_RETRIES = 3


def cores() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_per_cell(workers: int) -> int:
    """Each of ``workers`` cells gets its share of the cores, at least one thread."""
    return max(1, cores() // workers)


def run_local(cells: list[Cell], workers: int, on_row: OnRow,
              threads: int | None = None) -> None:
    """``workers`` processes (spawned: a clean torch in each), each pinned to ``threads``
    (default: its share of the cores); one worker runs the cells in this process."""
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}.")
    threads = threads or threads_per_cell(workers)
    if workers == 1:
        for cell in cells:
            on_row(run_cell(cell, threads))
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(run_cell, cell, threads): cell for cell in cells}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                try:
                    row = future.result()
                except Exception as err:  # noqa: BLE001  (a worker died: recorded, resumable)
                    row = error_row(futures[future], f"worker process failed: {err!r}")
                on_row(row)


def run_ray(cells: list[Cell], address: str, on_row: OnRow, *, cpus_per_cell: float = 1.0,
            gpus_per_cell: float = 0.25) -> None:
    """One Ray task per cell, declaring ``cpus_per_cell`` CPUs (and ``gpus_per_cell`` of a
    GPU when the cell asks for CUDA, so small cells share one GPU). ``address``: ``auto``
    (the cluster ``ray start --head`` started here, else a new local instance) or a
    cluster's address. A cell whose worker dies is retried up to RAY_RETRIES times."""
    try:
        import ray
    except ImportError:
        raise ValueError("--ray needs Ray: pip install -e \".[ray]\" (or pip install "
                         "'ray>=2.9').") from None
    if not ray.is_initialized():
        ray.init(address=None if address == "auto" else address, include_dashboard=False,
                 log_to_driver=False)
    task = ray.remote(max_retries=RAY_RETRIES, retry_exceptions=False)(run_cell)
    threads = max(1, int(cpus_per_cell))
    refs = {task.options(num_cpus=cpus_per_cell,
                         num_gpus=gpus_per_cell if cell.wants_cuda else 0)
            .remote(cell, threads): cell for cell in cells}
    pending = list(refs)
    while pending:
        finished, pending = ray.wait(pending, num_returns=1)
        for ref in finished:
            try:
                row = ray.get(ref)
            except Exception as err:  # noqa: BLE001  (retries spent: recorded, resumable)
                row = error_row(refs[ref], f"Ray task failed after {RAY_RETRIES} retries: "
                                           f"{type(err).__name__}: {err}")
            on_row(row)

"""Where cells run: worker processes on this machine, or Ray tasks on a cluster. Both
call :func:`~dvrl_env.app.bench.run_cell.run_cell` and hand each row to ``on_row`` as soon
as it is finished, so the table grows (and survives) cell by cell."""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing import connection

from dvrl_env.app.bench.cells import Cell
from dvrl_env.app.bench.run_cell import error_row, run_cell

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
              threads: int | None = None, *, in_process: bool = False) -> None:
    """``workers`` processes (spawned: a clean torch in each), each pinned to ``threads``
    (default: its share of the cores). Cells run in worker processes even with one
    worker: a cell that kills its process (a segfault, the OOM killer, ``os._exit``)
    becomes an error row naming the exit code or signal, a fresh worker takes the next
    cell, and the grid goes on. Workers die with this process, even a ``kill -9`` of it.
    ``in_process``: run the cells here, one after another (for a debugger; a cell that
    kills the process then ends the bench)."""
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}.")
    threads = threads or threads_per_cell(workers)
    if in_process:
        for cell in cells:
            on_row(run_cell(cell, threads))
        return
    context = multiprocessing.get_context("spawn")
    todo = list(reversed(cells))  # popped from the end: grid order
    pool: list[_Worker] = []
    finished = False
    try:
        pool.extend(_Worker(context, threads) for _ in range(min(workers, len(cells))))
        for worker in pool:
            worker.wait_ready()
            worker.give(todo.pop())
        while any(w.cell is not None for w in pool):
            handles = {}
            for worker in pool:
                if worker.cell is not None:
                    handles[worker.conn] = handles[worker.process.sentinel] = worker
            ready = connection.wait(list(handles))
            for worker in dict.fromkeys(handles[h] for h in ready):  # each once
                cell, row = worker.cell, worker.result()
                worker.cell = None
                if row is None:  # the process died running the cell
                    row = error_row(cell, worker.death())
                    row["seconds"] = round(time.perf_counter() - worker.since, 2)
                    pool.remove(worker)
                    if todo:
                        pool.append(_Worker(context, threads))
                        worker = pool[-1]
                        worker.wait_ready()
                on_row(row)
                if todo and worker in pool:
                    worker.give(todo.pop())
        finished = True
    finally:
        if finished:  # all idle: ask each to exit, then wait for all at once
            for worker in pool:
                with contextlib.suppress(OSError):
                    worker.conn.send(None)
        for worker in pool:
            worker.stop(graceful=finished)


class _Worker:
    """One spawned worker process and the pipe that sends it cells and brings rows back;
    ``cell`` is the one it runs now (None: idle)."""

    def __init__(self, context, threads: int):
        self.conn, child = context.Pipe()
        # not daemonic: a method may start processes of its own (multiprocessing refuses
        # that in a daemon); run_local stops its workers itself
        self.process = context.Process(target=_serve, args=(child, threads, os.getpid()),
                                       name="dvrl-bench-worker")
        self.process.start()
        child.close()
        self.cell: Cell | None = None
        self.since = 0.0  # when the cell was given

    def wait_ready(self) -> None:
        """Wait for the worker to start: one that cannot (its main module or an import
        fails) is the machine's problem, not a cell's, and stops the bench."""
        try:
            ready = self.conn.recv()
        except (EOFError, OSError):
            ready = None
        if ready != _READY:
            self.process.join(5)
            raise WorkerError(f"a bench worker process could not start (exit code "
                              f"{self.process.exitcode}; its error is printed above). A "
                              "script that calls run_bench needs `if __name__ == "
                              "\"__main__\":` around it (worker processes are spawned).")

    def give(self, cell: Cell) -> None:
        self.cell, self.since = cell, time.perf_counter()
        with contextlib.suppress(OSError):  # it died already: result() then gives None
            self.conn.send(cell)

    def result(self) -> dict | None:
        """The row of the running cell, or None when the process died instead."""
        try:
            if self.conn.poll():
                return self.conn.recv()
        except (EOFError, OSError, pickle.UnpicklingError):
            pass
        return None

    def death(self) -> str:
        """What became of the process, for the cell's error row."""
        self.process.join(5)
        self.conn.close()
        code = self.process.exitcode
        if code is None:
            self.process.kill()
            how = "it stopped answering and was killed"
        elif code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            how = f"killed by {name}" + (": out of memory (the OOM killer) or a kill"
                                         if name == "SIGKILL" else
                                         ": a crash in native code" if name == "SIGSEGV" else "")
        else:
            how = f"exit code {code}"
        return (f"the worker process died while running this cell ({how}); --resume runs it "
                "again")

    def stop(self, graceful: bool) -> None:
        """Wait for a worker asked to exit; terminate a busy one (the bench was stopped)."""
        if graceful:
            self.process.join(10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def _serve(conn, threads: int, parent: int) -> None:
    """A worker's life: run each cell sent until None; die with ``parent``."""
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the parent stops its workers
    conn.send(_READY)
    while True:
        try:
            cell = conn.recv()
        except EOFError:  # the parent is gone
            return
        if cell is None:
            return
        conn.send(run_cell(cell, threads))


def _die_with_parent(parent: int) -> None:
    """Exit when the process ``parent`` dies, however it dies (a ``kill -9`` runs no
    clean-up in it): on Linux the kernel sends SIGKILL (prctl PR_SET_PDEATHSIG), elsewhere
    a thread watches the parent id."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
                if os.getppid() != parent:  # it died before the prctl
                    os._exit(1)
                return
        except (OSError, AttributeError):  # no libc prctl: the thread below
            pass
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True,
                     name="dvrl-parent-watch").start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


_PR_SET_PDEATHSIG = 1
_READY = "ready"


class WorkerError(RuntimeError):
    """Worker processes cannot start here: reported in one line, no cell is blamed."""


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

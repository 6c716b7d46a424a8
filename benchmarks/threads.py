"""Why ``dvrl value --threads`` defaults to 1: wall time of a short main-job run with 1 and
2 threads, on a quiet machine and with ``--busy`` CPU-bound processes running beside it.

    python benchmarks/threads.py                 # --busy 2, --steps 5
    python benchmarks/threads.py --threads 1 2 4 --busy 0 2

Writes ``benchmarks/results/threads.txt``. Each run is a fresh ``dvrl value`` process (its
set-up included), as a user would start it.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "threads.txt"


def spin(stop) -> None:
    """A CPU-bound neighbour: what another job on a shared machine looks like."""
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def timed_run(threads: int, steps: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "dvrl_env", "value", "--env", "DataValuation-Digits-v0",
                   "--noise-rate", "0.2", "--agent", "reinforce", "--agent-arg", "num_samples=8",
                   "--agent-arg", "architecture=skip", "--steps", str(steps), "--seed", "0",
                   "--threads", str(threads), "--out", str(Path(tmp) / "run"), "--quiet"]
        start = time.perf_counter()
        subprocess.run(command, check=True, env={k: v for k, v in os.environ.items()
                                                 if k not in ("OMP_NUM_THREADS",
                                                              "MKL_NUM_THREADS")})
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 2],
                        help="CPU-bound processes running beside the job")
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    from dvrl_env.app.bench.code import code_line
    from dvrl_env.atomic import atomic_write_text

    lines = [code_line(),
             f"dvrl value, Digits main job with --steps {args.steps} (set-up included), "
             f"{os.cpu_count()} cores", "busy neighbours | threads | wall time (s)", "---|---|---"]
    for busy in args.busy:
        stop = multiprocessing.Event()
        neighbours = [multiprocessing.Process(target=spin, args=(stop,)) for _ in range(busy)]
        for p in neighbours:
            p.start()
        try:
            for threads in args.threads:
                seconds = timed_run(threads, args.steps)
                lines.append(f"{busy} | {threads} | {seconds:.1f}")
                print(lines[-1], flush=True)
        finally:
            stop.set()
            for p in neighbours:
                p.join()
    atomic_write_text(RESULTS, "\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()

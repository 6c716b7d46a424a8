"""Run the float-sensitive tests under each CPU kernel set torch and numba may pick.

Which kernels run decides how float32 sums are ordered, so two paths that agree "up to
rounding" on one machine may not on the next (issue 24: a test passed with
``ATEN_CPU_CAPABILITY=default`` and failed with ``avx2`` and ``avx512`` on one Xeon).
This runs ``pytest -m float_sensitive`` once per setting below, each in its own process
(both variables are read at import), and fails if any run fails:

* torch's kernels: ``ATEN_CPU_CAPABILITY`` = ``default`` (no vector extensions), ``avx2``,
  ``avx512`` when this CPU has it, and unset (the native choice);
* numba's code for the closed-form predictor: ``NUMBA_CPU_NAME=generic`` (no
  host-specific instructions; ``NUMBA_CPU_FEATURES`` empty) as well as the host's.

Usage: ``python tests/cpu_matrix.py [extra pytest arguments]``; ``make test`` runs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def settings(flags: set[str]) -> list[dict[str, str | None]]:
    """The environment changes of each run (None: unset)."""
    runs: list[dict[str, str | None]] = [
        {"ATEN_CPU_CAPABILITY": None},  # native
        {"ATEN_CPU_CAPABILITY": "default"},
    ]
    if "avx2" in flags:
        runs.append({"ATEN_CPU_CAPABILITY": "avx2"})
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        runs.append({"ATEN_CPU_CAPABILITY": "avx512"})
    runs.append({"ATEN_CPU_CAPABILITY": None, "NUMBA_CPU_NAME": "generic"})
    return runs


def describe(change: dict[str, str | None]) -> str:
    return " ".join(f"{k}={'(unset)' if v is None else repr(v)}" for k, v in change.items())


def marked_files() -> list[str]:
    """The test files that hold float-sensitive tests: collecting only them keeps each
    run to seconds."""
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py")
                  if "mark.float_sensitive" in p.read_text())


def main(argv: list[str]) -> int:
    failed = []
    files = marked_files()
    for change in settings(cpu_flags()):
        env = dict(os.environ)
        for key in ("ATEN_CPU_CAPABILITY", "NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES"):
            env.pop(key, None)
        env.update({k: v for k, v in change.items() if v is not None})
        command = [sys.executable, "-m", "pytest", "-q", "-m", "float_sensitive",
                   "-p", "no:cacheprovider", *files, *argv]
        print(f"--- {describe(change)}", flush=True)
        if subprocess.run(command, cwd=ROOT, env=env).returncode != 0:
            failed.append(describe(change))
    if failed:
        print("cpu_matrix: the float-sensitive tests failed under: " + "; ".join(failed),
              file=sys.stderr)
        return 1
    print("cpu_matrix: the float-sensitive tests pass under every setting")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

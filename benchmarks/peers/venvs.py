"""The peers' own virtual environments: built on first use, reused after, and the
workers run in them as subprocesses.

pyDVL 0.10 pins numpy < 2 and OpenDataVal 1.3 pins torch 2.1, numpy < 1.26 and needs
transformers < 4.40, so neither can share the project's ``.venv`` (numpy 2, torch 2.x
current). Each lives under ``benchmarks/peers/.venvs/<name>`` (git-ignored) with a
``<name>.status.json`` beside it that records whether the build worked, how long it
took, and pip's error when it did not; a failed build is not retried until
``--rebuild-venvs``. pip's full output is kept in ``<name>.pip.log``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE / ".venvs"


@dataclass(frozen=True)
class VenvSpec:
    name: str
    requirements: tuple[str, ...]
    probe: str  # python code that must run in the finished venv
    worker: str  # script in this folder that the venv's python runs


SPECS: dict[str, VenvSpec] = {
    "pydvl": VenvSpec("pydvl", ("pydvl==0.10.*",), "import pydvl.valuation",
                      "worker_pydvl.py"),
    # transformers<4.40: opendataval pins only ~=4.35, and newer ones need a newer torch.
    "opendataval": VenvSpec("opendataval", ("opendataval==1.3.*", "transformers<4.40"),
                            "import opendataval.dataval", "worker_opendataval.py"),
}


@dataclass
class VenvStatus:
    name: str
    ok: bool
    reason: str = ""
    build_seconds: float = 0.0
    built_now: bool = False

    @property
    def python(self) -> Path:
        return ROOT / self.name / "bin" / "python"


class PeerError(RuntimeError):
    """A peer method could not run; the message says why (shown in the table)."""


def _status_path(name: str) -> Path:
    return ROOT / f"{name}.status.json"


def pip_error(log: str, limit: int = 600) -> str:
    """The lines of pip's output that say why it failed (``ERROR:`` and what follows)."""
    lines = [ln.rstrip() for ln in log.splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(lines) if ln.startswith("ERROR")), None)
    text = " | ".join(lines[start:] if start is not None else lines[-5:])
    return text[:limit]


def _run(cmd: list[str], log, timeout: float) -> tuple[int, str]:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        log.write(f"$ {' '.join(cmd)}\ntimed out after {timeout:.0f} s\n")
        return 124, f"ERROR: timed out after {timeout:.0f} s: {' '.join(cmd)}"
    out = proc.stdout + proc.stderr
    log.write(f"$ {' '.join(cmd)}\n{out}\n")
    return proc.returncode, out


def build(spec: VenvSpec, timeout: float = 3600) -> VenvStatus:
    """Create the venv and pip-install its requirements (PyPI, no pip cache)."""
    ROOT.mkdir(parents=True, exist_ok=True)
    target = ROOT / spec.name
    if target.exists():
        shutil.rmtree(target)
    start = time.perf_counter()
    with open(ROOT / f"{spec.name}.pip.log", "w") as log:
        rc, out = _run([sys.executable, "-m", "venv", str(target)], log, 300)
        if rc == 0:
            pip = [str(target / "bin" / "python"), "-m", "pip"]
            rc, out = _run([*pip, "install", "--no-cache-dir", *spec.requirements], log,
                           timeout)
        if rc == 0:
            rc, out = _run([str(target / "bin" / "python"), "-W", "ignore", "-c", spec.probe],
                           log, 600)
            if rc != 0:
                out = "ERROR: installed, but the import check failed: " + out
    seconds = time.perf_counter() - start
    status = VenvStatus(spec.name, rc == 0, "" if rc == 0 else pip_error(out), seconds, True)
    _status_path(spec.name).write_text(json.dumps(
        {"ok": status.ok, "reason": status.reason, "build_seconds": round(seconds, 1),
         "requirements": list(spec.requirements)}, indent=1))
    if not status.ok:
        shutil.rmtree(target, ignore_errors=True)  # keep the disk clean; the log stays
    return status


def ensure(name: str, *, rebuild: bool = False, say=print) -> VenvStatus:
    """The venv ``name``, built first if it is missing (or ``rebuild``)."""
    spec = SPECS[name]
    path = _status_path(name)
    if path.exists() and not rebuild:
        saved = json.loads(path.read_text())
        status = VenvStatus(name, saved["ok"], saved["reason"], saved["build_seconds"])
        same = saved.get("requirements") == list(spec.requirements)
        if same and (not status.ok or status.python.exists()):
            return status
    say(f"[peers] building the {name} environment ({' '.join(spec.requirements)}) under "
        f"{ROOT / name}: first use only, a few minutes ...")
    status = build(spec)
    if status.ok:
        say(f"[peers] {name} environment built in {status.build_seconds:.0f} s.")
    else:
        say(f"[peers] {name} environment NOT installable ({status.build_seconds:.0f} s): "
            f"{status.reason}")
    return status


def run_worker(status: VenvStatus, task: Path, out: Path, timeout: float) -> None:
    """Run the venv's worker on ``task``; raise :class:`PeerError` with its stderr tail."""
    if not status.ok:
        raise PeerError(f"not installable: {status.reason}")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("PYTHONPATH", None)
    cmd = [str(status.python), str(HERE / SPECS[status.name].worker), str(task), str(out)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as err:
        raise PeerError(f"failed: timed out after {timeout:.0f} s") from err
    if proc.returncode != 0 or not out.exists():
        tail = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()][-1:] or ["?"]
        raise PeerError(f"failed: worker exit {proc.returncode}: {tail[0][:300]}")

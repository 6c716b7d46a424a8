"""A run directory of ``dvrl value``: the one module that knows its file names, what it
records, and the checks that keep it honest.

    run.json          the settings, the SHA-256 of every input file and of the dataset
    agent.ckpt        the agent's checkpoint (tensors and JSON, see agents.checkpoint)
    log/progress.csv  one row per logged update (the agent's ``log_dir`` is ``log/``)
    values.csv, label_issues.csv, metrics.json, report.md, *.png   the outputs

:class:`RunDir` names each file by its role; the CLI, the report and the agents' log
take paths from it, so a file is renamed here or nowhere. ``dvrl evaluate`` and
``--resume`` read ``run.json`` back and refuse, with the reason, when an input file or
the dataset no longer matches it, so values are never scored against rows they were not
learned on. Outputs are written to a staging folder inside the run directory and moved
into place only once all of them are written. A command that writes into a run directory
holds its lock (:meth:`RunDir.lock`), so two commands never mix their files in one.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from dvrl_env.atomic import atomic_write_text
from dvrl_env.evaluation.logs import PROGRESS_LOG, TENSORBOARD_DIR

#: settings a resumed run may not change: they decide what the run computes
IDENTITY_KEYS = ("env", "csv", "label_column", "valid_csv", "test_csv", "noise_rate",
                 "env_args", "agent", "agent_args", "seed", "missing_values", "drop_columns",
                 "rounds")
#: run.json entry -> (what it must be, the test): a damaged file is refused, not traced back
SETTINGS_TYPES = {
    "agent": ("a string", lambda v: isinstance(v, str)),
    "seed": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "steps": ("an integer >= 0", lambda v: isinstance(v, int) and not isinstance(v, bool)
              and v >= 0),
    "threads": ("an integer >= 1", lambda v: isinstance(v, int) and not isinstance(v, bool)
                and v >= 1),
    "env_args": ("a JSON object", lambda v: isinstance(v, dict)),
    "agent_args": ("a JSON object", lambda v: isinstance(v, dict)),
    "env": ("a string or null", lambda v: v is None or isinstance(v, str)),
    "csv": ("a string or null", lambda v: v is None or isinstance(v, str)),
    "input_sha256": ("a JSON object", lambda v: isinstance(v, dict)),
    "imports": ("a list of module names",
                lambda v: isinstance(v, list) and all(isinstance(m, str) for m in v)),
    "rounds": ("an integer >= 1", lambda v: isinstance(v, int) and not isinstance(v, bool)
               and v >= 1),
}


class RunError(Exception):
    """A run directory that cannot be used as asked; the message says why and what to do."""


class RunDir:
    """The files of one run directory, each named by its role.

    A staging folder is a ``RunDir`` too (:meth:`staged`): outputs are written to the
    same names there and moved into the run directory together.
    """

    RUN = "run.json"
    CHECKPOINT = "agent.ckpt"
    #: held (flock) by the command writing into the run directory; removed when it ends
    LOCK = ".dvrl.lock"
    LOG_DIR = "log"
    VALUES = "values.csv"
    METRICS = "metrics.json"
    REPORT = "report.md"
    LABEL_ISSUES = "label_issues.csv"
    #: figure kind -> its file; the report writes those its data allow
    FIGURES = {kind: f"{kind}.png" for kind in (
        "discovery", "value_histogram", "remove_high_low", "robust_learning",
        "value_trajectory")}
    #: what ``dvrl value`` and ``dvrl evaluate`` write besides run.json, checkpoint and log
    OUTPUTS = (VALUES, LABEL_ISSUES, METRICS, REPORT, *FIGURES.values())

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def run_file(self) -> Path:
        return self.path / self.RUN

    @property
    def checkpoint(self) -> Path:
        return self.path / self.CHECKPOINT

    @property
    def log_dir(self) -> Path:
        """The agent's ``log_dir``: the CSV log and, when asked, TensorBoard's files."""
        return self.path / self.LOG_DIR

    @property
    def log_file(self) -> Path:
        return self.log_dir / PROGRESS_LOG

    @property
    def values(self) -> Path:
        return self.path / self.VALUES

    @property
    def label_issues(self) -> Path:
        return self.path / self.LABEL_ISSUES

    @property
    def metrics(self) -> Path:
        return self.path / self.METRICS

    @property
    def report(self) -> Path:
        return self.path / self.REPORT

    def figure(self, kind: str) -> Path:
        """The PNG of figure ``kind`` (a key of :attr:`FIGURES`)."""
        return self.path / self.FIGURES[kind]

    # ---- run.json and the checks against it ------------------------------------------
    def read_settings(self) -> dict:
        path = self.run_file
        if not path.is_file():
            raise RunError(f"{self.path} is not a dvrl run directory (no {self.RUN}).")
        try:
            settings = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise RunError(f"{path} is damaged ({err}); the run's settings are lost, start a "
                           "new run.") from None
        if not isinstance(settings, dict):
            raise RunError(f"{path} is damaged or not a dvrl run file (not a JSON object); "
                           "start a new run.")
        missing = [k for k in ("agent", "seed", "steps", "env_args", "agent_args")
                   if k not in settings]
        if missing:
            raise RunError(f"{path} is damaged or not a dvrl run file (missing {missing}); "
                           "start a new run.")
        for key, (what, ok) in SETTINGS_TYPES.items():
            if key in settings and not ok(settings[key]):
                raise RunError(f"{path} is damaged: {key!r} is {settings[key]!r}, not {what}; "
                               "restore the file or start a new run.")
        return settings

    def write_settings(self, settings: dict) -> None:
        atomic_write_text(self.run_file, json.dumps(settings, indent=2))

    def check_inputs(self, settings: dict) -> None:
        """Refuse when an input file is gone or its content changed since the run."""
        for key, recorded in settings.get("input_sha256", {}).items():
            path = Path(settings[key])
            if not path.is_file():
                raise RunError(f"{self.path} was computed from {path} "
                               f"(--{key.replace('_', '-')}), which no longer exists; restore "
                               "it to evaluate or resume the run.")
            current = file_sha256(path)
            if current != recorded:
                raise RunError(f"{path} changed since the run in {self.path} (SHA-256 "
                               f"{recorded[:12]} then, {current[:12]} now), so its values no "
                               "longer point at the right rows; restore the file, or start a "
                               "new run on it.")

    def check_dataset(self, settings: dict, fingerprint: str) -> None:
        recorded = settings.get("dataset_sha256")
        if recorded is not None and recorded != fingerprint:
            raise RunError(f"The data built from {self.run_file} now differ from the run's "
                           f"(dataset SHA-256 {recorded[:12]} then, {fingerprint[:12]} now): a "
                           "data file or the package's loader changed. Start a new run.")

    def read_metrics(self) -> dict | None:
        """The run's earlier ``metrics.json``, or None when there is none."""
        if not self.metrics.is_file():
            return None
        try:
            return json.loads(self.metrics.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise RunError(f"{self.metrics} is damaged ({err}); delete it and run the command "
                           "again (the update count and wall time it held will show as "
                           "unknown).") from None

    # ---- the log, outputs and clean-up ---------------------------------------------
    def truncate_log(self, steps_done: int) -> int | None:
        """Drop log rows after update ``steps_done`` (a killed run's lost updates); returns
        the last update the log had reached, or None without a log."""
        path = self.log_file
        if not path.is_file():
            return None
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            fields, rows = reader.fieldnames, list(reader)
        if not fields or "step" not in fields:
            path.unlink()  # not a log we can read: it would only mislead the figures
            return None
        kept, last = [], 0
        for row in rows:
            try:
                step = int(float(row["step"]))
            except (TypeError, ValueError):
                continue  # a row cut short by the kill
            last = max(last, step)
            if step <= steps_done:
                kept.append(row)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_text(path, buffer.getvalue())
        return last

    @contextlib.contextmanager
    def staged(self) -> Iterator[RunDir]:
        """A run directory inside this one to write outputs into; on success its files
        replace those here, on failure none of them appear."""
        staging = Path(tempfile.mkdtemp(dir=self.path, prefix=".staging-"))
        try:
            yield RunDir(staging)
            for path in sorted(staging.iterdir()):
                os.replace(path, self.path / path.name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def own_files(self) -> list[Path]:
        """The files and folders of this run that exist: what a run writes, by name; a
        user's file in the run directory (or in ``log/``) is not among them."""
        names = [self.run_file, self.checkpoint, *(self.path / n for n in self.OUTPUTS),
                 self.log_file, self.log_dir / TENSORBOARD_DIR,
                 *self.path.glob(".staging-*"), *self.path.glob(".replacing-*")]
        return [p for p in names if p.exists() or p.is_symlink()]

    def remove_files(self, *, keep: Path | None = None) -> None:
        """Remove what a run writes (the old run on ``--overwrite``, or a fresh run that
        failed), except ``keep``; files that are not a run's are left alone, and so is
        ``log/`` when it holds any."""
        for path in self.own_files():
            if path == keep:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.log_dir.rmdir()  # only when empty

    def new_replacement(self) -> RunDir:
        """An empty run directory inside this one for the run that will replace this
        one's (``--overwrite``): the old run stays whole until :meth:`replace_with`."""
        return RunDir(tempfile.mkdtemp(dir=self.path, prefix=".replacing-"))

    def replace_with(self, new: RunDir) -> None:
        """Move the run in ``new`` (a folder inside this one) here, in place of the run
        this folder held: its files are removed only now, once the new run is complete."""
        self.remove_files(keep=new.path)
        for path in sorted(new.own_files()):
            target = self.path / path.relative_to(new.path)
            target.parent.mkdir(exist_ok=True)
            os.replace(path, target)
        shutil.rmtree(new.path, ignore_errors=True)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold this run directory for one command: a second ``dvrl value``, ``--resume``
        or ``evaluate`` on it meanwhile is refused, naming the process that holds it. The
        lock is ``fcntl.flock``: it is released when the process ends, however it ends."""
        path = self.path / self.LOCK
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                holder = os.read(fd, 64).decode(errors="replace").strip()
                os.close(fd)
                if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                who = f"process {holder}" if holder.isdigit() else "another process"
                raise RunError(f"{self.path} is in use by {who} (another dvrl command writing "
                               "this run); wait for it to end, or choose another directory."
                               ) from None
            # the holder before us may have removed the file after we opened it: lock anew
            with contextlib.suppress(FileNotFoundError):
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    break
            os.close(fd)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            yield
        finally:
            with contextlib.suppress(OSError):
                path.unlink()  # still ours: a waiting process re-checks the inode
            os.close(fd)


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_files(settings: dict) -> dict[str, str]:
    """Setting name -> path of each input file the run reads (the CSV tables)."""
    return {key: settings[key] for key in ("csv", "valid_csv", "test_csv") if settings.get(key)}


def record_inputs(settings: dict) -> dict:
    """The settings with every input path made absolute and its SHA-256 recorded."""
    settings = dict(settings)
    hashes = {}
    for key, path in input_files(settings).items():
        settings[key] = str(Path(path).resolve())
        hashes[key] = file_sha256(settings[key])
    settings["input_sha256"] = hashes
    return settings


def identity(settings: dict) -> dict:
    """The settings that decide what a run computes (stored in its checkpoints)."""
    return {key: settings.get(key) for key in IDENTITY_KEYS}


def check_out_dir(out: Path) -> None:
    """Fail now, not after learning, when ``out`` cannot hold the run's files."""
    for parent in (out, *out.parents):
        if parent.exists():
            if not parent.is_dir():
                what = "is a file" if parent == out else f"lies under the file {parent}"
                raise RunError(f"--out {out} {what}; choose a directory path.")
            break
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        raise RunError(f"Cannot write to --out {out} ({err.strerror or err}); choose a writable "
                       "directory.") from None

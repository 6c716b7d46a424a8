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
into place only once all of them are written.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from dvrl_env.atomic import atomic_write_text

#: the CSV log an agent writes into its ``log_dir``, one row per logged update
PROGRESS_LOG = "progress.csv"
#: the folder under an agent's ``log_dir`` that holds TensorBoard's event files
TENSORBOARD_DIR = "tensorboard"
#: settings a resumed run may not change: they decide what the run computes
IDENTITY_KEYS = ("env", "csv", "label_column", "valid_csv", "test_csv", "noise_rate",
                 "env_args", "agent", "agent_args", "seed", "missing_values", "drop_columns",
                 "rounds")


class RunError(Exception):
    """A run directory that cannot be used as asked; the message says why and what to do."""


class RunDir:
    """The files of one run directory, each named by its role.

    A staging folder is a ``RunDir`` too (:meth:`staged`): outputs are written to the
    same names there and moved into the run directory together.
    """

    RUN = "run.json"
    CHECKPOINT = "agent.ckpt"
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
        missing = [k for k in ("agent", "seed", "steps", "env_args", "agent_args")
                   if k not in settings]
        if not isinstance(settings, dict) or missing:
            raise RunError(f"{path} is damaged or not a dvrl run file (missing {missing}); "
                           "start a new run.")
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

    def remove_files(self) -> None:
        """Remove what a run writes (for ``--overwrite``, or after a fresh run failed);
        files that are not a run's are left alone."""
        for name in (self.RUN, self.CHECKPOINT, *self.OUTPUTS):
            (self.path / name).unlink(missing_ok=True)
        shutil.rmtree(self.log_dir, ignore_errors=True)
        for staging in self.path.glob(".staging-*"):
            shutil.rmtree(staging, ignore_errors=True)


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

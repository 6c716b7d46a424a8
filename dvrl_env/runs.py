"""A run directory of ``dvrl value``: what it records, and the checks that keep it honest.

    run.json        the settings, the SHA-256 of every input file and of the dataset
    agent.ckpt      the agent's checkpoint (tensors and JSON, see agents.checkpoint)
    log/progress.csv  one row per logged update
    values.csv, metrics.json, report.md, *.png   the outputs

``dvrl evaluate`` and ``--resume`` read ``run.json`` back and refuse, with the reason,
when an input file or the dataset no longer matches it, so values are never scored
against rows they were not learned on. Outputs are written to a staging folder inside
the run directory and moved into place only once all of them are written.
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

RUN_FILE = "run.json"
CHECKPOINT = "agent.ckpt"
LOG_FILE = Path("log") / "progress.csv"
#: settings a resumed run may not change: they decide what the run computes
IDENTITY_KEYS = ("env", "csv", "label_column", "valid_csv", "test_csv", "noise_rate",
                 "env_args", "agent", "agent_args", "seed", "missing_values", "drop_columns")


class RunError(Exception):
    """A run directory that cannot be used as asked; the message says why and what to do."""


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


def check_inputs(settings: dict, run_dir: Path) -> None:
    """Refuse when an input file is gone or its content changed since the run."""
    for key, recorded in settings.get("input_sha256", {}).items():
        path = Path(settings[key])
        if not path.is_file():
            raise RunError(f"{run_dir} was computed from {path} (--{key.replace('_', '-')}), "
                           "which no longer exists; restore it to evaluate or resume the run.")
        current = file_sha256(path)
        if current != recorded:
            raise RunError(f"{path} changed since the run in {run_dir} (SHA-256 {recorded[:12]} "
                           f"then, {current[:12]} now), so its values no longer point at the "
                           "right rows; restore the file, or start a new run on it.")


def check_dataset(settings: dict, fingerprint: str, run_dir: Path) -> None:
    recorded = settings.get("dataset_sha256")
    if recorded is not None and recorded != fingerprint:
        raise RunError(f"The data built from {run_dir / RUN_FILE} now differ from the run's "
                       f"(dataset SHA-256 {recorded[:12]} then, {fingerprint[:12]} now): a "
                       "data file or the package's loader changed. Start a new run.")


def read_settings(run_dir: Path) -> dict:
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise RunError(f"{run_dir} is not a dvrl run directory (no {RUN_FILE}).")
    try:
        settings = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunError(f"{path} is damaged ({err}); the run's settings are lost, start a new "
                       "run.") from None
    missing = [k for k in ("agent", "seed", "steps", "env_args", "agent_args")
               if k not in settings]
    if not isinstance(settings, dict) or missing:
        raise RunError(f"{path} is damaged or not a dvrl run file (missing {missing}); start a "
                       "new run.")
    return settings


def write_settings(run_dir: Path, settings: dict) -> None:
    atomic_write_text(run_dir / RUN_FILE, json.dumps(settings, indent=2))


def read_json_output(path: Path) -> dict | None:
    """An earlier output JSON (``metrics.json``), or None when there is none."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunError(f"{path} is damaged ({err}); delete it and run the command again (the "
                       "update count and wall time it held will show as unknown).") from None


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


def truncate_log(run_dir: Path, steps_done: int) -> int | None:
    """Drop log rows after update ``steps_done`` (a killed run's lost updates); returns
    the last update the log had reached, or None without a log."""
    path = run_dir / LOG_FILE
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
def staged(run_dir: Path) -> Iterator[Path]:
    """A folder inside ``run_dir`` to write outputs into; on success its files replace
    those in ``run_dir``, on failure none of them appear."""
    staging = Path(tempfile.mkdtemp(dir=run_dir, prefix=".staging-"))
    try:
        yield staging
        for path in sorted(staging.iterdir()):
            os.replace(path, run_dir / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def remove_run_files(run_dir: Path, output_files: tuple[str, ...]) -> None:
    """Remove what a run writes (for ``--overwrite``, or after a fresh run failed);
    files that are not a run's are left alone."""
    for name in (RUN_FILE, CHECKPOINT, *output_files):
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / LOG_FILE.parent, ignore_errors=True)
    for staging in run_dir.glob(".staging-*"):
        shutil.rmtree(staging, ignore_errors=True)

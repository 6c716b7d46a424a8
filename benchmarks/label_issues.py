"""A user's own noisy table with no clean validation set: the plain ``dvrl value --csv F
--label-column L`` against confident learning, on the same rows and flips.

Imported by ``benchmarks/specs/label_issues.toml``, it registers
- two datasets whose every row is a training row, kept as raw cells as a user would hand
  them over: ``adult_table`` (1,670 rows drawn with the cell's seed from the shipped
  Adult files, 14 raw columns, label ``income``) and ``digits_table`` (all 1,797 of
  scikit-learn's digits, 64 pixel columns 0-16, label ``digit``). Their features are
  the project's CSV encoding of those cells (:func:`dvrl_env.load_csv`), which is what
  the command and cleanlab both see; the bench flips ``noise_rate`` of the labels;
- the method ``dvrl-csv``: writes the table with its flipped labels to a CSV file and
  runs the command a user types, ``dvrl value --csv F --label-column L --out D`` with
  nothing else (its defaults choose the agent and options), and returns values.csv's
  values; ``options = { rounds = N }`` adds ``--rounds N``, to measure round by round.
  The command runs in a process of its own; its wall time, start-up included, is
  ``command_seconds`` in the row's ``extra``.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dvrl_env.app.bench.hooks import register_method
from dvrl_env.data.registry import DatasetEntry, Splits, register_dataset
from dvrl_env.data.tabular import load_csv

ADULT_ROWS = 1670


def adult_cells(seed: int, n_rows: int = ADULT_ROWS) -> tuple[list[str], list[list[str]]]:
    """``n_rows`` rows of the shipped Adult files drawn with ``seed``, as raw cells
    (header first; the label column ``income`` last)."""
    from dvrl_env.data.sources import ADULT_COLUMNS, _adult_table

    table = _adult_table()
    rows = (np.arange(len(table.labels)) if n_rows >= len(table.labels) else
            np.sort(np.random.default_rng(seed).choice(len(table.labels), n_rows,
                                                       replace=False)))
    columns = [[c.categories[int(v)] for v in c.values[rows]] if c.categories
               else [f"{v:g}" for v in c.values[rows]] for c in table.columns]
    labels = [">50K" if y else "<=50K" for y in table.labels[rows]]
    header = [name for name, _ in ADULT_COLUMNS] + ["income"]
    return header, [list(cells) for cells in zip(*columns, labels, strict=True)]


def digits_cells(seed: int) -> tuple[list[str], list[list[str]]]:
    """All of scikit-learn's digits as raw cells: 64 pixel columns (0-16), ``digit``."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    header = [f"pixel_{i}" for i in range(64)] + ["digit"]
    return header, [[str(int(v)) for v in x] + [str(int(y))]
                    for x, y in zip(bunch.data, bunch.target, strict=True)]


TABLES = {"adult_table": (adult_cells, "UCI Adult as a user's CSV (1,670 rows)"),
          "digits_table": (digits_cells, "scikit-learn's digits as a user's CSV (1,797 rows)")}


def write_table(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def table_loader(name: str):
    """A loader whose every row is a training row (valid and test are those rows, as
    ``load_csv(validation="cross-fit")`` makes them), the raw cells kept in ``meta``."""
    cells = TABLES[name][0]

    def load(*, n_train, n_valid, n_test, seed: int = 0) -> Splits:
        header, rows = cells(seed)
        with tempfile.TemporaryDirectory(prefix="dvrl-table-") as tmp:
            path = Path(tmp) / f"{name}.csv"
            write_table(path, header, rows)
            data = load_csv(path, header[-1], validation="cross-fit")
        meta = {**data.meta, "raw_header": header, "raw_rows": [row[:-1] for row in rows],
                "source": name}
        x, y = data.x_train, data.y_train
        return Splits(x, y, x, y, x, y, data.num_classes, meta)

    return load


for _name, (_, _description) in TABLES.items():
    register_dataset(DatasetEntry(
        name=_name, env_id=f"DataValuation-{_name.title().replace('_', '')}-v0",
        loader=table_loader(_name), n_train=1, n_valid=1, n_test=1,
        description=_description))


def plain_command(env, *, seed: int, rounds: int | None = None) -> tuple[np.ndarray, dict]:
    """The user's command on the cell's table and flipped labels (see the module)."""
    dataset = env.unwrapped.dataset
    header, names = dataset.meta["raw_header"], dataset.meta["label_names"]
    rows = [[*cells, names[y]] for cells, y in
            zip(dataset.meta["raw_rows"], dataset.y_train, strict=True)]
    with tempfile.TemporaryDirectory(prefix="dvrl-csv-") as tmp:
        table, out = Path(tmp) / "table.csv", Path(tmp) / "run"
        write_table(table, header, rows)
        command = ["value", "--csv", str(table), "--label-column", header[-1],
                   "--out", str(out), "--quiet"]
        if rounds is not None:
            command += ["--rounds", str(rounds)]
        start = time.perf_counter()  # a process of its own, as a user's shell starts it
        done = subprocess.run([sys.executable, "-m", "dvrl_env", *command],
                              capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"dvrl {' '.join(command)} exited {done.returncode}: "
                               f"{done.stderr.strip()[-500:]}")
        with open(out / "values.csv", newline="") as f:
            values = np.array([float(row["value"]) for row in csv.DictReader(f)])
    return values, {"command_seconds": round(seconds, 2),
                    "command": "dvrl value --csv F --label-column L"
                    + ("" if rounds is None else f" --rounds {rounds}")}


register_method("dvrl-csv", plain_command)

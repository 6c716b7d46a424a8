"""Scale of the practitioner's command: all 48,842 rows of the shipped Adult files
(adult.data and adult.test together, as one user table with its raw columns, 20% of
the labels flipped) valued by the plain ``dvrl value --csv F --label-column income``,
with its progress bar. Prints the wall time, the peak resident memory of the command's
process (and its children) and the detection AUROC over every row.

    python benchmarks/label_issues_scale.py [--rows 48842] [--noise-rate 0.2]

Target (the issue): within 10 minutes and 4 GiB on this 2-core machine.
"""

from __future__ import annotations

import argparse
import csv
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.label_issues import adult_cells, write_table  # noqa: E402
from dvrl_env.app.bench.code import code_line  # noqa: E402
from dvrl_env.data.datasets import add_label_noise  # noqa: E402
from dvrl_env.evaluation.metrics import detection_auroc  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=48842)
    parser.add_argument("--noise-rate", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(code_line(["benchmarks.label_issues"]), flush=True)
    header, rows = adult_cells(args.seed, args.rows)
    labels = np.array([row[-1] == ">50K" for row in rows], dtype=np.int64)
    noisy, mask = add_label_noise(labels, 2, args.noise_rate, args.seed)
    for row, y in zip(rows, noisy, strict=True):
        row[-1] = ">50K" if y else "<=50K"
    with tempfile.TemporaryDirectory(prefix="dvrl-scale-") as tmp:
        table, out = Path(tmp) / "adult_all.csv", Path(tmp) / "run"
        write_table(table, header, rows)
        command = [sys.executable, "-m", "dvrl_env", "value", "--csv", str(table),
                   "--label-column", "income", "--out", str(out)]
        start = time.perf_counter()
        done = subprocess.run(command)  # the progress bar goes to this terminal
        seconds = time.perf_counter() - start
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if done.returncode != 0:
            sys.exit(f"the command exited {done.returncode}")
        with open(out / "values.csv", newline="") as f:
            values = np.array([float(r["value"]) for r in csv.DictReader(f)])
        with open(out / "label_issues.csv", newline="") as f:
            flagged = sum(1 for _ in csv.DictReader(f))
    print(f"rows {len(rows)} (noise {args.noise_rate}, {int(mask.sum())} flipped), valued "
          f"{len(values)}; wall time {seconds:.1f} s; peak RSS {peak_kib / 2**20:.2f} GiB; "
          f"detection AUROC {detection_auroc(values, mask):.4f}; flagged {flagged}")


if __name__ == "__main__":
    main()

"""Are the results the README and docs cite current? Every cited
``benchmarks/results/...`` path must have been produced by the working tree's
number-deciding code (:mod:`dvrl_env.app.bench.check`).

    python benchmarks/check_results.py              # this repository
    python benchmarks/check_results.py --root DIR   # another checkout

Prints one line per cited result (``current``, the problem and its fix, or why it is
not checked) and a summary; exits 1 when any is not current, 0 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dvrl_env.app.bench.check import verdicts  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="check_results", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=REPO,
                        help="the repository root whose README and docs are checked "
                             "(default: this repository)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if not (root / "README.md").is_file():
        parser.error(f"--root {args.root} has no README.md: give a repository root")
    if str(root) not in sys.path:  # plugins the rows recorded are modules of the root
        sys.path.insert(0, str(root))
    found = verdicts(root)
    for verdict in found:
        print(verdict.line())
    problems = sum(1 for v in found if v.problem)
    skipped = sum(1 for v in found if v.note)
    print(f"{len(found)} cited result(s): {len(found) - problems - skipped} current, "
          f"{problems} not current, {skipped} not checked")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

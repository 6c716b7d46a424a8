"""Files the code and its docstrings cite exist: a cited script or document that was
deleted or never added (``benchmarks/credit_choices.py``, ``DESIGN.md``) sends a reader
nowhere."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: a repository path (``benchmarks/x.py``, ``docs/extending.md``) or a top-level document
CITED = re.compile(r"(?<![\w/.-])((?:benchmarks|docs|dvrl_env|agents|tests)/[\w./-]*\w"
                   r"\.(?:py|md|toml|csv|sh)|[A-Z][A-Z_]+\.md)\b")


#: tests whose cited paths are examples: their own, or a toy repository's in tmp_path
EXAMPLES = ("test_references.py", "test_check_results.py")


def cited_paths(text: str) -> set[str]:
    return set(CITED.findall(text))


def test_cited_files_exist():
    missing = []
    for folder in ("agents", "dvrl_env", "tests", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.parent.name == "tests" and path.name in EXAMPLES:
                continue
            for cited in cited_paths(path.read_text()):
                if not (ROOT / cited).exists() and not (path.parent / cited).exists():
                    missing.append(f"{path.relative_to(ROOT)}: {cited}")
    assert not missing, "cited files that are not in the repo:\n" + "\n".join(missing)


def test_the_scan_finds_what_it_looks_for():
    text = 'see ``benchmarks/credit_choices.py --study mix`` and DESIGN.md, "x"'
    assert cited_paths(text) == {"benchmarks/credit_choices.py", "DESIGN.md"}

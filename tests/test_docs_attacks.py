"""The attack page (docs/attacks.rst) names tests that exist, covers every finding of the
review it answers, and is part of the documentation's table of contents."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "attacks.rst"
NAMED = re.compile(r"``(tests/[\w/]+\.py)::(\w+)``")


def _tests_in(path: Path) -> set[str]:
    """The module-level test functions of a test file (read, not imported)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


def test_every_test_named_on_the_attack_page_exists() -> None:
    named = NAMED.findall(PAGE.read_text(encoding="utf-8"))
    assert len(named) >= 30
    files = {file for file, _ in named}
    defined = {f: _tests_in(ROOT / f) if (ROOT / f).is_file() else set() for f in files}
    missing = [f"{file}::{name}" for file, name in named if name not in defined[file]]
    assert not missing, f"docs/attacks.rst names tests that do not exist: {missing}"
    # Every test file named is one the suite collects.
    assert all(Path(file).name.startswith("test_") for file, _ in named)


def test_the_attack_page_lists_each_finding_with_a_test() -> None:
    text = PAGE.read_text(encoding="utf-8")
    table = text.split("The findings", 1)[1].split("A busy machine", 1)[0]
    rows = re.split(r"\n   \* - ", table)[2:]  # after the header row
    numbers = [row.split("\n", 1)[0].strip() for row in rows]
    assert numbers == [str(n) for n in range(1, 11)]
    for number, row in zip(numbers, rows, strict=True):
        assert NAMED.search(row), f"finding {number} names no test"


def test_the_attack_page_is_in_the_table_of_contents() -> None:
    index = (ROOT / "docs" / "index.rst").read_text(encoding="utf-8")
    toctrees = [block for block in index.split(".. toctree::")[1:]]
    assert any(re.search(r"^   attacks$", block, re.M) for block in toctrees)

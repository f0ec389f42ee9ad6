"""Where the documentation generator reads and writes: the checkout, the docs folder and
the folder of generated pages."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The project checkout (the folder holding ``spec/``, ``model/``, ``tests/``, ``docs/``)."""
DOCS_DIR = ROOT / "docs"
"""The documentation sources of the checkout."""
GENERATED = "_generated"
"""The folder, under the documentation sources, that the generator owns."""
LINKS_FILE = "traceability.toml"
"""The file, in the documentation sources, linking implementation and tests to clauses."""


def rel(path: Path) -> str:
    """``path`` relative to the checkout, as pages show it (unchanged if outside it)."""
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)

"""What makes a documentation build fail: unusable input, and the gaps the generator
finds (a broken link, a stale or incomplete result), which a strict build turns into
warnings."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mbmssec.docgen.paths import GENERATED
from mbmssec.errors import MbmssecError

PROBLEMS_FILE = "problems.json"
"""Where, in the generated folder, the problems of the last generation are kept."""


class DocsError(MbmssecError):
    """Unusable input for the documentation (a traceability file or test report that
    cannot be read); the message names the file and the field."""


@dataclass(frozen=True)
class Problem:
    """A gap that fails the strict build; the message names what is missing."""

    message: str
    location: str | None = None


def write_problems(srcdir: Path, problems: Sequence[Problem]) -> None:
    """Record problems next to pages generated outside Sphinx (``mbmssec_generate =
    False`` builds report them)."""
    path = srcdir / GENERATED / PROBLEMS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    data = [{"message": p.message, "location": p.location} for p in problems]
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def read_problems(srcdir: Path) -> list[Problem]:
    """The problems :func:`write_problems` recorded (none if nothing was recorded)."""
    path = srcdir / GENERATED / PROBLEMS_FILE
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [Problem(str(p["message"]), p.get("location")) for p in data]
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise DocsError(f"{path}: unreadable problems file: {exc}") from None

"""Output folders are checked before any work: a command that would run for minutes
and then fail to write its results refuses at once instead (exit 2, one line)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from mbmssec.errors import UsageError


def check_writable(out: Path, flag: str = "--out") -> None:
    """Make sure ``out`` is a folder this process can write: create it (and its
    parents) and write and remove a probe file there; refuse with one line otherwise."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{flag} {out}: not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".mbmssec-probe-"):
            pass
    except OSError as exc:
        raise UsageError(f"{flag} {out}: cannot write there ({exc.strerror or exc})") from None

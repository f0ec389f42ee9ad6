"""``mbmssec docs`` tells the user what it does while it runs the checker for minutes
(its crash and failure exits are tests/test_docs_failures.py's)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest


@pytest.mark.slow  # starts the real checker (about 8 s of CPU before its first line)
def test_docs_streams_the_checkers_progress_while_it_runs_it(tmp_path: Path) -> None:
    """With no results, ``mbmssec docs`` runs the checker first (minutes): it says so at
    once and streams the checker's progress lines; the test stops it (by its PID) once
    the first progress line has arrived."""
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mbmssec",
            "docs",
            "--source",
            str(root / "docs"),
            "--results",
            str(tmp_path / "results"),
            "--builder",
            "dummy",
            "--out",
            str(tmp_path / "out"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    # no progress line within two minutes: stop it, and the assertions below fail
    timer = threading.Timer(120, proc.kill)
    timer.start()
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("mbmssec check: ["):
                break
    finally:
        timer.cancel()
        proc.kill()
        proc.wait(timeout=30)
    assert any("running `mbmssec check --all" in line for line in lines), lines
    assert lines[-1].startswith("mbmssec check: ["), lines

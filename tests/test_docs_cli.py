"""``mbmssec docs`` tells a Sphinx crash (an error that stops the build) from a failed
strict build (warnings turned into errors): exit 2 with its own line, not exit 1."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest


def test_a_sphinx_crash_is_exit_2_and_said_so(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    # a configuration that cannot even be read: sphinx-build stops with status 2
    (src / "conf.py").write_text("raise RuntimeError('broken configuration')\n")
    (src / "index.rst").write_text("Title\n=====\n")
    results = tmp_path / "results"
    results.mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mbmssec",
            "docs",
            "--source",
            str(src),
            "--results",
            str(results),
            "--no-check",
            "--builder",
            "dummy",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "sphinx-build stopped with status 2" in proc.stderr
    assert "not a warning of the strict build" in proc.stderr
    assert "the strict build failed" not in proc.stderr


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

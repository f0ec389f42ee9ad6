"""``mbmssec docs`` tells a Sphinx crash (an error that stops the build) from a failed
strict build (warnings turned into errors): exit 2 with its own line, not exit 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


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

"""The tree stays formatted, lint-clean and type-checked (mypy --strict over the package
and the tests), so a change that breaks any of them fails the suite."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv" / "bin"


def _run(*cmd: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(cmd), cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_ruff_format_check() -> None:
    proc = _run(str(VENV / "ruff"), "format", "--check", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_lint() -> None:
    proc = _run(str(VENV / "ruff"), "check", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_mypy_strict_package_and_tests() -> None:
    proc = _run("bash", str(ROOT / "tools" / "typecheck.sh"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Both runs report success: the package, then the tests.
    assert proc.stdout.count("Success: no issues found") == 2, proc.stdout

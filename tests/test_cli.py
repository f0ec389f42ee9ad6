"""The command line: every sub-command module loads, usage errors exit 2, explore reports JSON."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys

import pytest

from mbmssec import commands
from mbmssec.cli import build_parser, main


def test_every_command_module_imports_and_registers() -> None:
    names = [m.name for m in pkgutil.iter_modules(commands.__path__)]
    for name in names:
        module = importlib.import_module(f"{commands.__name__}.{name}")
        assert hasattr(module, "register"), name
    help_text = build_parser().format_help()
    for command in ("explore", "check", "load", "vectors", "serve", "demo"):
        assert command in help_text


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    assert main(["explore", "--examples", "0"]) == 2
    assert "must be positive" in capsys.readouterr().err
    assert main(["explore", "-o", "activation"]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err
    assert main(["explore", "--property", "42"]) == 2


def test_explore_json_reports_a_violation_and_exit_1() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mbmssec",
            "explore",
            "--json",
            "--property",
            "3",
            "-o",
            "mki_in_srtp=optional",
            "--examples",
            "50",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 1, out.stderr
    data = json.loads(out.stdout)
    (prop,) = data["properties"]
    assert prop["number"] == 3 and prop["result"] == "violated"
    assert [s["action"] for s in prop["trace"]["steps"]][-1] == "Send"
    assert "Traceback" not in out.stderr


def test_bad_profile_file_names_file_and_field(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    from pathlib import Path

    f = Path(str(tmp_path)) / "p.toml"
    f.write_text('[options]\nkek_scope = "shared"\n')
    assert main(["explore", "--profile", str(f)]) == 2
    err = capsys.readouterr().err
    assert "p.toml" in err and "options.kek_scope" in err

"""The command line: every sub-command module loads, usage errors exit 2, explore reports JSON."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

from mbmssec import commands
from mbmssec.cli import build_parser, main
from mbmssec.model.trace import Trace


def test_every_command_module_imports_and_registers() -> None:
    """Every module of the table registers; the others (shared arguments) do not."""
    names = [m.name for m in pkgutil.iter_modules(commands.__path__)]
    for name in names:
        module = importlib.import_module(f"{commands.__name__}.{name}")
        assert hasattr(module, "register") == (name in commands.COMMANDS.values()), name
    help_text = build_parser().format_help()
    for command in ("explore", "check", "load", "vectors", "serve", "demo"):
        assert command in help_text


def _registered(module: str) -> set[str]:
    parser = build_parser(only=module)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def test_the_command_table_names_each_module_that_registers_a_command() -> None:
    """``mbmssec COMMAND`` imports only the module the table names for it: the table
    must name, for every command the modules register, the module that registers it."""
    found = {
        command: m.name
        for m in pkgutil.iter_modules(commands.__path__)
        for command in _registered(m.name)
    }
    assert found == commands.COMMANDS


def test_a_command_process_imports_only_its_own_module() -> None:
    """``mbmssec check --help`` loads neither the BM-SC's HTTP server nor its
    PostgreSQL driver; ``mbmssec --help`` still lists every command."""
    probe = (
        "import sys, runpy; sys.argv = ['mbmssec', *sys.argv[1:]]\n"
        "try:\n    runpy.run_module('mbmssec', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in ('aiohttp', 'psycopg', 'mbmssec.commands.serve') "
        "if m in sys.modules))"
    )
    lone = subprocess.run(
        [sys.executable, "-c", probe, "check", "--help"], capture_output=True, text=True
    )
    assert lone.returncode == 0, lone.stderr
    assert lone.stdout.strip().splitlines()[-1] == "[]"
    full = subprocess.run([sys.executable, "-c", probe, "--help"], capture_output=True, text=True)
    assert full.returncode == 0, full.stderr
    assert all(c in full.stdout for c in commands.COMMANDS)
    assert "mbmssec.commands.serve" in full.stdout.strip().splitlines()[-1]


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    assert main(["explore", "--examples", "0"]) == 2
    assert "must be positive" in capsys.readouterr().err
    assert main(["explore", "-o", "activation"]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err
    assert main(["explore", "--property", "42"]) == 2
    # a liveness property has no finite counterexample for exploration to find
    assert main(["explore", "--property", "9"]) == 2
    assert "liveness property" in capsys.readouterr().err
    # meaningless depths and an unwritable output are refused before any work
    assert main(["check", "--depth", "0"]) == 2
    assert "--depth: expected 1..40 (got 0)" in capsys.readouterr().err
    assert main(["matrix", "--depth", "-1"]) == 2
    assert "--depth: expected 1..40 (got -1)" in capsys.readouterr().err
    assert main(["check", "--out", "/proc/no-such/out"]) == 2
    assert "cannot write there" in capsys.readouterr().err


def test_every_command_with_a_profile_takes_o() -> None:
    """`-o NAME=VALUE` is accepted wherever a profile is chosen."""
    parser = build_parser()
    for argv in (
        ["explore", "-o", "activation=immediate"],
        ["trace-check", "log.jsonl", "-o", "activation=immediate"],
        ["demo", "-o", "activation=immediate"],
        ["serve", "--db", "bmsc.db", "-o", "activation=immediate"],
        ["demo", "--option", "activation=immediate"],
    ):
        args = parser.parse_args(argv)
        assert args.option == ["activation=immediate"], argv


def test_explore_json_reports_an_expected_violation_and_exit_0() -> None:
    """mki_in_srtp=optional breaks property 3 (its shipped proposal says so): the
    violation is reported with its trace and, being expected, is exit 0."""
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
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    (prop,) = data["properties"]
    assert prop["number"] == 3 and prop["result"] == "violated"
    assert prop["expected"] == "violated"
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


def test_explore_expects_what_the_matching_proposal_breaks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`explore -o activation=immediate` is the shipped proposal activate_immediately,
    which breaks property 4: its violation is expected, not a surprise."""
    code = main(
        ["explore", "-o", "activation=immediate", "--property", "4", "--examples", "60", "--json"]
    )
    doc = json.loads(capsys.readouterr().out)
    (row,) = doc["properties"]
    assert row["expected"] == "violated" and row["result"] == "violated"
    assert code == 0
    # the counterexample also with its states, and why it breaks property 4
    trace = Trace.from_json(row["trace"])
    assert Trace.from_itf(row["itf"]) == trace
    assert trace.steps[-1].action == "Activate"
    assert row["explanation"].startswith(f"Step {len(trace.steps)}, Activate(S")


def _help_texts(parser: argparse.ArgumentParser) -> list[str]:
    out = [parser.format_help()]
    for act in parser._actions:
        if isinstance(act, argparse._SubParsersAction):
            out += [t for sub in act.choices.values() for t in _help_texts(sub)]
    return out


def test_terminal_help_has_no_markup() -> None:
    """reStructuredText roles and literals are for the docs page, not the terminal; the
    docs' parser keeps them (so the test cannot pass by there being none)."""
    plain = "\n".join(_help_texts(build_parser()))
    assert "`" not in plain
    assert "mbmssec.refinement.tracecheck" in plain  # a role's words are kept
    rst = "\n".join(_help_texts(build_parser(rst=True)))
    assert ":mod:`" in rst and "``" in rst


def test_output_folders_are_checked_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An output folder under a file, or a file given as the folder, is refused at once
    with one line naming it (exit 2): check --out, docs --out."""
    afile = tmp_path / "file"
    afile.write_text("x")
    assert main(["check", "--out", str(afile / "out")]) == 2
    assert "cannot write there" in capsys.readouterr().err
    assert main(["docs", "--out", str(afile / "html"), "--no-check"]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "cannot write there" in err and len(err.splitlines()) == 1
    assert main(["docs", "--out", str(afile), "--no-check"]) == 2
    assert "not a folder" in capsys.readouterr().err

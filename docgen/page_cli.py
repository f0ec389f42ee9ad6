"""The command-line reference page, rendered from an argument parser it is given.

The generator does not import the command line (it sits below it).  Whoever builds the
documentation describes the parser with :func:`describe_parser` and hands the
description over: ``docs/conf.py`` sets the Sphinx value ``mbmssec_cli``, a direct call
passes ``generate(..., cli=...)``.  The description is plain data, so Sphinx can keep
it in its environment and compare it between builds.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mbmssec.docgen.problems import Problem
from mbmssec.docgen.rst import esc, heading, indent, list_table
from mbmssec.docgen.site import Site

HELP_WIDTH = 96
"""Columns of the help texts shown on the page."""


@dataclass(frozen=True)
class CliArgument:
    """One argument of a command, as the reference table shows it."""

    names: tuple[str, ...]
    """The option strings, or the name of a positional argument."""
    value: str
    """The metavariable, if any."""
    default: str | None
    """The default of an option, when there is one worth showing."""
    meaning: str
    """The help text, with ``%(default)s`` filled in."""


@dataclass(frozen=True)
class CliCommand:
    """One sub-command: its help text and its arguments."""

    name: str
    help_text: str
    arguments: tuple[CliArgument, ...]


@dataclass(frozen=True)
class CliReference:
    """A command line described for the reference page."""

    prog: str
    origin: str
    """Where the parser comes from (shown on the page), e.g. ``mbmssec.cli.build_parser``."""
    help_text: str
    commands: tuple[CliCommand, ...]


def _help_text(parser: argparse.ArgumentParser) -> str:
    """The parser's help at :data:`HELP_WIDTH` columns (its formatter is left as it was)."""
    original = parser.formatter_class
    # formatter classes take the width as a keyword; argparse's type for them does not say so
    formatter: Any = original
    parser.formatter_class = functools.partial(formatter, width=HELP_WIDTH)
    try:
        return parser.format_help().rstrip()
    finally:
        parser.formatter_class = original


def _shown_default(action: argparse.Action) -> str | None:
    if not action.option_strings or action.default in (None, False, [], argparse.SUPPRESS):
        return None
    return str(action.default)


def _argument(action: argparse.Action) -> CliArgument:
    return CliArgument(
        names=tuple(action.option_strings) or (action.dest,),
        value=str(action.metavar or ""),
        default=_shown_default(action),
        meaning=str(action.help or "").replace("%(default)s", str(action.default)),
    )


def _subcommands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from sorted(action.choices.items())


def describe_parser(parser: argparse.ArgumentParser, origin: str = "") -> CliReference:
    """The reference data of a parser and of each of its sub-commands."""
    commands = tuple(
        CliCommand(
            name=name,
            help_text=_help_text(sub),
            arguments=tuple(
                _argument(a) for a in sub._actions if not isinstance(a, argparse._HelpAction)
            ),
        )
        for name, sub in _subcommands(parser)
    )
    return CliReference(parser.prog, origin, _help_text(parser), commands)


def _code(text: str) -> str:
    return ".. code-block:: text\n\n" + indent(text) + "\n\n"


def _command_section(prog: str, cmd: CliCommand) -> str:
    rows = [
        [
            ", ".join(f"``{n}``" for n in a.names),
            esc(a.value),
            "" if a.default is None else f"``{a.default}``",
            esc(a.meaning),
        ]
        for a in cmd.arguments
    ]
    table = list_table(["argument", "value", "default", "meaning"], rows, widths=[25, 15, 15, 45])
    return heading(f"{prog} {cmd.name}", "-") + _code(cmd.help_text) + table


def cli_page(ref: CliReference | None) -> str:
    """The reference page of a described command line (a placeholder without one)."""
    out = [heading("Command-line reference", "=")]
    if ref is None:
        out.append("No command-line parser was given to the documentation generator.\n")
        return "".join(out)
    origin = f" (``{ref.origin}``)" if ref.origin else ""
    out.append(
        f"Generated from the argument parser of ``{ref.prog}``{origin}. Exit status: "
        "0 success, 1 a property or check failed, 2 bad input.\n\n"
    )
    out.append(_code(ref.help_text))
    out += [_command_section(ref.prog, cmd) for cmd in ref.commands]
    return "".join(out)


def write_cli_page(site: Site, ref: CliReference | None) -> None:
    """``cli``: the command-line reference; a missing description is a problem."""
    if ref is None:
        site.inp.problems.append(
            Problem(
                "no command-line reference: describe the parser with "
                "mbmssec.docgen.page_cli.describe_parser and set mbmssec_cli in docs/conf.py"
            )
        )
    site.write("cli.rst", cli_page(ref))

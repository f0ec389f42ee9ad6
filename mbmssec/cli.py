"""Command-line entry point: ``mbmssec <command> ...``.

Sub-commands live in :mod:`mbmssec.commands`, one module each, discovered here.
Exit status: 0 success, 1 a property or check failed, 2 bad input (a clear message
on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import sys
from collections.abc import Callable

from mbmssec import __version__, commands
from mbmssec.errors import MbmssecError

_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`~?([^`<]*?)(?:\s*<[^>]*>)?`")
_LITERAL = re.compile(r"``([^`]+)``")
_INTERPRETED = re.compile(r"`([^`]+)`")


def plain(text: str) -> str:
    """Help text for a terminal: reStructuredText roles and literals (kept for the
    docs, which render them) reduced to their words, e.g. ``:mod:`a.b``` -> ``a.b``."""
    return _INTERPRETED.sub(r"\1", _LITERAL.sub(r"\1", _ROLE.sub(r"\1", text)))


def _plain_help(parser: argparse.ArgumentParser) -> None:
    if parser.description:
        parser.description = plain(parser.description)
    if parser.epilog:
        parser.epilog = plain(parser.epilog)
    for act in parser._actions:
        if isinstance(act.help, str):
            act.help = plain(act.help)
        if isinstance(act, argparse._SubParsersAction):
            for choice in act._choices_actions:
                if isinstance(choice.help, str):
                    choice.help = plain(choice.help)
            for sub in act.choices.values():
                _plain_help(sub)


def build_parser(*, rst: bool = False, only: str | None = None) -> argparse.ArgumentParser:
    """The full parser, with every discovered sub-command registered.  Help texts are
    plain text for a terminal; ``rst=True`` keeps their reStructuredText markup (the
    docs' command-line page renders it).  ``only`` (a module of :mod:`mbmssec.commands`)
    registers that module's commands alone."""
    parser = argparse.ArgumentParser(
        prog="mbmssec",
        description="Executable, formally checked specification of MBMS key management.",
    )
    parser.add_argument("--version", action="version", version=f"mbmssec {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    names = (
        [only]
        if only is not None
        else sorted(m.name for m in pkgutil.iter_modules(commands.__path__))
    )
    for name in names:
        module = importlib.import_module(f"{commands.__name__}.{name}")
        register: Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None] | None
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    if not rst:
        _plain_help(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command and return its exit status.  A known command builds the parser
    of its own module only (:data:`mbmssec.commands.COMMANDS`); anything else (no
    command, ``--help``, ``--version``, a misspelt command) builds the whole parser."""
    words = sys.argv[1:] if argv is None else argv
    parser = build_parser(only=commands.COMMANDS.get(words[0]) if words else None)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse reports bad usage with status 2 itself
        return int(exc.code or 0)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return func(args)
    except MbmssecError as exc:
        print(f"mbmssec {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mbmssec {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

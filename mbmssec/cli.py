"""Command-line entry point: ``mbmssec <command> ...``.

Sub-commands live in :mod:`mbmssec.commands`, one module each, discovered here.
Exit status: 0 success, 1 a property or check failed, 2 bad input (a clear message
on stderr, never a traceback).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Callable

from mbmssec import __version__, commands
from mbmssec.errors import MbmssecError


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every discovered sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="mbmssec",
        description="Executable, formally checked specification of MBMS key management.",
    )
    parser.add_argument("--version", action="version", version=f"mbmssec {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        register: Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None] | None
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command and return its exit status."""
    parser = build_parser()
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

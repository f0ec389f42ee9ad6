"""Sub-commands of the ``mbmssec`` command line.

Every module in this package that defines ``register(subparsers)`` adds one or more
sub-commands; :mod:`mbmssec.cli` discovers them, so a new command is one new file plus
its line in :data:`COMMANDS`.
``register`` must call ``parser.set_defaults(func=...)`` where ``func(args) -> int``
returns the exit status: 0 success, 1 a checked property or test failed, 2 bad input.
"""

from __future__ import annotations

from typing import Final

COMMANDS: Final[dict[str, str]] = {
    "bench": "bench",
    "bmsc-admin": "serve",
    "check": "check",
    "demo": "demo",
    "docs": "docs",
    "explore": "explore",
    "load": "load",
    "matrix": "matrix",
    "model": "model",
    "mutate": "mutate",
    "serve": "serve",
    "trace-check": "trace_check",
    "ue": "ue",
    "vectors": "vectors",
}
"""Each top-level command and the module of this package that registers it.  A command
run from the command line imports only its own module (a BM-SC or UE process does not
load the checker, the checker does not load aiohttp); help and unknown commands build
the whole parser.  tests/test_cli.py checks this table against what the modules
register."""

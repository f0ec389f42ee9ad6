"""Sub-commands of the ``mbmssec`` command line.

Every module in this package that defines ``register(subparsers)`` adds one or more
sub-commands; :mod:`mbmssec.cli` discovers them, so a new command is one new file.
``register`` must call ``parser.set_defaults(func=...)`` where ``func(args) -> int``
returns the exit status: 0 success, 1 a checked property or test failed, 2 bad input.
"""

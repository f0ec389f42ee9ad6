"""The root of every exception family mbmssec raises on purpose.

Each layer (spec loading, model, proofs, each protocol in impl/, the BM-SC and UE
services) defines its own family below :class:`MbmssecError`, so a caller can catch
one layer's errors, and the command line can turn any of them into a clear message
and exit status 2 instead of a traceback.
"""


class MbmssecError(Exception):
    """Base class of all deliberate mbmssec errors."""


class UsageError(MbmssecError):
    """Bad input given on the command line (unknown file, bad option value)."""

"""Arguments shared by several commands (a profile, secrets, positive numbers), in a
module of their own: a command imports these without the modules of the others (the
``ue`` command, for one, does not load the BM-SC's server)."""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

from mbmssec.errors import UsageError
from mbmssec.impl.service.files import PrivateFileError, require_private
from mbmssec.spec.loader import Profile, load_profile, load_spec

__all__ = [
    "SECRETS_HELP",
    "add_profile_arguments",
    "hex16",
    "positive",
    "profile_from_args",
    "read_secrets",
]


def add_profile_arguments(parser: argparse.ArgumentParser) -> None:
    """``--profile FILE`` and repeatable ``--option NAME=VALUE``."""
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="profile TOML file (title + [options]); default: the baseline",
    )
    parser.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set one option of the profile (repeatable), e.g. -o activation=after_acks",
    )


def profile_from_args(args: argparse.Namespace) -> Profile:
    """The profile the arguments select (baseline, file, then ``--option`` overrides)."""
    spec = load_spec()
    base: dict[str, str] = {}
    if args.profile is not None:
        base = dict(load_profile(args.profile, spec).overrides)
    for item in args.option:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise UsageError(f"--option expects NAME=VALUE, got {item!r}")
        base[name.strip()] = value.strip()
    return spec.profile(base)


def positive(text: str) -> float:
    """An argparse type: a finite positive number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


SECRETS_HELP = (
    'the subscriber\'s K and OPc: a TOML file with k = "<32 hex digits>" and '
    'opc = "<32 hex digits>", readable by its owner only (chmod 600), or - to read '
    "that from standard input; never on the command line"
)
_MAX_SECRETS = 4096  # octets of a secrets file read at most


def read_secrets(source: str) -> tuple[bytes, bytes]:
    """K and OPc from ``source``: a TOML file (mode 0600: a file others may read is
    refused) or ``-`` for standard input, holding ``k`` and ``opc`` as 32 hex digits
    each.  Messages never show a key's value."""
    where = "standard input" if source == "-" else source
    try:
        if source == "-":
            raw = sys.stdin.buffer.read(_MAX_SECRETS + 1)
        else:
            require_private(source, what="a subscriber's K and OPc")
            with open(source, "rb") as stream:
                raw = stream.read(_MAX_SECRETS + 1)
    except PrivateFileError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"--secrets: cannot read {where}: {exc.strerror}") from None
    if len(raw) > _MAX_SECRETS:
        raise UsageError(f"--secrets: {where} is larger than {_MAX_SECRETS} octets")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        reason = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else str(exc)
        raise UsageError(f"--secrets: {where} is not TOML: {reason}") from None
    unknown = sorted(set(data) - {"k", "opc"})
    if unknown:
        raise UsageError(f"--secrets: {where}: unknown key(s) {', '.join(unknown)}")
    keys = []
    for name in ("k", "opc"):
        value = data.get(name)
        if not isinstance(value, str):
            raise UsageError(f'--secrets: {where} needs {name} = "<32 hex digits>"')
        keys.append(hex16(value, f"{name} in {where}"))
    return keys[0], keys[1]


def hex16(text: str, name: str) -> bytes:
    """Parse a 16-octet key given in hex (a usage error otherwise)."""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise UsageError(f"{name} must be hex") from None
    if len(raw) != 16:
        raise UsageError(f"{name} must be 16 octets (32 hex digits)")
    return raw

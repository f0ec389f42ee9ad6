"""Files that hold secrets: created for the owner only, refused when others can read them.

The BM-SC's database holds every subscriber's K and OPc and every TEK, KEK and
authentication vector; its ``-wal`` and ``-shm`` files hold the same pages; the admin
token opens the admin listener; a UE's secrets file holds its K and OPc.  None of them
may be readable by another local user.  This module is the one place that says how such
a file is made (mode 0600, under a umask that keeps group and others out of every file
the process creates) and how an existing one is checked (no group or other permission
bits, else a :class:`PrivateFileError` that says which ``chmod`` fixes it).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from mbmssec.errors import MbmssecError

__all__ = [
    "PRIVATE_MODE",
    "PRIVATE_UMASK",
    "PrivateFileError",
    "create_private",
    "exposed_bits",
    "private_umask",
    "require_private",
]

PRIVATE_MODE: Final = 0o600
"""The mode of a file only its owner may read and write."""

PRIVATE_UMASK: Final = 0o077
"""The umask under which every file the process creates is the owner's only."""


class PrivateFileError(MbmssecError):
    """A file that holds secrets is readable by others, or cannot be created privately."""


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Run the block under the umask :data:`PRIVATE_UMASK` (set before any secret file is
    opened: SQLite creates the ``-wal`` and ``-shm`` files itself), then restore the
    previous umask."""
    previous = os.umask(PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(previous)


def exposed_bits(path: str | Path) -> int:
    """The group and other permission bits of ``path`` (0 when private or absent)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return 0
    return stat.S_IMODE(mode) & 0o077


def require_private(*paths: str | Path, what: str) -> None:
    """Refuse files (those that exist among ``paths``) that group or others may access,
    naming them and the command that fixes it; ``what`` says what they hold."""
    exposed = [(Path(p), exposed_bits(p)) for p in paths]
    exposed = [(p, bits) for p, bits in exposed if bits]
    if not exposed:
        return
    listed = ", ".join(f"{p} (mode {stat.S_IMODE(os.stat(p).st_mode):04o})" for p, _ in exposed)
    names = " ".join(str(p) for p, _ in exposed)
    raise PrivateFileError(
        f"{listed}: readable by group or others, but it holds {what}; "
        f"restrict it to its owner with `chmod 600 {names}` and try again"
    )


def create_private(path: str | Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 holding ``data``; an existing file is an error
    (:class:`FileExistsError`), so a file made by someone else is never reused.

    The file appears whole or not at all: ``data`` goes to a private temporary file in the
    same folder, is made durable, and is then linked to ``path`` (a link fails when the
    name exists, as an exclusive create does).  A process that loses the race to create
    the file therefore never reads it half written (two fleet workers starting at once
    with one ``--admin-token-file``)."""
    target = Path(path)
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        try:
            os.fchmod(fd, PRIVATE_MODE)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(temporary, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)

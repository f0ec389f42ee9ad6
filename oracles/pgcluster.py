"""A throw-away PostgreSQL cluster for the tests and the benchmarks.

:class:`PgCluster` runs ``initdb`` into a fresh temporary folder and starts ``postgres``
on a Unix socket in that folder only (``listen_addresses`` empty: no TCP port at all),
with trust authentication for the one role it creates (nobody else can reach the
socket: the folder is mode 0700).  It is stopped by its PID (fast shutdown, SIGINT) and
the folder removed.  PostgreSQL refuses to run as root, so under root the cluster runs
as the ``postgres`` user of the Debian package (or ``nobody``), which owns the folder.

The server binaries are looked up on ``PATH`` and then where the Debian package puts
them (``/usr/lib/postgresql/<version>/bin``, not on ``PATH``), highest version first.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Final

from mbmssec.errors import MbmssecError

__all__ = ["ROLE", "PgCluster", "PgClusterError", "find_server_binaries"]

ROLE: Final = "mbmssec"
"""The database role the cluster is created with (its superuser)."""


class PgClusterError(MbmssecError):
    """No PostgreSQL server binaries, or the cluster did not start."""


def find_server_binaries() -> Path:
    """The folder holding ``initdb`` and ``postgres``."""
    found = shutil.which("initdb")
    if found is not None and (Path(found).parent / "postgres").exists():
        return Path(found).resolve().parent
    versions = []
    for folder in Path("/usr/lib/postgresql").glob("*/bin"):
        if (folder / "initdb").exists() and folder.parent.name.isdigit():
            versions.append((int(folder.parent.name), folder))
    if not versions:
        raise PgClusterError(
            "no PostgreSQL server binaries (initdb, postgres) on PATH or in "
            "/usr/lib/postgresql/*/bin; install the Debian package 'postgresql' "
            "(tools/bootstrap.sh does)"
        )
    return max(versions)[1]


def _run_as() -> pwd.struct_passwd | None:
    """The unprivileged user to run the server as under root (else None: oneself)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PgClusterError("running as root and there is no 'postgres' or 'nobody' user")


class PgCluster:
    """One PostgreSQL server for a test session or a benchmark (see the module
    docstring).  ``settings`` are extra ``-c NAME=VALUE`` server settings."""

    def __init__(self, *, settings: dict[str, str] | None = None) -> None:
        self.settings = {
            "listen_addresses": "''",
            "max_connections": "60",
            "shared_buffers": "64MB",
            **(settings or {}),
        }
        self.root: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._databases = 0

    @property
    def socket_dir(self) -> Path:
        assert self.root is not None, "the cluster is not started"
        return self.root

    def start(self, timeout: float = 60.0) -> PgCluster:
        """initdb and start the server; returns when it accepts connections."""
        bindir = find_server_binaries()
        user = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="mbmssec-pg-"))
        data = self.root / "data"
        if user is not None:
            os.chown(self.root, user.pw_uid, user.pw_gid)
        uid = None if user is None else user.pw_uid
        gid = None if user is None else user.pw_gid
        env = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}
        init = subprocess.run(
            [
                str(bindir / "initdb"),
                *("-D", str(data), "-U", ROLE, "--auth=trust", "-E", "UTF8", "--no-sync"),
            ],
            capture_output=True,
            env=env,
            cwd=self.root,
            user=uid,
            group=gid,
        )
        if init.returncode != 0:
            self._remove()
            raise PgClusterError(f"initdb failed: {init.stderr.decode(errors='replace')[-500:]}")
        args = [str(bindir / "postgres"), "-D", str(data), "-k", str(self.root)]
        for name, value in self.settings.items():
            args += ["-c", f"{name}={value.strip(chr(39))}"]
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "server.log", "wb"),  # noqa: SIM115 (the child keeps it)
            env=env,
            cwd=self.root,
            start_new_session=True,
            user=uid,
            group=gid,
        )
        deadline = time.monotonic() + timeout
        while not (self.root / ".s.PGSQL.5432").exists() or not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.root / "server.log").read_text(errors="replace")[-800:]
                self.stop()
                raise PgClusterError(f"postgres did not start: {log}")
            time.sleep(0.05)
        return self

    def _ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url("postgres"), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def url(self, database: str = "postgres") -> str:
        """A libpq URL of ``database`` over the cluster's Unix socket."""
        return f"postgresql://{ROLE}@/{database}?host={self.socket_dir}"

    def create_database(self, name: str | None = None) -> str:
        """Create a fresh database; returns its URL."""
        import psycopg

        if name is None:
            self._databases += 1
            name = f"db{os.getpid()}_{self._databases}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    @property
    def pid(self) -> int | None:
        """The server's PID while it runs."""
        return None if self.proc is None else self.proc.pid

    def stop(self) -> None:
        """Stop the server by its PID (fast shutdown) and remove the folder."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None
        self._remove()

    def _remove(self) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> PgCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

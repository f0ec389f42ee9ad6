"""``mbmssec serve`` (the BM-SC) and ``mbmssec bmsc-admin`` (its authorisation database).

``mbmssec serve --db PATH`` runs the BM-SC of the TS 33.246 MBMS key management on
127.0.0.1: HTTP Digest AKA registration with MIKEY TEK delivery, the TEK schedule and
the SRTP fan-out (see :mod:`mbmssec.impl.net.server`), with all state in the SQLite
database at PATH.  When it is listening it prints one JSON line on stdout
(``{"url", "port", "admin_url", "admin_port", "admin_token_file", "udp_port", "pid",
"db", "log", "ca"}``); it runs until SIGTERM or SIGINT.  The event log
(:mod:`mbmssec.impl.service.events`) is appended to ``--log FILE``, by default
``PATH.events.jsonl``.
Killed at any moment, it restarts from the same database without losing state.
The UE listener (``--port``) serves the UE API only.  The admin API has its own
loopback port (``--admin-port``, default any free one, printed as ``admin_url``) and
answers only requests carrying ``Authorization: Bearer TOKEN``, with the token created
at the first start in ``--admin-token-file`` (default ``PATH.admin-token`` next to the
database, mode 0600).  Each listener closes a connection that has not sent a complete
request head within ``--idle-timeout`` seconds (default 20) of opening or of its previous
answer, and holds at most ``--max-connections`` connections (default 1024; the admin
listener 16), answering ``503`` beyond.
With ``tek_protection=tls`` (or ``--tls``) it answers over HTTPS with a certificate for
127.0.0.1/localhost issued by the project's own CA, created at the first start in
``--tls-dir`` (default ``PATH.tls`` next to the database, files mode 0600; see
:mod:`mbmssec.impl.net.tls`); the JSON line then names the CA file (``"ca"``), which
``mbmssec ue --ca`` and ``bmsc-admin --ca`` verify the BM-SC against.

**PostgreSQL, several workers.**  ``--db postgresql://USER[:PASSWORD]@HOST[:PORT]/DB``
(or ``postgresql:///DB?host=/socket/dir``) keeps the state in PostgreSQL instead
(:mod:`mbmssec.impl.service.pgstore`), and any number of ``serve`` processes may share
it: on one machine behind one port (``--reuse-port``, SO_REUSEPORT) or behind any HTTP
load balancer.  Each answers registrations; one elected leader (an advisory-lock lease)
runs the TEK schedule and the SRTP stream, and another takes over within 0.5 s when the
leader dies, or ``--lease-ttl`` seconds after a hung one stopped renewing its lease.
The event log is kept in the database in commit order (``--log FILE`` also writes this
worker's events to a file); ``mbmssec bmsc-admin --db URL export-log`` writes the
fleet's log for ``mbmssec trace-check``.  The admin listener runs only with
``--admin-token-file`` (one token for the workers), HTTPS only with ``--tls-dir``.

``mbmssec bmsc-admin --db PATH ACTION ...`` changes or shows the database directly
(safe while the BM-SC runs: SQLite serialises writers, and the BM-SC reads the
database on every step) and appends each change to the BM-SC's event log (``--log
FILE``, by default ``PATH.events.jsonl`` as for ``serve``; ``--no-log`` for none) before
the change commits, with ``source`` ``admin``, so that ``mbmssec trace-check`` of the
server's log sees every change; or, with ``--url ADMIN_URL --token-file FILE`` (the
``admin_url`` and ``admin_token_file`` serve printed), it goes through the running
BM-SC's admin listener, which logs the change itself.  Actions: ``add-subscriber UE
--secrets FILE|- [--sqn N]`` (K and OPc from a 0600 TOML file or standard input, never
from the command line, where every local user could read them), ``add-service SERVICE
[--period S]``, ``subscribe UE SERVICE``, ``revoke UE SERVICE``, ``show``, and on
PostgreSQL ``export-log [--out FILE] [--after SEQ]``.

Secrets at rest: both commands run under the umask 077, so every file they create (the
database and its ``-wal`` and ``-shm``, the event log, the admin token, the TLS
material) is readable by its owner only, and both refuse a database that group or
others may read (exit 2, naming the ``chmod 600`` that fixes it).

The profile (the values of the open options of the proposal) comes from ``--profile
FILE`` and ``--option NAME=VALUE``; a database remembers the profile it was created
with and refuses another one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from mbmssec.commands.arguments import (
    SECRETS_HELP,
    add_profile_arguments,
    positive,
    profile_from_args,
    read_secrets,
)
from mbmssec.errors import UsageError
from mbmssec.impl.net.server import (
    IDLE_TIMEOUT,
    LOOPBACK_HOSTS,
    MAX_ADMIN_CONNECTIONS,
    MAX_CONNECTIONS,
    BmscServer,
    ServerError,
    ensure_admin_token,
    read_admin_token,
)
from mbmssec.impl.net.tls import TlsError, client_context, ensure_tls_files, server_context
from mbmssec.impl.service.bmsc import BmscConfig, BmscCore, BmscError
from mbmssec.impl.service.events import ADMIN, Event, EventLog
from mbmssec.impl.service.files import private_umask, require_private
from mbmssec.impl.service.pgstore import (
    DEFAULT_LEASE_TTL,
    PgStore,
    is_database_url,
    redact_url,
)
from mbmssec.impl.service.store import DURABILITY, Store, StoreError
from mbmssec.spec.loader import Profile, load_spec

__all__ = [
    "open_core",
    "register",
    "require_private_database",
]


def open_store(db: str | Path, durability: str = "full") -> Store:
    """The store ``--db`` names: a PostgreSQL URL (:class:`PgStore`) or a SQLite file.

    A SQLite database (or its ``-wal`` or ``-shm`` file) that group or others may read
    is refused, with the ``chmod`` that fixes it (:func:`require_private_database`)."""
    try:
        if is_database_url(db):
            return PgStore(str(db), durability=durability)
        require_private_database(Path(db))
        return Store(db, durability=durability)
    except StoreError as exc:
        raise UsageError(str(exc)) from None


def open_core(
    db: str | Path, profile: Profile | None, config: BmscConfig, durability: str = "full"
) -> BmscCore:
    """A :class:`BmscCore` over the database (see :func:`open_store`); ``profile=None``
    takes the recorded one."""
    store = open_store(db, durability)
    if profile is None:
        recorded = store.get_meta("profile")
        spec = load_spec()
        if recorded is None:
            profile = spec.baseline()
        else:
            data = json.loads(recorded)
            profile = spec.profile({k: v for k, v in data.items() if v != spec.options[k].baseline})
    return BmscCore(store, profile, config)


def require_private_database(db: Path) -> None:
    """Refuse a database, ``-wal`` or ``-shm`` file that group or others may access: it
    holds every subscriber's K and OPc; the message names the ``chmod`` that fixes it."""
    require_private(
        db,
        db.with_name(db.name + "-wal"),
        db.with_name(db.name + "-shm"),
        what="the subscribers' K and OPc and every TEK and KEK",
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``serve`` and ``bmsc-admin``."""
    p = subparsers.add_parser(
        "serve",
        help="run the BM-SC (HTTP Digest AKA + MIKEY + SRTP) on loopback",
        description=__doc__,
    )
    p.add_argument(
        "--db",
        required=True,
        metavar="PATH|URL",
        help="the SQLite database file (created if absent), or a PostgreSQL URL "
        "postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE (or postgresql:///DATABASE"
        "?host=/socket/dir for a Unix socket): several serve processes may share one "
        "PostgreSQL database, one of them (the elected leader) running the TEK schedule "
        "and the SRTP stream",
    )
    p.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    p.add_argument("--port", type=int, default=0, help="TCP port of the UE API (0: any free port)")
    p.add_argument(
        "--admin-port",
        type=int,
        default=0,
        help="TCP port of the admin API, which needs the bearer token (0: any free port)",
    )
    p.add_argument(
        "--admin-token-file",
        type=Path,
        help="the admin API's bearer token, created (mode 0600) if absent "
        "(default: DB.admin-token next to the database)",
    )
    p.add_argument(
        "--log",
        type=Path,
        help="append the JSON-lines event log to FILE "
        "(default: DB.events.jsonl next to the database)",
    )
    p.add_argument("--no-log", action="store_true", help="write no event log")
    p.add_argument(
        "--service",
        action="append",
        default=[],
        metavar="SERVICE",
        help="make sure this service exists (repeatable)",
    )
    p.add_argument(
        "--period",
        type=positive,
        default=1.0,
        help="TEK period of services created here (seconds, default 1)",
    )
    p.add_argument(
        "--fetch-window",
        type=positive,
        default=0.6,
        help="share of the TEK period in which UEs fetch the next TEK (default 0.6)",
    )
    p.add_argument(
        "--rate",
        type=positive,
        default=50.0,
        help="SRTP packets per second per service (default 50)",
    )
    p.add_argument(
        "--tls",
        action="store_true",
        help="answer over HTTPS (implied by tek_protection=tls)",
    )
    p.add_argument(
        "--tls-dir",
        type=Path,
        help="TLS material (CA and server certificate), created if absent "
        "(default: DB.tls next to the database)",
    )
    p.add_argument(
        "--idle-timeout",
        type=positive,
        default=IDLE_TIMEOUT,
        help="seconds a connection may take to send a complete request head (from its "
        f"start or its previous answer) or a body (default {IDLE_TIMEOUT:g})",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=MAX_CONNECTIONS,
        help=f"connections the UE port holds at once; more get 503 (default {MAX_CONNECTIONS})",
    )
    p.add_argument(
        "--reuse-port",
        action="store_true",
        help="share --port with other serve processes on this machine (SO_REUSEPORT; "
        "with a PostgreSQL --db, the kernel spreads connections over the workers)",
    )
    p.add_argument(
        "--stream-port",
        type=int,
        default=None,
        help="UDP port the SRTP stream is sent from and announced to the UEs as its "
        "source (default: with --reuse-port the --port number, shared by the workers; "
        "else any free port); workers behind a load balancer need one",
    )
    p.add_argument(
        "--lease-ttl",
        type=positive,
        default=DEFAULT_LEASE_TTL,
        help="PostgreSQL: seconds after its last renewal that another worker ends a "
        "leader that stopped renewing its lease (default "
        f"{DEFAULT_LEASE_TTL:g}); a leader that dies is replaced within 0.5 s",
    )
    p.add_argument("--no-stream", action="store_true", help="do not send the SRTP stream")
    p.add_argument(
        "--no-send-log",
        action="store_true",
        help="keep per-packet Send events out of the event log",
    )
    p.add_argument(
        "--durability",
        choices=DURABILITY,
        default="full",
        help="full: fsync every commit (default); normal: survive a killed "
        "process, not a power cut",
    )
    add_profile_arguments(p)
    p.set_defaults(func=_serve)

    a = subparsers.add_parser(
        "bmsc-admin",
        help="manage the BM-SC's subscribers, services and subscriptions",
        description=__doc__,
    )
    where = a.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--db",
        metavar="PATH|URL",
        help="operate on the database directly (a SQLite file or a PostgreSQL URL)",
    )
    where.add_argument(
        "--url", help="operate through a running BM-SC's admin listener (its admin_url)"
    )
    a.add_argument(
        "--token-file",
        type=Path,
        help="with --url: the admin token file (serve's admin_token_file)",
    )
    a.add_argument("--ca", type=Path, help="CA file to verify an https --url against")
    a.add_argument(
        "--log",
        type=Path,
        help="with --db: append each change to the BM-SC's event log FILE "
        "(default: DB.events.jsonl next to the database, as serve)",
    )
    a.add_argument("--no-log", action="store_true", help="with --db: log no change")
    actions = a.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = actions.add_parser("add-subscriber", help="provision a subscriber in the HSS/AuC")
    s.add_argument("ue")
    s.add_argument("--secrets", required=True, metavar="FILE|-", help=SECRETS_HELP)
    s.add_argument("--sqn", type=int, default=0, help="initial SQN (default 0)")
    s = actions.add_parser("add-service", help="create a service and its first TEKs")
    s.add_argument("service")
    s.add_argument("--period", type=positive, default=None, help="TEK period (seconds)")
    for name, text in (
        ("subscribe", "authorise a UE for a service"),
        ("revoke", "withdraw a UE's authorisation"),
    ):
        s = actions.add_parser(name, help=text)
        s.add_argument("ue")
        s.add_argument("service")
    actions.add_parser("show", help="print the state (no secrets) as JSON")
    s = actions.add_parser(
        "export-log",
        help="PostgreSQL: write the fleet's event log (every worker's events, in commit "
        "order) as JSON lines, for trace-check",
    )
    s.add_argument("--out", type=Path, help="write to FILE (mode 0600) instead of stdout")
    s.add_argument("--after", type=int, default=0, help="only events after this sequence number")
    add_profile_arguments(a)
    a.set_defaults(func=_admin)


# -- serve ---------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    # Every file the BM-SC creates (database, -wal, -shm, event log, admin token, TLS
    # material) is its owner's only.
    with private_umask():
        return _serve_private(args)


def _serve_private(args: argparse.Namespace) -> int:
    if args.host not in LOOPBACK_HOSTS:
        raise UsageError(f"--host must be a loopback address ({', '.join(sorted(LOOPBACK_HOSTS))})")
    if not (0 <= args.port <= 65535 and 0 <= args.admin_port <= 65535):
        raise UsageError("--port and --admin-port must be 0..65535")
    if not (MAX_ADMIN_CONNECTIONS <= args.max_connections <= 1_000_000):
        raise UsageError(f"--max-connections must be {MAX_ADMIN_CONNECTIONS}..1000000")
    if args.idle_timeout > 3600:
        raise UsageError("--idle-timeout must be at most 3600 seconds")
    profile = profile_from_args(args)
    config = BmscConfig(period=args.period, packet_rate=args.rate, fetch_window=args.fetch_window)
    pg = is_database_url(args.db)
    db = None if pg else Path(args.db)
    if db is not None:
        require_private_database(db)  # before anything is created next to it

    def beside(suffix: str) -> Path | None:  # a file next to a SQLite database
        return None if db is None else db.with_name(db.name + suffix)

    tls_files = None
    if args.tls or args.tls_dir is not None or profile["tek_protection"] == "tls":
        tls_dir = args.tls_dir or beside(".tls")
        if tls_dir is None:
            raise UsageError(
                "with a PostgreSQL --db, HTTPS needs --tls-dir (shared by the workers)"
            )
        try:
            tls_files = ensure_tls_files(tls_dir)
        except TlsError as exc:
            raise UsageError(str(exc)) from None
    args.tls_files = tls_files
    # With PostgreSQL the admin listener runs only with an explicit --admin-token-file
    # (the workers share one token); bmsc-admin --db URL works on the database.
    args.admin_token_file = args.admin_token_file or beside(".admin-token")
    args.admin_token = None
    if args.admin_token_file is not None:
        try:
            args.admin_token = ensure_admin_token(args.admin_token_file)
        except ServerError as exc:
            raise UsageError(str(exc)) from None
    core = open_core(args.db, profile, config, args.durability)
    log_path = args.log or beside(".events.jsonl")
    log = None if args.no_log or log_path is None else EventLog(log_path)
    try:
        now = time.time()
        for service in args.service:
            if core.store.get_service(service) is None:
                try:
                    with core.store.transaction():
                        events = core.add_service(service, now)
                        if core.store.keeps_log:
                            core.store.log_events(events)
                except BmscError as exc:
                    if exc.code != "exists":  # another worker created it meanwhile
                        raise UsageError(exc.message) from None
                    events = []
                if log is not None:
                    log.emit_all(events)
        return asyncio.run(_run_server(core, args, log, log_path))
    finally:
        if log is not None:
            log.close()
        core.store.close()


async def _run_server(
    core: BmscCore, args: argparse.Namespace, log: EventLog | None, log_path: Path | None
) -> int:
    # The BM-SC's log: warnings and errors (with the correlation id of a 500) on stderr.
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s: %(message)s"
    )
    server = BmscServer(
        core,
        log=log,
        stream=not args.no_stream,
        packet_rate=args.rate,
        log_sends=not args.no_send_log,
        ssl_context=server_context(args.tls_files) if args.tls_files is not None else None,
        admin_token=args.admin_token,
        idle_timeout=args.idle_timeout,
        max_connections=args.max_connections,
        reuse_port=args.reuse_port,
        lease_ttl=args.lease_ttl,
        stream_port=args.stream_port,
    )
    await server.start(args.host, args.port, args.admin_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    print(
        json.dumps(
            {
                "url": server.url,
                "port": server.port,
                "admin_url": server.admin_url,
                "admin_port": server.admin_port,
                "admin_token_file": (
                    None if args.admin_token_file is None else str(args.admin_token_file)
                ),
                "udp_port": server.udp_port,
                "pid": os.getpid(),
                "db": redact_url(args.db) if is_database_url(args.db) else str(args.db),
                "log": None if log is None else str(log_path),
                "log_in_db": core.store.keeps_log,
                "ca": None if args.tls_files is None else str(args.tls_files.ca),
            }
        ),
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await server.stop()
    if server.errors:
        print(
            f"mbmssec serve: {len(server.errors)} internal error(s), first: {server.errors[0]}",
            file=sys.stderr,
        )
        return 1
    return 0


# -- bmsc-admin --------------------------------------------------------------------------


def _admin(args: argparse.Namespace) -> int:
    if args.url is not None:
        return _admin_http(args)
    with private_umask():
        return _admin_db(args)


def _admin_db(args: argparse.Namespace) -> int:
    if args.token_file is not None:
        raise UsageError("--token-file goes with --url (the admin listener)")
    if args.action == "add-subscriber":
        args.secrets_read = read_secrets(args.secrets)
    pg = is_database_url(args.db)
    if args.action == "export-log":
        return _export_log(args)
    profile = profile_from_args(args) if (args.profile or args.option) else None
    core = open_core(args.db, profile, BmscConfig())
    log: EventLog | None = None
    try:
        if args.action != "show" and not args.no_log and (args.log is not None or not pg):
            db = Path(args.db)
            log = EventLog(args.log or db.with_name(db.name + ".events.jsonl"))
        if args.action == "show":
            result: Any = core.state_view()
        else:
            # One transaction around the change and its events: they reach the log while
            # the change is not yet visible to the BM-SC (PostgreSQL: the log is in the
            # database, appended at the commit), so the log never shows the BM-SC acting
            # on a change before the change itself; a failed append rolls the change back.
            with core.store.transaction():
                now = time.time()
                events = _admin_change(core, args, now)
                if core.store.keeps_log and not args.no_log:
                    core.store.log_events(events)
                if log is not None:
                    log.emit_all(events)
            result = [e.to_json() for e in events]
    except BmscError as exc:
        raise UsageError(exc.message) from None
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    finally:
        if log is not None:
            log.close()
        core.store.close()
    print(json.dumps(result, indent=2))
    return 0


def _export_log(args: argparse.Namespace) -> int:
    """``bmsc-admin --db URL export-log``: the database's event log as JSON lines."""
    if not is_database_url(args.db):
        raise UsageError(
            "export-log reads a PostgreSQL database's log; a SQLite BM-SC's log is its "
            "file (DB.events.jsonl)"
        )
    store = open_store(args.db)
    assert isinstance(store, PgStore)
    out: Any = sys.stdout
    try:
        if args.out is not None:
            out = open(args.out, "w", encoding="utf-8")  # noqa: SIM115 (closed below)
        count = 0
        for _seq, line in store.export_events(after=args.after):
            out.write(line + "\n")
            count += 1
        out.flush()
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot write {args.out}: {exc.strerror}") from None
    finally:
        if out is not sys.stdout:
            out.close()
        store.close()
    if args.out is not None:
        print(json.dumps({"events": count, "out": str(args.out)}))
    return 0


def _admin_change(core: BmscCore, args: argparse.Namespace, now: float) -> list[Event]:
    """Make one change through the core; its events, marked as ``bmsc-admin``'s."""
    if args.action == "add-subscriber":
        k, opc = args.secrets_read
        events = core.add_subscriber(args.ue, k, opc, args.sqn, now)
    elif args.action == "add-service":
        events = core.add_service(args.service, now, args.period)
    elif args.action == "subscribe":
        events = core.subscribe(args.ue, args.service, now)
    else:
        events = core.revoke(args.ue, args.service, now)
    return [dataclasses.replace(e, extra={**e.extra, "source": ADMIN}) for e in events]


def _admin_http(args: argparse.Namespace) -> int:
    base = args.url.rstrip("/")
    host = urllib.parse.urlparse(base).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise UsageError("--url must point at a BM-SC on loopback")
    if args.token_file is None:
        raise UsageError("--url needs --token-file (the admin_token_file serve printed)")
    if args.log is not None or args.no_log:
        raise UsageError("--log and --no-log go with --db: the BM-SC logs what --url changes")
    try:
        token = read_admin_token(args.token_file)
    except ServerError as exc:
        raise UsageError(str(exc)) from None
    path, body = "/admin/state", None
    if args.action == "add-subscriber":
        k, opc = read_secrets(args.secrets)
        path, body = (
            "/admin/subscribers",
            {"ue": args.ue, "k": k.hex(), "opc": opc.hex(), "sqn": args.sqn},
        )
    elif args.action == "add-service":
        path, body = "/admin/services", {"service": args.service, "period": args.period}
    elif args.action in ("subscribe", "revoke"):
        path, body = f"/admin/{args.action}", {"ue": args.ue, "service": args.service}
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        base + path,
        data=data,
        method="POST" if data else "GET",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    context = None
    if base.startswith("https:"):
        if args.ca is None:
            raise UsageError("an https --url needs --ca (the CA file serve printed)")
        try:
            context = client_context(args.ca)
        except TlsError as exc:
            raise UsageError(str(exc)) from None
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            print(response.read().decode())
            return 0
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace")
        if exc.code == 404:
            text += "\n(is --url the admin_url serve printed, not its UE url?)"
        print(text, file=sys.stderr)
        return 2
    except urllib.error.URLError as exc:
        raise UsageError(f"cannot reach {base}: {exc.reason}") from None

"""The BM-SC service: HTTP registration and admin listeners, TEK schedule, SRTP fan-out.

This puts :class:`~mbmssec.impl.service.bmsc.BmscCore` on the network, on loopback only,
on two listeners.

The **UE listener** serves the UE API and nothing else:

* ``GET /mbms/register?ue=..&service=..&port=..[&reason=..]``: registration and
  re-registration with HTTP Digest AKA and the MIKEY TEK delivery in the ``200``
  response (``application/mikey``, with the address and port the stream comes from in
  ``MBMS-Stream-Source``), TS 33.246 6.2.2 steps 2-4 and 6.2.3.2;
* ``POST /mbms/mikey-response?ue=..&service=..``: the MIKEY response (step 4b).

The **admin listener** is a second loopback port, started only when the server is given
an admin token (:func:`ensure_admin_token` keeps it in a 0600 file next to the
database); every request must carry ``Authorization: Bearer <token>`` (else ``401``,
whatever the path): ``GET /admin/state``, ``POST /admin/subscribers``
``{"ue", "k", "opc", "sqn"}`` (hex keys), ``POST /admin/services`` ``{"service",
"period"}``, ``POST /admin/subscribe`` and ``POST /admin/revoke`` ``{"ue", "service"}``.
A port with a token rather than a Unix socket: the admin client keeps an ordinary
``http(s)://127.0.0.1:PORT`` URL (over the same TLS as the UE listener when there is
one), and no socket path has to fit the 108 octets of ``sun_path``.  Every change made
there is in the event log, like the BM-SC's own steps.

Besides, a ticker runs the TEK schedule (generation, activation) every ``tick``
seconds, and the data plane (step 7, 6.2.3.3) sends per service an RTP stream protected
with SRTP under the active TEK, its MKI in every packet (unless
``mki_in_srtp=optional``), as one UDP datagram to each registered UE's port on
127.0.0.1, which stands in for the multicast bearer.  Nothing is ever sent to a
multicast group or to an address other than 127.0.0.1.

Refusals are JSON ``{"status", "error", "message"}`` with the matching HTTP status;
aiohttp itself answers malformed HTTP with ``400`` and bodies above the configured limit
with ``413``.  JSON bodies are parsed within limits on size, depth and number length
(:func:`~mbmssec.impl.net.api.parse_json_object`, ``400`` beyond them).  A fault is a
generic ``500`` whose body carries only a correlation id, which the BM-SC's log (logger
``mbmssec.bmsc``) and a ``Rejected`` event repeat with the details.  Each listener holds
at most a set number of connections (``503`` beyond) and closes a connection that has
not sent a complete request head within :data:`IDLE_TIMEOUT` seconds of opening or of
its previous answer.  Every step is recorded in an
:class:`~mbmssec.impl.service.events.EventLog`, and the UE listener's HTTP exchanges and
the SRTP datagrams can be captured for a pcap file (:class:`TrafficCapture`; the admin
listener's, which carry keys and the token, never).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hmac
import logging
import math
import secrets
import ssl
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from mbmssec.errors import MbmssecError
from mbmssec.impl.net.api import (
    JSON_CONTENT_TYPE,
    MAX_JSON_BODY,
    STREAM_SOURCE_HEADER,
    HttpAnswer,
    answer,
    error_body,
    format_stream_source,
    parse_json_object,
    refusal_answer,
)
from mbmssec.impl.protocols.pcap import Packet, Proto, write_pcap
from mbmssec.impl.protocols.srtp import MasterKey, SrtpPolicy, SrtpSender
from mbmssec.impl.service.bmsc import (
    MAX_BODY,
    MKI_LENGTH,
    REGISTER_PATH,
    RESPONSE_PATH,
    BmscCore,
    BmscError,
    Outcome,
    Refusal,
    RegisterRequest,
    Result,
    parse_register_query,
)
from mbmssec.impl.service.events import BMSC, Event, EventLog
from mbmssec.impl.service.files import PrivateFileError, create_private, require_private
from mbmssec.impl.service.store import Store

__all__ = [
    "ADMIN_PATHS",
    "IDLE_TIMEOUT",
    "LEASE_POLL",
    "LOOPBACK",
    "LOOPBACK_HOSTS",
    "MAX_ADMIN_CONNECTIONS",
    "MAX_CONNECTIONS",
    "BmscServer",
    "GroupCommit",
    "ServerError",
    "TrafficCapture",
    "ensure_admin_token",
    "http_bytes_request",
    "http_bytes_response",
    "read_admin_token",
]

LOOPBACK: Final = "127.0.0.1"
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "::1", "localhost"})
_MAX_CLIENT_BODY: Final = 64 * 1024  # aiohttp answers 413 above this
_TARGET_REFRESH: Final = 0.1  # seconds between reads of the fan-out list
_TOKEN_OCTETS: Final = 32  # random octets of an admin token (256 bits)

IDLE_TIMEOUT: Final = 20.0
"""Seconds a connection may take to send a complete request head, from its start or
its previous answer (then it is closed), or a request body (then ``408``), or to finish
a TLS handshake.  Above the 15 s for which aiohttp clients keep an idle connection, so
a client never sends on a connection the BM-SC is closing."""

MAX_CONNECTIONS: Final = 1024
"""Connections the UE listener holds at once; one more is answered ``503`` and closed."""

MAX_ADMIN_CONNECTIONS: Final = 16
"""Connections the admin listener holds at once."""

LEASE_POLL: Final = 0.5
"""Seconds between a worker's tries to lead and the leader's renewals of its lease: a
leader that dies is replaced within this (plus the lease's time-to-live for one that
hangs, :data:`mbmssec.impl.service.pgstore.DEFAULT_LEASE_TTL`)."""

logger = logging.getLogger("mbmssec.bmsc")
_MIN_TOKEN: Final = 32  # characters an admin token has at least
_ADMIN_REALM: Final = "mbmssec-admin"

ADMIN_PATHS: Final = (
    "/admin/state",
    "/admin/subscribers",
    "/admin/services",
    "/admin/subscribe",
    "/admin/revoke",
)
"""The admin API's paths (on the admin listener only)."""


class ServerError(MbmssecError):
    """The BM-SC service cannot start or was misconfigured."""


def _check_token(token: str, where: str) -> str:
    if len(token) < _MIN_TOKEN or not token.isascii() or not token.isprintable() or " " in token:
        raise ServerError(
            f"{where}: an admin token is at least {_MIN_TOKEN} printable ASCII characters "
            "without spaces"
        )
    return token


def read_admin_token(path: str | Path) -> str:
    """The admin token kept in ``path``; the file must be its owner's only (0600)."""
    try:
        require_private(path, what="the BM-SC's admin token")
        text = Path(path).read_text(encoding="ascii").strip()
    except PrivateFileError as exc:
        raise ServerError(str(exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not ASCII text"
        raise ServerError(f"cannot read the admin token {path}: {reason}") from None
    return _check_token(text, str(path))


def ensure_admin_token(path: str | Path) -> str:
    """The admin token in ``path``, created at the first start (256 random bits, file
    mode 0600, never replaced); an existing file must be the owner's only."""
    try:
        create_private(path, (secrets.token_urlsafe(_TOKEN_OCTETS) + "\n").encode("ascii"))
    except FileExistsError:
        pass
    except OSError as exc:
        raise ServerError(f"cannot create the admin token {path}: {exc.strerror}") from None
    return read_admin_token(path)


def http_bytes_request(
    method: str, target: str, headers: list[tuple[str, str]], body: bytes
) -> bytes:
    """An HTTP/1.1 request as it goes on the wire (for the capture)."""
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    return head.encode("latin-1", "replace") + b"\r\n" + body


def http_bytes_response(
    status: int, reason: str, headers: list[tuple[str, str]], body: bytes
) -> bytes:
    """An HTTP/1.1 response as it goes on the wire (for the capture)."""
    names = {k.lower() for k, _ in headers}
    if "content-length" not in names:
        headers = [*headers, ("Content-Length", str(len(body)))]
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    return head.encode("latin-1", "replace") + b"\r\n" + body


def _packet_time(packet: Packet) -> float:
    return packet.timestamp


@dataclass
class TrafficCapture:
    """Collects HTTP exchanges (as TCP) and SRTP datagrams (as UDP) for a pcap file."""

    packets: list[Packet] = field(default_factory=list)
    limit: int = 200_000

    def add(
        self, t: float, src_port: int, dst_port: int, payload: bytes, proto: Proto = Proto.UDP
    ) -> None:
        """Record one payload (dropped once ``limit`` payloads are held)."""
        if len(self.packets) < self.limit:
            self.packets.append(Packet(t, src_port, dst_port, payload, proto))

    def write(self, path: str | Path) -> int:
        """Write the capture as a libpcap file; returns the number of payloads."""
        ordered: list[Packet] = sorted(self.packets, key=_packet_time)
        write_pcap(path, ordered)
        return len(self.packets)


@dataclass
class _Committed:
    """A batch committed, its fsync deferred: what waits for it to be durable."""

    seq: int
    needs_sync: bool
    events: list[Event]
    waiters: list[asyncio.Future[None]]


class GroupCommit:
    """Group commit for one store on one event loop: the writes of every request handled
    in one turn of the loop are one batch (one transaction, one fsync), and each request
    is answered only once its batch is durable (:meth:`durable`).

    The first write of a turn opens the batch (:meth:`Store.group_commits`) and schedules
    :meth:`flush` for the loop's next turn; events emitted meanwhile (:meth:`emit`) are
    buffered and written after the commit in one append to the event log file (and,
    where the store keeps the log, into the database inside the same transaction), so
    the log follows commit order.  Work that must see only committed state (the SRTP
    streamer: a packet never goes out under an activation or a reserved index that is
    not yet durable) runs through :meth:`when_durable`, right after a commit.

    Where the store makes a commit durable by a step of its own (:attr:`Store.defers_sync`:
    SQLite's fsync of the WAL), that step runs in a thread of its own while the loop goes
    on serving: the loop commits a batch, a sync begun after that commit makes it durable,
    and only then are its events logged and its requests answered, batch after batch in
    commit order (a batch that needs no fsync still waits for every batch before it).  A
    sync covers every batch committed before it began, so the batches committed while one
    runs share the next.  Work queued with :meth:`when_durable` makes its flush commit and
    sync in the loop itself, so that it runs when no batch is open and everything
    committed is durable."""

    def __init__(self, store: Store, log: EventLog | None) -> None:
        self.store = store
        self.log = log
        self._events: list[Event] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._after: list[Callable[[], None]] = []
        self._scheduled = False
        self._flushing = False
        self.batches = 0
        """Batches committed."""
        self.synced = 0
        """Batches committed with an fsync."""
        self._loop = asyncio.get_running_loop()
        self._committed: deque[_Committed] = deque()
        """Batches committed whose fsync is deferred, not yet answered, in commit order."""
        self._seq = 0  # batches committed with a deferred fsync
        self._durable = 0  # every one of them up to this one is durable
        self._syncing: concurrent.futures.Future[None] | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._closed = False
        store.group_commits(self._schedule)

    def close(self) -> None:
        """Wait for a sync under way, flush what is pending and turn group commit off."""
        if self._syncing is not None:
            with contextlib.suppress(MbmssecError):
                self._syncing.result()
        self._closed = True
        self._flush(defer=False)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self.store.group_commits(None)

    def _schedule(self) -> None:
        if not self._scheduled and not self._flushing:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def emit(self, events: tuple[Event, ...] | list[Event]) -> None:
        """Log ``events`` with the current batch (after its commit)."""
        if events:
            self._events.extend(events)
            self._schedule()

    async def durable(self) -> None:
        """Return once everything written or emitted so far is committed, durable and
        logged; raises the :class:`~mbmssec.errors.MbmssecError` that failed the batch."""
        if not self._scheduled and not self._committed:
            return
        waiter = self._loop.create_future()
        if self._scheduled:
            self._waiters.append(waiter)
        else:
            self._committed[-1].waiters.append(waiter)
        await waiter

    def when_durable(self, action: Callable[[], None]) -> None:
        """Run ``action`` at once if no batch is open and every committed one is durable,
        else right after the next commit, made durable in the loop (before any new batch
        can open); it must not write to the store."""
        if not self.store.in_batch and not self._committed:
            action()
        else:
            self._after.append(action)
            self._schedule()

    def flush(self) -> None:
        """Commit the open batch, log its events, wake its waiters (where the store
        defers its fsync and no work waits on :meth:`when_durable`: once a sync in
        another thread made the batch durable)."""
        self._flush(defer=not self._closed and self.store.defers_sync)

    def _flush(self, *, defer: bool) -> None:
        self._flushing = True
        events, self._events = self._events, []
        waiters, self._waiters = self._waiters, []
        after, self._after = self._after, []
        defer = defer and not after
        error: MbmssecError | None = None
        try:
            if events and self.store.keeps_log:
                self.store.log_at_commit(events)
            if self.store.in_batch:
                if defer:
                    needs_sync = self.store.commit_batch(defer_sync=True)
                    self.batches += 1
                    self._seq += 1
                    self._committed.append(_Committed(self._seq, needs_sync, events, waiters))
                    events, waiters = [], []
                else:
                    synced = self.store.commit_batch()
                    self.batches += 1
                    self.synced += synced
                    self._settle_in_loop(synced)
            elif self._committed and not defer:
                self._settle_in_loop(False)
            if self._committed and (events or waiters):
                # nothing of its own to commit, but answered after the batches before it
                self._committed.append(_Committed(self._seq, False, events, waiters))
                events, waiters = [], []
            if self.log is not None and events:
                self.log.emit_all(events)
        except MbmssecError as exc:
            error = exc
        finally:
            self._flushing = False
            self._scheduled = False
        self._release()
        for action in after:
            action()
        for waiter in waiters:
            if not waiter.done():
                if error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(error)

    def _settle_in_loop(self, synced: bool) -> None:
        """Make every batch committed with a deferred fsync durable here, in the loop
        (``synced``: a sync has just covered them), so that they are answered now."""
        if not self._committed:
            return
        unsynced = sum(1 for c in self._committed if c.needs_sync and c.seq > self._durable)
        if unsynced and not synced:
            self.store.sync()
        self.synced += unsynced
        self._durable = self._seq

    def _release(self) -> None:
        """Log and answer, in commit order, the committed batches that are durable (or
        need no fsync and follow only durable ones); start a sync for the rest."""
        while self._committed:
            batch = self._committed[0]
            if batch.needs_sync and batch.seq > self._durable:
                break
            self._committed.popleft()
            error: MbmssecError | None = None
            if self.log is not None and batch.events:
                try:
                    self.log.emit_all(batch.events)
                except MbmssecError as exc:
                    error = exc
            _wake(batch.waiters, error)
        if self._committed and self._syncing is None and not self._closed:
            self._start_sync()

    def _start_sync(self) -> None:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="mbmssec-sync"
            )
        target = self._seq
        syncing = self._syncing = self._executor.submit(self.store.sync)

        def done(_: object) -> None:
            self._loop.call_soon_threadsafe(self._synced, syncing, target)

        syncing.add_done_callback(done)

    def _synced(self, syncing: concurrent.futures.Future[None], target: int) -> None:
        """In the loop: a sync begun after batch ``target`` was committed returned."""
        if self._syncing is syncing:
            self._syncing = None
        try:
            syncing.result()
        except MbmssecError as exc:
            # Nothing of these batches may be answered as done (they may not be on
            # disk): their requests get the error, their events are not logged.
            while self._committed and self._committed[0].seq <= target:
                _wake(self._committed.popleft().waiters, exc)
        else:
            self.synced += sum(
                1 for c in self._committed if c.needs_sync and self._durable < c.seq <= target
            )
            self._durable = max(self._durable, target)
        self._release()


def _wake(waiters: list[asyncio.Future[None]], error: MbmssecError | None) -> None:
    for waiter in waiters:
        if not waiter.done():
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)


@dataclass
class _Stream:
    ssrc: int
    sender: SrtpSender
    index: int
    reserved: int
    mki: int | None = None
    targets: list[tuple[str, int]] = field(default_factory=list)
    targets_at: float = -math.inf
    sent: int = 0


class _ParserErrors(logging.Filter):
    """Turns aiohttp's reports of malformed HTTP (answered ``400`` before any handler
    runs) into one-line log records and ``Rejected`` events, without tracebacks."""

    _instance: _ParserErrors | None = None

    def __init__(self) -> None:
        super().__init__()
        self.servers: list[BmscServer] = []

    @classmethod
    def install(cls, server: BmscServer) -> None:
        if cls._instance is None:
            cls._instance = cls()
            logging.getLogger("aiohttp.server").addFilter(cls._instance)
        cls._instance.servers.append(server)

    @classmethod
    def uninstall(cls, server: BmscServer) -> None:
        if cls._instance is not None and server in cls._instance.servers:
            cls._instance.servers.remove(server)

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            return True
        message = " ".join(str(exc).split())[:300]
        record.msg = f"{record.getMessage()}: {type(exc).__name__}: {message}"
        record.args = ()
        record.exc_info = None
        status = int(getattr(exc, "code", 400) or 400)
        for server in self.servers:
            server.statuses[status] = server.statuses.get(status, 0) + 1
            server._emit(
                [
                    Event(
                        "Rejected",
                        server.clock(),
                        ok=False,
                        reason="malformed_http",
                        extra={"source": BMSC, "status": status, "message": message},
                    )
                ]
            )
        return True


def _busy_answer() -> bytes:
    body = error_body(
        503,
        "too_many_connections",
        "the BM-SC holds as many connections as it serves at once; try again shortly",
    )
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        f"Content-Type: {JSON_CONTENT_TYPE}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Retry-After: 1\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class _Listener:
    """One aiohttp application on one loopback TCP port, holding at most ``cap``
    connections at once.

    A connection beyond the cap is answered ``503`` (``Retry-After: 1``) and closed at
    once, before any of its bytes are read.  A connection that has not sent a complete
    request head within ``idle_timeout`` seconds of opening, or of its previous answer,
    is closed (aiohttp's keep-alive timer, which runs from the connection's start and
    closes it while no request is being handled); so is a TLS handshake not finished in
    that time.  Only public aiohttp interfaces are used: the runner's ``Server`` is the
    protocol factory, wrapped by :class:`_Counted`.
    """

    def __init__(
        self,
        app: web.Application,
        *,
        cap: int,
        idle_timeout: float,
        ssl_context: ssl.SSLContext | None,
        reuse_port: bool = False,
    ) -> None:
        self.reuse_port = reuse_port
        self.app = app
        self.cap = cap
        self.idle_timeout = idle_timeout
        self.ssl_context = ssl_context
        self.active = 0
        self.refused = 0
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        self._runner = web.AppRunner(self.app, access_log=None, keepalive_timeout=self.idle_timeout)
        await self._runner.setup()
        handlers = self._runner.server
        assert handlers is not None
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: _Counted(self, handlers()),
                host,
                port,
                reuse_address=True,
                reuse_port=self.reuse_port or None,
                ssl=self.ssl_context,
                ssl_handshake_timeout=self.idle_timeout if self.ssl_context else None,
                backlog=min(self.cap, 1024),
            )
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise ServerError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._runner is not None:
            await self._runner.cleanup()  # closes the connections
            self._runner = None


class _Counted(asyncio.Protocol):
    """An aiohttp request handler, counted against its listener's cap (the count is
    taken when the connection is made, so a burst of accepts cannot overshoot it)."""

    def __init__(self, listener: _Listener, inner: asyncio.Protocol) -> None:
        self.listener = listener
        self.inner = inner
        self.counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        listener = self.listener
        if listener.active >= listener.cap:
            listener.refused += 1
            if isinstance(transport, asyncio.WriteTransport):
                transport.write(_busy_answer())
            transport.close()
            return
        listener.active += 1
        self.counted = True
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.counted:
            self.counted = False
            self.listener.active -= 1
            self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.counted:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.counted else None

    def pause_writing(self) -> None:
        if self.counted:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.counted:
            self.inner.resume_writing()


class BmscServer:
    """The BM-SC on 127.0.0.1: HTTP app, schedule ticker and SRTP streamer.

    ``core`` holds the logic and state; ``log`` receives every event; ``capture``
    collects traffic for a pcap; ``stream`` turns the data plane on; ``packet_rate`` is
    SRTP packets per second per service; ``clock`` gives Unix seconds.
    ``record_arrivals`` keeps the arrival time of every registration request (for the
    benchmark's request-rate figures).  ``ssl_context`` makes it answer over HTTPS
    (:mod:`mbmssec.impl.net.tls`); it is required with ``tek_protection=tls``.
    ``admin_token`` turns the admin listener on (see the module docstring); without
    one there is no admin API at all.  ``idle_timeout``: seconds a connection may take
    to send a complete request head (from its start or its previous answer) or a body,
    and a TLS handshake; ``max_connections`` / ``max_admin_connections``: connections
    each listener holds at once (more are answered ``503`` and closed).
    ``stream_port``: the UDP port the SRTP stream is sent from, which every delivery
    announces to the UE as the stream's only source; ``None``: with ``reuse_port`` the UE
    listener's port number, shared (SO_REUSEPORT) by every worker on it, so that the
    stream keeps its source whichever worker leads; else any free port.  Workers behind a
    load balancer on ports of their own must be given one ``stream_port``.
    """

    def __init__(
        self,
        core: BmscCore,
        *,
        log: EventLog | None = None,
        capture: TrafficCapture | None = None,
        stream: bool = True,
        packet_rate: float = 50.0,
        tick: float = 0.02,
        payload_size: int = 120,
        clock: Callable[[], float] = time.time,
        log_sends: bool = True,
        record_arrivals: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        admin_token: str | None = None,
        idle_timeout: float = IDLE_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        max_admin_connections: int = MAX_ADMIN_CONNECTIONS,
        reuse_port: bool = False,
        lease_poll: float = LEASE_POLL,
        lease_ttl: float | None = None,
        stream_port: int | None = None,
    ) -> None:
        if stream_port is not None and not 1 <= stream_port <= 65535:
            raise ServerError("stream_port must be a UDP port 1 .. 65535")
        self.stream_port = stream_port
        if admin_token is not None:
            _check_token(admin_token, "admin_token")
        if not (0 < idle_timeout <= 3600 and max_connections >= 1 and max_admin_connections >= 1):
            raise ServerError(
                "idle_timeout must be 0..3600 seconds, and connection caps at least 1"
            )
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.max_admin_connections = max_admin_connections
        if not (0 < packet_rate <= 10_000 and 0 < tick <= 10 and 12 <= payload_size <= 1400):
            raise ServerError("packet_rate, tick or payload_size out of range")
        if core.profile["tek_protection"] == "tls" and ssl_context is None:
            raise ServerError(
                "tek_protection=tls sends TEKs without MIKEY encryption: the BM-SC must "
                "answer over HTTPS (give it a TLS context, mbmssec.impl.net.tls)"
            )
        self.ssl_context = ssl_context
        self.core = core
        self.log = log
        self.capture = capture
        self.stream = stream
        self.packet_rate = packet_rate
        self.tick = tick
        self.payload_size = payload_size
        self.clock = clock
        self.log_sends = log_sends
        self.arrivals: list[float] | None = [] if record_arrivals else None
        self._admin_token = admin_token.encode("ascii") if admin_token is not None else None
        self.port = 0
        self.udp_port = 0
        self.url = ""
        self.admin_port = 0
        self.admin_url = ""
        self._listener: _Listener | None = None
        self._admin_listener: _Listener | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._streams: dict[str, _Stream] = {}
        self.statuses: dict[int, int] = {}
        self.errors: list[str] = []
        self.reuse_port = reuse_port
        self.lease_poll = lease_poll
        self.lease_ttl = lease_ttl
        self._commits: GroupCommit | None = None
        self._schedule_tasks: list[asyncio.Task[None]] = []
        self.leader_since: float | None = None
        """When this process last became the one running the schedule (None: it does
        not)."""

    # -- lifecycle ------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """The UE listener's application (routes and middlewares), without starting it:
        the UE API only."""
        middlewares = [self._errors_middleware]
        if self.capture is not None:  # a layer per request only where it records
            middlewares.append(self._capture_middleware)
        app = web.Application(client_max_size=_MAX_CLIENT_BODY, middlewares=middlewares)
        app.router.add_get(REGISTER_PATH, self._register)
        app.router.add_post(RESPONSE_PATH, self._mikey_response)
        return app

    def make_admin_app(self) -> web.Application:
        """The admin listener's application: every request needs the bearer token."""
        app = web.Application(
            client_max_size=_MAX_CLIENT_BODY,
            middlewares=[self._errors_middleware, self._admin_auth_middleware],
        )
        app.router.add_get("/admin/state", self._admin_state)
        app.router.add_post("/admin/subscribers", self._admin_subscriber)
        app.router.add_post("/admin/services", self._admin_service)
        app.router.add_post("/admin/subscribe", self._admin_subscribe)
        app.router.add_post("/admin/revoke", self._admin_revoke)
        return app

    async def _listen(
        self, app: web.Application, host: str, port: int, cap: int, reuse_port: bool = False
    ) -> tuple[_Listener, int]:
        listener = _Listener(
            app,
            cap=cap,
            idle_timeout=self.idle_timeout,
            ssl_context=self.ssl_context,
            reuse_port=reuse_port,
        )
        return listener, await listener.start(host, port)

    @property
    def connections(self) -> int:
        """Connections the UE listener holds now."""
        return self._listener.active if self._listener is not None else 0

    @property
    def refused_connections(self) -> int:
        """Connections answered ``503`` because a listener held its cap."""
        return sum(x.refused for x in (self._listener, self._admin_listener) if x is not None)

    def _url(self, host: str, port: int) -> str:
        shown = f"[{host}]" if ":" in host else host
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{shown}:{port}"

    async def start(self, host: str = LOOPBACK, port: int = 0, admin_port: int = 0) -> str:
        """Listen on ``host:port`` (loopback only), and on ``host:admin_port`` for the
        admin API when there is an admin token; start ticker and streamer."""
        if host not in LOOPBACK_HOSTS:
            raise ServerError(f"the BM-SC listens on loopback only, not {host!r}")
        _ParserErrors.install(self)
        self._commits = GroupCommit(self.core.store, self.log)
        self._listener, self.port = await self._listen(
            self.make_app(), host, port, self.max_connections, self.reuse_port
        )
        self.url = self._url(host, self.port)
        if self._admin_token is not None:
            try:
                self._admin_listener, self.admin_port = await self._listen(
                    self.make_admin_app(), host, admin_port, self.max_admin_connections
                )
            except ServerError:
                await self._listener.stop()
                self._listener = None
                raise
            self.admin_url = self._url(host, self.admin_port)
        loop = asyncio.get_running_loop()
        shared = self.reuse_port or self.stream_port is not None
        udp_port = self.stream_port or (self.port if self.reuse_port else 0)
        try:
            transport, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol,
                local_addr=(LOOPBACK, udp_port),
                reuse_port=shared or None,
            )
        except OSError as exc:
            for listener in (self._admin_listener, self._listener):
                if listener is not None:
                    await listener.stop()
            self._listener = self._admin_listener = None
            raise ServerError(
                f"cannot send the stream from {LOOPBACK}:{udp_port}: {exc.strerror}"
            ) from None
        self._udp = transport
        self.udp_port = int(transport.get_extra_info("sockname")[1])
        # The Start event declares what a trace checker needs to judge the log: the
        # profile the BM-SC runs and how long it waits past a UE's fetch time before
        # activating without that UE (BmscConfig.fetch_grace).
        start = {
            "source": BMSC,
            "url": self.url,
            "admin_url": self.admin_url or None,
            "profile": dict(self.core.profile),
            "fetch_grace": self.core.config.fetch_grace,
        }
        self._emit([Event("Start", self.clock(), reason="bmsc", extra=start)])
        await self._durable()
        self._try_lead()
        self._tasks.append(asyncio.create_task(self._leadership()))
        return self.url

    async def stop(self) -> None:
        """Stop the tasks, close the sockets and the HTTP site, give the leadership up."""
        await self._follow()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        for listener in (self._admin_listener, self._listener):
            if listener is not None:
                await listener.stop()
        self._listener = self._admin_listener = None
        _ParserErrors.uninstall(self)
        self._emit([Event("Stop", self.clock(), reason="bmsc", extra={"source": BMSC})])
        if self._commits is not None:
            self._commits.close()
            self._commits = None
        self.core.store.resign()

    def _emit(self, events: tuple[Event, ...] | list[Event]) -> None:
        """Log events: with the current batch while the server runs (after its commit),
        else at once."""
        if self._commits is not None:
            self._commits.emit(events)
        elif self.log is not None:
            self.log.emit_all(events)

    async def _durable(self) -> None:
        """Wait until every write and event so far is committed and logged."""
        if self._commits is not None:
            await self._commits.durable()

    async def _answer_durable(self, reply: Outcome | HttpAnswer) -> web.Response:
        """The answer to a request, once what it wrote is durable; ``503`` if the batch
        failed to commit (nothing of it happened: the client may retry)."""
        try:
            await self._durable()
        except MbmssecError as exc:
            logger.warning("a batch failed to commit: %s", exc)
            self.errors.append(f"commit: {exc}")
            reply = refusal_answer(
                BmscError(
                    Refusal.UNAVAILABLE,
                    "store_unavailable",
                    "the BM-SC could not commit the request's state; try again shortly",
                )
            )
        return self._respond(reply)

    # -- leadership: the one process that runs the schedule and the stream --------------

    def _try_lead(self) -> None:
        store = self.core.store
        ttl = self.lease_ttl
        leads = store.leads() or (store.try_lead() if ttl is None else store.try_lead(ttl))
        if leads and not self._schedule_tasks:
            self.leader_since = self.clock()
            self._emit(self.core.tick(self.clock()))
            self._schedule_tasks.append(asyncio.create_task(self._ticker()))
            if self.stream:
                self._schedule_tasks.append(asyncio.create_task(self._streamer()))

    async def _follow(self) -> None:
        """Stop running the schedule and the stream (the leadership was lost or given
        up): a later leader reserves a new block of SRTP indices."""
        tasks, self._schedule_tasks = self._schedule_tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._streams.clear()
        self.leader_since = None

    async def _leadership(self) -> None:
        """Every :attr:`lease_poll` seconds: the leader renews its lease, a follower
        tries to lead (both right after a commit, outside any batch)."""
        store = self.core.store
        while True:
            await asyncio.sleep(self.lease_poll)
            try:
                await self._durable()
                if self._schedule_tasks and not store.renew_lease():
                    logger.warning("the leadership was lost; following")
                    await self._follow()
                if not self._schedule_tasks:
                    await self._durable()
                    self._try_lead()
            except MbmssecError as exc:
                self.errors.append(f"lead: {exc}")
                if self._schedule_tasks and not store.leads():
                    await self._follow()

    # -- middlewares ------------------------------------------------------------------------

    @web.middleware
    async def _errors_middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            # Keep aiohttp's status (404, 405, 413, ...) but answer in the JSON format.
            message = exc.text or exc.reason
            if exc.status == 413:
                message = f"request body too large (limit {_MAX_CLIENT_BODY} octets)"
            code = exc.reason.lower().replace(" ", "_")
            response = web.Response(
                status=exc.status,
                body=error_body(exc.status, code, message),
                content_type=JSON_CONTENT_TYPE,
            )
            for name in ("Allow",):
                if name in exc.headers:
                    response.headers[name] = exc.headers[name]
        except Exception as exc:  # a fault must not take the service down
            response = self._internal_error(request, exc)
        self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
        return response

    def _internal_error(self, request: web.Request, exc: Exception) -> web.Response:
        """A generic ``500``: the answer carries a correlation id and nothing of the
        fault; the fault and its traceback go to the BM-SC's log (``mbmssec.bmsc``
        logger, stderr of ``serve``) under that id, and a ``Rejected`` event names it."""
        ref = secrets.token_hex(8)
        logger.error(
            "internal error %s answering %s %s", ref, request.method, request.path, exc_info=exc
        )
        self.errors.append(f"{ref} {request.path}: {type(exc).__name__}: {exc}")
        event = Event(
            "Rejected",
            self.clock(),
            ok=False,
            reason="internal_error",
            extra={"source": BMSC, "status": 500, "correlation_id": ref},
        )
        with contextlib.suppress(MbmssecError):
            self._emit([event])
        response = web.Response(
            status=500,
            body=error_body(
                500,
                "internal",
                f"internal error; reference {ref} (the BM-SC's log has the details)",
            ),
            content_type=JSON_CONTENT_TYPE,
        )
        response.headers["X-Correlation-Id"] = ref
        return response

    async def _body(self, request: web.Request) -> bytes:
        """The request body, if it arrives within the idle timeout (else ``408``)."""
        try:
            async with asyncio.timeout(self.idle_timeout):
                return await request.read()
        except TimeoutError:
            raise web.HTTPRequestTimeout(
                text=f"request body not received within {self.idle_timeout:g} s"
            ) from None

    @web.middleware
    async def _admin_auth_middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        given = request.headers.getall("Authorization", [])
        scheme, _, token = given[0].partition(" ") if len(given) == 1 else ("", "", "")
        expected = self._admin_token
        if (
            expected is not None
            and scheme.lower() == "bearer"
            and hmac.compare_digest(token.strip().encode("utf-8", "replace"), expected)
        ):
            return await handler(request)
        reason = "admin_token_missing" if not given else "admin_token_wrong"
        self._emit(
            [
                Event(
                    "Rejected",
                    self.clock(),
                    ok=False,
                    reason=reason,
                    extra={"source": BMSC, "status": 401, "path": request.path[:100]},
                )
            ]
        )
        response = web.Response(
            status=401,
            body=error_body(
                401,
                "unauthorized",
                "the admin API needs 'Authorization: Bearer <token>' with the BM-SC's admin "
                "token (the file serve names as admin_token_file)",
            ),
            content_type=JSON_CONTENT_TYPE,
        )
        response.headers["WWW-Authenticate"] = f'Bearer realm="{_ADMIN_REALM}"'
        return response

    @web.middleware
    async def _capture_middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        if self.capture is None:
            return await handler(request)
        t = self.clock()
        body = b""
        with contextlib.suppress(web.HTTPException):
            body = await self._body(request)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        client_port = int(peer[1]) if peer else 0
        self.capture.add(
            t,
            client_port,
            self.port,
            http_bytes_request(
                request.method, request.raw_path, list(request.headers.items()), body
            ),
            Proto.TCP,
        )
        response = await handler(request)
        if isinstance(response, web.Response):
            out = response.body if isinstance(response.body, bytes) else b""
            headers = list(response.headers.items())
            if response.content_type and "Content-Type" not in response.headers:
                headers.append(("Content-Type", response.content_type))
            self.capture.add(
                self.clock(),
                self.port,
                client_port,
                http_bytes_response(response.status, response.reason, headers, out),
                Proto.TCP,
            )
        return response

    # -- handlers ---------------------------------------------------------------------------

    @staticmethod
    def _respond(reply: Outcome | HttpAnswer) -> web.Response:
        http = answer(reply) if isinstance(reply, Outcome) else reply
        response = web.Response(
            status=http.status,
            body=http.body,
            content_type=http.content_type if http.body else None,
        )
        for name, value in http.headers:
            response.headers[name] = value
        return response

    def _query(self, request: web.Request) -> dict[str, str]:
        query: dict[str, str] = {}
        for name, value in request.query.items():
            if name in query:
                raise BmscError(
                    Refusal.MALFORMED, "bad_parameter", f"query parameter {name!r} repeated"
                )
            query[name] = value
        return query

    async def _register(self, request: web.Request) -> web.Response:
        now = self.clock()
        if self.arrivals is not None:
            self.arrivals.append(now)
        try:
            ue, service, port, trigger = parse_register_query(self._query(request))
            auths = request.headers.getall("Authorization", [])
            if len(auths) > 1:
                raise BmscError(
                    Refusal.MALFORMED, "bad_authorization", "more than one Authorization header"
                )
        except BmscError as exc:
            event = Event(
                "Rejected",
                now,
                ok=False,
                reason=exc.code,
                extra={"source": BMSC, "refusal": exc.refusal.value, "message": exc.message},
            )
            self._emit([event])
            return self._respond(refusal_answer(exc))
        req = RegisterRequest(
            ue,
            service,
            port,
            trigger,
            auths[0] if auths else None,
            request.method,
            request.raw_path,
        )
        reply = self.core.register(req, now)
        self._emit(reply.events)
        response = await self._answer_durable(reply)
        if reply.result is Result.DELIVERED and response.status == 200:
            # the UE's source filter for the stream
            response.headers[STREAM_SOURCE_HEADER] = format_stream_source(LOOPBACK, self.udp_port)
        return response

    async def _mikey_response(self, request: web.Request) -> web.Response:
        now = self.clock()
        try:
            query = self._query(request)
            unknown = sorted(set(query) - {"ue", "service"})
            if unknown:
                raise BmscError(
                    Refusal.MALFORMED,
                    "bad_parameter",
                    f"unknown query parameter(s): {', '.join(unknown)}",
                )
            if "ue" not in query or "service" not in query:
                raise BmscError(
                    Refusal.MALFORMED,
                    "missing_parameter",
                    "query parameters 'ue' and 'service' are required",
                )
            if request.content_length is not None and request.content_length > MAX_BODY:
                raise BmscError(
                    Refusal.TOO_LARGE, "too_large", f"a MIKEY response is at most {MAX_BODY} octets"
                )
        except BmscError as exc:
            self._emit(
                [
                    Event(
                        "Rejected",
                        now,
                        ok=False,
                        reason=exc.code,
                        extra={
                            "source": BMSC,
                            "refusal": exc.refusal.value,
                            "message": exc.message,
                        },
                    )
                ]
            )
            return self._respond(refusal_answer(exc))
        body = await self._body(request)
        now = self.clock()  # after the body: events logged meanwhile are not later than it
        reply = self.core.mikey_response(query["ue"], query["service"], body, now)
        self._emit(reply.events)
        return await self._answer_durable(reply)

    # -- admin --------------------------------------------------------------------------------

    async def _admin_json(self, request: web.Request) -> dict[str, Any]:
        """The request's JSON object, within the limits of :func:`parse_json_object`."""
        too_large = BmscError(
            Refusal.MALFORMED,
            "json_too_large",
            f"a JSON body is at most {MAX_JSON_BODY} octets",
        )
        if request.content_length is not None and request.content_length > MAX_JSON_BODY:
            raise too_large
        try:
            raw = await self._body(request)
        except web.HTTPRequestEntityTooLarge:
            raise too_large from None
        return parse_json_object(raw)

    async def _admin(
        self, request: web.Request, action: Callable[[dict[str, Any], float], list[Event]]
    ) -> web.Response:
        try:
            data = await self._admin_json(request)
            # The time of the change is taken once the body is in: while it was read the
            # ticker may have logged later events, and the log's times never go back.
            events = action(data, self.clock())
        except BmscError as exc:
            return self._respond(refusal_answer(exc))
        self._emit(events)
        try:
            await self._durable()
        except MbmssecError as exc:
            self.errors.append(f"commit: {exc}")
            return self._respond(
                refusal_answer(
                    BmscError(Refusal.UNAVAILABLE, "store_unavailable", "commit failed: try again")
                )
            )
        return web.json_response(
            {"status": 200, "ok": True, "events": [e.to_json() for e in events]}
        )

    async def _admin_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.core.state_view())

    @staticmethod
    def _field(data: dict[str, Any], name: str) -> str:
        value = data.get(name)
        if not isinstance(value, str):
            raise BmscError(
                Refusal.MALFORMED, "missing_field", f"field {name!r} (a string) is required"
            )
        return value

    @staticmethod
    def _hex16(data: dict[str, Any], name: str) -> bytes:
        value = BmscServer._field(data, name)
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raise BmscError(Refusal.MALFORMED, "bad_key", f"field {name!r} must be hex") from None
        if len(raw) != 16:
            raise BmscError(
                Refusal.MALFORMED, "bad_key", f"field {name!r} must be 16 octets (32 hex digits)"
            )
        return raw

    async def _admin_subscriber(self, request: web.Request) -> web.Response:
        def act(data: dict[str, Any], now: float) -> list[Event]:
            sqn = data.get("sqn", 0)
            if isinstance(sqn, bool) or not isinstance(sqn, int):
                raise BmscError(Refusal.MALFORMED, "bad_sqn", "field 'sqn' must be an integer")
            return self.core.add_subscriber(
                self._field(data, "ue"),
                self._hex16(data, "k"),
                self._hex16(data, "opc"),
                sqn,
                now,
            )

        return await self._admin(request, act)

    async def _admin_service(self, request: web.Request) -> web.Response:
        def act(data: dict[str, Any], now: float) -> list[Event]:
            period = data.get("period")
            if period is not None and (
                isinstance(period, bool) or not isinstance(period, int | float)
            ):
                raise BmscError(Refusal.MALFORMED, "bad_period", "field 'period' must be a number")
            return self.core.add_service(
                self._field(data, "service"), now, None if period is None else float(period)
            )

        return await self._admin(request, act)

    async def _admin_subscribe(self, request: web.Request) -> web.Response:
        return await self._admin(
            request,
            lambda d, now: self.core.subscribe(
                self._field(d, "ue"), self._field(d, "service"), now
            ),
        )

    async def _admin_revoke(self, request: web.Request) -> web.Response:
        return await self._admin(
            request,
            lambda d, now: self.core.revoke(self._field(d, "ue"), self._field(d, "service"), now),
        )

    # -- schedule -------------------------------------------------------------------------------

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            try:
                self._emit(self.core.tick(self.clock()))
                await self._durable()
            except MbmssecError as exc:  # e.g. the database is busy: try again next tick
                self.errors.append(f"tick: {exc}")

    # -- data plane (step 7) ------------------------------------------------------------------

    async def _streamer(self) -> None:
        loop = asyncio.get_running_loop()
        interval = 1.0 / self.packet_rate
        due = loop.time()
        while True:
            try:
                services = [svc.service for svc in self.core.store.services()]
                for service in services:
                    self._reserve(service)
                # Packets go out only under committed state: the active TEK and the
                # reserved indices they use are durable before the first one is sent.
                sent = loop.create_future()

                def send_all(services: list[str] = services, sent: Any = sent) -> None:
                    try:
                        now = self.clock()
                        out = [self._send_one(service, now) for service in services]
                        self._transmit([x for x in out if x is not None], now)
                    except MbmssecError as exc:
                        self.errors.append(f"stream: {exc}")
                    sent.set_result(None)

                if self._commits is not None:
                    await self._commits.durable()
                    self._commits.when_durable(send_all)
                else:
                    send_all()
                await sent
            except MbmssecError as exc:
                self.errors.append(f"stream: {exc}")
            due += interval
            delay = due - loop.time()
            if delay < -1.0:  # far behind (a busy loop): do not send a burst to catch up
                due = loop.time()
                delay = 0.0
            await asyncio.sleep(max(0.0, delay))

    def _open_stream(self, service: str) -> _Stream:
        ssrc, start = self.core.stream_start(service)
        with_mki = self.core.profile["mki_in_srtp"] == "mandatory"
        sender = SrtpSender(SrtpPolicy(mki_length=MKI_LENGTH if with_mki else 0))
        sender.set_roc(ssrc, start >> 16)
        return _Stream(ssrc, sender, start, start + 1)

    def _reserve(self, service: str) -> None:
        """Open the service's stream and reserve its next SRTP indices where needed
        (written to the store: durable before a packet uses them)."""
        stream = self._streams.get(service)
        if stream is None:
            stream = self._streams[service] = self._open_stream(service)
        if stream.index >= stream.reserved - 1:
            stream.reserved = self.core.stream_reserve(service, stream.index)

    def _transmit(self, out: list[tuple[Event, bytes, list[tuple[str, int]]]], now: float) -> None:
        """Log the round's ``Send`` events (committed where the store keeps the log),
        then send its packets: a UE never logs a packet before its ``Send``."""
        if self.log_sends and (self.log is not None or self.core.store.keeps_log):
            if self._commits is not None:
                self._commits.emit([event for event, _, _ in out])
                self._commits.flush()
            elif self.log is not None:
                self.log.emit_all([event for event, _, _ in out])
        if self._udp is None:
            return
        for _event, packet, targets in out:
            for _ue, port in targets:
                if 0 < port < 65536:
                    self._udp.sendto(packet, (LOOPBACK, port))
                    if self.capture is not None:
                        self.capture.add(now, self.udp_port, port, packet, Proto.UDP)

    def _send_one(
        self, service: str, now: float
    ) -> tuple[Event, bytes, list[tuple[str, int]]] | None:
        """Protect the service's next packet: its ``Send`` event, the packet and its
        targets (None when there is nothing to send)."""
        stream = self._streams.get(service)
        if stream is None or stream.index >= stream.reserved:
            return None  # not yet reserved (a service created since): the next round
        tek = self.core.active_tek(service)
        if tek is None:
            return None
        if stream.mki != tek.mki:
            self._switch_key(stream, tek.mki, tek.key, tek.salt)
        if now - stream.targets_at > _TARGET_REFRESH:
            stream.targets = self.core.stream_targets(service)
            stream.targets_at = now
        index = stream.index
        header = struct.pack(
            "!BBHII", 0x80, 96, index & 0xFFFF, (index * 160) & 0xFFFFFFFF, stream.ssrc
        )
        payload = (b"MBMS" + index.to_bytes(8, "big")).ljust(self.payload_size, b"\x00")
        packet = stream.sender.protect(header + payload)
        stream.index += 1
        stream.sent += 1
        self.core.note_stream_index(service, stream.index, now)
        event = Event(
            "Send",
            now,
            service=service,
            mki=tek.mki,
            extra={
                "source": BMSC,
                "seq": index & 0xFFFF,
                "index": index,
                "ssrc": stream.ssrc,
                "mki_in_packet": self.core.profile["mki_in_srtp"] == "mandatory",
            },
        )
        return event, packet, list(stream.targets)

    def _switch_key(self, stream: _Stream, mki: int, key: bytes, salt: bytes) -> None:
        sender = stream.sender
        if sender.policy.uses_mki:
            wire = mki.to_bytes(MKI_LENGTH, "big")
            if wire not in sender.mkis:
                sender.add_key(MasterKey(wire, key, salt))
            sender.switch_to(wire)
            for old in sender.mkis:
                if old != wire:
                    sender.remove_key(old)
        else:
            for old in sender.mkis:
                sender.remove_key(old)
            sender.add_key(MasterKey(b"", key, salt))
        stream.mki = mki

"""The UE client: HTTP registration with Digest AKA, SRTP reception, scheduled re-fetch.

This drives :class:`~mbmssec.impl.service.ue.UeCore` over the network, on loopback only, as
TS 33.246 6.2.2-6.2.3.3 describe the UE:

* :meth:`UeClient.register` runs one (re-)registration: ``GET /mbms/register`` (step 2),
  the Digest AKA challenge and answer (step 3, with AUTS resynchronisation when the
  USIM asks for it, and reuse of a verified nonce under
  ``second_service_auth=authorise_only``), the MIKEY TEK delivery installed (step 4) and
  the MIKEY response posted when the BM-SC asked for one (step 4b);
* one UDP socket per service on 127.0.0.1 receives the SRTP stream the BM-SC fans out
  (step 7); each packet is decrypted by its MKI; a datagram from anywhere but the
  source the BM-SC announced with the delivery (``MBMS-Stream-Source``) is refused, as
  are replayed, truncated and foreign-stream packets
  (:meth:`~mbmssec.impl.service.ue.UeCore.on_packet` counts each by its reason);
* a background task re-registers at the fetch time the BM-SC gave (6.2.3.2), and on an
  unknown MKI when ``unknown_mki_resync=refetch`` (6.2.3.3) as the core's
  :class:`~mbmssec.impl.service.ue.RefetchPolicy` allows (back-off with jitter and a cap
  per minute that injected packets cannot reset);
* a request (a registration's or a MIKEY response) that fails in a way worth repeating
  (the BM-SC unreachable or too slow, a ``5xx`` or ``429`` answer) is sent again after
  an exponential back-off with full jitter (a random delay between 0 and
  ``retry_min * 2^k``, at most ``retry_max``; never before the ``Retry-After`` of a
  ``429`` or ``503``), each retry logged as a ``Retry`` event, at most ``max_retries``
  times; then (or at once when the BM-SC asks to wait longer than ``max_wait``) the
  request fails (``Rejected``), and a registration is tried again later by the
  background task, no earlier than a ``Retry-After`` asked;
  a ``403``/``404`` refusal holds the service back with a growing delay;
* :meth:`UeClient.lose_coverage` / :meth:`UeClient.regain_coverage` simulate radio
  coverage: out of coverage the UE sends nothing and drops every datagram, and an
  answer in flight is lost (``DeliveryLost``).  A fetch missed out of coverage is made
  up on regaining it: at once with ``unknown_mki_resync=wait``; with ``refetch`` the UE
  waits ``resume_grace`` seconds for the stream to reveal an unknown MKI first.

Every step is recorded in the :class:`~mbmssec.impl.service.events.EventLog`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

import aiohttp
from yarl import URL

from mbmssec.errors import MbmssecError
from mbmssec.impl.net.api import (
    STREAM_SOURCE_HEADER,
    parse_retry_after,
    parse_stream_source,
)
from mbmssec.impl.service.bmsc import REGISTER_PATH, RESPONSE_PATH
from mbmssec.impl.service.events import (
    RETRY_REGISTER,
    RETRY_VERIFICATION,
    UE,
    UNREACHABLE,
    Event,
    EventLog,
)
from mbmssec.impl.service.ue import Source, UeCore, UeError

__all__ = [
    "ClientConfig",
    "UeClient",
    "UeClientError",
    "mikey_response_uri",
    "register_uri",
]

LOOPBACK: Final = "127.0.0.1"
_LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})


class UeClientError(MbmssecError):
    """The UE client was misused (unknown service, not started, non-loopback URL)."""


def register_uri(ue: str, service: str, port: int, trigger: str) -> str:
    """The request target of a registration (also the Digest ``uri``)."""
    return (
        f"{REGISTER_PATH}?ue={quote(ue, safe='')}&service={quote(service, safe='')}"
        f"&port={port}&reason={quote(trigger, safe='')}"
    )


def mikey_response_uri(ue: str, service: str) -> str:
    """The request target of a MIKEY response."""
    return f"{RESPONSE_PATH}?ue={quote(ue, safe='')}&service={quote(service, safe='')}"


@dataclass(frozen=True)
class ClientConfig:
    """Retry and timing behaviour of a UE client (seconds).

    ``retry_min`` / ``retry_max``: the back-off of a failed request (the ``k``-th retry
    waits a random time up to ``min(retry_max, retry_min * 2^(k-1))``), ``max_retries``
    of them per registration, waiting for a ``Retry-After`` of up to ``max_wait`` (a
    longer one ends the registration, and the service is held back until then);
    ``refused_min`` / ``refused_max``: how long a ``403`` or
    ``404`` holds the service back (doubling); ``resume_grace``: see the module doc;
    ``max_rounds``: challenges answered in one registration; ``request_timeout``: the
    longest wait for a connection to the BM-SC or for the next part of its answer."""

    retry_min: float = 0.2
    retry_max: float = 2.0
    max_retries: int = 6
    max_wait: float = 5.0
    refused_min: float = 1.0
    refused_max: float = 8.0
    resume_grace: float = 0.5
    max_rounds: int = 4
    request_timeout: float = 10.0

    def __post_init__(self) -> None:
        times = (
            self.retry_min,
            self.retry_max,
            self.max_wait,
            self.refused_min,
            self.refused_max,
        )
        if not (
            all(math.isfinite(t) and t > 0 for t in times)
            and self.retry_min <= self.retry_max
            and self.refused_min <= self.refused_max
            and 0 <= self.max_retries <= 100
            and 1 <= self.max_rounds <= 10
            and 0 < self.request_timeout <= 600
            and 0 <= self.resume_grace <= 3600
        ):
            raise UeClientError(
                "ClientConfig: delays must be positive with min <= max, max_retries "
                "0 .. 100, max_rounds 1 .. 10, request_timeout 0 .. 600 s"
            )


def _doubling(first: float, cap: float, n: int) -> float:
    """``first * 2^n``, at most ``cap``: the exponent is bounded first (``2.0 ** 1023``
    is the largest power a float holds), so that a long run of refusals cannot raise
    OverflowError (the integer ``2 ** 1025`` once did)."""
    return min(cap, first * 2.0 ** min(n, 1023))  # an overflowing product is inf


@dataclass
class _Svc:
    port: int
    transport: asyncio.DatagramTransport | None = None
    status: str = "idle"
    retry_at: float | None = None
    retry_trigger: str = "retry"
    failures_in_row: int = 0
    refusals_in_row: int = 0
    hold_until: float = 0.0
    overdue: bool = False
    inflight: bool = False
    registrations: int = 0
    rejected: int = 0
    retries: int = 0
    last_error: str | None = None


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self, client: UeClient, service: str) -> None:
        self.client = client
        self.service = service

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.client.on_datagram(self.service, data, (str(addr[0]), int(addr[1])))


@dataclass
class UeClient:
    """One UE on loopback: its core, the BM-SC's base URL and a shared HTTP session.

    ``receive=False`` opens no UDP socket (``port`` is then announced as given but
    nothing listens), for load tests of the control plane.  ``log_receives=False``
    keeps per-packet ``Receive`` events out of the log (counters still count).
    ``ssl_context`` verifies an ``https`` BM-SC (:func:`mbmssec.impl.net.tls.client_context`:
    only the project's CA is trusted); with ``tek_protection=tls`` the URL must be https.
    ``jitter`` draws the random share of each back-off (uniform in [0, 1)).
    """

    core: UeCore
    base_url: str
    session: aiohttp.ClientSession
    log: EventLog | None = None
    clock: Callable[[], float] = time.time
    receive: bool = True
    log_receives: bool = True
    config: ClientConfig = field(default_factory=ClientConfig)
    ssl_context: ssl.SSLContext | None = None
    jitter: Callable[[], float] = random.random
    covered: bool = field(default=True, init=False)
    svcs: dict[str, _Svc] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        url = URL(self.base_url)
        if url.host not in ("127.0.0.1", "localhost", "::1"):
            raise UeClientError(f"the UE talks to a BM-SC on loopback only, not {url.host!r}")

        if url.scheme == "https" and self.ssl_context is None:
            raise UeClientError(
                "an https BM-SC needs the CA to verify it against (mbmssec.impl.net.tls)"
            )
        if self.core.profile["tek_protection"] == "tls" and url.scheme != "https":
            raise UeClientError(
                "tek_protection=tls: TEKs come without MIKEY encryption, so the BM-SC "
                f"URL must be https, not {self.base_url!r}"
            )
        self._ssl: ssl.SSLContext | bool = (
            self.ssl_context if self.ssl_context is not None else True
        )
        self.base_url = self.base_url.rstrip("/")
        # aiohttp sends a GET once more, unasked, when the connection drops before an
        # answer (ClientSession._request; aiohttp's own test client turns this off the
        # same way). A UE's request carries a one-time Digest answer and may make the
        # BM-SC deliver: each repetition must be the UE's, logged as a Retry, or the
        # UE's log misses a delivery it never saw answered (the BM-SC died after
        # committing it) and trace-check rightly refuses the log.
        self.session._retry_connection = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._pending_triggers: dict[str, str] = {}

    @property
    def ue(self) -> str:
        """The UE's identity."""
        return self.core.ue

    def _emit(self, event: Event) -> None:
        if self.log is not None:
            self.log.emit(event)

    def _event(self, name: str, **kw: Any) -> None:
        extra = kw.pop("extra", {})
        self._emit(Event(name, self.clock(), ue=self.ue, extra={"source": UE, **extra}, **kw))

    # -- services and sockets -------------------------------------------------------------

    async def add_service(self, service: str, port: int = 9) -> int:
        """Join a service: open its UDP socket on 127.0.0.1 (unless ``receive`` is off).

        Returns the port announced to the BM-SC.
        """
        if service in self.svcs:
            return self.svcs[service].port
        if not self.receive:
            self.svcs[service] = _Svc(port=port)
            return port
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Receiver(self, service), local_addr=(LOOPBACK, 0)
        )
        bound = int(transport.get_extra_info("sockname")[1])
        self.svcs[service] = _Svc(port=bound, transport=transport)
        self.core.state(service)
        return bound

    def _svc(self, service: str) -> _Svc:
        svc = self.svcs.get(service)
        if svc is None:
            raise UeClientError(f"{self.ue}: service {service} was not added")
        return svc

    # -- coverage -----------------------------------------------------------------------------

    def lose_coverage(self) -> None:
        """Leave radio coverage: no requests, no datagrams, answers in flight lost."""
        if self.covered:
            self.covered = False
            self._event("LoseCoverage")

    def regain_coverage(self) -> None:
        """Come back into coverage; a fetch missed meanwhile is made up (see module doc)."""
        if self.covered:
            return
        self.covered = True
        self._event("RegainCoverage")
        now = self.clock()
        wait_mode = self.core.profile["unknown_mki_resync"] == "wait"
        for svc in self.svcs.values():
            if svc.overdue:
                svc.overdue = False
                svc.retry_at = now if wait_mode else now + self.config.resume_grace
                svc.retry_trigger = "fetch_time"
        self._wake.set()

    # -- data plane ---------------------------------------------------------------------------

    def on_datagram(self, service: str, data: bytes, source: Source) -> None:
        """A datagram from ``source`` (address, port) on the service's socket: decrypted
        by the core (which refuses it unless it comes from the announced source), and a
        re-fetch started when the core asks for one and nothing holds the service back."""
        if not self.covered:
            return
        now = self.clock()
        out = self.core.on_packet(service, data, now, source)
        if self.log is not None and self.log_receives:
            self.log.emit(out.event)
        svc = self.svcs.get(service)
        if svc is None:
            return
        if out.refetch and not svc.inflight and now >= svc.hold_until:
            self._pending_triggers[service] = "unknown_mki"
            self._wake.set()
        elif self.core.state(service).fetch_index is not None and service in self.core.due(now):
            self._wake.set()

    # -- registration ---------------------------------------------------------------------------

    async def register(self, service: str, trigger: str = "initial") -> bool:
        """One (re-)registration for ``service``; True when a delivery was installed."""
        svc = self._svc(service)
        if svc.inflight:
            return False
        svc.inflight = True
        try:
            return await self._register(service, svc, trigger)
        finally:
            svc.inflight = False

    async def _register(self, service: str, svc: _Svc, trigger: str) -> bool:
        uri = register_uri(self.ue, service, svc.port, trigger)
        url = URL(self.base_url + uri, encoded=True)
        headers: dict[str, str] = {}
        pre = self.core.preemptive_authorization(uri)
        if pre is not None:
            headers["Authorization"] = pre
        svc.status = "registering"
        timeout = self._timeout()
        rounds = retries = 0
        while True:
            if self._stopping:  # as a cancellation would: nothing recorded
                return False
            if not self.covered:
                svc.overdue = True
                svc.status = "offline"
                return False
            retry_after: float | None = None
            status: int | None = None
            try:
                async with self.session.get(
                    url, headers=headers, timeout=timeout, ssl=self._ssl
                ) as resp:
                    status = resp.status
                    body = await resp.read()
                    www = resp.headers.get("WWW-Authenticate")
                    source = parse_stream_source(resp.headers.get(STREAM_SOURCE_HEADER))
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"), self.clock())
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                code, message = UNREACHABLE, f"BM-SC unreachable: {type(exc).__name__}: {exc}"
            else:
                now = self.clock()
                if not self.covered:
                    if status == 200:
                        self._event("DeliveryLost", service=service, extra={"trigger": trigger})
                    svc.overdue = True
                    svc.status = "offline"
                    return False
                if status == 200:
                    return await self._install(service, svc, body, source, now, trigger)
                if status == 401 and www:
                    rounds += 1
                    if rounds >= self.config.max_rounds:
                        return self._failed(
                            service,
                            svc,
                            "too_many_rounds",
                            f"no delivery after {self.config.max_rounds} challenge rounds",
                        )
                    try:
                        headers = {"Authorization": self.core.answer_challenge(www, uri)}
                    except UeError as exc:
                        return self._failed(service, svc, exc.code, exc.message)
                    continue
                code, message = _error_of(body, status)
                if not (status == 429 or status >= 500):
                    return self._failed(
                        service, svc, code, message, status=status, refused=status in (403, 404)
                    )
            # worth repeating: the BM-SC unreachable or slow, 5xx, 429
            delay = self._retry_delay(retries, retry_after)
            if delay is None:
                return self._failed(service, svc, code, message, status=status, hold=retry_after)
            retries += 1
            svc.retries += 1
            self._retry_event(service, RETRY_REGISTER, code, message, retries, delay, status)
            await asyncio.sleep(delay)

    def _timeout(self) -> aiohttp.ClientTimeout:
        """``request_timeout`` for connecting to the BM-SC and for each wait for its
        answer; the time a request waits for a free connection of the session's pool
        (shared by many UEs in one process) is not the BM-SC's and does not count."""
        limit = self.config.request_timeout
        return aiohttp.ClientTimeout(total=None, connect=None, sock_connect=limit, sock_read=limit)

    async def _install(
        self, service: str, svc: _Svc, body: bytes, source: Source | None, now: float, trigger: str
    ) -> bool:
        """Install a delivery; the stream's source, if the BM-SC named a loopback one."""
        try:
            out = self.core.accept_delivery(service, body, now, trigger)
        except UeError as exc:
            self._event(
                "Register",
                service=service,
                ok=False,
                reason=exc.code,
                extra={"message": exc.message, "trigger": trigger},
            )
            return self._failed(service, svc, exc.code, exc.message, logged=True)
        if source is not None and source[0] in _LOOPBACK_HOSTS:
            self.core.announce_source(service, source)
        self._emit(out.event)
        svc.status = "registered"
        svc.registrations += 1
        svc.failures_in_row = svc.refusals_in_row = 0
        svc.retry_at = None
        svc.last_error = None
        if out.verification is not None:
            await self._send_verification(service, out.verification)
        return True

    def _failed(
        self,
        service: str,
        svc: _Svc,
        code: str,
        message: str,
        *,
        status: int | None = None,
        refused: bool = False,
        logged: bool = False,
        hold: float | None = None,
    ) -> bool:
        """Record a failed registration and when to try again: after a growing delay
        (with jitter), and never before ``hold`` seconds (a ``Retry-After``)."""
        now = self.clock()
        svc.rejected += 1
        svc.last_error = message
        extra: dict[str, Any] = {"message": message}
        if status is not None:
            extra["status"] = status
        if not logged:
            self._event("Rejected", service=service, ok=False, reason=code, extra=extra)
        if refused:
            svc.status = "refused"
            svc.refusals_in_row += 1
            delay = _doubling(
                self.config.refused_min, self.config.refused_max, svc.refusals_in_row - 1
            )
            svc.hold_until = now + delay
        else:
            svc.status = "retrying"
            svc.failures_in_row += 1
            delay = _doubling(self.config.retry_min, self.config.retry_max, svc.failures_in_row - 1)
        delay *= 0.5 + 0.5 * self.jitter()
        if hold is not None and hold > delay:
            delay = hold
            svc.hold_until = now + hold
        svc.retry_at = now + delay
        svc.retry_trigger = "retry"
        self._wake.set()
        return False

    async def _send_verification(self, service: str, message: bytes) -> None:
        """Post the MIKEY response (step 4b), retried as a registration request is."""
        url = URL(self.base_url + mikey_response_uri(self.ue, service), encoded=True)
        retries = 0
        while True:
            if self._stopping:  # as a cancellation would: nothing recorded
                return
            retry_after: float | None = None
            status: int | None = None
            try:
                async with self.session.post(
                    url,
                    data=message,
                    headers={"Content-Type": "application/mikey"},
                    timeout=self._timeout(),
                    ssl=self._ssl,
                ) as resp:
                    status = resp.status
                    body = await resp.read()
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"), self.clock())
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                code, text = UNREACHABLE, f"{type(exc).__name__}: {exc}"
            else:
                if status == 204:
                    return
                code, text = _error_of(body, status)
                if not (status == 429 or status >= 500):
                    break
            delay = self._retry_delay(retries, retry_after)
            if delay is None:
                break
            retries += 1
            self._retry_event(
                service, RETRY_VERIFICATION, code, f"MIKEY response: {text}", retries, delay, status
            )
            await asyncio.sleep(delay)
        extra: dict[str, Any] = {"message": f"MIKEY response not accepted: {text}"}
        if status is not None:
            extra["status"] = status
        self._event("Rejected", service=service, ok=False, reason=code, extra=extra)

    def _retry_delay(self, retries: int, retry_after: float | None) -> float | None:
        """The wait before retry number ``retries + 1``: a random share (full jitter) of
        ``retry_min * 2^retries``, at most ``retry_max``, and no less than a
        ``Retry-After``; ``None`` when no retry is left or the wait is over ``max_wait``."""
        cap = _doubling(self.config.retry_min, self.config.retry_max, retries)
        delay = self.jitter() * cap
        if retry_after is not None:
            delay = max(delay, retry_after)
        if retries >= self.config.max_retries or delay > self.config.max_wait:
            return None
        return delay

    def _retry_event(
        self,
        service: str,
        request: str,
        code: str,
        message: str,
        attempt: int,
        delay: float,
        status: int | None,
    ) -> None:
        extra: dict[str, Any] = {
            "request": request,
            "attempt": attempt,
            "delay": round(delay, 3),
            "message": message,
        }
        if status is not None:
            extra["status"] = status
        self._event("Retry", service=service, ok=False, reason=code, extra=extra)

    # -- the fetch loop -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background task that registers and re-fetches."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Stop the background task and close the UDP sockets.  The task is cancelled
        and also told to stop (a flag its loops check before each wait and request): a
        cancellation that arrives just as the loop's wait for a wake-up finishes is lost
        in Python 3.11 (``asyncio.wait_for`` then returns the finished wait), and the
        loop would go on registering while this waits for it.  A task that had already
        ended with an error raises it here, after the sockets are closed."""
        try:
            if self._task is not None:
                self._stopping = True
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        finally:
            self._task = None
            for svc in self.svcs.values():
                if svc.transport is not None:
                    svc.transport.close()
                    svc.transport = None

    def _due_now(self, now: float) -> dict[str, str]:
        """The services to register now and why; a service the BM-SC asked to wait
        (``Retry-After``) or that was refused waits until its ``hold_until``."""
        due: dict[str, str] = {}
        for service in self.core.due(now):
            due[service] = "fetch_time"
        for service, svc in self.svcs.items():
            if svc.retry_at is not None and svc.retry_at <= now:
                due.setdefault(service, svc.retry_trigger)
            elif (
                self.core.state(service).deliveries == 0
                and svc.retry_at is None
                and svc.status == "idle"
            ):
                due[service] = "initial"
        for service, trigger in self._pending_triggers.items():
            due[service] = trigger
        self._pending_triggers.clear()
        return {s: t for s, t in due.items() if self.svcs[s].hold_until <= now}

    def _next_wake(self) -> float | None:
        """When the loop has something to do next: a fetch time or a retry, each no
        earlier than its service's ``hold_until``."""
        times = []
        for service, svc in self.svcs.items():
            st = self.core.state(service)
            for t in (st.fetch_time if st.registered else None, svc.retry_at):
                if t is not None:
                    times.append(max(t, svc.hold_until))
        return min(times) if times else None

    async def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            now = self.clock()
            for service, trigger in self._due_now(now).items():
                if self._stopping:
                    return
                svc = self.svcs[service]
                if svc.inflight:
                    continue
                self.core.fetch_started(service)
                svc.retry_at = None
                if not self.covered:
                    svc.overdue = True
                    svc.status = "offline"
                    continue
                await self.register(service, trigger)
            wake_at = self._next_wake()
            timeout = 1.0 if wake_at is None else min(1.0, max(0.0, wake_at - self.clock()))
            if self._pending_triggers:
                continue
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    # -- inspection -------------------------------------------------------------------------------

    def summary(self) -> list[dict[str, Any]]:
        """Per service: state, keys held, packets decrypted and failed (and refused, by
        reason), registrations, retries and re-fetches after an unknown MKI."""
        out = []
        for service, svc in self.svcs.items():
            st = self.core.state(service)
            status = svc.status if self.covered else "offline"
            out.append(
                {
                    "ue": self.ue,
                    "service": service,
                    "state": status,
                    "keys": st.mkis,
                    "current": st.current,
                    "decrypted": st.decrypted,
                    "failures": st.failures,
                    "registrations": svc.registrations,
                    "rejected": svc.rejected,
                    "retries": svc.retries,
                    "refetches": st.refetches,
                    "refused": dict(st.refused),
                    "resyncs": self.core.resyncs,
                    "last_error": svc.last_error,
                }
            )
        return out


def _error_of(body: bytes, status: int) -> tuple[str, str]:
    """The (code, message) of a JSON error answer, or a generic one."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return f"http_{status}", body[:200].decode("utf-8", "replace") or f"HTTP {status}"
    if isinstance(data, dict):
        return str(data.get("error", f"http_{status}")), str(data.get("message", ""))
    return f"http_{status}", str(data)[:200]

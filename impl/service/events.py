"""The JSON-lines event log of a running BM-SC and its UEs (TS 33.246 6.2.2-6.2.3.3).

Every run of ``mbmssec serve``, ``mbmssec ue`` and ``mbmssec demo`` can write what
happened, one JSON object per line, so that a run can be checked against the abstract
model of :mod:`mbmssec.model.actions` (a trace checker replays the events as model
actions) and so that tests can assert end-to-end properties from the log alone.

Format
------
Each line is one JSON object with at least these keys:

``t`` (float)
    Unix time in seconds when the event happened (the emitter's clock).
``event`` (str)
    The event name, see below.
``ue`` (str or null)
    The UE identity (IMSI) the event concerns.
``service`` (str or null)
    The MBMS service (its multicast address, used only as a name).
``mki`` (int or null)
    The MKI of the TEK the event concerns.
``tek`` (str or null)
    An opaque TEK identifier, ``"<service>/<mki>"`` (see :func:`tek_id`); MKIs are never
    reused within a service, so it names one TEK.
``ok`` (bool)
    Whether the step succeeded.
``reason`` (str or null)
    Why a step failed (or what triggered it), as a short code.

Optional keys: ``source`` (``"bmsc"``, ``"ue"``, ``"demo"``, or ``"admin"``:
``mbmssec bmsc-admin --db`` changing the database directly; who emitted the event),
``mkis`` (list of int: the MKIs a delivery carried), ``status`` (HTTP status of a
refused request), ``message`` (human-readable detail), ``fetch_time`` (Unix seconds),
``fetch_index`` (SRTP packet index when the fetch time is given as a sequence number),
``counter`` (MIKEY replay counter), ``seq`` (RTP sequence number), ``index`` (SRTP
packet index), ``ssrc`` (the RTP SSRC of a ``Send``'s stream), ``port`` (the loopback
UDP port a ``Deliver`` registered for the UE's stream), ``nc`` (Digest nonce count),
``withdrawn`` (list of MKIs discarded by a revocation), ``activation`` (the activation
rule), ``trigger`` (why a UE registered).

Event names
-----------
Names equal to the model's action names (:data:`mbmssec.model.actions.ACTIONS`) mean
that action happened:

* ``Subscribe`` / ``Revoke`` (bmsc, or admin when made on the database directly): the
  operator authorised / withdrew a UE for a service.  ``Revoke`` lists the ``withdrawn``
  next-TEK MKIs (re-key on leave).
* ``Authenticate`` (bmsc): a fresh HTTP Digest AKA run succeeded (``nc`` 1).
* ``Register`` (ue): the UE verified and installed a MIKEY TEK delivery; ``mkis`` are
  the MKIs delivered, ``fetch_time`` its next fetch time, ``trigger`` why it registered
  (``initial``, ``fetch_time``, ``unknown_mki``, ``retry``).  ``ok`` false means the
  delivery failed verification (``reason`` says why) and nothing was installed.
* ``DeliveryLost`` (ue): the BM-SC answered a registration but the UE never got the
  answer (it lost coverage with the request in flight).
* ``Acknowledge`` (bmsc): the BM-SC verified the UE's MIKEY response (step 4b).
* ``Generate`` / ``Activate`` (bmsc or admin): a TEK was created with a fresh MKI / the
  service switched to it (packets now carry its MKI).
* ``Send`` (bmsc): one SRTP packet of the service left the BM-SC under ``mki``.
* ``Receive`` (ue): the UE got an SRTP packet: ``ok`` true = decrypted; otherwise
  ``reason`` is ``unknown_mki``, ``auth_failed``, or one of the refusals below the key
  layer (:data:`RECEIVE_REFUSED_UNKEYED`, no model step): ``replay`` (the replay list
  refuses its index), ``malformed`` (too short or no RTP header), ``foreign_source``
  (not from the source the BM-SC announced) or ``foreign_ssrc`` (not the service's
  stream).
* ``LoseCoverage`` / ``RegainCoverage`` (ue): the UE left / came back into coverage.

Names with no model action:

* ``Deliver`` (bmsc): the BM-SC sent a TEK delivery (``mkis``, ``fetch_time``,
  ``counter``); the UE's ``Register`` or ``DeliveryLost`` says whether it arrived.
* ``Rejected`` (bmsc or ue): a refused request, with ``status`` (HTTP) and ``reason``.
* ``Challenge`` (bmsc): a Digest AKA challenge was issued with a new vector (``sqn``).
* ``Provision`` (bmsc or admin): a subscriber was provisioned in the HSS/AuC with its
  initial ``sqn`` (K and OPc are never logged).
* ``Resync`` (bmsc): an AUTS resynchronisation moved the subscriber's SQN (``sqn_ms``).
* ``Withdraw`` (bmsc): a next TEK was discarded before activation (re-key on leave).
* ``Retry`` (ue): a request failed in a way worth repeating (the BM-SC unreachable, a
  ``5xx`` or ``429`` answer); the UE sends it again after ``delay`` seconds (``request``
  says which: ``register`` or the MIKEY ``verification`` message; ``attempt`` counts the
  retries of this request, ``status`` the HTTP status if there was one).  A
  registration request retried as ``unreachable`` got no answer at all: if the BM-SC
  had made a delivery in answer to it, the UE never got it (the trace checker reads
  this as the delivery's outcome).
* ``Start`` / ``Stop`` (any): a component started or stopped (``reason`` says which).
  The BM-SC's ``Start`` declares its ``profile`` (option name -> value) and its
  ``fetch_grace`` (seconds it waits past a UE's fetch time before activating without
  that UE); the demo's declares its ``profile`` and ``roles``.  A trace checker needs a
  ``Start`` event to judge a log.

A log cut short by a crash may end with a partial line; :func:`read_events` can skip it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from mbmssec.errors import MbmssecError
from mbmssec.impl.service.files import PRIVATE_MODE

__all__ = [
    "ADMIN",
    "BMSC",
    "DEMO",
    "MODEL_EVENTS",
    "OTHER_EVENTS",
    "RECEIVE_REASONS",
    "RECEIVE_REFUSED_UNKEYED",
    "REQUIRED_KEYS",
    "UE",
    "Event",
    "EventLog",
    "EventLogError",
    "iter_events",
    "read_events",
    "tek_id",
    "validate_event",
]

BMSC: Final = "bmsc"
UE: Final = "ue"
DEMO: Final = "demo"
ADMIN: Final = "admin"

MODEL_EVENTS: Final = frozenset(
    {
        "Subscribe",
        "Revoke",
        "Authenticate",
        "Register",
        "DeliveryLost",
        "Acknowledge",
        "Generate",
        "Activate",
        "Send",
        "Receive",
        "LoseCoverage",
        "RegainCoverage",
    }
)
"""Event names that are the model's action names."""

OTHER_EVENTS: Final = frozenset(
    {
        "Deliver",
        "Rejected",
        "Challenge",
        "Provision",
        "Resync",
        "Withdraw",
        "Retry",
        "Start",
        "Stop",
    }
)
"""Event names with no model action."""

UNREACHABLE: Final = "unreachable"
"""The ``reason`` of a UE's ``Retry`` or ``Rejected`` whose request got no HTTP answer at
all (the connection failed or timed out)."""
RETRY_REGISTER: Final = "register"
RETRY_VERIFICATION: Final = "verification"
"""The ``request`` of a UE's ``Retry``: its registration request, or its MIKEY
verification message."""

RECEIVE_REFUSED_UNKEYED: Final = frozenset(
    {"replay", "malformed", "foreign_source", "foreign_ssrc"}
)
"""The ``reason`` values of a ``Receive`` refused before any key was looked up: the
packet is a replay, is not an SRTP packet, or is not of the service's stream from the
BM-SC; no model step (the model's packets are the BM-SC's, each received once)."""

RECEIVE_REASONS: Final = frozenset({"unknown_mki", "auth_failed"}) | RECEIVE_REFUSED_UNKEYED
"""The ``reason`` values of a failed ``Receive``."""

REQUIRED_KEYS: Final = ("t", "event", "ue", "service", "mki", "tek", "ok", "reason")


class EventLogError(MbmssecError):
    """A malformed event or event log; ``line`` is the 1-based line number (0 if none)."""

    def __init__(self, line: int, problem: str) -> None:
        where = f"line {line}: " if line else ""
        super().__init__(f"event log {where}{problem}")
        self.line = line
        self.problem = problem


_LINE: Final = json.JSONEncoder(separators=(",", ":"), sort_keys=False)
"""One event's log line (without its newline): compact JSON, keys in their order."""


def tek_id(service: str, mki: int) -> str:
    """The opaque TEK identifier of the event log: ``"<service>/<mki>"``."""
    return f"{service}/{mki}"


@dataclass(frozen=True)
class Event:
    """One event; :meth:`to_json` gives the log line's object."""

    event: str
    t: float
    ue: str | None = None
    service: str | None = None
    mki: int | None = None
    tek: str | None = None
    ok: bool = True
    reason: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON object of this event (required keys first, then the extra ones)."""
        out: dict[str, Any] = {
            "t": round(self.t, 6),
            "event": self.event,
            "ue": self.ue,
            "service": self.service,
            "mki": self.mki,
            "tek": self.tek
            if self.tek is not None
            else (
                tek_id(self.service, self.mki)
                if self.service is not None and self.mki is not None
                else None
            ),
            "ok": self.ok,
            "reason": self.reason,
        }
        for key, value in self.extra.items():
            if key in out:
                raise EventLogError(0, f"extra key {key!r} shadows a required key")
            out[key] = value
        return out


def validate_event(obj: object, line: int = 0) -> dict[str, Any]:
    """Check one decoded log object against the format; return it typed as a dict."""
    if not isinstance(obj, dict):
        raise EventLogError(line, "not a JSON object")
    for key in REQUIRED_KEYS:
        if key not in obj:
            raise EventLogError(line, f"missing key {key!r}")
    t = obj["t"]
    if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
        raise EventLogError(line, "'t' must be a finite number")
    if not isinstance(obj["event"], str) or not obj["event"]:
        raise EventLogError(line, "'event' must be a non-empty string")
    for key in ("ue", "service", "tek", "reason"):
        if obj[key] is not None and not isinstance(obj[key], str):
            raise EventLogError(line, f"{key!r} must be a string or null")
    mki = obj["mki"]
    if mki is not None and (isinstance(mki, bool) or not isinstance(mki, int)):
        raise EventLogError(line, "'mki' must be an integer or null")
    if not isinstance(obj["ok"], bool):
        raise EventLogError(line, "'ok' must be a boolean")
    return obj


def read_events(path: str | Path, *, allow_partial_tail: bool = True) -> list[dict[str, Any]]:
    """Read and validate a JSON-lines event log.

    With ``allow_partial_tail`` a last line without its newline that does not parse
    (a writer killed mid-line) is skipped; any other bad line is an error.
    """
    return list(iter_events(path, allow_partial_tail=allow_partial_tail))


def iter_events(path: str | Path, *, allow_partial_tail: bool = True) -> Iterator[dict[str, Any]]:
    """The events of a JSON-lines log, read and validated one line at a time (memory does
    not grow with the log); errors and the partial last line as :func:`read_events`."""
    try:
        with Path(path).open("rb") as stream:
            yield from _parse(stream, str(path), allow_partial_tail)
    except OSError as exc:
        raise EventLogError(0, f"cannot read {path}: {exc.strerror}") from None


def _parse(
    stream: Iterable[bytes], path: str, allow_partial_tail: bool
) -> Iterator[dict[str, Any]]:
    offset = 0
    for number, raw in enumerate(stream, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EventLogError(0, f"{path} is not UTF-8 at byte {offset + exc.start}") from None
        offset += len(raw)
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            if not text.endswith("\n") and allow_partial_tail:
                return  # the last line, cut short
            raise EventLogError(number, f"not JSON: {exc.msg} at column {exc.colno}") from None
        yield validate_event(obj, number)


class EventLog:
    """Writes events as JSON lines and passes them to listeners.

    ``sink`` is a path (opened for appending, so a restarted process continues the same
    log; created with mode 0600), an open text stream, or ``None`` (no file: listeners
    only).  Every line goes to a file in one ``write`` on a descriptor opened with
    ``O_APPEND``, so a process killed at any moment leaves every earlier event on disk,
    and several processes appending to one log (the BM-SC and ``bmsc-admin --db``) never
    interleave within a line.  Safe to call from several threads.
    """

    def __init__(
        self,
        sink: str | Path | IO[str] | None = None,
        *,
        clock: Callable[[], float] | None = None,
        keep: bool = False,
    ) -> None:
        self._fd: int | None = None
        self._stream: IO[str] | None = None
        if isinstance(sink, str | Path):
            try:
                self._fd = os.open(
                    sink, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, PRIVATE_MODE
                )
            except OSError as exc:
                raise EventLogError(0, f"cannot open {sink}: {exc.strerror}") from None
        elif sink is not None:
            self._stream = sink
        self._clock = clock
        self._lock = threading.Lock()
        self._listeners: list[Callable[[Event], None]] = []
        self.kept: list[Event] | None = [] if keep else None
        self.counts: dict[str, int] = {}

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener`` with every event emitted from now on."""
        self._listeners.append(listener)

    def emit(self, event: Event) -> None:
        """Record one event."""
        self.emit_all((event,))

    def emit_all(self, events: Iterable[Event]) -> None:
        """Record several events in order, with one append to the file (a batch's
        events are written together, never interleaved with another writer's)."""
        batch = list(events)
        if not batch:
            return
        encode = _LINE.encode
        text = "".join(encode(e.to_json()) + "\n" for e in batch)
        with self._lock:
            for event in batch:
                self.counts[event.event] = self.counts.get(event.event, 0) + 1
            if self.kept is not None:
                self.kept.extend(batch)
            if self._fd is not None:
                data = text.encode("utf-8")
                try:
                    while data:
                        data = data[os.write(self._fd, data) :]
                except OSError as exc:
                    raise EventLogError(0, f"cannot append to the log: {exc.strerror}") from None
            elif self._stream is not None:
                self._stream.write(text)
                self._stream.flush()
        for event in batch:
            for listener in self._listeners:
                listener(event)

    def now(self) -> float:
        """The log's clock (the injected one, or wall-clock time)."""
        if self._clock is not None:
            return self._clock()
        import time

        return time.time()

    def record(
        self,
        name: str,
        *,
        ue: str | None = None,
        service: str | None = None,
        mki: int | None = None,
        ok: bool = True,
        reason: str | None = None,
        t: float | None = None,
        **extra: Any,
    ) -> Event:
        """Build an event stamped with the log's clock and emit it."""
        event = Event(
            name,
            self.now() if t is None else t,
            ue=ue,
            service=service,
            mki=mki,
            ok=ok,
            reason=reason,
            extra=extra,
        )
        self.emit(event)
        return event

    def close(self) -> None:
        """Flush and, if the log opened the file itself, close it."""
        with self._lock:
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    os.fsync(self._fd)
                os.close(self._fd)
                self._fd = None
            if self._stream is not None:
                self._stream.flush()
                self._stream = None

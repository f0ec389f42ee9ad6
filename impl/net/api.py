"""The BM-SC's HTTP face: how core outcomes and refusals become statuses and bodies.

This is the one place that maps a :class:`~mbmssec.impl.service.bmsc.Refusal` to an HTTP
status and renders refusals as JSON ``{"status", "error", "message"}``; the server and
the tests read the mapping from here.  A TEK delivery is answered ``200`` with the MIKEY
message as ``application/mikey``, an accepted MIKEY response ``204``, and a refusal that
carries a Digest AKA challenge (RFC 3310) ``401`` with ``WWW-Authenticate``, and a
request of a UE beyond the BM-SC's rate limits ``429`` with ``Retry-After`` (whole
seconds, rounded up).  A ``200`` delivery names the address and UDP port the BM-SC
sends the stream from in :data:`STREAM_SOURCE_HEADER`, so that the UE can refuse
datagrams from anywhere else.

JSON request bodies are read with :func:`parse_json_object`, within limits on size,
nesting depth and the length of a number, so that no body can make the parser recurse
or compute without bound (a deeply nested array, a 4,300-digit integer): a body beyond
them is a ``400`` naming the limit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Final

from mbmssec.impl.service.bmsc import BmscError, Outcome, Refusal, Result

HTTP_STATUS: Final[Mapping[Refusal, int]] = {
    Refusal.MALFORMED: 400,
    Refusal.UNAUTHENTICATED: 401,
    Refusal.FORBIDDEN: 403,
    Refusal.UNKNOWN: 404,
    Refusal.CONFLICT: 409,
    Refusal.TOO_LARGE: 413,
    Refusal.UNAVAILABLE: 503,
    Refusal.RATE_LIMITED: 429,
}
"""The HTTP status of each refusal kind."""

_SUCCESS: Final[Mapping[Result, int]] = {Result.DELIVERED: 200, Result.ACKNOWLEDGED: 204}

STREAM_SOURCE_HEADER: Final = "MBMS-Stream-Source"
"""Response header of a TEK delivery: ``ADDRESS:PORT`` the service's SRTP stream comes
from (the UE's source filter, as an SDP ``a=source-filter`` line would announce it)."""

MIKEY_CONTENT_TYPE: Final = "application/mikey"
JSON_CONTENT_TYPE: Final = "application/json"


@dataclass(frozen=True)
class HttpAnswer:
    """An HTTP answer as data: status, body, content type and extra headers."""

    status: int
    body: bytes
    content_type: str | None
    headers: tuple[tuple[str, str], ...] = ()


def status_of(outcome: Outcome) -> int:
    """The HTTP status that answers ``outcome``."""
    if outcome.result is Result.REFUSED:
        assert outcome.refusal is not None
        return HTTP_STATUS[outcome.refusal]
    return _SUCCESS[outcome.result]


def error_body(status: int, code: str, message: str) -> bytes:
    """The JSON body of a refusal."""
    return json.dumps({"status": status, "error": code, "message": message}).encode()


def answer(outcome: Outcome) -> HttpAnswer:
    """The HTTP answer to a core outcome."""
    status = status_of(outcome)
    if outcome.result is Result.DELIVERED:
        return HttpAnswer(status, outcome.mikey, MIKEY_CONTENT_TYPE)
    if outcome.result is Result.ACKNOWLEDGED:
        return HttpAnswer(status, b"", None)
    headers: tuple[tuple[str, str], ...] = ()
    if outcome.challenge is not None:
        headers = (("WWW-Authenticate", outcome.challenge),)
    if outcome.retry_after is not None:
        headers += (("Retry-After", str(max(1, math.ceil(outcome.retry_after)))),)
    return HttpAnswer(
        status, error_body(status, outcome.code, outcome.message), JSON_CONTENT_TYPE, headers
    )


def refusal_answer(exc: BmscError) -> HttpAnswer:
    """The HTTP answer to a refusal raised outside a core request (query checks, admin)."""
    return answer(Outcome.refused(exc))


MAX_JSON_BODY: Final = 8192
"""Octets of a JSON request body at most (an admin request is under 200)."""

MAX_JSON_DEPTH: Final = 8
"""Nesting of arrays and objects in a JSON body at most (the admin API's are flat)."""

MAX_JSON_DIGITS: Final = 24
"""Characters of one JSON number at most (an SQN has at most 15 digits)."""


class _NumberTooLong(ValueError):
    pass


def _number(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        if len(text) > MAX_JSON_DIGITS:
            raise _NumberTooLong(text[:8])
        return kind(text)

    return parse


def _not_a_number(text: str) -> Any:
    raise json.JSONDecodeError(f"{text} is not a JSON number", text, 0)


def json_depth(text: str, limit: int = MAX_JSON_DEPTH) -> int:
    """The deepest nesting of arrays and objects in ``text`` (strings skipped); the scan
    stops as soon as it passes ``limit``, so it never costs more than one pass."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif ch in "]}":
            depth -= 1
    return deepest


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A JSON request body that must be an object, parsed within the limits
    :data:`MAX_JSON_BODY`, :data:`MAX_JSON_DEPTH` and :data:`MAX_JSON_DIGITS`; anything
    else is a :attr:`Refusal.MALFORMED` :class:`BmscError` (``400``) saying why."""
    if len(raw) > MAX_JSON_BODY:
        raise BmscError(
            Refusal.MALFORMED,
            "json_too_large",
            f"a JSON body is at most {MAX_JSON_BODY} octets (this one has {len(raw)})",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BmscError(Refusal.MALFORMED, "bad_json", "request body is not UTF-8") from None
    if json_depth(text) > MAX_JSON_DEPTH:
        raise BmscError(
            Refusal.MALFORMED,
            "json_too_deep",
            f"request body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels",
        )
    try:
        data = json.loads(
            text or "null",
            parse_int=_number(int),
            parse_float=_number(float),
            parse_constant=_not_a_number,
        )
    except _NumberTooLong:
        raise BmscError(
            Refusal.MALFORMED,
            "json_number_too_long",
            f"a number in the request body is longer than {MAX_JSON_DIGITS} characters",
        ) from None
    except json.JSONDecodeError as exc:
        raise BmscError(
            Refusal.MALFORMED,
            "bad_json",
            f"request body is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
        ) from None
    if not isinstance(data, dict):
        raise BmscError(Refusal.MALFORMED, "bad_json", "request body must be a JSON object")
    return data


def format_stream_source(host: str, port: int) -> str:
    """The :data:`STREAM_SOURCE_HEADER` value for a stream sent from ``host:port``."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_stream_source(value: str | None) -> tuple[str, int] | None:
    """The (address, port) of a :data:`STREAM_SOURCE_HEADER` value, or ``None`` if there
    is none or it is not ``ADDRESS:PORT`` (``[ADDRESS]:PORT`` for IPv6) with a port
    1-65535."""
    if value is None:
        return None
    host, sep, port = value.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not (sep and host and port.isascii() and port.isdigit() and len(port) <= 5):
        return None
    number = int(port)
    return (host, number) if 1 <= number <= 65535 else None


MAX_RETRY_AFTER: Final = 3600.0
"""Seconds of ``Retry-After`` a client honours at most (a larger value is taken as this)."""


def parse_retry_after(value: str | None, now: float) -> float | None:
    """The seconds a ``Retry-After`` value (RFC 9110 10.2.3: delta-seconds or an
    HTTP-date) asks to wait from ``now``, at most :data:`MAX_RETRY_AFTER`; ``None`` if
    there is none or it is neither form."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return min(MAX_RETRY_AFTER, float(int(text[:8])))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return min(MAX_RETRY_AFTER, max(0.0, when.timestamp() - now))

"""The BM-SC's HTTP face: how core outcomes and refusals become statuses and bodies.

This is the one place that maps a :class:`~mbmssec.impl.service.bmsc.Refusal` to an HTTP
status and renders refusals as JSON ``{"status", "error", "message"}``; the server and
the tests read the mapping from here.  A TEK delivery is answered ``200`` with the MIKEY
message as ``application/mikey``, an accepted MIKEY response ``204``, and a refusal that
carries a Digest AKA challenge (RFC 3310) ``401`` with ``WWW-Authenticate``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from mbmssec.impl.service.bmsc import BmscError, Outcome, Refusal, Result

HTTP_STATUS: Final[Mapping[Refusal, int]] = {
    Refusal.MALFORMED: 400,
    Refusal.UNAUTHENTICATED: 401,
    Refusal.FORBIDDEN: 403,
    Refusal.UNKNOWN: 404,
    Refusal.CONFLICT: 409,
    Refusal.TOO_LARGE: 413,
    Refusal.UNAVAILABLE: 503,
}
"""The HTTP status of each refusal kind."""

_SUCCESS: Final[Mapping[Result, int]] = {Result.DELIVERED: 200, Result.ACKNOWLEDGED: 204}

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
    return HttpAnswer(
        status, error_body(status, outcome.code, outcome.message), JSON_CONTENT_TYPE, headers
    )


def refusal_answer(exc: BmscError) -> HttpAnswer:
    """The HTTP answer to a refusal raised outside a core request (query checks, admin)."""
    return answer(Outcome.refused(exc))

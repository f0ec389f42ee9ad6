"""HTTP Digest AKA: RFC 3310 (algorithm ``AKAv1-MD5``) over RFC 2617 Digest.

The UE authenticates to the BM-SC with HTTP Digest in which the "password" is the
AKA response RES (RFC 3310 clause 3.3; RES is used as raw octets, not hex).  The
server's challenge carries the AKA challenge in its nonce:
``nonce = base64(RAND || AUTN || server data)`` (RFC 3310 clause 3.2).  This module:

* parses and serialises ``WWW-Authenticate`` challenges and ``Authorization``
  credentials (the header *field values*, e.g. ``'Digest realm="x", ...'``);
* computes the RFC 2617 clause 3.2.2 request-digest (MD5, qop ``auth``, or the
  RFC 2069 form without qop);
* builds AKA challenges for the server (:func:`make_aka_challenge`) and answers them
  on the client (:func:`respond`, or :func:`respond_resync` with the ``auts``
  directive of RFC 3310 clause 3.4, whose response uses an empty password);
* verifies a client's answer on the server (:func:`verify_response`,
  :func:`verify_resync`).

Parsing is strict (RFC 7235 clause 2.1 / RFC 7230 clause 3.2.6 grammar):
``Digest`` (any case), one or more SP, then ``name BWS "=" BWS (token /
quoted-string)`` elements separated by ``OWS "," OWS``.  Deliberate restrictions:
only printable ASCII, SP and HTAB are accepted (no obs-text, no obs-fold, no
CR/LF); empty list elements (``a=b,,c=d``) and duplicate parameters are rejected;
one challenge per field value.  Parameters that RFC 2617 defines as quoted-string
(realm, nonce, opaque, domain, qop-options, username, uri, response, cnonce, and
RFC 3310's auts) must be quoted; the token-valued ones (algorithm, stale, qop in
credentials, nc) are accepted as token or quoted-string, since both forms occur in
practice.  Unknown parameters are kept in ``extra``.  Sizes are capped by
:data:`MAX_HEADER_CHARS`, :data:`MAX_PARAMS` and :data:`MAX_VALUE_CHARS`.

Every failure is a :class:`DigestError`; parse failures carry the character offset.

Sans-I/O: the cnonce and opaque values come from an injected ``rand(n) -> bytes``
and the nonce issue time from an injected ``now`` (seconds).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, NamedTuple, NoReturn

from cryptography.hazmat.primitives import hashes

from mbmssec.errors import MbmssecError

if TYPE_CHECKING:
    from mbmssec.impl.protocols.aka import AuthVector, Rand

__all__ = [
    "ALGORITHM_AKAV1_MD5",
    "AUTS_LEN",
    "DEFAULT_NONCE_LIFETIME",
    "MAX_HEADER_CHARS",
    "MAX_PARAMS",
    "MAX_SERVER_DATA",
    "MAX_VALUE_CHARS",
    "QOP_AUTH",
    "AkaNonce",
    "DigestAuthError",
    "DigestAuthorization",
    "DigestBindingError",
    "DigestChallenge",
    "DigestError",
    "DigestParseError",
    "DigestStaleError",
    "DigestValueError",
    "compute_response",
    "decode_aka_nonce",
    "encode_aka_nonce",
    "make_aka_challenge",
    "parse_authorization",
    "parse_challenge",
    "respond",
    "respond_resync",
    "serialise_authorization",
    "serialise_challenge",
    "verify_response",
    "verify_resync",
]


ALGORITHM_AKAV1_MD5: Final = "AKAv1-MD5"
"""The RFC 3310 algorithm directive value for AKA version 1 with MD5."""

QOP_AUTH: Final = "auth"
"""The only quality of protection this module computes and offers."""

MAX_HEADER_CHARS: Final = 4096
"""Longest header field value accepted or produced."""

MAX_PARAMS: Final = 32
"""Most auth-params in one header."""

MAX_VALUE_CHARS: Final = 1024
"""Longest single parameter value (after unquoting)."""

MAX_SERVER_DATA: Final = 64
"""Most octets of server data after RAND || AUTN in an AKA nonce."""

DEFAULT_NONCE_LIFETIME: Final = 300.0
"""Seconds a challenge stays fresh in :func:`verify_response` (project choice)."""

AUTS_LEN: Final = 14
"""Octets in AUTS (TS 33.102 6.3.3): 6 of concealed SQN_MS and 8 of MAC-S."""

_RAND_LEN = 16
_AUTN_LEN = 16
_TIME_LEN = 8  # server data of nonces made here: the issue time, 8 octets big-endian
_RES_MIN = 4  # RES is 32..128 bits (TS 33.102 6.3.7)
_RES_MAX = 16

_TCHARS: Final = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_TCHAR: Final = frozenset(_TCHARS)
_LHEX: Final = frozenset("0123456789abcdef")
_WS = " \t"


# --------------------------------------------------------------------------- errors


class DigestError(MbmssecError):
    """Base of the HTTP Digest (AKA) error family."""


class DigestParseError(DigestError):
    """A header (or AKA nonce) is malformed.

    ``position`` is the 0-based character offset in the text being parsed where
    the problem was found; ``param`` names the parameter involved, if any.
    """

    def __init__(self, position: int, reason: str, param: str | None = None) -> None:
        self.position = position
        self.reason = reason
        self.param = param
        where = f" (parameter {param})" if param is not None else ""
        super().__init__(f"Digest header: {reason}{where} at offset {position}")


class DigestValueError(DigestError):
    """A value given to a builder cannot be represented (bad length, bad character).

    ``field`` names the offending argument or dataclass field.
    """

    def __init__(self, field_name: str, reason: str) -> None:
        self.field = field_name
        self.reason = reason
        super().__init__(f"Digest {field_name}: {reason}")


class DigestBindingError(DigestError):
    """Credentials do not belong to this challenge or request, or a challenge is
    not one this module can answer (wrong realm, nonce, opaque, uri, username,
    algorithm or qop; ``auts`` present or absent where it must not be).

    ``field`` names the parameter that does not match.
    """

    def __init__(self, field_name: str, reason: str) -> None:
        self.field = field_name
        self.reason = reason
        super().__init__(f"Digest {field_name}: {reason}")


class DigestAuthError(DigestError):
    """The request-digest is wrong.  Deliberately opaque."""

    def __init__(self) -> None:
        super().__init__("Digest authentication failed")


class DigestStaleError(DigestError):
    """The response is correct but the nonce is too old: re-challenge with
    ``stale=true`` (RFC 2617 clause 3.2.1).  ``age`` is the nonce age in seconds.
    """

    def __init__(self, age: float) -> None:
        self.age = age
        super().__init__(f"Digest nonce is stale (age {age:.0f} s)")


# ----------------------------------------------------------------------- messages


@dataclass(frozen=True)
class DigestChallenge:
    """A ``WWW-Authenticate: Digest`` challenge (RFC 2617 clause 3.2.1).

    ``qop`` holds the qop-options (empty when the directive is absent); ``stale``
    is False when absent.  ``extra`` keeps unknown auth-params as (lower-case
    name, value) pairs, in order.  The constructor defaults (qop "auth", algorithm
    AKAv1-MD5) are the Digest AKA values; :func:`parse_challenge` reports absent
    directives as ``()`` and ``None``, not as those defaults.
    """

    realm: str
    nonce: str
    qop: tuple[str, ...] = (QOP_AUTH,)
    opaque: str | None = None
    algorithm: str | None = ALGORITHM_AKAV1_MD5
    stale: bool = False
    domain: str | None = None
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DigestAuthorization:
    """An ``Authorization: Digest`` credentials header (RFC 2617 clause 3.2.2,
    with RFC 3310's ``auts``).

    ``nc`` is the nonce count as an integer (serialised as 8 lower-case hex
    digits); ``auts`` the decoded 14-octet AUTS of a resynchronisation request.
    """

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str | None = None
    cnonce: str | None = None
    opaque: str | None = None
    qop: str | None = None
    nc: int | None = None
    auts: bytes | None = None
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class AkaNonce:
    """The content of an RFC 3310 nonce: RAND, AUTN and optional server data."""

    rand: bytes
    autn: bytes
    server_data: bytes = b""


# ------------------------------------------------------------------------ parsing


class _Param(NamedTuple):
    name: str  # lower case
    value: str  # unquoted
    quoted: bool
    position: int  # offset of the name


# The auth-param grammar of the module docstring as regular expressions: a header that
# they match whole, within the limits, is split by them in a few calls of C; any other
# is read by :class:`_Scanner`, which says where and why it is malformed (so both
# readings accept the same headers, and the errors are the scanner's).
_TOKEN_CHARS: Final = re.escape(_TCHARS)  # for a character class
_SCHEME = re.compile(rf"[ \t]*([{_TOKEN_CHARS}]+) +")
_AUTH_PARAM = re.compile(
    rf"([{_TOKEN_CHARS}]+)[ \t]*=[ \t]*"  # name BWS "=" BWS
    rf"(?:([{_TOKEN_CHARS}]+)"  # token
    r'|"((?:[\t !#-\[\]-~]|\\[\t -~])*)")'  # or quoted-string: qdtext / quoted-pair
    r"[ \t]*"  # OWS
)
_LIST_SEPARATOR = re.compile(r",[ \t]*")
_QUOTED_PAIR = re.compile(r"\\(.)")
_IS_TOKEN = re.compile(rf"[{_TOKEN_CHARS}]+").fullmatch
_IS_LHEX = re.compile(r"[0-9a-f]+").fullmatch
_IS_BASE64_TEXT = re.compile(r"[A-Za-z0-9+/=]*").fullmatch


class _Scanner:
    """A cursor over one header field value, for the auth-param grammar."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.end = len(text)

    def error(self, reason: str, position: int | None = None, param: str | None = None) -> NoReturn:
        raise DigestParseError(self.pos if position is None else position, reason, param)

    def at_end(self) -> bool:
        return self.pos >= self.end

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < self.end else ""

    def ows(self) -> None:
        while self.pos < self.end and self.text[self.pos] in _WS:
            self.pos += 1

    def expect(self, char: str) -> None:
        if self.peek() != char:
            found = repr(self.peek()) if not self.at_end() else "end of header"
            self.error(f"expected {char!r}, found {found}")
        self.pos += 1

    def token(self) -> str:
        start = self.pos
        while self.pos < self.end and self.text[self.pos] in _TCHAR:
            self.pos += 1
        if self.pos == start:
            found = repr(self.peek()) if not self.at_end() else "end of header"
            self.error(f"expected a token, found {found}")
        if self.pos - start > MAX_VALUE_CHARS:
            self.error(f"token longer than {MAX_VALUE_CHARS} characters", start)
        return self.text[start : self.pos]

    def quoted_string(self) -> str:
        start = self.pos
        self.expect('"')
        out: list[str] = []
        while True:
            if self.pos >= self.end:
                self.error("unterminated quoted-string", start)
            char = self.text[self.pos]
            if char == '"':
                self.pos += 1
                break
            if char == "\\":
                self.pos += 1
                if self.pos >= self.end:
                    self.error("unterminated quoted-pair", self.pos - 1)
                char = self.text[self.pos]
                if not (char == "\t" or " " <= char <= "~"):
                    self.error("character not allowed in a quoted-pair")
            elif not (char == "\t" or " " <= char <= "~"):
                self.error(f"character {char!r} not allowed in a quoted-string")
            out.append(char)
            self.pos += 1
            if len(out) > MAX_VALUE_CHARS:
                self.error(f"quoted-string longer than {MAX_VALUE_CHARS} characters", start)
        return "".join(out)


def _parse_params(header: object) -> tuple[str, list[_Param], int]:
    """Split a Digest header field value into its auth-params (syntax only)."""
    if isinstance(header, str) and len(header) <= MAX_HEADER_CHARS:
        found = _match_params(header)
        if found is not None:
            return found
    return _scan_params(header)


def _match_params(header: str) -> tuple[str, list[_Param], int] | None:
    """:func:`_scan_params` by the regular expressions; ``None`` for any header they do
    not split whole within the limits (the scanner then reads it)."""
    start = _SCHEME.match(header)
    if start is None or start.group(1).lower() != "digest" or start.end(1) > MAX_VALUE_CHARS:
        return None
    scheme = start.group(1)
    params: list[_Param] = []
    seen: set[str] = set()
    pos, end = start.end(), len(header)
    while True:
        m = _AUTH_PARAM.match(header, pos)
        if m is None:
            return None
        name, token, quoted = m.group(1, 2, 3)
        name = name.lower()
        if name in seen or len(params) >= MAX_PARAMS or len(name) > MAX_VALUE_CHARS:
            return None
        seen.add(name)
        if quoted is None:
            if len(token) > MAX_VALUE_CHARS:
                return None
            params.append(_Param(name, token, False, pos))
        else:
            if "\\" in quoted:
                quoted = _QUOTED_PAIR.sub(r"\1", quoted)
            if len(quoted) > MAX_VALUE_CHARS:
                return None
            params.append(_Param(name, quoted, True, pos))
        pos = m.end()
        if pos == end:
            return scheme, params, end
        m = _LIST_SEPARATOR.match(header, pos)
        if m is None:
            return None
        pos = m.end()


def _scan_params(header: object) -> tuple[str, list[_Param], int]:
    """Split a Digest header field value into its auth-params, character by character,
    with the position and reason of any error."""
    if not isinstance(header, str):
        raise DigestParseError(0, "header value must be a str")
    if len(header) > MAX_HEADER_CHARS:
        raise DigestParseError(MAX_HEADER_CHARS, f"longer than {MAX_HEADER_CHARS} characters")
    scan = _Scanner(header)
    scan.ows()
    scheme_pos = scan.pos
    scheme = scan.token()
    if scheme.lower() != "digest":
        scan.error("authentication scheme is not Digest", scheme_pos)
    if scan.peek() != " ":
        scan.error("expected a space after the scheme")
    while scan.peek() == " ":
        scan.pos += 1
    params: list[_Param] = []
    seen: set[str] = set()
    while True:
        name_pos = scan.pos
        name = scan.token().lower()
        if name in seen:
            scan.error("duplicate parameter", name_pos, name)
        if len(params) >= MAX_PARAMS:
            scan.error(f"more than {MAX_PARAMS} parameters", name_pos, name)
        seen.add(name)
        scan.ows()  # BWS
        scan.expect("=")
        scan.ows()  # BWS
        if scan.peek() == '"':
            value, quoted = scan.quoted_string(), True
        else:
            value, quoted = scan.token(), False
        params.append(_Param(name, value, quoted, name_pos))
        scan.ows()
        if scan.at_end():
            break
        scan.expect(",")
        scan.ows()
    return scheme, params, len(header)


def _need_quoted(p: _Param) -> str:
    if not p.quoted:
        raise DigestParseError(p.position, "value must be a quoted-string", p.name)
    return p.value


def _need_token(p: _Param) -> str:
    # Token-valued directives may arrive quoted; the content must still be a token.
    if not _IS_TOKEN(p.value):
        raise DigestParseError(p.position, "value must be a token", p.name)
    return p.value


def _qop_list(p: _Param) -> tuple[str, ...]:
    items = [item.strip(_WS) for item in _need_quoted(p).split(",")]
    for item in items:
        if not _IS_TOKEN(item):
            raise DigestParseError(p.position, "qop-options must be a list of tokens", p.name)
    return tuple(items)


_CHALLENGE_DIRECTIVES: Final = frozenset(
    {"realm", "nonce", "qop", "opaque", "algorithm", "stale", "domain"}
)
_CREDENTIAL_DIRECTIVES: Final = frozenset(
    {"username", "realm", "nonce", "uri", "response", "algorithm"}
    | {"cnonce", "opaque", "qop", "nc", "auts"}
)


def parse_challenge(header: str) -> DigestChallenge:
    """Parse a ``WWW-Authenticate`` field value holding one Digest challenge.

    ``realm`` and ``nonce`` are required (RFC 2617 clause 3.2.1).  Raises
    :class:`DigestParseError` on any syntax or directive error.
    """
    _, params, end = _parse_params(header)
    fields: dict[str, _Param] = {p.name: p for p in params}
    for required in ("realm", "nonce"):
        if required not in fields:
            raise DigestParseError(end, "required parameter missing", required)
    stale = False
    if "stale" in fields:
        p = fields["stale"]
        word = _need_token(p).lower()
        if word not in ("true", "false"):
            raise DigestParseError(p.position, "must be true or false", "stale")
        stale = word == "true"
    known = _CHALLENGE_DIRECTIVES
    return DigestChallenge(
        realm=_need_quoted(fields["realm"]),
        nonce=_need_quoted(fields["nonce"]),
        qop=_qop_list(fields["qop"]) if "qop" in fields else (),
        opaque=_need_quoted(fields["opaque"]) if "opaque" in fields else None,
        algorithm=_need_token(fields["algorithm"]) if "algorithm" in fields else None,
        stale=stale,
        domain=_need_quoted(fields["domain"]) if "domain" in fields else None,
        extra=tuple((p.name, p.value) for p in params if p.name not in known),
    )


def _lhex(p: _Param, digits: int) -> str:
    value = _need_token(p) if not p.quoted else p.value
    if len(value) != digits or not _IS_LHEX(value):
        raise DigestParseError(p.position, f"must be {digits} lower-case hex digits", p.name)
    return value


def parse_authorization(header: str) -> DigestAuthorization:
    """Parse an ``Authorization`` field value holding Digest credentials.

    ``username``, ``realm``, ``nonce``, ``uri`` and ``response`` (32 lower-case hex
    digits) are required; ``qop``, ``nc`` (8 lower-case hex digits) and ``cnonce``
    must appear together or not at all (RFC 2617 clause 3.2.2); ``auts`` must be
    the base64 form of a 14-octet AUTS (RFC 3310 clause 3.4).  Raises
    :class:`DigestParseError`.
    """
    _, params, end = _parse_params(header)
    fields: dict[str, _Param] = {p.name: p for p in params}
    for required in ("username", "realm", "nonce", "uri", "response"):
        if required not in fields:
            raise DigestParseError(end, "required parameter missing", required)
    response_p = fields["response"]
    _need_quoted(response_p)
    response = _lhex(response_p, 32)
    qop_group = [name for name in ("qop", "nc", "cnonce") if name in fields]
    if qop_group and len(qop_group) != 3:
        missing = next(n for n in ("qop", "nc", "cnonce") if n not in fields)
        raise DigestParseError(end, "qop, nc and cnonce must appear together", missing)
    nc: int | None = None
    if "nc" in fields:
        nc = int(_lhex(fields["nc"], 8), 16)
    auts: bytes | None = None
    if "auts" in fields:
        p = fields["auts"]
        try:
            auts = base64.b64decode(_need_quoted(p).encode("ascii"), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DigestParseError(p.position, "not valid base64", "auts") from exc
        if len(auts) != AUTS_LEN:
            raise DigestParseError(p.position, f"AUTS must be {AUTS_LEN} octets", "auts")
    known = _CREDENTIAL_DIRECTIVES
    return DigestAuthorization(
        username=_need_quoted(fields["username"]),
        realm=_need_quoted(fields["realm"]),
        nonce=_need_quoted(fields["nonce"]),
        uri=_need_quoted(fields["uri"]),
        response=response,
        algorithm=_need_token(fields["algorithm"]) if "algorithm" in fields else None,
        cnonce=_need_quoted(fields["cnonce"]) if "cnonce" in fields else None,
        opaque=_need_quoted(fields["opaque"]) if "opaque" in fields else None,
        qop=_need_token(fields["qop"]) if "qop" in fields else None,
        nc=nc,
        auts=auts,
        extra=tuple((p.name, p.value) for p in params if p.name not in known),
    )


# -------------------------------------------------------------------- serialising


def _quote(field_name: str, value: object) -> str:
    if not isinstance(value, str):
        raise DigestValueError(field_name, "must be a str")
    if len(value) > MAX_VALUE_CHARS:
        raise DigestValueError(field_name, f"longer than {MAX_VALUE_CHARS} characters")
    if not (value.isascii() and value.isprintable()):  # printable ASCII: " " to "~"
        for char in value:
            if not (char == "\t" or " " <= char <= "~"):
                raise DigestValueError(field_name, f"character {char!r} cannot be sent")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _token(field_name: str, value: object) -> str:
    if not isinstance(value, str):
        raise DigestValueError(field_name, "must be a str")
    if not value or any(c not in _TCHAR for c in value):
        raise DigestValueError(field_name, f"{value!r} is not a token")
    if len(value) > MAX_VALUE_CHARS:
        raise DigestValueError(field_name, f"longer than {MAX_VALUE_CHARS} characters")
    return value


def _extras(extra: object, known: frozenset[str] | set[str], count: int) -> list[tuple[str, str]]:
    if not isinstance(extra, tuple):
        raise DigestValueError("extra", "must be a tuple of (name, value) pairs")
    out: list[tuple[str, str]] = []
    names: set[str] = set()
    for item in extra:
        if not (isinstance(item, tuple) and len(item) == 2):
            raise DigestValueError("extra", "must be a tuple of (name, value) pairs")
        name, value = item
        token = _token("extra", name)
        if token != token.lower() or token in known or token in names:
            raise DigestValueError("extra", f"bad or repeated parameter name {token!r}")
        names.add(token)
        out.append((token, _quote(f"extra {token}", value)))
    if count + len(out) > MAX_PARAMS:
        raise DigestValueError("extra", f"more than {MAX_PARAMS} parameters in total")
    return out


def _join(parts: list[tuple[str, str]]) -> str:
    text = "Digest " + ", ".join(f"{name}={value}" for name, value in parts)
    if len(text) > MAX_HEADER_CHARS:
        raise DigestValueError("header", f"longer than {MAX_HEADER_CHARS} characters")
    return text


def serialise_challenge(challenge: DigestChallenge) -> str:
    """The ``WWW-Authenticate`` field value for a challenge.

    Quoting follows RFC 7616 clause 3.3: quoted realm, domain, nonce, opaque and
    qop; unquoted stale and algorithm.  Raises :class:`DigestValueError` for values
    that cannot be sent.
    """
    parts = [
        ("realm", _quote("realm", challenge.realm)),
        ("nonce", _quote("nonce", challenge.nonce)),
    ]
    if challenge.domain is not None:
        parts.append(("domain", _quote("domain", challenge.domain)))
    if challenge.opaque is not None:
        parts.append(("opaque", _quote("opaque", challenge.opaque)))
    if challenge.stale:
        parts.append(("stale", "true"))
    if challenge.algorithm is not None:
        parts.append(("algorithm", _token("algorithm", challenge.algorithm)))
    if not isinstance(challenge.qop, tuple):
        raise DigestValueError("qop", "must be a tuple of tokens")
    if challenge.qop:
        options = [_token("qop", option) for option in challenge.qop]
        parts.append(("qop", _quote("qop", ",".join(options))))
    known = {"realm", "nonce", "qop", "opaque", "algorithm", "stale", "domain"}
    parts.extend(_extras(challenge.extra, known, len(parts)))
    return _join(parts)


def serialise_authorization(authorization: DigestAuthorization) -> str:
    """The ``Authorization`` field value for credentials.

    Quoting follows RFC 7616 clause 3.4: quoted username, realm, nonce, uri,
    response, cnonce, opaque (and RFC 3310's auts); unquoted algorithm, qop, nc.
    Raises :class:`DigestValueError` for values that cannot be sent.
    """
    a = authorization
    if not (
        isinstance(a.response, str)
        and len(a.response) == 32
        and all(c in _LHEX for c in a.response)
    ):
        raise DigestValueError("response", "must be 32 lower-case hex digits")
    parts = [
        ("username", _quote("username", a.username)),
        ("realm", _quote("realm", a.realm)),
        ("nonce", _quote("nonce", a.nonce)),
        ("uri", _quote("uri", a.uri)),
        ("response", _quote("response", a.response)),
    ]
    if a.algorithm is not None:
        parts.append(("algorithm", _token("algorithm", a.algorithm)))
    group = (a.qop is None, a.nc is None, a.cnonce is None)
    if any(group) and not all(group):
        raise DigestValueError("qop", "qop, nc and cnonce must be set together")
    if a.cnonce is not None:
        parts.append(("cnonce", _quote("cnonce", a.cnonce)))
    if a.opaque is not None:
        parts.append(("opaque", _quote("opaque", a.opaque)))
    if a.qop is not None:
        parts.append(("qop", _token("qop", a.qop)))
    if a.nc is not None:
        if isinstance(a.nc, bool) or not isinstance(a.nc, int) or not 0 <= a.nc <= 0xFFFFFFFF:
            raise DigestValueError("nc", "must be an int in 0..0xffffffff")
        parts.append(("nc", f"{a.nc:08x}"))
    if a.auts is not None:
        if not isinstance(a.auts, bytes) or len(a.auts) != AUTS_LEN:
            raise DigestValueError("auts", f"must be {AUTS_LEN} octets")
        parts.append(("auts", _quote("auts", base64.b64encode(a.auts).decode("ascii"))))
    known = {
        "username",
        "realm",
        "nonce",
        "uri",
        "response",
        "algorithm",
        "cnonce",
        "opaque",
        "qop",
        "nc",
        "auts",
    }
    parts.extend(_extras(a.extra, known, len(parts)))
    return _join(parts)


# ------------------------------------------------------------------ digest values


def _md5_hex(data: bytes) -> str:
    digest = hashes.Hash(hashes.MD5())
    digest.update(data)
    return digest.finalize().hex()


def _text(field_name: str, value: object) -> bytes:
    if not isinstance(value, str):
        raise DigestValueError(field_name, "must be a str")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DigestValueError(field_name, "is not encodable as UTF-8") from exc


def compute_response(
    *,
    username: str,
    realm: str,
    password: bytes,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None,
    nc: int | None,
    cnonce: str | None,
) -> str:
    """The RFC 2617 clause 3.2.2.1 request-digest, as 32 lower-case hex digits.

    Algorithm "MD5" (which AKAv1-MD5 uses, RFC 3310 clause 3.3) with

        A1 = unq(username) ":" unq(realm) ":" password
        A2 = Method ":" digest-uri-value
        response = MD5-hex(MD5-hex(A1) ":" unq(nonce) ":" nc ":" unq(cnonce)
                           ":" qop ":" MD5-hex(A2))          for qop = "auth"
        response = MD5-hex(MD5-hex(A1) ":" unq(nonce) ":" MD5-hex(A2))   without qop

    ``password`` is raw octets: RES for AKAv1-MD5, empty for a resynchronisation
    request, or the encoded password for plain Digest.  Strings are UTF-8.
    """
    if not isinstance(password, bytes | bytearray):
        raise DigestValueError("password", "must be bytes")
    a1 = _text("username", username) + b":" + _text("realm", realm) + b":" + bytes(password)
    a2 = _text("method", method) + b":" + _text("uri", uri)
    ha1 = _md5_hex(a1).encode("ascii")
    ha2 = _md5_hex(a2).encode("ascii")
    nonce_b = _text("nonce", nonce)
    if qop is None:
        if nc is not None or cnonce is not None:
            raise DigestValueError("qop", "nc and cnonce require qop")
        return _md5_hex(ha1 + b":" + nonce_b + b":" + ha2)
    if qop != QOP_AUTH:
        raise DigestValueError("qop", f"only {QOP_AUTH!r} is supported, got {qop!r}")
    if isinstance(nc, bool) or not isinstance(nc, int) or not 0 <= nc <= 0xFFFFFFFF:
        raise DigestValueError("nc", "must be an int in 0..0xffffffff")
    data = b":".join(
        [ha1, nonce_b, f"{nc:08x}".encode("ascii"), _text("cnonce", cnonce), b"auth", ha2]
    )
    return _md5_hex(data)


# -------------------------------------------------------------------- AKA nonces


def encode_aka_nonce(rand: bytes, autn: bytes, server_data: bytes = b"") -> str:
    """``base64(RAND || AUTN || server data)``, the RFC 3310 clause 3.2 nonce."""
    for name, value, length in (("rand", rand, _RAND_LEN), ("autn", autn, _AUTN_LEN)):
        if not isinstance(value, bytes) or len(value) != length:
            raise DigestValueError(name, f"must be {length} octets")
    if not isinstance(server_data, bytes) or len(server_data) > MAX_SERVER_DATA:
        raise DigestValueError("server_data", f"must be at most {MAX_SERVER_DATA} octets")
    return base64.b64encode(rand + autn + server_data).decode("ascii")


def decode_aka_nonce(nonce: str) -> AkaNonce:
    """Split an RFC 3310 nonce into RAND, AUTN and server data.

    Strict base64 (standard alphabet, padding required); raises
    :class:`DigestParseError` with an offset into ``nonce``.
    """
    if not isinstance(nonce, str):
        raise DigestParseError(0, "nonce must be a str", "nonce")
    limit = 4 * ((_RAND_LEN + _AUTN_LEN + MAX_SERVER_DATA + 2) // 3)
    if len(nonce) > limit:
        raise DigestParseError(limit, "nonce too long", "nonce")
    if not _IS_BASE64_TEXT(nonce):
        for index, char in enumerate(nonce):
            if not (char.isascii() and (char.isalnum() or char in "+/=")):
                raise DigestParseError(index, "character not in the base64 alphabet", "nonce")
    try:
        raw = base64.b64decode(nonce.encode("ascii"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DigestParseError(0, "not valid base64", "nonce") from exc
    if len(raw) < _RAND_LEN + _AUTN_LEN:
        raise DigestParseError(0, "shorter than RAND || AUTN (32 octets)", "nonce")
    return AkaNonce(
        rand=raw[:_RAND_LEN],
        autn=raw[_RAND_LEN : _RAND_LEN + _AUTN_LEN],
        server_data=raw[_RAND_LEN + _AUTN_LEN :],
    )


# --------------------------------------------------------------- server and client


def make_aka_challenge(
    vector: AuthVector, *, realm: str, now: float, rand: Rand, stale: bool = False
) -> DigestChallenge:
    """A Digest AKA challenge for an authentication vector (RFC 3310 clause 3.2).

    The nonce is ``base64(RAND || AUTN || T)`` where T, the server data, is the
    issue time ``int(now)`` as 8 octets big-endian, so that :func:`verify_response`
    can tell a stale nonce.  ``opaque`` is 16 octets from ``rand`` in hex.
    qop is "auth", algorithm AKAv1-MD5.
    """
    if isinstance(now, bool) or not isinstance(now, int | float) or not 0 <= now < 2**63:
        raise DigestValueError("now", "must be a non-negative number of seconds")
    issued = int(now).to_bytes(_TIME_LEN, "big")
    opaque_raw = rand(16)
    if not isinstance(opaque_raw, bytes) or len(opaque_raw) != 16:
        raise DigestValueError("rand", "the random source must return the octets requested")
    challenge = DigestChallenge(
        realm=realm,
        nonce=encode_aka_nonce(vector.rand, vector.autn, issued),
        qop=(QOP_AUTH,),
        opaque=opaque_raw.hex(),
        algorithm=ALGORITHM_AKAV1_MD5,
        stale=stale,
    )
    # Reject an unsendable realm here, not on the wire (the other fields are made here:
    # base64, hex and tokens, always sendable).
    _quote("realm", realm)
    return challenge


def _check_aka_challenge(challenge: DigestChallenge) -> None:
    if challenge.algorithm is None or challenge.algorithm.lower() != ALGORITHM_AKAV1_MD5.lower():
        raise DigestBindingError("algorithm", f"challenge is not {ALGORITHM_AKAV1_MD5}")
    if QOP_AUTH not in challenge.qop:
        raise DigestBindingError("qop", f"challenge does not offer qop {QOP_AUTH!r}")


def _client_answer(
    challenge: DigestChallenge,
    *,
    username: str,
    password: bytes,
    auts: bytes | None,
    method: str,
    uri: str,
    rand: Rand,
    nc: int,
) -> DigestAuthorization:
    _check_aka_challenge(challenge)
    cnonce_raw = rand(16)
    if not isinstance(cnonce_raw, bytes) or len(cnonce_raw) != 16:
        raise DigestValueError("rand", "the random source must return the octets requested")
    cnonce = cnonce_raw.hex()
    response = compute_response(
        username=username,
        realm=challenge.realm,
        password=password,
        method=method,
        uri=uri,
        nonce=challenge.nonce,
        qop=QOP_AUTH,
        nc=nc,
        cnonce=cnonce,
    )
    authorization = DigestAuthorization(
        username=username,
        realm=challenge.realm,
        nonce=challenge.nonce,
        uri=uri,
        response=response,
        algorithm=challenge.algorithm,
        cnonce=cnonce,
        opaque=challenge.opaque,
        qop=QOP_AUTH,
        nc=nc,
        auts=auts,
    )
    serialise_authorization(authorization)  # every field must be sendable
    return authorization


def respond(
    challenge: DigestChallenge,
    *,
    username: str,
    res: bytes,
    method: str,
    uri: str,
    rand: Rand,
    nc: int = 1,
) -> DigestAuthorization:
    """The client's credentials for an AKA challenge, with RES as the password.

    Call after the USIM accepted RAND/AUTN from :func:`decode_aka_nonce` of the
    challenge's nonce.  ``res`` is RES as raw octets (4..16, RFC 3310 clause 3.3);
    the cnonce is 16 octets from ``rand`` in hex; ``nc`` the nonce count.
    """
    if not isinstance(res, bytes) or not _RES_MIN <= len(res) <= _RES_MAX:
        raise DigestValueError("res", f"must be {_RES_MIN}..{_RES_MAX} octets")
    return _client_answer(
        challenge,
        username=username,
        password=res,
        auts=None,
        method=method,
        uri=uri,
        rand=rand,
        nc=nc,
    )


def respond_resync(
    challenge: DigestChallenge,
    *,
    username: str,
    auts: bytes,
    method: str,
    uri: str,
    rand: Rand,
    nc: int = 1,
) -> DigestAuthorization:
    """The client's resynchronisation request: the ``auts`` directive with the
    USIM's 14-octet AUTS, and a response computed with an empty password
    (RFC 3310: "when the AUTS is present, the included 'response' parameter is
    calculated using an empty password").
    """
    if not isinstance(auts, bytes) or len(auts) != AUTS_LEN:
        raise DigestValueError("auts", f"must be {AUTS_LEN} octets")
    return _client_answer(
        challenge,
        username=username,
        password=b"",
        auts=auts,
        method=method,
        uri=uri,
        rand=rand,
        nc=nc,
    )


def _check_binding(
    authorization: DigestAuthorization,
    challenge: DigestChallenge,
    *,
    uri: str,
    username: str | None,
) -> None:
    a = authorization
    _check_aka_challenge(challenge)
    if username is not None and a.username != username:
        raise DigestBindingError("username", "does not match the expected identity")
    if a.realm != challenge.realm:
        raise DigestBindingError("realm", "does not match the challenge")
    if a.nonce != challenge.nonce:
        raise DigestBindingError("nonce", "does not match the challenge")
    if a.opaque != challenge.opaque:
        raise DigestBindingError("opaque", "does not match the challenge")
    if a.algorithm is None or a.algorithm.lower() != ALGORITHM_AKAV1_MD5.lower():
        raise DigestBindingError("algorithm", f"must be {ALGORITHM_AKAV1_MD5}")
    if a.uri != uri:
        raise DigestBindingError("uri", "does not match the request target")
    if a.qop != QOP_AUTH:
        raise DigestBindingError("qop", f"must be {QOP_AUTH!r}")
    if a.nc is None or a.nc < 1:
        raise DigestBindingError("nc", "must be at least 1")


def _check_digest(authorization: DigestAuthorization, *, password: bytes, method: str) -> None:
    a = authorization
    expected = compute_response(
        username=a.username,
        realm=a.realm,
        password=password,
        method=method,
        uri=a.uri,
        nonce=a.nonce,
        qop=a.qop,
        nc=a.nc,
        cnonce=a.cnonce,
    )
    if not hmac.compare_digest(expected.encode("ascii"), a.response.encode("ascii")):
        raise DigestAuthError()


def verify_response(
    authorization: DigestAuthorization,
    *,
    challenge: DigestChallenge,
    xres: bytes,
    method: str,
    uri: str,
    now: float,
    max_age: float = DEFAULT_NONCE_LIFETIME,
    username: str | None = None,
) -> int:
    """Server-side check of AKA credentials against the challenge it issued.

    ``challenge`` is the server's own record of what it sent (from
    :func:`make_aka_challenge`), ``xres`` the vector's XRES, ``method``/``uri`` the
    request's method and request-target, ``username`` the expected identity if
    known.  Checks, in order: the credentials belong to the challenge and request
    (:class:`DigestBindingError`; an ``auts`` present means a resynchronisation
    request, see :func:`verify_resync`), the request-digest with XRES as the
    password (:class:`DigestAuthError`), then nonce age against ``now`` and
    ``max_age`` (:class:`DigestStaleError`, raised only for a correct digest, as
    RFC 2617 clause 3.2.1 requires for stale=true).  Returns the nonce count, for
    the caller's replay bookkeeping.
    """
    if not isinstance(xres, bytes) or not _RES_MIN <= len(xres) <= _RES_MAX:
        raise DigestValueError("xres", f"must be {_RES_MIN}..{_RES_MAX} octets")
    _check_binding(authorization, challenge, uri=uri, username=username)
    if authorization.auts is not None:
        raise DigestBindingError("auts", "present: this is a resynchronisation request")
    _check_digest(authorization, password=xres, method=method)
    server_data = decode_aka_nonce(challenge.nonce).server_data
    if len(server_data) != _TIME_LEN:
        raise DigestValueError("challenge", "nonce was not made by make_aka_challenge")
    age = now - int.from_bytes(server_data, "big")
    if age < 0 or age > max_age:
        raise DigestStaleError(age)
    assert authorization.nc is not None  # checked by _check_binding
    return authorization.nc


def verify_resync(
    authorization: DigestAuthorization,
    *,
    challenge: DigestChallenge,
    method: str,
    uri: str,
    username: str | None = None,
) -> bytes:
    """Server-side check of a resynchronisation request; returns the AUTS.

    The same binding checks as :func:`verify_response`, ``auts`` must be present,
    and the request-digest must be computed with the empty password.  The AUTS is
    then for :func:`mbmssec.impl.protocols.aka.auc_resync` together with the challenge's RAND.
    Nonce age is not checked: a resynchronisation is answered with a new vector.
    """
    _check_binding(authorization, challenge, uri=uri, username=username)
    if authorization.auts is None:
        raise DigestBindingError("auts", "absent: not a resynchronisation request")
    _check_digest(authorization, password=b"", method=method)
    return authorization.auts

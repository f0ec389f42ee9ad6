"""MIKEY (RFC 3830) payloads and their wire format, as the MBMS TEK delivery uses them.

This module is the bounded, strict parse/serialise layer of MIKEY pre-shared-key
mode; the cryptography is in :mod:`mbmssec.impl.protocols.mikey_crypto` and the message-level
API (the BM-SC's TEK delivery message and the UE's verification message) in
:mod:`mbmssec.impl.protocols.mikey_messages`.

Covered (field layouts per RFC 3830 section 6, network byte order):

* Common header HDR (6.1): version 1, data type, next payload, V flag, PRF func
  (MIKEY-1), CSB ID, #CS, CS ID map type SRTP-ID with (policy no, SSRC, ROC) entries.
* T (6.6) with TS types NTP-UTC and NTP (64 bits) and COUNTER (32 bits).
* ID (6.7) of types NAI and URI; RAND (6.11); V (6.9); ERR (6.12).
* SP (6.10) with the SRTP policy parameters of 6.10.1 (see :class:`SrtpPolicy`).
* KEMAC (6.2) with Encr alg NULL, AES-CM-128, AES-KW-128 and Mac alg NULL,
  HMAC-SHA-1-160; its Encr data is a chain of Key data sub-payloads (6.13) of
  types TGK, TGK+SALT, TEK, TEK+SALT with key validity NULL, SPI/MKI or interval
  (6.14).
* GENERAL EXTENSION (6.15), including the private-use type below.

Three ways in, one wire format. The payload objects (:class:`MikeyMessage` and the
``*Payload`` classes, :func:`parse_message`, :func:`serialise_message`) are the general
API. Beneath them is a raw codec that makes no object per field: encoders that take
field values and return a payload's bytes (:func:`encode_header`, :func:`encode_timestamp`,
...) with precompiled :class:`struct.Struct` s, checking a field only when packing it
fails (so that the error names it), and one-pass readers that return each payload's
fields as a tuple (:func:`scan_message`, :func:`scan_key_data_chain`). And readers
learn layouts (:class:`Layout`): once a message of some size and structure has been read
field by field, a later one of the same size whose structural fields (next payloads,
checked type codes, lengths) are the same is unpacked in one call, with a result that
is the field-by-field reading's by construction (:func:`read_message`,
:func:`read_key_data_chain`, :func:`symbolic_message`). The message layer uses the
last two; every rejection below is the same whichever way a message is read.

Rejection rules. MIKEY payloads carry no generic length, so a payload this parser
does not know cannot be skipped and the whole message is rejected: unknown payload
types raise :class:`MikeyParseError`; payload types RFC 3830 defines for other modes
(PKE, DH, SIGN, CERT, CHASH), versions other than 1, unsupported data types, PRF
functions, CS ID map types, TS types, ID types, encryption and MAC algorithms raise
:class:`UnsupportedError`, whose ``error_no`` names the ERR payload error number
(6.12) a responder would report. Bad lengths, truncation and trailing bytes raise
:class:`MikeyParseError` with the byte offset and payload name. General Extension types
this module does not interpret are kept as raw :class:`GeneralExtensionPayload`.

MBMS TEK fetch extension (private use)
--------------------------------------
The MBMS proposal leaves open how the BM-SC tells the UE when to fetch the next
TEK. This project carries it in a General Extension payload (RFC 3830 6.15) of
type ``255`` (:data:`MBMS_TEK_FETCH_EXT_TYPE`): the top value of the 8-bit Type
field, the end of the range that RFC 3830's IANA considerations set aside for
private use, far from the registered types (0 Vendor-ID, 1 SDP-IDs and later
registrations counting up from 2). The extension's ``Data`` field is::

    version (8 bits) = 1
    then one or more items:  tag (8 bits) | length (8 bits) | value (length bytes)

    tag 1  FETCH_AT_TIME        length 8: the time to fetch a new TEK as a 64-bit
                                NTP-UTC timestamp (same format as the T payload's
                                NTP-UTC value: 32-bit seconds since 1900, 32-bit
                                fraction)
    tag 2  FETCH_AT_SRTP_INDEX  length 6: the SRTP packet index (RFC 3711 3.3.1,
                                i = 2^16 * ROC + SEQ, 48 bits) from which the UE
                                is to have fetched a new TEK
    tag 3  TEK_LIFETIME         length 4: the TEK lifetime in seconds (uint32)

At most one of tags 1 and 2, each tag at most once, at least one item; an unknown
tag, a wrong item length or a repeated tag is a :class:`MikeyParseError`, a version other
than 1 an :class:`UnsupportedError`. Both fetch forms exist because the proposal
leaves the choice (wall-clock time versus media position) open.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from itertools import chain, compress, repeat
from operator import attrgetter, is_not, itemgetter
from typing import Any, ClassVar, Final, NamedTuple, NoReturn, TypeAlias, TypeVar

from mbmssec.errors import MbmssecError

__all__ = [
    "MBMS_TEK_FETCH_EXT_TYPE",
    "MIKEY_VERSION",
    "TS_VALUE_LENGTH",
    "At",
    "CommonHeader",
    "CsIdMapType",
    "DataType",
    "EncodeError",
    "EncrAlg",
    "ErrorNo",
    "ErrorPayload",
    "FetchAtSrtpIndex",
    "FetchAtTime",
    "FetchHint",
    "GeneralExtType",
    "GeneralExtensionPayload",
    "IdPayload",
    "IdType",
    "IntervalValidity",
    "KemacPayload",
    "KeyDataPayload",
    "KeyDataType",
    "KeyValidity",
    "KvType",
    "Layout",
    "MacAlg",
    "MikeyAuthError",
    "MikeyError",
    "MikeyMessage",
    "MikeyParseError",
    "MikeyReplayError",
    "NullValidity",
    "Payload",
    "PayloadType",
    "PolicyParam",
    "PrfFunc",
    "ProtType",
    "RandPayload",
    "RawHeader",
    "RawKeyData",
    "RawPayload",
    "SecurityPolicyPayload",
    "SpiValidity",
    "SrtpAuthAlg",
    "SrtpCs",
    "SrtpEncrAlg",
    "SrtpFecOrder",
    "SrtpParamType",
    "SrtpPolicy",
    "SrtpPrf",
    "TekFetchExtension",
    "TimestampPayload",
    "TsType",
    "UnsupportedError",
    "VerificationPayload",
    "checked_instance",
    "decode_fetch_data",
    "encode_ext",
    "encode_fetch_data",
    "encode_header",
    "encode_id",
    "encode_kemac",
    "encode_key_data",
    "encode_policy_params",
    "encode_rand",
    "encode_sp",
    "encode_timestamp",
    "header_of",
    "join_payloads",
    "mac_length",
    "parse_key_data_chain",
    "parse_message",
    "payload_name",
    "read_key_data_chain",
    "read_message",
    "scan_key_data_chain",
    "scan_message",
    "serialise_key_data_chain",
    "serialise_message",
    "split_messages",
    "symbolic_key_data_chain",
    "symbolic_message",
]

MIKEY_VERSION = 1
"""The only MIKEY version defined (RFC 3830 6.1)."""

MBMS_TEK_FETCH_EXT_TYPE = 255
"""General Extension type of the private-use MBMS TEK fetch extension (module docstring)."""


# --------------------------------------------------------------------------- codes


class DataType(IntEnum):
    """HDR data type (RFC 3830 6.1, table 6.1.a; 7-10 from RFC 4650 and RFC 4738)."""

    PSK_INIT = 0
    PSK_RESP = 1
    PK_INIT = 2
    PK_RESP = 3
    DH_INIT = 4
    DH_RESP = 5
    ERROR = 6
    DHHMAC_INIT = 7
    DHHMAC_RESP = 8
    RSA_R_INIT = 9
    RSA_R_RESP = 10


SUPPORTED_DATA_TYPES = frozenset({DataType.PSK_INIT, DataType.PSK_RESP, DataType.ERROR})


class PayloadType(IntEnum):
    """Next payload values (RFC 3830 6.1, table 6.1.b)."""

    LAST = 0
    KEMAC = 1
    PKE = 2
    DH = 3
    SIGN = 4
    T = 5
    ID = 6
    CERT = 7
    CHASH = 8
    V = 9
    SP = 10
    RAND = 11
    ERR = 12
    KEY_DATA = 20
    GENERAL_EXT = 21


def payload_name(ptype: PayloadType) -> str:
    """The name used for a payload type in error reports (as the payload classes' NAME)."""
    return {PayloadType.KEY_DATA: "KEY DATA", PayloadType.GENERAL_EXT: "EXT"}.get(ptype, ptype.name)


# Payloads RFC 3830 defines for the public-key and DH modes; recognised, not parsed.
_OTHER_MODE_PAYLOADS = frozenset(
    {PayloadType.PKE, PayloadType.DH, PayloadType.SIGN, PayloadType.CERT, PayloadType.CHASH}
)


class PrfFunc(IntEnum):
    """HDR PRF func (RFC 3830 6.1, table 6.1.c)."""

    MIKEY_1 = 0


class CsIdMapType(IntEnum):
    """HDR CS ID map type (RFC 3830 6.1, table 6.1.d)."""

    SRTP_ID = 0


class TsType(IntEnum):
    """T payload TS type (RFC 3830 6.6, table 6.6)."""

    NTP_UTC = 0
    NTP = 1
    COUNTER = 2


TS_VALUE_LENGTH: Final[Mapping[TsType, int]] = {TsType.NTP_UTC: 8, TsType.NTP: 8, TsType.COUNTER: 4}
"""Bytes of the T payload's TS value field for each TS type (RFC 3830 6.6)."""


class IdType(IntEnum):
    """ID payload ID type (RFC 3830 6.7, table 6.7.a)."""

    NAI = 0
    URI = 1


class EncrAlg(IntEnum):
    """KEMAC Encr alg (RFC 3830 6.2, table 6.2.a)."""

    NULL = 0
    AES_CM_128 = 1
    AES_KW_128 = 2


class MacAlg(IntEnum):
    """KEMAC Mac alg and V Auth alg (RFC 3830 6.2, table 6.2.b)."""

    NULL = 0
    HMAC_SHA_1_160 = 1


_MAC_LENGTH = {MacAlg.NULL: 0, MacAlg.HMAC_SHA_1_160: 20}


def mac_length(alg: MacAlg) -> int:
    """Length in bytes of the MAC field for ``alg`` (RFC 3830 6.2)."""
    return _MAC_LENGTH[alg]


class ProtType(IntEnum):
    """SP payload Prot type (RFC 3830 6.10, table 6.10)."""

    SRTP = 0


class SrtpParamType(IntEnum):
    """SRTP policy parameter types (RFC 3830 6.10.1, table 6.10.1.a)."""

    ENCR_ALG = 0
    ENCR_KEY_LEN = 1
    AUTH_ALG = 2
    AUTH_KEY_LEN = 3
    SALT_KEY_LEN = 4
    PRF = 5
    KEY_DERIVATION_RATE = 6
    SRTP_ENCRYPTION = 7
    SRTCP_ENCRYPTION = 8
    FEC_ORDER = 9
    SRTP_AUTHENTICATION = 10
    AUTH_TAG_LEN = 11
    SRTP_PREFIX_LEN = 12


class SrtpEncrAlg(IntEnum):
    """SRTP encryption algorithm values (RFC 3830 6.10.1, table 6.10.1.b)."""

    NULL = 0
    AES_CM = 1
    AES_F8 = 2


class SrtpAuthAlg(IntEnum):
    """SRTP authentication algorithm values (RFC 3830 6.10.1, table 6.10.1.c)."""

    NULL = 0
    HMAC_SHA_1 = 1


class SrtpPrf(IntEnum):
    """SRTP PRF values (RFC 3830 6.10.1, table 6.10.1.d)."""

    AES_CM = 0


class SrtpFecOrder(IntEnum):
    """Sender's FEC order values (RFC 3830 6.10.1, table 6.10.1.e)."""

    FEC_SRTP = 0


class ErrorNo(IntEnum):
    """ERR payload error numbers (RFC 3830 6.12, table 6.12)."""

    AUTH_FAILURE = 0
    INVALID_TS = 1
    INVALID_PRF = 2
    INVALID_MAC = 3
    INVALID_EA = 4
    INVALID_HA = 5
    INVALID_DH = 6
    INVALID_ID = 7
    INVALID_CERT = 8
    INVALID_SP = 9
    INVALID_SPPAR = 10
    INVALID_DT = 11
    UNSPECIFIED = 12


class KeyDataType(IntEnum):
    """Key data sub-payload Type (RFC 3830 6.13, table 6.13.a)."""

    TGK = 0
    TGK_SALT = 1
    TEK = 2
    TEK_SALT = 3

    @property
    def has_salt(self) -> bool:
        """Whether the sub-payload carries the Salt len/Salt data fields."""
        return self in (KeyDataType.TGK_SALT, KeyDataType.TEK_SALT)


class KvType(IntEnum):
    """Key data sub-payload KV (key validity) type (RFC 3830 6.13, table 6.13.b)."""

    NULL = 0
    SPI = 1
    INTERVAL = 2


class GeneralExtType(IntEnum):
    """General Extension types (RFC 3830 6.15, table 6.15) plus this project's private one."""

    VENDOR_ID = 0
    SDP_IDS = 1
    MBMS_TEK_FETCH = MBMS_TEK_FETCH_EXT_TYPE


class _FetchTag(IntEnum):
    FETCH_AT_TIME = 1
    FETCH_AT_SRTP_INDEX = 2
    TEK_LIFETIME = 3


# --------------------------------------------------------------------------- errors


class MikeyError(MbmssecError):
    """Base of every error this MIKEY implementation raises on purpose.

    ``error_no`` is the RFC 3830 6.12 error number a responder would put in an ERR
    payload for this failure, or ``None`` where RFC 3830 gives none.
    """

    def __init__(self, message: str, *, error_no: ErrorNo | None = None) -> None:
        super().__init__(message)
        self.error_no = error_no


class MikeyParseError(MikeyError):
    """Malformed input: truncation, a bad length, trailing bytes, an unknown payload type.

    ``offset`` is the byte offset in the message where the problem was found and
    ``payload`` the name of the payload being read (``"HDR"``, ``"KEMAC"``, ...).
    """

    def __init__(
        self,
        reason: str,
        *,
        offset: int,
        payload: str,
        error_no: ErrorNo | None = ErrorNo.UNSPECIFIED,
    ) -> None:
        super().__init__(f"{payload} at byte {offset}: {reason}", error_no=error_no)
        self.reason = reason
        self.offset = offset
        self.payload = payload


class UnsupportedError(MikeyError):
    """Well-formed input using something this implementation does not support.

    (Another MIKEY version, data type, PRF, algorithm, ...). ``offset`` and
    ``payload`` locate it as for :class:`MikeyParseError` (``None`` when the problem is
    not tied to a position, e.g. a builder argument).
    """

    def __init__(
        self,
        reason: str,
        *,
        offset: int | None = None,
        payload: str | None = None,
        error_no: ErrorNo | None = ErrorNo.UNSPECIFIED,
    ) -> None:
        where = f"{payload} at byte {offset}: " if payload is not None else ""
        super().__init__(f"{where}{reason}", error_no=error_no)
        self.reason = reason
        self.offset = offset
        self.payload = payload


class MikeyAuthError(MikeyError):
    """The message failed authentication (MAC, verification data or key unwrap).

    Deliberately opaque: it says nothing about which check failed or why.
    """

    def __init__(self) -> None:
        super().__init__("MIKEY message authentication failed", error_no=ErrorNo.AUTH_FAILURE)


class MikeyReplayError(MikeyError):
    """An authentic message that replay protection rejects (RFC 3830 5.4)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"replay protection: {reason}", error_no=ErrorNo.INVALID_TS)
        self.reason = reason


class EncodeError(MikeyError):
    """A value handed to a serialiser or builder does not fit the wire format."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, error_no=None)
        self.reason = reason


# --------------------------------------------------------------------------- wire helpers

# Every fixed group of fields is one precompiled Struct (network byte order); encoders
# return a payload's bytes after its Next payload field (the message joins them with
# the next-payload bytes), and the readers work on absolute positions in one pass.
_HDR = struct.Struct(">BBBBIBB")  # version, data type, next, V|PRF func, CSB ID, #CS, map
_HDR_TAIL = struct.Struct(">IBB")  # CSB ID, #CS, CS ID map type
_SRTP_ID = struct.Struct(">BII")  # policy no, SSRC, ROC
_B_H = struct.Struct(">BH")  # an 8-bit field and a 16-bit length (ID, KEMAC, EXT, ERR)
_B_B_H = struct.Struct(">BBH")  # SP head; Key data head; next payload + 8 + 16 bits
_TS_BODY = {
    TsType.NTP_UTC: struct.Struct(">BQ"),
    TsType.NTP: struct.Struct(">BQ"),
    TsType.COUNTER: struct.Struct(">BI"),
}
_BYTE = tuple(bytes((i,)) for i in range(256))
"""The one-byte string of each value: next-payload and length bytes without packing."""

_E = TypeVar("_E", bound=IntEnum)


def _by_value(cls: type[_E]) -> dict[int, _E]:
    """Each member of ``cls`` by its value, for a lookup that costs no exception."""
    return {int(member): member for member in cls}


_DATA_TYPES = _by_value(DataType)
_PRF_FUNCS = _by_value(PrfFunc)
_CS_ID_MAP_TYPES = _by_value(CsIdMapType)
_TS_TYPES = _by_value(TsType)
_ID_TYPES = _by_value(IdType)
_ENCR_ALGS = _by_value(EncrAlg)
_MAC_ALGS = _by_value(MacAlg)
_PROT_TYPES = _by_value(ProtType)
_KEY_DATA_TYPES = _by_value(KeyDataType)
_KV_TYPES = _by_value(KvType)
_PAYLOAD_NAMES = {int(t): payload_name(t) for t in PayloadType}
_SALTED = frozenset({KeyDataType.TGK_SALT, KeyDataType.TEK_SALT})
# Payload types and key validity types as plain values, for the readers' comparisons.
_LAST, _KEMAC, _T, _ID, _V, _SP, _RAND, _ERR, _KEY_DATA, _EXT = (
    int(t)
    for t in (
        PayloadType.LAST,
        PayloadType.KEMAC,
        PayloadType.T,
        PayloadType.ID,
        PayloadType.V,
        PayloadType.SP,
        PayloadType.RAND,
        PayloadType.ERR,
        PayloadType.KEY_DATA,
        PayloadType.GENERAL_EXT,
    )
)
_KV_NULL, _KV_SPI, _KV_INTERVAL = KvType.NULL, KvType.SPI, KvType.INTERVAL

_D = TypeVar("_D")
_new = object.__new__


def checked_instance(cls: type[_D], /, **fields: object) -> _D:
    """An instance of the frozen dataclass ``cls`` from values already checked, with
    every field given: what its generated ``__init__`` makes, without the per-field
    ``object.__setattr__`` calls that make a frozen instance slow to build (the
    readers of this module and of the message layer make one per payload read)."""
    instance = _new(cls)
    instance.__dict__.update(fields)
    return instance


def _short(
    end: int, pos: int, base: int, payload: str, fields: tuple[tuple[str, int], ...]
) -> NoReturn:
    """Raise the truncation error of the first of ``fields`` (name, width), read from
    ``pos`` on, that does not fit before ``end``; offsets are ``base`` + position."""
    for what, width in fields:
        if pos + width > end:
            raise MikeyParseError(
                f"truncated: {what} needs {width} bytes, {end - pos} left",
                offset=base + pos,
                payload=payload,
            )
        pos += width
    raise AssertionError("every field fits")


def _unsupported(
    what: str, value: int, offset: int, payload: str, error_no: ErrorNo
) -> UnsupportedError:
    return UnsupportedError(
        f"{what} {value} not supported", offset=offset, payload=payload, error_no=error_no
    )


def _check_uint(value: int, bits: int, what: str) -> None:
    if not 0 <= value < (1 << bits):
        raise EncodeError(f"{what} {value} does not fit in {bits} bits") from None


def _check_len(data: bytes, bits: int, what: str, *, minimum: int = 0) -> None:
    if not minimum <= len(data) < (1 << bits):
        raise EncodeError(
            f"{what} length {len(data)} outside {minimum}..{(1 << bits) - 1} bytes"
        ) from None


# --------------------------------------------------------------------------- header


@dataclass(frozen=True)
class SrtpCs:
    """One SRTP-ID CS ID map entry (RFC 3830 6.1.1): the crypto session of one SRTP stream."""

    policy_no: int
    ssrc: int
    roc: int = 0


@dataclass(frozen=True)
class CommonHeader:
    """The HDR payload (RFC 3830 6.1); ``#CS`` is ``len(cs_map)``."""

    data_type: DataType
    csb_id: int
    cs_map: tuple[SrtpCs, ...] = ()
    v_flag: bool = False
    prf_func: PrfFunc = PrfFunc.MIKEY_1
    cs_id_map_type: CsIdMapType = CsIdMapType.SRTP_ID
    version: int = MIKEY_VERSION

    NAME: ClassVar[str] = "HDR"


# --------------------------------------------------------------------------- payloads


@dataclass(frozen=True)
class TimestampPayload:
    """T payload (RFC 3830 6.6): a 64-bit NTP(-UTC) timestamp or a 32-bit counter."""

    ts_type: TsType
    value: int

    PAYLOAD_TYPE: ClassVar[PayloadType] = PayloadType.T
    NAME: ClassVar[str] = "T"

    def value_bytes(self) -> bytes:
        """The TS value field as sent (8 bytes for NTP types, 4 for COUNTER)."""
        n = TS_VALUE_LENGTH[self.ts_type]
        if not 0 <= self.value < 1 << (8 * n):
            _check_uint(self.value, 8 * n, f"{self.ts_type.name} TS value")
        return self.value.to_bytes(n, "big")


@dataclass(frozen=True)
class RandPayload:
    """RAND payload (RFC 3830 6.11)."""

    rand: bytes

    PAYLOAD_TYPE: ClassVar[PayloadType] = PayloadType.RAND
    NAME: ClassVar[str] = "RAND"


@dataclass(frozen=True)
class IdPayload:
    """ID payload (RFC 3830 6.7): an NAI or URI identity."""

    id_type: IdType
    data: bytes

    PAYLOAD_TYPE: ClassVar[PayloadType] = PayloadType.ID
    NAME: ClassVar[str] = "ID"


@dataclass(frozen=True)
class PolicyParam:
    """One Type/Length/Value policy parameter of an SP payload (RFC 3830 6.10)."""

    param_type: int
    value: bytes


@dataclass(frozen=True)
class SecurityPolicyPayload:
    """SP payload (RFC 3830 6.10) with its raw parameters; see :class:`SrtpPolicy`."""

    policy_no: int
    prot_type: ProtType
    params: tuple[PolicyParam, ...]

    PAYLOAD_TYPE: ClassVar[PayloadType] = PayloadType.SP
    NAME: ClassVar[str] = "SP"


@dataclass(frozen=True)
class KemacPayload:
    """KEMAC payload (RFC 3830 6.2); ``encr_data`` is the (encrypted) Key data chain."""

    encr_alg: EncrAlg
    encr_data: bytes
    mac_alg: MacAlg
    mac: bytes

    PAYLOAD_TYPE: ClassVar[PayloadType] = PayloadType.KEMAC
    NAME: ClassVar[str] = "KEMAC"


@dataclass(frozen=True)
class VerificationPayload:
    """V payload (RFC 3830 6.9): the responder's verification data."""

    auth_alg: MacAlg
    ver_data: bytes

    PAYLOAD_TYPE: ClassVar[PayloadType] = PayloadType.V
    NAME: ClassVar[str] = "V"


@dataclass(frozen=True)
class ErrorPayload:
    """ERR payload (RFC 3830 6.12); ``error_no`` is kept raw so later RFCs' numbers parse."""

    error_no: int
    reserved: int = 0

    PAYLOAD_TYPE: ClassVar[PayloadType] = PayloadType.ERR
    NAME: ClassVar[str] = "ERR"


@dataclass(frozen=True)
class GeneralExtensionPayload:
    """GENERAL EXTENSION payload (RFC 3830 6.15), type and data kept raw."""

    ext_type: int
    data: bytes

    PAYLOAD_TYPE: ClassVar[PayloadType] = PayloadType.GENERAL_EXT
    NAME: ClassVar[str] = "EXT"


@dataclass(frozen=True)
class NullValidity:
    """Key validity NULL: no usage restriction (RFC 3830 6.14)."""

    KV_TYPE: ClassVar[KvType] = KvType.NULL


@dataclass(frozen=True)
class SpiValidity:
    """Key validity SPI/MKI: for SRTP, the MKI the key is used with (RFC 3830 6.14)."""

    spi: bytes

    KV_TYPE: ClassVar[KvType] = KvType.SPI


@dataclass(frozen=True)
class IntervalValidity:
    """Key validity interval (RFC 3830 6.14); for SRTP the bounds are SRTP packet indices."""

    valid_from: bytes
    valid_to: bytes

    KV_TYPE: ClassVar[KvType] = KvType.INTERVAL


KeyValidity: TypeAlias = NullValidity | SpiValidity | IntervalValidity


@dataclass(frozen=True)
class KeyDataPayload:
    """Key data sub-payload (RFC 3830 6.13), carried inside the KEMAC Encr data."""

    key_type: KeyDataType
    key: bytes
    salt: bytes | None = None
    validity: KeyValidity = field(default_factory=NullValidity)

    PAYLOAD_TYPE: ClassVar[PayloadType] = PayloadType.KEY_DATA
    NAME: ClassVar[str] = "KEY DATA"


Payload: TypeAlias = (
    TimestampPayload
    | RandPayload
    | IdPayload
    | SecurityPolicyPayload
    | KemacPayload
    | VerificationPayload
    | ErrorPayload
    | GeneralExtensionPayload
)


@dataclass(frozen=True)
class MikeyMessage:
    """A whole MIKEY message: the common header and the payloads in wire order."""

    header: CommonHeader
    payloads: tuple[Payload, ...]
    offsets: tuple[int, ...] = field(default=(), compare=False)
    """Byte offset of each payload in the parsed message (empty for built messages)."""

    def find(self, cls: type[Payload]) -> tuple[Payload, ...]:
        """All payloads of one class, in wire order."""
        return tuple(p for p in self.payloads if isinstance(p, cls))


# --------------------------------------------------------------------------- SRTP policy


_SRTP_DEFAULT_NAMES: dict[SrtpParamType, str] = {
    SrtpParamType.ENCR_ALG: "encr_alg",
    SrtpParamType.ENCR_KEY_LEN: "encr_key_len",
    SrtpParamType.AUTH_ALG: "auth_alg",
    SrtpParamType.AUTH_KEY_LEN: "auth_key_len",
    SrtpParamType.SALT_KEY_LEN: "salt_key_len",
    SrtpParamType.PRF: "prf",
    SrtpParamType.KEY_DERIVATION_RATE: "kdr",
    SrtpParamType.SRTP_ENCRYPTION: "srtp_encryption",
    SrtpParamType.SRTCP_ENCRYPTION: "srtcp_encryption",
    SrtpParamType.FEC_ORDER: "fec_order",
    SrtpParamType.SRTP_AUTHENTICATION: "srtp_authentication",
    SrtpParamType.AUTH_TAG_LEN: "auth_tag_len",
    SrtpParamType.SRTP_PREFIX_LEN: "srtp_prefix_len",
}

_SRTP_ENUMS: dict[SrtpParamType, type[IntEnum]] = {
    SrtpParamType.ENCR_ALG: SrtpEncrAlg,
    SrtpParamType.AUTH_ALG: SrtpAuthAlg,
    SrtpParamType.PRF: SrtpPrf,
    SrtpParamType.FEC_ORDER: SrtpFecOrder,
}

_SRTP_ENUM_VALUES: dict[SrtpParamType, dict[int, IntEnum]] = {
    ptype: dict(_by_value(cls)) for ptype, cls in _SRTP_ENUMS.items()
}

_SRTP_FLAGS = frozenset(
    {
        SrtpParamType.SRTP_ENCRYPTION,
        SrtpParamType.SRTCP_ENCRYPTION,
        SrtpParamType.SRTP_AUTHENTICATION,
    }
)

_SRTP_PARAM_TYPES_IN_ORDER = tuple(_SRTP_DEFAULT_NAMES)
_SRTP_PARAM_NAMES_IN_ORDER = tuple(_SRTP_DEFAULT_NAMES.values())
_SRTP_PARAM_VALUES = attrgetter(*_SRTP_PARAM_NAMES_IN_ORDER)
_SRTP_PARAM_TYPES = _by_value(SrtpParamType)

# RFC 3830 6.10.1 does not fix the width of the key derivation rate value; this
# implementation sends the rate itself (0 or 2^n, n <= 24 per RFC 3711 4.3.1) as a
# 32-bit unsigned integer and accepts 1 to 4 bytes.
_KDR_WIRE_LEN = 4


@dataclass(frozen=True)
class SrtpPolicy:
    """The SRTP security policy of one SP payload (RFC 3830 6.10.1), typed.

    ``None`` means "parameter absent", i.e. the RFC 3830 default applies. Key and
    tag lengths are in bytes; ``kdr`` is the SRTP key derivation rate itself (0 or a
    power of two).
    """

    policy_no: int = 0
    encr_alg: SrtpEncrAlg | None = None
    encr_key_len: int | None = None
    auth_alg: SrtpAuthAlg | None = None
    auth_key_len: int | None = None
    salt_key_len: int | None = None
    prf: SrtpPrf | None = None
    kdr: int | None = None
    srtp_encryption: bool | None = None
    srtcp_encryption: bool | None = None
    fec_order: SrtpFecOrder | None = None
    srtp_authentication: bool | None = None
    auth_tag_len: int | None = None
    srtp_prefix_len: int | None = None

    def params(self) -> list[tuple[SrtpParamType, bytes]]:
        """Each parameter present as (type, value bytes), in type order."""
        out: list[tuple[SrtpParamType, bytes]] = []
        values = _SRTP_PARAM_VALUES(self)
        # The parameters present, picked out without a Python-level test per field.
        for ptype, name, value in compress(
            zip(_SRTP_PARAM_TYPES_IN_ORDER, _SRTP_PARAM_NAMES_IN_ORDER, values, strict=True),
            map(is_not, values, repeat(None)),
        ):
            if ptype is SrtpParamType.KEY_DERIVATION_RATE:
                _check_uint(int(value), 8 * _KDR_WIRE_LEN, "key derivation rate")
                out.append((ptype, int(value).to_bytes(_KDR_WIRE_LEN, "big")))
            else:
                if not 0 <= value < 256:
                    _check_uint(int(value), 8, f"SRTP parameter {name}")
                out.append((ptype, _BYTE[value]))
        return out

    def param_bytes(self) -> bytes:
        """The policy param field of the SP payload carrying this policy (6.10)."""
        return b"".join([_BYTE[t] + _BYTE[len(v)] + v for t, v in self.params()])

    def to_payload(self) -> SecurityPolicyPayload:
        """The SP payload carrying this policy, parameters in type order."""
        params = tuple(PolicyParam(t, v) for t, v in self.params())
        return SecurityPolicyPayload(self.policy_no, ProtType.SRTP, params)

    @classmethod
    def from_payload(cls, payload: SecurityPolicyPayload, offset: int = 0) -> SrtpPolicy:
        """Interpret an SP payload; unknown, repeated or ill-sized parameters are rejected.

        Raises :class:`UnsupportedError` with error number ``INVALID_SP`` or
        ``INVALID_SPPAR``; ``offset`` is the payload's offset for the error.
        """
        params = ((p.param_type, p.value) for p in payload.params)
        return cls.from_params(payload.policy_no, payload.prot_type, params, offset)

    @classmethod
    def from_params(
        cls,
        policy_no: int,
        prot_type: ProtType,
        params: Iterable[tuple[int, bytes]],
        offset: int = 0,
    ) -> SrtpPolicy:
        """:meth:`from_payload` over the SP payload's fields (parameters as (type, value))."""
        if prot_type is not ProtType.SRTP:
            raise UnsupportedError(
                f"security protocol {prot_type} not supported",
                offset=offset,
                payload="SP",
                error_no=ErrorNo.INVALID_SP,
            )
        values: dict[str, object] = {}
        for param_type, param_value in params:
            ptype = _SRTP_PARAM_TYPES.get(param_type)
            if ptype is None:
                raise UnsupportedError(
                    f"SRTP policy parameter type {param_type} not supported",
                    offset=offset,
                    payload="SP",
                    error_no=ErrorNo.INVALID_SPPAR,
                )
            name = _SRTP_DEFAULT_NAMES[ptype]
            if name in values:
                raise UnsupportedError(
                    f"SRTP policy parameter {ptype.name} repeated",
                    offset=offset,
                    payload="SP",
                    error_no=ErrorNo.INVALID_SPPAR,
                )
            width_ok = (
                1 <= len(param_value) <= _KDR_WIRE_LEN
                if ptype is SrtpParamType.KEY_DERIVATION_RATE
                else len(param_value) == 1
            )
            if not width_ok:
                raise UnsupportedError(
                    f"SRTP policy parameter {ptype.name} has length {len(param_value)}",
                    offset=offset,
                    payload="SP",
                    error_no=ErrorNo.INVALID_SPPAR,
                )
            raw = int.from_bytes(param_value, "big")
            value: object = raw
            members = _SRTP_ENUM_VALUES.get(ptype)
            if members is not None:
                value = members.get(raw)
                if value is None:
                    raise UnsupportedError(
                        f"SRTP policy {ptype.name} value {raw} not supported",
                        offset=offset,
                        payload="SP",
                        error_no=ErrorNo.INVALID_SPPAR,
                    )
            elif ptype in _SRTP_FLAGS:
                if raw not in (0, 1):
                    raise UnsupportedError(
                        f"SRTP policy {ptype.name} value {raw} is not 0 (off) or 1 (on)",
                        offset=offset,
                        payload="SP",
                        error_no=ErrorNo.INVALID_SPPAR,
                    )
                value = bool(raw)
            values[name] = value
        return cls(policy_no=policy_no, **values)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- TEK fetch ext


@dataclass(frozen=True)
class FetchAtTime:
    """Fetch a new TEK at this time: a 64-bit NTP-UTC timestamp (RFC 3830 6.6 format)."""

    ntp: int


@dataclass(frozen=True)
class FetchAtSrtpIndex:
    """Fetch a new TEK by this SRTP packet index (RFC 3711 3.3.1: 2^16 * ROC + SEQ)."""

    index: int

    @classmethod
    def from_roc_seq(cls, roc: int, seq: int) -> FetchAtSrtpIndex:
        """The index of SRTP sequence number ``seq`` in rollover period ``roc``."""
        _check_uint(roc, 32, "ROC")
        _check_uint(seq, 16, "SEQ")
        return cls((roc << 16) | seq)

    @property
    def roc(self) -> int:
        return self.index >> 16

    @property
    def seq(self) -> int:
        return self.index & 0xFFFF


FetchHint: TypeAlias = FetchAtTime | FetchAtSrtpIndex


@dataclass(frozen=True)
class TekFetchExtension:
    """The private-use MBMS TEK fetch General Extension (encoding in the module docstring)."""

    fetch: FetchHint | None = None
    lifetime: int | None = None

    VERSION: ClassVar[int] = 1

    def to_payload(self) -> GeneralExtensionPayload:
        """The General Extension payload carrying this hint."""
        return GeneralExtensionPayload(
            MBMS_TEK_FETCH_EXT_TYPE, encode_fetch_data(self.fetch, self.lifetime)
        )

    @classmethod
    def from_payload(cls, payload: GeneralExtensionPayload, offset: int = 0) -> TekFetchExtension:
        """Decode the extension; ``offset`` is the payload's offset in the message."""
        fetch, lifetime = decode_fetch_data(payload.data, offset)
        return cls(fetch=fetch, lifetime=lifetime)


_FETCH_TIME_AND_LIFETIME = struct.Struct(">BBBQBBI")  # version, time item, lifetime item
_FETCH_ITEM_LENGTH: dict[int, int] = {
    _FetchTag.FETCH_AT_TIME: 8,
    _FetchTag.FETCH_AT_SRTP_INDEX: 6,
    _FetchTag.TEK_LIFETIME: 4,
}


def encode_fetch_data(fetch: FetchHint | None, lifetime: int | None) -> bytes:
    """The Data field of the TEK fetch extension (module docstring)."""
    if fetch is None and lifetime is None:
        raise EncodeError("TEK fetch extension needs a fetch hint or a lifetime")
    if lifetime is not None and type(fetch) is FetchAtTime:
        try:  # the usual pair, in one pack
            return _FETCH_TIME_AND_LIFETIME.pack(
                TekFetchExtension.VERSION,
                _FetchTag.FETCH_AT_TIME,
                8,
                fetch.ntp,
                _FetchTag.TEK_LIFETIME,
                4,
                lifetime,
            )
        except struct.error:
            pass  # a value that does not fit: the checks below name it
    out = _BYTE[TekFetchExtension.VERSION]
    if isinstance(fetch, FetchAtTime):
        _check_uint(fetch.ntp, 64, "fetch time")
        out += b"\x01\x08" + fetch.ntp.to_bytes(8, "big")
    elif isinstance(fetch, FetchAtSrtpIndex):
        _check_uint(fetch.index, 48, "fetch SRTP index")
        out += b"\x02\x06" + fetch.index.to_bytes(6, "big")
    if lifetime is not None:
        _check_uint(lifetime, 32, "TEK lifetime")
        out += b"\x03\x04" + lifetime.to_bytes(4, "big")
    return out


def decode_fetch_data(
    data: bytes, offset: int = 0, *, learned: bool = True
) -> tuple[FetchHint | None, int | None]:
    """The fetch hint and lifetime in the TEK fetch extension's Data field; ``offset`` is
    the extension payload's offset in the message, for errors.  Layouts are used and
    learned as by :func:`scan_message`, unless ``learned`` is false."""
    learned = learned and isinstance(data, bytes)
    layout = _FETCH_LAYOUTS.get(len(data)) if learned else None
    if layout is not None:  # :func:`_unpacked`, written out (no constants to append)
        values = layout.unpack(data)
        if layout.structure(values) == layout.expected:
            make_fetch, fetch_at, lifetime_at = layout.parts
            return (
                None if make_fetch is None else make_fetch(values[fetch_at]),
                None if lifetime_at is None else values[lifetime_at],
            )
    name = "EXT"
    base = offset + 4  # the Data field starts 4 bytes into the payload
    n = len(data)
    if n < 1:
        _short(n, 0, base, name, (("extension version", 1),))
    version = data[0]
    if version != TekFetchExtension.VERSION:
        raise UnsupportedError(
            f"TEK fetch extension version {version} not supported", offset=base, payload=name
        )
    if n == 1:
        raise MikeyParseError("TEK fetch extension has no items", offset=base + 1, payload=name)
    fetch: FetchHint | None = None
    lifetime: int | None = None
    seen: set[int] = set()
    items = []
    pos = 1
    while pos < n:
        at = base + pos
        if pos + 2 > n:
            _short(n, pos, base, name, (("item tag", 1), ("item length", 1)))
        tag, length = data[pos], data[pos + 1]
        pos += 2
        if pos + length > n:
            _short(n, pos, base, name, (("item value", length),))
        number = int.from_bytes(data[pos : pos + length], "big")
        pos += length
        expected = _FETCH_ITEM_LENGTH.get(tag)
        if expected is None:
            raise MikeyParseError(f"unknown TEK fetch item tag {tag}", offset=at, payload=name)
        if length != expected:
            raise MikeyParseError(
                f"TEK fetch item {tag} has length {length}, expected {expected}",
                offset=at,
                payload=name,
            )
        if tag in seen or (tag in (1, 2) and fetch is not None):
            raise MikeyParseError(f"TEK fetch item {tag} repeated", offset=at, payload=name)
        seen.add(tag)
        items.append((tag, length))
        if tag == _FetchTag.FETCH_AT_TIME:
            fetch = FetchAtTime(number)
        elif tag == _FetchTag.FETCH_AT_SRTP_INDEX:
            fetch = FetchAtSrtpIndex(number)
        else:
            lifetime = number
    if learned:
        _learn(_FETCH_LAYOUTS, n, _fetch_layout(data, items))
    return fetch, lifetime


_FETCH_LAYOUTS: dict[int, Layout] = {}
_FETCH_ITEM_FORMAT = {8: "Q", 6: "6s", 4: "I"}


def _fetch_at_time(ntp: int) -> FetchAtTime:
    fetch = _new(FetchAtTime)  # as checked_instance makes it
    fetch.__dict__["ntp"] = ntp
    return fetch


def _fetch_at_index(index: bytes) -> FetchAtSrtpIndex:
    return checked_instance(FetchAtSrtpIndex, index=int.from_bytes(index, "big"))


def _fetch_layout(data: bytes, items: list[tuple[int, int]]) -> Layout:
    """The layout of a TEK fetch extension's Data (version, then tag, length, value)."""
    b = _LayoutBuilder()
    b.skip("B")  # version
    make_fetch: Callable[[Any], FetchHint] | None = None
    fetch_at = lifetime_at = None
    for tag, length in items:
        b.skip("B")  # tag
        b.skip("B")  # length
        at = b.field(_FETCH_ITEM_FORMAT[length])[1]
        if tag == _FetchTag.TEK_LIFETIME:
            lifetime_at = at
        else:
            fetch_at = at
            make_fetch = _fetch_at_time if tag == _FetchTag.FETCH_AT_TIME else _fetch_at_index
    return b.layout(data, (make_fetch, fetch_at, lifetime_at))


# --------------------------------------------------------------------------- encode

# The raw encoders take field values (no payload objects) and return a payload's bytes
# after its Next payload field; :func:`join_payloads` puts the message together.  They
# check nothing on the way: a value that does not fit makes the packing fail, and only
# then are the fields checked, in wire order, for the error that names the first bad one.


def encode_header(
    data_type: int,
    first: int,
    csb_id: int,
    cs_map: Sequence[SrtpCs] = (),
    *,
    v_flag: bool = False,
    prf_func: int = PrfFunc.MIKEY_1,
    cs_id_map_type: int = CsIdMapType.SRTP_ID,
    version: int = MIKEY_VERSION,
) -> bytes:
    """The HDR payload (RFC 3830 6.1) whose Next payload is ``first``."""
    try:
        out = _HDR.pack(
            version,
            data_type,
            first,
            (0x80 if v_flag else 0) | prf_func,
            csb_id,
            len(cs_map),
            cs_id_map_type,
        )
        if cs_map:
            out += b"".join([_SRTP_ID.pack(cs.policy_no, cs.ssrc, cs.roc) for cs in cs_map])
        return out
    except struct.error:
        _check_uint(version, 8, "version")
        _check_uint(csb_id, 32, "CSB ID")
        if len(cs_map) > 255:
            raise EncodeError(f"{len(cs_map)} crypto sessions, at most 255") from None
        for cs in cs_map:
            _check_uint(cs.policy_no, 8, "policy no")
            _check_uint(cs.ssrc, 32, "SSRC")
            _check_uint(cs.roc, 32, "ROC")
        raise


def encode_timestamp(ts_type: TsType, value: int) -> bytes:
    """T (6.6) after its Next payload: TS type and TS value."""
    try:
        return _TS_BODY[ts_type].pack(ts_type, value)
    except struct.error:
        _check_uint(value, 8 * TS_VALUE_LENGTH[ts_type], f"{ts_type.name} TS value")
        raise


def encode_rand(rand: bytes) -> bytes:
    """RAND (6.11) after its Next payload: RAND len and RAND."""
    if not 0 < len(rand) < 256:
        _check_len(rand, 8, "RAND", minimum=1)
    return _BYTE[len(rand)] + rand


def encode_id(id_type: int, data: bytes) -> bytes:
    """ID (6.7) after its Next payload: ID type, ID len and ID data."""
    try:
        return _B_H.pack(id_type, len(data)) + data
    except struct.error:
        _check_len(data, 16, "ID data")
        raise


def encode_policy_params(params: Iterable[tuple[int, bytes]]) -> bytes:
    """The policy param field of SP (6.10): Type, Length and Value of each parameter."""
    out = bytearray()
    for param_type, value in params:
        _check_uint(param_type, 8, "policy param type")
        _check_len(value, 8, "policy param value")
        out += _BYTE[param_type] + _BYTE[len(value)] + value
    return bytes(out)


def encode_sp(policy_no: int, prot_type: int, params: bytes) -> bytes:
    """SP (6.10) after its Next payload; ``params`` from :func:`encode_policy_params`."""
    try:
        return _B_B_H.pack(policy_no, prot_type, len(params)) + params
    except struct.error:
        _check_uint(policy_no, 8, "policy no")
        _check_len(params, 16, "policy param")
        raise


def encode_kemac(encr_alg: int, encr_data: bytes, mac_alg: int) -> bytes:
    """KEMAC (6.2) after its Next payload and up to its MAC field (the MAC follows)."""
    try:
        return _B_H.pack(encr_alg, len(encr_data)) + encr_data + _BYTE[mac_alg]
    except struct.error:
        _check_len(encr_data, 16, "Encr data")
        raise


def encode_ext(ext_type: int, data: bytes) -> bytes:
    """GENERAL EXTENSION (6.15) after its Next payload: Type, Length and Data."""
    try:
        return _B_H.pack(ext_type, len(data)) + data
    except struct.error:
        _check_uint(ext_type, 8, "extension type")
        _check_len(data, 16, "extension data")
        raise


def encode_key_data(
    nxt: int,
    key_type: KeyDataType,
    key: bytes,
    salt: bytes | None,
    kv_type: KvType,
    spi_or_from: bytes = b"",
    valid_to: bytes = b"",
) -> bytes:
    """One Key data sub-payload (6.13) with its key validity (6.14): SPI/MKI
    ``spi_or_from``, or the interval ``spi_or_from`` to ``valid_to``."""
    try:
        head = _B_B_H.pack(nxt, (key_type << 4) | kv_type, len(key))
    except struct.error:
        _check_len(key, 16, "key data")
        raise
    if (salt is None) is (key_type in _SALTED):
        raise EncodeError(
            f"key type {key_type.name} {'carries no salt' if salt is not None else 'needs a salt'}"
        )
    try:
        if salt is not None:
            head = b"".join((head, key, _U16.pack(len(salt)), salt))
            key = b""
        if kv_type is _KV_SPI:
            return b"".join((head, key, _BYTE[len(spi_or_from)], spi_or_from))
        if kv_type is _KV_INTERVAL:
            return b"".join(
                (head, key, _BYTE[len(spi_or_from)], spi_or_from, _BYTE[len(valid_to)], valid_to)
            )
        return head + key
    except (struct.error, IndexError):
        _check_len(salt or b"", 16, "salt data")
        _check_len(spi_or_from, 8, "SPI/MKI" if kv_type is _KV_SPI else "Valid From")
        _check_len(valid_to, 8, "Valid To")
        raise


def join_payloads(header: bytes, types: Sequence[int], bodies: Sequence[bytes]) -> bytes:
    """A message: the header (whose Next payload names the first payload) and each
    payload's bytes after its Next payload field (``bodies``, of the payload ``types``),
    linked by Next payload fields."""
    nexts = [_BYTE[t] for t in types[1:]]
    if bodies:
        nexts.append(_LAST_BYTE)
    return header + b"".join(chain.from_iterable(zip(nexts, bodies, strict=True)))


_LAST_BYTE = _BYTE[PayloadType.LAST]
_U16 = struct.Struct(">H")


def _payload_body(p: Payload) -> bytes:
    if isinstance(p, TimestampPayload):
        return encode_timestamp(p.ts_type, p.value)
    if isinstance(p, RandPayload):
        return encode_rand(p.rand)
    if isinstance(p, IdPayload):
        return encode_id(p.id_type, p.data)
    if isinstance(p, SecurityPolicyPayload):
        _check_uint(p.policy_no, 8, "policy no")
        params = encode_policy_params((q.param_type, q.value) for q in p.params)
        return encode_sp(p.policy_no, p.prot_type, params)
    if isinstance(p, KemacPayload):
        head = encode_kemac(p.encr_alg, p.encr_data, p.mac_alg)
        if len(p.mac) != _MAC_LENGTH[p.mac_alg]:
            raise EncodeError(f"MAC of {len(p.mac)} bytes for {p.mac_alg.name}")
        return head + p.mac
    if isinstance(p, VerificationPayload):
        if len(p.ver_data) != _MAC_LENGTH[p.auth_alg]:
            raise EncodeError(f"Ver data of {len(p.ver_data)} bytes for {p.auth_alg.name}")
        return _BYTE[p.auth_alg] + p.ver_data
    if isinstance(p, ErrorPayload):
        try:
            return _B_H.pack(p.error_no, p.reserved)
        except struct.error:
            _check_uint(p.error_no, 8, "error no")
            _check_uint(p.reserved, 16, "reserved")
            raise
    if isinstance(p, GeneralExtensionPayload):
        return encode_ext(p.ext_type, p.data)
    raise EncodeError(f"not a MIKEY payload: {type(p).__name__}")


def serialise_message(msg: MikeyMessage) -> bytes:
    """The wire form of ``msg``; next-payload fields are filled in from the order."""
    h = msg.header
    first = msg.payloads[0].PAYLOAD_TYPE if msg.payloads else PayloadType.LAST
    header = encode_header(
        h.data_type,
        first,
        h.csb_id,
        h.cs_map,
        v_flag=h.v_flag,
        prf_func=h.prf_func,
        cs_id_map_type=h.cs_id_map_type,
        version=h.version,
    )
    bodies = [_payload_body(p) for p in msg.payloads]
    return join_payloads(header, [p.PAYLOAD_TYPE for p in msg.payloads], bodies)


def _key_data_fields(k: KeyDataPayload) -> tuple[KvType, bytes, bytes]:
    v = k.validity
    if isinstance(v, SpiValidity):
        return KvType.SPI, v.spi, b""
    if isinstance(v, IntervalValidity):
        return KvType.INTERVAL, v.valid_from, v.valid_to
    return KvType.NULL, b"", b""


def serialise_key_data_chain(keys: Sequence[KeyDataPayload]) -> bytes:
    """Concatenated Key data sub-payloads, the plaintext of the KEMAC Encr data (6.2, 6.13)."""
    last = len(keys) - 1
    return b"".join(
        [
            encode_key_data(
                PayloadType.KEY_DATA if i < last else PayloadType.LAST,
                k.key_type,
                k.key,
                k.salt,
                *_key_data_fields(k),
            )
            for i, k in enumerate(keys)
        ]
    )


# --------------------------------------------------------------------------- parse

#: The fields of one payload as :func:`scan_message` reads them: ``(payload type, offset,
#: a, b, c, d)``, with ``a``-``d`` per type: T ``(TsType, value)``; RAND ``(rand,)``;
#: ID ``(IdType, data)``; SP ``(policy no, ProtType, ((param type, value), ...))``;
#: KEMAC ``(EncrAlg, Encr data, MacAlg, MAC)``; V ``(MacAlg, Ver data)``; ERR
#: ``(error no, reserved)``; EXT ``(type, data)``; unused places are ``None``.
RawPayload: TypeAlias = tuple[int, int, Any, Any, Any, Any]


class RawHeader(NamedTuple):
    """The HDR payload as :func:`scan_message` reads it (CS map entries as tuples)."""

    data_type: DataType
    csb_id: int
    cs_map: tuple[tuple[int, int, int], ...]
    v_flag: bool
    prf_func: PrfFunc
    cs_id_map_type: CsIdMapType
    version: int


#: A Key data sub-payload as :func:`scan_key_data_chain` reads it: ``(KeyDataType, key,
#: salt or None, KvType, SPI or Valid From, Valid To)`` (absent fields empty).
RawKeyData: TypeAlias = tuple[KeyDataType, bytes, bytes | None, KvType, bytes, bytes]


# --------------------------------------------------------------------------- layouts

# The readers below learn the layout of what they read: the positions and widths of its
# fields, told apart into structural fields (next payload, the type codes checked and
# every length: what decides how the rest is read) and values.  A later input of the same
# size is first unpacked with that layout in one ``Struct.unpack``; if its structural
# fields equal the layout's, the field-by-field reading would read exactly the same
# positions, take the same branches and pass the same checks (each structural field is
# read where the ones before it say, and they are all the same), so its result is built
# from the unpacked values directly.  Otherwise the input is read field by field, which
# also reports any error.  A BM-SC's answers, and what a UE receives, all have a few sizes.

_LAYOUTS_KEPT = 64  # layouts kept per reader; past that the cache starts again


class Layout:
    """A learned layout (see above): how inputs of one size and structure are unpacked
    (:attr:`unpack`), their structural fields (:attr:`structure`) and the values those
    must have (:attr:`expected`), the constants appended to the values (:attr:`consts`)
    and how a reader's result is taken out of ``values + consts`` (:attr:`parts`).
    :attr:`memo` keeps what the readers' users derive from the structure alone."""

    __slots__ = ("consts", "count", "expected", "memo", "parts", "structure", "unpack")

    def __init__(
        self,
        unpack: Callable[[bytes], tuple[Any, ...]],
        structure: Callable[[tuple[Any, ...]], tuple[Any, ...]],
        expected: tuple[Any, ...],
        count: int,
        consts: tuple[Any, ...],
        parts: tuple[Any, ...],
    ) -> None:
        self.unpack = unpack
        self.structure = structure
        self.expected = expected
        self.count = count
        self.consts = consts
        self.parts = parts
        self.memo: dict[object, Any] = {}


@dataclass(frozen=True, slots=True)
class At:
    """Stands for the value at index :attr:`at` of ``values + consts`` in a symbolic
    reading (:func:`symbolic_message`, :func:`symbolic_key_data_chain`)."""

    at: int


class _LayoutBuilder:
    """Collects a layout field by field while a reader's result is described."""

    def __init__(self) -> None:
        self.formats: list[str] = [">"]
        self.count = 0
        self.structural: list[int] = []
        self.consts: list[Any] = []

    def field(self, fmt: str, *, structural: bool = False) -> tuple[str, int]:
        self.formats.append(fmt)
        index = self.count
        self.count += 1
        if structural:
            self.structural.append(index)
        return ("field", index)

    def skip(self, fmt: str) -> None:
        """A structural field whose value the result does not need."""
        self.field(fmt, structural=True)

    def const(self, value: Any) -> tuple[str, int]:
        self.consts.append(value)
        return ("const", len(self.consts) - 1)

    def getter(self, sources: Sequence[tuple[str, int]]) -> Callable[[Sequence[Any]], Any]:
        """Takes the sources (fields or constants) out of ``fields + consts`` as a tuple."""
        # Constants sit after the fields in reverse order: the k-th from the end is
        # constant k whatever the number of fields still to come.
        at = [i if kind == "field" else -1 - i for kind, i in sources]
        return itemgetter(*at)  # two sources or more: a tuple

    def layout(self, data: bytes, parts: tuple[Any, ...]) -> Layout:
        unpack = struct.Struct("".join(self.formats)).unpack
        structure = itemgetter(*self.structural)
        consts = tuple(reversed(self.consts))
        return Layout(unpack, structure, structure(unpack(data)), self.count, consts, parts)


def _learn(cache: dict[int, Layout], size: int, layout: Layout) -> None:
    if len(cache) >= _LAYOUTS_KEPT:
        cache.clear()
    cache[size] = layout


def _unpacked(cache: dict[int, Layout], data: bytes) -> tuple[Layout, tuple[Any, ...]] | None:
    """The layout learned for inputs of this size and the values, if it fits ``data``."""
    layout = cache.get(len(data))
    if layout is None:
        return None
    fields = layout.unpack(data)
    if layout.structure(fields) != layout.expected:
        return None
    return layout, fields + layout.consts


_MESSAGE_LAYOUTS: dict[int, Layout] = {}
_CHAIN_LAYOUTS: dict[int, Layout] = {}


def _message_layout(data: bytes, header: RawHeader, payloads: list[RawPayload]) -> Layout:
    """The layout of a message read field by field (``data``, with its reading)."""
    b = _LayoutBuilder()
    for fmt in ("B", "B", "B", "B"):  # version, data type, next payload, V|PRF func
        b.skip(fmt)
    csb = b.field("I")
    b.skip("B")  # #CS
    b.skip("B")  # CS ID map type
    cs = [b.getter([b.field("B"), b.field("I"), b.field("I")]) for _ in header.cs_map]
    head = b.getter(
        [
            b.const(header.data_type),
            csb,
            b.const(header.v_flag),
            b.const(header.prf_func),
            b.const(header.cs_id_map_type),
            b.const(header.version),
        ]
    )
    none = b.const(None)
    plan = []
    for ptype, at, x, y, z, w in payloads:
        kind, offset = b.const(ptype), b.const(at)
        b.skip("B")  # next payload
        pairs: list[tuple[int, int]] | None = None
        if ptype == _T:
            b.skip("B")  # TS type
            value = b.field("Q" if TS_VALUE_LENGTH[x] == 8 else "I")
            sources = [kind, offset, b.const(x), value, none, none]
        elif ptype == _RAND:
            b.skip("B")  # RAND len
            sources = [kind, offset, b.field(f"{len(x)}s"), none, none, none]
        elif ptype == _ID:
            b.skip("B")  # ID type
            b.skip("H")  # ID len
            sources = [kind, offset, b.const(x), b.field(f"{len(y)}s"), none, none]
        elif ptype == _EXT:
            ext_type = b.field("B")
            b.skip("H")  # length
            sources = [kind, offset, ext_type, b.field(f"{len(y)}s"), none, none]
        elif ptype == _SP:
            policy_no = b.field("B")
            b.skip("B")  # prot type
            b.skip("H")  # policy param length
            pairs = []
            for _, value in z:
                param_type = b.field("B")[1]
                b.skip("B")  # param length
                pairs.append((param_type, b.field(f"{len(value)}s")[1]))
            sources = [kind, offset, policy_no, b.const(y)]
        elif ptype == _KEMAC:
            b.skip("B")  # Encr alg
            b.skip("H")  # Encr data len
            encr_data = b.field(f"{len(y)}s")
            b.skip("B")  # Mac alg
            sources = [kind, offset, b.const(x), encr_data, b.const(z), b.field(f"{len(w)}s")]
        elif ptype == _V:
            b.skip("B")  # Auth alg
            sources = [kind, offset, b.const(x), b.field(f"{len(y)}s"), none, none]
        else:  # ERR
            sources = [kind, offset, b.field("B"), b.field("H"), none, none]
        plan.append((b.getter(sources), pairs))
    return b.layout(data, (head, tuple(cs), tuple(plan)))


def _from_layout(found: tuple[Layout, tuple[Any, ...]]) -> tuple[RawHeader, list[RawPayload]]:
    layout, ext = found
    head, cs, plan = layout.parts
    h = head(ext)
    header = RawHeader(h[0], h[1], tuple([g(ext) for g in cs]), h[2], h[3], h[4], h[5])
    payloads = []
    for get, pairs in plan:
        if pairs is None:
            payloads.append(get(ext))
        else:  # SP: the policy params as (type, value) pairs
            params = tuple([(ext[t], ext[v]) for t, v in pairs])
            payloads.append((*get(ext), params, None))
    return header, payloads


def _chain_layout(data: bytes, keys: list[RawKeyData]) -> Layout:
    """The layout of a Key data chain read field by field (``data``, with its reading)."""
    b = _LayoutBuilder()
    none, empty = b.const(None), b.const(b"")
    plan = []
    for key_type, key, salt, kv, first, second in keys:
        b.skip("B")  # next payload
        b.skip("B")  # type / KV
        b.skip("H")  # key data len
        sources = [b.const(key_type), b.field(f"{len(key)}s"), none, b.const(kv), empty, empty]
        if salt is not None:
            b.skip("H")  # salt len
            sources[2] = b.field(f"{len(salt)}s")
        if kv is not _KV_NULL:
            b.skip("B")  # SPI length or VF length
            sources[4] = b.field(f"{len(first)}s")
        if kv is _KV_INTERVAL:
            b.skip("B")  # VT length
            sources[5] = b.field(f"{len(second)}s")
        plan.append(b.getter(sources))
    return b.layout(data, tuple(plan))


def read_message(data: bytes) -> tuple[Layout, tuple[Any, ...]]:
    """A whole message as its :class:`Layout` and its ``values + consts``: unpacked in
    one call with the layout learned from an earlier message of its size and structure,
    or else read field by field (with every rejection :func:`parse_message` documents)
    and its layout learned.  :func:`symbolic_message` says where each value is."""
    if not isinstance(data, bytes):
        if not isinstance(data, bytearray | memoryview):
            raise MikeyParseError("MIKEY message must be bytes", offset=0, payload="HDR")
        data = bytes(data)
    layout = _MESSAGE_LAYOUTS.get(len(data))
    if layout is not None:  # :func:`_unpacked`, written out: every delivery passes here
        fields = layout.unpack(data)
        if layout.structure(fields) == layout.expected:
            return layout, fields + layout.consts
    scan_message(data)  # rejects, or learns the layout
    found = _unpacked(_MESSAGE_LAYOUTS, data)
    assert found is not None, "a message read whole has its layout learned"
    return found


def read_key_data_chain(data: bytes, base_offset: int = 0) -> tuple[Layout, tuple[Any, ...]] | None:
    """:func:`read_message` for a Key data chain (errors as :func:`parse_key_data_chain`);
    ``None`` for an empty chain.  :func:`symbolic_key_data_chain` says where each value is."""
    if not isinstance(data, bytes):
        data = bytes(data)
    layout = _CHAIN_LAYOUTS.get(len(data))
    if layout is not None:  # :func:`_unpacked`, written out: every delivery passes here
        fields = layout.unpack(data)
        if layout.structure(fields) == layout.expected:
            return layout, fields + layout.consts
    if not scan_key_data_chain(data, base_offset):  # rejects, or learns the layout
        return None
    found = _unpacked(_CHAIN_LAYOUTS, data)
    assert found is not None, "a chain read whole has its layout learned"
    return found


def _symbolic(layout: Layout) -> tuple[Any, ...]:
    return tuple(At(i) for i in range(layout.count)) + layout.consts


def symbolic_message(layout: Layout) -> tuple[RawHeader, list[RawPayload]]:
    """What :func:`scan_message` reads from any message of this layout, each value that
    varies from message to message given as its :class:`At` index in ``values + consts``
    and every structural one (types, algorithms, offsets) as itself."""
    return _from_layout((layout, _symbolic(layout)))


def symbolic_key_data_chain(layout: Layout) -> list[RawKeyData]:
    """:func:`symbolic_message` for a Key data chain's layout."""
    ext = _symbolic(layout)
    return [get(ext) for get in layout.parts]


def _scan_header(data: bytes, n: int) -> tuple[RawHeader, int, int]:
    """The header, the type of the first payload and where it starts."""
    if n < 1:
        _short(n, 0, 0, "HDR", (("version", 1),))
    version = data[0]
    if version != MIKEY_VERSION:
        # RFC 3830 6.1 defines version 1 only; the rest cannot be interpreted.
        raise UnsupportedError(f"MIKEY version {version} not supported", offset=0, payload="HDR")
    if n < 2:
        _short(n, 1, 0, "HDR", (("data type", 1),))
    dt = _DATA_TYPES.get(data[1])
    if dt is None:
        raise _unsupported("data type", data[1], 1, "HDR", ErrorNo.INVALID_DT)
    if dt not in SUPPORTED_DATA_TYPES:
        raise UnsupportedError(
            f"data type {dt.name} not supported",
            offset=1,
            payload="HDR",
            error_no=ErrorNo.INVALID_DT,
        )
    if n < 4:
        _short(n, 2, 0, "HDR", (("next payload", 1), ("V/PRF func", 1)))
    first, vp = data[2], data[3]
    prf = _PRF_FUNCS.get(vp & 0x7F)
    if prf is None:
        raise _unsupported("PRF func", vp & 0x7F, 3, "HDR", ErrorNo.INVALID_PRF)
    if n < 10:
        _short(n, 4, 0, "HDR", (("CSB ID", 4), ("#CS", 1), ("CS ID map type", 1)))
    csb_id, n_cs, map_value = _HDR_TAIL.unpack_from(data, 4)
    map_type = _CS_ID_MAP_TYPES.get(map_value)
    if map_type is None:
        raise _unsupported("CS ID map type", map_value, 9, "HDR", ErrorNo.UNSPECIFIED)
    end = 10 + 9 * n_cs
    if end > n:
        whole = 10 + 9 * ((n - 10) // 9)
        _short(
            n, whole, 0, "HDR", (("SRTP-ID policy no", 1), ("SRTP-ID SSRC", 4), ("SRTP-ID ROC", 4))
        )
    cs_map = tuple(_SRTP_ID.iter_unpack(data[10:end])) if n_cs else ()
    return RawHeader(dt, csb_id, cs_map, bool(vp & 0x80), prf, map_type, version), first, end


def scan_message(
    data: bytes, *, whole: bool = True, learned: bool = True
) -> tuple[RawHeader, list[RawPayload], int]:
    """Read one MIKEY message in one pass: its header, its payloads' fields and where
    it ends (with ``whole``, trailing bytes are a :class:`MikeyParseError`).

    The strict reading that :func:`parse_message` wraps in payload objects; every
    rejection is the one :func:`parse_message` documents.  A whole message is unpacked
    with a learned :class:`Layout` when one fits, and its layout learned when none does,
    unless ``learned`` is false: then it is read field by field, and nothing is learned.
    """
    if not isinstance(data, bytes):
        if not isinstance(data, bytearray | memoryview):
            raise MikeyParseError("MIKEY message must be bytes", offset=0, payload="HDR")
        data = bytes(data)
    n = len(data)
    whole_learned = whole and learned
    if whole_learned:
        found = _unpacked(_MESSAGE_LAYOUTS, data)
        if found is not None:
            return (*_from_layout(found), n)
    header, nxt, pos = _scan_header(data, n)
    payloads: list[RawPayload] = []
    prev = "HDR"
    while nxt:
        at = pos
        name = _PAYLOAD_NAMES.get(nxt)
        if name is None:
            raise MikeyParseError(
                f"unknown next payload type {nxt} after {prev}", offset=at, payload=prev
            )
        if pos >= n:
            raise MikeyParseError(
                f"truncated: {name} payload announced but message ends", offset=at, payload=name
            )
        ptype = nxt
        if ptype == _T:
            if pos + 2 > n:
                _short(n, pos, 0, name, (("next payload", 1), ("TS type", 1)))
            nxt = data[pos]
            ts_type = _TS_TYPES.get(data[pos + 1])
            if ts_type is None:
                raise _unsupported("TS type", data[pos + 1], pos + 1, name, ErrorNo.INVALID_TS)
            width = TS_VALUE_LENGTH[ts_type]
            pos += 2
            if pos + width > n:
                _short(n, pos, 0, name, (("TS value", width),))
            value = int.from_bytes(data[pos : pos + width], "big")
            pos += width
            payloads.append((ptype, at, ts_type, value, None, None))
        elif ptype == _RAND:
            if pos + 2 > n:
                _short(n, pos, 0, name, (("next payload", 1), ("RAND len", 1)))
            nxt, length = data[pos], data[pos + 1]
            if length == 0:
                raise MikeyParseError("RAND len is 0", offset=pos + 1, payload=name)
            pos += 2
            if pos + length > n:
                _short(n, pos, 0, name, (("RAND", length),))
            payloads.append((ptype, at, data[pos : pos + length], None, None, None))
            pos += length
        elif ptype == _ID:
            if pos + 2 > n:
                _short(n, pos, 0, name, (("next payload", 1), ("ID type", 1)))
            nxt = data[pos]
            id_type = _ID_TYPES.get(data[pos + 1])
            if id_type is None:
                raise _unsupported("ID type", data[pos + 1], pos + 1, name, ErrorNo.INVALID_ID)
            if pos + 4 > n:
                _short(n, pos + 2, 0, name, (("ID len", 2),))
            length = (data[pos + 2] << 8) | data[pos + 3]
            pos += 4
            if pos + length > n:
                _short(n, pos, 0, name, (("ID data", length),))
            payloads.append((ptype, at, id_type, data[pos : pos + length], None, None))
            pos += length
        elif ptype == _KEMAC:
            if pos + 2 > n:
                _short(n, pos, 0, name, (("next payload", 1), ("Encr alg", 1)))
            nxt = data[pos]
            encr = _ENCR_ALGS.get(data[pos + 1])
            if encr is None:
                raise _unsupported(
                    "encryption algorithm", data[pos + 1], pos + 1, name, ErrorNo.INVALID_EA
                )
            if pos + 4 > n:
                _short(n, pos + 2, 0, name, (("Encr data len", 2),))
            length = (data[pos + 2] << 8) | data[pos + 3]
            pos += 4
            if pos + length + 1 > n:
                _short(n, pos, 0, name, (("Encr data", length), ("Mac alg", 1)))
            encr_data = data[pos : pos + length]
            pos += length
            mac_alg = _MAC_ALGS.get(data[pos])
            if mac_alg is None:
                raise _unsupported("MAC algorithm", data[pos], pos, name, ErrorNo.INVALID_MAC)
            pos += 1
            width = _MAC_LENGTH[mac_alg]
            if pos + width > n:
                _short(n, pos, 0, name, (("MAC", width),))
            payloads.append((ptype, at, encr, encr_data, mac_alg, data[pos : pos + width]))
            pos += width
        elif ptype == _SP:
            if pos + 3 > n:
                _short(n, pos, 0, name, (("next payload", 1), ("policy no", 1), ("prot type", 1)))
            nxt, policy_no = data[pos], data[pos + 1]
            prot = _PROT_TYPES.get(data[pos + 2])
            if prot is None:
                raise _unsupported(
                    "security protocol", data[pos + 2], pos + 2, name, ErrorNo.INVALID_SP
                )
            if pos + 5 > n:
                _short(n, pos + 3, 0, name, (("policy param length", 2),))
            length = (data[pos + 3] << 8) | data[pos + 4]
            pos += 5
            if pos + length > n:
                _short(n, pos, 0, name, (("policy param", length),))
            end = pos + length
            params = []
            while pos < end:
                if pos + 2 > end:
                    _short(
                        end, pos, 0, name, (("policy param type", 1), ("policy param length", 1))
                    )
                param_type, width = data[pos], data[pos + 1]
                pos += 2
                if pos + width > end:
                    _short(end, pos, 0, name, (("policy param value", width),))
                params.append((param_type, data[pos : pos + width]))
                pos += width
            payloads.append((ptype, at, policy_no, prot, tuple(params), None))
        elif ptype == _EXT:
            if pos + 4 > n:
                _short(n, pos, 0, name, (("next payload", 1), ("type", 1), ("length", 2)))
            nxt, ext_type, length = _B_B_H.unpack_from(data, pos)
            pos += 4
            if pos + length > n:
                _short(n, pos, 0, name, (("data", length),))
            payloads.append((ptype, at, ext_type, data[pos : pos + length], None, None))
            pos += length
        elif ptype == _V:
            if pos + 2 > n:
                _short(n, pos, 0, name, (("next payload", 1), ("Auth alg", 1)))
            nxt = data[pos]
            alg = _MAC_ALGS.get(data[pos + 1])
            if alg is None:
                raise _unsupported(
                    "MAC algorithm", data[pos + 1], pos + 1, name, ErrorNo.INVALID_MAC
                )
            width = _MAC_LENGTH[alg]
            pos += 2
            if pos + width > n:
                _short(n, pos, 0, name, (("Ver data", width),))
            payloads.append((ptype, at, alg, data[pos : pos + width], None, None))
            pos += width
        elif ptype == _ERR:
            if pos + 4 > n:
                _short(n, pos, 0, name, (("next payload", 1), ("error no", 1), ("reserved", 2)))
            nxt, err, reserved = _B_B_H.unpack_from(data, pos)
            pos += 4
            payloads.append((ptype, at, err, reserved, None, None))
        elif ptype in _OTHER_MODE_PAYLOADS:
            raise UnsupportedError(
                f"{PayloadType(ptype).name} payload not supported in pre-shared-key mode",
                offset=at,
                payload=name,
            )
        else:  # KEY DATA: only inside KEMAC
            raise MikeyParseError(f"{name} payload not allowed here", offset=at, payload=name)
        prev = name
    if whole:
        if pos != n:
            raise MikeyParseError(
                f"{n - pos} trailing bytes after the last payload", offset=pos, payload=prev
            )
        if whole_learned:
            _learn(_MESSAGE_LAYOUTS, n, _message_layout(data, header, payloads))
    return header, payloads, pos


def _payload(raw: RawPayload) -> Payload:
    ptype, _, a, b, c, d = raw
    if ptype == PayloadType.T:
        return TimestampPayload(a, b)
    if ptype == PayloadType.RAND:
        return RandPayload(a)
    if ptype == PayloadType.ID:
        return IdPayload(a, b)
    if ptype == PayloadType.SP:
        return SecurityPolicyPayload(a, b, tuple(PolicyParam(t, v) for t, v in c))
    if ptype == PayloadType.KEMAC:
        return KemacPayload(a, b, c, d)
    if ptype == PayloadType.V:
        return VerificationPayload(a, b)
    if ptype == PayloadType.ERR:
        return ErrorPayload(a, b)
    return GeneralExtensionPayload(a, b)


def header_of(raw: RawHeader) -> CommonHeader:
    """The :class:`CommonHeader` of a header read by :func:`scan_message`."""
    return CommonHeader(
        data_type=raw.data_type,
        csb_id=raw.csb_id,
        cs_map=tuple(SrtpCs(*cs) for cs in raw.cs_map),
        v_flag=raw.v_flag,
        prf_func=raw.prf_func,
        cs_id_map_type=raw.cs_id_map_type,
        version=raw.version,
    )


def _message(data: bytes, *, whole: bool) -> tuple[MikeyMessage, int]:
    header, raws, end = scan_message(data, whole=whole)
    message = MikeyMessage(
        header_of(header), tuple(_payload(r) for r in raws), tuple(r[1] for r in raws)
    )
    return message, end


def parse_message(data: bytes) -> MikeyMessage:
    """Parse one whole MIKEY message; trailing or missing bytes are a :class:`MikeyParseError`.

    Only structure is checked here; authentication and semantics are for
    :mod:`mbmssec.impl.protocols.mikey_messages`.
    """
    return _message(data, whole=True)[0]


def split_messages(data: bytes) -> tuple[bytes, ...]:
    """Cut a concatenation of whole MIKEY messages into its messages.

    A MIKEY message carries no length field; each ends with the payload whose Next
    payload is Last (RFC 3830 6.1), so the parse of one tells where the next begins.
    A truncated or malformed message, or no message at all, is a
    :class:`MikeyParseError` (offsets are within ``data``).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MikeyParseError("MIKEY messages must be bytes", offset=0, payload="HDR")
    raw = bytes(data)
    if not raw:
        raise MikeyParseError("no MIKEY message", offset=0, payload="HDR")
    out: list[bytes] = []
    at = 0
    while at < len(raw):
        try:
            end = scan_message(raw[at:], whole=False)[2]
        except MikeyParseError as exc:
            raise MikeyParseError(
                f"message {len(out) + 1}: {exc.reason}",
                offset=at + exc.offset,
                payload=exc.payload,
                error_no=exc.error_no,
            ) from None
        out.append(raw[at : at + end])
        at += end
    return tuple(out)


def scan_key_data_chain(
    data: bytes, base_offset: int = 0, *, learned: bool = True
) -> list[RawKeyData]:
    """Read the (decrypted) KEMAC Encr data in one pass: Key data sub-payloads linked by
    next payload, as :data:`RawKeyData`; errors as :func:`parse_key_data_chain`'s.
    Layouts are used and learned as by :func:`scan_message`, unless ``learned`` is false."""
    name = "KEY DATA"
    if not isinstance(data, bytes):
        data = bytes(data)
    n = len(data)
    found = _unpacked(_CHAIN_LAYOUTS, data) if learned else None
    if found is not None:
        layout, ext = found
        return [get(ext) for get in layout.parts]
    base = base_offset
    keys: list[RawKeyData] = []
    pos = 0
    while pos < n:
        at = pos
        if pos + 4 <= n:
            nxt, tv, length = _B_B_H.unpack_from(data, pos)
        else:
            nxt, tv, length = data[pos], -1, -1
        key_type = _KEY_DATA_TYPES.get(tv >> 4)
        kv = _KV_TYPES.get(tv & 0x0F)
        if key_type is None or kv is None:
            # Not a whole head, or a type not known: the error, in reading order.
            if pos + 2 > n:
                _short(n, pos, base, name, (("next payload", 1), ("type/KV", 1)))
            tv = data[pos + 1]
            if _KEY_DATA_TYPES.get(tv >> 4) is None:
                raise _unsupported("key type", tv >> 4, base + pos + 1, name, ErrorNo.UNSPECIFIED)
            if _KV_TYPES.get(tv & 0x0F) is None:
                raise _unsupported(
                    "key validity type", tv & 0x0F, base + pos + 1, name, ErrorNo.UNSPECIFIED
                )
            _short(n, pos + 2, base, name, (("key data len", 2),))
        pos += 4
        if pos + length > n:
            _short(n, pos, base, name, (("key data", length),))
        key = data[pos : pos + length]
        pos += length
        salt = None
        if key_type in _SALTED:
            if pos + 2 > n:
                _short(n, pos, base, name, (("salt len", 2),))
            length = (data[pos] << 8) | data[pos + 1]
            pos += 2
            if pos + length > n:
                _short(n, pos, base, name, (("salt data", length),))
            salt = data[pos : pos + length]
            pos += length
        first = second = b""
        if kv is _KV_SPI:
            if pos >= n:
                _short(n, pos, base, name, (("SPI length", 1),))
            length = data[pos]
            pos += 1
            if pos + length > n:
                _short(n, pos, base, name, (("SPI", length),))
            first = data[pos : pos + length]
            pos += length
        elif kv is _KV_INTERVAL:
            if pos >= n:
                _short(n, pos, base, name, (("VF length", 1),))
            length = data[pos]
            pos += 1
            if pos + length + 1 > n:
                _short(n, pos, base, name, (("Valid From", length), ("VT length", 1)))
            first = data[pos : pos + length]
            pos += length
            length = data[pos]
            pos += 1
            if pos + length > n:
                _short(n, pos, base, name, (("Valid To", length),))
            second = data[pos : pos + length]
            pos += length
        keys.append((key_type, key, salt, kv, first, second))
        if nxt == _LAST:
            if pos < n:
                raise MikeyParseError(
                    f"{n - pos} trailing bytes after the last key data sub-payload",
                    offset=base + pos,
                    payload=name,
                )
            break
        if nxt != _KEY_DATA:
            raise MikeyParseError(
                f"next payload {nxt} inside KEMAC Encr data (only KEY DATA or last)",
                offset=base + at,
                payload=name,
            )
        if pos >= n:
            raise MikeyParseError(
                "truncated: another key data sub-payload announced",
                offset=base + pos,
                payload=name,
            )
    if keys and learned:
        _learn(_CHAIN_LAYOUTS, n, _chain_layout(data, keys))
    return keys


def _validity(kv: KvType, first: bytes, second: bytes) -> KeyValidity:
    if kv is KvType.SPI:
        return SpiValidity(first)
    if kv is KvType.INTERVAL:
        return IntervalValidity(first, second)
    return NullValidity()


def parse_key_data_chain(data: bytes, base_offset: int = 0) -> tuple[KeyDataPayload, ...]:
    """Parse the (decrypted) KEMAC Encr data: Key data sub-payloads linked by next payload.

    ``base_offset`` is added to error offsets (the Encr data's offset in the message).
    """
    return tuple(
        KeyDataPayload(key_type, key, salt, _validity(kv, first, second))
        for key_type, key, salt, kv, first, second in scan_key_data_chain(data, base_offset)
    )

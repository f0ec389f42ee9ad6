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
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar, TypeAlias

from mbmssec.errors import MbmssecError

__all__ = [
    "MBMS_TEK_FETCH_EXT_TYPE",
    "MIKEY_VERSION",
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
    "mac_length",
    "parse_key_data_chain",
    "parse_message",
    "serialise_key_data_chain",
    "serialise_message",
    "split_messages",
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


def _payload_name(ptype: PayloadType) -> str:
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


_TS_LENGTH = {TsType.NTP_UTC: 8, TsType.NTP: 8, TsType.COUNTER: 4}


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


# --------------------------------------------------------------------------- reader


class _Reader:
    """A bounded cursor over bytes; every read is checked and errors carry the offset."""

    __slots__ = ("base", "data", "pos")

    def __init__(self, data: bytes, base: int = 0) -> None:
        self.data = data
        self.pos = 0
        self.base = base

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int, payload: str, what: str) -> bytes:
        if n > len(self.data) - self.pos:
            raise MikeyParseError(
                f"truncated: {what} needs {n} bytes, {len(self.data) - self.pos} left",
                offset=self.offset,
                payload=payload,
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self, payload: str, what: str) -> int:
        return self.take(1, payload, what)[0]

    def u16(self, payload: str, what: str) -> int:
        return int.from_bytes(self.take(2, payload, what), "big")

    def u32(self, payload: str, what: str) -> int:
        return int.from_bytes(self.take(4, payload, what), "big")


def _enum(
    cls: type[IntEnum],
    value: int,
    *,
    offset: int,
    payload: str,
    what: str,
    error_no: ErrorNo,
) -> IntEnum:
    try:
        return cls(value)
    except ValueError:
        raise UnsupportedError(
            f"{what} {value} not supported", offset=offset, payload=payload, error_no=error_no
        ) from None


def _check_uint(value: int, bits: int, what: str) -> None:
    if not 0 <= value < (1 << bits):
        raise EncodeError(f"{what} {value} does not fit in {bits} bits")


def _check_len(data: bytes, bits: int, what: str, *, minimum: int = 0) -> None:
    if not minimum <= len(data) < (1 << bits):
        raise EncodeError(f"{what} length {len(data)} outside {minimum}..{(1 << bits) - 1} bytes")


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
        n = _TS_LENGTH[self.ts_type]
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

_SRTP_FLAGS = frozenset(
    {
        SrtpParamType.SRTP_ENCRYPTION,
        SrtpParamType.SRTCP_ENCRYPTION,
        SrtpParamType.SRTP_AUTHENTICATION,
    }
)

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

    def to_payload(self) -> SecurityPolicyPayload:
        """The SP payload carrying this policy, parameters in type order."""
        params: list[PolicyParam] = []
        for ptype, name in _SRTP_DEFAULT_NAMES.items():
            value = getattr(self, name)
            if value is None:
                continue
            if ptype is SrtpParamType.KEY_DERIVATION_RATE:
                _check_uint(int(value), 8 * _KDR_WIRE_LEN, "key derivation rate")
                params.append(PolicyParam(ptype, int(value).to_bytes(_KDR_WIRE_LEN, "big")))
            else:
                _check_uint(int(value), 8, f"SRTP parameter {name}")
                params.append(PolicyParam(ptype, bytes([int(value)])))
        return SecurityPolicyPayload(self.policy_no, ProtType.SRTP, tuple(params))

    @classmethod
    def from_payload(cls, payload: SecurityPolicyPayload, offset: int = 0) -> SrtpPolicy:
        """Interpret an SP payload; unknown, repeated or ill-sized parameters are rejected.

        Raises :class:`UnsupportedError` with error number ``INVALID_SP`` or
        ``INVALID_SPPAR``; ``offset`` is the payload's offset for the error.
        """
        if payload.prot_type is not ProtType.SRTP:
            raise UnsupportedError(
                f"security protocol {payload.prot_type} not supported",
                offset=offset,
                payload="SP",
                error_no=ErrorNo.INVALID_SP,
            )
        values: dict[str, object] = {}
        for param in payload.params:
            try:
                ptype = SrtpParamType(param.param_type)
            except ValueError:
                raise UnsupportedError(
                    f"SRTP policy parameter type {param.param_type} not supported",
                    offset=offset,
                    payload="SP",
                    error_no=ErrorNo.INVALID_SPPAR,
                ) from None
            name = _SRTP_DEFAULT_NAMES[ptype]
            if name in values:
                raise UnsupportedError(
                    f"SRTP policy parameter {ptype.name} repeated",
                    offset=offset,
                    payload="SP",
                    error_no=ErrorNo.INVALID_SPPAR,
                )
            width_ok = (
                1 <= len(param.value) <= _KDR_WIRE_LEN
                if ptype is SrtpParamType.KEY_DERIVATION_RATE
                else len(param.value) == 1
            )
            if not width_ok:
                raise UnsupportedError(
                    f"SRTP policy parameter {ptype.name} has length {len(param.value)}",
                    offset=offset,
                    payload="SP",
                    error_no=ErrorNo.INVALID_SPPAR,
                )
            raw = int.from_bytes(param.value, "big")
            value: object = raw
            if ptype in _SRTP_ENUMS:
                try:
                    value = _SRTP_ENUMS[ptype](raw)
                except ValueError:
                    raise UnsupportedError(
                        f"SRTP policy {ptype.name} value {raw} not supported",
                        offset=offset,
                        payload="SP",
                        error_no=ErrorNo.INVALID_SPPAR,
                    ) from None
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
        return cls(policy_no=payload.policy_no, **values)  # type: ignore[arg-type]


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
        if self.fetch is None and self.lifetime is None:
            raise EncodeError("TEK fetch extension needs a fetch hint or a lifetime")
        out = bytearray([self.VERSION])
        if isinstance(self.fetch, FetchAtTime):
            _check_uint(self.fetch.ntp, 64, "fetch time")
            out += bytes([_FetchTag.FETCH_AT_TIME, 8]) + self.fetch.ntp.to_bytes(8, "big")
        elif isinstance(self.fetch, FetchAtSrtpIndex):
            _check_uint(self.fetch.index, 48, "fetch SRTP index")
            out += bytes([_FetchTag.FETCH_AT_SRTP_INDEX, 6]) + self.fetch.index.to_bytes(6, "big")
        if self.lifetime is not None:
            _check_uint(self.lifetime, 32, "TEK lifetime")
            out += bytes([_FetchTag.TEK_LIFETIME, 4]) + self.lifetime.to_bytes(4, "big")
        return GeneralExtensionPayload(MBMS_TEK_FETCH_EXT_TYPE, bytes(out))

    @classmethod
    def from_payload(cls, payload: GeneralExtensionPayload, offset: int = 0) -> TekFetchExtension:
        """Decode the extension; ``offset`` is the payload's offset in the message."""
        name = "EXT"
        # The Data field starts 4 bytes into the payload (next, type, 16-bit length).
        r = _Reader(payload.data, offset + 4)
        version = r.u8(name, "extension version")
        if version != cls.VERSION:
            raise UnsupportedError(
                f"TEK fetch extension version {version} not supported",
                offset=r.offset - 1,
                payload=name,
            )
        fetch: FetchHint | None = None
        lifetime: int | None = None
        seen: set[int] = set()
        if r.remaining() == 0:
            raise MikeyParseError("TEK fetch extension has no items", offset=r.offset, payload=name)
        while r.remaining():
            at = r.offset
            tag = r.u8(name, "item tag")
            length = r.u8(name, "item length")
            value = r.take(length, name, "item value")
            expected = {1: 8, 2: 6, 3: 4}.get(tag)
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
            number = int.from_bytes(value, "big")
            if tag == _FetchTag.FETCH_AT_TIME:
                fetch = FetchAtTime(number)
            elif tag == _FetchTag.FETCH_AT_SRTP_INDEX:
                fetch = FetchAtSrtpIndex(number)
            else:
                lifetime = number
        return cls(fetch=fetch, lifetime=lifetime)


# --------------------------------------------------------------------------- serialise


def _serialise_header(h: CommonHeader, first: int) -> bytes:
    _check_uint(h.version, 8, "version")
    _check_uint(h.csb_id, 32, "CSB ID")
    if len(h.cs_map) > 255:
        raise EncodeError(f"{len(h.cs_map)} crypto sessions, at most 255")
    out = bytearray(
        struct.pack(
            ">BBBBIBB",
            h.version,
            int(h.data_type),
            first,
            (0x80 if h.v_flag else 0) | int(h.prf_func),
            h.csb_id,
            len(h.cs_map),
            int(h.cs_id_map_type),
        )
    )
    for cs in h.cs_map:
        _check_uint(cs.policy_no, 8, "policy no")
        _check_uint(cs.ssrc, 32, "SSRC")
        _check_uint(cs.roc, 32, "ROC")
        out += struct.pack(">BII", cs.policy_no, cs.ssrc, cs.roc)
    return bytes(out)


def _serialise_payload(p: Payload, nxt: int) -> bytes:
    if isinstance(p, TimestampPayload):
        return bytes([nxt, int(p.ts_type)]) + p.value_bytes()
    if isinstance(p, RandPayload):
        _check_len(p.rand, 8, "RAND", minimum=1)
        return bytes([nxt, len(p.rand)]) + p.rand
    if isinstance(p, IdPayload):
        _check_len(p.data, 16, "ID data")
        return struct.pack(">BBH", nxt, int(p.id_type), len(p.data)) + p.data
    if isinstance(p, SecurityPolicyPayload):
        _check_uint(p.policy_no, 8, "policy no")
        body = bytearray()
        for param in p.params:
            _check_uint(param.param_type, 8, "policy param type")
            _check_len(param.value, 8, "policy param value")
            body += bytes([param.param_type, len(param.value)]) + param.value
        _check_len(bytes(body), 16, "policy param")
        return struct.pack(">BBBH", nxt, p.policy_no, int(p.prot_type), len(body)) + body
    if isinstance(p, KemacPayload):
        _check_len(p.encr_data, 16, "Encr data")
        if len(p.mac) != _MAC_LENGTH[p.mac_alg]:
            raise EncodeError(f"MAC of {len(p.mac)} bytes for {p.mac_alg.name}")
        return (
            struct.pack(">BBH", nxt, int(p.encr_alg), len(p.encr_data))
            + p.encr_data
            + bytes([int(p.mac_alg)])
            + p.mac
        )
    if isinstance(p, VerificationPayload):
        if len(p.ver_data) != _MAC_LENGTH[p.auth_alg]:
            raise EncodeError(f"Ver data of {len(p.ver_data)} bytes for {p.auth_alg.name}")
        return bytes([nxt, int(p.auth_alg)]) + p.ver_data
    if isinstance(p, ErrorPayload):
        _check_uint(p.error_no, 8, "error no")
        _check_uint(p.reserved, 16, "reserved")
        return struct.pack(">BBH", nxt, p.error_no, p.reserved)
    if isinstance(p, GeneralExtensionPayload):
        _check_uint(p.ext_type, 8, "extension type")
        _check_len(p.data, 16, "extension data")
        return struct.pack(">BBH", nxt, p.ext_type, len(p.data)) + p.data
    raise EncodeError(f"not a MIKEY payload: {type(p).__name__}")


def serialise_message(msg: MikeyMessage) -> bytes:
    """The wire form of ``msg``; next-payload fields are filled in from the order."""
    types = [int(p.PAYLOAD_TYPE) for p in msg.payloads] + [int(PayloadType.LAST)]
    out = bytearray(_serialise_header(msg.header, types[0]))
    for i, p in enumerate(msg.payloads):
        out += _serialise_payload(p, types[i + 1])
    return bytes(out)


def _serialise_key_data(k: KeyDataPayload, nxt: int) -> bytes:
    _check_len(k.key, 16, "key data")
    out = bytearray(
        struct.pack(">BBH", nxt, (int(k.key_type) << 4) | int(k.validity.KV_TYPE), len(k.key))
    )
    out += k.key
    if k.key_type.has_salt:
        if k.salt is None:
            raise EncodeError(f"key type {k.key_type.name} needs a salt")
        _check_len(k.salt, 16, "salt data")
        out += struct.pack(">H", len(k.salt)) + k.salt
    elif k.salt is not None:
        raise EncodeError(f"key type {k.key_type.name} carries no salt")
    v = k.validity
    if isinstance(v, SpiValidity):
        _check_len(v.spi, 8, "SPI/MKI")
        out += bytes([len(v.spi)]) + v.spi
    elif isinstance(v, IntervalValidity):
        _check_len(v.valid_from, 8, "Valid From")
        _check_len(v.valid_to, 8, "Valid To")
        out += bytes([len(v.valid_from)]) + v.valid_from + bytes([len(v.valid_to)]) + v.valid_to
    return bytes(out)


def serialise_key_data_chain(keys: Sequence[KeyDataPayload]) -> bytes:
    """Concatenated Key data sub-payloads, the plaintext of the KEMAC Encr data (6.2, 6.13)."""
    out = bytearray()
    for i, k in enumerate(keys):
        nxt = PayloadType.KEY_DATA if i + 1 < len(keys) else PayloadType.LAST
        out += _serialise_key_data(k, int(nxt))
    return bytes(out)


# --------------------------------------------------------------------------- parse


def _parse_header(r: _Reader) -> tuple[CommonHeader, int]:
    name = "HDR"
    start = r.offset
    version = r.u8(name, "version")
    if version != MIKEY_VERSION:
        # RFC 3830 6.1 defines version 1 only; the rest cannot be interpreted.
        raise UnsupportedError(f"MIKEY version {version} not supported", offset=start, payload=name)
    at = r.offset
    dt = _enum(
        DataType,
        r.u8(name, "data type"),
        offset=at,
        payload=name,
        what="data type",
        error_no=ErrorNo.INVALID_DT,
    )
    if dt not in SUPPORTED_DATA_TYPES:
        raise UnsupportedError(
            f"data type {dt.name} not supported",
            offset=at,
            payload=name,
            error_no=ErrorNo.INVALID_DT,
        )
    first = r.u8(name, "next payload")
    at = r.offset
    vp = r.u8(name, "V/PRF func")
    prf = _enum(
        PrfFunc,
        vp & 0x7F,
        offset=at,
        payload=name,
        what="PRF func",
        error_no=ErrorNo.INVALID_PRF,
    )
    csb_id = r.u32(name, "CSB ID")
    n_cs = r.u8(name, "#CS")
    at = r.offset
    map_type = _enum(
        CsIdMapType,
        r.u8(name, "CS ID map type"),
        offset=at,
        payload=name,
        what="CS ID map type",
        error_no=ErrorNo.UNSPECIFIED,
    )
    cs_map = []
    for _ in range(n_cs):
        policy_no = r.u8(name, "SRTP-ID policy no")
        ssrc = r.u32(name, "SRTP-ID SSRC")
        roc = r.u32(name, "SRTP-ID ROC")
        cs_map.append(SrtpCs(policy_no, ssrc, roc))
    header = CommonHeader(
        data_type=DataType(dt),
        csb_id=csb_id,
        cs_map=tuple(cs_map),
        v_flag=bool(vp & 0x80),
        prf_func=PrfFunc(prf),
        cs_id_map_type=CsIdMapType(map_type),
        version=version,
    )
    return header, first


def _parse_payload(ptype: PayloadType, r: _Reader) -> tuple[Payload, int]:
    start = r.offset
    if ptype is PayloadType.T:
        name = "T"
        nxt = r.u8(name, "next payload")
        at = r.offset
        ts_type = TsType(
            _enum(
                TsType,
                r.u8(name, "TS type"),
                offset=at,
                payload=name,
                what="TS type",
                error_no=ErrorNo.INVALID_TS,
            )
        )
        value = int.from_bytes(r.take(_TS_LENGTH[ts_type], name, "TS value"), "big")
        return TimestampPayload(ts_type, value), nxt
    if ptype is PayloadType.RAND:
        name = "RAND"
        nxt = r.u8(name, "next payload")
        n = r.u8(name, "RAND len")
        if n == 0:
            raise MikeyParseError("RAND len is 0", offset=r.offset - 1, payload=name)
        return RandPayload(r.take(n, name, "RAND")), nxt
    if ptype is PayloadType.ID:
        name = "ID"
        nxt = r.u8(name, "next payload")
        at = r.offset
        id_type = IdType(
            _enum(
                IdType,
                r.u8(name, "ID type"),
                offset=at,
                payload=name,
                what="ID type",
                error_no=ErrorNo.INVALID_ID,
            )
        )
        n = r.u16(name, "ID len")
        return IdPayload(id_type, r.take(n, name, "ID data")), nxt
    if ptype is PayloadType.SP:
        name = "SP"
        nxt = r.u8(name, "next payload")
        policy_no = r.u8(name, "policy no")
        at = r.offset
        prot = ProtType(
            _enum(
                ProtType,
                r.u8(name, "prot type"),
                offset=at,
                payload=name,
                what="security protocol",
                error_no=ErrorNo.INVALID_SP,
            )
        )
        n = r.u16(name, "policy param length")
        body = _Reader(r.take(n, name, "policy param"), r.offset - n)
        params = []
        while body.remaining():
            ptype_ = body.u8(name, "policy param type")
            plen = body.u8(name, "policy param length")
            params.append(PolicyParam(ptype_, body.take(plen, name, "policy param value")))
        return SecurityPolicyPayload(policy_no, prot, tuple(params)), nxt
    if ptype is PayloadType.KEMAC:
        name = "KEMAC"
        nxt = r.u8(name, "next payload")
        at = r.offset
        encr = EncrAlg(
            _enum(
                EncrAlg,
                r.u8(name, "Encr alg"),
                offset=at,
                payload=name,
                what="encryption algorithm",
                error_no=ErrorNo.INVALID_EA,
            )
        )
        n = r.u16(name, "Encr data len")
        data = r.take(n, name, "Encr data")
        at = r.offset
        mac_alg = MacAlg(
            _enum(
                MacAlg,
                r.u8(name, "Mac alg"),
                offset=at,
                payload=name,
                what="MAC algorithm",
                error_no=ErrorNo.INVALID_MAC,
            )
        )
        mac = r.take(_MAC_LENGTH[mac_alg], name, "MAC")
        return KemacPayload(encr, data, mac_alg, mac), nxt
    if ptype is PayloadType.V:
        name = "V"
        nxt = r.u8(name, "next payload")
        at = r.offset
        alg = MacAlg(
            _enum(
                MacAlg,
                r.u8(name, "Auth alg"),
                offset=at,
                payload=name,
                what="MAC algorithm",
                error_no=ErrorNo.INVALID_MAC,
            )
        )
        return VerificationPayload(alg, r.take(_MAC_LENGTH[alg], name, "Ver data")), nxt
    if ptype is PayloadType.ERR:
        name = "ERR"
        nxt = r.u8(name, "next payload")
        err = r.u8(name, "error no")
        reserved = r.u16(name, "reserved")
        return ErrorPayload(err, reserved), nxt
    if ptype is PayloadType.GENERAL_EXT:
        name = "EXT"
        nxt = r.u8(name, "next payload")
        ext_type = r.u8(name, "type")
        n = r.u16(name, "length")
        return GeneralExtensionPayload(ext_type, r.take(n, name, "data")), nxt
    if ptype in _OTHER_MODE_PAYLOADS:
        raise UnsupportedError(
            f"{ptype.name} payload not supported in pre-shared-key mode",
            offset=start,
            payload=_payload_name(ptype),
        )
    # KEY_DATA (only valid inside KEMAC) and LAST never reach here as a payload.
    name = _payload_name(ptype)
    raise MikeyParseError(f"{name} payload not allowed here", offset=start, payload=name)


def parse_message(data: bytes) -> MikeyMessage:
    """Parse one whole MIKEY message; trailing or missing bytes are a :class:`MikeyParseError`.

    Only structure is checked here; authentication and semantics are for
    :mod:`mbmssec.impl.protocols.mikey_messages`.
    """
    msg, end = _parse_prefix(data)
    if end != len(data):
        prev = msg.payloads[-1].NAME if msg.payloads else "HDR"
        raise MikeyParseError(
            f"{len(data) - end} trailing bytes after the last payload", offset=end, payload=prev
        )
    return msg


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
            _msg, end = _parse_prefix(raw[at:])
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


def _parse_prefix(data: bytes) -> tuple[MikeyMessage, int]:
    """The MIKEY message at the start of ``data`` and where it ends."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MikeyParseError("MIKEY message must be bytes", offset=0, payload="HDR")
    r = _Reader(bytes(data))
    header, nxt = _parse_header(r)
    payloads: list[Payload] = []
    offsets: list[int] = []
    prev = "HDR"
    while nxt != PayloadType.LAST:
        at = r.offset
        try:
            ptype = PayloadType(nxt)
        except ValueError:
            raise MikeyParseError(
                f"unknown next payload type {nxt} after {prev}", offset=at, payload=prev
            ) from None
        if r.remaining() == 0:
            raise MikeyParseError(
                f"truncated: {_payload_name(ptype)} payload announced but message ends",
                offset=at,
                payload=_payload_name(ptype),
            )
        payload, nxt = _parse_payload(ptype, r)
        payloads.append(payload)
        offsets.append(at)
        prev = payload.NAME
    return MikeyMessage(header, tuple(payloads), tuple(offsets)), r.offset


def _parse_key_data(r: _Reader) -> tuple[KeyDataPayload, int]:
    name = "KEY DATA"
    nxt = r.u8(name, "next payload")
    at = r.offset
    tv = r.u8(name, "type/KV")
    key_type = KeyDataType(
        _enum(
            KeyDataType,
            tv >> 4,
            offset=at,
            payload=name,
            what="key type",
            error_no=ErrorNo.UNSPECIFIED,
        )
    )
    kv = KvType(
        _enum(
            KvType,
            tv & 0x0F,
            offset=at,
            payload=name,
            what="key validity type",
            error_no=ErrorNo.UNSPECIFIED,
        )
    )
    n = r.u16(name, "key data len")
    key = r.take(n, name, "key data")
    salt = None
    if key_type.has_salt:
        n = r.u16(name, "salt len")
        salt = r.take(n, name, "salt data")
    validity: KeyValidity
    if kv is KvType.SPI:
        n = r.u8(name, "SPI length")
        validity = SpiValidity(r.take(n, name, "SPI"))
    elif kv is KvType.INTERVAL:
        n = r.u8(name, "VF length")
        vf = r.take(n, name, "Valid From")
        n = r.u8(name, "VT length")
        validity = IntervalValidity(vf, r.take(n, name, "Valid To"))
    else:
        validity = NullValidity()
    return KeyDataPayload(key_type, key, salt, validity), nxt


def parse_key_data_chain(data: bytes, base_offset: int = 0) -> tuple[KeyDataPayload, ...]:
    """Parse the (decrypted) KEMAC Encr data: Key data sub-payloads linked by next payload.

    ``base_offset`` is added to error offsets (the Encr data's offset in the message).
    """
    r = _Reader(bytes(data), base_offset)
    keys: list[KeyDataPayload] = []
    while r.remaining():
        at = r.offset
        key, nxt = _parse_key_data(r)
        keys.append(key)
        if nxt == PayloadType.LAST:
            if r.remaining():
                raise MikeyParseError(
                    f"{r.remaining()} trailing bytes after the last key data sub-payload",
                    offset=r.offset,
                    payload="KEY DATA",
                )
            break
        if nxt != PayloadType.KEY_DATA:
            raise MikeyParseError(
                f"next payload {nxt} inside KEMAC Encr data (only KEY DATA or last)",
                offset=at,
                payload="KEY DATA",
            )
        if not r.remaining():
            raise MikeyParseError(
                "truncated: another key data sub-payload announced",
                offset=r.offset,
                payload="KEY DATA",
            )
    return tuple(keys)

"""MIKEY pre-shared-key messages of the MBMS TEK delivery (RFC 3830 3.1, 5).

The BM-SC delivers TEKs to one UE in a MIKEY pre-shared-key I_MESSAGE protected
with that UE's KEK (the pre-shared key of RFC 3830 3.1)::

    I_MESSAGE = HDR, T, RAND, [IDi], [IDr], {SP}, {EXT}, KEMAC

and a UE asked for it (V flag) answers with the verification message::

    R_MESSAGE = HDR, T, [IDr], V

* :func:`new_tek_delivery` assembles the content (fresh RAND from a ``rand(n)``
  source, T from a replay counter or from ``now``); :func:`build_tek_delivery`
  encodes it: the Key data chain (one or several TEKs, each with optional salt and
  MKI) is encrypted with the key derived from the KEK (RFC 3830 4.1.4, 4.2.3) and
  the whole message is MACed (4.2.4), the MAC covering every byte but itself.
* :func:`parse_and_verify` checks structure, then the MAC *before* decrypting
  anything, then replay protection (:class:`ReplayState`: COUNTER, TIMESTAMP or
  NONE, the three options the proposal leaves open), then decrypts and returns a
  :class:`VerifiedTekDelivery` with the delivered keys and the next replay state.
* :func:`build_verification` / :func:`verify_verification` produce and check the
  V payload of RFC 3830 5.2: HMAC over the response (minus the Ver data field)
  followed by ``IDi || IDr || T`` (the ID data of the initiator's and responder's
  ID payloads, each empty when absent, and the initiator's TS value).
* :func:`build_error_message` / :func:`parse_error_message` handle the (unauthenticated)
  error message ``HDR, T, {ERR}`` (RFC 3830 5.1.2).

Everything is sans-I/O: callers pass bytes, ``now`` (Unix seconds, UTC) and a
random source; nothing here reads a clock.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum

from mbmssec.impl.protocols.mikey import (
    MBMS_TEK_FETCH_EXT_TYPE,
    CommonHeader,
    DataType,
    EncodeError,
    EncrAlg,
    ErrorNo,
    ErrorPayload,
    FetchHint,
    GeneralExtensionPayload,
    IdPayload,
    KemacPayload,
    KeyDataPayload,
    KeyDataType,
    MacAlg,
    MikeyAuthError,
    MikeyMessage,
    MikeyParseError,
    MikeyReplayError,
    NullValidity,
    Payload,
    RandPayload,
    SecurityPolicyPayload,
    SpiValidity,
    SrtpCs,
    SrtpPolicy,
    TekFetchExtension,
    TimestampPayload,
    TsType,
    UnsupportedError,
    VerificationPayload,
    mac_length,
    parse_key_data_chain,
    parse_message,
    serialise_key_data_chain,
    serialise_message,
)
from mbmssec.impl.protocols.mikey_crypto import (
    compute_mac,
    derive_message_keys,
    kemac_decrypt,
    kemac_encrypt,
    verify_mac,
)

__all__ = [
    "NTP_UNIX_OFFSET",
    "ErrorReport",
    "FetchHint",
    "ReplayMode",
    "ReplayState",
    "TekDelivery",
    "TekKey",
    "VerificationResult",
    "VerifiedTekDelivery",
    "build_error_message",
    "build_tek_delivery",
    "build_verification",
    "counter_timestamp",
    "new_tek_delivery",
    "ntp_from_unix",
    "ntp_timestamp",
    "parse_and_verify",
    "parse_error_message",
    "unix_from_ntp",
    "verify_verification",
]

NTP_UNIX_OFFSET = 2_208_988_800
"""Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01)."""

DEFAULT_RAND_LEN = 16  # RFC 3830 6.11: RAND SHOULD be at least 128 bits


def ntp_from_unix(t: float) -> int:
    """The 64-bit NTP timestamp (32.32 fixed point since 1900) of Unix time ``t``."""
    value = round((t + NTP_UNIX_OFFSET) * (1 << 32))
    if not 0 <= value < 1 << 64:
        raise EncodeError(f"time {t} outside the NTP era")
    return value


def unix_from_ntp(ntp: int) -> float:
    """Unix seconds of a 64-bit NTP timestamp."""
    return ntp / (1 << 32) - NTP_UNIX_OFFSET


def ntp_timestamp(now: float) -> TimestampPayload:
    """An NTP-UTC T payload for Unix time ``now``."""
    return TimestampPayload(TsType.NTP_UTC, ntp_from_unix(now))


def counter_timestamp(counter: int) -> TimestampPayload:
    """A COUNTER T payload (32 bits) for a replay counter."""
    if not 0 <= counter < 1 << 32:
        raise EncodeError(f"replay counter {counter} does not fit 32 bits")
    return TimestampPayload(TsType.COUNTER, counter)


# --------------------------------------------------------------------------- content


@dataclass(frozen=True, repr=False)
class TekKey:
    """One delivered TEK: key, optional SRTP master salt, optional MKI (key validity SPI/MKI).

    Sent as a Key data sub-payload (RFC 3830 6.13) of type TEK, or TEK+SALT when a
    salt is given.  ``group_key`` marks instead a key that protects further TEK
    deliveries (a KEK shared by a group of UEs), sent with type TGK (TGK+SALT with a
    salt), the RFC 3830 type for a key from which a receiver obtains TEKs.  ``repr``
    hides the secrets.
    """

    tek: bytes
    salt: bytes | None = None
    mki: bytes | None = None
    group_key: bool = False

    def __repr__(self) -> str:
        kind = "group key" if self.group_key else "TEK"
        return f"TekKey(<{len(self.tek)}-byte {kind}>, mki={self.mki!r})"

    def to_key_data(self) -> KeyDataPayload:
        """The Key data sub-payload carrying this key."""
        if self.group_key:
            key_type = KeyDataType.TGK_SALT if self.salt is not None else KeyDataType.TGK
        else:
            key_type = KeyDataType.TEK_SALT if self.salt is not None else KeyDataType.TEK
        return KeyDataPayload(
            key_type,
            self.tek,
            self.salt,
            SpiValidity(self.mki) if self.mki is not None else NullValidity(),
        )


@dataclass(frozen=True)
class TekDelivery:
    """The content of one TEK delivery I_MESSAGE (what is built and what is verified).

    ``timestamp`` is the T payload: a COUNTER (replay counter) or NTP-UTC time.
    ``policies`` become SP payloads; ``fetch``/``lifetime`` the private-use TEK
    fetch extension; ``extensions`` are other General Extension payloads passed
    through unchanged. ``v_flag`` asks the UE for a verification message.
    """

    csb_id: int
    keys: tuple[TekKey, ...]
    timestamp: TimestampPayload
    rand: bytes
    cs_map: tuple[SrtpCs, ...] = ()
    policies: tuple[SrtpPolicy, ...] = ()
    id_i: IdPayload | None = None
    id_r: IdPayload | None = None
    fetch: FetchHint | None = None
    lifetime: int | None = None
    encr_alg: EncrAlg = EncrAlg.AES_CM_128
    mac_alg: MacAlg = MacAlg.HMAC_SHA_1_160
    v_flag: bool = False
    extensions: tuple[GeneralExtensionPayload, ...] = ()


class ReplayMode(Enum):
    """Replay protection applied by the receiver (RFC 3830 5.4; an open option of the proposal)."""

    COUNTER = "counter"
    """T must be a COUNTER strictly greater than the last accepted one."""
    TIMESTAMP = "timestamp"
    """T must be NTP(-UTC) within ``max_skew`` of ``now`` and not seen before (replay cache)."""
    NONE = "none"
    """No replay check (T is still present, as RFC 3830 requires)."""


@dataclass(frozen=True)
class ReplayState:
    """The receiver's replay-protection state; :func:`parse_and_verify` returns the next one."""

    mode: ReplayMode
    last_counter: int | None = None
    max_skew: float = 60.0
    recent: frozenset[tuple[int, bytes]] = frozenset()
    """(NTP timestamp, RAND) of messages accepted within the skew window (TIMESTAMP mode)."""


@dataclass(frozen=True)
class VerifiedTekDelivery:
    """An authenticated, replay-checked TEK delivery and the replay state to keep."""

    delivery: TekDelivery
    replay_state: ReplayState

    @property
    def keys(self) -> tuple[TekKey, ...]:
        """The delivered keys, in message order."""
        return self.delivery.keys


@dataclass(frozen=True)
class VerificationResult:
    """A checked verification message (RFC 3830 5.2)."""

    csb_id: int
    id_r: IdPayload | None


@dataclass(frozen=True)
class ErrorReport:
    """A parsed MIKEY error message (RFC 3830 5.1.2); not authenticated."""

    csb_id: int
    errors: tuple[int, ...]
    timestamp: TimestampPayload | None
    cs_map: tuple[SrtpCs, ...] = field(default=())


# --------------------------------------------------------------------------- build


def new_tek_delivery(
    *,
    csb_id: int,
    keys: Sequence[TekKey],
    now: float,
    rand: Callable[[int], bytes] = os.urandom,
    counter: int | None = None,
    cs_map: Sequence[SrtpCs] = (),
    policies: Sequence[SrtpPolicy] = (),
    id_i: IdPayload | None = None,
    id_r: IdPayload | None = None,
    fetch: FetchHint | None = None,
    lifetime: int | None = None,
    encr_alg: EncrAlg = EncrAlg.AES_CM_128,
    mac_alg: MacAlg = MacAlg.HMAC_SHA_1_160,
    request_verification: bool = False,
    rand_len: int = DEFAULT_RAND_LEN,
) -> TekDelivery:
    """Assemble a TEK delivery: fresh RAND, T = COUNTER ``counter`` or else NTP-UTC ``now``.

    ``os.urandom`` is only the default random source; protocol code passes its own.
    """
    r = rand(rand_len)
    if len(r) != rand_len:
        raise EncodeError(f"random source returned {len(r)} bytes, asked for {rand_len}")
    ts = counter_timestamp(counter) if counter is not None else ntp_timestamp(now)
    return TekDelivery(
        csb_id=csb_id,
        keys=tuple(keys),
        timestamp=ts,
        rand=r,
        cs_map=tuple(cs_map),
        policies=tuple(policies),
        id_i=id_i,
        id_r=id_r,
        fetch=fetch,
        lifetime=lifetime,
        encr_alg=encr_alg,
        mac_alg=mac_alg,
        v_flag=request_verification,
    )


def build_tek_delivery(delivery: TekDelivery, kek: bytes) -> bytes:
    """Encode, encrypt and MAC the TEK delivery I_MESSAGE for the UE holding ``kek``."""
    if not delivery.keys:
        raise EncodeError("a TEK delivery needs at least one key")
    if delivery.id_r is not None and delivery.id_i is None:
        raise EncodeError("IDr without IDi cannot be told apart from IDi on the wire")
    if not kek:
        raise EncodeError("empty KEK")
    payloads: list[Payload] = [delivery.timestamp, RandPayload(delivery.rand)]
    payloads += [i for i in (delivery.id_i, delivery.id_r) if i is not None]
    payloads += [p.to_payload() for p in delivery.policies]
    if delivery.fetch is not None or delivery.lifetime is not None:
        payloads.append(TekFetchExtension(delivery.fetch, delivery.lifetime).to_payload())
    payloads += list(delivery.extensions)
    keys = derive_message_keys(
        kek, delivery.csb_id, delivery.rand, delivery.encr_alg, delivery.mac_alg
    )
    plaintext = serialise_key_data_chain([k.to_key_data() for k in delivery.keys])
    encr_data = kemac_encrypt(
        delivery.encr_alg, keys, plaintext, delivery.csb_id, delivery.timestamp.value_bytes()
    )
    mac_len = mac_length(delivery.mac_alg)
    # The MAC covers the whole message except the MAC field itself (RFC 3830 5.2,
    # 6.2); KEMAC is last, so encode with a placeholder and MAC the prefix.
    payloads.append(KemacPayload(delivery.encr_alg, encr_data, delivery.mac_alg, bytes(mac_len)))
    header = CommonHeader(
        data_type=DataType.PSK_INIT,
        csb_id=delivery.csb_id,
        cs_map=delivery.cs_map,
        v_flag=delivery.v_flag,
    )
    wire = serialise_message(MikeyMessage(header, tuple(payloads)))
    if mac_len == 0:
        return wire
    body = wire[:-mac_len]
    return body + compute_mac(delivery.mac_alg, keys.auth_key, body)


# --------------------------------------------------------------------------- verify


def _check_replay(state: ReplayState, ts: TimestampPayload, rand: bytes, now: float) -> ReplayState:
    if state.mode is ReplayMode.NONE:
        return state
    if state.mode is ReplayMode.COUNTER:
        if ts.ts_type is not TsType.COUNTER:
            raise MikeyReplayError(f"expected a COUNTER timestamp, got {ts.ts_type.name}")
        if state.last_counter is not None and ts.value <= state.last_counter:
            raise MikeyReplayError(
                f"counter {ts.value} not above the last accepted {state.last_counter}"
            )
        return replace(state, last_counter=ts.value)
    if ts.ts_type is TsType.COUNTER:
        raise MikeyReplayError("expected an NTP timestamp, got COUNTER")
    sent = unix_from_ntp(ts.value)
    if abs(sent - now) > state.max_skew:
        raise MikeyReplayError(
            f"timestamp {sent - now:+.3f} s from now, outside +/-{state.max_skew} s"
        )
    entry = (ts.value, rand)
    if entry in state.recent:
        raise MikeyReplayError("message already accepted (replay cache)")
    horizon = now - state.max_skew
    kept = {e for e in state.recent if unix_from_ntp(e[0]) >= horizon}
    kept.add(entry)
    return replace(state, recent=frozenset(kept))


def _only(
    msg: MikeyMessage, cls: type[Payload], name: str, *, required: bool = True
) -> Payload | None:
    found = [(p, o) for p, o in zip(msg.payloads, msg.offsets, strict=True) if isinstance(p, cls)]
    if len(found) > 1:
        raise MikeyParseError(f"more than one {name} payload", offset=found[1][1], payload=name)
    if not found:
        if required:
            raise MikeyParseError(f"{name} payload missing", offset=0, payload="HDR")
        return None
    return found[0][0]


def parse_and_verify(
    message: bytes,
    kek: bytes,
    replay: ReplayState,
    now: float,
    *,
    allow_null_mac: bool = False,
    group_key: bool = False,
) -> VerifiedTekDelivery:
    """Verify a TEK delivery I_MESSAGE with ``kek`` and return the delivered keys.

    Order: structure (:class:`MikeyParseError` / :class:`UnsupportedError`), MAC over the
    message before any decryption (:class:`MikeyAuthError`, opaque), replay
    check (:class:`MikeyReplayError`), then decryption and the Key data chain. A Mac alg
    of NULL is an authentication failure unless ``allow_null_mac``. Nothing is
    returned, and the replay state does not advance, unless every check passes.
    With ``group_key`` the message must carry exactly one group key (Key data type
    TGK or TGK+SALT, see :class:`TekKey`) instead of TEKs.
    """
    msg = parse_message(message)
    data = bytes(message)
    hdr = msg.header
    if hdr.data_type is not DataType.PSK_INIT:
        raise UnsupportedError(
            f"expected a pre-shared-key I_MESSAGE, got data type {hdr.data_type.name}",
            offset=1,
            payload="HDR",
            error_no=ErrorNo.INVALID_DT,
        )
    if not msg.payloads or not isinstance(msg.payloads[-1], KemacPayload):
        raise MikeyParseError("KEMAC must be the last payload", offset=len(data), payload="KEMAC")
    kemac = msg.payloads[-1]
    kemac_at = msg.offsets[-1]
    ids: list[IdPayload] = []
    policies: list[tuple[SecurityPolicyPayload, int]] = []
    exts: list[tuple[GeneralExtensionPayload, int]] = []
    for p, at in zip(msg.payloads[:-1], msg.offsets[:-1], strict=True):
        if isinstance(p, IdPayload):
            ids.append(p)
        elif isinstance(p, SecurityPolicyPayload):
            policies.append((p, at))
        elif isinstance(p, GeneralExtensionPayload):
            exts.append((p, at))
        elif not isinstance(p, TimestampPayload | RandPayload):
            raise MikeyParseError(
                f"{p.NAME} payload not allowed in an I_MESSAGE", offset=at, payload=p.NAME
            )
    ts = _only(msg, TimestampPayload, "T")
    rand_p = _only(msg, RandPayload, "RAND")
    assert isinstance(ts, TimestampPayload) and isinstance(rand_p, RandPayload)
    if len(ids) > 2:
        raise MikeyParseError("more than two ID payloads", offset=0, payload="ID")

    # Authenticate before touching the encrypted data (RFC 3830 5.2).
    if kemac.mac_alg is MacAlg.NULL and not allow_null_mac:
        raise MikeyAuthError()
    keys = derive_message_keys(kek, hdr.csb_id, rand_p.rand, kemac.encr_alg, kemac.mac_alg)
    mac_len = len(kemac.mac)
    if mac_len and not verify_mac(kemac.mac_alg, keys.auth_key, data[:-mac_len], kemac.mac):
        raise MikeyAuthError()

    next_state = _check_replay(replay, ts, rand_p.rand, now)

    # Encr data starts 4 bytes into KEMAC (next payload, Encr alg, Encr data len).
    encr_at = kemac_at + 4
    plaintext = kemac_decrypt(
        kemac.encr_alg, keys, kemac.encr_data, hdr.csb_id, ts.value_bytes(), offset=encr_at
    )
    chain = parse_key_data_chain(plaintext, encr_at)
    if not chain:
        raise MikeyParseError("KEMAC carries no key", offset=encr_at, payload="KEMAC")
    tek_keys = []
    wanted = (
        (KeyDataType.TGK, KeyDataType.TGK_SALT)
        if group_key
        else (KeyDataType.TEK, KeyDataType.TEK_SALT)
    )
    if group_key and len(chain) != 1:
        raise UnsupportedError(
            f"{len(chain)} keys in a group key delivery (one expected)",
            offset=encr_at,
            payload="KEY DATA",
        )
    for kd in chain:
        if kd.key_type not in wanted:
            raise UnsupportedError(
                f"key type {kd.key_type.name} in a {'group key' if group_key else 'TEK'} delivery",
                offset=encr_at,
                payload="KEY DATA",
            )
        if isinstance(kd.validity, SpiValidity):
            mki: bytes | None = kd.validity.spi
        elif isinstance(kd.validity, NullValidity):
            mki = None
        else:
            raise UnsupportedError(
                "key validity interval in a TEK delivery (MBMS uses SPI/MKI)",
                offset=encr_at,
                payload="KEY DATA",
            )
        tek_keys.append(TekKey(kd.key, kd.salt, mki, group_key=group_key))

    fetch_ext: TekFetchExtension | None = None
    other_exts = []
    for ext, at in exts:
        if ext.ext_type == MBMS_TEK_FETCH_EXT_TYPE:
            if fetch_ext is not None:
                raise MikeyParseError("more than one TEK fetch extension", offset=at, payload="EXT")
            fetch_ext = TekFetchExtension.from_payload(ext, at)
        else:
            other_exts.append(ext)
    delivery = TekDelivery(
        csb_id=hdr.csb_id,
        keys=tuple(tek_keys),
        timestamp=ts,
        rand=rand_p.rand,
        cs_map=hdr.cs_map,
        policies=tuple(SrtpPolicy.from_payload(p, at) for p, at in policies),
        id_i=ids[0] if ids else None,
        id_r=ids[1] if len(ids) > 1 else None,
        fetch=fetch_ext.fetch if fetch_ext else None,
        lifetime=fetch_ext.lifetime if fetch_ext else None,
        encr_alg=kemac.encr_alg,
        mac_alg=kemac.mac_alg,
        v_flag=hdr.v_flag,
        extensions=tuple(other_exts),
    )
    return VerifiedTekDelivery(delivery, next_state)


# --------------------------------------------------------------------------- V message


def _verification_suffix(delivery: TekDelivery, id_r: IdPayload | None) -> bytes:
    id_i = delivery.id_i.data if delivery.id_i is not None else b""
    r = id_r if id_r is not None else delivery.id_r
    return id_i + (r.data if r is not None else b"") + delivery.timestamp.value_bytes()


def build_verification(
    delivery: TekDelivery,
    kek: bytes,
    *,
    id_r: IdPayload | None = None,
    auth_alg: MacAlg = MacAlg.HMAC_SHA_1_160,
) -> bytes:
    """The UE's verification message (R_MESSAGE, RFC 3830 3.1, 5.2) for a verified delivery.

    Same CSB ID and CS map, the initiator's T echoed, optional IDr, and a V payload
    whose Ver data is the MAC (with the auth key derived from ``kek`` and the
    I_MESSAGE's RAND) over this message up to the Ver data, then IDi || IDr || T.
    """
    if auth_alg is MacAlg.NULL:
        raise EncodeError("a verification message without a MAC verifies nothing")
    keys = derive_message_keys(kek, delivery.csb_id, delivery.rand, EncrAlg.NULL, auth_alg)
    header = CommonHeader(
        data_type=DataType.PSK_RESP, csb_id=delivery.csb_id, cs_map=delivery.cs_map
    )
    payloads: list[Payload] = [delivery.timestamp]
    if id_r is not None:
        payloads.append(id_r)
    n = mac_length(auth_alg)
    payloads.append(VerificationPayload(auth_alg, bytes(n)))
    body = serialise_message(MikeyMessage(header, tuple(payloads)))[:-n]
    return body + compute_mac(auth_alg, keys.auth_key, body + _verification_suffix(delivery, id_r))


def verify_verification(message: bytes, delivery: TekDelivery, kek: bytes) -> VerificationResult:
    """Check a verification message against the delivery it answers (RFC 3830 5.2).

    Raises :class:`MikeyParseError`/:class:`UnsupportedError` for a malformed or
    mismatched message and :class:`MikeyAuthError` for wrong Ver data (or
    Auth alg NULL).
    """
    msg = parse_message(message)
    data = bytes(message)
    hdr = msg.header
    if hdr.data_type is not DataType.PSK_RESP:
        raise UnsupportedError(
            f"expected a verification message, got data type {hdr.data_type.name}",
            offset=1,
            payload="HDR",
            error_no=ErrorNo.INVALID_DT,
        )
    if hdr.csb_id != delivery.csb_id:
        raise MikeyParseError("CSB ID differs from the I_MESSAGE's", offset=4, payload="HDR")
    if not msg.payloads or not isinstance(msg.payloads[-1], VerificationPayload):
        raise MikeyParseError("V must be the last payload", offset=len(data), payload="V")
    v = msg.payloads[-1]
    id_r: IdPayload | None = None
    for p, at in zip(msg.payloads[:-1], msg.offsets[:-1], strict=True):
        if isinstance(p, IdPayload) and id_r is None:
            id_r = p
        elif not isinstance(p, TimestampPayload):
            raise MikeyParseError(
                f"{p.NAME} payload not allowed in a verification message", offset=at, payload=p.NAME
            )
    ts = _only(msg, TimestampPayload, "T")
    if ts != delivery.timestamp:
        raise MikeyParseError("T differs from the I_MESSAGE's", offset=msg.offsets[0], payload="T")
    if v.auth_alg is MacAlg.NULL:
        raise MikeyAuthError()
    keys = derive_message_keys(kek, delivery.csb_id, delivery.rand, EncrAlg.NULL, v.auth_alg)
    body = data[: -len(v.ver_data)]
    if not verify_mac(
        v.auth_alg, keys.auth_key, body + _verification_suffix(delivery, id_r), v.ver_data
    ):
        raise MikeyAuthError()
    return VerificationResult(hdr.csb_id, id_r if id_r is not None else delivery.id_r)


# --------------------------------------------------------------------------- error message


def build_error_message(
    csb_id: int,
    errors: Sequence[ErrorNo | int],
    timestamp: TimestampPayload,
    cs_map: Sequence[SrtpCs] = (),
) -> bytes:
    """An error message ``HDR, T, {ERR}`` (RFC 3830 5.1.2), without V (unauthenticated)."""
    if not errors:
        raise EncodeError("an error message needs at least one ERR payload")
    header = CommonHeader(data_type=DataType.ERROR, csb_id=csb_id, cs_map=tuple(cs_map))
    payloads: list[Payload] = [timestamp, *(ErrorPayload(int(e)) for e in errors)]
    return serialise_message(MikeyMessage(header, tuple(payloads)))


def parse_error_message(message: bytes) -> ErrorReport:
    """Parse an error message; only its structure can be checked."""
    msg = parse_message(message)
    if msg.header.data_type is not DataType.ERROR:
        raise UnsupportedError(
            f"expected an error message, got data type {msg.header.data_type.name}",
            offset=1,
            payload="HDR",
            error_no=ErrorNo.INVALID_DT,
        )
    errors = []
    for p, at in zip(msg.payloads, msg.offsets, strict=True):
        if isinstance(p, ErrorPayload):
            errors.append(p.error_no)
        elif not isinstance(p, TimestampPayload | VerificationPayload):
            raise MikeyParseError(
                f"{p.NAME} payload not allowed in an error message", offset=at, payload=p.NAME
            )
    if not errors:
        raise MikeyParseError("error message without ERR payload", offset=0, payload="HDR")
    ts = _only(msg, TimestampPayload, "T", required=False)
    assert ts is None or isinstance(ts, TimestampPayload)
    return ErrorReport(msg.header.csb_id, tuple(errors), ts, msg.header.cs_map)

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

Building and verifying cost little beyond their cryptography. A delivery is encoded
with precompiled structs and no payload objects: payload by payload from KEMAC back to
the header (the usual header, CS map entry, T and RAND head in one pack), each Key data
sub-payload in one pack, and one join. A delivery is verified from
:func:`~mbmssec.impl.protocols.mikey.read_message` (one unpack once its layout is known),
with the checks of its structure made once per layout; the objects it returns that recur
from delivery to delivery and are not secret (identities, the CS map entry, the SRTP
policy) are made once, and found again by the bytes they were read from. Each of these
memos keeps at most a few dozen entries; none holds anything derived from a key.

Everything is sans-I/O: callers pass bytes, ``now`` (Unix seconds, UTC) and a
random source; nothing here reads a clock.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from itertools import pairwise
from operator import itemgetter
from typing import Any, Final, NamedTuple

from mbmssec.impl.protocols.mikey import (
    MBMS_TEK_FETCH_EXT_TYPE,
    MIKEY_VERSION,
    TS_VALUE_LENGTH,
    At,
    CommonHeader,
    CsIdMapType,
    DataType,
    EncodeError,
    EncrAlg,
    ErrorNo,
    ErrorPayload,
    FetchHint,
    GeneralExtensionPayload,
    IdPayload,
    IdType,
    KeyDataPayload,
    KeyDataType,
    KvType,
    Layout,
    MacAlg,
    MikeyAuthError,
    MikeyMessage,
    MikeyParseError,
    MikeyReplayError,
    NullValidity,
    Payload,
    PayloadType,
    PrfFunc,
    ProtType,
    RawPayload,
    SpiValidity,
    SrtpCs,
    SrtpPolicy,
    TimestampPayload,
    TsType,
    UnsupportedError,
    VerificationPayload,
    checked_instance,
    decode_fetch_data,
    encode_ext,
    encode_fetch_data,
    encode_header,
    encode_id,
    encode_kemac,
    encode_key_data,
    encode_rand,
    encode_sp,
    encode_timestamp,
    join_payloads,
    parse_message,
    payload_name,
    read_key_data_chain,
    read_message,
    scan_message,
    serialise_message,
    symbolic_key_data_chain,
    symbolic_message,
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

# Payload types and key validity types as plain values, for fast comparisons.
_T, _RAND, _ID, _SP, _EXT, _KEMAC, _V, _KEY_DATA, _LAST = (
    int(t)
    for t in (
        PayloadType.T,
        PayloadType.RAND,
        PayloadType.ID,
        PayloadType.SP,
        PayloadType.GENERAL_EXT,
        PayloadType.KEMAC,
        PayloadType.V,
        PayloadType.KEY_DATA,
        PayloadType.LAST,
    )
)
_NULL, _SPI, _INTERVAL = KvType.NULL, KvType.SPI, KvType.INTERVAL


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


class TekKey(NamedTuple):
    """One delivered TEK: key, optional SRTP master salt, optional MKI (key validity SPI/MKI).

    Sent as a Key data sub-payload (RFC 3830 6.13) of type TEK, or TEK+SALT when a
    salt is given.  ``group_key`` marks instead a key that protects further TEK
    deliveries (a KEK shared by a group of UEs), sent with type TGK (TGK+SALT with a
    salt), the RFC 3830 type for a key from which a receiver obtains TEKs.  ``repr``
    hides the secrets.  A named tuple: a parsed delivery makes one per key in a single
    call (about 0.2 us, against 0.47 us for a frozen dataclass instance filled through its
    ``__dict__``).
    """

    tek: bytes
    salt: bytes | None = None
    mki: bytes | None = None
    group_key: bool = False

    def __repr__(self) -> str:
        kind = "group key" if self.group_key else "TEK"
        return f"TekKey(<{len(self.tek)}-byte {kind}>, mki={self.mki!r})"

    @property
    def key_type(self) -> KeyDataType:
        """The Key data type this key is sent as (TEK or TGK, with or without salt)."""
        if self.group_key:
            return KeyDataType.TGK_SALT if self.salt is not None else KeyDataType.TGK
        return KeyDataType.TEK_SALT if self.salt is not None else KeyDataType.TEK

    def to_key_data(self) -> KeyDataPayload:
        """The Key data sub-payload carrying this key."""
        return KeyDataPayload(
            self.key_type,
            self.tek,
            self.salt,
            SpiValidity(self.mki) if self.mki is not None else NullValidity(),
        )


class TekDelivery(NamedTuple):
    """The content of one TEK delivery I_MESSAGE (what is built and what is verified).

    ``timestamp`` is the T payload: a COUNTER (replay counter) or NTP-UTC time.
    ``policies`` become SP payloads; ``fetch``/``lifetime`` the private-use TEK
    fetch extension; ``extensions`` are other General Extension payloads passed
    through unchanged. ``v_flag`` asks the UE for a verification message.  A named
    tuple, as :class:`TekKey`: every parsed delivery makes one.
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


class VerifiedTekDelivery(NamedTuple):
    """An authenticated, replay-checked TEK delivery and the replay state to keep (a named
    tuple, as :class:`TekDelivery`)."""

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


_KEPT: Final = 64
"""Entries kept by each of this module's memos and caches; one past that starts again."""


# A delivery is encoded payload by payload from its last (KEMAC) back to its header, so that
# each payload's Next payload field is known when it is packed: one precompiled Struct per
# payload head, the values' bytes as they are, and one join.  Every length field is packed
# from the length of what follows it, so no field can disagree with its value; a value
# that does not fit its field fails the pack, and the checked encoders
# (:func:`_encode_delivery_checked`, :func:`~mbmssec.impl.protocols.mikey.encode_key_data`)
# then say which one.

_NEXT_B_H = struct.Struct(">BBH")  # Next payload, an 8-bit field, a 16-bit length (ID, EXT, KEMAC)
_NEXT_B_B_H = struct.Struct(">BBBH")  # Next payload, policy no, prot type, param length (SP)
_T_HEAD = {  # Next payload (RAND), TS type, TS value
    TsType.NTP_UTC: struct.Struct(">BBQ"),
    TsType.NTP: struct.Struct(">BBQ"),
    TsType.COUNTER: struct.Struct(">BBI"),
}
_SRTP_CS = struct.Struct(">BII")  # a CS ID map entry: policy no, SSRC, ROC
# The usual start of a delivery in one pack: the header with one CS ID map entry, T, and
# RAND's Next payload and length (RAND itself follows).
# Header (version, data type, next, V|PRF func, CSB ID, #CS, map type), CS (policy no,
# SSRC, ROC), T (next, TS type, TS value), RAND (next, RAND len).
_HEAD_ONE_CS = {
    TsType.NTP_UTC: struct.Struct(">BBBBIBB" + "BII" + "BBQ" + "BB"),
    TsType.NTP: struct.Struct(">BBBBIBB" + "BII" + "BBQ" + "BB"),
    TsType.COUNTER: struct.Struct(">BBBBIBB" + "BII" + "BBI" + "BB"),
}
_HEADER = struct.Struct(">BBBBIBB")  # version, data type, next, V|PRF func, CSB ID, #CS, map
_BYTES = tuple(bytes((i,)) for i in range(256))
_PSK_INIT, _SRTP, _SRTP_ID, _MIKEY_1 = (
    int(DataType.PSK_INIT),
    int(ProtType.SRTP),
    int(CsIdMapType.SRTP_ID),
    int(PrfFunc.MIKEY_1),
)
# Key data Type | KV of a key with salt and MKI (the MBMS case), TEK and group key.
_TEK_SALT_SPI = (KeyDataType.TEK_SALT << 4) | KvType.SPI
_TGK_SALT_SPI = (KeyDataType.TGK_SALT << 4) | KvType.SPI
_KEY_DATA_PACKS: dict[tuple[int, int, int], Callable[..., bytes]] = {}


def _key_data_pack(lengths: tuple[int, int, int]) -> Callable[..., bytes]:
    """The pack of one Key data sub-payload with salt and SPI/MKI of these lengths (key,
    salt, MKI): Next payload, Type | KV, key length, key, salt length, salt, MKI length, MKI."""
    pack = _KEY_DATA_PACKS.get(lengths)
    if pack is None:
        key, salt, mki = lengths
        pack = struct.Struct(f">BBH{key}sH{salt}sB{mki}s").pack
        if len(_KEY_DATA_PACKS) >= _KEPT:
            _KEY_DATA_PACKS.clear()
        _KEY_DATA_PACKS[lengths] = pack
    return pack


def _key_chain(keys: Sequence[TekKey]) -> bytes:
    """The Key data chain (6.13) of the delivered keys, the plaintext of KEMAC."""
    parts = []
    last = len(keys) - 1
    for i, (tek, salt, mki, group_key) in enumerate(keys):
        nxt = _KEY_DATA if i < last else _LAST
        if salt is not None and mki is not None:
            lengths = (len(tek), len(salt), len(mki))
            try:
                parts.append(
                    (_KEY_DATA_PACKS.get(lengths) or _key_data_pack(lengths))(
                        nxt,
                        _TGK_SALT_SPI if group_key else _TEK_SALT_SPI,
                        lengths[0],
                        tek,
                        lengths[1],
                        salt,
                        lengths[2],
                        mki,
                    )
                )
                continue
            except struct.error:
                pass  # a length that does not fit: the checked encoder below names it
        kv = _SPI if mki is not None else _NULL
        parts.append(encode_key_data(nxt, keys[i].key_type, tek, salt, kv, mki or b""))
    return b"".join(parts)


def _encode_delivery(
    d: TekDelivery, policies: list[bytes], fetch: bytes | None, encr_data: bytes
) -> bytes:
    """The I_MESSAGE of ``d`` up to its MAC field (HDR, T, RAND, IDs, SPs, EXTs, KEMAC)."""
    try:
        # Built backwards: ``nxt`` is the type of the payload after the one being packed.
        rev = [_BYTES[d.mac_alg], encr_data, _NEXT_B_H.pack(_LAST, d.encr_alg, len(encr_data))]
        nxt = _KEMAC
        exts = d.extensions
        for e in reversed(exts):
            rev += (e.data, _NEXT_B_H.pack(nxt, e.ext_type, len(e.data)))
            nxt = _EXT
        if fetch is not None:
            rev += (fetch, _NEXT_B_H.pack(nxt, MBMS_TEK_FETCH_EXT_TYPE, len(fetch)))
            nxt = _EXT
        sps = d.policies
        for i in range(len(sps) - 1, -1, -1):
            params = policies[i]
            rev += (params, _NEXT_B_B_H.pack(nxt, sps[i].policy_no, _SRTP, len(params)))
            nxt = _SP
        id_i, id_r = d.id_i, d.id_r
        if id_i is not None:
            if id_r is not None:
                rev += (id_r.data, _NEXT_B_H.pack(nxt, id_r.id_type, len(id_r.data)))
                nxt = _ID
            rev += (id_i.data, _NEXT_B_H.pack(nxt, id_i.id_type, len(id_i.data)))
            nxt = _ID
        rand = d.rand
        cs_map = d.cs_map
        ts = d.timestamp
        if len(cs_map) == 1 and 0 < len(rand) < 256:
            cs = cs_map[0]
            rev += (
                rand,
                _HEAD_ONE_CS[ts.ts_type].pack(
                    MIKEY_VERSION,
                    _PSK_INIT,
                    _T,
                    (0x80 if d.v_flag else 0) | _MIKEY_1,
                    d.csb_id,
                    1,
                    _SRTP_ID,
                    cs.policy_no,
                    cs.ssrc,
                    cs.roc,
                    _RAND,
                    ts.ts_type,
                    ts.value,
                    nxt,
                    len(rand),
                ),
            )
            rev.reverse()
            return b"".join(rev)
        if 0 < len(rand) < 256:
            rev += (rand, _BYTES[nxt] + _BYTES[len(rand)])
            rev.append(_T_HEAD[ts.ts_type].pack(_RAND, ts.ts_type, ts.value))
            for i in range(len(cs_map) - 1, -1, -1):
                cs = cs_map[i]
                rev.append(_SRTP_CS.pack(cs.policy_no, cs.ssrc, cs.roc))
            rev.append(
                _HEADER.pack(
                    MIKEY_VERSION,
                    _PSK_INIT,
                    _T,
                    (0x80 if d.v_flag else 0) | _MIKEY_1,
                    d.csb_id,
                    len(cs_map),
                    _SRTP_ID,
                )
            )
            rev.reverse()
            return b"".join(rev)
    except (struct.error, IndexError, KeyError):
        pass  # a value that does not fit: the checked encoders below name it
    return _encode_delivery_checked(d, policies, fetch, encr_data)


def _encode_delivery_checked(
    d: TekDelivery, policies: list[bytes], fetch: bytes | None, encr_data: bytes
) -> bytes:
    """:func:`_encode_delivery` with the checked encoders, payload by payload."""
    ts = d.timestamp
    header = encode_header(DataType.PSK_INIT, _T, d.csb_id, d.cs_map, v_flag=d.v_flag)
    types = [_T, _RAND]
    bodies = [encode_timestamp(ts.ts_type, ts.value), encode_rand(d.rand)]
    for id_p in (d.id_i, d.id_r):
        if id_p is not None:
            types.append(_ID)
            bodies.append(encode_id(id_p.id_type, id_p.data))
    for policy, params in zip(d.policies, policies, strict=True):
        types.append(_SP)
        bodies.append(encode_sp(policy.policy_no, ProtType.SRTP, params))
    if fetch is not None:
        types.append(_EXT)
        bodies.append(encode_ext(MBMS_TEK_FETCH_EXT_TYPE, fetch))
    for ext in d.extensions:
        types.append(_EXT)
        bodies.append(encode_ext(ext.ext_type, ext.data))
    types.append(_KEMAC)
    bodies.append(encode_kemac(d.encr_alg, encr_data, d.mac_alg))
    return join_payloads(header, types, bodies)


_POLICY_PARAMS: dict[SrtpPolicy, bytes] = {}
_POLICY_OBJECTS: dict[int, tuple[SrtpPolicy, bytes]] = {}


def _policy_params(policy: SrtpPolicy) -> bytes:
    """:meth:`SrtpPolicy.param_bytes`, remembered: a service's deliveries repeat its policy,
    usually the same object, found by its id first (the entry holds the object, so its id
    is not reused while remembered), then any equal policy."""
    known = _POLICY_OBJECTS.get(id(policy))
    if known is not None and known[0] is policy:
        return known[1]
    params = _POLICY_PARAMS.get(policy)
    if params is None:
        params = policy.param_bytes()
        if len(_POLICY_PARAMS) >= _KEPT:
            _POLICY_PARAMS.clear()
        _POLICY_PARAMS[policy] = params
    if len(_POLICY_OBJECTS) >= _KEPT:
        _POLICY_OBJECTS.clear()
    _POLICY_OBJECTS[id(policy)] = (policy, params)
    return params


def build_tek_delivery(delivery: TekDelivery, kek: bytes) -> bytes:
    """Encode, encrypt and MAC the TEK delivery I_MESSAGE for the UE holding ``kek``.

    One pass over the delivery with the raw encoders of
    :mod:`~mbmssec.impl.protocols.mikey`: no payload objects are made.
    """
    d = delivery
    if not d.keys:
        raise EncodeError("a TEK delivery needs at least one key")
    if d.id_r is not None and d.id_i is None:
        raise EncodeError("IDr without IDi cannot be told apart from IDi on the wire")
    if not kek:
        raise EncodeError("empty KEK")
    policies = list(map(_policy_params, d.policies))
    fetch = (
        encode_fetch_data(d.fetch, d.lifetime)
        if d.fetch is not None or d.lifetime is not None
        else None
    )
    keys = derive_message_keys(kek, d.csb_id, d.rand, d.encr_alg, d.mac_alg)
    plaintext = _key_chain(d.keys)
    encr_alg = d.encr_alg
    encr_data = kemac_encrypt(
        encr_alg,
        keys,
        plaintext,
        d.csb_id,
        # Only AES-CM takes T (in its IV).
        d.timestamp.value_bytes() if encr_alg is EncrAlg.AES_CM_128 else b"",
    )
    # The MAC covers the whole message up to the MAC field, which ends it (RFC 3830 5.2,
    # 6.2): KEMAC is last.
    body = _encode_delivery(d, policies, fetch, encr_data)
    if d.mac_alg is MacAlg.NULL:
        return body
    return body + compute_mac(d.mac_alg, keys.auth_key, body)


# --------------------------------------------------------------------------- verify


def _check_replay(
    state: ReplayState, ts_type: TsType, value: int, rand: bytes, now: float
) -> ReplayState:
    if state.mode is ReplayMode.NONE:
        return state
    if state.mode is ReplayMode.COUNTER:
        if ts_type is not TsType.COUNTER:
            raise MikeyReplayError(f"expected a COUNTER timestamp, got {ts_type.name}")
        if state.last_counter is not None and value <= state.last_counter:
            raise MikeyReplayError(
                f"counter {value} not above the last accepted {state.last_counter}"
            )
        return ReplayState(state.mode, value, state.max_skew, state.recent)
    if ts_type is TsType.COUNTER:
        raise MikeyReplayError("expected an NTP timestamp, got COUNTER")
    sent = unix_from_ntp(value)
    if abs(sent - now) > state.max_skew:
        raise MikeyReplayError(
            f"timestamp {sent - now:+.3f} s from now, outside +/-{state.max_skew} s"
        )
    entry = (value, rand)
    if entry in state.recent:
        raise MikeyReplayError("message already accepted (replay cache)")
    horizon = now - state.max_skew
    kept = {e for e in state.recent if unix_from_ntp(e[0]) >= horizon}
    kept.add(entry)
    return ReplayState(state.mode, state.last_counter, state.max_skew, frozenset(kept))


def _not_allowed(raw: RawPayload, where: str) -> MikeyParseError:
    name = payload_name(PayloadType(raw[0]))
    return MikeyParseError(f"{name} payload not allowed in {where}", offset=raw[1], payload=name)


def _one(found: list[RawPayload], name: str) -> RawPayload:
    """The only payload of a kind that must occur exactly once."""
    if len(found) > 1:
        raise MikeyParseError(f"more than one {name} payload", offset=found[1][1], payload=name)
    if not found:
        raise MikeyParseError(f"{name} payload missing", offset=0, payload="HDR")
    return found[0]


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


_new = object.__new__
_tuple_new = tuple.__new__

_DELIVERY: Final = "TEK delivery"
"""The memo key of a message layout's :class:`_DeliveryPlan`."""
_TEK_TYPES = frozenset({KeyDataType.TEK, KeyDataType.TEK_SALT})
_GROUP_KEY_TYPES = frozenset({KeyDataType.TGK, KeyDataType.TGK_SALT})


_IDENTITIES: dict[tuple[IdType, bytes], IdPayload] = {}
_CRYPTO_SESSIONS: dict[tuple[int, int, int], SrtpCs] = {}


def _identity(fields: tuple[IdType, bytes]) -> IdPayload:
    """The ID payload of these fields (ID type, ID data), one object per identity (a
    BM-SC's and a UE's identities recur in every delivery between them)."""
    found = _IDENTITIES.get(fields)
    if found is None:
        id_type, data = fields
        found = checked_instance(IdPayload, id_type=id_type, data=data)
        if len(_IDENTITIES) >= _KEPT:
            _IDENTITIES.clear()
        _IDENTITIES[fields] = found
    return found


def _crypto_session(fields: tuple[int, int, int]) -> SrtpCs:
    """The CS map entry of these fields (policy no, SSRC, ROC), one object per entry (a
    service's stream recurs in every delivery)."""
    found = _CRYPTO_SESSIONS.get(fields)
    if found is None:
        policy_no, ssrc, roc = fields
        found = checked_instance(SrtpCs, policy_no=policy_no, ssrc=ssrc, roc=roc)
        if len(_CRYPTO_SESSIONS) >= _KEPT:
            _CRYPTO_SESSIONS.clear()
        _CRYPTO_SESSIONS[fields] = found
    return found


_POLICIES: dict[tuple[ProtType, tuple[Any, ...]], SrtpPolicy] = {}


def _policy(prot: ProtType, fields: tuple[Any, ...], at: int) -> SrtpPolicy:
    """:meth:`SrtpPolicy.from_params` of an SP payload's fields (``fields``: policy no, then
    type and value of each parameter), remembered: a service's deliveries repeat its
    policy, and a policy (immutable) is a function of the SP payload's fields alone."""
    key = (prot, fields)
    policy = _POLICIES.get(key)
    if policy is None:
        params = tuple(zip(fields[1::2], fields[2::2], strict=True))
        policy = SrtpPolicy.from_params(fields[0], prot, params, at)
        if len(_POLICIES) >= _KEPT:
            _POLICIES.clear()
        _POLICIES[key] = policy
    return policy


_Recurring = tuple[IdPayload | None, IdPayload | None, tuple[SrtpCs, ...], tuple[SrtpPolicy, ...]]


class _DeliveryPlan(NamedTuple):
    """What a TEK delivery of one layout is made of, from its structure alone: where its
    varying values are in ``values + consts`` and the structural fields themselves."""

    values: Callable[[Sequence[Any]], tuple[Any, ...]]
    """csb_id, TS value, RAND, Encr data, MAC."""
    cs_map: tuple[Callable[[Sequence[Any]], tuple[int, int, int]], ...]
    v_flag: bool
    ts_type: TsType
    ts_field: slice
    """The TS value field of T in the message (the AES-CM IV takes it as sent)."""
    encr_alg: EncrAlg
    mac_alg: MacAlg
    encr_at: int
    ids: tuple[tuple[IdType, int], ...]
    policies: tuple[tuple[Callable[[Sequence[Any]], tuple[Any, ...]], ProtType, int], ...]
    """Per SP: the getter of its policy no and (type, value) of each parameter in one flat
    tuple, its prot type and its offset."""
    exts: tuple[tuple[int, int, int], ...]
    """Per General Extension: index of its type, index of its data, offset."""
    recurring: tuple[slice, slice]
    """The CS ID map, and the span of the message from its first ID or SP payload to the
    end of its last: the bytes that the identities, CS map and policies are read from."""
    objects: dict[tuple[bytes, bytes], _Recurring]
    """The identities, CS map and policies of the messages of this layout, by the bytes
    at :attr:`recurring` (a UE's deliveries repeat them byte for byte)."""


def _tuple_getter(indices: Sequence[int]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """The values at ``indices`` as a tuple (:func:`operator.itemgetter` returns a single
    value alone)."""
    if len(indices) == 1:
        at = indices[0]
        return lambda values: (values[at],)
    return itemgetter(*indices)


def _at(value: object) -> int:
    assert isinstance(value, At), "a varying value of the layout"
    return value.at


def _delivery_plan(layout: Layout, size: int) -> _DeliveryPlan:
    """The checks of an I_MESSAGE's structure (RFC 3830 3.1: HDR, T, RAND, [IDi], [IDr],
    {SP}, {EXT}, KEMAC) on a layout, in the order :func:`parse_and_verify` documents."""
    hdr, raws = symbolic_message(layout)
    if hdr.data_type is not DataType.PSK_INIT:
        raise UnsupportedError(
            f"expected a pre-shared-key I_MESSAGE, got data type {hdr.data_type.name}",
            offset=1,
            payload="HDR",
            error_no=ErrorNo.INVALID_DT,
        )
    if not raws or raws[-1][0] != _KEMAC:
        raise MikeyParseError("KEMAC must be the last payload", offset=size, payload="KEMAC")
    _, kemac_at, encr_alg, encr_data, mac_alg, mac = raws[-1]
    found_t: list[RawPayload] = []
    found_rand: list[RawPayload] = []
    ids: list[RawPayload] = []
    policies: list[RawPayload] = []
    exts: list[RawPayload] = []
    for raw in raws[:-1]:
        kind = raw[0]
        if kind == _T:
            found_t.append(raw)
        elif kind == _RAND:
            found_rand.append(raw)
        elif kind == _ID:
            ids.append(raw)
        elif kind == _SP:
            policies.append(raw)
        elif kind == _EXT:
            exts.append(raw)
        else:
            raise _not_allowed(raw, "an I_MESSAGE")
    _, ts_at, ts_type, ts_value, _, _ = _one(found_t, "T")
    rand = _one(found_rand, "RAND")[2]
    if len(ids) > 2:
        raise MikeyParseError("more than two ID payloads", offset=0, payload="ID")
    # Each payload ends where the next one in the message starts (KEMAC is last).
    starts = sorted(raw[1] for raw in raws)
    ends = dict(pairwise(starts))
    spans = [(raw[1], ends[raw[1]]) for raw in ids + policies]
    span = slice(min(a for a, _ in spans), max(b for _, b in spans)) if spans else slice(0, 0)
    return _DeliveryPlan(
        values=itemgetter(_at(hdr.csb_id), _at(ts_value), _at(rand), _at(encr_data), _at(mac)),
        cs_map=tuple(itemgetter(*map(_at, cs)) for cs in hdr.cs_map),
        v_flag=hdr.v_flag,
        ts_type=ts_type,
        ts_field=slice(ts_at + 2, ts_at + 2 + TS_VALUE_LENGTH[ts_type]),
        encr_alg=encr_alg,
        mac_alg=mac_alg,
        # Encr data starts 4 bytes into KEMAC (next payload, Encr alg, Encr data len).
        encr_at=kemac_at + 4,
        ids=tuple((raw[2], _at(raw[3])) for raw in ids),
        policies=tuple(
            (
                _tuple_getter([_at(raw[2]), *(_at(x) for pair in raw[4] for x in pair)]),
                raw[3],
                raw[1],
            )
            for raw in policies
        ),
        exts=tuple((_at(raw[2]), _at(raw[3]), raw[1]) for raw in exts),
        # The CS ID map follows the header's 10 bytes, 9 bytes per entry (RFC 3830 6.1.1).
        recurring=(slice(10, 10 + 9 * len(hdr.cs_map)), span),
        objects={},
    )


def _recurring(plan: _DeliveryPlan, ext: Sequence[Any]) -> _Recurring:
    """The identities, CS map and policies of a delivery of this plan (``ext``: its
    values), each object taken from its memo."""
    id_i = id_r = None
    for i, (id_type, id_at) in enumerate(plan.ids):
        found = _identity((id_type, ext[id_at]))
        if i:
            id_r = found
        else:
            id_i = found
    return (
        id_i,
        id_r,
        tuple([_crypto_session(get(ext)) for get in plan.cs_map]),
        tuple([_policy(prot, get(ext), at) for get, prot, at in plan.policies]),
    )


def _key_plan(
    layout: Layout, encr_at: int, group_key: bool
) -> tuple[tuple[int, int | None, int | None], ...]:
    """Per key of a Key data chain layout, the indices of key, salt and MKI (``None``:
    absent), once the key types and validity types are checked."""
    chain = symbolic_key_data_chain(layout)
    wanted = _GROUP_KEY_TYPES if group_key else _TEK_TYPES
    if group_key and len(chain) != 1:
        raise UnsupportedError(
            f"{len(chain)} keys in a group key delivery (one expected)",
            offset=encr_at,
            payload="KEY DATA",
        )
    plan = []
    for key_type, key, salt, kv, spi, _ in chain:
        if key_type not in wanted:
            raise UnsupportedError(
                f"key type {key_type.name} in a {'group key' if group_key else 'TEK'} delivery",
                offset=encr_at,
                payload="KEY DATA",
            )
        if kv is _INTERVAL:
            raise UnsupportedError(
                "key validity interval in a TEK delivery (MBMS uses SPI/MKI)",
                offset=encr_at,
                payload="KEY DATA",
            )
        plan.append(
            (_at(key), None if salt is None else _at(salt), _at(spi) if kv is _SPI else None)
        )
    return tuple(plan)


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

    The message is read in one pass, or unpacked in one call when a message of the same
    layout was read before (:func:`~mbmssec.impl.protocols.mikey.read_message`); the
    checks of its structure are made once per layout; only the delivery returned is
    made of objects.
    """
    layout, ext = read_message(message)
    data = message if isinstance(message, bytes) else bytes(message)
    plan: _DeliveryPlan | None = layout.memo.get(_DELIVERY)
    if plan is None:
        plan = layout.memo[_DELIVERY] = _delivery_plan(layout, len(data))
    csb_id, ts_value, rand, encr_data, mac = plan.values(ext)
    mac_alg, encr_alg = plan.mac_alg, plan.encr_alg

    # Authenticate before touching the encrypted data (RFC 3830 5.2).
    if mac_alg is MacAlg.NULL:
        if not allow_null_mac:
            raise MikeyAuthError()
        mac = b""
    keys = derive_message_keys(kek, csb_id, rand, encr_alg, mac_alg)
    if mac and not verify_mac(mac_alg, keys.auth_key, data[: -len(mac)], mac):
        raise MikeyAuthError()

    ts_type = plan.ts_type
    next_state = (
        replay
        if replay.mode is ReplayMode.NONE
        else _check_replay(replay, ts_type, ts_value, rand, now)
    )

    encr_at = plan.encr_at
    plaintext = kemac_decrypt(
        encr_alg,
        keys,
        encr_data,
        csb_id,
        # Only AES-CM takes T (in its IV).
        data[plan.ts_field] if encr_alg is EncrAlg.AES_CM_128 else b"",
        offset=encr_at,
    )
    chain = read_key_data_chain(plaintext, encr_at)
    if chain is None:
        raise MikeyParseError("KEMAC carries no key", offset=encr_at, payload="KEMAC")
    chain_layout, keys_ext = chain
    key_plan = chain_layout.memo.get(group_key)
    if key_plan is None:
        key_plan = chain_layout.memo[group_key] = _key_plan(chain_layout, encr_at, group_key)
    # The returned objects are made as checked_instance makes them (every value is
    # checked by now), written out here: this is the one place that makes them per message
    # (the keys, named tuples, in one call each).
    tek_keys = tuple(
        [
            _tuple_new(
                TekKey,
                (
                    keys_ext[k],
                    None if s is None else keys_ext[s],
                    None if m is None else keys_ext[m],
                    group_key,
                ),
            )
            for k, s, m in key_plan
        ]
    )

    fetch: FetchHint | None = None
    lifetime: int | None = None
    seen_fetch = False
    other_exts = []
    for type_at, data_at, at in plan.exts:
        ext_type, ext_data = ext[type_at], ext[data_at]
        if ext_type == MBMS_TEK_FETCH_EXT_TYPE:
            if seen_fetch:
                raise MikeyParseError("more than one TEK fetch extension", offset=at, payload="EXT")
            seen_fetch = True
            fetch, lifetime = decode_fetch_data(ext_data, at)
        else:
            other_exts.append(GeneralExtensionPayload(ext_type, ext_data))
    cs_field, span = plan.recurring
    recurring_key = (data[cs_field], data[span])
    recurring = plan.objects.get(recurring_key)
    if recurring is None:
        recurring = _recurring(plan, ext)
        if len(plan.objects) >= _KEPT:
            plan.objects.clear()
        plan.objects[recurring_key] = recurring
    id_i, id_r, cs_map, policies = recurring
    timestamp = _new(TimestampPayload)
    timestamp.__dict__.update(ts_type=ts_type, value=ts_value)
    delivery = _tuple_new(
        TekDelivery,
        (
            csb_id,
            tek_keys,
            timestamp,
            rand,
            cs_map,
            policies,
            id_i,
            id_r,
            fetch,
            lifetime,
            encr_alg,
            mac_alg,
            plan.v_flag,
            tuple(other_exts),
        ),
    )
    return _tuple_new(VerifiedTekDelivery, (delivery, next_state))


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
    header = encode_header(DataType.PSK_RESP, _T, delivery.csb_id, delivery.cs_map)
    ts = delivery.timestamp
    types = [_T]
    bodies = [encode_timestamp(ts.ts_type, ts.value)]
    if id_r is not None:
        types.append(_ID)
        bodies.append(encode_id(id_r.id_type, id_r.data))
    # V is last: the message up to its Ver data is Next payload (Last) and Auth alg.
    types.append(_V)
    bodies.append(bytes((auth_alg,)))
    body = join_payloads(header, types, bodies)
    return body + compute_mac(auth_alg, keys.auth_key, body + _verification_suffix(delivery, id_r))


def verify_verification(message: bytes, delivery: TekDelivery, kek: bytes) -> VerificationResult:
    """Check a verification message against the delivery it answers (RFC 3830 5.2).

    Raises :class:`MikeyParseError`/:class:`UnsupportedError` for a malformed or
    mismatched message and :class:`MikeyAuthError` for wrong Ver data (or
    Auth alg NULL).
    """
    hdr, raws, _ = scan_message(message)
    data = message if isinstance(message, bytes) else bytes(message)
    if hdr.data_type is not DataType.PSK_RESP:
        raise UnsupportedError(
            f"expected a verification message, got data type {hdr.data_type.name}",
            offset=1,
            payload="HDR",
            error_no=ErrorNo.INVALID_DT,
        )
    if hdr.csb_id != delivery.csb_id:
        raise MikeyParseError("CSB ID differs from the I_MESSAGE's", offset=4, payload="HDR")
    if not raws or raws[-1][0] != PayloadType.V:
        raise MikeyParseError("V must be the last payload", offset=len(data), payload="V")
    _, _, auth_alg, ver_data, _, _ = raws[-1]
    id_r: IdPayload | None = None
    found_t: list[RawPayload] = []
    for raw in raws[:-1]:
        if raw[0] == PayloadType.ID and id_r is None:
            id_r = IdPayload(raw[2], raw[3])
        elif raw[0] == PayloadType.T:
            found_t.append(raw)
        else:
            raise _not_allowed(raw, "a verification message")
    _, _, ts_type, ts_value, _, _ = _one(found_t, "T")
    sent = delivery.timestamp
    if not isinstance(sent, TimestampPayload) or (ts_type, ts_value) != (sent.ts_type, sent.value):
        raise MikeyParseError("T differs from the I_MESSAGE's", offset=raws[0][1], payload="T")
    if auth_alg is MacAlg.NULL:
        raise MikeyAuthError()
    keys = derive_message_keys(kek, delivery.csb_id, delivery.rand, EncrAlg.NULL, auth_alg)
    body = data[: -len(ver_data)]
    if not verify_mac(
        auth_alg, keys.auth_key, body + _verification_suffix(delivery, id_r), ver_data
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

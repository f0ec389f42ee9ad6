"""Tests of the MIKEY (RFC 3830) pre-shared-key implementation.

Expected wire bytes are assembled in this file from the RFC 3830 section 6 layouts
with ``struct`` (never by the serialiser under test); AES key wrap is checked
against the published RFC 3394 vectors; the MIKEY PRF and KEMAC encryption are
checked against a second, independent rendering of RFC 3830 4.1.2 / 4.1.4 / 4.2.3
built on Python's ``hmac``/``hashlib``. RFC 3830 publishes no test vectors.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mbmssec.errors import MbmssecError
from mbmssec.impl.protocols import mikey_crypto, mikey_messages
from mbmssec.impl.protocols.mikey import (
    MBMS_TEK_FETCH_EXT_TYPE,
    CommonHeader,
    DataType,
    EncodeError,
    EncrAlg,
    ErrorNo,
    ErrorPayload,
    FetchAtSrtpIndex,
    FetchAtTime,
    GeneralExtensionPayload,
    IdPayload,
    IdType,
    IntervalValidity,
    KemacPayload,
    KeyDataPayload,
    KeyDataType,
    MacAlg,
    MikeyAuthError,
    MikeyError,
    MikeyMessage,
    MikeyParseError,
    MikeyReplayError,
    NullValidity,
    PolicyParam,
    ProtType,
    RandPayload,
    SecurityPolicyPayload,
    SpiValidity,
    SrtpAuthAlg,
    SrtpCs,
    SrtpEncrAlg,
    SrtpPolicy,
    TekFetchExtension,
    TimestampPayload,
    TsType,
    UnsupportedError,
    VerificationPayload,
    parse_key_data_chain,
    parse_message,
    serialise_key_data_chain,
    serialise_message,
    split_messages,
)
from mbmssec.impl.protocols.mikey_crypto import (
    TgkConstant,
    aes_cm_iv,
    derive_from_tgk,
    derive_message_keys,
    key_unwrap,
    key_wrap,
    prf,
)
from mbmssec.impl.protocols.mikey_messages import (
    ReplayMode,
    ReplayState,
    TekDelivery,
    TekKey,
    build_error_message,
    build_tek_delivery,
    build_verification,
    counter_timestamp,
    new_tek_delivery,
    ntp_from_unix,
    parse_and_verify,
    parse_error_message,
    unix_from_ntp,
    verify_verification,
)

VECTORS = Path(__file__).parent / "vectors" / "rfc3394.json"
NOW = 1_750_000_000.25


def _hex(s: str) -> bytes:
    return bytes.fromhex(s.replace(" ", ""))


# --------------------------------------------------------------------------- RFC 3394


def _rfc3394() -> list[dict[str, str]]:
    data = json.loads(VECTORS.read_text())
    assert data["source"].startswith("RFC 3394")
    vectors: list[dict[str, str]] = data["vectors"]
    return vectors


@pytest.mark.parametrize("vec", _rfc3394(), ids=lambda v: v["section"])
def test_rfc3394_key_wrap_vectors(vec: dict[str, str]) -> None:
    kek, key, ct = _hex(vec["kek"]), _hex(vec["key_data"]), _hex(vec["ciphertext"])
    assert key_wrap(kek, key) == ct
    assert key_unwrap(kek, ct) == key


def test_rfc3394_vector_file_has_the_128_bit_kek_case() -> None:
    assert any(len(_hex(v["kek"])) == 16 for v in _rfc3394())


def test_key_unwrap_integrity_failure_is_opaque_authentication_error() -> None:
    vec = _rfc3394()[0]
    ct = bytearray(_hex(vec["ciphertext"]))
    ct[5] ^= 0x01
    with pytest.raises(MikeyAuthError) as info:
        key_unwrap(_hex(vec["kek"]), bytes(ct))
    assert str(info.value) == "MIKEY message authentication failed"


# --------------------------------------------------------------------------- PRF


def _ref_prf(inkey: bytes, label: bytes, out_len: int) -> bytes:
    """RFC 3830 4.1.2 written out independently with the standard library."""
    m = (out_len * 8 + 159) // 160
    out = bytes(m * 20)
    for i in range(0, len(inkey), 32):
        s = inkey[i : i + 32]
        a, p = label, b""
        for _ in range(m):
            a = hmac.new(s, a, hashlib.sha1).digest()
            p += hmac.new(s, a + label, hashlib.sha1).digest()
        out = bytes(x ^ y for x, y in zip(out, p, strict=True))
    return out[:out_len]


@pytest.mark.parametrize("key_len", [1, 16, 20, 32, 33, 64, 100])
@pytest.mark.parametrize("out_len", [1, 14, 16, 20, 21, 40, 65])
def test_prf_matches_independent_rendering(key_len: int, out_len: int) -> None:
    inkey, label = os.urandom(key_len), os.urandom(25)
    assert prf(inkey, label, out_len) == _ref_prf(inkey, label, out_len)


def test_prf_long_key_xors_the_256_bit_pieces() -> None:
    k1, k2, label = os.urandom(32), os.urandom(7), b"label"
    expected = bytes(a ^ b for a, b in zip(prf(k1, label, 20), prf(k2, label, 20), strict=True))
    assert prf(k1 + k2, label, 20) == expected


def test_prf_rejects_empty_key() -> None:
    with pytest.raises(EncodeError):
        prf(b"", b"x", 16)


def test_psk_key_derivation_uses_rfc3830_4_1_4_constants_and_label() -> None:
    kek, rand, csb = os.urandom(16), os.urandom(16), 0x01020304
    keys = derive_message_keys(kek, csb, rand, EncrAlg.AES_CM_128, MacAlg.HMAC_SHA_1_160)
    lab = b"\xff" + struct.pack(">I", csb) + rand
    assert keys.encr_key == _ref_prf(kek, bytes.fromhex("150533E1") + lab, 16)
    assert keys.auth_key == _ref_prf(kek, bytes.fromhex("2D22AC75") + lab, 20)
    assert keys.salt_key == _ref_prf(kek, bytes.fromhex("29B88916") + lab, 14)
    assert "secret" in repr(keys) and kek.hex() not in repr(keys)


def test_tgk_derivation_uses_rfc3830_4_1_3_label() -> None:
    tgk, rand = os.urandom(16), os.urandom(16)
    got = derive_from_tgk(tgk, TgkConstant.TEK, 3, 0xAABBCCDD, rand, 16)
    assert got == _ref_prf(tgk, bytes.fromhex("2AD01C64") + b"\x03\xaa\xbb\xcc\xdd" + rand, 16)


def test_aes_cm_iv_layout() -> None:
    salt = bytes(range(1, 15))
    iv = aes_cm_iv(salt, 0x11223344, bytes.fromhex("0102030405060708"))
    block = bytes.fromhex("0000 11223344 0102030405060708".replace(" ", ""))
    assert iv == bytes(a ^ b for a, b in zip(salt, block, strict=True)) + b"\x00\x00"
    # A 32-bit COUNTER sits in the low half of the 64-bit T position.
    iv_c = aes_cm_iv(salt, 0, bytes.fromhex("0000002a"))
    assert iv_c[10:14] == bytes(
        a ^ b for a, b in zip(salt[10:14], b"\x00\x00\x00\x2a", strict=True)
    )


# --------------------------------------------------------------------------- payload wire format


CSB = 0xA1B2C3D4


def _hdr(
    data_type: int,
    nxt: int,
    v: int = 0,
    cs: list[tuple[int, int, int]] | None = None,
    version: int = 1,
    prf_func: int = 0,
    map_type: int = 0,
) -> bytes:
    cs = cs or []
    out = struct.pack(
        ">BBBBIBB", version, data_type, nxt, (v << 7) | prf_func, CSB, len(cs), map_type
    )
    for p, s, r in cs:
        out += struct.pack(">BII", p, s, r)
    return out


def test_common_header_round_trip_against_hand_assembled_bytes() -> None:
    wire = _hdr(0, 0, v=1, cs=[(1, 0xDEADBEEF, 5), (2, 0x01020304, 0xFFFFFFFF)])
    msg = MikeyMessage(
        CommonHeader(
            DataType.PSK_INIT,
            CSB,
            (SrtpCs(1, 0xDEADBEEF, 5), SrtpCs(2, 0x01020304, 0xFFFFFFFF)),
            v_flag=True,
        ),
        (),
    )
    assert serialise_message(msg) == wire
    assert parse_message(wire) == msg


PAYLOAD_CASES: list[tuple[str, object, bytes]] = [
    (
        "T-NTP-UTC",
        TimestampPayload(TsType.NTP_UTC, 0x0102030405060708),
        struct.pack(">BBQ", 0, 0, 0x0102030405060708),
    ),
    ("T-NTP", TimestampPayload(TsType.NTP, 2**64 - 1), struct.pack(">BBQ", 0, 1, 2**64 - 1)),
    ("T-COUNTER", TimestampPayload(TsType.COUNTER, 77), struct.pack(">BBI", 0, 2, 77)),
    ("RAND", RandPayload(bytes(range(16))), bytes([0, 16]) + bytes(range(16))),
    (
        "ID-NAI",
        IdPayload(IdType.NAI, b"ue@example.org"),
        struct.pack(">BBH", 0, 0, 14) + b"ue@example.org",
    ),
    ("ID-URI", IdPayload(IdType.URI, b"sip:bmsc"), struct.pack(">BBH", 0, 1, 8) + b"sip:bmsc"),
    (
        "SP",
        SecurityPolicyPayload(
            3, ProtType.SRTP, (PolicyParam(0, b"\x01"), PolicyParam(6, b"\x00\x01\x00\x00"))
        ),
        struct.pack(">BBBH", 0, 3, 0, 9) + b"\x00\x01\x01" + b"\x06\x04\x00\x01\x00\x00",
    ),
    (
        "KEMAC-NULL-NULL",
        KemacPayload(EncrAlg.NULL, b"\xaa\xbb", MacAlg.NULL, b""),
        struct.pack(">BBH", 0, 0, 2) + b"\xaa\xbb" + b"\x00",
    ),
    (
        "KEMAC-CM-HMAC",
        KemacPayload(EncrAlg.AES_CM_128, b"\x01" * 5, MacAlg.HMAC_SHA_1_160, b"\x02" * 20),
        struct.pack(">BBH", 0, 1, 5) + b"\x01" * 5 + b"\x01" + b"\x02" * 20,
    ),
    (
        "KEMAC-KW",
        KemacPayload(EncrAlg.AES_KW_128, b"\x03" * 24, MacAlg.HMAC_SHA_1_160, b"\x04" * 20),
        struct.pack(">BBH", 0, 2, 24) + b"\x03" * 24 + b"\x01" + b"\x04" * 20,
    ),
    ("V", VerificationPayload(MacAlg.HMAC_SHA_1_160, b"\x05" * 20), b"\x00\x01" + b"\x05" * 20),
    ("V-NULL", VerificationPayload(MacAlg.NULL, b""), b"\x00\x00"),
    ("ERR", ErrorPayload(ErrorNo.INVALID_SPPAR), struct.pack(">BBH", 0, 10, 0)),
    ("EXT", GeneralExtensionPayload(0, b"vendor"), struct.pack(">BBH", 0, 0, 6) + b"vendor"),
]

PAYLOAD_TYPE_CODES = {
    "T": 5,
    "RAND": 11,
    "ID": 6,
    "SP": 10,
    "KEMAC": 1,
    "V": 9,
    "ERR": 12,
    "EXT": 21,
}


@pytest.mark.parametrize(
    ("name", "payload", "wire"), PAYLOAD_CASES, ids=[c[0] for c in PAYLOAD_CASES]
)
def test_each_payload_round_trips_against_hand_assembled_bytes(
    name: str, payload: object, wire: bytes
) -> None:
    code = PAYLOAD_TYPE_CODES[name.split("-")[0]]
    data_type = 1 if name.startswith("V") else 0
    full = _hdr(data_type, code) + wire
    msg = MikeyMessage(CommonHeader(DataType(data_type), CSB), (payload,))  # type: ignore[arg-type]
    assert serialise_message(msg) == full
    parsed = parse_message(full)
    assert parsed == msg
    assert parsed.offsets == (10,)


KEY_CASES: list[tuple[str, KeyDataPayload, bytes]] = [
    (
        "TGK-NULL",
        KeyDataPayload(KeyDataType.TGK, b"k" * 16),
        struct.pack(">BBH", 0, 0x00, 16) + b"k" * 16,
    ),
    (
        "TEK-SPI",
        KeyDataPayload(KeyDataType.TEK, b"t" * 16, None, SpiValidity(b"\x01\x02")),
        struct.pack(">BBH", 0, 0x21, 16) + b"t" * 16 + b"\x02\x01\x02",
    ),
    (
        "TEK+SALT-SPI",
        KeyDataPayload(KeyDataType.TEK_SALT, b"t" * 16, b"s" * 14, SpiValidity(b"\x09")),
        struct.pack(">BBH", 0, 0x31, 16)
        + b"t" * 16
        + struct.pack(">H", 14)
        + b"s" * 14
        + b"\x01\x09",
    ),
    (
        "TGK+SALT-INTERVAL",
        KeyDataPayload(
            KeyDataType.TGK_SALT, b"g" * 16, b"s" * 14, IntervalValidity(b"\x00" * 6, b"\xff" * 6)
        ),
        struct.pack(">BBH", 0, 0x12, 16)
        + b"g" * 16
        + struct.pack(">H", 14)
        + b"s" * 14
        + b"\x06"
        + b"\x00" * 6
        + b"\x06"
        + b"\xff" * 6,
    ),
]


@pytest.mark.parametrize(("name", "key", "wire"), KEY_CASES, ids=[c[0] for c in KEY_CASES])
def test_key_data_sub_payload_round_trips(name: str, key: KeyDataPayload, wire: bytes) -> None:
    assert serialise_key_data_chain([key]) == wire
    assert parse_key_data_chain(wire) == (key,)


def test_key_data_chain_links_with_next_payload_20() -> None:
    keys = [k for _, k, _ in KEY_CASES]
    wire = serialise_key_data_chain(keys)
    first_len = len(KEY_CASES[0][2])
    assert wire[0] == 20 and wire[first_len] == 20  # next payload = Key data
    assert parse_key_data_chain(wire) == tuple(keys)


def test_key_data_chain_rejects_bad_links_and_trailing_bytes() -> None:
    one = KEY_CASES[1][2]
    with pytest.raises(MikeyParseError):  # last-payload marker followed by bytes
        parse_key_data_chain(one + b"\x00")
    with pytest.raises(MikeyParseError):  # announces another sub-payload that is not there
        parse_key_data_chain(b"\x14" + one[1:])
    with pytest.raises(MikeyParseError):  # next payload that is not Key data
        parse_key_data_chain(b"\x05" + one[1:] + one)


def test_tek_fetch_extension_encoding() -> None:
    t = TekFetchExtension(FetchAtTime(0x0102030405060708), lifetime=3600).to_payload()
    assert t.ext_type == MBMS_TEK_FETCH_EXT_TYPE == 255
    assert t.data == bytes.fromhex("0101080102030405060708030400000e10")
    s = TekFetchExtension(FetchAtSrtpIndex.from_roc_seq(2, 0x1234)).to_payload()
    assert s.data == bytes.fromhex("010206000000021234")
    for ext in (
        TekFetchExtension(FetchAtTime(5)),
        TekFetchExtension(None, 7),
        TekFetchExtension(FetchAtSrtpIndex(2**48 - 1), 0),
    ):
        assert TekFetchExtension.from_payload(ext.to_payload()) == ext
    for bad in [
        "01",  # no items
        "010108",  # truncated value
        "01050100",  # unknown tag
        "01010400000000",  # FETCH_AT_TIME with the wrong length
        "01010800000000000000010206000000000001",  # both fetch forms
        "01030400000001030400000002",  # lifetime twice
    ]:
        with pytest.raises(MikeyParseError):
            TekFetchExtension.from_payload(GeneralExtensionPayload(255, bytes.fromhex(bad)))
    with pytest.raises(UnsupportedError):
        TekFetchExtension.from_payload(GeneralExtensionPayload(255, bytes.fromhex("0203040001")))


def test_srtp_policy_round_trip_and_rejections() -> None:
    pol = SrtpPolicy(
        policy_no=4,
        encr_alg=SrtpEncrAlg.AES_CM,
        encr_key_len=16,
        auth_alg=SrtpAuthAlg.HMAC_SHA_1,
        auth_key_len=20,
        salt_key_len=14,
        kdr=2**24,
        srtp_encryption=True,
        srtcp_encryption=False,
        srtp_authentication=True,
        auth_tag_len=10,
        srtp_prefix_len=0,
    )
    p = pol.to_payload()
    assert PolicyParam(6, b"\x01\x00\x00\x00") in p.params
    assert PolicyParam(8, b"\x00") in p.params
    assert SrtpPolicy.from_payload(p) == pol
    for params, code in [
        ((PolicyParam(13, b"\x00"),), ErrorNo.INVALID_SPPAR),  # unknown type
        ((PolicyParam(0, b"\x07"),), ErrorNo.INVALID_SPPAR),  # unknown cipher
        ((PolicyParam(7, b"\x02"),), ErrorNo.INVALID_SPPAR),  # flag not 0/1
        ((PolicyParam(1, b"\x00\x10"),), ErrorNo.INVALID_SPPAR),  # bad width
        ((PolicyParam(1, b"\x10"), PolicyParam(1, b"\x10")), ErrorNo.INVALID_SPPAR),  # repeated
    ]:
        with pytest.raises(UnsupportedError) as info:
            SrtpPolicy.from_payload(SecurityPolicyPayload(0, ProtType.SRTP, params))
        assert info.value.error_no is code


# --------------------------------------------------------------------------- rejections


def _valid_message_bytes() -> bytes:
    return _hdr(0, 5) + struct.pack(">BBI", 11, 2, 1) + bytes([0, 16]) + bytes(16)


@pytest.mark.parametrize(
    ("wire", "exc", "error_no", "offset"),
    [
        (_hdr(0, 0, version=2), UnsupportedError, ErrorNo.UNSPECIFIED, 0),
        (_hdr(0, 0, version=0), UnsupportedError, ErrorNo.UNSPECIFIED, 0),
        (_hdr(4, 0), UnsupportedError, ErrorNo.INVALID_DT, 1),  # DH init
        (_hdr(99, 0), UnsupportedError, ErrorNo.INVALID_DT, 1),
        (_hdr(0, 0, prf_func=5), UnsupportedError, ErrorNo.INVALID_PRF, 3),
        (_hdr(0, 0, map_type=9), UnsupportedError, ErrorNo.UNSPECIFIED, 9),
        (_hdr(0, 13), MikeyParseError, ErrorNo.UNSPECIFIED, 10),  # unknown payload type
        (_hdr(0, 2) + b"\x00" * 8, UnsupportedError, ErrorNo.UNSPECIFIED, 10),  # PKE
        (_hdr(0, 20) + b"\x00" * 8, MikeyParseError, ErrorNo.UNSPECIFIED, 10),  # Key data at top
        (_hdr(0, 5) + b"\x00\x07" + bytes(8), UnsupportedError, ErrorNo.INVALID_TS, 11),
        (_hdr(0, 6) + b"\x00\x05\x00\x00", UnsupportedError, ErrorNo.INVALID_ID, 11),
        (_hdr(0, 1) + b"\x00\x09\x00\x00\x00", UnsupportedError, ErrorNo.INVALID_EA, 11),
        (_hdr(0, 1) + b"\x00\x00\x00\x00\x07", UnsupportedError, ErrorNo.INVALID_MAC, 14),
        (_hdr(1, 9) + b"\x00\x04", UnsupportedError, ErrorNo.INVALID_MAC, 11),
        (_hdr(0, 10) + b"\x00\x00\x05\x00\x00", UnsupportedError, ErrorNo.INVALID_SP, 12),
        (_hdr(0, 11) + b"\x00\x00", MikeyParseError, ErrorNo.UNSPECIFIED, 11),  # RAND len 0
        (_valid_message_bytes()[:-1], MikeyParseError, ErrorNo.UNSPECIFIED, 18),  # truncated RAND
        (_valid_message_bytes() + b"\x00", MikeyParseError, ErrorNo.UNSPECIFIED, 34),  # trailing
        (_hdr(0, 5), MikeyParseError, ErrorNo.UNSPECIFIED, 10),  # payload announced, none present
        (_hdr(0, 0)[:9], MikeyParseError, ErrorNo.UNSPECIFIED, 9),  # short header
        (_hdr(0, 0, cs=[(0, 1, 2)])[:-1], MikeyParseError, ErrorNo.UNSPECIFIED, 15),
        (_hdr(0, 10) + b"\x00\x00\x00\x00\x02\x01\x05", MikeyParseError, ErrorNo.UNSPECIFIED, 17),
        (_hdr(0, 10) + b"\x00\x00\x00\x00\x03\x01\x05", MikeyParseError, ErrorNo.UNSPECIFIED, 15),
    ],
)
def test_rejections_are_typed_and_located(
    wire: bytes, exc: type[MikeyError], error_no: ErrorNo, offset: int
) -> None:
    with pytest.raises(exc) as info:
        parse_message(wire)
    err = info.value
    assert isinstance(err, MbmssecError)
    assert err.error_no is error_no
    assert getattr(err, "offset", None) == offset
    assert getattr(err, "payload", None)


def test_serialiser_rejects_out_of_range_values() -> None:
    with pytest.raises(EncodeError):
        serialise_message(MikeyMessage(CommonHeader(DataType.PSK_INIT, 2**32), ()))
    with pytest.raises(EncodeError):
        serialise_message(MikeyMessage(CommonHeader(DataType.PSK_INIT, 1), (RandPayload(b""),)))
    with pytest.raises(EncodeError):
        serialise_message(
            MikeyMessage(
                CommonHeader(DataType.PSK_INIT, 1), (TimestampPayload(TsType.COUNTER, 2**32),)
            )
        )
    with pytest.raises(EncodeError):
        serialise_key_data_chain([KeyDataPayload(KeyDataType.TEK_SALT, b"k" * 16)])
    with pytest.raises(EncodeError):
        serialise_key_data_chain([KeyDataPayload(KeyDataType.TEK, b"k" * 16, b"salt")])


# --------------------------------------------------------------------------- message level


def _delivery(**kw: object) -> TekDelivery:
    args: dict[str, object] = dict(
        csb_id=0x0BADCAFE,
        keys=[TekKey(os.urandom(16), os.urandom(14), os.urandom(3))],
        now=NOW,
        rand=os.urandom,
        cs_map=[SrtpCs(0, 0x11111111, 0), SrtpCs(1, 0x22222222, 3)],
        policies=[SrtpPolicy(0, encr_alg=SrtpEncrAlg.AES_CM, auth_tag_len=4), SrtpPolicy(1, kdr=0)],
        id_i=IdPayload(IdType.URI, b"http://bmsc.example"),
        id_r=IdPayload(IdType.NAI, b"ue1@example"),
        fetch=FetchAtTime(ntp_from_unix(NOW + 30)),
        lifetime=600,
    )
    args.update(kw)
    return new_tek_delivery(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize("encr", list(EncrAlg))
@pytest.mark.parametrize("counter", [None, 41])
def test_tek_delivery_round_trip(encr: EncrAlg, counter: int | None) -> None:
    kek = os.urandom(16)
    d = _delivery(encr_alg=encr, counter=counter)
    msg = build_tek_delivery(d, kek)
    mode = ReplayMode.COUNTER if counter is not None else ReplayMode.TIMESTAMP
    got = parse_and_verify(msg, kek, ReplayState(mode), NOW + 1)
    assert got.delivery == d
    assert got.keys == d.keys
    if encr is not EncrAlg.NULL:
        assert d.keys[0].tek not in msg and d.keys[0].salt not in msg  # type: ignore[operator]
    else:
        assert d.keys[0].tek in msg


def test_several_keys_per_message_and_srtp_index_fetch() -> None:
    kek = os.urandom(32)  # longer pre-shared keys exercise the PRF's key splitting
    keys = [TekKey(os.urandom(16), os.urandom(14), bytes([i, 0, 0])) for i in range(4)]
    d = _delivery(
        keys=keys,
        fetch=FetchAtSrtpIndex.from_roc_seq(7, 65_000),
        lifetime=None,
        encr_alg=EncrAlg.AES_KW_128,
    )
    got = parse_and_verify(build_tek_delivery(d, kek), kek, ReplayState(ReplayMode.NONE), NOW)
    assert got.keys == tuple(keys)
    assert got.delivery.fetch == FetchAtSrtpIndex(7 << 16 | 65_000)
    assert got.delivery.lifetime is None


def test_aes_kw_needs_whole_semiblocks() -> None:
    d = _delivery(
        keys=[TekKey(os.urandom(16), os.urandom(14), b"\x01")], encr_alg=EncrAlg.AES_KW_128
    )
    with pytest.raises(UnsupportedError):
        build_tek_delivery(d, os.urandom(16))


def test_mac_is_checked_before_decryption(monkeypatch: pytest.MonkeyPatch) -> None:
    kek = os.urandom(16)
    msg = bytearray(build_tek_delivery(_delivery(), kek))
    called: list[bool] = []
    real = mikey_crypto.kemac_decrypt

    def spy(*a: object, **k: object) -> bytes:
        called.append(True)
        return real(*a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(mikey_messages, "kemac_decrypt", spy)
    msg[-30] ^= 0x80  # inside the encrypted key data
    with pytest.raises(MikeyAuthError):
        parse_and_verify(bytes(msg), kek, ReplayState(ReplayMode.NONE), NOW)
    assert not called
    with pytest.raises(MikeyAuthError):
        parse_and_verify(
            build_tek_delivery(_delivery(), kek), os.urandom(16), ReplayState(ReplayMode.NONE), NOW
        )
    assert not called


@pytest.mark.parametrize(
    ("pos", "exc"),
    [
        (3, UnsupportedError),  # PRF func 0 -> 1: no such PRF
        (5, MikeyAuthError),  # CSB ID (also changes the derived keys)
        (11, MikeyAuthError),  # an SSRC in the CS ID map
        (31, MikeyAuthError),  # the T value
        (40, MikeyAuthError),  # RAND
        (-30, MikeyAuthError),  # encrypted key data
        (-1, MikeyAuthError),  # the MAC itself
        (-21, MikeyParseError),  # Mac alg 1 -> 0 (NULL): the 20 MAC bytes become trailing bytes
    ],
)
def test_tampering_is_detected(pos: int, exc: type[MikeyError]) -> None:
    kek = os.urandom(16)
    msg = bytearray(build_tek_delivery(_delivery(), kek))
    msg[pos] ^= 0x01
    with pytest.raises(exc):
        parse_and_verify(bytes(msg), kek, ReplayState(ReplayMode.NONE), NOW)


def test_null_mac_is_refused_unless_allowed() -> None:
    kek = os.urandom(16)
    d = _delivery(mac_alg=MacAlg.NULL, encr_alg=EncrAlg.NULL)
    msg = build_tek_delivery(d, kek)
    with pytest.raises(MikeyAuthError):
        parse_and_verify(msg, kek, ReplayState(ReplayMode.NONE), NOW)
    assert (
        parse_and_verify(msg, kek, ReplayState(ReplayMode.NONE), NOW, allow_null_mac=True).delivery
        == d
    )


def test_counter_replay_protection() -> None:
    kek = os.urandom(16)
    state = ReplayState(ReplayMode.COUNTER)
    m5 = build_tek_delivery(_delivery(counter=5), kek)
    m6 = build_tek_delivery(_delivery(counter=6), kek)
    r = parse_and_verify(m5, kek, state, NOW)
    assert r.replay_state.last_counter == 5
    with pytest.raises(MikeyReplayError) as info:
        parse_and_verify(m5, kek, r.replay_state, NOW)
    assert info.value.error_no is ErrorNo.INVALID_TS
    r6 = parse_and_verify(m6, kek, r.replay_state, NOW)
    with pytest.raises(MikeyReplayError):
        parse_and_verify(m5, kek, r6.replay_state, NOW)  # older counter
    with pytest.raises(MikeyReplayError):  # a time-stamped message where a counter is expected
        parse_and_verify(build_tek_delivery(_delivery(), kek), kek, state, NOW)


def test_timestamp_replay_protection_and_window() -> None:
    kek = os.urandom(16)
    state = ReplayState(ReplayMode.TIMESTAMP, max_skew=10.0)
    msg = build_tek_delivery(_delivery(), kek)
    r = parse_and_verify(msg, kek, state, NOW + 9.5)
    with pytest.raises(MikeyReplayError):
        parse_and_verify(msg, kek, r.replay_state, NOW + 9.6)  # replay cache
    with pytest.raises(MikeyReplayError):
        parse_and_verify(msg, kek, state, NOW + 10.5)  # too old
    with pytest.raises(MikeyReplayError):
        parse_and_verify(msg, kek, state, NOW - 10.5)  # from the future
    later = build_tek_delivery(_delivery(now=NOW + 100), kek)
    r2 = parse_and_verify(later, kek, r.replay_state, NOW + 100)
    assert len(r2.replay_state.recent) == 1  # the old entry left the window
    with pytest.raises(MikeyReplayError):
        parse_and_verify(build_tek_delivery(_delivery(counter=1), kek), kek, state, NOW)


def test_replay_state_does_not_advance_on_failure() -> None:
    kek = os.urandom(16)
    state = ReplayState(ReplayMode.COUNTER, last_counter=3)
    bad = bytearray(build_tek_delivery(_delivery(counter=9), kek))
    bad[-1] ^= 1
    with pytest.raises(MikeyAuthError):
        parse_and_verify(bytes(bad), kek, state, NOW)
    assert state.last_counter == 3  # frozen; nothing returned to persist


def test_ntp_conversion() -> None:
    assert ntp_from_unix(0) == 2_208_988_800 << 32
    assert unix_from_ntp(ntp_from_unix(NOW)) == pytest.approx(NOW, abs=1e-9)


def test_structure_checks_of_i_message() -> None:
    kek = os.urandom(16)
    d = _delivery()
    msg = parse_message(build_tek_delivery(d, kek))
    # KEMAC not last
    reordered = MikeyMessage(msg.header, (msg.payloads[-1], *msg.payloads[:-1]))
    with pytest.raises(MikeyParseError):
        parse_and_verify(serialise_message(reordered), kek, ReplayState(ReplayMode.NONE), NOW)
    # two T payloads
    doubled = MikeyMessage(msg.header, (msg.payloads[0], *msg.payloads))
    with pytest.raises(MikeyParseError):
        parse_and_verify(serialise_message(doubled), kek, ReplayState(ReplayMode.NONE), NOW)
    # a response is not an I_MESSAGE
    with pytest.raises(UnsupportedError):
        parse_and_verify(build_verification(d, kek), kek, ReplayState(ReplayMode.NONE), NOW)


def test_builder_rejects_bad_content() -> None:
    with pytest.raises(EncodeError):
        build_tek_delivery(_delivery(keys=[]), os.urandom(16))
    with pytest.raises(EncodeError):
        build_tek_delivery(_delivery(id_i=None), os.urandom(16))
    with pytest.raises(EncodeError):
        new_tek_delivery(csb_id=1, keys=[TekKey(b"k" * 16)], now=NOW, rand=lambda n: b"x")
    with pytest.raises(EncodeError):
        counter_timestamp(-1)


def test_rand_source_is_used() -> None:
    d = new_tek_delivery(
        csb_id=1, keys=[TekKey(b"k" * 16)], now=NOW, rand=lambda n: bytes(range(n))
    )
    assert d.rand == bytes(range(16))
    assert d.timestamp == TimestampPayload(TsType.NTP_UTC, ntp_from_unix(NOW))


def test_kemac_aes_cm_matches_independent_encryption() -> None:
    kek = os.urandom(16)
    d = _delivery(encr_alg=EncrAlg.AES_CM_128, counter=1234)
    msg = parse_message(build_tek_delivery(d, kek))
    kemac = msg.payloads[-1]
    assert isinstance(kemac, KemacPayload)
    lab = b"\xff" + struct.pack(">I", d.csb_id) + d.rand
    ek = _ref_prf(kek, bytes.fromhex("150533E1") + lab, 16)
    sk = _ref_prf(kek, bytes.fromhex("29B88916") + lab, 14)
    t64 = (1234).to_bytes(8, "big")
    iv = (
        bytes(a ^ b for a, b in zip(sk, b"\0\0" + struct.pack(">I", d.csb_id) + t64, strict=True))
        + b"\0\0"
    )
    dec = Cipher(algorithms.AES(ek), modes.CTR(iv)).decryptor()
    plain = dec.update(kemac.encr_data) + dec.finalize()
    k = d.keys[0]
    assert k.mki is not None and k.salt is not None
    assert plain == (
        struct.pack(">BBH", 0, 0x31, 16)
        + k.tek
        + struct.pack(">H", 14)
        + k.salt
        + bytes([len(k.mki)])
        + k.mki
    )
    ak = _ref_prf(kek, bytes.fromhex("2D22AC75") + lab, 20)
    raw = build_tek_delivery(d, kek)
    assert kemac.mac == hmac.new(ak, raw[:-20], hashlib.sha1).digest()


def test_verification_message_round_trip_and_mac() -> None:
    kek = os.urandom(16)
    d = _delivery(request_verification=True)
    got = parse_and_verify(build_tek_delivery(d, kek), kek, ReplayState(ReplayMode.NONE), NOW)
    assert got.delivery.v_flag
    idr = IdPayload(IdType.NAI, b"ue1@example")
    resp = build_verification(got.delivery, kek, id_r=idr)
    res = verify_verification(resp, d, kek)
    assert res.csb_id == d.csb_id and res.id_r == idr
    # The Ver data is HMAC(auth_key, R_MESSAGE-without-Ver-data || IDi || IDr || T).
    lab = b"\xff" + struct.pack(">I", d.csb_id) + d.rand
    ak = _ref_prf(kek, bytes.fromhex("2D22AC75") + lab, 20)
    assert d.id_i is not None
    expected = hmac.new(
        ak, resp[:-20] + d.id_i.data + idr.data + d.timestamp.value.to_bytes(8, "big"), hashlib.sha1
    ).digest()
    assert resp[-20:] == expected
    hdr = parse_message(resp).header
    assert hdr.data_type is DataType.PSK_RESP and hdr.cs_map == d.cs_map
    bad = bytearray(resp)
    bad[-3] ^= 4
    with pytest.raises(MikeyAuthError):
        verify_verification(bytes(bad), d, kek)
    with pytest.raises(MikeyAuthError):
        verify_verification(resp, d, os.urandom(16))
    other = _delivery()
    with pytest.raises(MikeyError):
        verify_verification(resp, other, kek)  # another CSB ID / T
    # Without IDr in the response, IDr comes from the I_MESSAGE.
    assert verify_verification(build_verification(d, kek), d, kek).id_r == d.id_r


def test_error_message_round_trip() -> None:
    ts = counter_timestamp(9)
    wire = build_error_message(77, [ErrorNo.AUTH_FAILURE, ErrorNo.INVALID_SP], ts)
    assert wire == (
        struct.pack(">BBBBIBB", 1, 6, 5, 0, 77, 0, 0)
        + struct.pack(">BBI", 12, 2, 9)
        + struct.pack(">BBH", 12, 0, 0)
        + struct.pack(">BBH", 0, 9, 0)
    )
    rep = parse_error_message(wire)
    assert rep.csb_id == 77 and rep.errors == (0, 9) and rep.timestamp == ts
    with pytest.raises(UnsupportedError):
        parse_error_message(build_verification(_delivery(), os.urandom(16)))


def test_unknown_general_extensions_pass_through() -> None:
    kek = os.urandom(16)
    extra = GeneralExtensionPayload(0, b"vendor-x")
    d = _delivery()
    d2 = d._replace(extensions=(extra,))
    got = parse_and_verify(build_tek_delivery(d2, kek), kek, ReplayState(ReplayMode.NONE), NOW)
    assert got.delivery.extensions == (extra,)


def test_non_tek_key_types_are_refused_in_a_tek_delivery() -> None:
    kek = os.urandom(16)
    d = _delivery(encr_alg=EncrAlg.NULL)
    msg = parse_message(build_tek_delivery(d, kek))
    chain = serialise_key_data_chain(
        [KeyDataPayload(KeyDataType.TGK, b"g" * 16, None, NullValidity())]
    )
    kem = msg.payloads[-1]
    assert isinstance(kem, KemacPayload)
    forged = MikeyMessage(
        msg.header, (*msg.payloads[:-1], KemacPayload(EncrAlg.NULL, chain, MacAlg.NULL, b""))
    )
    with pytest.raises(UnsupportedError):
        parse_and_verify(
            serialise_message(forged), kek, ReplayState(ReplayMode.NONE), NOW, allow_null_mac=True
        )


def test_group_key_delivery_round_trip_and_key_types() -> None:
    """A group key (a KEK shared by UEs) travels as Key data type TGK; a group key
    delivery must carry exactly that, and a TEK delivery never a TGK."""
    kek, group = os.urandom(16), os.urandom(16)
    d = _delivery(keys=[TekKey(group, group_key=True)])
    msg = build_tek_delivery(d, kek)
    chain = parse_message(msg)
    assert isinstance(chain.payloads[-1], KemacPayload)
    got = parse_and_verify(msg, kek, ReplayState(ReplayMode.NONE), NOW, group_key=True)
    assert got.keys == (TekKey(group, None, None, group_key=True),)
    with pytest.raises(UnsupportedError, match="TGK in a TEK delivery"):
        parse_and_verify(msg, kek, ReplayState(ReplayMode.NONE), NOW)
    teks = build_tek_delivery(_delivery(), kek)
    with pytest.raises(UnsupportedError, match="in a group key delivery"):
        parse_and_verify(teks, kek, ReplayState(ReplayMode.NONE), NOW, group_key=True)
    two = _delivery(keys=[TekKey(group, group_key=True), TekKey(group, group_key=True)])
    with pytest.raises(UnsupportedError, match="2 keys in a group key delivery"):
        parse_and_verify(
            build_tek_delivery(two, kek), kek, ReplayState(ReplayMode.NONE), NOW, group_key=True
        )


def test_split_messages_cuts_a_concatenation_at_message_ends() -> None:
    kek = os.urandom(16)
    a = build_tek_delivery(_delivery(), kek)
    b = build_tek_delivery(_delivery(encr_alg=EncrAlg.NULL), kek)
    assert split_messages(a + b) == (a, b)
    assert split_messages(a) == (a,)
    with pytest.raises(MikeyParseError) as info:
        split_messages(a + b[:-3])
    assert info.value.reason.startswith("message 2:") and info.value.offset >= len(a)
    with pytest.raises(MikeyParseError, match="no MIKEY message"):
        split_messages(b"")
    with pytest.raises(MikeyParseError, match="trailing"):
        parse_message(a + b)  # one whole message only

"""tshark as an independent oracle for the MIKEY wire format and the pcap writer.

Freshly generated MIKEY messages are written with :func:`write_pcap` on UDP port
2269 (the port of Wireshark's MIKEY dissector); tshark must decode them without a
malformed-packet or warning-level expert item and report the fields we built.
Wireshark 4.0's dissector decodes the Key data sub-payload only with NULL
encryption in a pre-shared-key I_MESSAGE, and only the first sub-payload of the
chain; it shows no value for a COUNTER timestamp. The same captures check the pcap
writer: tshark validates the IPv4, UDP and TCP checksums and reassembles HTTP over
the written TCP stream.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from calendar import timegm
from pathlib import Path
from typing import Any

import pytest

from mbmssec.impl.protocols.mikey import (
    EncrAlg,
    ErrorNo,
    FetchAtSrtpIndex,
    FetchAtTime,
    IdPayload,
    IdType,
    KemacPayload,
    SrtpAuthAlg,
    SrtpCs,
    SrtpEncrAlg,
    SrtpPolicy,
    TekFetchExtension,
    parse_message,
)
from mbmssec.impl.protocols.mikey_messages import (
    TekDelivery,
    TekKey,
    build_error_message,
    build_tek_delivery,
    build_verification,
    counter_timestamp,
    new_tek_delivery,
    ntp_from_unix,
)
from mbmssec.impl.protocols.pcap import PcapError, Proto, internet_checksum, pcap_bytes, write_pcap
from mbmssec.oracles.tshark import Fields, flatten

TSHARK = shutil.which("tshark")
pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(TSHARK is None, reason="tshark is not installed"),
]

MIKEY_PORT = 2269
WARN_SEVERITY = 0x00600000  # Wireshark PI_WARN; PI_ERROR is 0x00800000
CHECKSUM_PREFS = [
    "-o",
    "ip.check_checksum:TRUE",
    "-o",
    "udp.check_checksum:TRUE",
    "-o",
    "tcp.check_checksum:TRUE",
]


def _run_tshark(pcap: Path, *args: str) -> str:
    assert TSHARK is not None
    proc = subprocess.run(
        [TSHARK, "-r", str(pcap), *CHECKSUM_PREFS, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return proc.stdout


def _decode(pcap: Path) -> list[Fields]:
    """tshark's decode of every frame, and the no-malformed / no-warning checks."""
    text = _run_tshark(pcap, "-T", "json")
    assert "Malformed" not in text  # tshark's "Malformed Packet" expert item and label
    frames = json.loads(text, object_pairs_hook=lambda p: p)
    decoded = []
    for frame in frames:
        fields: Fields = []
        flatten(frame, fields)
        names = {k for k, _ in fields}
        assert "_ws.malformed" not in names
        severities = [int(v) for k, v in fields if k == "_ws.expert.severity"]
        assert all(s < WARN_SEVERITY for s in severities), fields
        decoded.append(fields)
    return decoded


def _all(fields: Fields, name: str) -> list[str]:
    return [v for k, v in fields if k == name]


def _one(fields: Fields, name: str) -> str:
    values = _all(fields, name)
    assert len(values) == 1, (name, values)
    return values[0]


def _colon_hex(data: bytes) -> str:
    return ":".join(f"{b:02x}" for b in data)


def _capture(tmp_path: Path, messages: list[bytes]) -> list[Fields]:
    pcap = tmp_path / "mikey.pcap"
    t0 = time.time()
    write_pcap(pcap, [(t0 + i * 0.01, 40_000 + i, MIKEY_PORT, m) for i, m in enumerate(messages)])
    frames = _decode(pcap)
    assert len(frames) == len(messages)
    for fields in frames:
        assert _one(fields, "udp.checksum.status") == "1"  # Good
        assert _one(fields, "ip.checksum.status") == "1"
        assert _one(fields, "ip.src") == _one(fields, "ip.dst") == "127.0.0.1"
    return frames


def _random_id(kind: IdType) -> IdPayload:
    token = os.urandom(6).hex()
    return IdPayload(
        kind,
        (
            f"ue-{token}@mbms.example" if kind is IdType.NAI else f"http://bmsc-{token}.example/"
        ).encode(),
    )


def _fresh_delivery(encr: EncrAlg, key: TekKey, **kw: Any) -> TekDelivery:
    rnd = int.from_bytes(os.urandom(4), "big")
    args: dict[str, Any] = dict(
        csb_id=rnd,
        keys=[key],
        now=time.time(),
        cs_map=[
            SrtpCs(i, int.from_bytes(os.urandom(4), "big"), int.from_bytes(os.urandom(4), "big"))
            for i in range(1 + rnd % 3)
        ],
        policies=[
            SrtpPolicy(
                policy_no=rnd % 7,
                encr_alg=SrtpEncrAlg.AES_CM,
                encr_key_len=16,
                auth_alg=SrtpAuthAlg.HMAC_SHA_1,
                auth_key_len=20,
                salt_key_len=14,
                kdr=1 << (rnd % 25),
                srtp_encryption=True,
                srtcp_encryption=bool(rnd & 1),
                srtp_authentication=True,
                auth_tag_len=4 + 6 * (rnd & 1),
                srtp_prefix_len=0,
            )
        ],
        id_i=_random_id(IdType.URI),
        id_r=_random_id(IdType.NAI),
        fetch=FetchAtTime(ntp_from_unix(time.time() + rnd % 3600)),
        lifetime=rnd % 86_400,
        encr_alg=encr,
        request_verification=bool(rnd & 2),
    )
    args.update(kw)
    return new_tek_delivery(**args)


def _check_common(fields: Fields, d: TekDelivery, data_type: int) -> None:
    assert _one(fields, "mikey.version") == "1"
    assert _one(fields, "mikey.type") == str(data_type)
    assert _one(fields, "mikey.prf_func") == "0"
    assert int(_one(fields, "mikey.csb_id"), 16) == d.csb_id
    assert _one(fields, "mikey.cs_count") == str(len(d.cs_map))
    assert _one(fields, "mikey.cs_id_map_type") == "0"
    assert [int(v) for v in _all(fields, "mikey.srtp_id.policy_no")] == [
        c.policy_no for c in d.cs_map
    ]
    assert [int(v, 16) for v in _all(fields, "mikey.srtp_id.ssrc")] == [c.ssrc for c in d.cs_map]
    assert [int(v, 16) for v in _all(fields, "mikey.srtp_id.roc")] == [c.roc for c in d.cs_map]


def _ntp_text_to_ntp(text: str) -> tuple[int, int]:
    """tshark's 'Mon DD, YYYY HH:MM:SS.nnnnnnnnn UTC' as (NTP seconds, nanoseconds)."""
    m = re.fullmatch(r"(\w{3}) +(\d+), (\d{4}) (\d\d):(\d\d):(\d\d)\.(\d{9}) UTC", text)
    assert m, text
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    secs = timegm(
        (int(m[3]), months.index(m[1]) + 1, int(m[2]), int(m[4]), int(m[5]), int(m[6]), 0, 0, 0)
    )
    return secs + 2_208_988_800, int(m[7])


@pytest.mark.parametrize(
    "make_key",
    [
        lambda: TekKey(os.urandom(16), os.urandom(14), os.urandom(1 + os.urandom(1)[0] % 4)),
        lambda: TekKey(os.urandom(16)),
        lambda: TekKey(os.urandom(32), None, os.urandom(2)),
    ],
    ids=["tek+salt+mki", "tek", "tek256+mki"],
)
def test_null_encryption_delivery_decodes_as_built(tmp_path: Path, make_key: Any) -> None:
    key = make_key()
    d = _fresh_delivery(EncrAlg.NULL, key)
    msg = build_tek_delivery(d, os.urandom(16))
    (fields,) = _capture(tmp_path, [msg])
    _check_common(fields, d, 0)
    assert _one(fields, "mikey.v.set") == str(int(d.v_flag))
    assert _one(fields, "mikey.t.ts_type") == "0"
    secs, nanos = _ntp_text_to_ntp(_one(fields, "mikey.t.ntp"))
    ours = d.timestamp.value
    assert secs == ours >> 32 and abs(nanos - (ours & 0xFFFFFFFF) * 10**9 / 2**32) <= 1
    assert _one(fields, "mikey.rand.data") == _colon_hex(d.rand)
    assert d.id_i is not None and d.id_r is not None
    assert _all(fields, "mikey.id.type") == ["1", "0"]
    assert _all(fields, "mikey.id.data") == [d.id_i.data.decode(), d.id_r.data.decode()]
    pol = d.policies[0]
    assert _one(fields, "mikey.sp.no") == str(pol.policy_no)
    assert _one(fields, "mikey.sp.proto_type") == "0"
    assert _one(fields, "mikey.sp.encr_alg") == "1"
    assert _one(fields, "mikey.sp.encr_len") == "16"
    assert _one(fields, "mikey.sp.auth_alg") == "1"
    assert _one(fields, "mikey.sp.auth_key_len") == "20"
    assert _one(fields, "mikey.sp.salt_len") == "14"
    assert _one(fields, "mikey.sp.kd_rate") == str(pol.kdr)
    assert _one(fields, "mikey.sp.srtp_encr") == "1"
    assert _one(fields, "mikey.sp.srtcp_encr") == str(int(bool(pol.srtcp_encryption)))
    assert _one(fields, "mikey.sp.srtp_auth") == "1"
    assert _one(fields, "mikey.sp.auth_tag_len") == str(pol.auth_tag_len)
    assert _one(fields, "mikey.sp.srtp_prefix") == "0"
    ext = TekFetchExtension(d.fetch, d.lifetime).to_payload()
    assert _one(fields, "mikey.ext.type") == "255"
    assert _one(fields, "mikey.ext.data") == _colon_hex(ext.data)
    assert _one(fields, "mikey.kemac.encr_alg") == "0"
    assert _one(fields, "mikey.kemac.mac_alg") == "1"
    kemac = parse_message(msg).payloads[-1]
    assert isinstance(kemac, KemacPayload)
    assert _one(fields, "mikey.kemac.key_data_len") == str(len(kemac.encr_data))
    assert _one(fields, "mikey.kemac.mac") == _colon_hex(msg[-20:])
    expected_type = 3 if key.salt is not None else 2
    assert _one(fields, "mikey.key.type") == str(expected_type)
    assert _one(fields, "mikey.key.kv") == ("1" if key.mki is not None else "0")
    assert _one(fields, "mikey.key.data.len") == str(len(key.tek))
    assert _one(fields, "mikey.key.data") == _colon_hex(key.tek)
    if key.salt is not None:
        assert _one(fields, "mikey.key.salt") == _colon_hex(key.salt)
    else:
        assert _all(fields, "mikey.key.salt") == []
    if key.mki is not None:
        assert _one(fields, "mikey.key.kv.spi.len") == str(len(key.mki))
        assert _one(fields, "mikey.key.kv.spi") == _colon_hex(key.mki)


@pytest.mark.parametrize("encr", [EncrAlg.AES_CM_128, EncrAlg.AES_KW_128])
def test_encrypted_delivery_decodes_as_built(tmp_path: Path, encr: EncrAlg) -> None:
    key = TekKey(os.urandom(16), os.urandom(14), os.urandom(3))  # 40-byte chain for AES-KW
    d = _fresh_delivery(
        encr,
        key,
        counter=int.from_bytes(os.urandom(4), "big"),
        fetch=FetchAtSrtpIndex(int.from_bytes(os.urandom(6), "big")),
    )
    msg = build_tek_delivery(d, os.urandom(16))
    (fields,) = _capture(tmp_path, [msg])
    _check_common(fields, d, 0)
    assert _one(fields, "mikey.t.ts_type") == "2"
    kemac = parse_message(msg).payloads[-1]
    assert isinstance(kemac, KemacPayload)
    assert _one(fields, "mikey.kemac.encr_alg") == str(int(encr))
    assert _one(fields, "mikey.kemac.key_data_len") == str(len(kemac.encr_data))
    assert _one(fields, "mikey.kemac.key_data") == _colon_hex(kemac.encr_data)
    assert _one(fields, "mikey.kemac.mac") == _colon_hex(kemac.mac)
    assert _all(fields, "mikey.key.data") == []  # encrypted: not decodable


def test_several_keys_message_decodes(tmp_path: Path) -> None:
    keys = [TekKey(os.urandom(16), os.urandom(14), os.urandom(2)) for _ in range(3)]
    d = _fresh_delivery(EncrAlg.NULL, keys[0], keys=keys)
    msg = build_tek_delivery(d, os.urandom(16))
    (fields,) = _capture(tmp_path, [msg])
    kemac = parse_message(msg).payloads[-1]
    assert isinstance(kemac, KemacPayload)
    assert _one(fields, "mikey.kemac.key_data_len") == str(len(kemac.encr_data))
    # Wireshark 4.0 shows the first sub-payload of the chain.
    assert _all(fields, "mikey.key.data")[0] == _colon_hex(keys[0].tek)
    assert _all(fields, "mikey.key.kv.spi")[0] == _colon_hex(keys[0].mki or b"")


def test_verification_and_error_messages_decode(tmp_path: Path) -> None:
    kek = os.urandom(16)
    d = _fresh_delivery(EncrAlg.AES_CM_128, TekKey(os.urandom(16)))
    idr = _random_id(IdType.NAI)
    resp = build_verification(d, kek, id_r=idr)
    errs = [ErrorNo(int.from_bytes(os.urandom(1), "big") % 13) for _ in range(3)]
    csb = int.from_bytes(os.urandom(4), "big")
    err = build_error_message(csb, errs, counter_timestamp(int.from_bytes(os.urandom(4), "big")))
    v_fields, e_fields = _capture(tmp_path, [resp, err])
    _check_common(v_fields, d, 1)
    assert _one(v_fields, "mikey.id.data") == idr.data.decode()
    assert _one(v_fields, "mikey.v.auth_alg") == "1"
    assert _one(v_fields, "mikey.v.ver_data") == _colon_hex(resp[-20:])
    assert _one(e_fields, "mikey.type") == "6"
    assert int(_one(e_fields, "mikey.csb_id"), 16) == csb
    assert _all(e_fields, "mikey.err.no") == [str(int(e)) for e in errs]


def test_oracle_flags_a_malformed_message(tmp_path: Path) -> None:
    """The harness must be able to fail: a truncated message is reported malformed."""
    d = _fresh_delivery(EncrAlg.NULL, TekKey(os.urandom(16)))
    msg = build_tek_delivery(d, os.urandom(16))
    pcap = tmp_path / "bad.pcap"
    write_pcap(pcap, [(time.time(), 40_000, MIKEY_PORT, msg[:-25])])
    with pytest.raises(AssertionError):
        _decode(pcap)


# --------------------------------------------------------------------------- pcap writer


def test_internet_checksum_rfc1071_example() -> None:
    # RFC 1071 section 3: the one's-complement sum of these bytes is 0xddf2.
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0xFFFF - 0xDDF2


def test_tcp_stream_is_reassembled_and_checksums_verify(tmp_path: Path) -> None:
    body = os.urandom(3000).hex().encode()
    request = b"POST /keys HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" % len(body)
    response = b"HTTP/1.1 204 No Content\r\n\r\n"
    pcap = tmp_path / "http.pcap"
    t0 = time.time()
    write_pcap(
        pcap,
        [
            (t0, 50_001, 8080, request + body, Proto.TCP),
            (t0 + 0.01, 8080, 50_001, response, Proto.TCP),
            (t0 + 0.02, 50_002, 9, b"udp too"),
        ],
        mss=1000,
    )
    frames = _decode(pcap)
    # SYN, SYN-ACK, ACK, 7 request segments, 1 response segment, 1 UDP datagram.
    assert len(frames) == 3 + 7 + 1 + 1
    for fields in frames:
        assert _one(fields, "ip.checksum.status") == "1"
        statuses = _all(fields, "tcp.checksum.status") + _all(fields, "udp.checksum.status")
        assert statuses == ["1"]
    flat = [kv for f in frames for kv in f]
    assert ("http.request.method", "POST") in flat
    assert ("http.content_length_header", str(len(body))) in flat
    assert ("http.response.code", "204") in flat
    assert [v for k, v in frames[0] if k == "tcp.flags.syn"] == ["1"]


def test_pcap_writer_rejects_bad_packets() -> None:
    for bad in [
        (0.0, 70_000, 1, b""),
        (-1.0, 1, 2, b""),
        (0.0, 1, 2, "text"),
        (0.0, 1, 2, b"", 99),
        (0.0, 1, 2, bytes(70_000)),
        (0.0, 5, 5, b"", Proto.TCP),
    ]:
        with pytest.raises(PcapError):
            pcap_bytes([bad])

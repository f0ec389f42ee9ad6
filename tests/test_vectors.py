"""The test vectors written by ``mbmssec vectors`` are right, checked by independent means.

The files are generated once (module fixture) through the command line and then read
back as an implementer of another stack would read them. Nothing here re-runs the
generator to obtain expected values:

* SRTP/SRTCP: libsrtp 2.x (the system library, via ctypes) unprotects every recorded
  packet with the recorded master keys and, protecting the plaintext with the same key,
  reproduces the recorded bytes; a test-local RFC 3711 transform reproduces them from the
  recorded session keys.
* MIKEY: tshark decodes every frame of mikey.pcap without a malformed or warning item and
  reports the fields that were recorded; a test-local RFC 3830 PRF, HMAC and AES
  (cryptography primitives, hashlib/hmac) recomputes the derived keys, the MAC, the
  verification MAC and decrypts the Key data that tshark extracted; the library's parser
  verifies each message with the recorded KEK.
* Digest AKA: a test-local MILENAGE (checked first against every published TS 35.208
  set in tests/vectors/ts35208.json) recomputes AUTN, RES, CK, IK and AUTS; the Digest
  response is recomputed with hashlib MD5 from the recorded RES; the KEK with hmac.
* Determinism and the command line: same seed, same bytes; another seed, other bytes;
  bad --out and --seed exit with status 2 and a clear message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap

from mbmssec import cli
from mbmssec.impl.protocols.mikey import (
    FetchAtSrtpIndex,
    FetchAtTime,
    MikeyAuthError,
)
from mbmssec.impl.protocols.mikey_messages import (
    ReplayMode,
    ReplayState,
    parse_and_verify,
    verify_verification,
)
from mbmssec.oracles import libsrtp
from mbmssec.oracles.libsrtp import Direction, LibSrtpKey, LibSrtpSession, LibSrtpStatusError
from mbmssec.oracles.tshark import Fields, flatten

SEED = 20240917
FILES = ("mikey_tek_delivery.json", "srtp_mki.json", "digest_aka.json", "mikey.pcap", "README.txt")
VECTORS = Path(__file__).parent / "vectors"
TSHARK = shutil.which("tshark")
CAPINFOS = shutil.which("capinfos")
WARN_SEVERITY = 0x00600000  # Wireshark PI_WARN

Json = dict[str, Any]


def run_cli(*argv: str) -> int:
    return cli.main(["vectors", *argv])


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("vectors") / "out"
    assert run_cli("--out", str(out), "--seed", str(SEED)) == 0
    return out


@pytest.fixture(scope="module")
def mikey(out_dir: Path) -> Json:
    data: Json = json.loads((out_dir / "mikey_tek_delivery.json").read_text())
    return data


@pytest.fixture(scope="module")
def srtp(out_dir: Path) -> Json:
    data: Json = json.loads((out_dir / "srtp_mki.json").read_text())
    return data


@pytest.fixture(scope="module")
def digest(out_dir: Path) -> Json:
    data: Json = json.loads((out_dir / "digest_aka.json").read_text())
    return data


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# --------------------------------------------------------------------------- files


def test_writes_exactly_the_documented_files(out_dir: Path) -> None:
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(FILES)


def test_every_file_records_generator_version_and_seed(out_dir: Path) -> None:
    versions = set()
    for name in FILES[:3]:
        data = json.loads((out_dir / name).read_text())
        assert data["format"] == "mbmssec-test-vectors"
        assert data["file"] == name
        assert data["seed"] == SEED
        assert data["documentation"] == "docs/vectors.md"
        versions.add(data["generator"]["version"])
    assert len(versions) == 1 and re.fullmatch(r"\d+\.\d+", versions.pop())
    readme = (out_dir / "README.txt").read_text()
    assert f"Seed: {SEED}" in readme and "docs/vectors.md" in readme
    for name in FILES[:4]:  # README lists the other files with their SHA-256
        digest_hex = hashlib.sha256((out_dir / name).read_bytes()).hexdigest()
        assert f"{name}: " in readme and f"sha256 {digest_hex}" in readme
    # pcapng Section Header Block (read by hand): its opt_comment names version and seed.
    raw = (out_dir / "mikey.pcap").read_bytes()
    block_type, length, magic = struct.unpack_from("<III", raw)
    assert (block_type, magic) == (0x0A0D0D0A, 0x1A2B3C4D)
    code, size = struct.unpack_from("<HH", raw, 24)
    assert code == 1  # opt_comment
    comment = raw[28 : 28 + size].decode()
    assert f"seed {SEED}" in comment and "mbmssec vectors" in comment
    assert struct.unpack_from("<I", raw, length - 4)[0] == length


@pytest.mark.skipif(CAPINFOS is None, reason="capinfos is not installed")
def test_capinfos_reads_the_capture_comment(out_dir: Path) -> None:
    assert CAPINFOS is not None
    text = subprocess.run(
        [CAPINFOS, str(out_dir / "mikey.pcap")],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert re.search(rf"Capture comment:.*seed {SEED}", text)
    assert re.search(r"Number of packets:\s+12\b", text)


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path, out_dir: Path) -> None:
    again, other = tmp_path / "again", tmp_path / "other"
    assert run_cli("--out", str(again), "--seed", str(SEED)) == 0
    assert run_cli("--out", str(other), "--seed", str(SEED + 1)) == 0
    for name in FILES:
        assert (again / name).read_bytes() == (out_dir / name).read_bytes(), name
        assert (other / name).read_bytes() != (out_dir / name).read_bytes(), name
    # Hex form of the seed is the same seed.
    hexed = tmp_path / "hex"
    assert run_cli("--out", str(hexed), "--seed", hex(SEED)) == 0
    assert (hexed / FILES[0]).read_bytes() == (out_dir / FILES[0]).read_bytes()


# --------------------------------------------------------------------------- command line


def test_summary_and_json_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "a" / "b"  # parents are created
    assert run_cli("--out", str(out), "--seed", "5") == 0
    text = capsys.readouterr().out
    assert "seed 5" in text and "docs/vectors.md" in text
    for name in FILES:
        assert name in text
    assert run_cli("--out", str(out), "--seed", "5", "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["seed"] == 5 and summary["out"] == str(out)
    assert [f["name"] for f in summary["files"]] == list(FILES)
    for f in summary["files"]:
        data = (out / f["name"]).read_bytes()
        assert f["bytes"] == len(data)
        assert f["sha256"] == hashlib.sha256(data).hexdigest()


def test_out_is_a_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "plain.txt"
    target.write_text("not a directory")
    assert run_cli("--out", str(target)) == 2
    err = capsys.readouterr().err
    assert f"--out {target}: exists and is not a directory" in err
    assert "Traceback" not in err
    assert target.read_text() == "not a directory"


@pytest.mark.parametrize("where", ["under-a-file", "proc"])
def test_unwritable_out_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    if where == "under-a-file":
        (tmp_path / "plain").write_text("x")
        target = tmp_path / "plain" / "sub"
    else:
        target = Path("/proc/mbmssec-vectors-test")
    assert run_cli("--out", str(target)) == 2
    err = capsys.readouterr().err
    assert f"mbmssec vectors: error: --out {target}: cannot create directory" in err
    assert not target.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["--seed", "-1"],
        ["--seed", "abc"],
        ["--seed", str(1 << 64)],
        ["--seed", "0x"],
        ["--out", ""],
        [],
    ],
    ids=["negative", "text", "too-big", "bare-0x", "empty-out", "no-out"],
)
def test_bad_arguments_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    if "--out" not in argv:
        argv = (["--out", str(tmp_path / "x")] if argv else []) + argv
    assert run_cli(*argv) == 2
    err = capsys.readouterr().err
    assert "mbmssec vectors: error:" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_module_entry_point_exit_status(tmp_path: Path) -> None:
    """The installed command path: ``python -m mbmssec vectors`` in a fresh process."""
    target = tmp_path / "file"
    target.write_text("")
    proc = subprocess.run(
        [__import__("sys").executable, "-m", "mbmssec", "vectors", "--out", str(target)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "exists and is not a directory" in proc.stderr and proc.stdout == ""


# --------------------------------------------------------------------------- SRTP

pytest_libsrtp = pytest.mark.skipif(not libsrtp.available(), reason="libsrtp 2.x not installed")


def _lib_keys(srtp: Json) -> list[LibSrtpKey]:
    return [
        LibSrtpKey(h(k["master_key"]), h(k["master_salt"]), h(k["mki"]))
        for k in srtp["master_keys"]
    ]


def _session(srtp: Json, stream: Json, direction: Direction) -> LibSrtpSession:
    tag = stream["auth_tag_length"]
    session = LibSrtpSession(
        _lib_keys(srtp), direction=direction, ssrc=stream["ssrc"], rtp_tag_len=tag, rtcp_tag_len=tag
    )
    if stream["kind"] == "srtp" and stream["initial_roc"]:
        session.set_roc(stream["ssrc"], stream["initial_roc"])
    return session


def test_srtp_file_covers_key_switch_and_rollover(srtp: Json) -> None:
    assert srtp["crypto"]["mki_length"] == 4
    mkis = [k["mki"] for k in srtp["master_keys"]]
    assert len(mkis) == 2 and len(set(mkis)) == 2
    kinds = {s["kind"] for s in srtp["streams"]}
    assert kinds == {"srtp", "srtcp"}
    assert {s["auth_tag_length"] for s in srtp["streams"]} == {10, 4}
    for stream in srtp["streams"]:
        used = [p["mki"] for p in stream["packets"]]
        assert used[0] == mkis[0] and used[-1] == mkis[1]  # switched by MKI
        assert used == sorted(used, key=mkis.index)  # one switch, no way back
        if stream["kind"] == "srtp":
            rocs = [p["roc"] for p in stream["packets"]]
            assert rocs[0] == stream["initial_roc"] and rocs[-1] == rocs[0] + 1  # rollover
            for p in stream["packets"]:
                plain = h(p["plaintext"])
                assert struct.unpack_from("!H", plain, 2)[0] == p["seq"]
                assert struct.unpack_from("!I", plain, 8)[0] == stream["ssrc"]
                assert p["index"] == (p["roc"] << 16) + p["seq"]
            # The switch happens before the rollover, so all three combinations occur.
            combos = {(p["mki"], p["roc"]) for p in stream["packets"]}
            assert len(combos) == 3


@pytest_libsrtp
def test_libsrtp_unprotects_every_recorded_packet(srtp: Json) -> None:
    for stream in srtp["streams"]:
        tag = stream["auth_tag_length"]
        with _session(srtp, stream, Direction.SPECIFIC) as rx:
            for p in stream["packets"]:
                protected = h(p["protected"])
                assert protected[-tag - 4 : -tag] == h(p["mki"])
                if stream["kind"] == "srtp":
                    assert rx.unprotect(protected) == h(p["plaintext"])
                else:
                    trailer = struct.unpack_from("!I", protected, len(protected) - tag - 8)[0]
                    assert trailer == (p["e_flag"] << 31) | p["srtcp_index"]
                    assert rx.unprotect_rtcp(protected) == h(p["plaintext"])
            if stream["kind"] == "srtp":
                assert rx.get_roc(stream["ssrc"]) == stream["packets"][-1]["roc"]


@pytest_libsrtp
def test_libsrtp_protects_the_plaintext_to_the_recorded_bytes(srtp: Json) -> None:
    """SRTP only: libsrtp numbers SRTCP packets from index 1, RFC 3711 3.4 (and the
    vectors) from 0, so libsrtp's SRTCP bytes differ; SRTCP is checked by unprotect and
    by the session-key transform below."""
    mkis = [k["mki"] for k in srtp["master_keys"]]
    streams = [s for s in srtp["streams"] if s["kind"] == "srtp"]
    assert len(streams) == 2
    for stream in streams:
        with _session(srtp, stream, Direction.SPECIFIC) as tx:
            for p in stream["packets"]:
                plain, which = h(p["plaintext"]), mkis.index(p["mki"])
                assert tx.protect(plain, which) == h(p["protected"])


@pytest_libsrtp
def test_libsrtp_oracle_rejects_a_corrupted_packet(srtp: Json) -> None:
    """The oracle can fail: one flipped payload bit is an authentication failure."""
    stream = srtp["streams"][0]
    bad = bytearray(h(stream["packets"][0]["protected"]))
    bad[20] ^= 1
    with _session(srtp, stream, Direction.SPECIFIC) as rx, pytest.raises(LibSrtpStatusError):
        rx.unprotect(bytes(bad))


def _rtp_header_length(packet: bytes) -> int:
    n = 12 + 4 * (packet[0] & 0x0F)
    if packet[0] & 0x10:
        n += 4 + 4 * struct.unpack_from("!H", packet, n + 2)[0]
    return n


def _aes_ctr(key: bytes, iv: int, data: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.CTR(iv.to_bytes(16, "big"))).encryptor()
    return enc.update(data) + enc.finalize()


def test_session_keys_reproduce_every_packet(srtp: Json) -> None:
    """RFC 3711 3.1, 3.4, 4.1.1, 4.2 spelt out here, from the recorded session keys."""
    by_mki = {k["mki"]: k["session_keys"] for k in srtp["master_keys"]}
    for stream in srtp["streams"]:
        tag, ssrc = stream["auth_tag_length"], stream["ssrc"]
        for p in stream["packets"]:
            plain, mki = h(p["plaintext"]), h(p["mki"])
            if stream["kind"] == "srtp":
                keys = by_mki[p["mki"]]["srtp"]
                index, n = p["index"], _rtp_header_length(plain)
                iv = (int(keys["salt"], 16) << 16) ^ (ssrc << 64) ^ (index << 16)
                authenticated = plain[:n] + _aes_ctr(h(keys["encryption_key"]), iv, plain[n:])
                mac_input = authenticated + struct.pack("!I", p["roc"])
            else:
                keys = by_mki[p["mki"]]["srtcp"]
                index = p["srtcp_index"]
                iv = (int(keys["salt"], 16) << 16) ^ (ssrc << 64) ^ (index << 16)
                authenticated = (
                    plain[:8]
                    + _aes_ctr(h(keys["encryption_key"]), iv, plain[8:])
                    + struct.pack("!I", 0x80000000 | index)
                )
                mac_input = authenticated
            mac = hmac.new(h(keys["authentication_key"]), mac_input, hashlib.sha1).digest()
            assert authenticated + mki + mac[:tag] == h(p["protected"])


# --------------------------------------------------------------------------- MIKEY


def _mikey_prf(inkey: bytes, label: bytes, n: int) -> bytes:
    """RFC 3830 4.1.2: XOR over 256-bit slices of P(s, label, m) (HMAC-SHA-1 P function)."""
    m = -(-n // 20)
    out = bytes(20 * m)
    for i in range(0, len(inkey), 32):
        s, a, p = inkey[i : i + 32], label, b""
        for _ in range(m):
            a = hmac.new(s, a, hashlib.sha1).digest()
            p += hmac.new(s, a + label, hashlib.sha1).digest()
        out = bytes(x ^ y for x, y in zip(out, p, strict=True))
    return out[:n]


def _psk_key(kek: bytes, constant: int, csb_id: int, rand: bytes, n: int) -> bytes:
    """RFC 3830 4.1.4: PRF(KEK, constant || 0xFF || CSB ID || RAND)."""
    return _mikey_prf(kek, struct.pack("!IBI", constant, 0xFF, csb_id) + rand, n)


def _parse_key_data(chain: bytes) -> list[Json]:
    """Key data sub-payloads (RFC 3830 6.13) of a decrypted KEMAC, read by hand."""
    keys, at, nxt = [], 0, 20
    while nxt == 20:
        nxt, type_kv, n = struct.unpack_from("!BBH", chain, at)
        at += 4
        key: Json = {
            "type": type_kv >> 4,
            "tek": chain[at : at + n].hex(),
            "salt": None,
            "mki": None,
        }
        at += n
        if type_kv >> 4 in (1, 3):
            (n,) = struct.unpack_from("!H", chain, at)
            key["salt"] = chain[at + 2 : at + 2 + n].hex()
            at += 2 + n
        if type_kv & 0x0F == 1:
            n = chain[at]
            key["mki"] = chain[at + 1 : at + 1 + n].hex()
            at += 1 + n
        keys.append(key)
    assert nxt == 0 and at == len(chain)
    return keys


def test_mikey_file_covers_the_required_cases(mikey: Json) -> None:
    cases = mikey["cases"]
    inputs = [c["inputs"] for c in cases]
    assert {i["encr_alg"] for i in inputs} == {"NULL", "AES-CM-128", "AES-KW-128"}
    assert {i["mac_alg"] for i in inputs} == {"HMAC-SHA-1-160"}
    assert {len(i["keys"]) for i in inputs} >= {1, 2, 3}
    assert {i["fetch"]["form"] for i in inputs} == {"time", "srtp_index"}
    assert {i["lifetime"] is None for i in inputs} == {True, False}
    assert {i["timestamp"]["type"] for i in inputs} == {"COUNTER", "NTP-UTC"}
    assert len({c["id"] for c in cases}) == len(cases)


def test_mikey_messages_verify_with_the_recorded_kek(mikey: Json) -> None:
    for case in mikey["cases"]:
        i, kek = case["inputs"], h(case["kek"])
        mode = ReplayMode.COUNTER if case["replay"]["mode"] == "counter" else ReplayMode.TIMESTAMP
        verified = parse_and_verify(h(case["message"]), kek, ReplayState(mode), i["now"])
        d = verified.delivery
        assert d.csb_id == i["csb_id"] and d.rand == h(i["rand"]) and d.v_flag == i["v_flag"]
        assert d.timestamp.value_bytes() == h(i["timestamp"]["value"])
        assert [(c.policy_no, c.ssrc, c.roc) for c in d.cs_map] == [
            (c["policy_no"], c["ssrc"], c["roc"]) for c in i["cs_map"]
        ]
        got = [
            {
                "tek": k.tek.hex(),
                "salt": k.salt.hex() if k.salt else None,
                "mki": k.mki.hex() if k.mki else None,
            }
            for k in d.keys
        ]
        assert got == [{f: k[f] for f in ("tek", "salt", "mki")} for k in i["keys"]]
        assert d.lifetime == i["lifetime"]
        if i["fetch"]["form"] == "time":
            assert d.fetch == FetchAtTime(int(i["fetch"]["ntp"], 16))
            assert (int(i["fetch"]["ntp"], 16) >> 32) - 2_208_988_800 == i["fetch"]["unix_time"]
        else:
            assert d.fetch == FetchAtSrtpIndex(i["fetch"]["index"])
            assert i["fetch"]["index"] == (i["fetch"]["roc"] << 16) + i["fetch"]["seq"]
        assert d.id_i is not None and d.id_i.data.decode() == i["id_i"]["data"]
        assert d.id_r is not None and d.id_r.data.decode() == i["id_r"]["data"]
        assert [(p.policy_no, p.encr_alg, p.auth_tag_len, p.kdr) for p in d.policies] == [
            (p["policy_no"], p["encr_alg"], p["auth_tag_len"], p["key_derivation_rate"])
            for p in i["policies"]
        ]
        assert {c["policy_no"] for c in i["cs_map"]} <= {p["policy_no"] for p in i["policies"]}
        assert verify_verification(h(case["verification"]["message"]), d, kek).csb_id == d.csb_id
        with pytest.raises(MikeyAuthError):  # the check can fail: another KEK
            parse_and_verify(h(case["message"]), bytes(16), ReplayState(mode), i["now"])


def test_mikey_keys_and_macs_recomputed_independently(mikey: Json) -> None:
    for case in mikey["cases"]:
        i, kek, msg = case["inputs"], h(case["kek"]), h(case["message"])
        csb, rand, d = i["csb_id"], h(i["rand"]), case["derived"]
        auth_key = _psk_key(kek, 0x2D22AC75, csb, rand, 20)
        assert auth_key.hex() == d["auth_key"]
        assert hmac.new(auth_key, msg[:-20], hashlib.sha1).digest() == msg[-20:] == h(d["mac"])
        # Verification (RFC 3830 5.2): MAC over the message then IDi || IDr || T.
        suffix = (
            i["id_i"]["data"].encode() + i["id_r"]["data"].encode() + h(i["timestamp"]["value"])
        )
        assert suffix.hex() == case["verification"]["mac_suffix"]
        ver = h(case["verification"]["message"])
        assert hmac.new(auth_key, ver[:-20] + suffix, hashlib.sha1).digest() == ver[-20:]
        encr_data = h(d["encr_data"])
        if i["encr_alg"] == "NULL":
            plain = encr_data
            assert d["encr_key"] is None
        else:
            encr_key = _psk_key(kek, 0x150533E1, csb, rand, 16)
            assert encr_key.hex() == d["encr_key"]
            if i["encr_alg"] == "AES-CM-128":
                salt = _psk_key(kek, 0x29B88916, csb, rand, 14)
                assert salt.hex() == d["salt_key"]
                # RFC 3830 4.2.3: IV = (S XOR (0x0000 || CSB ID || T)) || 0x0000
                t = int(i["timestamp"]["value"], 16)
                iv = (int.from_bytes(salt, "big") ^ (csb << 64) ^ t) << 16
                assert iv.to_bytes(16, "big").hex() == d["aes_cm_iv"]
                plain = _aes_ctr(encr_key, iv, encr_data)
            else:
                plain = aes_key_unwrap(encr_key, encr_data)
        assert plain.hex() == d["key_data_plaintext"]
        keys = _parse_key_data(plain)
        assert [{f: k[f] for f in ("tek", "salt", "mki")} for k in keys] == [
            {f: k[f] for f in ("tek", "salt", "mki")} for k in i["keys"]
        ]
        assert [k["type"] for k in keys] == [3 if k["salt"] else 2 for k in i["keys"]]


def test_mikey_cases_link_to_digest_and_srtp_files(mikey: Json, digest: Json, srtp: Json) -> None:
    exchanges = {e["id"]: e for e in digest["exchanges"]}
    linked = 0
    for case in mikey["cases"]:
        src = case["kek_source"]
        if src is not None:
            assert src["file"] == "digest_aka.json"
            assert case["kek"] == exchanges[src["exchange"]]["kek"][src["kek"]]
            linked += 1
        if case["inputs"]["keys_source"] is not None:
            keys = [
                {"tek": k["master_key"], "salt": k["master_salt"], "mki": k["mki"]}
                for k in srtp["master_keys"]
            ]
            assert [
                {f: k[f] for f in ("tek", "salt", "mki")} for k in case["inputs"]["keys"]
            ] == keys
            streams = {s["ssrc"]: s for s in srtp["streams"] if s["kind"] == "srtp"}
            policies = {p["policy_no"]: p for p in case["inputs"]["policies"]}
            assert len(case["inputs"]["cs_map"]) == len(streams)
            for cs in case["inputs"]["cs_map"]:
                stream = streams[cs["ssrc"]]
                assert stream["initial_roc"] == cs["roc"]
                assert policies[cs["policy_no"]]["auth_tag_len"] == stream["auth_tag_length"]
            linked += 1
    assert linked >= 3


def _all(fields: Fields, name: str) -> list[str]:
    return [v for k, v in fields if k == name]


def _one(fields: Fields, name: str) -> str:
    values = _all(fields, name)
    assert len(values) == 1, (name, values)
    return values[0]


def _colon(data: bytes) -> str:
    return ":".join(f"{b:02x}" for b in data)


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
def test_tshark_decodes_every_message_as_recorded(out_dir: Path, mikey: Json) -> None:
    assert TSHARK is not None
    text = subprocess.run(
        [
            TSHARK,
            "-r",
            str(out_dir / "mikey.pcap"),
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
            "-T",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "Malformed" not in text
    frames = json.loads(text, object_pairs_hook=lambda pairs: pairs)
    assert len(frames) == 2 * len(mikey["cases"])
    decoded: list[Fields] = []
    for frame in frames:
        fields: Fields = []
        flatten(frame, fields)
        assert "_ws.malformed" not in {k for k, _ in fields}
        assert all(int(s) < WARN_SEVERITY for s in _all(fields, "_ws.expert.severity")), fields
        assert _one(fields, "ip.src") == _one(fields, "ip.dst") == "127.0.0.1"
        assert _one(fields, "udp.checksum.status") == "1"
        assert "2269" in (_one(fields, "udp.srcport"), _one(fields, "udp.dstport"))
        decoded.append(fields)
    for case in mikey["cases"]:
        i = case["inputs"]
        first, second = case["pcap_frames"]
        msg_f, ver_f = decoded[first - 1], decoded[second - 1]
        assert case["id"] in _one(msg_f, "frame.comment")
        assert _one(msg_f, "udp.payload") == _colon(h(case["message"]))
        assert _one(ver_f, "udp.payload") == _colon(h(case["verification"]["message"]))
        for fields, data_type in ((msg_f, "0"), (ver_f, "1")):
            assert _one(fields, "mikey.type") == data_type
            assert int(_one(fields, "mikey.csb_id"), 16) == i["csb_id"]
            assert [int(v, 16) for v in _all(fields, "mikey.srtp_id.ssrc")] == [
                c["ssrc"] for c in i["cs_map"]
            ]
            assert [int(v, 16) for v in _all(fields, "mikey.srtp_id.roc")] == [
                c["roc"] for c in i["cs_map"]
            ]
        assert _one(msg_f, "mikey.v.set") == "1"
        assert _one(msg_f, "mikey.rand.data") == _colon(h(i["rand"]))
        assert _one(msg_f, "mikey.ext.type") == "255"
        ext = h(case["derived"]["tek_fetch_extension_data"])
        assert _one(msg_f, "mikey.ext.data") == _colon(ext)
        assert _one(msg_f, "mikey.kemac.mac_alg") == "1"
        assert _one(msg_f, "mikey.kemac.mac") == _colon(h(case["derived"]["mac"]))
        encr = {"NULL": "0", "AES-CM-128": "1", "AES-KW-128": "2"}[i["encr_alg"]]
        assert _one(msg_f, "mikey.kemac.encr_alg") == encr
        assert _all(msg_f, "mikey.sp.auth_tag_len") == [
            str(p["auth_tag_len"]) for p in i["policies"]
        ]
        assert _one(ver_f, "mikey.v.ver_data") == _colon(h(case["verification"]["message"])[-20:])
        first_key = i["keys"][0]
        if encr == "0":  # Wireshark 4.0 shows the first Key data sub-payload in clear
            assert _all(msg_f, "mikey.key.data")[0] == _colon(h(first_key["tek"]))
            assert _all(msg_f, "mikey.key.kv.spi")[0] == _colon(h(first_key["mki"]))
        else:
            assert _one(msg_f, "mikey.kemac.key_data") == _colon(h(case["derived"]["encr_data"]))


# --------------------------------------------------------------------------- Digest AKA


def _aes(k: bytes, block: bytes) -> bytes:
    enc = Cipher(algorithms.AES(k), modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


def _x(a: bytes, b: bytes) -> bytes:
    return bytes(p ^ q for p, q in zip(a, b, strict=True))


def _rot(b: bytes, octets: int) -> bytes:
    """Cyclic left rotation by whole octets (TS 35.206 r1..r5 are multiples of 8 bits)."""
    return b[octets:] + b[:octets]


def milenage(k: bytes, opc: bytes, rand: bytes, sqn: bytes, amf: bytes) -> dict[str, bytes]:
    """TS 35.206 clause 4.1, written out independently (rotations by whole octets)."""
    temp = _aes(k, _x(rand, opc))
    in1 = sqn + amf + sqn + amf
    out1 = _x(_aes(k, _x(temp, _rot(_x(in1, opc), 8))), opc)  # r1 = 64 bits, c1 = 0

    def out(r: int, c: int) -> bytes:
        return _x(_aes(k, _x(_rot(_x(temp, opc), r), bytes(15) + bytes([c]))), opc)

    # r2..r5 = 0, 32, 64, 96 bits; c2..c5 have bit 0, 1, 2, 3 of the last octet set.
    out2, out3, out4, out5 = out(0, 1), out(4, 2), out(8, 4), out(12, 8)
    return {
        "f1": out1[:8],
        "f1*": out1[8:],
        "f2": out2[8:],
        "f5": out2[:6],
        "f3": out3,
        "f4": out4,
        "f5*": out5[:6],
    }


def opc_of(k: bytes, op: bytes) -> bytes:
    return _x(op, _aes(k, op))


def test_local_milenage_matches_every_published_set() -> None:
    """The oracle itself first: TS 35.208 4.3.1-4.3.6 (and the supplementary sets)."""
    data = json.loads((VECTORS / "ts35208.json").read_text())
    sets = data["test_sets"] + data["supplementary_test_sets"]
    assert len(sets) >= 6
    for s in sets:
        k, op = h(s["K"]), h(s["OP"])
        assert opc_of(k, op) == h(s["OPc"])
        got = milenage(k, h(s["OPc"]), h(s["RAND"]), h(s["SQN"]), h(s["AMF"]))
        for name, value in got.items():
            assert value == h(s[name]), (s["set"], name)


def test_milenage_sets_match_published_and_local_oracle(digest: Json) -> None:
    published = next(
        s for s in json.loads((VECTORS / "ts35208.json").read_text())["test_sets"] if s["set"] == 1
    )
    cases = {c["id"]: c for c in digest["milenage"]}
    ts = cases["ts35208-set1"]
    for name in ("K", "OP", "OPc", "RAND", "SQN", "AMF"):
        assert ts[name] == published[name], name
    for name, value in ts["outputs"].items():
        assert value == published[name], name
    assert len(cases) >= 2
    for c in cases.values():
        assert opc_of(h(c["K"]), h(c["OP"])).hex() == c["OPc"]
        got = milenage(h(c["K"]), h(c["OPc"]), h(c["RAND"]), h(c["SQN"]), h(c["AMF"]))
        assert {k: v.hex() for k, v in got.items()} == c["outputs"], c["id"]


def _params(header: str) -> dict[str, str]:
    """Auth-params of a Digest header, by a plain regular expression (no shared parser)."""
    assert header.startswith("Digest ")
    pairs = re.findall(r'([a-z]+)=("([^"]*)"|[^\s,]+)', header[7:])
    result = {name: quoted if raw.startswith('"') else raw for name, raw, quoted in pairs}
    assert len(result) == len(pairs)
    return result


def _md5(text: bytes) -> str:
    return hashlib.md5(text).hexdigest()


def test_digest_aka_exchanges_recompute(digest: Json) -> None:
    published = next(
        s for s in json.loads((VECTORS / "ts35208.json").read_text())["test_sets"] if s["set"] == 1
    )
    outcomes = []
    for ex in digest["exchanges"]:
        sub, req = ex["subscriber"], ex["request"]
        k, opc = h(sub["K"]), h(sub["OPc"])
        assert opc_of(k, h(sub["OP"])) == opc
        for rnd in ex["rounds"]:
            v = rnd["vector"]
            rand, sqn, amf = h(v["RAND"]), h(v["SQN"]), h(v["AMF"])
            f = milenage(k, opc, rand, sqn, amf)
            assert h(v["AUTN"]) == _x(sqn, f["f5"]) + amf + f["f1"]
            assert (h(v["XRES"]), h(v["CK"]), h(v["IK"])) == (f["f2"], f["f3"], f["f4"])
            challenge = _params(rnd["www_authenticate"])
            assert challenge["algorithm"] == "AKAv1-MD5" and challenge["qop"] == "auth"
            assert challenge["realm"] == req["realm"] and challenge["opaque"] == rnd["opaque"]
            nonce = base64.b64decode(challenge["nonce"], validate=True)
            assert nonce[:16] == rand and nonce[16:32] == h(v["AUTN"])
            assert nonce[32:] == h(rnd["nonce"]["server_data"])
            assert int.from_bytes(nonce[32:], "big") == rnd["now"]
            auth = _params(rnd["authorization"])
            assert auth["username"] == sub["username"] and auth["uri"] == req["uri"]
            assert auth["nonce"] == challenge["nonce"] and auth["opaque"] == challenge["opaque"]
            assert auth["qop"] == "auth" and auth["nc"] == "00000001"
            if rnd["outcome"] == "response":
                assert int(v["SQN"], 16) > rnd["usim_sqn_ms"]
                password = h(rnd["ue"]["RES"])
                assert password == f["f2"] and "auts" not in auth
                assert rnd["ue"]["usim_sqn_ms_after"] == int(v["SQN"], 16)
            else:
                assert int(v["SQN"], 16) <= rnd["usim_sqn_ms"]
                password = b""  # RFC 3310 3.4: a resynchronisation uses an empty password
                auts = base64.b64decode(auth["auts"], validate=True)
                sqn_ms = rnd["usim_sqn_ms"].to_bytes(6, "big")
                f_ms = milenage(k, opc, rand, sqn_ms, b"\x00\x00")  # TS 33.102 6.3.3
                assert auts == _x(sqn_ms, f["f5*"]) + f_ms["f1*"] == h(rnd["auts"]["AUTS"])
                assert rnd["auts"]["auc_recovered_sqn_ms"] == rnd["usim_sqn_ms"]
            ha1 = _md5(f"{sub['username']}:{req['realm']}:".encode() + password)
            ha2 = _md5(f"{req['method']}:{req['uri']}".encode())
            expected = _md5(
                f"{ha1}:{challenge['nonce']}:{auth['nc']}:{auth['cnonce']}:auth:{ha2}".encode()
            )
            assert auth["response"] == expected == rnd["digest"]["response"]
            assert (rnd["digest"]["ha1"], rnd["digest"]["ha2"]) == (ha1, ha2)
            outcomes.append(rnd["outcome"])
        final = ex["rounds"][-1]["ue"]
        ck, ik = h(final["CK"]), h(final["IK"])
        kek = ex["kek"]
        assert kek["ck"] == final["CK"]

        def lp(b: bytes) -> bytes:
            return struct.pack("!H", len(b)) + b

        message = lp(b"mbmssec-kek") + lp(kek["service_id"].encode()) + lp(kek["ue_id"].encode())
        assert kek["derived"] == hmac.new(ck + ik, message, hashlib.sha256).hexdigest()[:32]
        if ex["id"] == "ts35208-set1":  # RES, CK, IK as published for Test Set 1
            assert (final["RES"], final["CK"], final["IK"]) == (
                published["f2"],
                published["f3"],
                published["f4"],
            )
    assert "sync_failure" in outcomes and outcomes.count("response") == len(digest["exchanges"])

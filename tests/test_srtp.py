"""SRTP/SRTCP (RFC 3711) for the MBMS profile: vectors, index estimation, replay, MKI.

Expected values come from RFC 3711 Appendix B (tests/vectors/rfc3711.txt, parsed from the
published text), from the RFC's own rules worked by hand (index estimation table, packet
layout), or are relations between two runs (a tampered packet must fail, a batch must
equal the packet-by-packet result). Interoperability with libsrtp is in
test_srtp_interop.py, robustness against malformed input in test_srtp_fuzz.py.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mbmssec.errors import MbmssecError
from mbmssec.impl.protocols import _srtp_kdf, srtp
from mbmssec.impl.protocols.srtp import (
    AuthTag,
    KeyLabel,
    KeyLifetimeError,
    MasterKey,
    SrtpAuthError,
    SrtpConfigError,
    SrtpError,
    SrtpParseError,
    SrtpPolicy,
    SrtpReceiver,
    SrtpReplayError,
    SrtpSender,
    UnknownMkiError,
    aes_cm_keystream,
    derive_session_key,
    estimate_index,
    srtp_iv,
)

VECTOR_TEXT = (Path(__file__).parent / "vectors" / "rfc3711.txt").read_text(encoding="ascii")
HEX = r"([0-9A-F]+)"

SSRC = 0xDEADBEEF
KEY_A = MasterKey(b"\x00\x00\x00\x01", bytes(range(16)), bytes(range(100, 114)))
KEY_B = MasterKey(b"\x00\x00\x00\x02", bytes(range(16, 32)), bytes(range(200, 214)))
KEY_C = MasterKey(b"\x00\x00\x00\x03", bytes(range(32, 48)), bytes(range(50, 64)))


# --- helpers ----------------------------------------------------------------------------


def section(name: str) -> str:
    """The text of appendix section ``name`` (e.g. "B.2") up to the next section."""
    match = re.search(rf"^{re.escape(name)}\.  .*?(?=^B\.\d\.  |\Z)", VECTOR_TEXT, re.M | re.S)
    assert match is not None, name
    return match.group(0)


def field(text: str, label: str) -> bytes:
    match = re.search(rf"{re.escape(label)}:\s+{HEX}", text)
    assert match is not None, label
    return bytes.fromhex(match.group(1))


def rtp(
    seq: int,
    payload: bytes = b"\xab" * 160,
    ssrc: int = SSRC,
    csrcs: tuple[int, ...] = (),
    extension: bytes | None = None,
) -> bytes:
    """A plain RTP packet (RFC 3550 §5.1) with payload type 96."""
    b0 = 0x80 | len(csrcs) | (0x10 if extension is not None else 0)
    head = struct.pack("!BBHII", b0, 96, seq, 1000 + seq, ssrc)
    head += b"".join(struct.pack("!I", c) for c in csrcs)
    if extension is not None:
        assert len(extension) % 4 == 0
        head += struct.pack("!HH", 0xBEDE, len(extension) // 4) + extension
    return head + payload


def rtcp(n: int = 0, ssrc: int = SSRC) -> bytes:
    """An RTCP receiver report with one report block (RFC 3550 §6.4.2)."""
    block = struct.pack("!IIIIII", 0x11111111, n, 3, 4, 5, 6)
    return struct.pack("!BBHI", 0x81, 201, 7, ssrc) + block


def pair(
    policy: SrtpPolicy | None = None, keys: tuple[MasterKey, ...] = (KEY_A, KEY_B)
) -> tuple[SrtpSender, SrtpReceiver]:
    return SrtpSender(policy, keys), SrtpReceiver(policy, keys)


# --- RFC 3711 Appendix B ----------------------------------------------------------------


def test_vector_file_names_its_source() -> None:
    assert "RFC 3711" in VECTOR_TEXT and "rfc3711.txt" in VECTOR_TEXT
    assert "B.2.  AES-CM Test Vectors" in VECTOR_TEXT
    assert "B.3.  Key Derivation Test Vectors" in VECTOR_TEXT


def b2_rows() -> list[tuple[bytes, bytes]]:
    rows = re.findall(r"^\s+([0-9A-F]{32})\s+([0-9A-F]{32})\s*$", section("B.2"), re.M)
    assert len(rows) == 6
    return [(bytes.fromhex(c), bytes.fromhex(k)) for c, k in rows]


def test_b2_iv_is_the_published_offset() -> None:
    text = section("B.2")
    salt = field(text, "Session Salt")[:14]  # published "already shifted": k_s || 0000
    iv = srtp_iv(
        salt,
        int.from_bytes(field(text, "SSRC"), "big"),
        (int.from_bytes(field(text, "Rollover Counter"), "big") << 16)
        | int.from_bytes(field(text, "Sequence Number"), "big"),
    )
    assert iv.to_bytes(16, "big") == field(text, "Offset")


def test_b2_aes_cm_keystream_whole_segment() -> None:
    text = section("B.2")
    match = re.search(r"segment length: (\d+) octets", text)
    assert match is not None
    length = int(match.group(1))
    stream = aes_cm_keystream(field(text, "Session Key"), field(text, "Offset"), length)
    assert len(stream) == length == 65282 * 16
    offset = int.from_bytes(field(text, "Offset"), "big")
    for counter, block in b2_rows():
        j = int.from_bytes(counter, "big") - offset
        assert stream[16 * j : 16 * j + 16] == block


@pytest.mark.parametrize(
    "lengths",
    [[48], [65282 * 16], [65282 * 16, 48, 47, 1, 0]],
    ids=["short-single", "long-single", "numpy-batch"],
)
def test_b2_keystream_through_the_packet_path(lengths: list[int]) -> None:
    """The keystream used for packets reproduces B.2, on each of its code paths
    (one short payload, one long payload, a batch of several)."""
    text = section("B.2")
    key, salt = field(text, "Session Key"), field(text, "Session Salt")[:14]
    keys = _srtp_kdf.SessionKeys(
        encryption_key=key,
        salt=salt,
        auth_key=bytes(20),
        salt_iv=int.from_bytes(salt, "big") << 16,
        ecb=Cipher(algorithms.AES(key), modes.ECB()).encryptor(),
        mac=hmac.HMAC(bytes(20), hashes.SHA1()),
    )
    iv = srtp_iv(salt, 0, 0)
    out = _srtp_kdf.xor_keystream_batch([(keys, iv, bytes(n)) for n in lengths])
    rows = b2_rows()
    first = b"".join(block for _, block in rows[:3])
    last = b"".join(block for _, block in rows[3:])
    for n, stream in zip(lengths, out, strict=True):
        assert len(stream) == n
        assert stream[:48] == first[:n]
        if n == 65282 * 16:
            assert stream[-48:] == last


def test_b3_key_derivation() -> None:
    text = section("B.3")
    master_key, master_salt = field(text, "master key"), field(text, "master salt")
    cipher_key = field(text, "cipher key")
    cipher_salt = field(text, "cipher salt")
    auth_rows = re.findall(r"^   ([0-9A-F]{28,32})\s+[0-9A-F]{32}\s*$", text, re.M)
    auth_key = bytes.fromhex("".join(auth_rows))
    assert len(auth_key) == 94  # "an authentication function which requires a 94-octet..."
    assert derive_session_key(master_key, master_salt, KeyLabel.SRTP_ENCRYPTION, 0, 0, 16) == (
        cipher_key
    )
    assert derive_session_key(master_key, master_salt, KeyLabel.SRTP_SALT, 0, 0, 14) == (
        cipher_salt
    )
    assert derive_session_key(master_key, master_salt, KeyLabel.SRTP_AUTHENTICATION, 0, 0, 94) == (
        auth_key
    )
    # The context's own derivation (HMAC-SHA1 takes the first 160 bits of the auth key).
    keys = _srtp_kdf.derive_session_keys(master_key, master_salt, False, 0, 0)
    assert (keys.encryption_key, keys.salt, keys.auth_key) == (
        cipher_key,
        cipher_salt,
        auth_key[:20],
    )


def test_b3_inputs_show_the_prf_block() -> None:
    """The published AES-CM input blocks are x*2^16 for x = label||r XOR salt (§4.3.1)."""
    text = section("B.3")
    master_salt = int.from_bytes(field(text, "master salt"), "big")
    inputs = re.findall(r"x\*2\^16:\s+([0-9A-F]{32})", text)
    for label, block in zip((0x00, 0x02, 0x01), inputs, strict=True):
        assert ((master_salt ^ (label << 48)) << 16).to_bytes(16, "big").hex().upper() == block


# --- index estimation (RFC 3711 §3.3.1, Appendix A) ----------------------------------------

# (ROC, s_l, SEQ) -> v, worked by hand from the Appendix A pseudo-code.
ESTIMATES = [
    (5, 100, 200, 5),  # plain advance
    (5, 200, 100, 5),  # slightly late
    (5, 65500, 10, 6),  # SEQ wrapped: s_l - 32768 > SEQ
    (5, 10, 65500, 4),  # late packet from before the wrap: SEQ - s_l > 32768
    (5, 0, 32768, 5),  # SEQ - s_l == 32768 is not > 32768
    (5, 0, 32769, 4),
    (5, 32768, 0, 5),  # s_l - 32768 == 0 is not > 0
    (5, 32769, 0, 6),
    (5, 32767, 65535, 5),  # 32768 is not > 32768
    (0, 65535, 0, 1),
]


@pytest.mark.parametrize(("roc", "s_l", "seq", "v"), ESTIMATES)
def test_estimate_index(roc: int, s_l: int, seq: int, v: int) -> None:
    assert estimate_index(roc, s_l, seq) == v * 65536 + seq


def test_estimate_before_stream_start_is_negative() -> None:
    assert estimate_index(0, 10, 65500) < 0


def test_roc_rollover_sender_and_receiver() -> None:
    tx, rx = pair()
    seqs = [65533, 65534, 65535, 0, 1, 2]
    protected = [tx.protect(rtp(s)) for s in seqs]
    assert tx.roc(SSRC) == 1
    assert tx.highest_index(SSRC) == 65536 + 2
    assert [rx.unprotect(p) for p in protected] == [rtp(s) for s in seqs]
    assert rx.roc(SSRC) == 1
    # The ROC enters the IV and the MAC (RFC 3711 §4.1.1, §4.2): the same SEQ one ROC
    # later is protected differently.
    tx2 = SrtpSender(None, (KEY_A, KEY_B))
    tx2.set_roc(SSRC, 1)
    assert tx2.protect(rtp(65533)) != protected[0]


def test_late_packet_from_before_the_wrap_is_accepted_once() -> None:
    tx, rx = pair()
    p65534, p65535, p0, p1 = (tx.protect(rtp(s)) for s in (65534, 65535, 0, 1))
    assert rx.unprotect(p65535) == rtp(65535)
    assert rx.unprotect(p0) == rtp(0)
    assert rx.unprotect(p1) == rtp(1)
    assert rx.unprotect(p65534) == rtp(65534)  # index ROC 0 / 65534, behind the wrap
    assert rx.roc(SSRC) == 1
    with pytest.raises(SrtpReplayError):
        rx.unprotect(p65534)
    with pytest.raises(SrtpReplayError):
        rx.unprotect(p0)


def test_set_roc_starts_a_stream_mid_session() -> None:
    tx, rx = pair()
    tx.set_roc(SSRC, 7)
    protected = tx.protect(rtp(40000))
    assert tx.highest_index(SSRC) == 7 * 65536 + 40000
    with pytest.raises(SrtpAuthError):  # receiver assumes ROC 0
        rx.unprotect(protected)
    rx.set_roc(SSRC, 7)
    assert rx.unprotect(protected) == rtp(40000)
    assert rx.roc(SSRC) == 7


def test_packet_before_the_stream_start_is_refused() -> None:
    tx, rx = pair()
    first = tx.protect(rtp(10))
    assert rx.unprotect(first) == rtp(10)
    with pytest.raises(SrtpReplayError):
        rx.unprotect(first[:2] + struct.pack("!H", 65500) + first[4:])


# --- replay window (RFC 3711 §3.3.2) -----------------------------------------------------


def protect_seqs(tx: SrtpSender, seqs: list[int]) -> dict[int, bytes]:
    return {s: tx.protect(rtp(s)) for s in sorted(seqs)}


def test_replay_window_default_64() -> None:
    tx, rx = pair()
    packets = protect_seqs(tx, [35, 36, 37, 100])
    rx.unprotect(packets[100])
    with pytest.raises(SrtpReplayError) as dup:
        rx.unprotect(packets[100])
    assert dup.value.reason == "already received" and dup.value.index == 100
    with pytest.raises(SrtpReplayError) as old:
        rx.unprotect(packets[36])  # 100 - 36 = 64: outside a 64-wide window
    assert old.value.reason == "older than the replay window"
    assert rx.unprotect(packets[37]) == rtp(37)  # 100 - 37 = 63: inside
    with pytest.raises(SrtpReplayError):
        rx.unprotect(packets[37])


def test_replay_window_larger() -> None:
    policy = SrtpPolicy(replay_window=1024)
    tx, rx = pair(policy)
    packets = protect_seqs(tx, [5, 1000])
    rx.unprotect(packets[1000])
    assert rx.unprotect(packets[5]) == rtp(5)  # 995 behind: inside 1024
    with pytest.raises(SrtpReplayError):
        rx.unprotect(packets[5])


def test_replay_window_remembers_after_sliding() -> None:
    tx, rx = pair()
    packets = protect_seqs(tx, list(range(1, 11)))
    for s in (1, 3, 5, 10):
        rx.unprotect(packets[s])
    for s in (1, 3, 5, 10):
        with pytest.raises(SrtpReplayError):
            rx.unprotect(packets[s])
    for s in (2, 4, 6, 7, 8, 9):
        assert rx.unprotect(packets[s]) == rtp(s)


def test_sender_refuses_to_reuse_an_index() -> None:
    tx, _ = pair()
    tx.protect(rtp(9))
    with pytest.raises(SrtpReplayError):
        tx.protect(rtp(9, payload=b"other"))
    repeat = SrtpSender(SrtpPolicy(allow_repeat_tx=True), (KEY_A,))
    assert repeat.protect(rtp(9)) == repeat.protect(rtp(9))


def test_srtcp_replay_window() -> None:
    tx, rx = pair()
    packets = [tx.protect_rtcp(rtcp(i)) for i in range(70)]
    rx.unprotect_rtcp(packets[69])
    with pytest.raises(SrtpReplayError):
        rx.unprotect_rtcp(packets[69])
    with pytest.raises(SrtpReplayError):
        rx.unprotect_rtcp(packets[5])  # 64 behind
    assert rx.unprotect_rtcp(packets[6]) == rtcp(6)
    assert rx.highest_srtcp_index(SSRC) == 69


# --- MKI: key switch, unknown MKI, key management ------------------------------------------


def test_key_switch_by_mki() -> None:
    tx, rx = SrtpSender(None, (KEY_A, KEY_B)), SrtpReceiver(None, (KEY_A, KEY_B))
    assert tx.current_mki == KEY_A.mki
    first = [tx.protect(rtp(s)) for s in range(3)]
    tx.switch_to(KEY_B.mki)
    second = [tx.protect(rtp(s)) for s in range(3, 6)]
    for p in first:
        assert p[-14:-10] == KEY_A.mki  # MKI sits between payload and tag (§3.1)
    for p in second:
        assert p[-14:-10] == KEY_B.mki
    assert [rx.unprotect(p) for p in first] == [rtp(s) for s in range(3)]
    assert rx.last_mki == KEY_A.mki
    assert [rx.unprotect(p) for p in second] == [rtp(s) for s in range(3, 6)]
    assert rx.last_mki == KEY_B.mki
    assert rx.usage(KEY_A.mki).srtp_packets == 3 and rx.usage(KEY_B.mki).srtp_packets == 3
    assert tx.usage(KEY_B.mki).srtp_packets == 3


def test_receiver_follows_keys_packet_by_packet_in_a_batch() -> None:
    tx, rx = pair()
    protected = []
    for s in range(20):
        tx.switch_to((KEY_A, KEY_B)[s % 2].mki)
        protected.append(tx.protect(rtp(s)))
    assert rx.unprotect_many(protected) == [rtp(s) for s in range(20)]


def test_unknown_mki() -> None:
    tx = SrtpSender(None, (KEY_C,))
    rx = SrtpReceiver(None, (KEY_A, KEY_B))
    packet = tx.protect(rtp(1))
    with pytest.raises(UnknownMkiError) as err:
        rx.unprotect(packet)
    assert err.value.mki == KEY_C.mki
    rx.add_key(KEY_C)  # the next MTK arrives: now the same packet is accepted
    assert rx.unprotect(packet) == rtp(1)
    rtcp_packet = tx.protect_rtcp(rtcp())
    rx.remove_key(KEY_C.mki)
    with pytest.raises(UnknownMkiError) as err2:
        rx.unprotect_rtcp(rtcp_packet)
    assert err2.value.mki == KEY_C.mki


def test_removed_key_is_refused_and_others_still_work() -> None:
    tx, rx = pair()
    old = tx.protect(rtp(1))
    tx.switch_to(KEY_B.mki)
    new = tx.protect(rtp(2))
    rx.remove_key(KEY_A.mki)
    assert rx.mkis == (KEY_B.mki,)
    with pytest.raises(UnknownMkiError):
        rx.unprotect(old)
    assert rx.unprotect(new) == rtp(2)


def test_sender_key_management() -> None:
    tx = SrtpSender()
    with pytest.raises(SrtpConfigError):
        tx.protect(rtp(1))
    tx.add_key(KEY_A)
    assert tx.current_mki == KEY_A.mki
    tx.add_key(KEY_B)
    assert tx.current_mki == KEY_A.mki
    with pytest.raises(UnknownMkiError):
        tx.switch_to(KEY_C.mki)
    with pytest.raises(SrtpConfigError):
        tx.add_key(KEY_A)
    tx.remove_key(KEY_A.mki)
    assert tx.current_mki is None
    with pytest.raises(SrtpConfigError):
        tx.protect(rtp(1))
    tx.switch_to(KEY_B.mki)
    assert tx.protect(rtp(1))[-14:-10] == KEY_B.mki
    assert SrtpSender(None, (KEY_A, KEY_B), current_mki=KEY_B.mki).current_mki == KEY_B.mki


@pytest.mark.parametrize("mki_length", [1, 2, 3, 4, 6])
def test_mki_lengths(mki_length: int) -> None:
    policy = SrtpPolicy(mki_length=mki_length)
    key = MasterKey(bytes(range(1, mki_length + 1)), KEY_A.key, KEY_A.salt)
    tx, rx = pair(policy, (key,))
    plain = rtp(77)
    protected = tx.protect(plain)
    assert len(protected) == len(plain) + mki_length + 10
    assert protected[-10 - mki_length : -10] == key.mki
    assert rx.unprotect(protected) == plain
    srtcp = tx.protect_rtcp(rtcp())
    assert len(srtcp) == len(rtcp()) + 4 + mki_length + 10
    assert srtcp[-10 - mki_length : -10] == key.mki
    assert rx.unprotect_rtcp(srtcp) == rtcp()
    with pytest.raises(SrtpConfigError):  # an MKI of another length than the policy's
        SrtpReceiver(policy, (MasterKey(bytes(mki_length + 1), KEY_A.key, KEY_A.salt),))


def test_mki_optional_mode() -> None:
    policy = SrtpPolicy(mki_length=0)
    key = MasterKey(b"", KEY_A.key, KEY_A.salt)
    tx, rx = pair(policy, (key,))
    plain = rtp(5)
    protected = tx.protect(plain)
    assert len(protected) == len(plain) + 10
    assert rx.unprotect(protected) == plain
    assert rx.unprotect_rtcp(tx.protect_rtcp(rtcp())) == rtcp()
    with pytest.raises(SrtpConfigError):
        rx.add_key(MasterKey(b"", KEY_B.key, KEY_B.salt))
    with pytest.raises(UnknownMkiError):
        SrtpReceiver(policy).unprotect(protected)
    # The same key with and without an MKI gives the same authenticated portion: the
    # MKI is not authenticated (RFC 3711 §3.1, Figure 1).
    with_mki = SrtpSender(SrtpPolicy(mki_length=4), (KEY_A,)).protect(plain)
    assert with_mki[:-14] == protected[:-10] and with_mki[-10:] == protected[-10:]


def test_default_policy_is_the_mbms_profile() -> None:
    policy = SrtpPolicy()
    assert policy.uses_mki and policy.mki_length > 0
    assert policy.rtp_auth_tag is AuthTag.HMAC_SHA1_80
    assert policy.replay_window == 64 and policy.key_derivation_rate == 0


# --- authentication -------------------------------------------------------------------------


@pytest.mark.parametrize("tag", list(AuthTag))
def test_both_tag_lengths(tag: AuthTag) -> None:
    policy = SrtpPolicy(rtp_auth_tag=tag, rtcp_auth_tag=tag)
    tx, rx = pair(policy)
    plain = rtp(1)
    protected = tx.protect(plain)
    assert len(protected) == len(plain) + 4 + int(tag)
    assert rx.unprotect(protected) == plain
    srtcp = tx.protect_rtcp(rtcp())
    assert len(srtcp) == len(rtcp()) + 4 + 4 + int(tag)
    assert rx.unprotect_rtcp(srtcp) == rtcp()
    # A receiver expecting the other tag length rejects the packet.
    other = AuthTag.HMAC_SHA1_32 if tag is AuthTag.HMAC_SHA1_80 else AuthTag.HMAC_SHA1_80
    wrong = SrtpReceiver(SrtpPolicy(rtp_auth_tag=other), (KEY_A, KEY_B))
    with pytest.raises(SrtpError):
        wrong.unprotect(protected)


def test_tag_is_truncated_hmac_sha1_over_packet_and_roc() -> None:
    """RFC 3711 §4.2: tag = first n_tag bits of HMAC-SHA1(k_a, authenticated portion || ROC)."""
    tx = SrtpSender(SrtpPolicy(rtp_auth_tag=AuthTag.HMAC_SHA1_32), (KEY_A,))
    tx.set_roc(SSRC, 3)
    protected = tx.protect(rtp(9))
    k_a = derive_session_key(KEY_A.key, KEY_A.salt, KeyLabel.SRTP_AUTHENTICATION, 0, 0, 20)
    mac = hmac.HMAC(k_a, hashes.SHA1())
    mac.update(protected[:-8] + (3).to_bytes(4, "big"))
    assert protected[-4:] == mac.finalize()[:4]


@pytest.mark.parametrize("tag", list(AuthTag))
def test_every_single_bit_flip_is_rejected(tag: AuthTag) -> None:
    policy = SrtpPolicy(rtp_auth_tag=tag, rtcp_auth_tag=tag)
    tx, rx = pair(policy)
    plain = rtp(1000, payload=b"\x00" * 40, csrcs=(1, 2), extension=b"\x01\x02\x03\x04")
    protected = tx.protect(plain)
    for bit in range(len(protected) * 8):
        flipped = bytearray(protected)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(SrtpError) as err:
            rx.unprotect(bytes(flipped))
        byte = bit // 8
        if 16 + 8 + 4 <= byte < len(protected) - int(tag) - 4 or byte >= len(protected) - int(tag):
            assert type(err.value) is SrtpAuthError  # payload or tag
    assert rx.unprotect(protected) == plain  # no failure above touched the state
    control = tx.protect_rtcp(rtcp())
    for bit in range(len(control) * 8):
        flipped = bytearray(control)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(SrtpError):
            rx.unprotect_rtcp(bytes(flipped))
    assert rx.unprotect_rtcp(control) == rtcp()


def test_truncated_and_extended_packets_are_rejected() -> None:
    tx, rx = pair()
    protected = tx.protect(rtp(3))
    for n in range(len(protected)):
        with pytest.raises(SrtpError):
            rx.unprotect(protected[:n])
    for extra in (b"\x00", b"\x00" * 4, protected[-14:]):
        with pytest.raises(SrtpError):
            rx.unprotect(protected + extra)
    assert rx.unprotect(protected) == rtp(3)


def test_mac_is_checked_before_decrypting(monkeypatch: pytest.MonkeyPatch) -> None:
    decrypted: list[int] = []
    real = _srtp_kdf.xor_keystream_batch

    def spy(jobs: Any) -> list[bytes]:
        decrypted.append(len(jobs))
        return real(jobs)

    tx, rx = pair()
    good = tx.protect(rtp(1))
    bad = good[:-1] + bytes([good[-1] ^ 1])
    monkeypatch.setattr(srtp, "xor_keystream_batch", spy)
    with pytest.raises(SrtpAuthError):
        rx.unprotect(bad)
    assert decrypted == []  # nothing was decrypted
    results = rx.unprotect_each([bad, good, bad])
    assert isinstance(results[0], SrtpAuthError) and results[1] == rtp(1)
    assert decrypted == [1]  # one keystream job: the authentic packet only


def test_authentication_error_is_opaque() -> None:
    err = SrtpAuthError()
    assert str(err) == "authentication failed"
    assert isinstance(err, SrtpError) and isinstance(err, MbmssecError)


def test_error_family() -> None:
    for cls in (SrtpParseError, UnknownMkiError, SrtpAuthError, SrtpReplayError, KeyLifetimeError):
        assert issubclass(cls, SrtpError)
    assert issubclass(SrtpError, MbmssecError)


# --- packet layout -----------------------------------------------------------------------


def test_header_csrcs_and_extension_stay_in_clear() -> None:
    tx, rx = pair()
    plain = rtp(4, payload=b"\x00" * 33, csrcs=(7, 8, 9), extension=b"\xaa" * 8)
    head_len = 12 + 12 + 4 + 8
    protected = tx.protect(plain)
    assert protected[:head_len] == plain[:head_len]
    assert protected[head_len : head_len + 33] != plain[head_len:]
    assert rx.unprotect(protected) == plain


def test_empty_payload() -> None:
    tx, rx = pair()
    plain = rtp(4, payload=b"")
    assert rx.unprotect(tx.protect(plain)) == plain


def test_srtcp_layout_e_flag_and_index() -> None:
    tx, rx = pair()
    packets = [tx.protect_rtcp(rtcp(i)) for i in range(3)]
    for i, p in enumerate(packets):
        assert p[:8] == rtcp(i)[:8]  # RTCP header and SSRC stay in clear (§3.4)
        assert p[8:32] != rtcp(i)[8:]
        assert int.from_bytes(p[32:36], "big") == 0x80000000 | i  # E=1, index from 0
        assert p[36:40] == KEY_A.mki
        assert rx.unprotect_rtcp(p) == rtcp(i)
    tx.set_srtcp_index(SSRC, 1000)
    assert int.from_bytes(tx.protect_rtcp(rtcp())[32:36], "big") == 0x80000000 | 1000


def test_srtcp_without_encryption() -> None:
    policy = SrtpPolicy(encrypt_rtcp=False)
    tx, rx = pair(policy)
    p = tx.protect_rtcp(rtcp(5))
    assert p[: len(rtcp(5))] == rtcp(5)
    assert int.from_bytes(p[32:36], "big") == 0  # E=0, index 0
    assert rx.unprotect_rtcp(p) == rtcp(5)
    # A receiver whose own policy encrypts still follows the packet's E flag.
    assert SrtpReceiver(None, (KEY_A, KEY_B)).unprotect_rtcp(p) == rtcp(5)
    flipped = p[:32] + bytes([p[32] | 0x80]) + p[33:]
    with pytest.raises(SrtpAuthError):  # the E flag is authenticated
        SrtpReceiver(None, (KEY_A, KEY_B)).unprotect_rtcp(flipped)


# --- parse errors ------------------------------------------------------------------------


def test_parse_errors_carry_offsets() -> None:
    _, rx = pair()
    with pytest.raises(SrtpParseError) as short:
        rx.unprotect(b"\x80\x00\x00")
    assert short.value.offset == 0
    v1 = bytearray(SrtpSender(None, (KEY_A,)).protect(rtp(1)))
    v1[0] = 0x40 | (v1[0] & 0x3F)
    with pytest.raises(SrtpParseError) as version:
        rx.unprotect(bytes(v1))
    assert version.value.offset == 0 and "version 1" in str(version.value)
    tx = SrtpSender(None, (KEY_A,))
    with pytest.raises(SrtpParseError):
        tx.protect(b"\x8f" + rtp(1)[1:20])  # 15 CSRCs announced, 8 bytes present
    with pytest.raises(SrtpParseError):
        tx.protect(rtp(1, payload=b"")[:12].replace(b"\x80", b"\x90", 1) + b"\x00\x00\x00\x05")
    with pytest.raises(SrtpParseError):
        tx.protect_rtcp(b"\x80\xc8\x00")
    with pytest.raises(SrtpParseError):
        tx.protect(rtp(1, payload=bytes(65535)))
    with pytest.raises(SrtpParseError):
        rx.unprotect_rtcp(b"\x80\xc8\x00\x01" + bytes(10))


# --- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mki_length": -1},
        {"mki_length": 129},
        {"key_derivation_rate": 3},
        {"key_derivation_rate": 1 << 25},
        {"key_derivation_rate": -2},
        {"replay_window": 0},
        {"replay_window": 1 << 16},
        {"rtp_auth_tag": 8},
    ],
)
def test_bad_policy(kwargs: dict[str, Any]) -> None:
    with pytest.raises(SrtpConfigError):
        SrtpPolicy(**kwargs)


def test_bad_keys() -> None:
    with pytest.raises(SrtpConfigError):
        MasterKey(b"\x01", bytes(15), bytes(14))
    with pytest.raises(SrtpConfigError):
        MasterKey(b"\x01", bytes(16), bytes(13))
    assert "key=..." in repr(KEY_A) and KEY_A.key.hex() not in repr(KEY_A)


# --- key derivation rate (RFC 3711 §4.3.1) ------------------------------------------------


def test_kdr_nonzero_rederives_when_index_div_r_changes() -> None:
    """With kdr = 16, r = index DIV 16: indices 0..15 use the r = 0 keys (the same keys
    kdr = 0 gives), index 16 on uses new ones."""
    fixed = SrtpSender(SrtpPolicy(), (KEY_A,))
    rated = SrtpSender(SrtpPolicy(key_derivation_rate=16), (KEY_A,))
    for seq in range(40):
        a, b = fixed.protect(rtp(seq)), rated.protect(rtp(seq))
        assert (a == b) == (seq < 16), seq
    # Within one r the keys are stable: the keystream of index 16 and 17 (same payload,
    # different counters) is from one key, so decryption by a matching receiver works
    # across every r boundary.
    rx = SrtpReceiver(SrtpPolicy(key_derivation_rate=16), (KEY_A,))
    tx = SrtpSender(SrtpPolicy(key_derivation_rate=16), (KEY_A,))
    seqs = list(range(65500, 65536)) + list(range(0, 40))
    assert rx.unprotect_many(tx.protect_many([rtp(s) for s in seqs])) == [rtp(s) for s in seqs]


def test_kdr_mismatch_fails_authentication() -> None:
    tx = SrtpSender(SrtpPolicy(key_derivation_rate=4), (KEY_A,))
    rx = SrtpReceiver(SrtpPolicy(), (KEY_A,))
    packets = [tx.protect(rtp(s)) for s in range(8)]
    assert [rx.unprotect(p) for p in packets[:4]] == [rtp(s) for s in range(4)]
    with pytest.raises(SrtpAuthError):
        rx.unprotect(packets[4])


def test_kdr_derivation_uses_r_in_the_key_id() -> None:
    """§4.3.1: key_id = label || r with r 48 bits; XOR into the master salt."""
    r = 0x123456789ABC
    kdr = 1 << 4
    salt = int.from_bytes(KEY_A.salt, "big")
    direct = derive_session_key(KEY_A.key, KEY_A.salt, KeyLabel.SRTP_ENCRYPTION, r * kdr, kdr, 16)
    block = ((salt ^ r) << 16).to_bytes(16, "big")
    aes = Cipher(algorithms.AES(KEY_A.key), modes.ECB()).encryptor()
    assert direct == aes.update(block)


def test_srtcp_kdr_uses_the_srtcp_index() -> None:
    tx = SrtpSender(SrtpPolicy(key_derivation_rate=2), (KEY_A,))
    rx = SrtpReceiver(SrtpPolicy(key_derivation_rate=2), (KEY_A,))
    packets = tx.protect_rtcp_many([rtcp(i) for i in range(6)])
    assert rx.unprotect_rtcp_many(packets) == [rtcp(i) for i in range(6)]
    plain_rx = SrtpReceiver(SrtpPolicy(), (KEY_A,))
    assert plain_rx.unprotect_rtcp(packets[1]) == rtcp(1)  # index 1: r = 0
    with pytest.raises(SrtpAuthError):
        plain_rx.unprotect_rtcp(packets[2])  # index 2: r = 1


# --- batch API -----------------------------------------------------------------------------


def test_protect_many_equals_one_by_one() -> None:
    seqs = [65530 + i for i in range(6)] + list(range(0, 30))
    packets = [rtp(s & 0xFFFF, payload=bytes([s % 256]) * (s % 50)) for s in seqs]
    one = SrtpSender(None, (KEY_A,))
    many = SrtpSender(None, (KEY_A,))
    assert many.protect_many(packets) == [one.protect(p) for p in packets]
    assert many.highest_index(SSRC) == one.highest_index(SSRC)
    control = [rtcp(i) for i in range(10)]
    assert many.protect_rtcp_many(control) == [one.protect_rtcp(p) for p in control]


def test_protect_many_is_all_or_nothing() -> None:
    tx = SrtpSender(None, (KEY_A,))
    with pytest.raises(SrtpParseError) as err:
        tx.protect_many([rtp(1), rtp(2), b"\x80\x00", rtp(3)])
    assert err.value.position == 2
    assert tx.highest_index(SSRC) is None
    assert tx.usage(KEY_A.mki).srtp_packets == 0
    with pytest.raises(SrtpReplayError) as dup:
        tx.protect_many([rtp(1), rtp(1)])
    assert dup.value.position == 1


def test_unprotect_many_is_all_or_nothing() -> None:
    tx, rx = pair()
    packets = tx.protect_many([rtp(s) for s in range(10)])
    bad = list(packets)
    bad[6] = bad[6][:-1] + bytes([bad[6][-1] ^ 0xFF])
    with pytest.raises(SrtpAuthError) as err:
        rx.unprotect_many(bad)
    assert err.value.position == 6
    assert rx.highest_index(SSRC) is None and rx.last_mki is None
    assert rx.unprotect_many(packets) == [rtp(s) for s in range(10)]


def test_unprotect_each_reports_per_packet() -> None:
    tx = SrtpSender(None, (KEY_A, KEY_C))
    rx = SrtpReceiver(None, (KEY_A,))
    good = tx.protect_many([rtp(s) for s in range(6)])
    tx.switch_to(KEY_C.mki)
    unknown = tx.protect(rtp(6))
    tampered = good[2][:-1] + bytes([good[2][-1] ^ 1])
    batch = [good[0], good[1], good[1], tampered, unknown, b"", good[5]]
    results = rx.unprotect_each(batch)
    assert results[0] == rtp(0) and results[1] == rtp(1) and results[6] == rtp(5)
    kinds = [type(r) for r in results[2:6]]
    assert kinds == [SrtpReplayError, SrtpAuthError, UnknownMkiError, SrtpParseError]
    assert [r.position for r in results if isinstance(r, SrtpError)] == [2, 3, 4, 5]
    assert rx.highest_index(SSRC) == 5
    assert rx.unprotect(good[2]) == rtp(2)  # the tampered copy did not consume index 2
    control = tx.protect_rtcp_many([rtcp(0)])
    each = rx.unprotect_rtcp_each([*control, b"\x80"])
    assert isinstance(each[0], UnknownMkiError) and isinstance(each[1], SrtpParseError)


def test_batch_with_several_ssrcs() -> None:
    tx, rx = pair()
    packets = [rtp(s, ssrc=ssrc) for s in range(20) for ssrc in (1, 2, 3)]
    assert rx.unprotect_many(tx.protect_many(packets)) == packets
    assert {rx.highest_index(s) for s in (1, 2, 3)} == {19}


def test_key_lifetime_limit() -> None:
    tx = SrtpSender(None, (KEY_A,))
    tx._keys[KEY_A.mki].usage[1] = (1 << 31) - 1  # as if 2^31 - 1 SRTCP packets were sent
    tx.protect_rtcp(rtcp())
    with pytest.raises(KeyLifetimeError):
        tx.protect_rtcp(rtcp())
    other = SrtpSender(None, (KEY_A,))
    other.set_srtcp_index(SSRC, (1 << 31) - 1)
    assert other.protect_rtcp(rtcp())[32:36] == b"\xff\xff\xff\xff"  # E=1, index 2^31-1
    with pytest.raises(KeyLifetimeError):
        other.protect_rtcp(rtcp())


def test_far_jump_of_the_srtcp_index_clears_the_window() -> None:
    tx, rx = pair()
    early = tx.protect_rtcp(rtcp(0))
    tx.set_srtcp_index(SSRC, (1 << 31) - 1)
    late = tx.protect_rtcp(rtcp(1))
    assert rx.unprotect_rtcp(early) == rtcp(0)
    assert rx.unprotect_rtcp(late) == rtcp(1)
    assert rx.highest_srtcp_index(SSRC) == (1 << 31) - 1
    with pytest.raises(SrtpReplayError):
        rx.unprotect_rtcp(early)

"""Interoperability of mbmssec.impl.protocols.srtp with libsrtp 2.x (Debian libsrtp2-1) via ctypes.

libsrtp is the independent oracle: packets we protect with an MKI must be accepted by
libsrtp and packets libsrtp protects must be accepted by us, across a key switch by MKI and
a rollover of the sequence number (ROC 0 -> 1), for SRTP and SRTCP, with 80- and 32-bit
tags. Since AES-CM and HMAC are deterministic, both sides must also produce the same bytes.
libsrtp has no key derivation rate, but RFC 3711 §4.3.1 makes a rate-r derivation at
index i equal a rate-0 derivation with the master salt XOR (i DIV r); that identity lets
libsrtp check our kdr != 0 packets too.
"""

from __future__ import annotations

import struct

import pytest

from mbmssec.impl.protocols.srtp import (
    AuthTag,
    MasterKey,
    SrtpAuthError,
    SrtpPolicy,
    SrtpReceiver,
    SrtpSender,
)
from mbmssec.oracles import libsrtp
from mbmssec.oracles.libsrtp import (
    Direction,
    LibSrtpKey,
    LibSrtpSession,
    LibSrtpStatusError,
    Status,
)

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(not libsrtp.available(), reason="libsrtp 2.x is not installed"),
]

SSRC = 0x5EC0DE42
MASTER = [
    (
        bytes.fromhex("00112233445566778899aabbccddeeff"),
        bytes.fromhex("0102030405060708090a0b0c0d0e"),
    ),
    (
        bytes.fromhex("f0e1d2c3b4a5968778695a4b3c2d1e0f"),
        bytes.fromhex("a1a2a3a4a5a6a7a8a9aaabacadae"),
    ),
]
# The sequence numbers of the media run: across the 65535 -> 0 wrap.
SEQS = list(range(65500, 65536)) + list(range(0, 40))
SWITCH_AT = 65530  # from here on the sender uses the second key (the "next MTK")


def mkis(length: int) -> list[bytes]:
    return [bytes([0xA0 + i]) * length for i in range(len(MASTER))]


def our_keys(length: int) -> list[MasterKey]:
    return [MasterKey(m, k, s) for m, (k, s) in zip(mkis(length), MASTER, strict=True)]


def lib_keys(length: int) -> list[LibSrtpKey]:
    return [LibSrtpKey(k, s, m) for m, (k, s) in zip(mkis(length), MASTER, strict=True)]


def rtp(seq: int, n: int = 160, ssrc: int = SSRC) -> bytes:
    """RTP packets of varied shape: some with CSRCs, some with a header extension."""
    csrcs = (0x01020304, 0x05060708) if seq % 5 == 0 else ()
    ext = seq % 7 == 0
    b0 = 0x80 | len(csrcs) | (0x10 if ext else 0)
    head = struct.pack("!BBHII", b0, 0x60 | (0x80 if seq % 3 == 0 else 0), seq, seq * 160, ssrc)
    head += b"".join(struct.pack("!I", c) for c in csrcs)
    if ext:
        head += struct.pack("!HH", 0xBEDE, 1) + b"\x10\xaa\x00\x00"
    return head + bytes((seq + i) & 0xFF for i in range(n - seq % 11))


def rtcp(i: int, ssrc: int = SSRC) -> bytes:
    """A compound RTCP packet: sender report + SDES CNAME (RFC 3550 §6.4.1, §6.5)."""
    sr = struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, 0x83AA7E80, i, i * 160, i, i * 200)
    sdes = struct.pack("!BBHIBB", 0x81, 202, 3, ssrc, 1, 6) + b"mbms-1" + b"\x00\x00"
    return sr + sdes


def key_index(seq: int) -> int:
    """Which master key protects ``seq`` in the run (switch at SWITCH_AT, ROC 0)."""
    return 1 if seq >= SWITCH_AT or seq < 40 else 0


def policy(tag: int, mki_len: int) -> SrtpPolicy:
    return SrtpPolicy(mki_length=mki_len, rtp_auth_tag=AuthTag(tag), rtcp_auth_tag=AuthTag(tag))


def lib_session(direction: Direction, tag: int, mki_len: int) -> LibSrtpSession:
    return LibSrtpSession(lib_keys(mki_len), direction=direction, rtp_tag_len=tag, rtcp_tag_len=tag)


PARAMS = [(tag, mki) for tag in (10, 4) for mki in (1, 4)]
IDS = [f"tag{tag * 8}-mki{mki}" for tag, mki in PARAMS]


# --- the bridge itself ----------------------------------------------------------------


def test_srtp_init_returns_ok_and_version_is_2x() -> None:
    libsrtp.load()
    assert libsrtp.init_status() == Status.OK
    assert libsrtp.version().startswith("libsrtp2 2.")


def test_libsrtp_alone_round_trip() -> None:
    with (
        lib_session(Direction.ANY_OUTBOUND, 10, 4) as tx,
        lib_session(Direction.ANY_INBOUND, 10, 4) as rx,
    ):
        plain = rtp(1)
        protected = tx.protect(plain, mki_index=1)
        assert len(protected) == len(plain) + 4 + 10
        assert protected[-14:-10] == mkis(4)[1]
        assert rx.unprotect(protected) == plain
        with pytest.raises(LibSrtpStatusError) as err:
            rx.unprotect(protected)
        assert err.value.status == Status.REPLAY_FAIL
        control = tx.protect_rtcp(rtcp(1), mki_index=0)
        assert rx.unprotect_rtcp(control) == rtcp(1)


# --- SRTP -----------------------------------------------------------------------------


@pytest.mark.parametrize(("tag", "mki_len"), PARAMS, ids=IDS)
def test_ours_to_libsrtp_across_key_switch_and_rollover(tag: int, mki_len: int) -> None:
    sender = SrtpSender(policy(tag, mki_len), our_keys(mki_len))
    plain = [rtp(s) for s in SEQS]
    ours: list[bytes] = []
    # Half one by one, half through the batch API; the key switches in between.
    for s, p in zip(SEQS[:30], plain[:30], strict=True):
        sender.switch_to(mkis(mki_len)[key_index(s)])
        ours.append(sender.protect(p))
    sender.switch_to(mkis(mki_len)[1])
    ours.extend(sender.protect_many(plain[30:]))
    assert sender.roc(SSRC) == 1

    with lib_session(Direction.ANY_INBOUND, tag, mki_len) as rx:
        assert [rx.unprotect(p) for p in ours] == plain
    # Same keys, same indices: libsrtp's own output is byte-for-byte ours.
    with lib_session(Direction.ANY_OUTBOUND, tag, mki_len) as tx:
        assert [tx.protect(p, key_index(s)) for s, p in zip(SEQS, plain, strict=True)] == ours


@pytest.mark.parametrize(("tag", "mki_len"), PARAMS, ids=IDS)
def test_libsrtp_to_ours_across_key_switch_and_rollover(tag: int, mki_len: int) -> None:
    plain = [rtp(s) for s in SEQS]
    with lib_session(Direction.ANY_OUTBOUND, tag, mki_len) as tx:
        theirs = [tx.protect(p, key_index(s)) for s, p in zip(SEQS, plain, strict=True)]
    single = SrtpReceiver(policy(tag, mki_len), our_keys(mki_len))
    assert [single.unprotect(p) for p in theirs] == plain
    assert single.roc(SSRC) == 1 and single.last_mki == mkis(mki_len)[1]
    batch = SrtpReceiver(policy(tag, mki_len), our_keys(mki_len))
    assert batch.unprotect_many(theirs) == plain
    # Reordered delivery around the wrap (pairs swapped): index estimation must cope.
    swapped = [theirs[i ^ 1] for i in range(len(theirs))]
    reordered = SrtpReceiver(policy(tag, mki_len), our_keys(mki_len))
    assert reordered.unprotect_each(swapped) == [plain[i ^ 1] for i in range(len(plain))]


@pytest.mark.parametrize("tag", [10, 4])
def test_rollover_with_roc_set_by_key_management(tag: int) -> None:
    """Both ends start at ROC 0xFFFE / SEQ 65530 and run across into ROC 0xFFFF."""
    keys = lib_keys(4)
    seqs = list(range(65530, 65536)) + list(range(0, 6))
    plain = [rtp(s) for s in seqs]
    with LibSrtpSession(
        keys, direction=Direction.SPECIFIC, ssrc=SSRC, rtp_tag_len=tag, rtcp_tag_len=tag
    ) as tx:
        tx.set_roc(SSRC, 0xFFFE)
        theirs = [tx.protect(p, 0) for p in plain]
        assert tx.get_roc(SSRC) == 0xFFFF
    ours_rx = SrtpReceiver(policy(tag, 4), our_keys(4))
    ours_rx.set_roc(SSRC, 0xFFFE)
    assert ours_rx.unprotect_many(theirs) == plain
    assert ours_rx.roc(SSRC) == 0xFFFF
    sender = SrtpSender(policy(tag, 4), our_keys(4))
    sender.set_roc(SSRC, 0xFFFE)
    assert sender.protect_many(plain) == theirs


# --- SRTCP ----------------------------------------------------------------------------


@pytest.mark.parametrize(("tag", "mki_len"), PARAMS, ids=IDS)
def test_srtcp_both_ways_across_key_switch(tag: int, mki_len: int) -> None:
    plain = [rtcp(i) for i in range(12)]
    which = [0] * 6 + [1] * 6
    sender = SrtpSender(policy(tag, mki_len), our_keys(mki_len))
    ours = sender.protect_rtcp_many(plain[:6])
    sender.switch_to(mkis(mki_len)[1])
    ours += [sender.protect_rtcp(p) for p in plain[6:]]
    with lib_session(Direction.ANY_INBOUND, tag, mki_len) as rx:
        assert [rx.unprotect_rtcp(p) for p in ours] == plain
    with lib_session(Direction.ANY_OUTBOUND, tag, mki_len) as tx:
        theirs = [tx.protect_rtcp(p, k) for p, k in zip(plain, which, strict=True)]
    receiver = SrtpReceiver(policy(tag, mki_len), our_keys(mki_len))
    assert receiver.unprotect_rtcp_many(theirs[:6]) == plain[:6]
    assert [receiver.unprotect_rtcp(p) for p in theirs[6:]] == plain[6:]
    assert receiver.last_mki == mkis(mki_len)[1]
    # libsrtp numbers SRTCP from 1, we from 0; otherwise the packets are identical.
    sender2 = SrtpSender(policy(tag, mki_len), our_keys(mki_len))
    sender2.set_srtcp_index(SSRC, 1)
    assert sender2.protect_rtcp(plain[0]) == theirs[0]


def test_libsrtp_rejects_our_tampered_packet_and_we_reject_its() -> None:
    sender = SrtpSender(policy(10, 4), our_keys(4))
    ours = sender.protect(rtp(1))
    with lib_session(Direction.ANY_OUTBOUND, 10, 4) as tx:
        theirs = tx.protect(rtp(1), 0)
    assert ours == theirs
    bad = ours[:20] + bytes([ours[20] ^ 0x01]) + ours[21:]
    with lib_session(Direction.ANY_INBOUND, 10, 4) as rx:
        with pytest.raises(LibSrtpStatusError) as err:
            rx.unprotect(bad)
        assert err.value.status == Status.AUTH_FAIL
    with pytest.raises(SrtpAuthError):
        SrtpReceiver(policy(10, 4), our_keys(4)).unprotect(bad)


# --- key derivation rate ----------------------------------------------------------------


def salt_for_r(salt: bytes, r: int) -> bytes:
    """RFC 3711 §4.3.1: x = (label || r) XOR salt, so rate-r keys at index i are the
    rate-0 keys of the salt XOR r (r in the low 48 bits)."""
    return (int.from_bytes(salt, "big") ^ r).to_bytes(14, "big")


@pytest.mark.parametrize("kdr", [1, 16, 1 << 24])
def test_kdr_nonzero_srtp_checked_by_libsrtp(kdr: int) -> None:
    key, salt = MASTER[0]
    roc = 3 if kdr < (1 << 24) else 0x1234
    seqs = [0, 1, 15, 16, 17, 31, 32, 100, 1000, 20000]
    sender = SrtpSender(SrtpPolicy(key_derivation_rate=kdr), [MasterKey(b"\x01" * 4, key, salt)])
    sender.set_roc(SSRC, roc)
    protected = sender.protect_many([rtp(s) for s in seqs])
    for seq, packet in zip(seqs, protected, strict=True):
        r = ((roc << 16) | seq) // kdr
        oracle_key = LibSrtpKey(key, salt_for_r(salt, r), b"\x01" * 4)
        with LibSrtpSession([oracle_key], direction=Direction.SPECIFIC, ssrc=SSRC) as rx:
            rx.set_roc(SSRC, roc)
            assert rx.unprotect(packet) == rtp(seq), (kdr, seq)
    # And the rate really matters: for r != 0, the rate-0 oracle refuses the packet.
    with LibSrtpSession(
        [LibSrtpKey(key, salt, b"\x01" * 4)], direction=Direction.SPECIFIC, ssrc=SSRC
    ) as rx0:
        rx0.set_roc(SSRC, roc)
        with pytest.raises(LibSrtpStatusError) as err:
            rx0.unprotect(protected[-1])
        assert err.value.status == Status.AUTH_FAIL


@pytest.mark.parametrize("kdr", [2, 256])
def test_kdr_nonzero_srtcp_checked_by_libsrtp(kdr: int) -> None:
    key, salt = MASTER[1]
    sender = SrtpSender(SrtpPolicy(key_derivation_rate=kdr), [MasterKey(b"\x02" * 4, key, salt)])
    sender.set_srtcp_index(SSRC, 5000)
    protected = sender.protect_rtcp_many([rtcp(i) for i in range(5)])
    for i, packet in enumerate(protected):
        oracle_key = LibSrtpKey(key, salt_for_r(salt, (5000 + i) // kdr), b"\x02" * 4)
        with LibSrtpSession([oracle_key], direction=Direction.ANY_INBOUND) as rx:
            assert rx.unprotect_rtcp(packet) == rtcp(i)

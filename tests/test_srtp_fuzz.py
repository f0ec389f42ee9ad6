"""Fuzzing the SRTP/SRTCP parsers and unprotect paths (RFC 3711).

More than 10,000 generated inputs in all: random bytes, and mutations of valid packets
(bit flips, byte rewrites, truncation, extension, insertion, deletion, header-field
rewrites). Hypothesis drives about 2,000 structured examples; seeded random loops (fixed
seeds, so a failure reproduces) add 35,000 more cheaply. The properties: only
:class:`SrtpError` subclasses ever escape, and any packet that is accepted is byte-for-byte
an authentic one and yields its original plaintext (no forgery).
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mbmssec.impl.protocols.srtp import (
    AuthTag,
    MasterKey,
    SrtpError,
    SrtpPolicy,
    SrtpReceiver,
    SrtpSender,
)

KEYS = (
    MasterKey(b"\x10\x20", bytes(range(16)), bytes(range(14))),
    MasterKey(b"\x10\x21", bytes(range(1, 17)), bytes(range(2, 16))),
)
POLICIES = (
    SrtpPolicy(mki_length=2),
    SrtpPolicy(mki_length=2, rtp_auth_tag=AuthTag.HMAC_SHA1_32, rtcp_auth_tag=AuthTag.HMAC_SHA1_32),
    SrtpPolicy(mki_length=2, key_derivation_rate=4, encrypt_rtcp=False),
)
NO_MKI = SrtpPolicy(mki_length=0)


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def rtp(seq: int, n: int, cc: int = 0, ext_words: int | None = None) -> bytes:
    b0 = 0x80 | cc | (0x10 if ext_words is not None else 0)
    head = struct.pack("!BBHII", b0, 96, seq, 7, 0xCAFE0001)
    head += bytes(4 * cc)
    if ext_words is not None:
        head += struct.pack("!HH", 0xBEDE, ext_words) + bytes(4 * ext_words)
    return head + bytes(range(n))


def rtcp(n_blocks: int) -> bytes:
    body = bytes(24 * n_blocks)
    return struct.pack("!BBHI", 0x80 | n_blocks, 201, 1 + 6 * n_blocks, 0xCAFE0001) + body


@dataclass(frozen=True)
class Sample:
    policy: SrtpPolicy
    plain: bytes
    protected: bytes
    rtcp: bool


def build_pool() -> list[Sample]:
    """Authentic packets of varied shape under each policy and key, each from a fresh
    sender (ROC 0), so that a fresh receiver accepts every one of them unmutated."""
    pool: list[Sample] = []
    shapes = [
        (0, None, 0, 65535),
        (0, None, 160, 0),
        (2, None, 33, 1),
        (0, 0, 5, 32768),
        (1, 3, 1, 40000),
        (15, 1, 17, 7),
    ]
    for policy in POLICIES:
        for i, (cc, ext, n, seq) in enumerate(shapes):
            sender = SrtpSender(policy, KEYS, current_mki=KEYS[i % 2].mki)
            plain = rtp(seq, n, cc, ext)
            pool.append(Sample(policy, plain, sender.protect(plain), False))
        for blocks in (0, 1, 3):
            sender = SrtpSender(policy, KEYS, current_mki=KEYS[blocks % 2].mki)
            sender.set_srtcp_index(0xCAFE0001, 1000 * blocks)
            plain = rtcp(blocks)
            pool.append(Sample(policy, plain, sender.protect_rtcp(plain), True))
    sender = SrtpSender(NO_MKI, (MasterKey(b"", KEYS[0].key, KEYS[0].salt),))
    pool.append(Sample(NO_MKI, rtp(9, 20), sender.protect(rtp(9, 20)), False))
    pool.append(Sample(NO_MKI, rtcp(1), sender.protect_rtcp(rtcp(1)), True))
    return pool


POOL = build_pool()
SRTP_POOL = [s for s in POOL if not s.rtcp]
SRTCP_POOL = [s for s in POOL if s.rtcp]


def receiver(policy: SrtpPolicy) -> SrtpReceiver:
    if policy.mki_length == 0:
        return SrtpReceiver(policy, (MasterKey(b"", KEYS[0].key, KEYS[0].salt),))
    return SrtpReceiver(policy, KEYS)


# --- mutations --------------------------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn, pool: list[Sample]) -> tuple[Sample, bytes]:
    """A pool packet after 1..4 random edits."""
    sample = draw(st.sampled_from(pool))
    data = bytearray(sample.protected)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "truncate", "extend", "insert", "delete", "hdr"]))
        n = len(data)
        if op == "flip" and n:
            pos = draw(st.integers(0, n - 1))
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and n:
            data[draw(st.integers(0, n - 1))] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[draw(st.integers(0, n)) :]
        elif op == "extend":
            data += draw(st.binary(min_size=1, max_size=40))
        elif op == "insert":
            pos = draw(st.integers(0, n))
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and n:
            start = draw(st.integers(0, n - 1))
            del data[start : start + draw(st.integers(1, 8))]
        elif op == "hdr" and n >= 4:
            # Rewrite the first byte (version, padding, X, CC) or an RTP extension length.
            if draw(st.booleans()):
                data[0] = draw(st.integers(0, 255))
            elif n >= 16:
                data[14:16] = draw(st.integers(0, 0xFFFF)).to_bytes(2, "big")
    return sample, bytes(data)


def check_outcome(sample: Sample, packet: bytes, outcome: bytes | SrtpError) -> None:
    """Accepted implies authentic: the very bytes that were protected, and their plaintext."""
    if isinstance(outcome, bytes):
        assert packet == sample.protected
        assert outcome == sample.plain


def attempt(sample: Sample, packet: bytes) -> bytes | SrtpError:
    rx = receiver(sample.policy)
    try:
        return rx.unprotect_rtcp(packet) if sample.rtcp else rx.unprotect(packet)
    except SrtpError as exc:
        return exc


# --- the properties ---------------------------------------------------------------------


def test_pool_is_authentic() -> None:
    """Unmutated, every pool packet is accepted, so rejections below are due to the edits."""
    for sample in POOL:
        assert attempt(sample, sample.protected) == sample.plain


@fuzz_settings(500)
@given(st.binary(max_size=300), st.sampled_from((*POLICIES, NO_MKI)))
def test_random_bytes_only_raise_srtp_errors(data: bytes, policy: SrtpPolicy) -> None:
    rx = receiver(policy)
    for call in (rx.unprotect, rx.unprotect_rtcp):
        try:
            call(data)
        except SrtpError:
            pass
        else:  # random bytes never carry a valid tag
            raise AssertionError("random bytes were accepted")


@fuzz_settings(600)
@given(mutated(SRTP_POOL))
def test_mutated_srtp(case: tuple[Sample, bytes]) -> None:
    sample, packet = case
    check_outcome(sample, packet, attempt(sample, packet))


@fuzz_settings(400)
@given(mutated(SRTCP_POOL))
def test_mutated_srtcp(case: tuple[Sample, bytes]) -> None:
    sample, packet = case
    check_outcome(sample, packet, attempt(sample, packet))


@fuzz_settings(200)
@given(st.lists(mutated(SRTP_POOL[:9]), min_size=1, max_size=12))
def test_mutated_batches(cases: list[tuple[Sample, bytes]]) -> None:
    """A batch of mutants (and originals) through unprotect_each and unprotect_many."""
    rx = receiver(POLICIES[0])
    packets = [p for _, p in cases]
    outcomes = rx.unprotect_each(packets)
    assert len(outcomes) == len(packets)
    for (sample, packet), outcome in zip(cases, outcomes, strict=True):
        if sample.policy is POLICIES[0]:
            check_outcome(sample, packet, outcome)
        else:
            assert isinstance(outcome, SrtpError) or packet == sample.protected
    try:
        many = receiver(POLICIES[0]).unprotect_many(packets)
    except SrtpError as exc:
        assert exc.position is not None and 0 <= exc.position < len(packets)
    else:
        assert many == outcomes


@fuzz_settings(300)
@given(st.binary(max_size=200))
def test_sender_random_input(data: bytes) -> None:
    """Garbage handed to the sender is refused with SrtpError or round-trips exactly."""
    sender = SrtpSender(POLICIES[0], KEYS)
    rx = receiver(POLICIES[0])
    try:
        protected = sender.protect(data)
    except SrtpError:
        pass
    else:
        assert rx.unprotect(protected) == data
    try:
        control = sender.protect_rtcp(data)
    except SrtpError:
        pass
    else:
        assert rx.unprotect_rtcp(control) == data


# --- seeded random loops: the bulk of the inputs, cheaply ----------------------------------


def mutate(rng: random.Random, packet: bytes) -> bytes:
    """1..4 random edits of the kinds the Hypothesis strategy makes."""
    data = bytearray(packet)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        n = len(data)
        if op == 0 and n:
            data[rng.randrange(n)] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            data[rng.randrange(n)] = rng.randrange(256)
        elif op == 2:
            del data[rng.randint(0, n) :]
        elif op == 3:
            data += rng.randbytes(rng.randint(1, 40))
        elif op == 4:
            pos = rng.randint(0, n)
            data[pos:pos] = rng.randbytes(rng.randint(1, 8))
        elif op == 5 and n:
            start = rng.randrange(n)
            del data[start : start + rng.randint(1, 8)]
        elif op == 6 and n >= 16:
            data[rng.choice((0, 1, 14, 15))] = rng.randrange(256)
    return bytes(data)


def run_loop(pool: list[Sample], count: int, seed: int) -> int:
    """Unprotect ``count`` mutants; a receiver is reused until it accepts something."""
    rng = random.Random(seed)
    receivers: dict[int, SrtpReceiver] = {}
    rejected = 0
    for _ in range(count):
        sample = rng.choice(pool)
        packet = mutate(rng, sample.protected)
        key = id(sample.policy)
        rx = receivers.get(key) or receiver(sample.policy)
        receivers[key] = rx
        try:
            out = rx.unprotect_rtcp(packet) if sample.rtcp else rx.unprotect(packet)
        except SrtpError:
            rejected += 1
            continue
        check_outcome(sample, packet, out)
        del receivers[key]  # its state moved on: start the next input afresh
    return rejected


def test_loop_mutated_srtp() -> None:
    assert run_loop(SRTP_POOL, 20000, seed=3711) > 19500


def test_loop_mutated_srtcp() -> None:
    assert run_loop(SRTCP_POOL, 10000, seed=3830) > 9750


def test_loop_random_bytes() -> None:
    rng = random.Random(33246)
    receivers = [receiver(p) for p in (*POLICIES, NO_MKI)]
    for i in range(5000):
        data = rng.randbytes(rng.randint(0, 120))
        if i % 2 and len(data) >= 2:  # half of them look like RTP/RTCP version 2
            data = bytes([0x80 | data[0] & 0x3F]) + data[1:]
        rx = receivers[i % len(receivers)]
        for call in (rx.unprotect, rx.unprotect_rtcp):
            try:
                call(data)
            except SrtpError:
                continue
            raise AssertionError("random bytes were accepted")

"""Fuzzing of the MIKEY parsers: only MikeyError subclasses may escape.

More than 10,000 generated inputs: mutations of valid messages of every kind
this implementation builds (bit flips, truncation, extension, insertion and
deletion, edits of length and type fields at payload starts) and random byte
strings, fed to every entry point that takes untrusted bytes. Messages with Mac
alg NULL are fuzzed with ``allow_null_mac`` so mutations also reach decryption,
the Key data chain, the SP policy and the TEK fetch extension decoders.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mbmssec.impl.protocols.mikey import (
    EncrAlg,
    ErrorNo,
    FetchAtSrtpIndex,
    FetchAtTime,
    GeneralExtensionPayload,
    IdPayload,
    IdType,
    MacAlg,
    MikeyError,
    SrtpCs,
    SrtpEncrAlg,
    SrtpPolicy,
    TekFetchExtension,
    parse_key_data_chain,
    parse_message,
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
    verify_verification,
)

NOW = 1_760_000_000.0
KEK = bytes(range(16))
SEED = 20_240_601
MIN_INPUTS = 10_000


def _rng_bytes(rng: random.Random) -> Callable[[int], bytes]:
    return lambda n: rng.randbytes(n)


def _corpus(rng: random.Random) -> tuple[list[bytes], TekDelivery]:
    common: dict[str, Any] = dict(
        now=NOW,
        rand=_rng_bytes(rng),
        cs_map=[SrtpCs(0, 0x01020304, 1), SrtpCs(1, 0x0A0B0C0D, 0)],
        policies=[
            SrtpPolicy(
                0,
                encr_alg=SrtpEncrAlg.AES_CM,
                encr_key_len=16,
                kdr=256,
                srtp_encryption=True,
                auth_tag_len=10,
            )
        ],
        id_i=IdPayload(IdType.URI, b"http://bmsc.example"),
        id_r=IdPayload(IdType.NAI, b"ue@example"),
    )
    keys = [
        TekKey(rng.randbytes(16), rng.randbytes(14), rng.randbytes(3)),
        TekKey(rng.randbytes(16), rng.randbytes(14), rng.randbytes(3)),
    ]
    deliveries = [
        new_tek_delivery(
            csb_id=1,
            keys=keys,
            encr_alg=EncrAlg.NULL,
            mac_alg=MacAlg.NULL,
            fetch=FetchAtTime(ntp_from_unix(NOW + 5)),
            lifetime=30,
            **common,
        ),
        new_tek_delivery(
            csb_id=2,
            keys=keys[:1],
            encr_alg=EncrAlg.AES_CM_128,
            mac_alg=MacAlg.NULL,
            counter=9,
            fetch=FetchAtSrtpIndex(123456),
            **common,
        ),
        new_tek_delivery(
            csb_id=3, keys=keys, encr_alg=EncrAlg.AES_KW_128, mac_alg=MacAlg.NULL, **common
        ),
        new_tek_delivery(
            csb_id=4, keys=keys, encr_alg=EncrAlg.AES_CM_128, request_verification=True, **common
        ),
        new_tek_delivery(
            csb_id=5,
            keys=[TekKey(rng.randbytes(16))],
            encr_alg=EncrAlg.NULL,
            mac_alg=MacAlg.NULL,
            counter=1,
            now=NOW,
            rand=_rng_bytes(rng),
        ),
    ]
    seeds = [build_tek_delivery(d, KEK) for d in deliveries]
    seeds.append(build_verification(deliveries[3], KEK, id_r=IdPayload(IdType.NAI, b"ue")))
    seeds.append(
        build_error_message(6, [ErrorNo.AUTH_FAILURE, ErrorNo.INVALID_SPPAR], counter_timestamp(3))
    )
    return seeds, deliveries[3]


def _mutate(rng: random.Random, msg: bytes, payload_starts: list[int]) -> bytes:
    data = bytearray(msg)
    if not data:
        return rng.randbytes(rng.randint(1, 16))
    kind = rng.randrange(8)
    if kind == 0:  # bit flips
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    elif kind == 1:  # truncation
        del data[rng.randrange(len(data)) :]
    elif kind == 2:  # extension
        data += rng.randbytes(rng.randint(1, 40))
    elif kind == 3:  # insertion
        i = rng.randrange(len(data) + 1)
        data[i:i] = rng.randbytes(rng.randint(1, 8))
    elif kind == 4:  # deletion
        i = rng.randrange(len(data))
        del data[i : i + rng.randint(1, 8)]
    elif kind == 5:  # length / type field edits at a payload start
        start = rng.choice(payload_starts)
        for j in range(rng.randint(1, 3)):
            pos = start + rng.randrange(1, 6) + j
            if pos < len(data):
                data[pos] = rng.choice([0x00, 0x01, 0x7F, 0x80, 0xFF, rng.randrange(256)])
    elif kind == 6:  # next-payload field edits
        start = rng.choice(payload_starts)
        pos = 2 if start == 0 else start
        if pos < len(data):
            data[pos] = rng.choice([0, 1, 2, 5, 6, 9, 10, 11, 12, 13, 20, 21, 255])
    else:  # overwrite a run
        i = rng.randrange(len(data))
        n = rng.randint(1, 16)
        data[i : i + n] = rng.randbytes(min(n, len(data) - i))
    return bytes(data)


def _entry_points(delivery: TekDelivery) -> list[Callable[[bytes], object]]:
    states = [
        ReplayState(ReplayMode.NONE),
        ReplayState(ReplayMode.COUNTER, last_counter=2),
        ReplayState(ReplayMode.TIMESTAMP, max_skew=3600),
    ]

    def verify_any(data: bytes) -> object:
        return [parse_and_verify(data, KEK, s, NOW, allow_null_mac=True) for s in states]

    return [
        parse_message,
        verify_any,
        lambda d: parse_and_verify(d, KEK, states[0], NOW),
        lambda d: verify_verification(d, delivery, KEK),
        parse_error_message,
        parse_key_data_chain,
        lambda d: TekFetchExtension.from_payload(GeneralExtensionPayload(255, d)),
    ]


def _feed(entry_points: list[Callable[[bytes], object]], data: bytes) -> None:
    for fn in entry_points:
        try:
            fn(data)
        except MikeyError:
            pass
        except Exception as exc:  # any other escape is a bug; report a reproducer
            raise AssertionError(f"{type(exc).__name__}: {exc} for input {data.hex()}") from exc


def test_fuzz_mutated_and_random_inputs() -> None:
    rng = random.Random(SEED)
    seeds, delivery = _corpus(rng)
    entry_points = _entry_points(delivery)
    starts = [[0, *parse_message(s).offsets] for s in seeds]
    accepted = 0
    count = 0
    for s in seeds:  # sanity: the unmutated seeds are valid
        parse_message(s)
    while count < MIN_INPUTS:
        if count % 10 == 9:
            data = rng.randbytes(rng.randint(0, 120))
            if rng.random() < 0.5 and data:  # plausible header prefix
                data = bytes([1, rng.choice([0, 1, 6]), rng.randrange(23)]) + data
        else:
            i = rng.randrange(len(seeds))
            data = _mutate(rng, seeds[i], starts[i])
            if rng.random() < 0.2:
                data = _mutate(rng, data, starts[i])
        _feed(entry_points, data)
        try:
            parse_message(data)
            accepted += 1
        except MikeyError:
            pass
        count += 1
    assert count >= MIN_INPUTS
    # The mutations must reach past the header often enough to mean something.
    assert accepted > MIN_INPUTS // 20


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    rng = random.Random(SEED)
    _, delivery = _corpus(rng)
    _feed(_entry_points(delivery), data)
    _feed(_entry_points(delivery), bytes([1, 0]) + data)

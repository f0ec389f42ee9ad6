"""The fast paths of the MIKEY codec give what the field-by-field paths give.

The readers learn layouts (``mikey.Layout``) and the TEK delivery builder learns the
bytes between a shape's values; each test here sets a fast path against its slow
counterpart, which the other MIKEY tests (RFC-derived bytes, tshark, fuzzing) check:
a message read with a learned layout against the same message read field by field
(``learned=False``), mutated messages of a learned size included (so that a changed
length or type code must send the reading back to the field-by-field path), and
deliveries of one shape built again with other values against the payload-object
serialiser and the verifier.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mbmssec.impl.protocols.mikey import (
    EncrAlg,
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
    TsType,
    decode_fetch_data,
    parse_message,
    scan_key_data_chain,
    scan_message,
    serialise_key_data_chain,
    serialise_message,
)
from mbmssec.impl.protocols.mikey_messages import (
    ReplayMode,
    ReplayState,
    TekDelivery,
    TekKey,
    build_tek_delivery,
    build_verification,
    new_tek_delivery,
    parse_and_verify,
    verify_verification,
)

NOW = 1_760_000_000.0
KEK = bytes(range(16))


def _outcome(read: Callable[[], Any]) -> tuple[str, Any]:
    """The result, or the error's class, offset, payload, error number and text."""
    try:
        return ("ok", read())
    except MikeyError as exc:
        where = (getattr(exc, "offset", None), getattr(exc, "payload", None))
        return (type(exc).__name__, (*where, exc.error_no, str(exc)))


def _delivery(draw: st.DrawFn) -> TekDelivery:
    rng = random.Random(draw(st.integers(0, 2**32)))
    keys = [
        TekKey(
            rng.randbytes(16),
            rng.randbytes(14) if draw(st.booleans()) else None,
            rng.randbytes(draw(st.sampled_from([1, 3, 4]))) if draw(st.booleans()) else None,
        )
        for _ in range(draw(st.integers(1, 4)))
    ]
    fetch = draw(
        st.sampled_from(
            [None, FetchAtTime(rng.getrandbits(64)), FetchAtSrtpIndex(rng.getrandbits(48))]
        )
    )
    policies = [SrtpPolicy(0, encr_alg=SrtpEncrAlg.AES_CM, auth_tag_len=10, kdr=2**16)]
    encr = draw(st.sampled_from([EncrAlg.AES_CM_128, EncrAlg.AES_KW_128, EncrAlg.NULL]))
    chain = sum(
        4
        + len(k.tek)
        + (0 if k.salt is None else 2 + len(k.salt))
        + (0 if k.mki is None else 1 + len(k.mki))
        for k in keys
    )
    if encr is EncrAlg.AES_KW_128 and chain % 8:  # key wrap takes whole 64-bit blocks
        encr = EncrAlg.AES_CM_128
    return new_tek_delivery(
        csb_id=rng.getrandbits(32),
        keys=keys,
        now=NOW,
        rand=rng.randbytes,
        counter=draw(st.sampled_from([None, rng.getrandbits(32)])),
        cs_map=[SrtpCs(rng.getrandbits(8), rng.getrandbits(32), rng.getrandbits(32))],
        policies=policies if draw(st.booleans()) else [],
        id_i=IdPayload(IdType.URI, b"http://bmsc.example/"),
        id_r=IdPayload(IdType.NAI, b"001010000000001") if draw(st.booleans()) else None,
        fetch=fetch,
        lifetime=draw(st.sampled_from([None, 3600])),
        encr_alg=encr,
        mac_alg=draw(st.sampled_from([MacAlg.HMAC_SHA_1_160, MacAlg.NULL])),
        request_verification=draw(st.booleans()),
    )


deliveries = st.composite(_delivery)


def _mutations(message: bytes, rng: random.Random, count: int) -> list[bytes]:
    """Changes that keep the size, so that the learned layout is tried on each."""
    out = []
    for _ in range(count):
        data = bytearray(message)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(data))
            data[at] = rng.choice([0, 1, 2, 0x7F, 0xFF, data[at] ^ 1 << rng.randrange(8)])
        out.append(bytes(data))
    return out


def _field_by_field(data: bytes) -> Any:
    header, payloads, end = scan_message(data, whole=False, learned=False)
    if end != len(data):  # the trailing-bytes rule, checked as the whole reading does
        return scan_message(data, learned=False)
    return header, payloads, end


@settings(max_examples=25, deadline=None)
@given(deliveries(), st.integers(0, 2**32))
def test_a_learned_layout_reads_as_field_by_field(delivery: TekDelivery, seed: int) -> None:
    message = build_tek_delivery(delivery, KEK)
    assert scan_message(message) == scan_message(message, learned=False)  # learns it
    rng = random.Random(seed)
    for data in [message, *_mutations(message, rng, 12)]:
        fast = _outcome(lambda d=data: scan_message(d))  # type: ignore[misc]
        slow = _outcome(lambda d=data: _field_by_field(d))  # type: ignore[misc]
        assert fast == slow, data.hex()


@settings(max_examples=20, deadline=None)
@given(deliveries(), st.integers(0, 2**32))
def test_learned_key_data_chains_and_fetch_data_read_as_field_by_field(
    delivery: TekDelivery, seed: int
) -> None:
    # The chain the builder encrypts, made here through the payload objects.
    chain = serialise_key_data_chain([k.to_key_data() for k in delivery.keys])
    assert scan_key_data_chain(chain) == scan_key_data_chain(chain, learned=False)
    rng = random.Random(seed)
    for data in [chain, *_mutations(chain, rng, 12)]:
        fast = _outcome(lambda d=data: scan_key_data_chain(d, 7))  # type: ignore[misc]
        slow = _outcome(lambda d=data: scan_key_data_chain(d, 7, learned=False))  # type: ignore[misc]
        assert fast == slow, data.hex()
    if delivery.fetch is None and delivery.lifetime is None:
        return
    ext = next(
        p
        for p in parse_message(build_tek_delivery(delivery, KEK)).payloads
        if isinstance(p, GeneralExtensionPayload)
    )
    assert decode_fetch_data(ext.data) == (delivery.fetch, delivery.lifetime)
    for data in [ext.data, *_mutations(ext.data, rng, 12)]:
        fast = _outcome(lambda d=data: decode_fetch_data(d, 3))  # type: ignore[misc]
        slow = _outcome(lambda d=data: decode_fetch_data(d, 3, learned=False))  # type: ignore[misc]
        assert fast == slow, data.hex()


@settings(max_examples=25, deadline=None)
@given(deliveries(), st.integers(0, 2**32))
def test_deliveries_of_a_learned_shape_encode_as_the_payload_objects_do(
    delivery: TekDelivery, seed: int
) -> None:
    first = build_tek_delivery(delivery, KEK)
    # Same shape, other values: new keys, salts, MKIs, RAND, CSB ID, counter or time.
    rng = random.Random(seed)
    again = new_tek_delivery(
        csb_id=rng.getrandbits(32),
        keys=[
            TekKey(
                rng.randbytes(len(k.tek)),
                None if k.salt is None else rng.randbytes(len(k.salt)),
                None if k.mki is None else rng.randbytes(len(k.mki)),
            )
            for k in delivery.keys
        ],
        now=NOW + rng.random(),
        rand=rng.randbytes,
        counter=rng.getrandbits(32) if delivery.timestamp.ts_type is TsType.COUNTER else None,
        cs_map=[SrtpCs(rng.getrandbits(8), rng.getrandbits(32), rng.getrandbits(32))],
        policies=delivery.policies,
        id_i=delivery.id_i,
        id_r=delivery.id_r,
        fetch=delivery.fetch,
        lifetime=delivery.lifetime,
        encr_alg=delivery.encr_alg,
        mac_alg=delivery.mac_alg,
        request_verification=delivery.v_flag,
    )
    for d, message in ((delivery, first), (again, build_tek_delivery(again, KEK))):
        assert serialise_message(parse_message(message)) == message
        state = ReplayState(ReplayMode.NONE)
        verified = parse_and_verify(message, KEK, state, NOW, allow_null_mac=True)
        assert verified.delivery == d
        assert [(k.tek, k.salt, k.mki) for k in verified.keys] == [
            (k.tek, k.salt, k.mki) for k in d.keys
        ]
        response = build_verification(d, KEK)
        assert verify_verification(response, d, KEK).csb_id == d.csb_id


def test_a_value_too_large_for_a_learned_shape_is_still_named() -> None:
    keys = [TekKey(bytes(16), bytes(14), b"\x00\x00\x01")]
    d = new_tek_delivery(csb_id=1, keys=keys, now=NOW, counter=5, rand=lambda n: bytes(n))
    build_tek_delivery(d, KEK)  # learns the shape
    too_big = new_tek_delivery(csb_id=2**32, keys=keys, now=NOW, counter=5, rand=lambda n: bytes(n))
    outcome = _outcome(lambda: build_tek_delivery(too_big, KEK))
    assert outcome[0] == "EncodeError" and "CSB ID" in outcome[1][3]

"""Benchmark of MIKEY TEK delivery messages (:mod:`mbmssec.impl.protocols.mikey_messages`).

For each message shape (KEMAC AES-CM-128 or AES-KW-128, one or four TEKs, all with
HMAC-SHA-1-160), it measures how many messages per second one core builds
(:func:`build_tek_delivery`) and then parses and verifies (:func:`parse_and_verify`:
structure, MAC check, replay check, decryption, Key data chain, the delivery's
objects), and the same for the UE's verification message.  Speed is a ratio against a
reference measured in the same run that does the same cryptography and no encoding:
the MIKEY-1 PRF (RFC 3830 4.1.2, P over HMAC-SHA-1) deriving the message keys from the
KEK at both ends (4.1.4), the AES (CTR with the 4.2.3 IV, or key wrap) of the Key data
chain and its inverse, the HMAC-SHA-1-160 over the same message bytes and its check,
all through the same functions (:mod:`mbmssec.impl.protocols.mikey_crypto`) as the
messages use.  A ratio of 0.5 means the encoding, parsing and checks cost as much as
the cryptography they wrap.

Times are CPU time of this process (:func:`time.process_time`) over several interleaved
rounds; each round times every shape's messages and their reference back to back, each
function over the same CPU time.  A rate is the best round's; the ratio is the median
over the rounds of the ratio measured within each round, so that a round slowed by other
load on a shared (virtual) machine, which slows both halves of it, moves the ratio less
than it moves either rate.

Run ``python -m mbmssec.bench.mikey_bench [--quick] [--json]``.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from mbmssec.bench.benchmark import Benchmark, Figure, Result
from mbmssec.bench.plotting import ratios_plot
from mbmssec.impl.protocols.mikey import (
    EncrAlg,
    FetchAtTime,
    IdPayload,
    IdType,
    MacAlg,
    SrtpCs,
    SrtpEncrAlg,
    SrtpPolicy,
    mac_length,
    serialise_key_data_chain,
)
from mbmssec.impl.protocols.mikey_crypto import (
    compute_mac,
    derive_message_keys,
    kemac_decrypt,
    kemac_encrypt,
    verify_mac,
)
from mbmssec.impl.protocols.mikey_messages import (
    ReplayMode,
    ReplayState,
    TekDelivery,
    TekKey,
    build_tek_delivery,
    build_verification,
    new_tek_delivery,
    ntp_from_unix,
    parse_and_verify,
    verify_verification,
)

NOW = 1_760_000_000.0


@dataclass(frozen=True)
class MikeySize:
    """How long to time each message shape and its reference: ``rounds`` interleaved
    rounds, each timing every function over about ``window`` seconds of CPU time."""

    rounds: int
    window: float


QUICK: Final = MikeySize(rounds=40, window=0.002)
"""Many short rounds: on a machine shared with other work, each function needs a round
that no other process disturbs, and a short round is more likely to be one (ten rounds of
3 ms left a ratio 0.35 in one run and 0.85 in the next; forty of 2 ms, about 1 s for
the four shapes, narrow that, though a run under heavy load can still be off)."""
FULL: Final = MikeySize(rounds=60, window=0.01)


def _rates(fns: list[Callable[[], object]], size: MikeySize) -> list[list[float]]:
    """Calls per CPU second of each function in each of ``size.rounds`` interleaved rounds.

    Each function is timed over the same CPU time per round (its number of calls is set
    once from a first run), so that the measured code and its reference are equally
    exposed to other load on the machine.
    """
    calls = []
    for fn in fns:
        fn()  # warm up caches, lazy imports and learned layouts
        n = 0
        start = time.process_time()
        while time.process_time() - start < size.window:
            fn()
            n += 1
        calls.append(n)
    rates: list[list[float]] = [[] for _ in fns]
    for _ in range(size.rounds):
        for i, fn in enumerate(fns):
            start = time.process_time()
            for _ in range(calls[i]):
                fn()
            elapsed = time.process_time() - start
            if elapsed > 0:
                rates[i].append(calls[i] / elapsed)
    return rates


def _paired_ratio(measured: list[float], reference: list[float]) -> float:
    """The median over the rounds of measured / reference within one round."""
    return statistics.median(m / r for m, r in zip(measured, reference, strict=True))


REFERENCE: Final = (
    "same crypto, no encoding: MIKEY-1 PRF (HMAC-SHA-1) key derivation at both ends, "
    "{encr} + inverse, HMAC-SHA-1-160 + check (same run; ratio: median of per-round ratios)"
)
V_REFERENCE: Final = (
    "same crypto, no encoding: MIKEY-1 PRF (HMAC-SHA-1) auth key at both ends, "
    "HMAC-SHA-1-160 + check (same run; ratio: median of per-round ratios)"
)


def _reference(delivery: TekDelivery, kek: bytes, message: bytes) -> Callable[[], object]:
    """The delivery's cryptography without its encoding, as the BM-SC and the UE do it:
    derive the message keys, encrypt the Key data chain, MAC the message; derive them
    again, check the MAC, decrypt."""
    d = delivery
    chain = serialise_key_data_chain([k.to_key_data() for k in d.keys])
    body = message[: -mac_length(d.mac_alg)]
    ts = d.timestamp.value_bytes()

    def once() -> object:
        keys = derive_message_keys(kek, d.csb_id, d.rand, d.encr_alg, d.mac_alg)
        encrypted = kemac_encrypt(d.encr_alg, keys, chain, d.csb_id, ts)
        tag = compute_mac(d.mac_alg, keys.auth_key, body)
        keys = derive_message_keys(kek, d.csb_id, d.rand, d.encr_alg, d.mac_alg)
        if not verify_mac(d.mac_alg, keys.auth_key, body, tag):
            raise AssertionError("reference MAC does not verify")
        return kemac_decrypt(d.encr_alg, keys, encrypted, d.csb_id, ts)

    return once


def _verification_reference(
    delivery: TekDelivery, kek: bytes, response: bytes
) -> Callable[[], object]:
    """The verification message's cryptography without its encoding (RFC 3830 5.2)."""
    d = delivery
    ids = b"".join(i.data for i in (d.id_i, d.id_r) if i is not None)
    data = response[: -mac_length(MacAlg.HMAC_SHA_1_160)] + ids + d.timestamp.value_bytes()

    def once() -> object:
        keys = derive_message_keys(kek, d.csb_id, d.rand, EncrAlg.NULL, MacAlg.HMAC_SHA_1_160)
        tag = compute_mac(MacAlg.HMAC_SHA_1_160, keys.auth_key, data)
        keys = derive_message_keys(kek, d.csb_id, d.rand, EncrAlg.NULL, MacAlg.HMAC_SHA_1_160)
        if not verify_mac(MacAlg.HMAC_SHA_1_160, keys.auth_key, data, tag):
            raise AssertionError("reference MAC does not verify")
        return tag

    return once


def _functions(encr: EncrAlg, n_keys: int) -> tuple[dict[str, object], list[Callable[[], object]]]:
    """One message shape: its description and the four functions timed for it (the
    delivery's round trip and its reference, the verification message's and its)."""
    kek = os.urandom(16)
    keys = [TekKey(os.urandom(16), os.urandom(14), bytes([i, 0, 0])) for i in range(n_keys)]
    delivery = new_tek_delivery(
        csb_id=0x01020304,
        keys=keys,
        now=NOW,
        counter=1,
        cs_map=[SrtpCs(0, 0xCAFEBABE, 0)],
        policies=[SrtpPolicy(0, encr_alg=SrtpEncrAlg.AES_CM, auth_tag_len=10)],
        id_i=IdPayload(IdType.URI, b"http://bmsc.example/"),
        id_r=IdPayload(IdType.NAI, b"ue@example"),
        fetch=FetchAtTime(ntp_from_unix(NOW + 60)),
        lifetime=3600,
        encr_alg=encr,
        request_verification=True,
    )
    state = ReplayState(ReplayMode.NONE)
    message = build_tek_delivery(delivery, kek)
    response = build_verification(delivery, kek)
    if parse_and_verify(message, kek, state, NOW).delivery != delivery:
        raise AssertionError("the TEK delivery does not round-trip")

    def round_trip() -> object:
        return parse_and_verify(build_tek_delivery(delivery, kek), kek, state, NOW)

    def verification_round_trip() -> object:
        return verify_verification(build_verification(delivery, kek), delivery, kek)

    shape: dict[str, object] = {
        "encryption": encr.name,
        "keys": n_keys,
        "message_bytes": len(message),
        "verification_bytes": len(response),
    }
    return shape, [
        round_trip,
        _reference(delivery, kek, message),
        verification_round_trip,
        _verification_reference(delivery, kek, response),
    ]


def _case(shape: dict[str, object], rates: list[list[float]]) -> dict[str, object]:
    mikey_rates, reference_rates, v_rates, v_references = rates
    return {
        "rounds": len(mikey_rates),
        "round_rates": {
            "delivery": mikey_rates,
            "reference": reference_rates,
            "verification": v_rates,
            "verification_reference": v_references,
        },
        **shape,
        "build_parse_verify_per_second": max(mikey_rates),
        "reference_per_second": max(reference_rates),
        "ratio_to_reference": _paired_ratio(mikey_rates, reference_rates),
        "best_rates_ratio": max(mikey_rates) / max(reference_rates),
        "verification_build_verify_per_second": max(v_rates),
        "verification_reference_per_second": max(v_references),
        "verification_ratio_to_reference": _paired_ratio(v_rates, v_references),
        "verification_best_rates_ratio": max(v_rates) / max(v_references),
    }


SHAPES: Final = tuple(
    (encr, n_keys) for n_keys in (1, 4) for encr in (EncrAlg.AES_CM_128, EncrAlg.AES_KW_128)
)


def measure(size: MikeySize) -> dict[str, object]:
    """Time each message shape and its reference; return the figures as a dict.

    Every round times all shapes' functions one after another, so that a spell of other
    load on the machine falls on a few rounds of every shape rather than on all rounds of
    the shape being timed then (the median of the per-round ratios leaves those out)."""
    shapes, fns = [], []
    for encr, n_keys in SHAPES:
        shape, functions = _functions(encr, n_keys)
        shapes.append(shape)
        fns += functions
    rates = _rates(fns, size)
    cases = [_case(shape, rates[4 * i : 4 * i + 4]) for i, shape in enumerate(shapes)]
    return {
        "benchmark": "mikey",
        "quick": size == QUICK,
        "rounds": size.rounds,
        "window_seconds": size.window,
        "reference": REFERENCE.format(encr="AES"),
        "cases": cases,
    }


_CIPHER_NAMES: Final = {"AES_CM_128": "AES-CM-128", "AES_KW_128": "AES-KW-128 (key wrap)"}


def figures(r: Result) -> list[Figure]:
    """Messages/s of each shape, delivery and verification, against the same crypto."""
    rows = []
    for case in r["cases"]:
        keys = int(case["keys"])
        shape = f"{case['encryption']}, {keys} TEK{'s' if keys > 1 else ''}"
        cipher = _CIPHER_NAMES.get(str(case["encryption"]), str(case["encryption"]))
        rows.append(
            Figure(
                f"TEK delivery build + parse + verify, {shape}",
                float(case["build_parse_verify_per_second"]),
                "messages/s",
                REFERENCE.format(encr=cipher),
                float(case["reference_per_second"]),
                "measured",
                True,
                float(case["ratio_to_reference"]),
            )
        )
        rows.append(
            Figure(
                f"verification message build + verify, {shape}",
                float(case["verification_build_verify_per_second"]),
                "messages/s",
                V_REFERENCE,
                float(case["verification_reference_per_second"]),
                "measured",
                True,
                float(case["verification_ratio_to_reference"]),
            )
        )
    return rows


BENCHMARK: Final = Benchmark(
    name="mikey",
    description="MIKEY TEK delivery messages/s against the same crypto without encoding",
    measure=measure,
    quick=QUICK,
    full=FULL,
    figures=figures,
    plots=(
        ratios_plot(
            "mikey_vs_reference.png",
            "MIKEY: messages/s against the same crypto without encoding",
            "MIKEY against its cryptography alone (same run)",
        ),
    ),
)


if __name__ == "__main__":
    from mbmssec.bench.suite import standalone

    sys.exit(standalone(BENCHMARK))

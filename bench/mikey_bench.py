"""Benchmark of MIKEY TEK delivery messages (:mod:`mbmssec.impl.protocols.mikey_messages`).

For a few message shapes (KEMAC AES-CM-128 or AES-KW-128, one or four TEKs, all
with HMAC-SHA-1-160), it measures how many messages per second one core builds
(:func:`build_tek_delivery`) and then parses and verifies
(:func:`parse_and_verify`: MAC check, replay check, decryption, decoding), and the
same for the UE's verification message. Speed is reported as a ratio against a
reference measured in the same run over the same bytes: a bare HMAC-SHA-1 over the
whole message plus AES (CTR, or key wrap) over the key data, once to protect and
once to check, i.e. the irreducible cryptography without MIKEY's key derivation,
encoding and checks.

Run ``python -m mbmssec.bench.mikey_bench [--quick] [--json]``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap, aes_key_wrap

from mbmssec.bench.benchmark import Benchmark, Figure, Result
from mbmssec.bench.plotting import ratios_plot
from mbmssec.impl.protocols.mikey import (
    EncrAlg,
    FetchAtTime,
    IdPayload,
    IdType,
    SrtpCs,
    SrtpEncrAlg,
    SrtpPolicy,
    serialise_key_data_chain,
)
from mbmssec.impl.protocols.mikey_messages import (
    ReplayMode,
    ReplayState,
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
    """How many messages of each shape (and of its reference) to time, over three rounds."""

    iterations: int


QUICK: Final = MikeySize(iterations=300)
FULL: Final = MikeySize(iterations=5_000)


def _rates(fns: list[Callable[[], object]], iterations: int, rounds: int = 3) -> list[float]:
    """Calls per second of each function: best of ``rounds`` interleaved runs.

    Interleaving the measured code with its reference, and keeping each one's best
    round, makes the ratio robust to other load on the machine.
    """
    best = [0.0] * len(fns)
    per_round = max(1, iterations // rounds)
    for fn in fns:
        fn()  # warm up caches and lazy imports
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            for _ in range(per_round):
                fn()
            best[i] = max(best[i], per_round / (time.perf_counter() - start))
    return best


def _reference(encr: EncrAlg, message: bytes, key_data: bytes) -> Callable[[], object]:
    """Bare HMAC-SHA-1 over the message + AES over the key data, protect then check."""
    mac_key, aes_key, iv = os.urandom(20), os.urandom(16), os.urandom(16)

    def mac(data: bytes) -> bytes:
        h = hmac.HMAC(mac_key, hashes.SHA1())
        h.update(data)
        return h.finalize()

    def ctr(data: bytes) -> bytes:
        c = Cipher(algorithms.AES(aes_key), modes.CTR(iv)).encryptor()
        return c.update(data) + c.finalize()

    def once() -> object:
        if encr is EncrAlg.AES_KW_128:
            wrapped = aes_key_wrap(aes_key, key_data)
            tag = mac(message)
            assert mac(message) == tag
            return aes_key_unwrap(aes_key, wrapped)
        enc = ctr(key_data)
        tag = mac(message)
        assert mac(message) == tag
        return ctr(enc)

    return once


def _case(encr: EncrAlg, n_keys: int, iterations: int) -> dict[str, object]:
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

    def round_trip() -> object:
        return parse_and_verify(build_tek_delivery(delivery, kek), kek, state, NOW)

    def verification_round_trip() -> object:
        return verify_verification(build_verification(delivery, kek), delivery, kek)

    chain = serialise_key_data_chain([k.to_key_data() for k in keys])
    mikey_rate, reference_rate, v_rate, v_reference = _rates(
        [
            round_trip,
            _reference(encr, message, chain),
            verification_round_trip,
            _reference(EncrAlg.NULL, response, b""),
        ],
        iterations,
    )
    return {
        "encryption": encr.name,
        "keys": n_keys,
        "message_bytes": len(message),
        "verification_bytes": len(response),
        "build_parse_verify_per_second": mikey_rate,
        "reference_per_second": reference_rate,
        "ratio_to_reference": mikey_rate / reference_rate,
        "verification_build_verify_per_second": v_rate,
        "verification_reference_per_second": v_reference,
        "verification_ratio_to_reference": v_rate / v_reference,
    }


def measure(size: MikeySize) -> dict[str, object]:
    """Time each message shape and its reference; return the figures as a dict."""
    iterations = size.iterations
    cases = [
        _case(EncrAlg.AES_CM_128, 1, iterations),
        _case(EncrAlg.AES_KW_128, 1, iterations),
        _case(EncrAlg.AES_CM_128, 4, iterations),
    ]
    return {
        "benchmark": "mikey",
        "quick": size == QUICK,
        "iterations": iterations,
        "reference": "HMAC-SHA-1 over the message + AES over the key data, protect and check",
        "cases": cases,
    }


def figures(r: Result) -> list[Figure]:
    """Messages/s of each shape, delivery and verification, against bare crypto (same run)."""
    rows = []
    for case in r["cases"]:
        keys = int(case["keys"])
        shape = f"{case['encryption']}, {keys} TEK{'s' if keys > 1 else ''}"
        rows.append(
            Figure(
                f"TEK delivery build + parse + verify, {shape}",
                float(case["build_parse_verify_per_second"]),
                "messages/s",
                "bare HMAC-SHA-1 + AES over the same bytes (same run)",
                float(case["reference_per_second"]),
                "measured",
                True,
            )
        )
        rows.append(
            Figure(
                f"verification message build + verify, {shape}",
                float(case["verification_build_verify_per_second"]),
                "messages/s",
                "bare HMAC-SHA-1 over the same bytes (same run)",
                float(case["verification_reference_per_second"]),
                "measured",
                True,
            )
        )
    return rows


BENCHMARK: Final = Benchmark(
    name="mikey",
    description="MIKEY TEK delivery messages/s against bare HMAC + AES",
    measure=measure,
    quick=QUICK,
    full=FULL,
    figures=figures,
    plots=(
        ratios_plot(
            "mikey_vs_reference.png",
            "MIKEY: messages/s against bare crypto",
            "MIKEY against bare HMAC + AES (same run)",
        ),
    ),
)


if __name__ == "__main__":
    from mbmssec.bench.suite import standalone

    sys.exit(standalone(BENCHMARK))

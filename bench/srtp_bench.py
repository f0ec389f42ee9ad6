"""SRTP throughput: mbmssec's batch API against libsrtp 2.x called per packet via ctypes.

Both sides protect and unprotect the same RTP packets (160-byte payload, one SSRC, MBMS
profile: AES-CM-128, HMAC-SHA1-80, 4-byte MKI). Each figure is the best of several
interleaved repetitions, in packets per second; the ratios (ours / libsrtp) are what to
read, since absolute numbers depend on the machine. The run also checks that both
implementations produce the same bytes, so the comparison is of equal work.

Run ``python -m mbmssec.bench.srtp_bench [--quick] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial

from mbmssec.bench import libsrtp
from mbmssec.impl.protocols.srtp import MasterKey, SrtpPolicy, SrtpReceiver, SrtpSender

__all__ = ["BATCH_SIZE", "PAYLOAD_BYTES", "main", "run"]

PAYLOAD_BYTES = 160
BATCH_SIZE = 256
_SSRC = 0x4D424D53
_MKI = b"\x00\x00\x00\x01"
_KEY = bytes.fromhex("e1f97a0d3e018be0d64fa32c06de4139")
_SALT = bytes.fromhex("0ec675ad498afeebb6960b3aabe6")


def _packets(n: int) -> list[bytes]:
    payload = bytes(range(PAYLOAD_BYTES))
    return [struct.pack("!BBHII", 0x80, 96, i & 0xFFFF, i * 160, _SSRC) + payload for i in range(n)]


def _best(samples: list[float]) -> float:
    return min(samples)


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _batched(call: Callable[[Sequence[bytes]], list[bytes]], items: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for i in range(0, len(items), BATCH_SIZE):
        out.extend(call(items[i : i + BATCH_SIZE]))
    return out


def _each(call: Callable[[bytes], bytes], items: list[bytes]) -> list[bytes]:
    return [call(p) for p in items]


def run(quick: bool) -> dict[str, float]:
    """Measure and return named packet rates (packets/s) and ratios (ours / libsrtp).

    ``quick`` uses fewer packets and repetitions (for CI smoke runs). Keys:
    ``ours_protect_batch_pps``, ``ours_unprotect_batch_pps`` (batch API, BATCH_SIZE per
    call), ``ours_protect_single_pps``, ``ours_unprotect_single_pps`` (one call per
    packet), ``libsrtp_protect_pps``, ``libsrtp_unprotect_pps`` (ctypes, one call per
    packet), ``protect_ratio``, ``unprotect_ratio`` (batch / libsrtp),
    ``protect_single_ratio``, ``unprotect_single_ratio``, and ``outputs_identical``
    (1.0 when libsrtp and we produced the same SRTP bytes), ``libsrtp_available``,
    ``packets``, ``repetitions``, ``batch_size``, ``payload_bytes``.
    """
    n = 2000 if quick else 20000
    reps = 3 if quick else 7
    plain = _packets(n)
    policy = SrtpPolicy(mki_length=len(_MKI))
    keys = (MasterKey(_MKI, _KEY, _SALT),)
    have_lib = libsrtp.available()

    protected = SrtpSender(policy, keys).protect_many(plain)
    identical = 0.0
    if have_lib:
        lib_key = [libsrtp.LibSrtpKey(_KEY, _SALT, _MKI)]
        with libsrtp.LibSrtpSession(lib_key, direction=libsrtp.Direction.ANY_OUTBOUND) as tx:
            identical = 1.0 if [tx.protect(p) for p in plain] == protected else 0.0

    times: dict[str, list[float]] = {}

    def record(name: str, seconds: float) -> None:
        times.setdefault(name, []).append(seconds)

    for _ in range(reps):
        sender = SrtpSender(policy, keys)
        record("ours_protect_batch", _timed(partial(_batched, sender.protect_many, plain)))
        receiver = SrtpReceiver(policy, keys)
        unprotect_batch = partial(_batched, receiver.unprotect_many, protected)
        record("ours_unprotect_batch", _timed(unprotect_batch))
        sender = SrtpSender(policy, keys)
        record("ours_protect_single", _timed(partial(_each, sender.protect, plain)))
        receiver = SrtpReceiver(policy, keys)
        record("ours_unprotect_single", _timed(partial(_each, receiver.unprotect, protected)))
        if have_lib:
            with libsrtp.LibSrtpSession(lib_key, direction=libsrtp.Direction.ANY_OUTBOUND) as tx:
                record("libsrtp_protect", _timed(partial(_each, tx.protect, plain)))
            with libsrtp.LibSrtpSession(lib_key, direction=libsrtp.Direction.ANY_INBOUND) as rx:
                record("libsrtp_unprotect", _timed(partial(_each, rx.unprotect, protected)))

    result: dict[str, float] = {
        f"{name}_pps": n / _best(samples) for name, samples in times.items()
    }
    if have_lib:
        for op in ("protect", "unprotect"):
            lib = result[f"libsrtp_{op}_pps"]
            result[f"{op}_ratio"] = result[f"ours_{op}_batch_pps"] / lib
            result[f"{op}_single_ratio"] = result[f"ours_{op}_single_pps"] / lib
    result.update(
        outputs_identical=identical,
        libsrtp_available=1.0 if have_lib else 0.0,
        packets=float(n),
        repetitions=float(reps),
        batch_size=float(BATCH_SIZE),
        payload_bytes=float(PAYLOAD_BYTES),
    )
    return result


def main(argv: list[str] | None = None) -> int:
    """Print the benchmark as a table (or JSON); exit 1 if the outputs disagreed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer packets and repetitions")
    parser.add_argument("--json", action="store_true", help="print the result dict as JSON")
    args = parser.parse_args(argv)
    result = run(args.quick)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(
            f"SRTP, {int(result['packets'])} packets of {PAYLOAD_BYTES}-byte payload, "
            f"best of {int(result['repetitions'])}; batch size {BATCH_SIZE}"
        )
        for name in (
            "ours_protect_batch",
            "ours_unprotect_batch",
            "ours_protect_single",
            "ours_unprotect_single",
            "libsrtp_protect",
            "libsrtp_unprotect",
        ):
            key = f"{name}_pps"
            if key in result:
                pps = result[key]
                print(f"  {name:<24} {pps:>12,.0f} packets/s  {1e6 / pps:7.2f} us/packet")
        if result["libsrtp_available"]:
            print("ratios (ours / libsrtp per packet via ctypes):")
            for key in ("protect_ratio", "unprotect_ratio"):
                print(f"  {key:<24} {result[key]:6.2f}  (batch API)")
            for key in ("protect_single_ratio", "unprotect_single_ratio"):
                print(f"  {key:<24} {result[key]:6.2f}  (one call per packet)")
            print(f"  identical SRTP output: {'yes' if result['outputs_identical'] else 'NO'}")
        else:
            print("libsrtp 2.x not available: no reference figures")
    if result["libsrtp_available"] and not result["outputs_identical"]:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""SRTP throughput: mbmssec's batch API against libsrtp 2.x called per packet via ctypes.

Both sides protect and unprotect the same RTP packets (160-byte payload, one SSRC, MBMS
profile: AES-CM-128, HMAC-SHA1-80, 4-byte MKI). Each figure is the best of several
interleaved repetitions, in packets per second; the ratios (ours / libsrtp) are what to
read, since absolute numbers depend on the machine. The run also checks that both
implementations produce the same bytes, so the comparison is of equal work; if they do
not, the benchmark fails.

Run ``python -m mbmssec.bench.srtp_bench [--quick] [--json]``.
"""

from __future__ import annotations

import struct
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Final

from mbmssec.bench.benchmark import Benchmark, Figure, Plot, PlotData, Result
from mbmssec.bench.plotting import bars, pyplot, save, unity
from mbmssec.impl.protocols.srtp import MasterKey, SrtpPolicy, SrtpReceiver, SrtpSender
from mbmssec.oracles import libsrtp

__all__ = ["BATCH_SIZE", "BENCHMARK", "PAYLOAD_BYTES", "SrtpSize", "measure"]

PAYLOAD_BYTES = 160
BATCH_SIZE = 256
_SSRC = 0x4D424D53
_MKI = b"\x00\x00\x00\x01"
_KEY = bytes.fromhex("e1f97a0d3e018be0d64fa32c06de4139")
_SALT = bytes.fromhex("0ec675ad498afeebb6960b3aabe6")


@dataclass(frozen=True)
class SrtpSize:
    """How much to time: packets per repetition, and repetitions (the best one counts)."""

    packets: int
    repetitions: int


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


def measure(size: SrtpSize) -> dict[str, float]:
    """Measure and return named packet rates (packets/s) and ratios (ours / libsrtp).

    Keys:
    ``ours_protect_batch_pps``, ``ours_unprotect_batch_pps`` (batch API, BATCH_SIZE per
    call), ``ours_protect_single_pps``, ``ours_unprotect_single_pps`` (one call per
    packet), ``libsrtp_protect_pps``, ``libsrtp_unprotect_pps`` (ctypes, one call per
    packet), ``protect_ratio``, ``unprotect_ratio`` (batch / libsrtp),
    ``protect_single_ratio``, ``unprotect_single_ratio``, and ``outputs_identical``
    (1.0 when libsrtp and we produced the same SRTP bytes), ``libsrtp_available``,
    ``packets``, ``repetitions``, ``batch_size``, ``payload_bytes``.
    """
    n = size.packets
    reps = size.repetitions
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


def figures(r: Result) -> list[Figure]:
    """Packets/s of each API against libsrtp (same run), and whether the bytes agree."""
    rows = []
    have_lib = bool(r.get("libsrtp_available"))
    for op in ("protect", "unprotect"):
        for api, label in (
            ("batch", f"batch API ({int(r['batch_size'])}/call)"),
            ("single", "one call per packet"),
        ):
            value = float(r[f"ours_{op}_{api}_pps"])
            if have_lib:
                rows.append(
                    Figure(
                        f"{op}, {label}",
                        value,
                        "packets/s",
                        "libsrtp, one call per packet via ctypes (same run)",
                        float(r[f"libsrtp_{op}_pps"]),
                        "measured",
                        True,
                    )
                )
            else:
                rows.append(Figure(f"{op}, {label}", value, "packets/s", "libsrtp not available"))
    if have_lib:
        rows.append(
            Figure(
                "SRTP bytes identical to libsrtp's",
                float(r["outputs_identical"]),
                "check",
                "libsrtp's output for the same packets",
            )
        )
    return rows


def check(r: Result) -> str | None:
    """Fail the run if libsrtp and we produced different bytes (the work was not equal)."""
    if r.get("libsrtp_available") and not r.get("outputs_identical"):
        return "libsrtp and mbmssec produced different SRTP bytes for the same packets"
    return None


def _plot(data: PlotData, path: Path) -> bool:
    r = data.result
    if not r.get("libsrtp_available"):
        return False
    labels, values = [], []
    for op in ("protect", "unprotect"):
        for api, name in (("", "batch"), ("_single", "one call/packet")):
            labels.append(f"{op}\n{name}")
            values.append(float(r[f"{op}{api}_ratio"]))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    bars(ax, labels, values)
    unity(ax, "libsrtp = 1")
    ax.set_ylabel("packets/s, ours / libsrtp")
    ax.set_title(
        f"SRTP throughput against libsrtp, {int(r['packets']):,} packets of "
        f"{int(r['payload_bytes'])} bytes (same run)"
    )
    ax.legend(fontsize="small")
    return save(fig, path)


BENCHMARK: Final = Benchmark(
    name="srtp",
    description="SRTP protect/unprotect packets/s against libsrtp",
    measure=measure,
    quick=SrtpSize(packets=2000, repetitions=3),
    full=SrtpSize(packets=20000, repetitions=7),
    figures=figures,
    plots=(Plot("srtp_vs_libsrtp.png", "SRTP: ours against libsrtp", _plot),),
    check=check,
)


if __name__ == "__main__":
    from mbmssec.bench.suite import standalone

    sys.exit(standalone(BENCHMARK))

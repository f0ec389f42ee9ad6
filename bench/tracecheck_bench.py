"""Trace checking speed: events/s of ``mbmssec trace-check`` against the number of UEs.

Event logs are synthesised in the demo's event shapes (``Start``, ``Generate``,
``Activate``, ``Subscribe``, ``Authenticate``/``Deliver``/``Register`` at each UE's fetch
time, ``Send`` and one ``Receive`` per UE and packet), one service re-keyed every period,
with about the same number of events at every population size (fewer packets per period
for more UEs), so the rate shows how the cost of an event depends on the population.
Every synthetic log is first checked to be accepted (a rejected one fails the benchmark).
Each size is timed on a prefix of its log that doubles until one check takes at least
``budget`` seconds (a prefix of a log is a log), so the run stays short however slow the
checker is; that prefix is checked :data:`REPEATS` times and the fastest counts.  The
target is 20,000 events/s at every size.

Memory: at the largest size, a log of ``periods`` and one of ``memory_factor`` times as
many periods are each generated period by period and checked as a stream (never a list),
under :mod:`tracemalloc`; the peak of each is reported (MiB).  With memory bounded by the
live state the longer log peaks no higher than the shorter one.

Run ``python -m mbmssec.bench.tracecheck_bench [--quick] [--json]``.
"""

from __future__ import annotations

import gc
import sys
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from mbmssec.bench.benchmark import Benchmark, Figure, Plot, PlotData, Result
from mbmssec.bench.plotting import pyplot, save
from mbmssec.refinement.tracecheck import check_events
from mbmssec.spec.loader import load_spec

TARGET: Final = 20_000.0
"""Events per second the checker should reach at every population size."""

SERVICE: Final = "239.255.0.1"
PERIOD: Final = 1.0
GRACE: Final = 0.2


@dataclass(frozen=True)
class TraceSize:
    """Population sizes, periods per log, events aimed at per log, the seconds of
    checking after which a prefix is long enough to time, and how many times longer the
    second log of the memory measurement is."""

    ues: tuple[int, ...]
    periods: int
    events: int
    budget: float
    memory_factor: int = 4


def _ev(t: float, event: str, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "t": round(t, 6),
        "event": event,
        "ue": None,
        "service": SERVICE,
        "mki": None,
        "tek": None,
        "ok": True,
        "reason": None,
        "source": "bmsc",
    }
    out.update(kw)
    if out["mki"] is not None and out["service"] is not None:
        out["tek"] = f"{out['service']}/{out['mki']}"
    return out


def synthesise(ues: int, periods: int, events: int) -> list[dict[str, Any]]:
    """A log of ``ues`` UEs over ``periods`` re-key periods with about ``events`` events."""
    return list(generate(ues, periods, events / periods))


def generate(ues: int, periods: int, per_period: float) -> Iterator[dict[str, Any]]:
    """The events of a log of ``ues`` UEs over ``periods`` re-key periods with about
    ``per_period`` events each, in time order, one period at a time (every event of a
    period lies within it, so sorting each period sorts the log)."""
    profile = dict(load_spec().baseline())
    names = [f"00101{i:010d}" for i in range(1, ues + 1)]
    packets = max(2, round((per_period - 3 * ues) / (ues + 1)))
    t0 = 1_800_000_000.0
    out: list[tuple[float, int, dict[str, Any]]] = []
    order = 0

    def add(e: dict[str, Any]) -> None:
        nonlocal order
        out.append((e["t"], order, e))
        order += 1

    def flush() -> Iterator[dict[str, Any]]:
        out.sort(key=lambda x: (x[0], x[1]))
        yield from (e for _, _, e in out)
        out.clear()

    add(_ev(t0, "Start", service=None, reason="demo", source="demo", profile=profile))
    add(_ev(t0, "Start", service=None, reason="bmsc", profile=profile, fetch_grace=GRACE))
    add(_ev(t0, "Generate", mki=1))
    add(_ev(t0, "Activate", mki=1))
    add(_ev(t0, "Generate", mki=2))
    for name in names:
        add(_ev(t0, "Subscribe", ue=name))
    counter = dict.fromkeys(names, 0)

    def fetch(t: float, name: str, mkis: list[int], due: float) -> None:
        counter[name] += 1
        common = {"ue": name, "mki": mkis[-1], "mkis": mkis, "counter": counter[name]}
        add(_ev(t, "Authenticate", ue=name))
        add(_ev(t, "Deliver", fetch_time=round(due, 6), **common))
        add(_ev(t + 0.004, "Register", source="ue", fetch_time=round(due, 6), **common))

    def due(k: int, u: int) -> float:  # in period k's fetch window
        return t0 + k * PERIOD + 0.1 * PERIOD + 0.6 * PERIOD * (u + 0.5) / ues

    for u, name in enumerate(names):
        fetch(t0 + 0.001 + 0.05 * u / ues, name, [1, 2], due(0, u))
    seq = 0
    for k in range(periods):
        start = t0 + k * PERIOD
        active = k + 1
        if k > 0:
            add(_ev(start, "Activate", mki=active))
            add(_ev(start, "Generate", mki=active + 1))
        for u, name in enumerate(names):
            fetch(due(k, u), name, [active, active + 1], due(k + 1, u))
        for j in range(packets):
            t = start + 0.06 + 0.9 * PERIOD * j / packets
            add(_ev(t, "Send", mki=active, seq=seq, index=seq, mki_in_packet=True))
            for u, name in enumerate(names):
                add(
                    _ev(
                        t + 0.001 + 0.002 * u / ues,
                        "Receive",
                        ue=name,
                        mki=active,
                        seq=seq,
                        source="ue",
                    )
                )
            seq += 1
        yield from flush()


REPEATS: Final = 5
"""Timings of the chosen prefix; the fastest is reported (as :mod:`timeit` advises: the
slower ones measure the machine's other work, not the checker)."""


def _rate(log: list[dict[str, Any]], budget: float) -> tuple[int, float]:
    """Events and seconds of the shortest doubling prefix that takes ``budget`` seconds
    (the fastest of :data:`REPEATS` checks of it).  The synthetic log is kept in memory
    only to be timed without its generation: it is frozen out of the garbage collector's
    scans first (:func:`gc.freeze`), as a streamed log, never held, would be."""
    profile = load_spec().baseline()
    gc.collect()
    gc.freeze()
    try:
        n = min(len(log), 500)
        while True:
            took = _time(log[:n], profile)
            if took >= budget or n == len(log):
                break
            n = min(len(log), 2 * n)
        for _ in range(REPEATS - 1):
            took = min(took, _time(log[:n], profile))
        return n, took
    finally:
        gc.unfreeze()


def _time(log: list[dict[str, Any]], profile: Any) -> float:
    t0 = time.perf_counter()
    verdict = check_events(iter(log), profile)
    took = time.perf_counter() - t0
    if not verdict.ok:
        raise AssertionError(f"synthetic log rejected: {verdict.render().splitlines()[0]}")
    return took


def peak_memory(ues: int, periods: int, per_period: float) -> dict[str, Any]:
    """Peak traced memory (MiB) of checking a generated log as a stream."""
    profile = load_spec().baseline()
    tracemalloc.start()
    try:
        verdict = check_events(generate(ues, periods, per_period), profile)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    if not verdict.ok:
        raise AssertionError(f"synthetic log rejected: {verdict.render().splitlines()[0]}")
    return {
        "ues": ues,
        "periods": periods,
        "events": verdict.events,
        "peak_mib": round(peak / 2**20, 3),
    }


def measure(size: TraceSize) -> dict[str, Any]:
    rows = []
    for ues in size.ues:
        log = synthesise(ues, size.periods, size.events)
        n, took = _rate(log, size.budget)
        rows.append(
            {
                "ues": ues,
                "log_events": len(log),
                "checked_events": n,
                "seconds": round(took, 4),
                "events_per_s": round(n / took, 1),
            }
        )
    per_period = size.events / size.periods
    big = max(size.ues)
    memory = [
        peak_memory(big, periods, per_period)
        for periods in (size.periods, size.memory_factor * size.periods)
    ]
    return {
        "name": "tracecheck",
        "target_events_per_s": TARGET,
        "sizes": rows,
        "memory": memory,
    }


def figures(r: Result) -> list[Figure]:
    """Events/s at each population size against the target; peak memory of the longer
    log against the shorter one's (same run)."""
    out = [
        Figure(
            f"trace-check, {row['ues']} UEs",
            float(row["events_per_s"]),
            "events/s",
            "target",
            TARGET,
            "target",
            True,
        )
        for row in r["sizes"]
    ]
    memory = r.get("memory") or []
    if len(memory) == 2:
        short, long = memory
        out.append(
            Figure(
                f"trace-check peak memory, {long['ues']} UEs, {long['events']:,} events",
                float(long["peak_mib"]),
                "MiB",
                f"{short['events']:,} events",
                float(short["peak_mib"]),
                "measured",
                False,
            )
        )
    return out


def check(r: Result) -> str | None:
    if not r["sizes"]:
        return "no population size measured"
    return None


def _plot(data: PlotData, path: Path) -> bool:
    rows = data.result["sizes"]
    if not rows:
        return False
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = [row["ues"] for row in rows]
    ax.plot(xs, [row["events_per_s"] for row in rows], marker="o", label="trace-check")
    ax.axhline(TARGET, color="black", linestyle="--", linewidth=1, label="target")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("UEs in the log")
    ax.set_ylabel("events checked per second")
    ax.set_title("trace-check speed against the population")
    ax.legend()
    return save(fig, path)


BENCHMARK: Final = Benchmark(
    name="tracecheck",
    description="trace-check events/s against the number of UEs (5 to 1,000)",
    measure=measure,
    # quick: 5 to 1,000 UEs on short logs; full: longer logs and a longer budget
    quick=TraceSize(ues=(5, 20, 100, 1000), periods=3, events=9_000, budget=0.5),
    full=TraceSize(ues=(5, 20, 100, 300, 1000), periods=4, events=20_000, budget=2.0),
    figures=figures,
    plots=(Plot("tracecheck_rate.png", "trace-check events/s against UEs", _plot),),
    check=check,
)


if __name__ == "__main__":
    from mbmssec.bench.suite import standalone

    sys.exit(standalone(BENCHMARK))

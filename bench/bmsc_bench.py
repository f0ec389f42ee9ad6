"""Benchmark of the running BM-SC (:mod:`mbmssec.impl.net.server`): registrations per second
and the request rate it sees under each TEK fetch-spreading strategy.

1. **Registrations per second.**  A registration (TS 33.246 6.2.2 steps 2-4) is two HTTP
   requests: the first is answered with a Digest AKA challenge (a new authentication
   vector, its SQN committed to SQLite, not fsynced: the unauthenticated path), the second
   with the MIKEY TEK delivery (RES checked, authorisation checked, TEKs and counters
   committed and fsynced before the answer, by group commit with the fsync in a thread of
   its own, :class:`~mbmssec.impl.net.server.GroupCommit`).  The BM-SC runs as
   ``mbmssec serve`` runs it (SQLite with ``durability=full``, the event log in a file)
   in this process; the UEs run in a process of their own (``--ue-clients``, which may
   use another core), ``concurrency`` registrations at a time, each doing the UE's whole
   side of the work: the USIM (Milenage, AUTN check, RES), the Digest answer, the KEK,
   the MIKEY verification and decryption and the SRTP receiver's keys.  The reference,
   measured in the same run by the same client process with the same work, is a
   minimal aiohttp endpoint that replays genuine answers (a challenge and a TEK delivery
   made for each of its UEs by another BM-SC before the clock starts) and does nothing
   else: the ratio is the BM-SC's cost over HTTP's alone.  The CPU time of the server
   process and of the client process per registration are reported for both, and the
   client's busy fraction tells whether it, rather than the server, set the pace.
   A last batch runs under :mod:`cProfile` (not timed) and says where the BM-SC's time
   per registration goes (:data:`PROFILE_PARTS`).
2. **Peak request rate per fetch-spreading strategy** (option ``fetch_spreading``,
   6.2.3.2): N UEs register, then re-fetch at the fetch times the BM-SC gives through two
   re-keys; the BM-SC records when each registration request arrives, and the peak rate
   (100 ms bins) and mean rate over the re-key phase are reported for ``none``,
   ``random_interval``, ``scheduled_slots`` and ``multi_key``.

The run fails if a UE rejected a TEK delivery while re-keying.

Run ``python -m mbmssec.bench.bmsc_bench [--quick] [--json]``, or ``--profile`` for the
profile of a registration storm alone (``--profile-registrations N``, default 600).  The
result has ``registrations_per_second`` at the top (the capacity figure ``mbmssec load``
can read).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import aiohttp
from aiohttp import web
from yarl import URL

from mbmssec.bench.benchmark import Benchmark, Figure, Plot, PlotData, Result
from mbmssec.bench.plotting import bars, pyplot, save, unity
from mbmssec.impl.net.api import HttpAnswer, answer
from mbmssec.impl.net.client import UeClient, register_uri
from mbmssec.impl.net.server import BmscServer
from mbmssec.impl.protocols import aka, digest, mikey, mikey_crypto, mikey_messages, milenage
from mbmssec.impl.service import bmsc, events, store
from mbmssec.impl.service.bmsc import REGISTER_PATH, BmscConfig, BmscCore, RegisterRequest
from mbmssec.impl.service.events import EventLog
from mbmssec.impl.service.spreading import FetchSpreading
from mbmssec.impl.service.store import Store
from mbmssec.impl.service.ue import UeCore
from mbmssec.spec.loader import load_spec

S = "239.255.0.1"
STRATEGIES = tuple(s.value for s in FetchSpreading)
CLIENTS_FLAG: Final = "--ue-clients"
"""Runs this module as the UE client process of part 1 (see :func:`_client_main`)."""
MODULE: Final = "mbmssec.bench.bmsc_bench"


# -- part 1: registrations per second --------------------------------------------------
#
# The BM-SC (or the reference endpoint) runs in this process's event loop; the UEs run
# in a child process (``--ue-clients``), which takes one job per line on its standard
# input and answers each with one line of JSON, so the server side of this process does
# nothing but serve.


def _subscribers(prefix: str, n: int) -> list[tuple[str, bytes, bytes]]:
    return [(f"{prefix}{i:09d}", os.urandom(16), os.urandom(16)) for i in range(n)]


async def _register_once(http: aiohttp.ClientSession, base: str, ue: UeCore) -> None:
    """One registration with the UE's whole side of the work: the challenge answered
    (USIM: Milenage, AUTN check, RES; the Digest answer), the TEK delivery verified and
    installed (KEK derivation, MIKEY verification and decryption, SRTP receiver keys)."""
    uri = register_uri(ue.ue, S, 40000, "initial")
    url = URL(base + uri, encoded=True)
    async with http.get(url) as resp:
        header = resp.headers["WWW-Authenticate"]
        await resp.read()
    auth = ue.answer_challenge(header, uri)
    async with http.get(url, headers={"Authorization": auth}) as resp:
        body = await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"registration failed: {resp.status} {body[:200]!r}")
    ue.accept_delivery(S, body, time.time())


async def _client_job(job: Mapping[str, Any]) -> dict[str, Any]:
    """Run one batch of registrations against ``job['base']``; time and CPU it."""
    profile = load_spec().baseline()
    ues = [UeCore(n, bytes.fromhex(k), bytes.fromhex(o), profile) for n, k, o in job["ues"]]
    queue = list(ues)
    concurrency = int(job["concurrency"])
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            while queue:
                await _register_once(http, job["base"], queue.pop())

        cpu = time.process_time()
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu
    return {"registrations": len(ues), "seconds": seconds, "cpu_seconds": cpu}


def _client_main() -> int:
    """The UE client process: one JSON job per input line, one JSON answer per job."""
    for line in sys.stdin:
        try:
            answer = asyncio.run(_client_job(json.loads(line)))
        except Exception as exc:  # reported to the parent, which fails the run
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(answer), flush=True)
    return 0


class _UeClients:
    """The child process that plays the UEs (see :func:`_client_main`)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc

    @classmethod
    async def start(cls) -> _UeClients:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            MODULE,
            CLIENTS_FLAG,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def run(
        self, base: str, subscribers: list[tuple[str, bytes, bytes]], concurrency: int
    ) -> dict[str, Any]:
        """Run one batch in the child; returns its answer (raises on a failure)."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        job = {
            "base": base,
            "concurrency": concurrency,
            "ues": [(n, k.hex(), o.hex()) for n, k, o in subscribers],
        }
        self._proc.stdin.write((json.dumps(job) + "\n").encode())
        await self._proc.stdin.drain()
        line = await self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the UE client process ended without an answer")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"UE clients: {answer['error']}")
        return answer

    async def stop(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        await self._proc.wait()


def _canned_answers(
    subscribers: list[tuple[str, bytes, bytes]], workdir: Path, now: float
) -> dict[str, tuple[HttpAnswer, HttpAnswer]]:
    """For each reference UE, the BM-SC's real HTTP answers to its two requests.

    A BM-SC of its own (not the one measured) registers every UE once, with the UE's
    side done here, before the clock starts; the reference endpoint replays these
    answers, so its clients get a genuine challenge and TEK delivery and do all of the
    UE's work, while the endpoint itself does none of the BM-SC's."""
    profile = load_spec().baseline()
    core = BmscCore(
        Store(workdir / "reference.db", durability="normal"), profile, BmscConfig(period=3600.0)
    )
    core.add_service(S, now)
    with core.store.transaction():
        for name, k, opc in subscribers:
            core.add_subscriber(name, k, opc)
            core.subscribe(name, S, now)
    answers = {}
    for name, k, opc in subscribers:
        uri = register_uri(name, S, 40000, "initial")
        first = core.register(RegisterRequest(name, S, 40000, "initial", None, "GET", uri), now)
        assert first.challenge is not None
        auth = UeCore(name, k, opc, profile).answer_challenge(first.challenge, uri)
        second = core.register(RegisterRequest(name, S, 40000, "initial", auth, "GET", uri), now)
        if second.result is not bmsc.Result.DELIVERED:
            raise RuntimeError(f"reference answers: registration of {name} {second.code}")
        answers[name] = (answer(first), answer(second))
    core.store.close()
    return answers


def _reference_app(answers: Mapping[str, tuple[HttpAnswer, HttpAnswer]]) -> web.Application:
    """The minimal aiohttp endpoint: each UE's two answers, looked up, no work."""

    async def handler(request: web.Request) -> web.Response:
        challenge, delivery = answers[request.query["ue"]]
        reply = delivery if "Authorization" in request.headers else challenge
        return web.Response(
            status=reply.status,
            body=reply.body,
            content_type=reply.content_type,
            headers=dict(reply.headers),
        )

    app = web.Application()
    app.router.add_get(REGISTER_PATH, handler)
    return app


#: Where a registration's time goes: each part is the time spent in calls into its
#: modules from outside them (so a part includes the library code it calls: SQLite for
#: the store, and the WAL's fsync where it runs in the event loop rather than in group
#: commit's thread, ``cryptography`` for MIKEY); the BM-SC's own logic is the
#: self time of its core; the rest is the HTTP server (aiohttp, asyncio) and whatever
#: else; waiting in ``epoll`` for the clients is idle time, not counted.
PROFILE_PARTS: Final[tuple[tuple[str, tuple[ModuleType, ...]], ...]] = (
    ("AKA (Milenage vector, KEK)", (aka, milenage)),
    ("HTTP Digest (parse, challenge, verify)", (digest,)),
    ("MIKEY TEK delivery build", (mikey, mikey_messages, mikey_crypto)),
    ("store (SQLite, commits)", (store,)),
    ("event log", (events,)),
)
CORE_PART: Final = "BM-SC core logic (own code)"
REST_PART: Final = "HTTP server (aiohttp, asyncio) and the rest"


def _files(modules: tuple[ModuleType, ...]) -> frozenset[str]:
    return frozenset(str(m.__file__) for m in modules)


def _breakdown(profiler: cProfile.Profile, registrations: int) -> dict[str, Any]:
    """Milliseconds per registration of each part of :data:`PROFILE_PARTS`."""
    stats: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in stats.values())
    idle = sum(
        entry[2]
        for func, entry in stats.items()
        if func[0] == "~" and ("select.epoll" in func[2] or "select.select" in func[2])
    )
    parts: dict[str, float] = {}
    for label, modules in PROFILE_PARTS:
        files = _files(modules)
        spent = 0.0
        for func, entry in stats.items():
            if func[0] in files:
                spent += sum(edge[3] for caller, edge in entry[4].items() if caller[0] not in files)
        parts[label] = spent
    core_files = _files((bmsc,))
    parts[CORE_PART] = sum(entry[2] for func, entry in stats.items() if func[0] in core_files)
    busy = total - idle
    parts[REST_PART] = busy - sum(parts.values())
    scale = 1000.0 / registrations
    return {
        "registrations": registrations,
        "busy_ms_per_registration": busy * scale,
        "idle_ms_per_registration": idle * scale,
        "ms_per_registration": {k: v * scale for k, v in parts.items()},
    }


async def _registrations(
    count: int, concurrency: int, rounds: int, profiled: int
) -> dict[str, Any]:
    profile = load_spec().baseline()
    workdir = Path(tempfile.mkdtemp(prefix="mbmssec-bench-"))
    core = BmscCore(Store(workdir / "bmsc.db"), profile, BmscConfig(period=3600.0))
    log = EventLog(workdir / "bmsc.events.jsonl")
    now = time.time()
    log.emit_all(core.add_service(S, now))
    ours = _subscribers("001010", count * rounds + profiled)
    with core.store.transaction():
        for name, k, opc in ours:
            log.emit_all(core.add_subscriber(name, k, opc))
            log.emit_all(core.subscribe(name, S, now))
    theirs = _subscribers("001020", count * rounds)
    answers = _canned_answers(theirs, workdir, now)
    server = BmscServer(core, log=log, stream=False)
    base = await server.start()
    runner = web.AppRunner(_reference_app(answers), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    ref_base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    clients = await _UeClients.start()
    best: dict[str, dict[str, float]] = {}
    breakdown = None
    try:
        for r in range(rounds):
            batch = slice(r * count, (r + 1) * count)
            for kind, url, subscribers in (
                ("bmsc", base, ours[batch]),
                ("reference", ref_base, theirs[batch]),
            ):
                cpu = time.process_time()
                done = await clients.run(url, subscribers, concurrency)
                server_cpu = time.process_time() - cpu
                rate = done["registrations"] / done["seconds"]
                if rate > best.get(kind, {}).get("rate", 0.0):
                    best[kind] = {
                        "rate": rate,
                        "server_cpu_ms": 1000.0 * server_cpu / done["registrations"],
                        "client_cpu_ms": 1000.0 * done["cpu_seconds"] / done["registrations"],
                        "client_busy": done["cpu_seconds"] / done["seconds"],
                    }
        if profiled:
            profiler = cProfile.Profile()
            profiler.enable()
            await clients.run(base, ours[-profiled:], concurrency)
            profiler.disable()
            breakdown = _breakdown(profiler, profiled)
    finally:
        await clients.stop()
        await runner.cleanup()
        await server.stop()
        log.close()
        core.store.close()
        shutil.rmtree(workdir, ignore_errors=True)
    result: dict[str, Any] = {
        "registrations": count,
        "rounds": rounds,
        "concurrency": concurrency,
        "registrations_per_second": best["bmsc"]["rate"],
        "reference_exchanges_per_second": best["reference"]["rate"],
        "ratio_to_reference": best["bmsc"]["rate"] / best["reference"]["rate"],
        "server_cpu_ms_per_registration": best["bmsc"]["server_cpu_ms"],
        "reference_server_cpu_ms_per_registration": best["reference"]["server_cpu_ms"],
        "client_cpu_ms_per_registration": best["bmsc"]["client_cpu_ms"],
        "reference_client_cpu_ms_per_registration": best["reference"]["client_cpu_ms"],
        "client_busy": best["bmsc"]["client_busy"],
        "reference_client_busy": best["reference"]["client_busy"],
    }
    if breakdown is not None:
        result["profile"] = breakdown
    return result


# -- part 2: request rate per fetch-spreading strategy -----------------------------------------


async def _strategy(strategy: str, ues: int, period: float, bin_width: float) -> dict[str, Any]:
    profile = load_spec().profile({"fetch_spreading": strategy})
    workdir = Path(tempfile.mkdtemp(prefix="mbmssec-bench-"))
    config = BmscConfig(period=period, fetch_window=0.6, multi_key_depth=3)
    core = BmscCore(Store(workdir / "bmsc.db"), profile, config)
    now = time.time()
    core.add_service(S, now)
    cores = []
    with core.store.transaction():
        for i in range(ues):
            name = f"001010{i:09d}"
            k, opc = os.urandom(16), os.urandom(16)
            core.add_subscriber(name, k, opc)
            core.subscribe(name, S, now)
            cores.append(UeCore(name, k, opc, profile))
    server = BmscServer(core, stream=False, record_arrivals=True)
    base = await server.start()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as http:
        clients = [UeClient(c, base, http, receive=False) for c in cores]
        for i, client in enumerate(clients):
            await client.add_service(S, 20000 + i)
            client.start()
        while not all(c.state(S).deliveries for c in cores):
            await asyncio.sleep(0.05)
        registered = time.time()
        rekeys = 3 if strategy == "multi_key" else 2
        horizon = registered + (rekeys + 0.5) * period
        await asyncio.sleep(max(0.0, horizon - time.time()))
        for client in clients:
            await client.stop()
    await server.stop()
    core.store.close()
    shutil.rmtree(workdir, ignore_errors=True)
    arrivals = [t for t in server.arrivals or [] if registered <= t <= horizon]
    bins: dict[int, int] = {}
    for t in arrivals:
        slot = int((t - registered) / bin_width)
        bins[slot] = bins.get(slot, 0) + 1
    span = horizon - registered
    peak = max(bins.values(), default=0) / bin_width
    mean = len(arrivals) / span
    failures = sum(c.summary()[0]["rejected"] for c in clients)
    return {
        "ues": ues,
        "period": period,
        "requests": len(arrivals),
        "requests_per_ue_per_period": len(arrivals) / ues / (span / period),
        "peak_rate": peak,
        "mean_rate": mean,
        "peak_over_mean": peak / mean if mean else 0.0,
        "failures": failures,
    }


@dataclass(frozen=True)
class BmscSize:
    """How much to run: registrations per round and rounds (the best one counts), and the
    UEs and TEK period of each fetch-spreading run."""

    registrations: int
    rounds: int
    ues: int
    period: float
    profiled: int
    """Registrations of the batch run under cProfile (0: none)."""


QUICK: Final = BmscSize(registrations=150, rounds=2, ues=100, period=1.5, profiled=150)
FULL: Final = BmscSize(registrations=600, rounds=3, ues=250, period=3.0, profiled=600)
CONCURRENCY: Final = 32
BIN_WIDTH: Final = 0.1


def measure(size: BmscSize) -> dict[str, Any]:
    """Run both parts and return the figures as a dict (see the module docstring)."""
    regs = asyncio.run(_registrations(size.registrations, CONCURRENCY, size.rounds, size.profiled))
    strategies = {
        s: asyncio.run(_strategy(s, size.ues, size.period, BIN_WIDTH)) for s in STRATEGIES
    }
    return {
        "benchmark": "bmsc",
        "quick": size == QUICK,
        "registrations_per_second": regs["registrations_per_second"],
        "registration": regs,
        "fetch_spreading": strategies,
        "bin_width": BIN_WIDTH,
    }


def figures(r: Result) -> list[Figure]:
    """Registrations/s against a bare aiohttp endpoint; request peaks against the mean."""
    reg = r["registration"]
    rows = [
        Figure(
            f"registrations (challenge + TEK delivery), {int(reg['concurrency'])} at a time",
            float(reg["registrations_per_second"]),
            "registrations/s",
            "minimal aiohttp endpoint, same exchanges (same run)",
            float(reg["reference_exchanges_per_second"]),
            "measured",
            True,
        )
    ]
    if "server_cpu_ms_per_registration" in reg:
        rows.append(
            Figure(
                "server process CPU per registration",
                float(reg["server_cpu_ms_per_registration"]),
                "ms",
                "minimal aiohttp endpoint's, same clients (same run)",
                float(reg["reference_server_cpu_ms_per_registration"]),
                "measured",
                False,
            )
        )
        rows.append(
            Figure(
                "UE client process busy (CPU / wall time) against the BM-SC",
                float(reg["client_busy"]),
                "",
                "against the minimal endpoint (same run)",
                float(reg["reference_client_busy"]),
                "measured",
                None,
            )
        )
    profile = reg.get("profile")
    if isinstance(profile, Mapping):
        busy = float(profile["busy_ms_per_registration"])
        for part, ms in profile["ms_per_registration"].items():
            rows.append(
                Figure(
                    f"BM-SC time per registration under cProfile: {part}",
                    float(ms),
                    "ms",
                    "all of the BM-SC's busy time (share)",
                    busy,
                    "measured",
                    False,
                )
            )
    failures = 0.0
    for name, s in r["fetch_spreading"].items():
        rows.append(
            Figure(
                f"peak request rate at the BM-SC, {name}, {int(s['ues'])} UEs",
                float(s["peak_rate"]),
                "requests/s",
                "mean rate over the re-key phase (same run)",
                float(s["mean_rate"]),
                "measured",
                False,
            )
        )
        failures += float(s["failures"])
    rows.append(
        Figure(
            "rejected TEK deliveries while re-keying",
            failures,
            "",
            "none expected",
            0.0,
            "target",
            False,
        )
    )
    return rows


def check(r: Result) -> str | None:
    """Fail the run if the live BM-SC's UEs rejected a TEK delivery while re-keying."""
    spreading = r.get("fetch_spreading")
    if not isinstance(spreading, Mapping):
        return None
    rejected = {
        s: v.get("failures")
        for s, v in spreading.items()
        if isinstance(v, Mapping) and v.get("failures")
    }
    if not rejected:
        return None
    where = ", ".join(f"{n} under {s}" for s, n in rejected.items())
    return f"the live BM-SC's UEs rejected TEK deliveries while re-keying: {where}"


def _plot(data: PlotData, path: Path) -> bool:
    r = data.result
    reg = r["registration"]
    spreading = r["fetch_spreading"]
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [1, 2]})
    ratio = float(reg["registrations_per_second"]) / float(reg["reference_exchanges_per_second"])
    bars(left, ["BM-SC / minimal\naiohttp endpoint"], [ratio])
    unity(left, "aiohttp endpoint = 1")
    left.set_ylabel("registrations/s ratio")
    left.set_title(f"Registrations: {float(reg['registrations_per_second']):,.0f}/s (same run)")
    left.legend(fontsize="small")
    names = list(spreading)
    values = [
        float(spreading[n]["peak_rate"]) / float(spreading[n]["mean_rate"])
        if float(spreading[n]["mean_rate"]) > 0
        else 0.0
        for n in names
    ]
    bars(right, names, values, colour="C1")
    unity(right, "perfectly even = 1")
    right.set_ylabel("peak / mean request rate")
    first = spreading[names[0]]
    right.set_title(
        f"Live BM-SC, {int(first['ues'])} UEs, TEK period {float(first['period']):g} s,"
        f" {float(r['bin_width']):g} s bins"
    )
    right.legend(fontsize="small")
    return save(fig, path)


BENCHMARK: Final = Benchmark(
    name="bmsc",
    description="BM-SC registrations/s against a minimal aiohttp endpoint; live request peaks",
    measure=measure,
    quick=QUICK,
    full=FULL,
    figures=figures,
    plots=(Plot("bmsc_rates.png", "BM-SC: registrations and request peaks", _plot),),
    check=check,
)


def _profile_main(argv: list[str]) -> int:
    """``--profile``: one registration storm under cProfile; print where the time goes."""
    parser = argparse.ArgumentParser(description="Profile a registration storm at the BM-SC.")
    parser.add_argument("--profile", action="store_true", required=True)
    parser.add_argument("--profile-registrations", type=int, default=600, metavar="N")
    args = parser.parse_args(argv)
    reg = asyncio.run(_registrations(100, CONCURRENCY, 1, args.profile_registrations))
    profile = reg["profile"]
    busy = float(profile["busy_ms_per_registration"])
    print(f"{args.profile_registrations} registrations, {CONCURRENCY} at a time, under cProfile")
    print(f"{'part':<48}{'ms/registration':>16}{'share':>8}")
    for part, ms in profile["ms_per_registration"].items():
        print(f"{part:<48}{ms:>16.3f}{ms / busy:>8.1%}")
    print(f"{'busy in all':<48}{busy:>16.3f}")
    print(
        f"{'idle (epoll, waiting for the clients)':<48}{profile['idle_ms_per_registration']:>16.3f}"
    )
    print(
        f"one timed round before it: BM-SC {reg['registrations_per_second']:.0f}/s, "
        f"minimal endpoint {reg['reference_exchanges_per_second']:.0f}/s"
    )
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == [CLIENTS_FLAG]:
        sys.exit(_client_main())
    if "--profile" in sys.argv[1:]:
        sys.exit(_profile_main(sys.argv[1:]))
    from mbmssec.bench.suite import standalone

    sys.exit(standalone(BENCHMARK))

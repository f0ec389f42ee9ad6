"""Benchmark of the running BM-SC (:mod:`mbmssec.impl.net.server`): registrations per second
and the request rate it sees under each TEK fetch-spreading strategy.

1. **Registrations per second.**  A registration (TS 33.246 6.2.2 steps 2-4) is two HTTP
   requests: the first is answered with a Digest AKA challenge (a new authentication
   vector, its SQN committed to SQLite with fsync), the second with the MIKEY TEK delivery
   (RES checked, authorisation checked, TEKs and counters committed).  Clients with the
   UE's side of the work (USIM, Digest answer, MIKEY verification) run ``concurrency``
   registrations at a time against the BM-SC on 127.0.0.1.  The reference, measured in
   the same run with the same clients, is a minimal aiohttp endpoint doing the same two
   exchanges with bodies and headers of the same sizes and no work at all: the ratio says
   what the key management costs on top of HTTP itself.
2. **Peak request rate per fetch-spreading strategy** (option ``fetch_spreading``,
   6.2.3.2): N UEs register, then re-fetch at the fetch times the BM-SC gives through two
   re-keys; the BM-SC records when each registration request arrives, and the peak rate
   (100 ms bins) and mean rate over the re-key phase are reported for ``none``,
   ``random_interval``, ``scheduled_slots`` and ``multi_key``.

The run fails if a UE rejected a TEK delivery while re-keying.

Run ``python -m mbmssec.bench.bmsc_bench [--quick] [--json]``.  The result has
``registrations_per_second`` at the top (the capacity figure ``mbmssec load`` can read).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
from aiohttp import web
from yarl import URL

from mbmssec.bench.benchmark import Benchmark, Figure, Plot, PlotData, Result
from mbmssec.bench.plotting import bars, pyplot, save, unity
from mbmssec.impl.net.client import UeClient, register_uri
from mbmssec.impl.net.server import BmscServer
from mbmssec.impl.service.bmsc import BmscConfig, BmscCore
from mbmssec.impl.service.spreading import FetchSpreading
from mbmssec.impl.service.store import Store
from mbmssec.impl.service.ue import UeCore
from mbmssec.spec.loader import load_spec

S = "239.255.0.1"
STRATEGIES = tuple(s.value for s in FetchSpreading)


# -- part 1: registrations per second --------------------------------------------------


async def _register_once(http: aiohttp.ClientSession, base: str, ue: UeCore) -> None:
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


async def _reference_once(http: aiohttp.ClientSession, base: str, ue: UeCore) -> None:
    uri = register_uri(ue.ue, S, 40000, "initial")
    url = URL(base + uri, encoded=True)
    async with http.get(url) as resp:
        header = resp.headers["WWW-Authenticate"]
        await resp.read()
    async with http.get(url, headers={"Authorization": header}) as resp:
        await resp.read()


def _reference_app(challenge: str, body: bytes) -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        if "Authorization" not in request.headers:
            return web.Response(
                status=401,
                headers={"WWW-Authenticate": challenge},
                text='{"status": 401}',
                content_type="application/json",
            )
        return web.Response(body=body, content_type="application/mikey")

    app = web.Application()
    app.router.add_get("/mbms/register", handler)
    return app


async def _rate(kind: str, base: str, ues: list[UeCore], concurrency: int) -> float:
    once = _register_once if kind == "bmsc" else _reference_once
    queue = list(ues)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:

        async def worker() -> None:
            while queue:
                await once(http, base, queue.pop())

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(ues) / (time.perf_counter() - start)


async def _registrations(count: int, concurrency: int, rounds: int) -> dict[str, Any]:
    profile = load_spec().baseline()
    workdir = Path(tempfile.mkdtemp(prefix="mbmssec-bench-"))
    core = BmscCore(Store(workdir / "bmsc.db"), profile, BmscConfig(period=3600.0))
    now = time.time()
    core.add_service(S, now)
    subscribers = []
    with core.store.transaction():
        for i in range(count * rounds):
            name = f"001010{i:09d}"
            k, opc = os.urandom(16), os.urandom(16)
            core.add_subscriber(name, k, opc)
            core.subscribe(name, S, now)
            subscribers.append((name, k, opc))
    server = BmscServer(core, stream=False)
    base = await server.start()
    # A sample exchange gives the reference endpoint realistic sizes.
    probe = UeCore(*subscribers[0], profile)
    async with aiohttp.ClientSession() as http:
        uri = register_uri(probe.ue, S, 40000, "initial")
        async with http.get(URL(base + uri, encoded=True)) as resp:
            challenge = resp.headers["WWW-Authenticate"]
    runner = web.AppRunner(_reference_app(challenge, bytes(213)), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    ref_base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    best = {"bmsc": 0.0, "reference": 0.0}
    for r in range(rounds):
        batch = [UeCore(n, k, o, profile) for n, k, o in subscribers[r * count : (r + 1) * count]]
        best["bmsc"] = max(best["bmsc"], await _rate("bmsc", base, batch, concurrency))
        best["reference"] = max(
            best["reference"], await _rate("reference", ref_base, batch, concurrency)
        )
    await runner.cleanup()
    await server.stop()
    core.store.close()
    shutil.rmtree(workdir, ignore_errors=True)
    return {
        "registrations": count,
        "rounds": rounds,
        "concurrency": concurrency,
        "registrations_per_second": best["bmsc"],
        "reference_exchanges_per_second": best["reference"],
        "ratio_to_reference": best["bmsc"] / best["reference"],
    }


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


QUICK: Final = BmscSize(registrations=150, rounds=2, ues=100, period=1.5)
FULL: Final = BmscSize(registrations=600, rounds=3, ues=250, period=3.0)
CONCURRENCY: Final = 32
BIN_WIDTH: Final = 0.1


def measure(size: BmscSize) -> dict[str, Any]:
    """Run both parts and return the figures as a dict (see the module docstring)."""
    regs = asyncio.run(_registrations(size.registrations, CONCURRENCY, size.rounds))
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


if __name__ == "__main__":
    from mbmssec.bench.suite import standalone

    sys.exit(standalone(BENCHMARK))

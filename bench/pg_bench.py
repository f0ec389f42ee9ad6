"""Benchmark of the BM-SC on PostgreSQL: registrations/s of 1 and 2 workers, and the
commits/s ceiling of PostgreSQL on this machine.

A throw-away PostgreSQL server (:mod:`mbmssec.oracles.pgcluster`, with fsync on, as in
production) is started for the run.

1. **Commit ceiling.**  One connection commits one-row updates in a loop with
   ``synchronous_commit = on`` (each commit waits for its WAL flush): the rate one
   BM-SC worker's batches can reach at most.  Reference: ``fdatasync`` of a 4 kB write on
   the same disk (same run), the floor of any durable commit.  Four connections at once
   show what the server's own group commit adds (reference: one connection).
2. **Registrations per second.**  ``serve`` processes (``--reuse-port`` on one port,
   ``--no-stream``) over one database; clients in this process do the UE's side of the
   work (USIM, Digest answer, MIKEY verification) for ``concurrency`` registrations at a
   time (challenge + TEK delivery, fresh UEs).  Measured for one SQLite process (the
   reference), one PostgreSQL worker, and two PostgreSQL workers (reference: one).  On
   this 2-core machine the clients share the cores with the workers, so the 2-worker
   figure shows contention as much as scale-out; docs/capacity.md turns the figures into
   workers and windows for a population.

The run fails if a registration fails.  Run ``python -m mbmssec.bench.pg_bench
[--quick] [--json]``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
from yarl import URL

from mbmssec.bench.benchmark import Benchmark, Figure, Result
from mbmssec.impl.net.client import register_uri
from mbmssec.impl.service.bmsc import BmscConfig, BmscCore
from mbmssec.impl.service.pgstore import PgStore
from mbmssec.impl.service.store import Store
from mbmssec.impl.service.ue import UeCore
from mbmssec.oracles.pgcluster import PgCluster
from mbmssec.spec.loader import Profile, load_spec

S = "239.255.0.1"


@dataclass(frozen=True)
class PgSize:
    """Registrations per configuration and seconds per commit measurement."""

    registrations: int
    commit_seconds: float


QUICK: Final = PgSize(registrations=300, commit_seconds=1.0)
FULL: Final = PgSize(registrations=1500, commit_seconds=3.0)
CONCURRENCY: Final = 32


# -- commits ---------------------------------------------------------------------------------


def _fdatasync_rate(folder: Path, seconds: float) -> float:
    path = folder / "sync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    block = os.urandom(4096)
    try:
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            os.pwrite(fd, block, 0)
            os.fdatasync(fd)
            count += 1
        return count / (time.perf_counter() - start)
    finally:
        os.close(fd)
        path.unlink()


def _commit_rate(url: str, seconds: float, connections: int) -> float:
    import psycopg

    with psycopg.connect(url, autocommit=True) as setup:
        setup.execute("CREATE TABLE IF NOT EXISTS ceiling (id INTEGER PRIMARY KEY, n BIGINT)")
        setup.execute(
            "INSERT INTO ceiling SELECT g, 0 FROM generate_series(1, %s) g ON CONFLICT DO NOTHING",
            (connections,),
        )
    counts = [0] * connections
    barrier = threading.Barrier(connections + 1)
    stop = threading.Event()

    def run(i: int) -> None:
        with psycopg.connect(url) as conn:
            barrier.wait()
            while not stop.is_set():
                conn.execute("UPDATE ceiling SET n = n + 1 WHERE id = %s", (i + 1,))
                conn.commit()
                counts[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    elapsed = time.perf_counter() - start
    for thread in threads:
        thread.join()
    return sum(counts) / elapsed


# -- registrations ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _provision(store: Store, profile: Profile, count: int) -> list[UeCore]:
    core = BmscCore(store, profile, BmscConfig(period=3600.0))
    now = time.time()
    ues = []
    with store.transaction():
        events = core.add_service(S, now)
        for i in range(count):
            name = f"001010{i:09d}"
            k, opc = os.urandom(16), os.urandom(16)
            events += core.add_subscriber(name, k, opc, 0, now)
            events += core.subscribe(name, S, now)
            ues.append(UeCore(name, k, opc, profile))
        if store.keeps_log:
            store.log_events(events)
    store.close()
    return ues


def _start_workers(
    db: str, workers: int, port: int, log: Path | None
) -> list[subprocess.Popen[str]]:
    procs = []
    for i in range(workers):
        logging = ["--log", str(log.with_suffix(f".{i}.jsonl"))] if log is not None else []
        procs.append(
            subprocess.Popen(
                [
                    *(sys.executable, "-m", "mbmssec", "serve", "--db", db, "--port", str(port)),
                    *("--reuse-port", "--no-stream", "--period", "3600", *logging),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        )
    for proc in procs:
        assert proc.stdout is not None
        if not proc.stdout.readline():
            raise RuntimeError("serve did not start")
    return procs


def _stop(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
    for proc in procs:
        proc.wait(30)


async def _register(http: aiohttp.ClientSession, base: str, ue: UeCore) -> None:
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


async def _rate(base: str, ues: list[UeCore], concurrency: int) -> float:
    queue = list(ues)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def client() -> None:
            while queue:
                await _register(http, base, queue.pop())

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return len(ues) / (time.perf_counter() - start)


def _registrations(db: str, store: Store, workers: int, count: int, folder: Path) -> float:
    profile = load_spec().baseline()
    ues = _provision(store, profile, count)
    port = _free_port()
    log = None if store.keeps_log else folder / "events"
    procs = _start_workers(db, workers, port, log)
    try:
        return asyncio.run(_rate(f"http://127.0.0.1:{port}", ues, CONCURRENCY))
    finally:
        _stop(procs)


def measure(size: PgSize) -> dict[str, Any]:
    """Run both parts and return the figures as a dict (see the module docstring)."""
    folder = Path(tempfile.mkdtemp(prefix="mbmssec-pgbench-"))
    try:
        with PgCluster() as cluster:
            sync_rate = _fdatasync_rate(cluster.socket_dir, size.commit_seconds)
            url = cluster.create_database()
            one = _commit_rate(url, size.commit_seconds, 1)
            four = _commit_rate(url, size.commit_seconds, 4)
            sqlite_db = folder / "bmsc.db"
            regs = {
                "sqlite_1": _registrations(
                    str(sqlite_db), Store(sqlite_db), 1, size.registrations, folder
                ),
            }
            for workers in (1, 2):
                db = cluster.create_database()
                regs[f"pg_{workers}"] = _registrations(
                    db, PgStore(db), workers, size.registrations, folder
                )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "benchmark": "pg",
        "quick": size == QUICK,
        "fdatasync_per_second": sync_rate,
        "commits_per_second_1": one,
        "commits_per_second_4": four,
        "registrations": size.registrations,
        "concurrency": CONCURRENCY,
        "registrations_per_second": regs,
    }


def figures(r: Result) -> list[Figure]:
    """Commits/s against fdatasync/s; registrations/s of 1 and 2 workers."""
    regs = r["registrations_per_second"]
    n = int(r["concurrency"])
    return [
        Figure(
            "PostgreSQL commits/s, 1 connection, synchronous_commit=on",
            float(r["commits_per_second_1"]),
            "commits/s",
            "fdatasync of a 4 kB write, same disk (same run)",
            float(r["fdatasync_per_second"]),
            "measured",
            True,
        ),
        Figure(
            "PostgreSQL commits/s, 4 connections",
            float(r["commits_per_second_4"]),
            "commits/s",
            "1 connection (same run)",
            float(r["commits_per_second_1"]),
            "measured",
            True,
        ),
        Figure(
            f"registrations/s, 1 worker on PostgreSQL, {n} at a time",
            float(regs["pg_1"]),
            "registrations/s",
            "1 BM-SC process on SQLite, same clients (same run)",
            float(regs["sqlite_1"]),
            "measured",
            True,
        ),
        Figure(
            f"registrations/s, 2 workers on PostgreSQL, {n} at a time",
            float(regs["pg_2"]),
            "registrations/s",
            "1 worker on PostgreSQL (same run)",
            float(regs["pg_1"]),
            "measured",
            True,
        ),
    ]


def check(r: Result) -> str | None:
    """A registration that failed stops the measurement with an error; nothing else."""
    regs = r.get("registrations_per_second")
    if isinstance(regs, Mapping) and any(float(v) <= 0 for v in regs.values()):
        return "a configuration completed no registration"
    return None


BENCHMARK: Final = Benchmark(
    name="pg",
    description="BM-SC on PostgreSQL: registrations/s of 1 and 2 workers; commits/s ceiling",
    measure=measure,
    quick=QUICK,
    full=FULL,
    figures=figures,
    check=check,
)


if __name__ == "__main__":
    from mbmssec.bench.suite import standalone

    sys.exit(standalone(BENCHMARK))

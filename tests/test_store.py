"""The BM-SC's store: transactions, monotone counters, and SIGKILL at any moment.

The contract tests (``open_store``) run against both backends: SQLite and a PostgreSQL
server started for the test session (:mod:`mbmssec.oracles.pgcluster`).

The crash test runs a writer in a child process that commits steps in a loop and
reports each commit on stdout only after COMMIT returned; the parent kills it with
SIGKILL at a random moment and reopens the database: every reported step must be there
(nothing committed is lost), at most the one step in flight may be there beyond it, and
the counters must still be consistent with each other (all of a step or none of it).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mbmssec.impl.service.events import Event
from mbmssec.impl.service.pgstore import PgStore
from mbmssec.impl.service.store import (
    Challenge,
    Registration,
    Store,
    StoreError,
    Subscription,
)
from mbmssec.oracles.pgcluster import PgCluster

K = bytes(range(16))
OPC = bytes(range(16, 32))


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.xdist_group("postgres"))]


class Opener:
    """Opens the test's database by name (the same name: the same database)."""

    def __init__(self, backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.backend = backend
        self.tmp_path = tmp_path
        self.request = request
        self.urls: dict[str, str] = {}

    def __call__(self, name: str = "b.db") -> Store:
        if self.backend == "sqlite":
            return Store(self.tmp_path / name, durability="normal")
        if name not in self.urls:
            cluster = self.request.getfixturevalue("pg_cluster")
            self.urls[name] = cluster.create_database()
        return PgStore(self.urls[name], durability="normal")


@pytest.fixture(params=BACKENDS)
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """Opens a store of the test's backend."""
    return Opener(request.param, tmp_path, request)


def test_counters_grow_and_survive_reopen(open_store: Opener) -> None:
    store = open_store()
    with store.transaction():
        store.add_subscriber("001", K, OPC, sqn=5)
        store.add_service("239.0.0.1", ssrc=7, csb_id=9, period=1.0, now=0.0)
        assert [store.take_sqn("001") for _ in range(3)] == [6, 7, 8]
        assert [store.take_mki("239.0.0.1") for _ in range(3)] == [1, 2, 3]
        assert [store.take_counter("001") for _ in range(2)] == [1, 2]
        assert [store.next_ev() for _ in range(2)] == [1, 2]
    store.close()
    store = open_store()
    with store.transaction():
        assert store.take_sqn("001") == 9
        assert store.take_mki("239.0.0.1") == 4
        assert store.take_counter("001") == 3
        assert store.next_ev() == 3


def test_raise_sqn_never_lowers(open_store: Opener) -> None:
    store = open_store()
    with store.transaction():
        store.add_subscriber("001", K, OPC, sqn=100)
        store.raise_sqn("001", 50)
    sub = store.get_subscriber("001")
    assert sub is not None and sub.sqn == 100
    with store.transaction():
        store.raise_sqn("001", 150)
    sub = store.get_subscriber("001")
    assert sub is not None and sub.sqn == 150


def test_rollback_leaves_nothing(open_store: Opener) -> None:
    store = open_store()
    with store.transaction():
        store.add_subscriber("001", K, OPC)
    before = store.snapshot()
    with pytest.raises(RuntimeError), store.transaction():
        store.take_sqn("001")
        store.take_counter("001")
        raise RuntimeError("a step fails half-way")
    assert store.snapshot() == before


def test_write_outside_transaction_is_refused(open_store: Opener) -> None:
    store = open_store()
    with pytest.raises(StoreError, match="outside a transaction"):
        store.add_subscriber("001", K, OPC)


def test_mki_unique_per_service(open_store: Opener) -> None:
    store = open_store()
    with store.transaction():
        store.add_service("239.0.0.1", ssrc=1, csb_id=2, period=1.0, now=0.0)
        store.insert_tek(
            service="239.0.0.1",
            mki=1,
            key=K,
            salt=K[:14],
            state="pending",
            gen_ev=1,
            gen_t=0.0,
            planned=1.0,
        )
    with pytest.raises(StoreError, match="refused by the database"), store.transaction():
        store.insert_tek(
            service="239.0.0.1",
            mki=1,
            key=K,
            salt=K[:14],
            state="pending",
            gen_ev=2,
            gen_t=0.0,
            planned=1.0,
        )
    assert len(store.teks("239.0.0.1")) == 1


def test_bad_values_refused_by_schema(open_store: Opener) -> None:
    store = open_store()
    with pytest.raises(StoreError), store.transaction():
        store.add_subscriber("001", b"short", OPC)
    with pytest.raises(StoreError), store.transaction():
        store.add_service("239.0.0.1", ssrc=1, csb_id=2, period=0.0, now=0.0)
    assert store.subscribers() == [] and store.services() == []


def test_schema_version_checked(open_store: Opener) -> None:
    store = open_store()
    with store.transaction():
        store.set_meta("schema", "999")
    store.close()
    with pytest.raises(StoreError, match="schema version 999"):
        open_store()


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(StoreError, match="cannot open"):
        Store(path)


def test_bad_durability() -> None:
    with pytest.raises(StoreError, match="durability"):
        Store(":memory:", durability="sometimes")


def test_wal_mode_and_full_sync(tmp_path: Path) -> None:
    """WAL mode; with full durability every commit is fsynced (by the store, after it:
    SQLite writes it with synchronous=NORMAL) except one of only unauthenticated steps;
    with normal durability none is."""
    store = Store(tmp_path / "b.db")
    db = sqlite3.connect(tmp_path / "b.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    before = store.syncs
    with store.transaction():
        store.add_subscriber("001", K, OPC)
    assert store.syncs == before + 1
    with store.transaction(sync=False):
        store.take_sqn("001")
    assert store.syncs == before + 1
    store.group_commits(lambda: None)
    with store.transaction(sync=False):
        store.take_sqn("001")
    with store.transaction():  # one step that needs it: the batch is fsynced
        store.take_counter("001")
    assert store.commit_batch() and store.syncs == before + 2
    store.close()
    relaxed = Store(tmp_path / "b.db", durability="normal")
    with relaxed.transaction():
        relaxed.take_sqn("001")
    assert relaxed.syncs == 0
    relaxed.close()


def test_registration_and_challenge_round_trip(open_store: Opener) -> None:
    store = open_store()
    with store.transaction():
        store.add_subscriber("001", K, OPC)
        store.add_service("239.0.0.1", ssrc=1, csb_id=2, period=1.0, now=0.0)
        store.put_subscription(Subscription("001", "239.0.0.1", True, 1, None))
        reg = Registration(
            "001",
            "239.0.0.1",
            True,
            40000,
            12.5,
            K,
            2,
            b"r" * 16,
            2,
            7,
            b"i",
            b"r",
            True,
            (3, 4),
            1.0,
        )
        store.put_registration(reg)
        ch = Challenge("nonce", "001", b"R" * 16, b"X" * 8, K, OPC, "op", 1, 5.0, "pending", 0)
        store.put_challenge(ch)
    assert store.get_registration("001", "239.0.0.1") == reg
    assert store.get_challenge("nonce") == ch
    assert store.stream_targets("239.0.0.1") == [("001", 40000)]
    with store.transaction():
        store.set_registered("001", "239.0.0.1", False)
        store.update_challenge("nonce", "used", 1)
        assert store.purge_challenges(6.0) == 1
    # a de-registered (revoked) UE stays on the broadcast fan-out list
    assert store.stream_targets("239.0.0.1") == [("001", 40000)]
    assert "challenges" not in store.snapshot()
    full = store.snapshot()
    part = store.snapshot("teks", "registrations")
    assert set(part) == {"teks", "registrations"}
    assert part == {k: full[k] for k in part}
    with pytest.raises(StoreError, match="no such table in a snapshot: \\['challenges'\\]"):
        store.snapshot("challenges")


def test_a_delivery_holds_up_activation_until_it_is_old_enough(open_store: Opener) -> None:
    """A registered UE sent the next TEK at t=10 still holds up its activation for a
    grace reaching back past 10 (the answer may be in transit), not for one reaching
    back to 10 or later; a second delivery of the same TEK keeps the first time."""
    store = open_store()
    svc = "239.0.0.1"
    with store.transaction():
        store.add_subscriber("001", K, OPC)
        store.add_service(svc, ssrc=1, csb_id=2, period=1.0, now=0.0)
        store.put_subscription(Subscription("001", svc, True, 1, None))
        tek = store.insert_tek(
            service=svc,
            mki=1,
            key=K,
            salt=b"s" * 14,
            state="pending",
            gen_ev=1,
            gen_t=0.0,
            planned=20.0,
        )
        reg = Registration(
            "001",
            svc,
            True,
            40000,
            30.0,
            K,
            2,
            b"r" * 16,
            2,
            7,
            b"i",
            b"r",
            False,
            (tek.id,),
            10.0,
        )
        store.put_registration(reg)
        store.record_delivery("001", tek.id, 1, 10.0)
    assert store.blocking_ues(svc, tek.id, 9.9, "delivered") == ["001"]
    assert store.blocking_ues(svc, tek.id, 10.0, "delivered") == []
    with store.transaction():
        store.record_delivery("001", tek.id, 2, 15.0)
    assert store.blocking_ues(svc, tek.id, 10.0, "delivered") == []
    with pytest.raises(StoreError, match="unknown activation evidence"):
        store.blocking_ues(svc, tek.id, 10.0, "heard")


def test_schedules_and_deliveries_in_one_statement_each(open_store: Opener) -> None:
    """``schedules`` gives every service with its active and pending TEKs by MKI (none
    retired or withdrawn; a service without TEKs too), as ``services`` and ``teks`` do;
    ``record_deliveries`` records each TEK of a delivery as ``record_delivery`` does."""
    store = open_store()
    with store.transaction():
        store.add_subscriber("001", K, OPC)
        made = [
            store.add_service(svc, ssrc=i, csb_id=i + 10, period=1.0 + i, now=0.0)
            for i, svc in enumerate(("239.0.0.2", "239.0.0.1", "239.0.0.3"))
        ]
        ids = {}
        for mki, state in ((3, "pending"), (1, "retired"), (2, "active"), (4, "withdrawn")):
            for svc in ("239.0.0.1", "239.0.0.2"):
                tek = store.insert_tek(
                    service=svc,
                    mki=mki,
                    key=K,
                    salt=b"s" * 14,
                    state=state,
                    gen_ev=mki,
                    gen_t=0.0,
                    planned=float(mki),
                )
                ids[svc, mki] = tek.id
        store.record_deliveries("001", [ids["239.0.0.1", 2], ids["239.0.0.1", 3]], 5, 7.0)
        store.record_deliveries("001", [], 6, 8.0)
    schedules = store.schedules()
    assert [service for service, _ in schedules] == sorted(made, key=lambda s: s.service)
    assert [[(t.mki, t.state) for t in teks] for _, teks in schedules] == [
        [(2, "active"), (3, "pending")],
        [(2, "active"), (3, "pending")],
        [],
    ]
    for service, teks in schedules:
        assert teks == store.teks(service.service, "active", "pending")
    assert store.was_delivered("001", ids["239.0.0.1", 2])
    assert store.was_delivered("001", ids["239.0.0.1", 3])
    assert not store.was_delivered("001", ids["239.0.0.2", 2])
    with store.transaction():  # a TEK sent again keeps its first time, takes the new counter
        store.record_deliveries("001", [ids["239.0.0.1", 3]], 6, 9.0)
    rows = store.snapshot("deliveries")["deliveries"]
    assert sorted((r["tek"], r["ctr"], r["t"]) for r in rows) == sorted(
        [(ids["239.0.0.1", 2], 5, 7.0), (ids["239.0.0.1", 3], 6, 7.0)]
    )


def test_lock_service_gives_the_row_it_holds(open_store: Opener) -> None:
    """``lock_service`` returns the service as read under its lock (None for no such
    service) and only inside a transaction; on PostgreSQL a shared hold keeps another
    connection from taking the row for a schedule change until the commit."""
    store = open_store()
    with pytest.raises(StoreError, match="outside a transaction"):
        store.lock_service("239.0.0.1")
    with store.transaction():
        made = store.add_service("239.0.0.1", ssrc=1, csb_id=2, period=1.0, now=0.0)
    with store.transaction():
        assert store.lock_service("239.0.0.9") is None
        assert (
            store.lock_service("239.0.0.1", shared=True) == made == store.get_service("239.0.0.1")
        )
        if isinstance(store, PgStore):
            other = PgStore(store.url, durability="normal", lock_timeout=0.2)
            try:
                with pytest.raises(StoreError, match="lock timeout"), other.transaction():
                    other.lock_service("239.0.0.1")
            finally:
                other.close()
    with store.transaction():
        assert store.lock_service("239.0.0.1") == made


def test_events_join_the_open_batch_at_its_commit(open_store: Opener) -> None:
    """Where the log is in the database, ``log_at_commit`` appends events at the open
    batch's commit (nothing before it), as a step of its own when no batch is open (under
    group commit it opens one; without, it commits at once), and never inside a
    transaction; SQLite keeps no log and refuses."""
    store = open_store()
    ev = [Event("Challenge", 0.5, ue="001"), Event("Authenticate", 0.6, ue="001")]
    if not isinstance(store, PgStore):
        with pytest.raises(StoreError, match="keeps no event log"):
            store.log_at_commit(ev)
        return

    def logged() -> list[str]:
        return [json.loads(line)["event"] for _, line in store.export_events()]

    start = logged()
    store.group_commits(lambda: None)
    try:
        with store.transaction():
            store.add_subscriber("001", K, OPC)
            with pytest.raises(StoreError, match="inside a transaction"):
                store.log_at_commit(ev)
        store.log_at_commit(ev)
        assert logged() == start  # not before the batch's commit
        assert store.commit_batch() is False  # durability "normal": no fsync asked
        assert logged() == [*start, "Challenge", "Authenticate"]
        store.log_at_commit(ev[:1])  # no batch open: a step of its own opens one
        assert store.in_batch and logged() == [*start, "Challenge", "Authenticate"]
        store.commit_batch()
        assert logged() == [*start, "Challenge", "Authenticate", "Challenge"]
    finally:
        store.group_commits(None)
    store.log_at_commit(ev[1:])  # no group commit: committed at once
    assert logged() == [*start, "Challenge", "Authenticate", "Challenge", "Authenticate"]


@pytest.mark.xdist_group("postgres")
def test_a_batch_logs_its_joined_events_with_its_steps_or_not_at_all(
    pg_cluster: PgCluster,
) -> None:
    """At durability ``full``: a batch of only unauthenticated steps and joined events
    commits without waiting for the flush, one with an authenticated step waits for it;
    events that joined a batch stay when a later step of it is rolled back, and go with
    the batch when its commit fails.  Read from another connection."""
    url = pg_cluster.create_database()
    store = PgStore(url, durability="full")
    other = PgStore(url, durability="normal")

    def logged() -> list[str]:
        return [str(json.loads(line)["ue"]) for _, line in other.export_events()]

    def sqn() -> int:
        sub = other.get_subscriber("001")
        assert sub is not None
        return sub.sqn

    with store.transaction():
        store.add_subscriber("001", K, OPC)
    start = logged()
    store.group_commits(lambda: None)
    try:
        store.log_at_commit([Event("Challenge", 1.0, ue="e1")])  # opens a batch
        assert store.commit_batch() is False  # unauthenticated only: no flush waited for
        assert logged() == [*start, "e1"]
        with store.transaction():
            store.take_sqn("001")
        store.log_at_commit([Event("Authenticate", 2.0, ue="e2")])
        assert store.commit_batch() is True  # an authenticated step: the flush
        assert logged() == [*start, "e1", "e2"] and sqn() == 1
        store.log_at_commit([Event("Challenge", 3.0, ue="e3")])
        with pytest.raises(RuntimeError), store.transaction():
            store.take_sqn("001")
            raise RuntimeError("a later step fails")
        with store.transaction(sync=False):
            store.take_counter("001")
        store.commit_batch()
        assert logged() == [*start, "e1", "e2", "e3"] and sqn() == 1  # the step undone
        pid = store._one("SELECT pg_backend_pid() AS pid")
        assert pid is not None
        with store.transaction():
            store.take_sqn("001")
        store.log_at_commit([Event("Authenticate", 4.0, ue="e4")])
        other._one("SELECT pg_terminate_backend(?) AS ended", (pid["pid"],))
        with pytest.raises(StoreError, match="commit failed"):
            store.commit_batch()
        assert not store.in_batch
        assert logged() == [*start, "e1", "e2", "e3"] and sqn() == 1  # none of it
        store.log_at_commit([Event("Challenge", 5.0, ue="e5")])  # a new session
        store.commit_batch()
        assert logged() == [*start, "e1", "e2", "e3", "e5"]
    finally:
        store.group_commits(None)
        store.close()
        other.close()


_WRITER = r"""
import sys
from mbmssec.impl.service.store import Store
store = Store(sys.argv[1], durability=sys.argv[2])
with store.transaction():
    if store.get_subscriber("001") is None:
        store.add_subscriber("001", bytes(16), bytes(16))
        store.add_service("239.0.0.1", ssrc=1, csb_id=2, period=1.0, now=0.0)
print("ready", flush=True)
step = 0
while True:
    with store.transaction():
        sqn = store.take_sqn("001")
        mki = store.take_mki("239.0.0.1")
        ctr = store.take_counter("001")
        store.insert_tek(service="239.0.0.1", mki=mki, key=bytes(16), salt=bytes(14),
                         state="pending", gen_ev=store.next_ev(), gen_t=0.0, planned=0.0)
    print(sqn, mki, ctr, flush=True)
"""


@pytest.mark.parametrize("durability", ["full", "normal"])
def test_sigkill_at_a_random_moment_loses_no_commit(tmp_path: Path, durability: str) -> None:
    db = tmp_path / "crash.db"
    rng = random.Random(20240)
    last_seen: tuple[int, int, int] | None = None
    for _round in range(3):
        child = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(db), durability], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.3))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        lines = child.stdout.read().split("\n")
        reported = [tuple(int(x) for x in line.split()) for line in lines if len(line.split()) == 3]
        assert reported, "the writer made no progress"
        sqn, mki, ctr = reported[-1]
        if last_seen is not None:
            assert sqn > last_seen[0] and mki > last_seen[1] and ctr > last_seen[2]
        store = Store(db, durability=durability)
        sub = store.get_subscriber("001")
        svc = store.get_service("239.0.0.1")
        teks = store.teks("239.0.0.1")
        assert sub is not None and svc is not None
        # Every reported commit is there; at most the one in flight beyond it.
        assert sqn <= sub.sqn <= sqn + 1
        # All of a step or none of it: the counters moved together.
        assert sub.sqn - sqn == svc.next_mki - 1 - mki == sub.ctr - ctr
        assert [t.mki for t in teks] == list(range(1, svc.next_mki))
        assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        store.close()
        last_seen = (sub.sqn, svc.next_mki - 1, sub.ctr)

"""Durable BM-SC state in SQLite: subscribers, subscriptions, TEK schedule, registrations.

The BM-SC of the MBMS key management (TS 33.246 6.2.2-6.2.3.3) must come back from a
crash without losing or duplicating a TEK, without reusing an MKI and without moving a
subscriber's AKA sequence number backwards (TS 33.102 6.3.2: an SQN the USIM has seen
again would be refused, and reusing one would replay an authentication vector).  This
module is the storage layer that makes that hold:

* every table lives in one SQLite database in WAL mode, created with mode 0600 (its
  ``-wal`` and ``-shm`` files take the same mode): it holds K, OPc and every key;
* every change the BM-SC makes is one :meth:`Store.transaction` (``BEGIN IMMEDIATE``
  ... ``COMMIT``), and nothing is answered to a client before its transaction has
  committed, so a process killed at any moment (SIGKILL) leaves either all or none of a
  step on disk;
* ``durability="full"`` (the default) also fsyncs the WAL at every commit that needs it
  (what ``synchronous=FULL`` does, done by the store after the commit so that a batch of
  only unauthenticated steps can go without, see :class:`Store`), so a committed step
  survives a power cut as well; ``"normal"`` survives a killed process but may lose the
  last commits on a power cut;
* MKIs come from a per-service counter that only grows and is committed together with
  the TEK that uses it (``UNIQUE(service, mki)`` guards the rule as well), SQNs from a
  per-subscriber counter that only grows, MIKEY replay counters likewise;
* the SRTP packet index of each service's stream is reserved ahead in blocks, so a
  restarted sender continues above every index it may have used (an SRTP index reused
  under the same key would reuse keystream, RFC 3711 9.1).

Tables (all times are Unix seconds; ``ev`` numbers are a logical event counter kept in
``meta``, used where the model compares "before" and "after"):

``subscribers`` (ue, k, opc, sqn, ctr)
    HSS/AuC data: the subscriber key K, OPc, the last SQN used in a vector, and the
    BM-SC's MIKEY replay counter towards the UE.
``services`` (service, ssrc, csb_id, period, next_mki, srtp_reserved)
    One MBMS service (named by its multicast address): SRTP SSRC, MIKEY CSB ID, TEK
    period, the next unused MKI, and the reserved SRTP index high-water mark.
``subscriptions`` (ue, service, subscribed, join_ev, revoke_ev)
    The authorisation database.  ``join_ev`` is the first subscription's event number.
``teks`` (id, service, mki, key, salt, state, gen_ev, gen_t, planned, act_ev, act_t, end_t)
    The TEK schedule; ``state`` is ``pending`` (generated, not yet active), ``active``,
    ``retired`` (replaced by a newer TEK) or ``withdrawn`` (discarded before activation).
``deliveries`` (ue, tek, ctr, t) / ``acks`` (ue, tek, t)
    Which UE was sent / confirmed (MIKEY response) which TEK.
``registrations`` (ue, service, registered, port, fetch_time, kek, ...)
    The UE's registration: its loopback UDP port for the stream, its next fetch time,
    the KEK of its latest delivery and what the MIKEY response must be checked against.
``group_keks`` (service, kek)
    With ``kek_scope=common`` only: the one KEK of the service that every UE's TEK
    deliveries are protected with (created with the service, never changed).
``challenges`` (nonce, ue, rand, xres, ck, ik, opaque, issued, state, max_nc, failures)
    Digest AKA challenges issued and their use (``pending``, ``verified``, ``used``,
    ``failed``) and the wrong answers counted against them; kept so a restarted BM-SC
    still recognises a nonce it issued.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final

from mbmssec.errors import MbmssecError
from mbmssec.impl.service.events import Event
from mbmssec.impl.service.files import create_private

__all__ = [
    "DURABILITY",
    "SCHEMA_VERSION",
    "TEK_STATES",
    "Challenge",
    "Registration",
    "Row",
    "Service",
    "Store",
    "StoreError",
    "Subscriber",
    "Subscription",
    "TekRow",
]

SCHEMA_VERSION: Final = 1
DURABILITY: Final = ("full", "normal")
TEK_STATES: Final = ("pending", "active", "retired", "withdrawn")

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS subscribers (
    ue TEXT PRIMARY KEY,
    k BLOB NOT NULL CHECK (length(k) = 16),
    opc BLOB NOT NULL CHECK (length(opc) = 16),
    sqn INTEGER NOT NULL CHECK (sqn >= 0),
    ctr INTEGER NOT NULL DEFAULT 0 CHECK (ctr >= 0)
);
CREATE TABLE IF NOT EXISTS services (
    service TEXT PRIMARY KEY,
    ssrc INTEGER NOT NULL,
    csb_id INTEGER NOT NULL,
    period REAL NOT NULL CHECK (period > 0),
    next_mki INTEGER NOT NULL CHECK (next_mki >= 1),
    srtp_reserved INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS subscriptions (
    ue TEXT NOT NULL REFERENCES subscribers(ue),
    service TEXT NOT NULL REFERENCES services(service),
    subscribed INTEGER NOT NULL,
    join_ev INTEGER NOT NULL,
    revoke_ev INTEGER,
    PRIMARY KEY (ue, service)
);
CREATE TABLE IF NOT EXISTS teks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service TEXT NOT NULL REFERENCES services(service),
    mki INTEGER NOT NULL,
    key BLOB NOT NULL,
    salt BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'active', 'retired', 'withdrawn')),
    gen_ev INTEGER NOT NULL,
    gen_t REAL NOT NULL,
    planned REAL NOT NULL,
    act_ev INTEGER,
    act_t REAL,
    end_t REAL,
    UNIQUE (service, mki)
);
CREATE INDEX IF NOT EXISTS teks_by_state ON teks(service, state);
CREATE TABLE IF NOT EXISTS deliveries (
    ue TEXT NOT NULL,
    tek INTEGER NOT NULL REFERENCES teks(id),
    ctr INTEGER NOT NULL,
    t REAL NOT NULL,
    PRIMARY KEY (ue, tek)
);
CREATE TABLE IF NOT EXISTS acks (
    ue TEXT NOT NULL,
    tek INTEGER NOT NULL REFERENCES teks(id),
    t REAL NOT NULL,
    PRIMARY KEY (ue, tek)
);
CREATE TABLE IF NOT EXISTS registrations (
    ue TEXT NOT NULL,
    service TEXT NOT NULL,
    registered INTEGER NOT NULL,
    port INTEGER NOT NULL,
    fetch_time REAL NOT NULL,
    kek BLOB NOT NULL,
    csb_id INTEGER NOT NULL,
    mikey_rand BLOB NOT NULL,
    ts_type INTEGER NOT NULL,
    ts_value BLOB NOT NULL,
    id_i BLOB,
    id_r BLOB,
    awaiting_ack INTEGER NOT NULL,
    delivered TEXT NOT NULL,
    t REAL NOT NULL,
    PRIMARY KEY (ue, service)
);
CREATE TABLE IF NOT EXISTS group_keks (
    service TEXT PRIMARY KEY REFERENCES services(service),
    kek BLOB NOT NULL CHECK (length(kek) = 16)
);
CREATE TABLE IF NOT EXISTS challenges (
    nonce TEXT PRIMARY KEY,
    ue TEXT NOT NULL,
    rand BLOB NOT NULL,
    xres BLOB NOT NULL,
    ck BLOB NOT NULL,
    ik BLOB NOT NULL,
    opaque TEXT NOT NULL,
    sqn INTEGER NOT NULL,
    issued REAL NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'verified', 'used', 'failed')),
    max_nc INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS challenges_by_time ON challenges(issued);
"""

_CHALLENGES_BY_UE: Final = (
    "CREATE INDEX IF NOT EXISTS challenges_by_ue ON challenges(ue, state, issued)"
)


class StoreError(MbmssecError):
    """The database cannot be opened, has the wrong schema, or refused a change."""


@dataclass(frozen=True, repr=False)
class Subscriber:
    """HSS/AuC data of one subscriber (TS 33.102 6.3): K and OPc are secret."""

    ue: str
    k: bytes
    opc: bytes
    sqn: int
    ctr: int

    def __repr__(self) -> str:
        return f"Subscriber({self.ue!r}, sqn={self.sqn}, ctr={self.ctr})"


@dataclass(frozen=True)
class Service:
    """One MBMS service and its stream parameters."""

    service: str
    ssrc: int
    csb_id: int
    period: float
    next_mki: int
    srtp_reserved: int
    created: float


@dataclass(frozen=True)
class Subscription:
    """One row of the authorisation database."""

    ue: str
    service: str
    subscribed: bool
    join_ev: int
    revoke_ev: int | None


@dataclass(frozen=True, repr=False)
class TekRow:
    """One TEK of the schedule (key and salt are secret)."""

    id: int
    service: str
    mki: int
    key: bytes
    salt: bytes
    state: str
    gen_ev: int
    gen_t: float
    planned: float
    act_ev: int | None
    act_t: float | None
    end_t: float | None

    def __repr__(self) -> str:
        return f"TekRow(id={self.id}, {self.service!r}, mki={self.mki}, {self.state})"


@dataclass(frozen=True, repr=False)
class Registration:
    """A UE's registration for a service and what its latest delivery was."""

    ue: str
    service: str
    registered: bool
    port: int
    fetch_time: float
    kek: bytes
    csb_id: int
    mikey_rand: bytes
    ts_type: int
    ts_value: int  # the T payload's value: a 32-bit counter or a 64-bit NTP time stamp
    id_i: bytes | None
    id_r: bytes | None
    awaiting_ack: bool
    delivered: tuple[int, ...]  # TEK ids of the latest delivery
    t: float

    def __repr__(self) -> str:
        return (
            f"Registration({self.ue!r}, {self.service!r}, registered={self.registered}, "
            f"port={self.port}, fetch_time={self.fetch_time:.3f})"
        )


@dataclass(frozen=True, repr=False)
class Challenge:
    """An issued Digest AKA challenge and the vector behind it (XRES, CK, IK secret)."""

    nonce: str
    ue: str
    rand: bytes
    xres: bytes
    ck: bytes
    ik: bytes
    opaque: str
    sqn: int
    issued: float
    state: str
    max_nc: int
    failures: int = 0

    def __repr__(self) -> str:
        return (
            f"Challenge({self.ue!r}, sqn={self.sqn}, {self.state}, nc={self.max_nc}, "
            f"failures={self.failures})"
        )


def _tek(row: Mapping[str, Any]) -> TekRow:
    return TekRow(
        row["id"],
        row["service"],
        row["mki"],
        row["key"],
        row["salt"],
        row["state"],
        row["gen_ev"],
        row["gen_t"],
        row["planned"],
        row["act_ev"],
        row["act_t"],
        row["end_t"],
    )


def _by_mki(tek: TekRow) -> int:
    return tek.mki


def _registration(row: Mapping[str, Any]) -> Registration:
    delivered = tuple(int(x) for x in row["delivered"].split(",") if x)
    return Registration(
        row["ue"],
        row["service"],
        bool(row["registered"]),
        row["port"],
        row["fetch_time"],
        row["kek"],
        row["csb_id"],
        row["mikey_rand"],
        row["ts_type"],
        int.from_bytes(row["ts_value"], "big"),
        row["id_i"],
        row["id_r"],
        bool(row["awaiting_ack"]),
        delivered,
        row["t"],
    )


Row = dict[str, Any]
"""One result row, by column name."""


class Store:
    """The BM-SC database on SQLite, and the store interface every backend keeps.

    One instance per connection; not shared between threads.  Reads may happen
    anywhere; writes must happen inside :meth:`transaction`.  Several processes may open
    the same file (SQLite serialises the writers).
    :class:`~mbmssec.impl.service.pgstore.PgStore` keeps the same interface on
    PostgreSQL, for several BM-SC processes sharing one database.

    **Group commit.**  With :meth:`group_commits` on, the first :meth:`transaction` opens
    a *batch* (one database transaction) and every transaction until
    :meth:`commit_batch` is a savepoint inside it: a step that raises is rolled back to
    its savepoint alone, and the batch commits all the others at once, with one fsync.
    Whoever answers a client for a step must wait until :meth:`commit_batch` returned
    (:class:`mbmssec.impl.net.server.GroupCommit` does that per event-loop turn).  A
    transaction declared ``sync=False`` (the unauthenticated path: a challenge's SQN, a
    wrong answer counted) does not need an fsync: a batch of only such steps commits
    without one (it survives a killed process, not a power cut; a lost SQN is caught by
    the USIM's resynchronisation, TS 33.102 6.3.5).
    """

    _GREATEST: ClassVar[str] = "max"
    """The SQL function of the larger of two values."""

    keeps_log: ClassVar[bool] = False
    """Whether the event log is kept in the database (:meth:`log_events`)."""

    def __init__(
        self, path: str | Path, *, durability: str = "full", busy_timeout: float = 10.0
    ) -> None:
        if durability not in DURABILITY:
            raise StoreError(
                f"durability must be one of {', '.join(DURABILITY)}, got {durability!r}"
            )
        self.path = str(path)
        self.durability = durability
        self._init_transactions()
        if self.path != ":memory:" and not self.path.startswith("file:"):
            # Created for its owner only before SQLite opens it: SQLite gives the -wal and
            # -shm files the database file's mode.
            try:
                create_private(self.path, b"")
            except FileExistsError:
                pass
            except OSError as exc:
                raise StoreError(
                    f"{self.path}: cannot create the database: {exc.strerror}"
                ) from None
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=busy_timeout)
            self._db.row_factory = sqlite3.Row
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if self.path != ":memory:" and str(mode).lower() != "wal":
                raise StoreError(f"{self.path}: cannot switch the database to WAL mode")
            # Commits are written (not fsynced) by SQLite; a commit that needs it is made
            # durable by an fsync of the WAL afterwards (_commit), so that one batch of
            # unauthenticated steps goes without (SQLite cannot change its own safety
            # level inside a transaction, where a batch's need is known).
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
            columns = {r["name"] for r in self._db.execute("PRAGMA table_info(challenges)")}
            if "failures" not in columns:  # a database made before failures were counted
                self._db.execute(
                    "ALTER TABLE challenges ADD COLUMN failures INTEGER NOT NULL DEFAULT 0"
                )
            self._db.execute(_CHALLENGES_BY_UE)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the database: {exc}") from None
        self._check_schema()

    def _init_transactions(self) -> None:
        self._depth = 0  # nesting of transaction() blocks
        self._open = False  # a database transaction is open
        self._tx_sync = False  # the current step needs an fsync
        self._grouping: Callable[[], None] | None = None  # group commit: called at a batch's start
        self._batch_sync = False  # the open batch holds a step that needs an fsync
        self._events: list[Event] = []  # events to append at the commit (keeps_log)
        self._wal_fd: int | None = None
        self._count_lock = threading.Lock()
        self._schedule_changes = 0  # see schedule_stamp
        self._begun = 0  # transactions begun
        self._stamped = -1  # the transaction in which _data_version was read (-1: none)
        self._data_version = 0
        self.syncs = 0
        """Commits made durable with an fsync (SQLite: of the WAL)."""

    def _check_schema(self) -> None:
        with self.transaction():
            version = self.get_meta("schema")
            if version is None:
                self.set_meta("schema", str(SCHEMA_VERSION))
                self.set_meta("ev", "0")
            elif version != str(SCHEMA_VERSION):
                raise StoreError(
                    f"{self.path}: schema version {version}, this program reads {SCHEMA_VERSION}"
                )

    # -- connection and transactions -----------------------------------------------

    def close(self) -> None:
        """Close the connection (a transaction still open is rolled back)."""
        self._db.close()
        if self._wal_fd is not None:
            os.close(self._wal_fd)
            self._wal_fd = None

    @contextmanager
    def transaction(self, *, sync: bool = True) -> Iterator[Store]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back if the block raises.

        Nested use joins the outer transaction.  Commit happens before the block's
        caller sees the result, so anything answered afterwards is on disk; under group
        commit the step is a savepoint of the open batch instead, and on disk once
        :meth:`commit_batch` returned.  ``sync=False``: the step needs no fsync (see the
        class docstring); a nested ``sync=True`` step makes the whole one need it.
        """
        if self._depth:
            self._depth += 1
            self._tx_sync = self._tx_sync or sync
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self._tx_sync = sync
        if self._grouping is not None:
            if not self._open:
                self._begin()
                self._open = True
                self._batch_sync = False
                self._grouping()
            mark = len(self._events)
            self._exec("SAVEPOINT step")
            self._depth = 1
            try:
                yield self
            except BaseException:
                self._depth = 0
                del self._events[mark:]
                self._schedule_changes += 1  # what the step wrote is undone
                self._exec("ROLLBACK TO SAVEPOINT step")
                self._exec("RELEASE SAVEPOINT step")
                raise
            self._depth = 0
            self._exec("RELEASE SAVEPOINT step")
            self._batch_sync = self._batch_sync or self._tx_sync
            return
        self._begin()
        self._open = True
        self._depth = 1
        try:
            yield self
        except BaseException:
            self._depth = 0
            self._open = False
            self._events.clear()
            self._rollback()
            raise
        self._depth = 0
        try:
            self._commit(self._tx_sync)
        finally:
            self._open = False
            self._events.clear()

    # -- group commit -------------------------------------------------------------------

    def group_commits(self, on_batch: Callable[[], None] | None) -> None:
        """Turn group commit on (``on_batch`` is called when a batch opens, to schedule
        its :meth:`commit_batch`) or off (``None``; an open batch is committed first)."""
        if on_batch is None and self._open and self._grouping is not None:
            self.commit_batch()
        self._grouping = on_batch

    @property
    def in_batch(self) -> bool:
        """Whether a batch is open (its steps are not yet durable)."""
        return self._grouping is not None and self._open

    def commit_batch(self, *, defer_sync: bool = False) -> bool:
        """Commit the open batch (if any); returns whether it was fsynced.  On failure
        the batch is rolled back and :class:`StoreError` raised: none of its steps may
        be answered as done.

        ``defer_sync`` (where :attr:`defers_sync`): commit without the fsync and return
        whether the batch needs one; it is durable, and any of its steps may be
        answered, only once a :meth:`sync` that began after this call has returned."""
        if not self.in_batch or self._depth:
            return False
        sync = self._batch_sync and self.durability == "full"
        deferred = defer_sync and self.defers_sync
        try:
            self._commit(sync and not deferred)
        finally:
            self._open = False
            self._batch_sync = False
            self._events.clear()
        if deferred and sync:
            self._wal_descriptor()  # opened here, by the thread that uses the connection
        return sync

    @property
    def defers_sync(self) -> bool:
        """Whether a commit is made durable by a step of its own after it, which
        :meth:`sync` can take to another thread (SQLite at ``durability="full"``: an
        fsync of the WAL file, which touches no part of the connection)."""
        return (
            self.durability == "full"
            and self.path != ":memory:"
            and not self.path.startswith("file:")
        )

    def sync(self) -> None:
        """Make every commit made so far durable (SQLite: fsync the WAL; what
        ``synchronous=FULL`` does at each commit).  Safe to call from another thread
        while this one goes on using the connection (it uses only the WAL's file
        descriptor, opened by the commit), but not concurrently with :meth:`close`."""
        fd = self._wal_fd
        if fd is None:
            return  # nothing written through the WAL yet
        try:
            os.fdatasync(fd)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot sync the WAL: {exc.strerror}") from None
        with self._count_lock:
            self.syncs += 1

    def log_events(self, events: Sequence[Event]) -> None:
        """Inside a transaction: append ``events`` to the database's event log at its
        commit, in commit order (only where :attr:`keeps_log`)."""
        raise StoreError(f"{self.path}: this database keeps no event log (SQLite: a file)")

    def log_at_commit(self, events: Sequence[Event]) -> None:
        """Outside a transaction: append ``events`` to the database's event log at the
        open batch's commit, or as a step of their own if no batch is open (only where
        :attr:`keeps_log`)."""
        raise StoreError(f"{self.path}: this database keeps no event log (SQLite: a file)")

    def leads(self) -> bool:
        """Whether this process runs the TEK schedule and the SRTP stream.  One SQLite
        database has one BM-SC process, which always does."""
        return True

    def try_lead(self, ttl: float = 5.0) -> bool:
        """Become the process that runs the schedule, if no other one is (SQLite: the
        one process always is); ``ttl`` is the lease's time-to-live in seconds."""
        return True

    def renew_lease(self) -> bool:
        """Renew the leader's lease; False when it was lost (SQLite: never)."""
        return True

    def resign(self) -> None:
        """Give the leadership up at a clean stop (SQLite: nothing to give up)."""

    def lock_service(self, service: str, *, shared: bool = False) -> Service | None:
        """Inside a transaction: hold the service's schedule until the commit against
        every other writer, or (``shared``) against changes of the schedule only, so a
        delivery built from it commits before the schedule moves on (SQLite: every
        transaction holds the write lock); the service as read under the lock (None if
        there is no such service)."""
        if not self._depth:
            raise StoreError("a lock outside a transaction")  # a programming error
        return self.get_service(service)

    # -- the connection's primitives (each backend its own) ------------------------------

    def _begin(self) -> None:
        self._begun += 1
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot start a transaction: {exc}") from None

    def _commit(self, sync: bool) -> None:
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise StoreError(f"{self.path}: commit failed: {exc}") from None
        if sync and self.durability == "full":
            self._sync_wal()

    def _sync_wal(self) -> None:
        """fsync the WAL (what ``synchronous=FULL`` does at every commit): every commit
        so far is then on disk, this one's and the unsynced ones' before it."""
        self._wal_descriptor()
        self.sync()

    def _wal_descriptor(self) -> int | None:
        """The WAL file's descriptor, opened at its first use (None: an in-memory
        database, or nothing written through the WAL yet)."""
        if self.path == ":memory:" or self.path.startswith("file:"):
            return None
        if self._wal_fd is None:
            try:
                self._wal_fd = os.open(self.path + "-wal", os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return None
        return self._wal_fd

    def _rollback(self) -> None:
        self._schedule_changes += 1  # what the transaction wrote is undone
        with contextlib.suppress(sqlite3.Error):  # no transaction left to roll back
            self._db.execute("ROLLBACK")

    def _exec(self, sql: str) -> None:
        try:
            self._db.execute(sql)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {sql} failed: {exc}") from None

    def _write(self, sql: str, args: tuple[Any, ...] = ()) -> int:
        """Run a write inside a transaction; returns the rows it changed."""
        if not self._depth:
            raise StoreError("a write outside a transaction")  # a programming error
        try:
            return self._db.execute(sql, args).rowcount
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"refused by the database: {exc}") from None

    def _returning(self, sql: str, args: tuple[Any, ...] = ()) -> Row | None:
        """Run a write with ``RETURNING`` inside a transaction; its first row."""
        if not self._depth:
            raise StoreError("a write outside a transaction")  # a programming error
        try:
            cur = self._db.execute(sql, args)
            row = cur.fetchone()
            cur.fetchall()  # SQLite finishes the statement only once it is read out
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"refused by the database: {exc}") from None
        return None if row is None else dict(row)

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Row | None:
        row = self._db.execute(sql, args).fetchone()
        return None if row is None else dict(row)

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Row]:
        return [dict(r) for r in self._db.execute(sql, args).fetchall()]

    # -- meta --------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """A value of the ``meta`` table."""
        row = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row["value"])

    def set_meta(self, key: str, value: str) -> None:
        """Set a value of the ``meta`` table."""
        self._write(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def next_ev(self) -> int:
        """Take the next logical event number (1, 2, ...)."""
        row = self._returning(
            "UPDATE meta SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT) WHERE key = 'ev' "
            "RETURNING value"
        )
        assert row is not None
        return int(row["value"])

    # -- subscribers (HSS/AuC) -------------------------------------------------------------

    def add_subscriber(self, ue: str, k: bytes, opc: bytes, sqn: int = 0) -> None:
        """Provision a subscriber; an existing identity is an error."""
        if self.get_subscriber(ue) is not None:
            raise StoreError(f"subscriber {ue!r} already exists")
        self._write(
            "INSERT INTO subscribers(ue, k, opc, sqn, ctr) VALUES (?, ?, ?, ?, 0)",
            (ue, k, opc, sqn),
        )

    def get_subscriber(self, ue: str) -> Subscriber | None:
        """The subscriber's HSS/AuC record, if provisioned."""
        row = self._one("SELECT * FROM subscribers WHERE ue = ?", (ue,))
        if row is None:
            return None
        return Subscriber(row["ue"], row["k"], row["opc"], row["sqn"], row["ctr"])

    def subscribers(self) -> list[Subscriber]:
        """All subscribers, by identity."""
        return [
            Subscriber(r["ue"], r["k"], r["opc"], r["sqn"], r["ctr"])
            for r in self._all("SELECT * FROM subscribers ORDER BY ue")
        ]

    def raise_sqn(self, ue: str, sqn: int) -> None:
        """Set the subscriber's SQN to ``sqn`` if that is higher (never lowers it)."""
        self._write(
            f"UPDATE subscribers SET sqn = {self._GREATEST}(sqn, ?) WHERE ue = ?", (sqn, ue)
        )

    def take_sqn(self, ue: str) -> int:
        """Increment the subscriber's SQN and return the new value (for a new vector)."""
        row = self._returning(
            "UPDATE subscribers SET sqn = sqn + 1 WHERE ue = ? RETURNING sqn", (ue,)
        )
        if row is None:
            raise StoreError(f"unknown subscriber {ue!r}")
        return int(row["sqn"])

    def take_counter(self, ue: str) -> int:
        """Increment the subscriber's MIKEY replay counter and return the new value."""
        row = self._returning(
            "UPDATE subscribers SET ctr = ctr + 1 WHERE ue = ? RETURNING ctr", (ue,)
        )
        if row is None:
            raise StoreError(f"unknown subscriber {ue!r}")
        return int(row["ctr"])

    # -- services -----------------------------------------------------------------------

    def add_service(
        self, service: str, *, ssrc: int, csb_id: int, period: float, now: float
    ) -> Service:
        """Create a service; an existing name is an error."""
        if self.get_service(service) is not None:
            raise StoreError(f"service {service!r} already exists")
        self._schedule_changes += 1
        self._write(
            "INSERT INTO services(service, ssrc, csb_id, period, next_mki, "
            "srtp_reserved, created) VALUES (?, ?, ?, ?, 1, 0, ?)",
            (service, ssrc, csb_id, period, now),
        )
        created = self.get_service(service)
        assert created is not None
        return created

    def get_service(self, service: str) -> Service | None:
        """One service, if it exists."""
        row = self._one("SELECT * FROM services WHERE service = ?", (service,))
        return None if row is None else Service(**dict(row))

    def services(self) -> list[Service]:
        """All services, by name."""
        return [Service(**dict(r)) for r in self._all("SELECT * FROM services ORDER BY service")]

    def get_group_kek(self, service: str) -> bytes | None:
        """The service's common KEK (``kek_scope=common``), if one was created."""
        row = self._one("SELECT kek FROM group_keks WHERE service = ?", (service,))
        return None if row is None else bytes(row["kek"])

    def put_group_kek(self, service: str, kek: bytes) -> None:
        """Record the service's common KEK; a service has at most one."""
        self._write("INSERT INTO group_keks(service, kek) VALUES (?, ?)", (service, kek))

    def take_mki(self, service: str) -> int:
        """Take the service's next unused MKI (the counter only grows)."""
        row = self._returning(
            "UPDATE services SET next_mki = next_mki + 1 WHERE service = ? "
            "RETURNING next_mki - 1 AS mki",
            (service,),
        )
        if row is None:
            raise StoreError(f"unknown service {service!r}")
        return int(row["mki"])

    def reserve_srtp(self, service: str, upto: int) -> None:
        """Record that SRTP indices below ``upto`` may be used (never lowers the mark)."""
        self._write(
            f"UPDATE services SET srtp_reserved = {self._GREATEST}(srtp_reserved, ?) "
            "WHERE service = ?",
            (upto, service),
        )

    # -- subscriptions ----------------------------------------------------------------------

    def get_subscription(self, ue: str, service: str) -> Subscription | None:
        """The authorisation row of (ue, service), if any."""
        row = self._one("SELECT * FROM subscriptions WHERE ue = ? AND service = ?", (ue, service))
        if row is None:
            return None
        return Subscription(
            row["ue"], row["service"], bool(row["subscribed"]), row["join_ev"], row["revoke_ev"]
        )

    def put_subscription(self, sub: Subscription) -> None:
        """Insert or replace the authorisation row."""
        self._write(
            "INSERT INTO subscriptions(ue, service, subscribed, join_ev, revoke_ev) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(ue, service) DO UPDATE SET "
            "subscribed = excluded.subscribed, join_ev = excluded.join_ev, "
            "revoke_ev = excluded.revoke_ev",
            (sub.ue, sub.service, int(sub.subscribed), sub.join_ev, sub.revoke_ev),
        )

    def subscriptions(self, service: str | None = None) -> list[Subscription]:
        """Authorisation rows, by join order (optionally of one service)."""
        sql = "SELECT * FROM subscriptions"
        args: tuple[Any, ...] = ()
        if service is not None:
            sql += " WHERE service = ?"
            args = (service,)
        return [
            Subscription(r["ue"], r["service"], bool(r["subscribed"]), r["join_ev"], r["revoke_ev"])
            for r in self._all(sql + " ORDER BY join_ev, ue", args)
        ]

    def slot_of(self, ue: str, service: str) -> tuple[int, int]:
        """(rank, count) of the UE among the service's current subscribers, by join order."""
        row = self._one(
            "SELECT (SELECT count(*) FROM subscriptions o WHERE o.service = s.service "
            "AND o.subscribed = 1 AND (o.join_ev < s.join_ev OR (o.join_ev = s.join_ev "
            "AND o.ue < s.ue))) AS rank, (SELECT count(*) FROM subscriptions o "
            "WHERE o.service = s.service AND o.subscribed = 1) AS n "
            "FROM subscriptions s WHERE s.ue = ? AND s.service = ?",
            (ue, service),
        )
        if row is None:
            return 0, 1
        return int(row["rank"]), max(1, int(row["n"]))

    # -- TEKs ---------------------------------------------------------------------------

    def insert_tek(
        self,
        *,
        service: str,
        mki: int,
        key: bytes,
        salt: bytes,
        state: str,
        gen_ev: int,
        gen_t: float,
        planned: float,
    ) -> TekRow:
        """Store a newly generated TEK."""
        self._schedule_changes += 1
        row = self._returning(
            "INSERT INTO teks(service, mki, key, salt, state, gen_ev, gen_t, "
            "planned) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (service, mki, key, salt, state, gen_ev, gen_t, planned),
        )
        assert row is not None
        tek = self.get_tek(int(row["id"]))
        assert tek is not None
        return tek

    def schedule_stamp(self) -> tuple[int, int] | None:
        """A value that differs from every earlier one once the services or their TEKs
        may have changed (a write through this store, a rollback, a commit by another
        connection), so that a reader of :meth:`schedules` may keep what it concluded
        while the stamp stays the same; None where changes cannot be told so (the
        reader must read again)."""
        if not (self._open and self._stamped == self._begun):
            # While this connection's write transaction is open no other one can commit
            # (BEGIN IMMEDIATE holds the write lock): one read per transaction suffices.
            self._data_version = int(self._db.execute("PRAGMA data_version").fetchone()[0])
            self._stamped = self._begun if self._open else -1
        return (self._data_version, self._schedule_changes)

    def schedules(self) -> list[tuple[Service, list[TekRow]]]:
        """Every service (by name) with its active and pending TEKs (by MKI), read in one
        statement: what a tick of the schedule looks at."""
        rows = self._all(
            "SELECT s.service AS service, s.ssrc AS ssrc, s.csb_id AS csb_id, "
            "s.period AS period, s.next_mki AS next_mki, s.srtp_reserved AS srtp_reserved, "
            "s.created AS created, t.id AS id, t.mki AS mki, t.key AS key, t.salt AS salt, "
            "t.state AS state, t.gen_ev AS gen_ev, t.gen_t AS gen_t, t.planned AS planned, "
            "t.act_ev AS act_ev, t.act_t AS act_t, t.end_t AS end_t "
            "FROM services s LEFT JOIN teks t ON t.service = s.service "
            "AND t.state IN ('active', 'pending') ORDER BY s.service"
        )  # by MKI below: SQLite would sort the TEKs in a temporary B-tree per statement
        out: list[tuple[Service, list[TekRow]]] = []
        for row in rows:
            if not out or out[-1][0].service != row["service"]:
                out.append(
                    (
                        Service(
                            row["service"],
                            row["ssrc"],
                            row["csb_id"],
                            row["period"],
                            row["next_mki"],
                            row["srtp_reserved"],
                            row["created"],
                        ),
                        [],
                    )
                )
            if row["id"] is not None:
                out[-1][1].append(_tek(row))
        for _, teks in out:
            teks.sort(key=_by_mki)
        return out

    def get_tek(self, tek: int) -> TekRow | None:
        """One TEK by id."""
        row = self._one("SELECT * FROM teks WHERE id = ?", (tek,))
        return None if row is None else _tek(row)

    def teks(self, service: str, *states: str) -> list[TekRow]:
        """The service's TEKs (in the given states, or all), by MKI."""
        if states:
            marks = ",".join("?" for _ in states)
            rows = self._all(
                f"SELECT * FROM teks WHERE service = ? AND state IN ({marks}) ORDER BY mki",
                (service, *states),
            )
        else:
            rows = self._all("SELECT * FROM teks WHERE service = ? ORDER BY mki", (service,))
        return [_tek(r) for r in rows]

    def set_tek_state(
        self,
        tek: int,
        state: str,
        *,
        act_ev: int | None = None,
        act_t: float | None = None,
        end_t: float | None = None,
    ) -> None:
        """Move a TEK to a new state, stamping activation or end as given."""
        self._schedule_changes += 1
        self._write(
            "UPDATE teks SET state = ?, act_ev = coalesce(?, act_ev), "
            "act_t = coalesce(?, act_t), end_t = coalesce(?, end_t) WHERE id = ?",
            (state, act_ev, act_t, end_t, tek),
        )

    def set_planned(self, tek: int, planned: float) -> None:
        """Re-plan a pending TEK's activation time."""
        self._schedule_changes += 1
        self._write("UPDATE teks SET planned = ? WHERE id = ?", (planned, tek))

    # -- deliveries and acknowledgements ---------------------------------------------------

    def record_delivery(self, ue: str, tek: int, ctr: int, t: float) -> None:
        """Note that ``tek`` was sent to ``ue`` in the delivery with counter ``ctr``; ``t``
        stays the time it was first sent (a UE re-fetching the same TEK again and again
        must not keep holding up its activation, see :meth:`blocking_ues`)."""
        self._write(
            "INSERT INTO deliveries(ue, tek, ctr, t) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(ue, tek) DO UPDATE SET ctr = excluded.ctr",
            (ue, tek, ctr, t),
        )

    def record_deliveries(self, ue: str, teks: Sequence[int], ctr: int, t: float) -> None:
        """:meth:`record_delivery` of every TEK of one delivery, in one statement."""
        if not teks:
            return
        self._write(
            "INSERT INTO deliveries(ue, tek, ctr, t) VALUES "
            + ", ".join("(?, ?, ?, ?)" for _ in teks)
            + " ON CONFLICT(ue, tek) DO UPDATE SET ctr = excluded.ctr",
            tuple(x for tek in teks for x in (ue, tek, ctr, t)),
        )

    def was_delivered(self, ue: str, tek: int) -> bool:
        """Whether ``tek`` was ever sent to ``ue``."""
        return self._one("SELECT 1 FROM deliveries WHERE ue = ? AND tek = ?", (ue, tek)) is not None

    def record_ack(self, ue: str, tek: int, t: float) -> None:
        """Note that ``ue`` confirmed ``tek`` with a MIKEY response."""
        self._write(
            "INSERT INTO acks(ue, tek, t) VALUES (?, ?, ?) ON CONFLICT (ue, tek) DO NOTHING",
            (ue, tek, t),
        )

    def blocking_ues(
        self, service: str, tek: int, now: float, evidence: str, limit: int = 5
    ) -> list[str]:
        """Registered UEs of the service that neither have ``tek`` (delivered or acked, per
        ``evidence``) nor have passed their fetch time: what holds up activation
        (TS 33.246 6.2.3.3: UEs have fetched the new TEK before it is activated).

        ``now`` is the moment the caller's grace reaches back to: a fetch time after it
        still holds up activation, and a delivery counts only once it was sent by then
        (the answer may still be on its way to the UE, and a packet under the new TEK
        must not overtake it).  An acknowledgement counts at once: the UE has the key."""
        if evidence == "delivered":
            have = "SELECT 1 FROM deliveries d WHERE d.ue = r.ue AND d.tek = ? AND d.t <= ?"
            args: tuple[Any, ...] = (service, now, tek, now, limit)
        elif evidence == "acked":
            have = "SELECT 1 FROM acks d WHERE d.ue = r.ue AND d.tek = ?"
            args = (service, now, tek, limit)
        else:
            raise StoreError(f"unknown activation evidence {evidence!r}")
        rows = self._all(
            "SELECT r.ue FROM registrations r WHERE r.service = ? AND r.registered = 1 "
            "AND r.fetch_time >= ? AND NOT EXISTS (" + have + ") ORDER BY r.ue LIMIT ?",
            args,
        )
        return [str(r["ue"]) for r in rows]

    # -- registrations ---------------------------------------------------------------------

    def get_registration(self, ue: str, service: str) -> Registration | None:
        """The UE's registration for the service, if it ever registered."""
        row = self._one("SELECT * FROM registrations WHERE ue = ? AND service = ?", (ue, service))
        return None if row is None else _registration(row)

    def put_registration(self, reg: Registration) -> None:
        """Insert or replace a registration."""
        self._write(
            "INSERT INTO registrations(ue, service, registered, port, fetch_time, "
            "kek, csb_id, mikey_rand, ts_type, ts_value, id_i, id_r, awaiting_ack, "
            "delivered, t) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (ue, service) DO UPDATE SET registered = excluded.registered, "
            "port = excluded.port, fetch_time = excluded.fetch_time, kek = excluded.kek, "
            "csb_id = excluded.csb_id, mikey_rand = excluded.mikey_rand, "
            "ts_type = excluded.ts_type, ts_value = excluded.ts_value, id_i = excluded.id_i, "
            "id_r = excluded.id_r, awaiting_ack = excluded.awaiting_ack, "
            "delivered = excluded.delivered, t = excluded.t",
            (
                reg.ue,
                reg.service,
                int(reg.registered),
                reg.port,
                reg.fetch_time,
                reg.kek,
                reg.csb_id,
                reg.mikey_rand,
                reg.ts_type,
                reg.ts_value.to_bytes(8, "big"),
                reg.id_i,
                reg.id_r,
                int(reg.awaiting_ack),
                ",".join(str(x) for x in reg.delivered),
                reg.t,
            ),
        )

    def set_registered(self, ue: str, service: str, registered: bool) -> None:
        """Mark the registration (de)registered, keeping its stream port."""
        self._write(
            "UPDATE registrations SET registered = ? WHERE ue = ? AND service = ?",
            (int(registered), ue, service),
        )

    def set_awaiting_ack(self, ue: str, service: str, awaiting: bool) -> None:
        """Mark whether the latest delivery still waits for its MIKEY response."""
        self._write(
            "UPDATE registrations SET awaiting_ack = ? WHERE ue = ? AND service = ?",
            (int(awaiting), ue, service),
        )

    def registrations(self, service: str | None = None) -> list[Registration]:
        """All registrations (optionally of one service), by UE."""
        if service is None:
            rows = self._all("SELECT * FROM registrations ORDER BY service, ue")
        else:
            rows = self._all(
                "SELECT * FROM registrations WHERE service = ? ORDER BY ue", (service,)
            )
        return [_registration(r) for r in rows]

    def stream_targets(self, service: str) -> list[tuple[str, int]]:
        """(ue, port) of every UE that registered a stream port for the service.

        Revoked UEs stay on the list: the broadcast bearer reaches every UE in the
        area, authorised or not; only the keys keep them out (TS 33.246 6.2.2 step 5).
        """
        return [
            (str(r["ue"]), int(r["port"]))
            for r in self._all(
                "SELECT ue, port FROM registrations WHERE service = ? ORDER BY ue", (service,)
            )
        ]

    # -- challenges ------------------------------------------------------------------------

    def put_challenge(self, ch: Challenge) -> None:
        """Store an issued challenge."""
        self._write(
            "INSERT INTO challenges(nonce, ue, rand, xres, ck, ik, opaque, sqn, issued, "
            "state, max_nc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                ch.nonce,
                ch.ue,
                ch.rand,
                ch.xres,
                ch.ck,
                ch.ik,
                ch.opaque,
                ch.sqn,
                ch.issued,
                ch.state,
                ch.max_nc,
            ),
        )

    def get_challenge(self, nonce: str) -> Challenge | None:
        """An issued challenge by its nonce."""
        row = self._one("SELECT * FROM challenges WHERE nonce = ?", (nonce,))
        return None if row is None else Challenge(**dict(row))

    def outstanding_challenge(self, ue: str, issued_since: float) -> Challenge | None:
        """The UE's latest challenge still ``pending`` (issued, never answered right,
        not invalidated) and issued at ``issued_since`` or later, if any (reads only)."""
        row = self._one(
            "SELECT * FROM challenges WHERE ue = ? AND state = 'pending' AND issued >= ? "
            "ORDER BY issued DESC, sqn DESC LIMIT 1",
            (ue, issued_since),
        )
        return None if row is None else Challenge(**dict(row))

    def record_failure(self, nonce: str, limit: int) -> int:
        """Count one wrong answer to a pending challenge; at ``limit`` wrong answers it
        becomes ``failed``.  Returns the failures counted."""
        row = self._returning(
            "UPDATE challenges SET failures = failures + 1, state = CASE WHEN failures + 1 "
            ">= ? THEN 'failed' ELSE state END WHERE nonce = ? AND state = 'pending' "
            "RETURNING failures",
            (limit, nonce),
        )
        return 0 if row is None else int(row["failures"])

    def update_challenge(self, nonce: str, state: str, max_nc: int) -> None:
        """Record a challenge's use."""
        self._write(
            "UPDATE challenges SET state = ?, max_nc = ? WHERE nonce = ?", (state, max_nc, nonce)
        )

    def claim_challenge(self, nonce: str, state: str, nc: int) -> bool:
        """Record a challenge's use with nonce count ``nc`` only if no other request
        used it meanwhile: it is still ``pending``, or ``verified`` with a lower nonce
        count (one atomic statement, so that of two BM-SC processes given the same
        answer at once only one wins).  Returns whether this use won."""
        return (
            self._write(
                "UPDATE challenges SET state = ?, max_nc = ? WHERE nonce = ? AND "
                "(state = 'pending' OR (state = 'verified' AND max_nc < ?))",
                (state, nc, nonce, nc),
            )
            == 1
        )

    def purge_challenges(self, issued_before: float) -> int:
        """Forget challenges issued before the given time; returns how many."""
        return self._write("DELETE FROM challenges WHERE issued < ?", (issued_before,))

    # -- inspection ------------------------------------------------------------------------

    _SNAPSHOT_ORDER: Final = (
        ("meta", "key"),
        ("subscribers", "ue"),
        ("services", "service"),
        ("subscriptions", "ue, service"),
        ("teks", "id"),
        ("deliveries", "ue, tek"),
        ("acks", "ue, tek"),
        ("registrations", "service, ue"),
    )

    def snapshot(self, *tables: str) -> dict[str, list[dict[str, Any]]]:
        """Every durable table except ``challenges`` as plain rows (keys as hex), or only
        the named ``tables``.

        For tests and the admin ``state`` view: two snapshots are equal iff no
        subscriber, SQN, counter, subscription, TEK, delivery, acknowledgement or
        registration changed.
        """
        known = {t for t, _ in self._SNAPSHOT_ORDER}
        unknown = set(tables) - known
        if unknown:
            raise StoreError(f"no such table in a snapshot: {sorted(unknown)}")
        out: dict[str, list[dict[str, Any]]] = {}
        for table, order in self._SNAPSHOT_ORDER:
            if tables and table not in tables:
                continue
            rows = []
            for row in self._all(f"SELECT * FROM {table} ORDER BY {order}"):
                rows.append(
                    {
                        k: (v.hex() if isinstance(v, bytes | memoryview) else v)
                        for k, v in row.items()
                    }
                )
            out[table] = rows
        return out

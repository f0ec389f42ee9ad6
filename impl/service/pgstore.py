"""The BM-SC's store on PostgreSQL: several BM-SC processes sharing one database.

:class:`PgStore` keeps the interface of the SQLite :class:`~mbmssec.impl.service.store.Store`
(the same tables, the same statements, the same group commit), so that
``mbmssec serve --db postgresql://...`` runs the same core.  What SQLite gets from having
one writer, PostgreSQL gets from the database itself, so that any number of BM-SC
processes (workers) may serve the same subscribers at once:

* **SQN and counters** are taken with ``UPDATE ... SET sqn = sqn + 1 ... RETURNING``: the
  row lock makes each allocation atomic per subscriber, whichever worker takes it;
* **MKIs** come from the service's counter the same way and ``UNIQUE (service, mki)``
  refuses any duplicate; schedule changes hold the service's row (:meth:`lock_service`);
* **challenges** are rows, committed before the challenge is sent, so any worker
  recognises a nonce another one issued; a nonce is spent by one conditional ``UPDATE``
  (:meth:`~mbmssec.impl.service.store.Store.claim_challenge`), so of two workers given the
  same answer only one serves it;
* **one leader** runs the TEK schedule and the SRTP stream: the worker holding the
  session-level advisory lock :data:`LEADER_LOCK` (:meth:`try_lead`).  Its lease row is
  renewed every poll (:meth:`renew_lease`); a worker that finds the lock taken and the
  lease older than its time-to-live ends the holder's database session
  (``pg_terminate_backend``), which releases the lock and fences the old leader (every
  statement of its session fails from then on).  A leader process that dies loses its
  session, and so the lock, at once;
* **the event log** is the table ``events``, appended in the same transaction as the
  state it records, under the transaction-level advisory lock :data:`EVENTS_LOCK` taken
  just before the commit, so its sequence numbers are in commit order across the fleet;
  each event's time is raised, if needed, to the latest time already logged, so that the
  log's times never go backwards across workers (by at most the time a commit waits for
  another worker's).  ``mbmssec bmsc-admin --db URL export-log`` writes it as JSON lines
  for ``mbmssec trace-check``.

Durability: ``full`` commits with ``synchronous_commit = on`` (the server flushes its WAL
before the commit returns) except for batches of only unauthenticated steps, committed
with ``synchronous_commit = off`` (a killed BM-SC loses nothing, a crashed database
server may lose the last of them); ``normal`` commits everything without waiting for the
flush.

The driver is psycopg 3, used synchronously: the core is sans-I/O and calls its store
synchronously, so a synchronous driver keeps one store interface for SQLite and
PostgreSQL, and group commit makes the wait one round trip per batch, not per request.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Final

import psycopg
from psycopg.rows import dict_row

from mbmssec.impl.service.events import Event
from mbmssec.impl.service.store import DURABILITY, Row, Service, Store, StoreError

__all__ = [
    "DEFAULT_LEASE_TTL",
    "EVENTS_LOCK",
    "LEADER_LOCK",
    "URL_SCHEMES",
    "PgStore",
    "is_database_url",
    "redact_url",
]

URL_SCHEMES: Final = ("postgresql://", "postgres://")
"""How a ``--db`` value names a PostgreSQL database (libpq's connection URIs)."""

LEADER_LOCK: Final = 0x6D626D73_00000001
"""The session-level advisory lock held by the worker that runs the schedule."""

EVENTS_LOCK: Final = 0x6D626D73_00000002
"""The transaction-level advisory lock under which events are appended (commit order)."""

_SCHEMA_LOCK: Final = 0x6D626D73_00000003

DEFAULT_LEASE_TTL: Final = 5.0
"""Seconds after its last renewal that a leader which holds the lock but no longer
renews its lease (a hung process) is ended by another worker."""

_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS subscribers (
    ue TEXT PRIMARY KEY,
    k BYTEA NOT NULL CHECK (length(k) = 16),
    opc BYTEA NOT NULL CHECK (length(opc) = 16),
    sqn BIGINT NOT NULL CHECK (sqn >= 0),
    ctr BIGINT NOT NULL DEFAULT 0 CHECK (ctr >= 0)
)""",
    """CREATE TABLE IF NOT EXISTS services (
    service TEXT PRIMARY KEY,
    ssrc BIGINT NOT NULL,
    csb_id BIGINT NOT NULL,
    period DOUBLE PRECISION NOT NULL CHECK (period > 0),
    next_mki BIGINT NOT NULL CHECK (next_mki >= 1),
    srtp_reserved BIGINT NOT NULL DEFAULT 0,
    created DOUBLE PRECISION NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS subscriptions (
    ue TEXT NOT NULL REFERENCES subscribers(ue),
    service TEXT NOT NULL REFERENCES services(service),
    subscribed INTEGER NOT NULL,
    join_ev BIGINT NOT NULL,
    revoke_ev BIGINT,
    PRIMARY KEY (ue, service)
)""",
    """CREATE TABLE IF NOT EXISTS teks (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service TEXT NOT NULL REFERENCES services(service),
    mki BIGINT NOT NULL,
    key BYTEA NOT NULL,
    salt BYTEA NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'active', 'retired', 'withdrawn')),
    gen_ev BIGINT NOT NULL,
    gen_t DOUBLE PRECISION NOT NULL,
    planned DOUBLE PRECISION NOT NULL,
    act_ev BIGINT,
    act_t DOUBLE PRECISION,
    end_t DOUBLE PRECISION,
    UNIQUE (service, mki)
)""",
    "CREATE INDEX IF NOT EXISTS teks_by_state ON teks(service, state)",
    """CREATE TABLE IF NOT EXISTS deliveries (
    ue TEXT NOT NULL,
    tek BIGINT NOT NULL REFERENCES teks(id),
    ctr BIGINT NOT NULL,
    t DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (ue, tek)
)""",
    """CREATE TABLE IF NOT EXISTS acks (
    ue TEXT NOT NULL,
    tek BIGINT NOT NULL REFERENCES teks(id),
    t DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (ue, tek)
)""",
    """CREATE TABLE IF NOT EXISTS registrations (
    ue TEXT NOT NULL,
    service TEXT NOT NULL,
    registered INTEGER NOT NULL,
    port INTEGER NOT NULL,
    fetch_time DOUBLE PRECISION NOT NULL,
    kek BYTEA NOT NULL,
    csb_id BIGINT NOT NULL,
    mikey_rand BYTEA NOT NULL,
    ts_type INTEGER NOT NULL,
    ts_value BYTEA NOT NULL,
    id_i BYTEA,
    id_r BYTEA,
    awaiting_ack INTEGER NOT NULL,
    delivered TEXT NOT NULL,
    t DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (ue, service)
)""",
    "CREATE INDEX IF NOT EXISTS registrations_by_service ON registrations(service, ue)",
    """CREATE TABLE IF NOT EXISTS group_keks (
    service TEXT PRIMARY KEY REFERENCES services(service),
    kek BYTEA NOT NULL CHECK (length(kek) = 16)
)""",
    """CREATE TABLE IF NOT EXISTS challenges (
    nonce TEXT PRIMARY KEY,
    ue TEXT NOT NULL,
    rand BYTEA NOT NULL,
    xres BYTEA NOT NULL,
    ck BYTEA NOT NULL,
    ik BYTEA NOT NULL,
    opaque TEXT NOT NULL,
    sqn BIGINT NOT NULL,
    issued DOUBLE PRECISION NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'verified', 'used', 'failed')),
    max_nc BIGINT NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0
)""",
    "CREATE INDEX IF NOT EXISTS challenges_by_time ON challenges(issued)",
    "CREATE INDEX IF NOT EXISTS challenges_by_ue ON challenges(ue, state, issued)",
    """CREATE TABLE IF NOT EXISTS events (
    seq BIGINT PRIMARY KEY,
    t DOUBLE PRECISION NOT NULL,
    body TEXT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS event_mark (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    t DOUBLE PRECISION NOT NULL
)""",
    "INSERT INTO event_mark(id, seq, t) VALUES (1, 0, 0) ON CONFLICT (id) DO NOTHING",
    """CREATE TABLE IF NOT EXISTS leader (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT,
    backend INTEGER,
    epoch BIGINT NOT NULL,
    renewed TIMESTAMPTZ
)""",
    "INSERT INTO leader(id, epoch) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
)

_LOCK_EVENTS: Final = f"SELECT pg_advisory_xact_lock({EVENTS_LOCK})"
"""Taken before the events' append, in a statement of its own: the append's statement
then reads the log's mark with a snapshot taken after the lock was granted."""

# One statement appends a batch's events: numbered after the last one logged, each time
# raised to the running maximum of the times logged before it.
_APPEND_EVENTS: Final = """
WITH m AS (SELECT seq, t FROM event_mark WHERE id = 1),
e AS (
    SELECT m.seq + x.ord AS seq,
           greatest(m.t, max(x.t) OVER (ORDER BY x.ord)) AS t,
           x.body
    FROM m, unnest(%s::double precision[], %s::text[]) WITH ORDINALITY AS x(t, body, ord)
),
ins AS (INSERT INTO events(seq, t, body) SELECT seq, t, body FROM e RETURNING seq, t)
UPDATE event_mark SET seq = (SELECT max(seq) FROM ins), t = (SELECT max(t) FROM ins)
WHERE id = 1
"""


def is_database_url(db: object) -> bool:
    """Whether a ``--db`` value is a PostgreSQL URL rather than a SQLite file path."""
    return isinstance(db, str) and db.startswith(URL_SCHEMES)


def redact_url(url: str) -> str:
    """The URL without a password (for messages and the ``serve`` JSON line)."""
    return re.sub(r"(://[^:/@?]*):[^@/?]*@", r"\1:***@", url)


def _event_body(event: Event) -> tuple[float, str]:
    """(t, the JSON object without ``t``) of an event."""
    obj = event.to_json()
    t = float(obj.pop("t"))
    return t, json.dumps(obj, separators=(",", ":"))


def _event_rows(events: Sequence[Event]) -> tuple[list[float], list[str]]:
    """The parameters of :data:`_APPEND_EVENTS` for ``events``: times and bodies."""
    times, bodies = zip(*(_event_body(e) for e in events), strict=True)
    return list(times), list(bodies)


class PgStore(Store):
    """The BM-SC database on PostgreSQL (see the module docstring).

    ``url`` is a libpq connection URI (``postgresql://user@host:port/db``, or with
    ``?host=/socket/dir`` for a Unix socket).  ``holder`` names this process in the
    leader's lease (default: host name and PID).
    """

    _GREATEST: ClassVar[str] = "greatest"
    keeps_log: ClassVar[bool] = True

    def __init__(
        self,
        url: str,
        *,
        durability: str = "full",
        holder: str | None = None,
        lock_timeout: float = 10.0,
    ) -> None:
        if durability not in DURABILITY:
            raise StoreError(
                f"durability must be one of {', '.join(DURABILITY)}, got {durability!r}"
            )
        if not is_database_url(url):
            raise StoreError(f"not a PostgreSQL URL: {redact_url(url)!r}")
        self.url = url
        self.path = redact_url(url)
        self.durability = durability
        self.holder = holder or f"{os.uname().nodename}:{os.getpid()}"
        self.lock_timeout = lock_timeout
        self._init_transactions()
        self._sql: dict[str, str] = {}
        self._leader = False
        self._epoch = 0
        self._conn = self._connect()
        try:
            self._conn.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
            try:
                for statement in _SCHEMA:
                    self._conn.execute(statement)
            finally:
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))
        except psycopg.Error as exc:
            self._conn.close()
            raise StoreError(f"{self.path}: cannot create the tables: {_why(exc)}") from None
        self._check_schema()

    def _connect(self) -> psycopg.Connection[Row]:
        try:
            conn = psycopg.connect(
                self.url, autocommit=True, row_factory=dict_row, connect_timeout=10
            )
            # A lock wait (another worker's batch holding a row) never blocks for long.
            conn.execute(f"SET lock_timeout = {int(self.lock_timeout * 1000)}")
            if self.durability == "normal":
                conn.execute("SET synchronous_commit = off")
        except psycopg.Error as exc:
            raise StoreError(f"{self.path}: cannot connect: {_why(exc)}") from None
        return conn

    def _alive(self) -> None:
        """Reconnect after a lost session (a restarted server, or a session ended by
        another worker): this process no longer leads."""
        if self._conn.closed or self._conn.broken:
            self._leader = False
            self._conn = self._connect()

    def close(self) -> None:
        """Close the connection (a transaction still open is rolled back; the leader's
        lock goes with the session)."""
        self._leader = False
        self._conn.close()

    # -- the connection's primitives ----------------------------------------------------

    def _q(self, sql: str) -> str:
        out = self._sql.get(sql)
        if out is None:
            out = self._sql[sql] = sql.replace("?", "%s")
        return out

    def _begin(self) -> None:
        try:
            self._alive()
            self._conn.execute("BEGIN")
        except (psycopg.Error, StoreError) as exc:
            raise StoreError(f"{self.path}: cannot start a transaction: {_why(exc)}") from None

    def _commit(self, sync: bool) -> None:
        try:
            # The events are encoded before the lock, which every worker's commit waits on.
            rows = _event_rows(self._events) if self._events else None
            # The statements before the events' append go in one round trip (no
            # parameters: the simple query protocol takes several statements at once).
            before = []
            if not sync and self.durability == "full":
                before.append("SET LOCAL synchronous_commit = off")
            if rows is not None:
                before.append(_LOCK_EVENTS)
            if before:
                self._conn.execute("; ".join(before).encode())
            if rows is not None:
                self._conn.execute(_APPEND_EVENTS, rows)
            self._conn.execute("COMMIT")
        except psycopg.Error as exc:
            self._rollback()
            raise StoreError(f"{self.path}: commit failed: {_why(exc)}") from None
        except BaseException:
            # Anything else (an event that cannot be encoded, a cancellation) is raised
            # unchanged; only the rollback is added, so that no half-committed batch and
            # no events' lock stay open on the connection for the next BEGIN to join.
            self._rollback()
            raise

    def schedule_stamp(self) -> tuple[int, int] | None:
        """None: another worker may change the schedule at any time."""
        return None

    @property
    def defers_sync(self) -> bool:
        """PostgreSQL makes a commit durable within the commit itself."""
        return False

    def _rollback(self) -> None:
        try:
            if not self._conn.closed:
                self._conn.execute("ROLLBACK")
        except psycopg.Error:
            pass  # the session is gone, and the transaction with it

    def _exec(self, sql: str) -> None:
        try:
            self._conn.execute(sql)
        except psycopg.Error as exc:
            raise StoreError(f"{self.path}: {sql} failed: {_why(exc)}") from None

    def _run(self, sql: str, args: tuple[Any, ...]) -> psycopg.Cursor[Row]:
        try:
            return self._conn.execute(self._q(sql), args)
        except psycopg.errors.IntegrityError as exc:
            raise StoreError(f"refused by the database: {_why(exc)}") from None
        except psycopg.Error as exc:
            raise StoreError(f"{self.path}: {_why(exc)}") from None

    def _write(self, sql: str, args: tuple[Any, ...] = ()) -> int:
        if not self._depth:
            raise StoreError("a write outside a transaction")  # a programming error
        return self._run(sql, args).rowcount

    def _returning(self, sql: str, args: tuple[Any, ...] = ()) -> Row | None:
        if not self._depth:
            raise StoreError("a write outside a transaction")  # a programming error
        return self._run(sql, args).fetchone()

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Row | None:
        if not self._open:
            self._alive()
        return self._run(sql, args).fetchone()

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Row]:
        if not self._open:
            self._alive()
        return self._run(sql, args).fetchall()

    # -- the fleet -------------------------------------------------------------------------

    def lock_service(self, service: str, *, shared: bool = False) -> Service | None:
        """Inside a transaction: hold the service's row (and so its schedule) until the
        commit: exclusively for a schedule change (the leader's ticks, a revocation),
        shared for a delivery built from the schedule.  A delivery so commits, and is
        logged, either before the schedule moves on or after it, with what it read.
        Returns the row as locked (None if there is no such service)."""
        if not self._depth:
            raise StoreError("a lock outside a transaction")  # a programming error
        mode = "SHARE" if shared else "UPDATE"
        row = self._run(f"SELECT * FROM services WHERE service = ? FOR {mode}", (service,))
        found = row.fetchone()
        return None if found is None else Service(**found)

    def log_events(self, events: Sequence[Event]) -> None:
        """Inside a transaction: append ``events`` to the log at its commit."""
        if not self._depth:
            raise StoreError("events logged outside a transaction")  # a programming error
        self._events.extend(events)

    def log_at_commit(self, events: Sequence[Event]) -> None:
        """Outside a transaction: append ``events`` to the log at the open batch's
        commit, or as a step of their own if no batch is open (which opens one under
        group commit, and commits at once without).  Joining the open batch writes
        nothing until its commit, so it needs no savepoint of its own."""
        if self._depth:
            raise StoreError("log_at_commit inside a transaction")  # a programming error
        if self.in_batch:
            self._events.extend(events)
            return
        with self.transaction(sync=False):
            self.log_events(events)

    def leads(self) -> bool:
        """Whether this worker holds the leader's lock (and its lease)."""
        return self._leader

    def try_lead(self, ttl: float = DEFAULT_LEASE_TTL) -> bool:
        """Take the leader's lock if it is free and start a lease (a new epoch);
        otherwise end the session of a holder whose lease is older than ``ttl`` seconds
        (it holds the lock but stopped renewing), so that the next try can take it.
        Returns whether this worker leads now."""
        if self._leader:
            return True
        got = self._one("SELECT pg_try_advisory_lock(?) AS got", (LEADER_LOCK,))
        if got is not None and got["got"]:
            row = self._one(
                "UPDATE leader SET holder = ?, backend = pg_backend_pid(), epoch = epoch + 1, "
                "renewed = clock_timestamp() WHERE id = 1 RETURNING epoch",
                (self.holder,),
            )
            assert row is not None
            self._epoch = int(row["epoch"])
            self._leader = True
            return True
        lease = self._one(
            "SELECT backend, extract(epoch FROM clock_timestamp() - renewed) AS age "
            "FROM leader WHERE id = 1"
        )
        if (
            lease is not None
            and lease["backend"] is not None
            and lease["age"] is not None
            and float(lease["age"]) > ttl
        ):
            self._one("SELECT pg_terminate_backend(?)", (lease["backend"],))
        return False

    def renew_lease(self) -> bool:
        """Renew the leader's lease; False (and no longer the leader) when another
        worker took it over meanwhile or the session was lost."""
        if not self._leader:
            return False
        try:
            row = self._one(
                "UPDATE leader SET renewed = clock_timestamp() WHERE id = 1 AND epoch = ? "
                "AND backend = pg_backend_pid() RETURNING epoch",
                (self._epoch,),
            )
        except StoreError:
            row = None
        if row is None:
            self._leader = False
        return self._leader

    def resign(self) -> None:
        """Give the leadership up (at a clean stop), so that another worker takes it at
        its next poll."""
        if self._leader:
            self._leader = False
            try:
                self._run(
                    "UPDATE leader SET renewed = NULL WHERE id = 1 AND epoch = ?", (self._epoch,)
                )
                self._one("SELECT pg_advisory_unlock(?)", (LEADER_LOCK,))
            except StoreError:
                pass  # the session is gone: so is the lock

    def leader(self) -> dict[str, Any]:
        """The lease: holder, epoch and seconds since its renewal (None if none)."""
        row = self._one(
            "SELECT holder, epoch, extract(epoch FROM clock_timestamp() - renewed) AS age "
            "FROM leader WHERE id = 1"
        )
        assert row is not None
        age = row["age"]
        return {
            "holder": row["holder"],
            "epoch": int(row["epoch"]),
            "age": None if age is None else float(age),
        }

    # -- the event log ---------------------------------------------------------------------

    def export_events(self, after: int = 0, batch: int = 10_000) -> Iterator[tuple[int, str]]:
        """(sequence number, JSON line) of every logged event after ``after``, in commit
        order, read ``batch`` at a time."""
        last = after
        while True:
            rows = self._all(
                "SELECT seq, t, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                (last, batch),
            )
            for row in rows:
                t = json.dumps(round(float(row["t"]), 6))
                body = str(row["body"])
                sep = "," if len(body) > 2 else ""
                yield int(row["seq"]), '{"t":' + t + sep + body[1:]
            if len(rows) < batch:
                return
            last = int(rows[-1]["seq"])


def _why(exc: BaseException) -> str:
    """A one-line reason from a driver error."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__

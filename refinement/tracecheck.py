"""Trace validation: does some run of the model explain an event log of the BM-SC and UEs?

The event log (:mod:`mbmssec.impl.service.events`) records what a running BM-SC and its UEs did
(TS 33.246 6.2.2-6.2.3.3).  Most event names are the model's action names
(:data:`mbmssec.model.actions.ACTIONS`); :func:`check_events` replays them on the
executable model and reports the first event no model transition can explain.

What the log does not record
----------------------------
* **Time.**  The model's ``clock`` and ``fetch_time`` are abstract units; the
  implementation's are Unix seconds.  They are treated as *unobserved*: the checker
  chooses them existentially.  No action other than ``Register``, ``DeliveryLost`` and
  ``Activate`` reads or writes them, and ``Tick``'s guard can only become weaker between
  those steps (a UE becomes "synchronised" only by registering), so ticks can always be
  deferred to just before a clock-reading step.  Once the core state (below) is fixed,
  every timing guard is a difference constraint between ``clock`` and a fetch time
  (``Register``: ``fetch_time <= clock`` and ``clock + 1 <= fetch_time'``, with no
  upper bound, as in the model; ``Activate``: ``fetch_time < clock`` for a UE without the evidence;
  ``Tick``: ``clock`` stays ``<= fetch_time`` of every synchronised pair).  So the set of
  timings of model runs explaining a prefix is a *zone* (a difference-bound matrix over
  ``clock`` and the registered pairs' fetch times), kept exactly: no timing is cut, and a
  verdict is final.  With integer bounds the zone has an integer point whenever it is
  non-empty, so it holds exactly the integer timings; every clock-reading step is also run
  on the model at a point of the zone, which checks the zone's guard against the
  model's.  (An earlier model bounded fetch delays to a few ticks, which real logs
  outgrow: fetches nested inside one UE's long fetch delay.  A timing-only rejection
  is still reported as such.)
* **State shared by every candidate.**  The timing never changes the effect of an
  action on the other symbols, only whether it is enabled; so all candidates share one
  *core* state and the search is over timings only.  (One exception, which no log can
  use: under ``replay_protection=timestamp`` a ``Tick`` also closes the replay window,
  ``in_window``.  Ticks are not applied to the core, so the window stays open there;
  it decides a replay only once the UE's replay cache is lost, ``LoseReplayCache``, a
  step no event records and the checker never invents, so a log with a replay the UE
  accepted is reported, never explained that way.)
* **Authentication reused.**  With ``second_service_auth=authorise_only`` the model
  keeps a UE authenticated across deliveries, so a delivery reusing an earlier Digest AKA
  run needs no step of its own; such deliveries are named in the verdict.  Under
  ``reauthenticate`` every delivery needs a successful ``Authenticate`` of its own.

Nothing is invented
-------------------
No model step is taken that the log does not show, with one exception: an activation
the model refuses only because registered, synchronised UEs lack the TEK is explained by
those UEs' late fetches (the model's UE out of synchronisation: ``LoseCoverage`` then
``RegainCoverage``) when the log shows each of them late.  Under strict timing (the
default) that means its logged fetch time is more than the BM-SC's fetch grace
(``fetch_grace`` in the BM-SC's ``Start`` event, the BM-SC's own rule for not waiting on
a UE) before the activation; under lenient timing, that the fetch time has passed.
Each late fetch is listed in the verdict.

Event to model step
-------------------
UEs, services, TEKs (by ``(service, MKI)`` in order of ``Generate``) and packets (by
``(service, seq)`` in order of ``Send``) are numbered in order of first appearance.  A
``Deliver`` (bmsc) is paired with the UE's next ``Register``, ``DeliveryLost`` or
``Rejected`` (ue) for that service before the BM-SC's next ``Deliver`` to it: the model's
``Register`` if that is a successful ``Register``, else ``DeliveryLost``.  The model
step happens at the ``Deliver``; the UE's event must be the pending delivery's (a UE
event with no pending ``Deliver`` is a verdict), and a successful ``Register`` must carry
the ``Deliver``'s MKIs, TEK identities, counter and fetch time.  A ``Deliver`` with no
UE outcome before the next delivery to that UE is a verdict; one with none before the log
ends is read as not installed (named in the verdict).  Outcomes are checked: the
delivered MKIs against the model's BM-SC and the UE's installed keys, the counter, the
MKI of every ``Send`` (the active TEK's), every ``Activate`` and ``Generate`` (the next
TEK, the next fresh MKI), the withdrawn TEKs of a ``Revoke``, the MKI and TEK of every
``Receive`` against its ``Send``, and its outcome (decrypted, or refused as unknown MKI /
authentication failure) against the model's ``decrypted`` and ``saw_unknown``; a UE
decrypting a packet twice is a verdict (SRTP replay protection refuses the second).
``Rejected`` with reason ``not_subscribed`` must be a UE the model has unsubscribed.
Timestamps never decrease per source (each UE, the BM-SC, the demo, ``bmsc-admin``), and
a ``Start`` event's declared profile must be the one checked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from mbmssec.errors import MbmssecError
from mbmssec.impl.service.events import (
    MODEL_EVENTS,
    OTHER_EVENTS,
    RECEIVE_REFUSED_UNKEYED,
    RETRY_REGISTER,
    UNREACHABLE,
)
from mbmssec.model.concrete import State, Universe
from mbmssec.model.machine import Model
from mbmssec.spec.loader import Profile

if TYPE_CHECKING:
    from mbmssec.refinement.wirecheck import WireCheck

__all__ = [
    "CLOCK_ACTIONS",
    "Naming",
    "TraceCheckError",
    "TraceResult",
    "Tracker",
    "Unexplained",
    "check_events",
    "check_events_reference",
    "naming_for",
]

CLOCK_ACTIONS: Final = frozenset({"Register", "DeliveryLost", "Activate"})
"""Model actions whose guard reads ``clock``/``fetch_time`` (besides ``Tick``)."""

Timing = tuple[tuple[tuple[int, int], int], ...]
"""A normalised timing: ((u, s), fetch_time - clock) for every registered pair."""

DEFAULT_WIDTH: Final = 256

INF: Final = float("inf")
_CLOCK: Final = (-1, -1)
"""The zone's key for the model clock (variable 0); other keys are (UE, service) pairs."""


class TraceCheckError(MbmssecError):
    """A log the checker cannot read as a run (unknown element, unusable profile)."""


class Unexplained(MbmssecError):
    """No candidate model state explains an event (or a concrete step)."""

    def __init__(
        self,
        index: int,
        event: Mapping[str, Any],
        why: str,
        candidates: list[dict[str, Any]],
        timing_only: bool = False,
        *,
        line: int | None = None,
        state: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"event {index} ({describe_event(event)}): {why}")
        self.timing_only = timing_only
        self.index = index
        self.line = index + 1 if line is None else line
        """The event's 1-based line in the log (``index`` is its place in the run)."""
        self.event = dict(event)
        self.why = why
        self.candidates = candidates
        self.state = state
        """The candidate state keyed by the log's identities (:func:`state_view`)."""


def describe_event(e: Mapping[str, Any]) -> str:
    """A one-line rendering of an event for reports."""
    parts = [str(e.get("event"))]
    for key in ("ue", "service", "mki"):
        if e.get(key) is not None:
            parts.append(f"{key}={e[key]}")
    if e.get("seq") is not None:
        parts.append(f"seq={e['seq']}")
    if e.get("ok") is False:
        parts.append(f"ok=false reason={e.get('reason')}")
    return " ".join(parts)


# -- element naming ----------------------------------------------------------------------


@dataclass
class Naming:
    """Concrete names -> model elements, assigned in order of first appearance."""

    ues: dict[str, int] = field(default_factory=dict)
    services: dict[str, int] = field(default_factory=dict)
    teks: dict[tuple[str, int], int] = field(default_factory=dict)
    packets: dict[tuple[str, int], int] = field(default_factory=dict)

    @staticmethod
    def _take(table: dict[Any, int], key: Any, limit: int, what: str) -> int:
        got = table.get(key)
        if got is None:
            if len(table) >= limit:
                raise TraceCheckError(f"more {what}s than the universe holds ({limit})")
            got = table[key] = len(table)
        return got

    def ue(self, name: str, universe: Universe) -> int:
        return self._take(self.ues, name, universe.ue, "UE")

    def svc(self, name: str, universe: Universe) -> int:
        return self._take(self.services, name, universe.svc, "service")

    def tek(self, service: str, mki: int, universe: Universe) -> int:
        return self._take(self.teks, (service, mki), universe.tek, "TEK")

    def packet(self, service: str, seq: int, universe: Universe) -> int:
        return self._take(self.packets, (service, seq), universe.pkt, "packet")


def naming_for(events: Sequence[Mapping[str, Any]]) -> tuple[Universe, Naming]:
    """A universe just large enough for the log (every element it names)."""
    ues: set[str] = set()
    svcs: set[str] = set()
    teks: set[tuple[str, int]] = set()
    pkts = 0
    for e in events:
        if e["event"] in ("Start", "Stop", "Challenge", "Resync", "Provision"):
            continue
        if e.get("ue") is not None:
            ues.add(e["ue"])
        if e.get("service") is not None:
            svcs.add(e["service"])
        if e["event"] == "Generate":
            teks.add((e["service"], e["mki"]))
        elif e["event"] == "Send":
            pkts += 1
    return (
        Universe(
            ue=max(1, len(ues)), svc=max(1, len(svcs)), tek=max(1, len(teks)), pkt=max(1, pkts)
        ),
        Naming(),
    )


# -- the candidate set -------------------------------------------------------------------


class Tracker:
    """A core model state and the exact set of candidate timings (see the module docstring).

    The timings are a *zone*: a difference-bound matrix over the model clock ``c`` and the
    fetch time ``D_p`` of every registered pair ``p``.  Every timing guard of the model is
    a difference constraint once the core state is fixed (``Register``: ``D_p <= c``;
    ``Activate``: ``D_v <= c - 1`` for a registered UE without the evidence; ``Tick``: ``c``
    never passes ``D_q`` of a synchronised pair; ``Register`` sets ``c + 1 <= D_p``, with
    no upper bound), so the set of timings the model can reach is convex and is kept
    exactly: nothing is cut.  Difference constraints with integer bounds have integer
    solutions whenever they have real ones, so the zone's integer points are exactly the
    timings of model runs.  Each clock-reading step is also run on the model from a
    witness timing drawn from the zone, which checks the zone's guard against the model's.
    """

    def __init__(self, model: Model, universe: Universe, width: int = DEFAULT_WIDTH) -> None:
        self.model = model
        self.universe = universe
        self.width = width  # kept for callers; the zone is exact and never cut
        self.core: State = model.initial(universe)
        self.judge_steps = False
        """Judge the step properties on every committed step (off by default: a replay of
        a counterexample asks for it; checking a long log does not need it).  The core
        state keeps no timing, so a step property that compares the clock with a fetch
        time (14) reads both at their initial values there and is not judged by this."""
        self.step_violations: set[int] = set()
        """Step properties some committed step violated (with :attr:`judge_steps`)."""
        self.vars: list[tuple[int, int]] = [_CLOCK]
        self.bounds: list[list[float]] = [[0.0]]  # bounds[i][j]: x_i - x_j <= bounds[i][j]
        self.hint: dict[tuple[int, int], float] = {}
        self.pruned = 0
        self.steps: list[tuple[str, tuple[Any, ...]]] = []

    # -- the zone
    @staticmethod
    def _tighten(m: list[list[float]], i: int, j: int, w: float) -> bool:
        """Add ``x_i - x_j <= w`` to the closed matrix ``m``; False if that empties it."""
        if m[j][i] + w < 0:
            return False
        if m[i][j] <= w:
            return True
        n = len(m)
        col_i = [m[a][i] for a in range(n)]
        row_j = m[j]
        for a in range(n):
            via = col_i[a] + w
            if via == INF:
                continue
            row_a = m[a]
            for b in range(n):
                cand = via + row_j[b]
                if cand < row_a[b]:
                    row_a[b] = cand
        return True

    def _index(self, pair: tuple[int, int]) -> int | None:
        try:
            return self.vars.index(pair)
        except ValueError:
            return None

    @staticmethod
    def _drop(vars_: list[tuple[int, int]], m: list[list[float]], k: int) -> None:
        # Deleting a variable of a closed matrix is its exact projection.
        del vars_[k]
        del m[k]
        for row in m:
            del row[k]

    def _synced(self, pair: tuple[int, int]) -> bool:
        """Does time wait for this pair's fetch time (the pair in ``Tick``'s guard)?"""
        u, s = pair
        c = self.core
        by_index = self.model.profile["fetch_time_unit"] == "sequence_number"
        return bool(
            c.get("registered", u, s)
            and c.get("subscribed", u, s)
            and c.get("covered", u)
            and not c.get("dropped", u, s)
            and (c.get("listening", u) or not by_index)
        )

    def _elapse(self, vars_: list[tuple[int, int]], m: list[list[float]]) -> bool:
        """Let ``Tick`` advance the clock: ``c`` loses its upper bounds, then may not pass
        the fetch time of a synchronised pair (the guard of ``Tick``)."""
        for j in range(1, len(m)):
            m[0][j] = INF
        return all(
            self._tighten(m, 0, k, 0) for k in range(1, len(vars_)) if self._synced(vars_[k])
        )

    def _sync_vars(self) -> None:
        """Project out pairs the core no longer has registered (they lose their fetch time)."""
        for k in range(len(self.vars) - 1, 0, -1):
            u, s = self.vars[k]
            if not self.core.get("registered", u, s):
                self._drop(self.vars, self.bounds, k)

    @staticmethod
    def _witness(m: list[list[float]]) -> list[int]:
        """An integer point of the (closed, non-empty) zone, with ``c = 0``."""
        x: list[int] = [0]
        for k in range(1, len(m)):
            lo = max(x[j] - m[j][k] for j in range(k))
            hi = min(x[j] + m[k][j] for j in range(k))
            x.append(int(lo) if lo != -INF else (int(hi) if hi != INF else 0))
        return x

    def witness(
        self, vars_: list[tuple[int, int]] | None = None, m: list[list[float]] | None = None
    ) -> Timing:
        """One timing of the zone: ((u, s), fetch_time - clock) for every registered pair."""
        vs = self.vars if vars_ is None else vars_
        x = self._witness(self.bounds if m is None else m)
        return tuple(sorted((vs[k], x[k] - x[0]) for k in range(1, len(vs))))

    @property
    def timings(self) -> list[Timing]:
        """A witness timing (the zone itself is :attr:`bounds` over :attr:`vars`)."""
        return [self.witness()]

    def full(self, timing: Timing) -> State:
        """The core state with one timing grafted in (clock = 0)."""
        tables = dict(self.core.tables)
        tables["clock"] = {}
        tables["fetch_time"] = {pair: off for pair, off in timing}
        return State(self.core.vocab, self.core.universe, tables)

    def _set_core(self, nxt: State) -> None:
        if self.judge_steps:
            # step properties are judged on each committed step (pre- and post-state)
            for prop in self.model.properties:
                if prop.kind == "step" and not self.model.holds(prop, nxt, self.core):
                    self.step_violations.add(prop.number)
        tables = dict(nxt.tables)
        tables["clock"], tables["fetch_time"] = {}, {}
        self.core = State(nxt.vocab, nxt.universe, tables)

    def enabled(self, action: str, args: tuple[Any, ...]) -> bool:
        """Would ``action(args)`` be enabled at some timing of the zone (ticks allowed)?"""
        return self._attempt(action, [args], commit=False)

    def apply(self, action: str, alternatives: Sequence[tuple[Any, ...]]) -> bool:
        """Apply one logged step (any of ``alternatives``, which may differ only in the
        fetch offset); False (nothing changed) if no timing allows it."""
        return self._attempt(action, alternatives, commit=True)

    def fails_on_timing_only(self, action: str, alternatives: Sequence[tuple[Any, ...]]) -> bool:
        """Would a ``Register``/``DeliveryLost`` the zone refuses be allowed if the UE's
        pending fetch time did not have to be reached?"""
        return action in ("Register", "DeliveryLost") and self._attempt(
            action, alternatives, commit=False, fetch_guard=False
        )

    def _attempt(
        self,
        action: str,
        alternatives: Sequence[tuple[Any, ...]],
        commit: bool,
        fetch_guard: bool = True,
    ) -> bool:
        if action not in CLOCK_ACTIONS:
            for args in alternatives:
                nxt = self.model.step(self.full(self.witness()), action, args)
                if nxt is not None:
                    if commit:
                        self._set_core(nxt)
                        self._sync_vars()
                        self.steps.append((action, args))
                    return True
            return False
        vars_ = list(self.vars)
        m = [list(row) for row in self.bounds]
        if not self._elapse(vars_, m):
            return False
        core = self.core
        if action == "Activate":
            (s,) = alternatives[0]
            rule = self.model.profile["activation"]
            if rule != "immediate":
                evidence = "delivered" if rule == "after_fetch_window" else "acked"
                nxt_tek = core.get("next", s)
                for k in range(1, len(vars_)):
                    v, s2 = vars_[k]
                    if (
                        s2 == s
                        and not core.get(evidence, v, nxt_tek)
                        and not self._tighten(m, k, 0, -1)
                    ):  # fetch_time < clock
                        return False
        else:
            pair = (alternatives[0][0], alternatives[0][1])
            kp = vars_.index(pair) if pair in vars_ else None
            early = self.model.profile["unknown_mki_resync"] == "refetch" and core.get(
                "saw_unknown", *pair
            )
            if fetch_guard and kp is not None and not early and not self._tighten(m, kp, 0, 0):
                return False  # a registered UE fetches at or after its fetch time
        here = self.witness(vars_, m)
        st = self.full(here)
        if not fetch_guard:
            return (
                self.core.get("covered", alternatives[0][0])
                and self.model.step(
                    self.full(tuple((p, o) for p, o in here if p != pair)), action, alternatives[0]
                )
                is not None
            )
        for args in alternatives:
            nxt = self.model.step(st, action, args)
            if nxt is None:
                continue
            if not commit:
                return True
            self._set_core(nxt)
            if action != "Activate":
                pair = (args[0], args[1])
                if pair in vars_:
                    self._drop(vars_, m, vars_.index(pair))
                offs = [a[2] for a in alternatives]
                vars_.append(pair)
                for row in m:
                    row.append(INF)
                m.append([INF] * len(vars_))
                m[-1][-1] = 0.0
                # the model puts no upper bound on a fetch offset: only c + 1 <= D_p
                ok = self._tighten(m, 0, len(vars_) - 1, -min(offs))
                assert ok and dict(self.witness(vars_, m))[pair] >= min(offs)
            self.vars, self.bounds = vars_, m
            self._sync_vars()
            self.steps.append((action, args))
            return True
        return False

    def snapshot(self, limit: int = 3) -> list[dict[str, Any]]:
        """The candidate state at a witness timing, for reports."""
        return [self.full(t).as_dict() for t in self.timings[:limit]]


# -- the checker ---------------------------------------------------------------------------

LateFetchRule = str
"""When an activation the model refuses may be explained by late fetches: ``"never"``
(the lockstep driver), ``"grace"`` (strict timing: every blocking UE's logged fetch time
is more than the BM-SC's logged fetch grace before the activation, the BM-SC's own rule)
or ``"fetch_time"`` (lenient timing: every blocking UE is past its logged fetch time)."""

LATE_FETCH_RULES: Final = ("never", "grace", "fetch_time")

FETCH_TIME_TOLERANCE: Final = 1e-3
"""Seconds by which a UE's logged fetch time may differ from the BM-SC's (both are
rounded to microseconds, and the UE reads it from a 64-bit NTP timestamp)."""

OUTCOMES: Final = frozenset({"Register", "DeliveryLost"})
"""UE events that say what became of a delivery (a UE's ``Rejected`` for the service
does too: the request failed on its side; and so does a UE's ``Retry`` of a registration
request that got no answer at all, :func:`unanswered_request`)."""


def is_outcome(r: Mapping[str, Any]) -> bool:
    """Does the UE's event ``r`` say what became of a delivery to it (:data:`OUTCOMES`, a
    UE's ``Rejected``, or :func:`unanswered_request`)?  The one definition both checkers use."""
    return (
        r["event"] in OUTCOMES
        or (r["event"] == "Rejected" and r.get("source") == "ue")
        or unanswered_request(r)
    )


def unanswered_request(e: Mapping[str, Any]) -> bool:
    """Is ``e`` the UE's record that a registration request of its got no answer (the
    connection failed or timed out: ``Retry`` with reason ``unreachable``, request
    ``register``)?  Whatever the BM-SC delivered in answer to it was not installed: a
    worker killed between committing a delivery and sending it leaves exactly this."""
    return (
        e.get("event") == "Retry"
        and e.get("source") == "ue"
        and e.get("reason") == UNREACHABLE
        and e.get("request") == RETRY_REGISTER
    )


@dataclass(frozen=True)
class LateFetch:
    """An activation explained by a UE that had not fetched by its fetch time: the model
    takes that UE out of synchronisation (``LoseCoverage`` then ``RegainCoverage``, steps
    the log does not record; the only unlogged steps the checker ever takes)."""

    index: int
    ue: str
    service: str
    mki: int
    fetch_time: float
    activated_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "ue": self.ue,
            "service": self.service,
            "mki": self.mki,
            "fetch_time": self.fetch_time,
            "activated_at": self.activated_at,
            "late_by": round(self.activated_at - self.fetch_time, 6),
        }


@dataclass
class TraceResult:
    """The verdict: ``ok``, how many events were explained, model steps taken, what was
    read into the log (late fetches, reused authentications, deliveries whose outcome the
    UE never logged) and, on failure, the first unexplained event."""

    ok: bool
    events: int
    explained: int
    model_steps: int
    pruned: int
    universe: Universe
    late_fetches: list[LateFetch] = field(default_factory=list)
    failure: Unexplained | None = None
    profile: Mapping[str, str] = field(default_factory=dict)
    timing: str = "strict"
    fetch_grace: float | None = None
    reused_auth: list[int] = field(default_factory=list)
    unanswered: list[int] = field(default_factory=list)
    counts: Mapping[str, int] = field(default_factory=dict)
    """How many reused authentications, deliveries without outcome and late fetches there
    were, where the lists above keep only the first ones (the streaming checker)."""
    wire: Mapping[str, Any] | None = None
    """What was checked of a capture's SRTP packets (``--pcap``), if one was given."""

    def _count(self, what: str, listed: Sequence[Any]) -> int:
        return self.counts.get(what, len(listed))

    def to_json(self) -> dict[str, Any]:
        u = self.universe
        out: dict[str, Any] = {
            "ok": self.ok,
            "events": self.events,
            "explained": self.explained,
            "model_steps": self.model_steps,
            "profile": dict(self.profile),
            "timing": self.timing,
            "fetch_grace": self.fetch_grace,
            "late_fetches": [lf.to_json() for lf in self.late_fetches],
            "reused_authentications": list(self.reused_auth),
            "unanswered_deliveries": list(self.unanswered),
            "universe": {"ue": u.ue, "svc": u.svc, "tek": u.tek, "pkt": u.pkt},
            "counts": {
                "late_fetches": self._count("late_fetches", self.late_fetches),
                "reused_authentications": self._count("reused_auth", self.reused_auth),
                "unanswered_deliveries": self._count("unanswered", self.unanswered),
            },
        }
        if self.wire is not None:
            out["capture"] = dict(self.wire)
        if self.failure is not None:
            f = self.failure
            out["first_unexplained"] = {
                "index": f.index,
                "line": f.line,
                "event": f.event,
                "why": f.why,
                "timing_only": f.timing_only,
                "state": f.state,
                "candidates": f.candidates,
            }
        return out

    def _notes(self) -> list[str]:
        notes = []
        if self.reused_auth:
            notes.append(
                f"{self._count('reused_auth', self.reused_auth)} deliveries reused an earlier "
                "authentication (second_service_auth=authorise_only)"
            )
        more = self._count("late_fetches", self.late_fetches) - len(self.late_fetches)
        for lf in self.late_fetches:
            notes.append(
                f"late fetch: UE {lf.ue} had not fetched MKI {lf.mki} "
                f"{lf.activated_at - lf.fetch_time:.3f} s after its fetch time when the "
                "TEK was activated: taken out of synchronisation (unlogged LoseCoverage, "
                "RegainCoverage)"
            )
        if more > 0:
            notes.append(f"... and {more} more late fetches (--json lists the first ones)")
        if self.unanswered:
            notes.append(
                f"{self._count('unanswered', self.unanswered)} deliveries with no outcome "
                "logged by the UE before the log ends: read as not installed"
            )
        if self.wire is not None:
            w = self.wire
            keys = (
                f"; {w['keys_checked']} authenticated and decrypted under their TEK's key"
                if w["keys"]
                else "; keys not checked (no TEK keys given)"
            )
            notes.append(
                f"capture {w['pcap']}: {w['packets_matched']} SRTP packets matched "
                f"{w['sends_on_wire']} Send events ({w['sends_outside_capture']} Send "
                f"events outside the capture){keys}"
            )
        return notes

    def render(self) -> str:
        timing = (
            self.timing
            + " timing"
            + (f", fetch grace {self.fetch_grace:g} s" if self.fetch_grace is not None else "")
        )
        if self.ok:
            lines = [
                f"trace-check: OK: {self.explained} of {self.events} events explained by "
                f"{self.model_steps} model steps ({timing})"
            ]
            lines += ["  " + n for n in self._notes()]
            return "\n".join(lines)
        assert self.failure is not None
        f = self.failure
        lines = [
            f"trace-check: FORBIDDEN: line {f.line}: {describe_event(f.event)}: {f.why}",
            f"  {self.explained} earlier events were explained ({timing})",
        ]
        lines += ["  " + n for n in self._notes()]
        lines += render_state(f.state, f.event)
        return "\n".join(lines)


# -- the candidate state, keyed by the log's identities --------------------------------------


def state_view(
    tracker: Tracker,
    names: Naming,
    fetch_at: Mapping[tuple[int, int], float],
    packets: Sequence[tuple[str, int]] | None = None,
) -> dict[str, Any]:
    """The core model state and a witness timing as tables keyed by IMSI, service, MKI and
    sequence number (``packets``: the (service, seq) rows wanted; all when None)."""
    core = tracker.core
    offsets = dict(tracker.witness())
    svc_name = {i: n for n, i in names.services.items()}
    tek_key = {i: k for k, i in names.teks.items()}

    def mki_of(t: int | None) -> int | None:
        return None if t is None or t not in tek_key else tek_key[t][1]

    ues = []
    for imsi, u in names.ues.items():
        for service, s in names.services.items():
            holds = sorted(
                tek_key[t][1]
                for t in range(tracker.universe.tek)
                if t in tek_key and tek_key[t][0] == service and core.get("holds", u, t)
            )
            pair = (u, s)
            ues.append(
                {
                    "imsi": imsi,
                    "service": service,
                    "subscribed": bool(core.get("subscribed", u, s)),
                    "registered": bool(core.get("registered", u, s)),
                    "authenticated": bool(core.get("authenticated", u)),
                    "covered": bool(core.get("covered", u)),
                    "in_sync": bool(
                        core.get("registered", u, s)
                        and core.get("covered", u)
                        and not core.get("dropped", u, s)
                    ),
                    "holds": holds,
                    "current": mki_of(core.get("current", u, s))
                    if core.get("has_current", u, s)
                    else None,
                    "saw_unknown": bool(core.get("saw_unknown", u, s)),
                    "counter": int(core.get("ctr", u)),
                    "ue_counter": int(core.get("ue_ctr", u)),
                    "fetch_offset": offsets.get(pair),
                    "logged_fetch_time": fetch_at.get(pair),
                }
            )
    teks = []
    for (service, mki), t in names.teks.items():
        s = names.services[service]
        if core.get("has_active", s) and core.get("active", s) == t:
            role = "active"
        elif core.get("has_next", s) and core.get("next", s) == t:
            role = "next"
        elif core.get("withdrawn", t):
            role = "withdrawn"
        elif core.get("activated", t):
            role = "retired"
        else:
            role = "generated"
        teks.append(
            {
                "service": service,
                "mki": mki,
                "state": role,
                "holders": sorted(i for i, u in names.ues.items() if core.get("holds", u, t)),
            }
        )
    pkts = []
    for (service, seq), p in names.packets.items():
        if packets is not None and (service, seq) not in packets:
            continue
        pkts.append(
            {
                "service": service,
                "seq": seq,
                "mki": mki_of(core.get("pkt_tek", p)),
                "decrypted_by": sorted(
                    i for i, u in names.ues.items() if core.get("decrypted", u, p)
                ),
            }
        )
    return {
        "services": {n: svc_name[i] for n, i in names.services.items()},
        "ues": ues,
        "teks": teks,
        "packets": pkts,
    }


MAX_WIDTH: Final = 100
MAX_ROWS: Final = 12


def _cell(value: Any, width: int) -> str:
    if isinstance(value, bool):
        text = "yes" if value else "-"
    elif value is None:
        text = "-"
    elif isinstance(value, list):
        text = ",".join(str(v) for v in value) or "-"
    elif isinstance(value, float):
        text = f"{value:.3f}"
    else:
        text = str(value)
    return text if len(text) <= width else text[: width - 1] + "~"


def _table(
    title: str, columns: Sequence[tuple[str, str, int]], rows: Sequence[Mapping[str, Any]]
) -> list[str]:
    """``columns``: (key, header, maximum width); every line at most MAX_WIDTH wide."""
    widths = []
    for key, head, cap in columns:
        w = max([len(head)] + [len(_cell(r.get(key), cap)) for r in rows])
        widths.append(min(cap, w))
    out = [f"  {title}"]
    out.append(
        ("    " + "  ".join(h.ljust(w) for (_, h, _), w in zip(columns, widths, strict=True)))[
            :MAX_WIDTH
        ]
    )
    for r in rows:
        line = "    " + "  ".join(
            _cell(r.get(k), w).ljust(w) for (k, _, _), w in zip(columns, widths, strict=True)
        )
        out.append(line.rstrip()[:MAX_WIDTH])
    return out


def render_state(state: Mapping[str, Any] | None, event: Mapping[str, Any]) -> list[str]:
    """The candidate state as tables (at most :data:`MAX_WIDTH` columns): the UEs (the
    event's first), the TEKs and the event's packet."""
    if not state:
        return []
    many_svcs = len(state["services"]) > 1
    ue_rows = sorted(
        state["ues"],
        key=lambda r: (r["imsi"] != event.get("ue"), r["service"] != event.get("service")),
    )
    cols: list[tuple[str, str, int]] = [("imsi", "IMSI", 20)]
    if many_svcs:
        cols.append(("service", "service", 15))
    cols += [
        ("subscribed", "subscr", 6),
        ("registered", "reg", 3),
        ("authenticated", "auth", 4),
        ("covered", "cov", 3),
        ("in_sync", "sync", 4),
        ("holds", "holds MKIs", 14),
        ("current", "cur", 5),
        ("counter", "ctr", 5),
        ("ue_counter", "ue_ctr", 6),
        ("logged_fetch_time", "fetch time", 17),
    ]
    lines = ["  candidate model state (a witness timing; --json has all of it):"]
    lines += _table("UEs", cols, ue_rows[:MAX_ROWS])
    if len(ue_rows) > MAX_ROWS:
        lines.append(f"    ... {len(ue_rows) - MAX_ROWS} more rows")
    tek_cols: list[tuple[str, str, int]] = []
    if many_svcs:
        tek_cols.append(("service", "service", 15))
    tek_cols += [("mki", "MKI", 10), ("state", "state", 9), ("holders", "held by (IMSI)", 60)]
    teks = state["teks"]
    lines += _table("TEKs", tek_cols, teks[-MAX_ROWS:])
    pkts = [
        p
        for p in state["packets"]
        if p["service"] == event.get("service") and p["seq"] == event.get("seq")
    ]
    if pkts:
        lines += _table(
            "packet",
            [("seq", "seq", 6), ("mki", "MKI", 10), ("decrypted_by", "decrypted by (IMSI)", 60)],
            pkts,
        )
    return lines


# -- event to model step ----------------------------------------------------------------------


def _source(e: Mapping[str, Any]) -> tuple[str, str | None]:
    """Who emitted the event: each UE is its own clock, the BM-SC and the demo one each."""
    src = str(e.get("source"))
    return (src, e.get("ue") if src == "ue" else None)


def outcome_after(
    events: Sequence[Mapping[str, Any]], i: int, order: Sequence[int] | None = None
) -> int | None:
    """The position of the UE's event that says what became of the ``Deliver`` at ``i``
    (``Register``, ``DeliveryLost``, the UE's ``Rejected`` for that service, or its
    registration request's :func:`unanswered_request` ``Retry``), looked
    for up to the BM-SC's next ``Deliver`` to the same UE and service; None if none.
    Positions are in ``order`` (indices into ``events``) when given."""
    seq: Sequence[int] = range(len(events)) if order is None else order
    d = events[seq[i]]
    for k in range(i + 1, len(seq)):
        r = events[seq[k]]
        if r.get("ue") != d.get("ue") or r.get("service") != d.get("service"):
            continue
        if r["event"] == "Deliver":
            return None
        if is_outcome(r):
            return k
    return None


class EventMapper:
    """Maps log events to model steps on a :class:`Tracker` and checks their outcomes.

    Used by :func:`check_events` on a whole log and, batch by batch, by the lockstep
    refinement tests (``feed``).  ``late_fetch`` is one of :data:`LATE_FETCH_RULES`;
    ``fetch_grace`` the BM-SC's (a ``Start`` event that logs one replaces it).
    """

    def __init__(
        self,
        tracker: Tracker,
        naming: Naming | None = None,
        *,
        late_fetch: LateFetchRule = "never",
        fetch_grace: float | None = None,
    ) -> None:
        if late_fetch not in LATE_FETCH_RULES:
            raise TraceCheckError(f"late_fetch must be one of {LATE_FETCH_RULES}")
        self.tr = tracker
        self.model = tracker.model
        self.profile: Profile = tracker.model.profile
        self.names = naming or Naming()
        self.index = 0
        self.line = 0
        self.explained = 0
        self.mki_base: dict[int, int] = {}
        self.late_fetch = late_fetch
        self.fetch_grace = fetch_grace
        self.late_fetches: list[LateFetch] = []
        self.fetch_at: dict[tuple[int, int], float] = tracker.hint
        self.pending: dict[tuple[int, int], tuple[int, Mapping[str, Any]]] = {}
        """(UE, service) -> (index of the UE's outcome event, the BM-SC's Deliver)."""
        self.sent: dict[tuple[str, int], Mapping[str, Any]] = {}
        self.fresh_auth: set[int] = set()
        self.reused_auth: list[int] = []
        self.unanswered: list[int] = []
        self.last_t: dict[tuple[str, str | None], float] = {}
        self.backwards: dict[int, str] = {}
        self.lines: Sequence[int] | None = None

    # helpers
    def _u(self, e: Mapping[str, Any]) -> int:
        if e.get("ue") is None:
            raise TraceCheckError(f"line {self.line}: {e['event']} without a UE")
        return self.names.ue(e["ue"], self.tr.universe)

    def _s(self, e: Mapping[str, Any]) -> int:
        if e.get("service") is None:
            raise TraceCheckError(f"line {self.line}: {e['event']} without a service")
        return self.names.svc(e["service"], self.tr.universe)

    def _tek(self, e: Mapping[str, Any], service: str, mki: Any) -> int:
        key = (service, mki)
        if key not in self.names.teks:
            raise self._fail(e, f"MKI {mki} of {service} was never generated by the BM-SC")
        return self.names.teks[key]

    def _fail(self, e: Mapping[str, Any], why: str, timing_only: bool = False) -> Unexplained:
        view = state_view(self.tr, self.names, self.fetch_at)
        return Unexplained(
            self.index, e, why, self.tr.snapshot(), timing_only, line=self.line, state=view
        )

    def _readable(self, e: Mapping[str, Any]) -> str:
        """Why the model refuses the event's step, in the log's terms, where a guard on
        the authorisation database, coverage or the packet explains it."""
        core, name = self.tr.core, e["event"]
        u = self.names.ues.get(str(e.get("ue")))
        s = self.names.services.get(str(e.get("service")))
        if u is not None and s is not None:
            if name in ("Deliver", "Revoke") and not core.get("subscribed", u, s):
                why = "the UE is not subscribed to the service"
                return why + (
                    " (its subscription was revoked)" if core.get("revoked", u, s) else ""
                )
            if name == "Subscribe" and core.get("subscribed", u, s):
                return "the UE is already subscribed to the service"
        if u is not None:
            covered = core.get("covered", u)
            if name in ("Deliver", "Receive", "LoseCoverage", "Authenticate") and not covered:
                return "the UE is out of coverage"
            if name == "RegainCoverage" and covered:
                return "the UE is in coverage already"
        if name == "Send" and (str(e.get("service")), e.get("seq")) in self.sent:
            return f"packet seq {e.get('seq')} was sent before"
        return "no candidate state enables it"

    def _step(self, e: Mapping[str, Any], action: str, *alts: tuple[Any, ...]) -> None:
        if not self.tr.apply(action, list(alts)):
            why = f"the model's {action} is not enabled: {self._readable(e)}"
            timing_only = self.tr.fails_on_timing_only(action, list(alts))
            if timing_only:
                why += (
                    ": no model timing lets the UE reach its fetch time before the "
                    "pending fetch time of a synchronised UE stops the clock"
                )
            raise self._fail(e, why, timing_only)

    def feed(self, events: Sequence[Mapping[str, Any]], start: int = 0) -> None:
        """Explain ``events`` in order; raises :class:`Unexplained` at the first that no
        model transition explains.  ``start`` is the index of the first (for reports)."""
        for i, e in enumerate(events):
            self.index = start + i
            self.line = (self.lines[self.index] if self.lines is not None else self.index) + 1
            self._one(e, events, i)
            self.explained += 1

    def _one(self, e: Mapping[str, Any], events: Sequence[Mapping[str, Any]], i: int) -> None:
        why = self.backwards.get(self.line - 1)
        if why is not None:
            raise self._fail(e, why)
        name = e["event"]
        handler = getattr(self, "_ev_" + name, None)
        if handler is None:
            return  # Stop, Challenge, Resync: no model counterpart
        handler(e, events, i)

    def check_clock(self, e: Mapping[str, Any], position: int) -> None:
        """Timestamps never decrease per source (each UE, the BM-SC, the demo): an event
        at ``position`` (in the log's own order) earlier than its source's previous one
        is reported when the run reaches it."""
        src = _source(e)
        t = float(e["t"])
        last = self.last_t.get(src)
        if last is not None and t < last and not self.backwards:
            who = src[1] if src[1] is not None else src[0]
            self.backwards[position] = (
                f"time goes backwards: t={t:.6f} is {last - t:.6f} s before the previous "
                f"event of {who}"
            )
        self.last_t[src] = max(t, last) if last is not None else t

    # -- the run's declaration
    def _ev_Start(self, e: Mapping[str, Any], events: Any, i: int) -> None:
        declared = e.get("profile")
        if isinstance(declared, Mapping):
            wrong = [
                f"{k}={v} (checked: {self.profile.get(k, 'unknown option')})"
                for k, v in sorted(declared.items())
                if k not in self.profile or str(v) != self.profile[k]
            ]
            if wrong:
                raise self._fail(
                    e,
                    "the log declares a profile other than the one checked: "
                    + ", ".join(wrong)
                    + " (name the profile to check with -o NAME=VALUE or --profile)",
                )
        grace = e.get("fetch_grace")
        if grace is not None:
            if isinstance(grace, bool) or not isinstance(grace, int | float) or grace < 0:
                raise TraceCheckError(f"line {self.line}: fetch_grace must be seconds >= 0")
            self.fetch_grace = float(grace)

    # -- authorisation database
    def _ev_Subscribe(self, e: Mapping[str, Any], events: Any, i: int) -> None:
        self._step(e, "Subscribe", (self._u(e), self._s(e)))

    def _ev_Revoke(self, e: Mapping[str, Any], events: Any, i: int) -> None:
        u, s = self._u(e), self._s(e)
        before = self._withdrawn()
        logged = {self._tek(e, e["service"], m) for m in e.get("withdrawn", [])}
        self._step(e, "Revoke", (u, s))
        after = self._withdrawn()
        if after - before != logged:
            raise self._fail(
                e,
                f"withdrawn MKIs {sorted(e.get('withdrawn', []))} but the model withdraws "
                f"{self._mkis(e['service'], after - before)}",
            )

    def _mkis(self, service: str, teks: Any) -> list[int]:
        by_t = {t: m for (sv, m), t in self.names.teks.items() if sv == service}
        return sorted(by_t[t] for t in teks if t in by_t)

    def _ev_Authenticate(self, e: Mapping[str, Any], events: Any, i: int) -> None:
        if not e["ok"]:
            return  # a failed authentication: no model step, and the UE gains nothing
        u = self._u(e)
        self._step(e, "Authenticate", (u,))
        self.fresh_auth.add(u)

    def _nothing_installed(self, e: Mapping[str, Any]) -> None:
        """The UE's event ``e`` is the outcome of the delivery waiting for it, if this is
        the event that delivery was paired with: its request failed or got no answer,
        nothing was installed (the model's step was taken at the ``Deliver``)."""
        pair = (self._u(e), self._s(e))
        got = self.pending.get(pair)
        if got is not None and got[0] == self._key():
            del self.pending[pair]

    def _ev_Retry(self, e: Mapping[str, Any], events: Any, i: int) -> None:
        if unanswered_request(e) and e.get("ue") is not None and e.get("service") is not None:
            self._nothing_installed(e)

    def _ev_Rejected(self, e: Mapping[str, Any], events: Any, i: int) -> None:
        if e.get("ue") is None or e.get("service") is None:
            return
        if e.get("source") == "ue":
            self._nothing_installed(e)
            return
        if (
            e.get("reason") == "not_subscribed"
            and e.get("source") == "bmsc"
            and self.tr.core.get("subscribed", self._u(e), self._s(e))
        ):
            raise self._fail(e, "refused as not subscribed, but the model has the UE subscribed")

    # -- registration
    def _ev_Deliver(
        self, e: Mapping[str, Any], events: Sequence[Mapping[str, Any]], i: int
    ) -> None:
        k = outcome_after(events, i)
        later = k is None and any(
            r["event"] == "Deliver" and r.get("ue") == e["ue"] and r.get("service") == e["service"]
            for r in events[i + 1 :]
        )
        if k is None:
            self.deliver(e, None, -1, later)
        else:
            self.deliver(e, events[k], self.index + (k - i), False)

    def _key(self) -> int:
        """Identifies the event being explained, for pairing a UE's outcome with its
        ``Deliver``: its place in the run here."""
        return self.index

    def deliver(
        self, e: Mapping[str, Any], outcome: Mapping[str, Any] | None, key: int, later: bool
    ) -> None:
        """Explain the BM-SC's ``Deliver`` ``e`` whose UE outcome is ``outcome`` (identified
        by ``key``, see :meth:`_key`), or None: then ``later`` says whether the BM-SC
        delivers to the UE again (a verdict) or the log ends first (read as not installed)."""
        u, s = self._u(e), self._s(e)
        pair = (u, s)
        if outcome is None:
            if later:
                raise self._fail(
                    e,
                    "the UE logged no outcome of this delivery (Register, DeliveryLost or "
                    "Rejected) before the BM-SC's next delivery to it",
                )
            self.unanswered.append(self.index)
        installed = outcome is not None and outcome["event"] == "Register" and outcome["ok"]
        core = self.tr.core
        if not core.get("authenticated", u):
            raise self._fail(
                e,
                "a delivery to a UE that is not authenticated: no successful Authenticate of "
                f"the UE precedes it (second_service_auth={self.profile['second_service_auth']})",
            )
        if u not in self.fresh_auth:
            self.reused_auth.append(self.index)
        self.fresh_auth.discard(u)
        logged = {self._tek(e, e["service"], m) for m in e.get("mkis", [])}
        expected = self._goes_out(u, s)
        action = "Register" if installed else "DeliveryLost"
        ctr_before = core.get("ctr", u)
        self._step(e, action, (u, s, 1))  # the fetch offset is left to the timing zone
        if e.get("fetch_time") is not None:
            self.fetch_at[pair] = float(e["fetch_time"])
        core = self.tr.core
        if e.get("counter") is not None and core.get("ctr", u) != e["counter"]:
            raise self._fail(
                e,
                f"MIKEY counter {e['counter']}, the model's is "
                f"{core.get('ctr', u)} (was {ctr_before})",
            )
        expected = self._expected_after(u, expected)
        if expected is not None and expected != logged:
            raise self._fail(
                e,
                f"delivered MKIs {sorted(e.get('mkis', []))} but the model delivers "
                f"{self._mkis(e['service'], expected)}",
            )
        if installed:
            got = self._installed(u)
            if got != logged:
                raise self._fail(
                    e,
                    f"the UE installs MKIs {sorted(e.get('mkis', []))} but the model's UE "
                    f"installs {self._mkis(e['service'], got)}",
                )
        if outcome is not None:
            self.pending[pair] = (key, e)

    def _expected_after(self, u: int, expected: set[int] | None) -> set[int] | None:
        """The TEKs the BM-SC sends, as found before the delivery's step (a hook)."""
        return expected

    def _installed(self, u: int) -> set[int]:
        """The TEKs the model's UE installed in the delivery just taken: those it holds
        with the delivery's counter."""
        core = self.tr.core
        return {
            t
            for t in range(self.tr.universe.tek)
            if core.get("dlv_ctr", u, t) == core.get("ctr", u) and core.get("holds", u, t)
        }

    def _withdrawn(self) -> set[int]:
        """The TEKs the model has withdrawn so far."""
        return {t for t in range(self.tr.universe.tek) if self.tr.core.get("withdrawn", t)}

    def _goes_out(self, u: int, s: int) -> set[int] | None:
        """The TEKs the model's BM-SC puts in a delivery to ``u`` for ``s`` now: a trial
        ``DeliveryLost`` from the current state with ``u``'s ``delivered`` row cleared
        (a ghost no guard of a delivery reads) and its fetch time reached; None if the
        model refuses the delivery (the step itself then reports why)."""
        pre = self.tr.full(tuple((p, o) for p, o in self.tr.witness() if p != (u, s)))
        tables = dict(pre.tables)
        tables["delivered"] = {k: v for k, v in pre.tables["delivered"].items() if k[0] != u}
        trial = self.model.step(State(pre.vocab, pre.universe, tables), "DeliveryLost", (u, s, 1))
        if trial is None:
            return None
        return {t for t in range(self.tr.universe.tek) if trial.get("delivered", u, t)}

    def _paired(self, e: Mapping[str, Any]) -> Mapping[str, Any]:
        pair = (self._u(e), self._s(e))
        got = self.pending.get(pair)
        if got is None or got[0] != self._key():
            raise self._fail(
                e,
                "the UE logs the outcome of a delivery the BM-SC did not make: no Deliver "
                "to this UE and service is waiting for it",
            )
        del self.pending[pair]
        return got[1]

    def _ev_Register(self, e: Mapping[str, Any], events: Any, i: int) -> None:
        d = self._paired(e)  # the model step was taken at the BM-SC's Deliver
        if not e["ok"]:
            return  # the UE refused the delivery: nothing installed (DeliveryLost step)
        diffs = []
        # the UE logs the MIKEY replay field it read: the BM-SC's counter only under
        # replay_protection=counter (a timestamp, or nothing checked, otherwise)
        keys = ["mkis", "mki", "tek", "fetch_index"]
        if self.profile["replay_protection"] == "counter":
            keys.append("counter")
        for key in keys:
            if key in e and e.get(key) != d.get(key):
                diffs.append(f"{key} {e.get(key)} (Deliver: {d.get(key)})")
        # the fetch time as the UE read it: seconds, or an SRTP index when the profile
        # gives fetch times as sequence numbers (then the UE logs no seconds)
        ft, dft = e.get("fetch_time"), d.get("fetch_time")
        if ft is not None and (dft is None or abs(float(ft) - float(dft)) > FETCH_TIME_TOLERANCE):
            diffs.append(f"fetch_time {ft} (Deliver: {dft})")
        if ft is None and e.get("fetch_index") is None and dft is not None:
            diffs.append(f"no fetch time (Deliver: {dft})")
        if diffs:
            raise self._fail(
                e, "the UE installed other keys than the BM-SC delivered: " + "; ".join(diffs)
            )

    def _ev_DeliveryLost(self, e: Mapping[str, Any], events: Any, i: int) -> None:
        self._paired(e)  # the model's DeliveryLost was taken at the Deliver

    def _ev_Acknowledge(self, e: Mapping[str, Any], events: Any, i: int) -> None:
        self._step(e, "Acknowledge", (self._u(e), self._s(e)))

    # -- key schedule
    def _ev_Generate(self, e: Mapping[str, Any], events: Any, i: int) -> None:
        s = self._s(e)
        key = (e["service"], e["mki"])
        if key in self.names.teks:
            raise self._fail(
                e,
                f"MKI {e['mki']} of {e['service']} was generated before: a TEK's MKI must be fresh",
            )
        t = self.names.tek(e["service"], e["mki"], self.tr.universe)
        self._step(e, "Generate", (s, t))
        base = self.mki_base.setdefault(s, e["mki"] - self.tr.core.get("mki", t))
        if e["mki"] - base != self.tr.core.get("mki", t):
            raise self._fail(
                e,
                f"MKI {e['mki']}, the model's next fresh MKI is "
                f"{self.tr.core.get('mki', t) + base}",
            )

    def _ev_Activate(self, e: Mapping[str, Any], events: Any, i: int) -> None:
        s = self._s(e)
        t = self._tek(e, e["service"], e["mki"])
        core = self.tr.core
        if not core.get("has_next", s) or core.get("next", s) != t:
            raise self._fail(e, f"activates MKI {e['mki']}, which is not the service's next TEK")
        if self.tr.apply("Activate", [(s,)]):
            return
        late, why = self._late_blockers(e, s, t)
        if late:
            # Each blocking UE is past its logged fetch time (and, strictly, the BM-SC's
            # grace) without having fetched: in the model that UE is out of
            # synchronisation (its fetch is late, as if out of coverage for a moment).
            for v in late:
                self._step(e, "LoseCoverage", (v,))
                self._step(e, "RegainCoverage", (v,))
            if self.tr.apply("Activate", [(s,)]):
                names = {i: n for n, i in self.names.ues.items()}
                for v in late:
                    self.late_fetches.append(
                        LateFetch(
                            self.line - 1,
                            names[v],
                            e["service"],
                            e["mki"],
                            self.fetch_at[(v, s)],
                            float(e["t"]),
                        )
                    )
                return
        raise self._fail(
            e,
            "activation before every registered, synchronised UE has the TEK: " + why,
        )

    def _late_blockers(self, e: Mapping[str, Any], s: int, t: int) -> tuple[list[int], str]:
        """UEs holding up activation in the model, if the log shows each of them late
        (per :attr:`late_fetch`); else ``[]`` and why not."""
        core = self.tr.core
        evidence = "acked" if self.profile["activation"] == "after_acks" else "delivered"
        names = {i: n for n, i in self.names.ues.items()}
        now = float(e["t"])
        out = []
        for v in range(self.tr.universe.ue):
            if not (
                core.get("registered", v, s)
                and core.get("subscribed", v, s)
                and core.get("covered", v)
                and not core.get("dropped", v, s)
                and not core.get(evidence, v, t)
            ):
                continue
            due = self.fetch_at.get((v, s))
            who = f"UE {names.get(v, v)}"
            if self.late_fetch == "never":
                return [], f"{who} lacks it (late fetches are not explained here)"
            if due is None:
                return [], f"{who} lacks it and its fetch time is not logged"
            if self.late_fetch == "fetch_time":
                if due >= now:
                    return [], f"{who} lacks it and is not past its fetch time ({due:.6f})"
            else:
                if self.fetch_grace is None:
                    return [], (
                        f"{who} lacks it; no Start event logs the BM-SC's fetch grace, so a "
                        "late fetch cannot be judged (--lenient-timing accepts any fetch "
                        "time before the activation)"
                    )
                if due + self.fetch_grace >= now + 1e-6:
                    return [], (
                        f"{who} lacks it and its fetch time ({due:.6f}) is "
                        f"{now - due:.3f} s before the activation, within the BM-SC's "
                        f"fetch grace of {self.fetch_grace:g} s"
                    )
            out.append(v)
        return out, "no UE is late"

    def _ev_Withdraw(self, e: Mapping[str, Any], events: Any, i: int) -> None:
        if not self.tr.core.get("withdrawn", self._tek(e, e["service"], e["mki"])):
            raise self._fail(e, "the model did not withdraw this TEK")

    # -- data plane
    def _ev_Send(self, e: Mapping[str, Any], events: Any, i: int) -> None:
        s = self._s(e)
        t = self._tek(e, e["service"], e["mki"])
        if not self.tr.core.get("has_active", s) or self.tr.core.get("active", s) != t:
            raise self._fail(e, f"packet under MKI {e['mki']}, which is not the active TEK")
        seq = int(e.get("seq", 0))
        p = self.names.packet(e["service"], seq, self.tr.universe)
        self._step(e, "Send", (s, p, bool(e.get("mki_in_packet", True))))
        self.sent[(e["service"], seq)] = e

    def _ev_Receive(self, e: Mapping[str, Any], events: Any, i: int) -> None:
        if not e["ok"] and e.get("reason") in RECEIVE_REFUSED_UNKEYED:
            # refused before any key was looked up (a replay, not an SRTP packet, not the
            # BM-SC's stream): no model step, whatever datagram it was
            return
        u, s = self._u(e), self._s(e)
        key = (e["service"], int(e.get("seq", -1)))
        sent = self.sent.get(key)
        if key not in self.names.packets or sent is None:
            raise self._fail(e, "received a packet that was never sent")
        for field_ in ("mki", "tek"):
            if e.get(field_) is not None and e.get(field_) != sent.get(field_):
                raise self._fail(
                    e,
                    f"{field_} {e.get(field_)}, but the BM-SC sent this packet under "
                    f"{sent.get(field_)}",
                )
        p = self.names.packets[key]
        before = self.tr.core.get("decrypted", u, p)
        if e["ok"] and before:
            raise self._fail(
                e,
                "the UE decrypts a packet it decrypted before: SRTP replay protection "
                "(RFC 3711 3.3.2) refuses a replayed packet",
            )
        self._step(e, "Receive", (u, p))
        core = self.tr.core
        decrypted = core.get("decrypted", u, p) and not before
        if e["ok"] and not decrypted:
            raise self._fail(
                e,
                f"the UE decrypted seq {key[1]} (MKI {sent.get('mki')}), which the model "
                "forbids: it has no authorised TEK for it",
            )
        if not e["ok"] and decrypted:
            raise self._fail(
                e, f"the UE failed ({e.get('reason')}) on seq {key[1]}, which the model decrypts"
            )
        if not e["ok"] and e.get("reason") == "unknown_mki" and not core.get("saw_unknown", u, s):
            raise self._fail(e, "unknown MKI reported, but the model knows the MKI")

    # -- environment
    def _ev_LoseCoverage(self, e: Mapping[str, Any], events: Any, i: int) -> None:
        self._step(e, "LoseCoverage", (self._u(e),))

    def _ev_RegainCoverage(self, e: Mapping[str, Any], events: Any, i: int) -> None:
        self._step(e, "RegainCoverage", (self._u(e),))


KNOWN_EVENTS: Final = MODEL_EVENTS | OTHER_EVENTS


def check_events(
    events: Iterable[Mapping[str, Any]],
    profile: Profile,
    *,
    strict_timing: bool = True,
    width: int = DEFAULT_WIDTH,
    lookahead: int | None = None,
    packet_window: int | None = None,
    wire: WireCheck | None = None,
) -> TraceResult:
    """The trace checker every command uses: :func:`check_events_reference`'s verdict,
    streamed, in time linear in the log and memory bounded by the live state
    (:func:`mbmssec.refinement.streamcheck.check_stream`; ``width`` is unused).
    ``lookahead`` and ``packet_window`` (None: the defaults) bound what it holds; ``wire``
    checks a capture's SRTP packets too (:mod:`mbmssec.refinement.wirecheck`)."""
    from mbmssec.refinement import streamcheck

    return streamcheck.check_stream(
        events,
        profile,
        strict_timing=strict_timing,
        lookahead=streamcheck.DEFAULT_LOOKAHEAD if lookahead is None else lookahead,
        packet_window=(
            streamcheck.DEFAULT_PACKET_WINDOW if packet_window is None else packet_window
        ),
        wire=wire,
    )


def check_events_reference(
    events: Sequence[Mapping[str, Any]],
    profile: Profile,
    *,
    strict_timing: bool = True,
    width: int = DEFAULT_WIDTH,
    universe: Universe | None = None,
) -> TraceResult:
    """Search for a model run under ``profile`` explaining ``events`` (see the module
    docstring): the reference checker, on the executable model's :class:`State` over a
    universe sized for the whole log (every step copies the tables it changes, so its
    cost per event grows with the population and the log).  :func:`check_events` gives
    its verdicts streamed; the tests compare the two.

    Raises :class:`TraceCheckError` for a log that is not a run's log at all (empty, no
    ``Start`` event, an unknown event name).  Every other problem is a verdict: the first
    event no model transition explains.  ``strict_timing`` (the default): an activation
    the model forbids only because synchronised UEs lack the TEK is explained by their
    late fetches only if each one's logged fetch time is more than the BM-SC's fetch grace
    (logged in its ``Start`` event) before the activation, the BM-SC's own rule; without
    it, being past the fetch time is enough.
    """
    if not events:
        raise TraceCheckError("the event log is empty: there is no run to check")
    unknown = sorted({str(e["event"]) for e in events} - KNOWN_EVENTS)
    if unknown:
        raise TraceCheckError(f"unknown event name(s) in the log: {', '.join(unknown)}")
    if not any(e["event"] == "Start" for e in events):
        raise TraceCheckError(
            "the event log has no Start event: it does not declare the run's profile and "
            "timing (is it a whole log of mbmssec demo, serve or ue?)"
        )
    uni, naming = naming_for(events)
    uni = universe or uni
    model = Model(profile)
    tracker = Tracker(model, uni, width)
    mapper = EventMapper(tracker, naming, late_fetch="grace" if strict_timing else "fetch_time")
    order = causal_order_indices(events)
    mapper.lines = order
    failure: Unexplained | None = None
    for i, e in enumerate(events):  # the log's own order: per-source clocks
        mapper.check_clock(e, i)
    try:
        mapper.feed([events[k] for k in order])
    except Unexplained as exc:
        failure = exc
    return TraceResult(
        failure is None,
        len(events),
        mapper.explained,
        len(tracker.steps),
        tracker.pruned,
        uni,
        mapper.late_fetches,
        failure,
        profile=profile.overrides,
        timing="strict" if strict_timing else "lenient",
        fetch_grace=mapper.fetch_grace,
        reused_auth=mapper.reused_auth,
        unanswered=mapper.unanswered,
    )


def causal_order(events: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The log in an order the atomic model ``Register`` can follow
    (see :func:`causal_order_indices`)."""
    return [events[k] for k in causal_order_indices(events)]


def causal_order_indices(events: Sequence[Mapping[str, Any]]) -> list[int]:
    """The positions of the log's events in an order the atomic model ``Register`` can
    follow.

    A delivery is one model step, but in a real run the BM-SC's ``Deliver`` and the UE's
    ``Register`` are apart by the response's transit time; a packet the UE receives in
    between is received *before* it installs the keys.  Such a ``Receive`` is moved to
    just before the ``Deliver`` (with its ``Send``, if that came after the ``Deliver``
    and no ``Activate`` lies between: sending and delivering touch disjoint state, so
    they commute).  Every other event keeps its place.
    """
    out = list(range(len(events)))
    i = 0
    while i < len(out):
        e = events[out[i]]
        if e["event"] != "Deliver" or e.get("ue") is None:
            i += 1
            continue
        j = outcome_after(events, i, out)
        if j is None:
            i += 1
            continue
        moved: list[int] = []
        k = i + 1
        while k < j:
            r = events[out[k]]
            if r["event"] == "Receive" and r.get("ue") == e["ue"]:
                send = _send_between(events, out, i, k, r)
                if send is None:
                    moved.append(out.pop(k))
                    j -= 1
                    continue
                if send >= 0:
                    moved.append(out.pop(send))
                    k -= 1
                    moved.append(out.pop(k))
                    j -= 2
                    continue
            k += 1
        out[i:i] = moved
        i += len(moved) + 1
    return out


def _send_between(
    events: Sequence[Mapping[str, Any]], out: list[int], i: int, k: int, r: Mapping[str, Any]
) -> int | None:
    """Where the ``Send`` of ``r``'s packet is relative to the ``Deliver`` at ``i``:
    None if before it; its index if between ``i`` and ``k`` and movable; -1 if it
    cannot move (an ``Activate`` of the service precedes it)."""
    for m in range(k - 1, i, -1):
        x = events[out[m]]
        if (
            x["event"] == "Send"
            and x.get("service") == r.get("service")
            and x.get("seq") == r.get("seq")
        ):
            blocked = any(
                events[out[n]]["event"] in ("Activate", "Generate")
                and events[out[n]].get("service") == r.get("service")
                for n in range(i + 1, m)
            )
            return -1 if blocked else m
    return None

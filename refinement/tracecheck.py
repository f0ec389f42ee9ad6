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
  *core* state and the search is over timings only.
* **Authentication reused.**  With ``second_service_auth=authorise_only`` a registration
  reusing a verified nonce logs no ``Authenticate``; if the model needs one, an unlogged
  ``Authenticate`` is inserted.

Event to model step
-------------------
UEs, services, TEKs (by ``(service, MKI)`` in order of ``Generate``) and packets (by
``(service, seq)`` in order of ``Send``) are numbered in order of first appearance.  A
``Deliver`` (bmsc) is the model's ``Register`` when the UE's next event for that service
is a successful ``Register``, else ``DeliveryLost``; the model step happens at the
``Deliver`` and the UE's ``Register`` is checked against it (same MKIs).  Outcomes are
checked: the delivered MKIs and counter, the MKI of every ``Send`` (the active TEK's),
every ``Activate`` and ``Generate`` (the next TEK, the next fresh MKI), the withdrawn
TEKs of a ``Revoke``, and every ``Receive`` (decrypted, or refused as unknown MKI /
authentication failure) against the model's ``decrypted`` and ``saw_unknown``.
``Rejected`` with reason ``not_subscribed`` must be a UE the model has unsubscribed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from mbmssec.errors import MbmssecError
from mbmssec.model.concrete import State, Universe
from mbmssec.model.machine import Model
from mbmssec.spec.loader import Profile

__all__ = [
    "CLOCK_ACTIONS",
    "Naming",
    "TraceCheckError",
    "TraceResult",
    "Tracker",
    "Unexplained",
    "check_events",
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
    ) -> None:
        super().__init__(f"event {index} ({describe_event(event)}): {why}")
        self.timing_only = timing_only
        self.index = index
        self.event = dict(event)
        self.why = why
        self.candidates = candidates


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
        if e["event"] in ("Start", "Stop", "Challenge", "Resync"):
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
        a counterexample asks for it; checking a long log does not need it)."""
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
        u, s = pair
        c = self.core
        return bool(
            c.get("registered", u, s)
            and c.get("subscribed", u, s)
            and c.get("covered", u)
            and not c.get("dropped", u, s)
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


@dataclass
class TraceResult:
    """The verdict: ``ok``, how many events were explained, model steps taken, the first
    unexplained event (index, event, why) and the candidates at that point."""

    ok: bool
    events: int
    explained: int
    model_steps: int
    pruned: int
    universe: Universe
    late_fetches: int = 0
    failure: Unexplained | None = None

    def to_json(self) -> dict[str, Any]:
        u = self.universe
        out: dict[str, Any] = {
            "ok": self.ok,
            "events": self.events,
            "explained": self.explained,
            "model_steps": self.model_steps,
            "pruned": self.pruned,
            "late_fetches": self.late_fetches,
            "universe": {"ue": u.ue, "svc": u.svc, "tek": u.tek, "pkt": u.pkt},
        }
        if self.failure is not None:
            f = self.failure
            out["first_unexplained"] = {
                "index": f.index,
                "event": f.event,
                "why": f.why,
                "timing_only": f.timing_only,
                "candidates": f.candidates,
            }
        return out

    def render(self) -> str:
        if self.ok:
            return (
                f"trace-check: OK: {self.explained} of {self.events} events explained by "
                f"{self.model_steps} model steps"
                + (
                    f"; {self.late_fetches} late fetch(es) assumed before activations"
                    if self.late_fetches
                    else ""
                )
                + (f" (beam cut {self.pruned} timings)" if self.pruned else "")
            )
        assert self.failure is not None
        f = self.failure
        lines = [
            f"trace-check: FORBIDDEN: event {f.index} ({describe_event(f.event)}): {f.why}",
            f"  {self.explained} earlier events were explained"
            + (
                f" (beam cut {self.pruned} timings: the verdict may be an artefact of the cut)"
                if self.pruned
                else ""
            ),
        ]
        if f.candidates:
            lines.append(
                f"  candidate model states at that point ({len(f.candidates)} "
                "shown, non-default entries):"
            )
            for cand in f.candidates:
                lines.append("    " + _short(cand))
        return "\n".join(lines)


def _short(state: Mapping[str, Any], limit: int = 1200) -> str:
    text = "; ".join(f"{k}={v}" for k, v in state.items())
    return text if len(text) <= limit else text[:limit] + " ..."


class EventMapper:
    """Maps log events to model steps on a :class:`Tracker` and checks their outcomes.

    Used by :func:`check_events` on a whole log and, batch by batch, by the lockstep
    refinement tests (``feed``).
    """

    def __init__(
        self, tracker: Tracker, naming: Naming | None = None, *, allow_late_fetch: bool = False
    ) -> None:
        self.tr = tracker
        self.model = tracker.model
        self.profile: Profile = tracker.model.profile
        self.names = naming or Naming()
        self.index = 0
        self.explained = 0
        self.mki_base: dict[int, int] = {}
        self.allow_late_fetch = allow_late_fetch
        self.late_fetches = 0
        self.fetch_at: dict[tuple[int, int], float] = tracker.hint

    # helpers
    def _u(self, e: Mapping[str, Any]) -> int:
        if e.get("ue") is None:
            raise TraceCheckError(f"{e['event']} without a UE")
        return self.names.ue(e["ue"], self.tr.universe)

    def _s(self, e: Mapping[str, Any]) -> int:
        if e.get("service") is None:
            raise TraceCheckError(f"{e['event']} without a service")
        return self.names.svc(e["service"], self.tr.universe)

    def _tek(self, service: str, mki: int) -> int:
        key = (service, mki)
        if key not in self.names.teks:
            raise TraceCheckError(f"TEK {service}/{mki} was never generated")
        return self.names.teks[key]

    def _fail(self, e: Mapping[str, Any], why: str, timing_only: bool = False) -> Unexplained:
        return Unexplained(self.index, e, why, self.tr.snapshot(), timing_only)

    def _step(self, e: Mapping[str, Any], action: str, *alts: tuple[Any, ...]) -> None:
        if not self.tr.apply(action, list(alts)):
            why = f"model action {action}{alts[0]} is not enabled in any candidate state"
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
            self._one(e, events[i + 1 :])
            self.explained += 1

    def _one(self, e: Mapping[str, Any], rest: Sequence[Mapping[str, Any]]) -> None:
        name = e["event"]
        handler = getattr(self, "_ev_" + name, None)
        if handler is None:
            return  # Start, Stop, Challenge, Resync: no model counterpart
        handler(e, rest)

    # -- authorisation database
    def _ev_Subscribe(self, e: Mapping[str, Any], rest: Any) -> None:
        self._step(e, "Subscribe", (self._u(e), self._s(e)))

    def _ev_Revoke(self, e: Mapping[str, Any], rest: Any) -> None:
        u, s = self._u(e), self._s(e)
        before = {t for t in range(self.tr.universe.tek) if self.tr.core.get("withdrawn", t)}
        self._step(e, "Revoke", (u, s))
        after = {t for t in range(self.tr.universe.tek) if self.tr.core.get("withdrawn", t)}
        logged = {self._tek(e["service"], m) for m in e.get("withdrawn", [])}
        if after - before != logged:
            raise self._fail(
                e,
                f"withdrawn TEKs {sorted(logged)} but the model withdraws {sorted(after - before)}",
            )

    def _ev_Authenticate(self, e: Mapping[str, Any], rest: Any) -> None:
        self._step(e, "Authenticate", (self._u(e),))

    def _ev_Rejected(self, e: Mapping[str, Any], rest: Any) -> None:
        if (
            e.get("reason") == "not_subscribed"
            and e.get("source") == "bmsc"
            and e.get("ue") is not None
            and e.get("service") is not None
            and self.tr.core.get("subscribed", self._u(e), self._s(e))
        ):
            raise self._fail(e, "refused as not subscribed, but the model has the UE subscribed")

    # -- registration
    def _ev_Deliver(self, e: Mapping[str, Any], rest: Sequence[Mapping[str, Any]]) -> None:
        u, s = self._u(e), self._s(e)
        outcome = next(
            (
                r
                for r in rest
                if r.get("ue") == e["ue"]
                and r.get("service") == e["service"]
                and r["event"] in ("Register", "DeliveryLost")
            ),
            None,
        )
        installed = outcome is not None and outcome["event"] == "Register" and outcome["ok"]
        if not self.tr.core.get("authenticated", u):
            self._step(e, "Authenticate", (u,))  # reused authentication, not logged
        action = "Register" if installed else "DeliveryLost"
        if e.get("fetch_time") is not None:
            self.fetch_at[(u, s)] = float(e["fetch_time"])
        ctr_before = self.tr.core.get("ctr", u)
        self._step(e, action, (u, s, 1))  # the fetch offset is left to the timing zone
        core = self.tr.core
        if e.get("counter") is not None and core.get("ctr", u) != e["counter"]:
            raise self._fail(
                e,
                f"MIKEY counter {e['counter']}, the model's is "
                f"{core.get('ctr', u)} (was {ctr_before})",
            )
        if installed:
            got = {
                t
                for t in range(self.tr.universe.tek)
                if core.get("dlv_ctr", u, t) == core.get("ctr", u) and core.get("holds", u, t)
            }
            logged = {self._tek(e["service"], m) for m in e.get("mkis", [])}
            if got != logged:
                raise self._fail(
                    e, f"delivered TEKs {sorted(logged)} but the model delivers {sorted(got)}"
                )

    def _ev_Register(self, e: Mapping[str, Any], rest: Any) -> None:
        pass  # the model step was taken at the BM-SC's Deliver

    def _ev_DeliveryLost(self, e: Mapping[str, Any], rest: Any) -> None:
        pass  # likewise

    def _ev_Acknowledge(self, e: Mapping[str, Any], rest: Any) -> None:
        self._step(e, "Acknowledge", (self._u(e), self._s(e)))

    # -- key schedule
    def _ev_Generate(self, e: Mapping[str, Any], rest: Any) -> None:
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

    def _ev_Activate(self, e: Mapping[str, Any], rest: Any) -> None:
        s = self._s(e)
        t = self._tek(e["service"], e["mki"])
        core = self.tr.core
        if not core.get("has_next", s) or core.get("next", s) != t:
            raise self._fail(e, f"activates T{t}, which is not the service's next TEK")
        if self.tr.apply("Activate", [(s,)]):
            return
        late = self._late_blockers(e, s, t) if self.allow_late_fetch else None
        if late:
            # Each blocking UE is past its logged fetch time without having fetched: in
            # the model that UE is out of synchronisation (its fetch is late, as if out of
            # coverage for a moment), which is not recorded in the log.
            for v in late:
                self._step(e, "LoseCoverage", (v,))
                self._step(e, "RegainCoverage", (v,))
            self.late_fetches += len(late)
            if self.tr.apply("Activate", [(s,)]):
                return
        raise self._fail(
            e,
            f"model action Activate({s},) is not enabled in any candidate "
            "state: a registered, synchronised UE has not received "
            f"T{t} and is not past its fetch time",
        )

    def _late_blockers(self, e: Mapping[str, Any], s: int, t: int) -> list[int] | None:
        """UEs holding up activation in the model that the log shows past their fetch
        time at the activation; None if some blocker is not past it."""
        core = self.tr.core
        evidence = "acked" if self.profile["activation"] == "after_acks" else "delivered"
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
            if due is None or due >= float(e["t"]):
                return None
            out.append(v)
        return out

    def _ev_Withdraw(self, e: Mapping[str, Any], rest: Any) -> None:
        if not self.tr.core.get("withdrawn", self._tek(e["service"], e["mki"])):
            raise self._fail(e, "the model did not withdraw this TEK")

    # -- data plane
    def _ev_Send(self, e: Mapping[str, Any], rest: Any) -> None:
        s = self._s(e)
        t = self._tek(e["service"], e["mki"])
        if not self.tr.core.get("has_active", s) or self.tr.core.get("active", s) != t:
            raise self._fail(e, f"packet under T{t}, which is not the active TEK")
        p = self.names.packet(e["service"], int(e.get("seq", 0)), self.tr.universe)
        self._step(e, "Send", (s, p, bool(e.get("mki_in_packet", True))))

    def _ev_Receive(self, e: Mapping[str, Any], rest: Any) -> None:
        u, s = self._u(e), self._s(e)
        key = (e["service"], int(e.get("seq", -1)))
        if key not in self.names.packets:
            raise self._fail(e, "received a packet that was never sent")
        if not e["ok"] and e.get("reason") in ("replay", "malformed"):
            return  # refused below the key layer: no model step
        p = self.names.packets[key]
        before = self.tr.core.get("decrypted", u, p)
        self._step(e, "Receive", (u, p))
        core = self.tr.core
        decrypted = core.get("decrypted", u, p) and not before
        if e["ok"] and not decrypted and not before:
            raise self._fail(
                e,
                f"the UE decrypted P{p} (under T{core.get('pkt_tek', p)}), "
                "which the model forbids: it has no authorised TEK for it",
            )
        if not e["ok"] and decrypted:
            raise self._fail(
                e, f"the UE failed ({e.get('reason')}) on P{p}, which the model decrypts"
            )
        if not e["ok"] and e.get("reason") == "unknown_mki" and not core.get("saw_unknown", u, s):
            raise self._fail(e, "unknown MKI reported, but the model knows the MKI")

    # -- environment
    def _ev_LoseCoverage(self, e: Mapping[str, Any], rest: Any) -> None:
        self._step(e, "LoseCoverage", (self._u(e),))

    def _ev_RegainCoverage(self, e: Mapping[str, Any], rest: Any) -> None:
        self._step(e, "RegainCoverage", (self._u(e),))


def check_events(
    events: Sequence[Mapping[str, Any]],
    profile: Profile,
    *,
    width: int = DEFAULT_WIDTH,
    universe: Universe | None = None,
    allow_late_fetch: bool = True,
) -> TraceResult:
    """Search for a model run explaining ``events`` (see the module docstring).

    ``allow_late_fetch``: an ``Activate`` the model forbids only because synchronised
    UEs lack the TEK is explained, if the log shows each of them past its fetch time,
    by unlogged ``LoseCoverage``/``RegainCoverage`` steps of those UEs (a late fetch is,
    to the model, a UE out of synchronisation); the result counts them
    (``late_fetches``).  With ``False`` such a log is rejected.
    """
    uni, naming = naming_for(events)
    uni = universe or uni
    model = Model(profile)
    tracker = Tracker(model, uni, width)
    mapper = EventMapper(tracker, naming, allow_late_fetch=allow_late_fetch)
    ordered = causal_order(events)
    try:
        mapper.feed(ordered)
    except Unexplained as exc:
        return TraceResult(
            False,
            len(ordered),
            mapper.explained,
            len(tracker.steps),
            tracker.pruned,
            uni,
            mapper.late_fetches,
            exc,
        )
    return TraceResult(
        True,
        len(ordered),
        mapper.explained,
        len(tracker.steps),
        tracker.pruned,
        uni,
        mapper.late_fetches,
    )


def causal_order(events: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The log in an order the atomic model ``Register`` can follow.

    A delivery is one model step, but in a real run the BM-SC's ``Deliver`` and the UE's
    ``Register`` are apart by the response's transit time; a packet the UE receives in
    between is received *before* it installs the keys.  Such a ``Receive`` is moved to
    just before the ``Deliver`` (with its ``Send``, if that came after the ``Deliver``
    and no ``Activate`` lies between: sending and delivering touch disjoint state, so
    they commute).  Every other event keeps its place.
    """
    out = list(events)
    i = 0
    while i < len(out):
        e = out[i]
        if e["event"] != "Deliver" or e.get("ue") is None:
            i += 1
            continue
        j = next(
            (
                k
                for k in range(i + 1, len(out))
                if out[k].get("ue") == e["ue"]
                and out[k].get("service") == e["service"]
                and out[k]["event"] in ("Register", "DeliveryLost")
            ),
            None,
        )
        if j is None:
            i += 1
            continue
        moved: list[Mapping[str, Any]] = []
        k = i + 1
        while k < j:
            r = out[k]
            if r["event"] == "Receive" and r.get("ue") == e["ue"]:
                send = _send_between(out, i, k, r)
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


def _send_between(out: list[Mapping[str, Any]], i: int, k: int, r: Mapping[str, Any]) -> int | None:
    """Where the ``Send`` of ``r``'s packet is relative to the ``Deliver`` at ``i``:
    None if before it; its index if between ``i`` and ``k`` and movable; -1 if it
    cannot move (an ``Activate`` of the service precedes it)."""
    for m in range(k - 1, i, -1):
        x = out[m]
        if (
            x["event"] == "Send"
            and x.get("service") == r.get("service")
            and x.get("seq") == r.get("seq")
        ):
            blocked = any(
                out[n]["event"] in ("Activate", "Generate")
                and out[n].get("service") == r.get("service")
                for n in range(i + 1, m)
            )
            return -1 if blocked else m
    return None

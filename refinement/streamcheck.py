"""Trace checking at the scale of a real log: streamed, in time linear in the log and
memory bounded by the live state.

:func:`check_stream` gives the verdict of
:func:`mbmssec.refinement.tracecheck.check_events_reference` (the same
:class:`~mbmssec.refinement.tracecheck.EventMapper` maps events to model steps
and checks their outcomes, with the same messages) without the two costs that grow with
the population and the log there: every model step copying whole tables over a universe
sized for the whole log, and the whole log read before the first event is judged.

Each event is still judged by the model's own action
------------------------------------------------------
Every model step runs the action's body from :mod:`mbmssec.model.actions`, unchanged, on
the live state (:class:`LiveState`: sparse mutable tables, one per symbol), through a
:class:`ProjectedStep` whose quantifiers and ``set_all`` range over the step's *support*
rather than over every element of the universe.  The support of each action
(:meth:`LiveState.support`) holds every element for which a quantifier's body or a
``set_all`` value can differ from the frame; this is what the model's symmetry in UEs
gives, stated per action:

* ``Register``/``DeliveryLost`` (``u``, ``s``): UE ``u``, service ``s``, the service's
  active and next TEKs and the TEKs ``u`` holds (``delivered``, ``holds``, ``dlv_ctr``
  and ``auth_dlv`` change only at ``(u, active)`` and ``(u, next)``);
* ``Receive`` (``u``, ``p``): UE ``u``, the packet, its TEK and service, and the TEKs
  ``u`` holds (``same_mki`` needs ``holds(u, y)``; ``holds`` changes only where it is
  true for ``u``);
* ``Activate`` (``s``): the UEs registered for ``s`` (the guard's ``forall`` is true of
  every other UE) and the next TEK;
* ``LoseCoverage`` (``u``): UE ``u`` and every service named so far (an entry of
  ``dropped`` for a service not named yet is read by nothing before that service's first
  delivery to ``u``, which sets it);
* every other logged action reads and writes only its parameters and the elements it
  reads from them.

``tests/test_streamcheck.py`` checks these supports against the full executable model:
on states reached by random runs, the projected step of every action instance is enabled
exactly when the full step is, and writes the same entries.

Timing without a zone
---------------------
The model's ``clock`` and ``fetch_time`` are unobserved (see the reference checker's
docstring) and chosen here by a rule rather than kept as a zone: at every clock-reading
step (``Register``, ``DeliveryLost``, ``Activate``) the step runs with ``clock = 0`` and
every registered pair's fetch time at ``0`` if the pair is synchronised (registered,
subscribed, in coverage, no delivery lost) and ``-1`` otherwise.  This is exact:

* *no step is refused that some timing allows*: the rule's timing satisfies every timing
  guard but one (a registered pair fetches at or after its fetch time: ``0 <= 0``; an
  activation's unsynchronised registered UEs are past theirs: ``-1 < 0``); the one it
  fails, a synchronised UE without the TEK at an activation, fails at every timing: the
  guard of ``Tick`` keeps the clock at or before the fetch time of a synchronised pair,
  and a pair becomes synchronised only by registering, which puts its fetch time in the
  future;
* *the rule's timings are one model run*: number the clock-reading steps 1, 2, ... and
  let step ``i`` happen at clock ``2i`` (two ``Tick`` steps before each).  Give each
  registration the fetch time of the first step that bounds it from above (the pair's
  next registration at its fetch time, or an activation while the pair is
  unsynchronised: that clock minus 1), or none.  Every bound from below (the
  registration's clock plus 1, a ``Tick`` while the pair is synchronised) comes from an
  earlier step, whose clock is at least 2 less, so every guard holds.

So neither the clock nor fetch times are stored (their writes are dropped), and the cost
of a step does not depend on how many UEs are registered.

Memory bounded by the live state
--------------------------------
The live state keeps what a later logged step or check can read, and no history that
only grows:

* the history symbols no action reads (``heard``, ``auth_dlv``; see
  ``tests/test_model_roles.py``) and the model's clock and fetch times are not stored;
* ``delivered``, ``acked`` and ``dlv_ctr`` entries of a TEK that is no longer active or
  next are dropped (only ``Revoke`` and ``Activate`` read them, of the next TEK, and a
  TEK never becomes next again; ``dlv_ctr`` is read only by the attacker's ``Replay``,
  which no log shows); ``holds`` is kept;
* a packet is kept (its ``Send``, its model entries, which UEs decrypted it) for the
  last :data:`DEFAULT_PACKET_WINDOW` packets of its service; a ``Receive`` of an older
  packet is a :class:`~mbmssec.refinement.tracecheck.TraceCheckError` (exit 2) naming the
  bound, never an acceptance;
* lists in the verdict (reused authentications, deliveries without outcome, late
  fetches) keep their first :data:`MAX_LISTED` entries and a count.

Streaming and bounded look-ahead
--------------------------------
Events are read one at a time from any iterable (``mbmssec trace-check`` reads the file
line by line).  A ``Deliver`` is paired with the UE's outcome further on, and a UE's
``Receive`` between a ``Deliver`` and its outcome is moved before the ``Deliver`` (the
reference's :func:`~mbmssec.refinement.tracecheck.causal_order_indices`); so events are
held back from a ``Deliver`` until its outcome, the BM-SC's next ``Deliver`` to the same
UE and service, or the end of the log.  At most ``lookahead`` events
(:data:`DEFAULT_LOOKAHEAD`) are held: a log needing more is a
:class:`~mbmssec.refinement.tracecheck.TraceCheckError` naming the ``Deliver`` and the
bound (exit 2), never an acceptance.  The reordering is the reference's, done on the
held events only, so the run is the same.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from mbmssec.impl.service.events import MODEL_EVENTS, RECEIVE_REFUSED_UNKEYED
from mbmssec.model.concrete import Universe
from mbmssec.model.dsl import Action, Disabled, Sort
from mbmssec.model.machine import Model
from mbmssec.model.vocabulary import VOCABULARY
from mbmssec.refinement.tracecheck import (
    KNOWN_EVENTS,
    EventMapper,
    LateFetch,
    Naming,
    TraceCheckError,
    TraceResult,
    Unexplained,
    is_outcome,
)
from mbmssec.spec.loader import Profile

if TYPE_CHECKING:
    from mbmssec.refinement.wirecheck import WireCheck

__all__ = [
    "DEFAULT_LOOKAHEAD",
    "DEFAULT_PACKET_WINDOW",
    "MAX_LISTED",
    "LiveState",
    "LiveTracker",
    "ProjectedStep",
    "StreamMapper",
    "check_stream",
]

DEFAULT_LOOKAHEAD: Final = 100_000
"""Events held back, at most, from a ``Deliver`` waiting for the UE's outcome."""

DEFAULT_PACKET_WINDOW: Final = 4_096
"""Packets of a service kept for a later ``Receive`` (the newest ones)."""

MAX_LISTED: Final = 1_000
"""Entries kept of each list in the verdict (their count is kept in full)."""

CHECKED_HISTORY: Final = frozenset({"revoked", "withdrawn", "decrypted", "activated"})
"""History symbols the event mapper reads (in a verdict's reason, a ``Revoke``'s
withdrawn TEKs, a ``Receive`` decrypting a packet twice, a verdict's TEK states)."""

UNSTORED: Final = frozenset(
    {"clock", "fetch_time"}
    | {s.name for s in VOCABULARY.symbols if s.role == "history"} - CHECKED_HISTORY
)
"""Symbols whose writes are neither evaluated nor stored: the unobserved timing (chosen
by the rule of the module docstring) and the history that no action reads but to update
it (``tests/test_model_roles.py``) and no check reads."""

RETIRED_COLUMNS: Final = ("delivered", "acked", "dlv_ctr")
"""(UE, TEK) tables whose entries for a TEK that is no longer next are dead."""

FROM_STEP: Final[set[int]] = set()
"""What :meth:`StreamMapper._goes_out` returns when the delivery's own step shows which
TEKs the BM-SC sends (compared by identity)."""

PACKET_TABLES: Final = ("sent", "pkt_tek", "pkt_has_mki", "pkt_ev")

LOGGED_ACTIONS: Final = MODEL_EVENTS
"""The actions a log's events map to (the attacker's and ``Tick`` never are)."""


Support = tuple[Sequence[int], Sequence[int], Sequence[int], Sequence[int]]
"""The elements of each sort (UE, SVC, TEK, PKT) a step's quantifiers range over."""


def _slot(sort: Sort) -> int:
    """A sort's place in a :data:`Support` (compared by identity: hashing an enum member
    costs more than the rest of a lookup)."""
    if sort is Sort.UE:
        return 0
    if sort is Sort.SVC:
        return 1
    if sort is Sort.TEK:
        return 2
    if sort is Sort.PKT:
        return 3
    raise TraceCheckError(f"sort {sort} has no elements")


# -- the live state --------------------------------------------------------------------------


class _FetchTimes:
    """The timing rule's fetch times: 0 (the clock) for a synchronised pair, -1 otherwise."""

    __slots__ = ("live",)

    def __init__(self, live: LiveState) -> None:
        self.live = live

    def get(self, key: tuple[int, ...], default: Any = 0) -> int:
        return 0 if self.live.synced(key[0], key[1]) else -1


class _Decrypted:
    """``decrypted(u, p)`` from each kept packet's set of decrypting UEs (a bit mask)."""

    __slots__ = ("masks",)

    def __init__(self) -> None:
        self.masks: dict[int, int] = {}

    def get(self, key: tuple[int, ...], default: Any = False) -> bool:
        return bool(self.masks.get(key[1], 0) >> key[0] & 1)


class LiveState:
    """The model state a log's later events can still read: a sparse table per stored
    symbol (entries at their default are absent), over element numbers that only grow,
    with indexes of the UEs registered per service and the TEKs each UE holds."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.vocab = model.vocab
        self.defaults: dict[str, Any] = dict(model.vocab.defaults)
        self.arg_slots: dict[str, tuple[int, ...]] = {
            s.name: tuple(_slot(a) for a in s.args) for s in self.vocab.symbols
        }
        self.tables: dict[str, Any] = {s.name: {} for s in self.vocab.symbols}
        self.decrypted = _Decrypted()
        self.tables["fetch_time"] = _FetchTimes(self)
        self.tables["decrypted"] = self.decrypted
        self.registered_for: dict[int, set[int]] = {}
        """Service -> the UEs registered for it."""
        self.held: dict[int, set[int]] = {}
        """UE -> the TEKs it holds."""
        self.services: list[int] = []
        """Every service named so far (the support of ``LoseCoverage``)."""
        self.param_slots: dict[str, tuple[int, ...]] = {
            a.name: tuple(_slot(p.sort) if p.sort.is_element else -1 for p in a.params)
            for a in model.actions
            if a.name in LOGGED_ACTIONS
        }

        self.getter: dict[str, tuple[Any, Any]] = {}
        """Symbol -> its table's ``get`` and its default (one lookup per read)."""
        self.refresh_getters()

    def refresh_getters(self) -> None:
        """Rebuild :attr:`getter` (after a table object is replaced)."""
        self.getter = {n: (t.get, self.defaults[n]) for n, t in self.tables.items()}

    def get(self, name: str, *args: Any) -> Any:
        table_get, default = self.getter[name]
        return table_get(args, default)

    def synced(self, u: int, s: int) -> bool:
        """Registered, subscribed, in coverage, no delivery lost since (``Tick``'s guard)."""
        t = self.tables
        return bool(
            t["registered"].get((u, s), False)
            and t["subscribed"].get((u, s), False)
            and t["covered"].get((u,), True)
            and not t["dropped"].get((u, s), False)
        )

    # -- supports
    def support(self, action: str, args: tuple[Any, ...]) -> Support:
        """The elements a quantifier or ``set_all`` of ``action(args)`` must range over
        (see the module docstring); the other elements keep their entries."""
        get = self.get
        if action == "Receive":
            u, p = args
            t = get("pkt_tek", p)
            held = self.held.get(u, ())
            teks = tuple(held) if t in held else (t, *held)
            return ((u,), (get("tek_svc", t),), teks, (p,))
        if action in ("Register", "DeliveryLost"):
            u, s = args[0], args[1]
            keys = dict.fromkeys((get("active", s), get("next", s), *self.held.get(u, ())))
            return ((u,), (s,), tuple(keys), ())
        if action == "Activate":
            (s,) = args
            return (tuple(self.registered_for.get(s, ())), (s,), (get("next", s),), ())
        if action == "LoseCoverage":
            return ((args[0],), tuple(self.services), (), ())
        slots = self.param_slots.get(action)
        if slots is None:
            raise TraceCheckError(f"the model's {action} is never taken for a logged event")
        # every other action: its parameters (no quantifier, no set_all)
        out: tuple[list[int], ...] = ([], [], [], [])
        for slot, value in zip(slots, args, strict=True):
            if slot >= 0:
                out[slot].append(value)
        return (tuple(out[0]), tuple(out[1]), tuple(out[2]), tuple(out[3]))

    # -- writes
    def commit(self, writes: Mapping[str, Mapping[tuple[Any, ...], Any]]) -> None:
        """Store a step's writes (dropping the unstored symbols), keeping the indexes."""
        tables, defaults = self.tables, self.defaults
        for name, entries in writes.items():
            if name in UNSTORED:
                continue
            if name == "decrypted":
                masks = self.decrypted.masks
                for (u, p), value in entries.items():
                    if value:
                        masks[p] = masks.get(p, 0) | (1 << u)
                continue
            table = tables[name]
            default = defaults[name]
            for key, value in entries.items():
                if value != default:
                    table[key] = value
                elif key in table:
                    del table[key]
            if name == "registered":
                for (u, s), value in entries.items():
                    group = self.registered_for.setdefault(s, set())
                    if value:
                        group.add(u)
                    else:
                        group.discard(u)
            elif name == "holds":
                for (u, t), value in entries.items():
                    held = self.held.setdefault(u, set())
                    if value:
                        held.add(t)
                    else:
                        held.discard(t)

    def retire(self, t: int) -> None:
        """Drop the dead (UE, TEK) entries of ``t``, which is no longer next (activated or
        withdrawn): ``delivered`` and ``acked`` are read only of the next TEK, ``dlv_ctr``
        only by the attacker's ``Replay`` and by its own update."""
        for name in RETIRED_COLUMNS:
            table = self.tables[name]
            for key in [k for k in table if k[1] == t]:
                del table[key]

    def forget_packet(self, p: int) -> None:
        """Drop a packet that left the window."""
        for name in PACKET_TABLES:
            self.tables[name].pop((p,), None)
        self.decrypted.masks.pop(p, None)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view of the stored entries (as :meth:`State.as_dict`)."""
        out: dict[str, Any] = {}
        for name, table in self.tables.items():
            if name in UNSTORED:
                continue
            if name == "decrypted":
                items = [
                    ((u, p), True)
                    for p, mask in self.decrypted.masks.items()
                    for u in range(mask.bit_length())
                    if mask >> u & 1
                ]
            else:
                items = list(table.items())
            if items:
                out[name] = sorted([list(k), v] for k, v in items)
        return out


# -- one step on the live state ----------------------------------------------------------------


class _ProjectedOps:
    """:class:`~mbmssec.model.dsl.Ops` on Python values, quantifiers over a support."""

    __slots__ = ("support",)

    def __init__(self, support: Support) -> None:
        self.support = support

    def and_(self, *xs: Any) -> bool:
        return all(xs)

    def or_(self, *xs: Any) -> bool:
        return any(xs)

    def not_(self, x: Any) -> bool:
        return not x

    def implies(self, a: Any, b: Any) -> bool:
        return (not a) or bool(b)

    def ite(self, c: Any, a: Any, b: Any) -> Any:
        return a if c else b

    def forall(self, sort: Sort, body: Callable[[Any], Any]) -> bool:
        return all(body(x) for x in self.support[_slot(sort)])

    def exists(self, sort: Sort, body: Callable[[Any], Any]) -> bool:
        return any(body(x) for x in self.support[_slot(sort)])

    def require(self, cond: Any) -> None:
        if not cond:
            raise Disabled


class ProjectedStep:
    """:class:`~mbmssec.model.dsl.Step` reading the live state (the pre-state) and
    collecting writes; ``set_all`` ranges over the support."""

    __slots__ = ("action", "getter", "live", "support", "writes")

    def __init__(self, live: LiveState, action: Action, support: Support) -> None:
        self.live = live
        self.getter = live.getter
        self.action = action
        self.support = support
        self.writes: dict[str, dict[tuple[Any, ...], Any]] = {}

    def get(self, name: str, *args: Any) -> Any:
        table_get, default = self.getter[name]
        return table_get(args, default)

    def _table(self, name: str) -> dict[tuple[Any, ...], Any]:
        table = self.writes.get(name)
        if table is None:
            if name not in self.action.modifies:
                raise TraceCheckError(
                    f"action {self.action.name} writes {name!r} but does not list it in modifies"
                )
            table = self.writes[name] = {}
        return table

    def set(self, name: str, args: tuple[Any, ...], value: Any) -> None:
        table = self.writes.get(name)
        if table is None:
            table = self._table(name)
        if name not in UNSTORED:
            table[args] = value

    def set_all(self, name: str, value: Callable[..., Any]) -> None:
        table = self._table(name)
        if name in UNSTORED:
            return
        support = self.support
        slots = self.live.arg_slots[name]
        if len(slots) == 1:
            for x in support[slots[0]]:
                table[(x,)] = value(x)
            return
        for args in itertools.product(*(support[i] for i in slots)):
            table[args] = value(*args)


def run_projected(
    live: LiveState, action: Action, profile: Any, args: tuple[Any, ...]
) -> ProjectedStep | None:
    """Run the model's ``action`` body on the live state: its writes, or None if disabled."""
    support = live.support(action.name, args)
    st = ProjectedStep(live, action, support)
    try:
        action.run(_ProjectedOps(support), st, profile, *args)
    except Disabled:
        return None
    return st


# -- the tracker and the mapper -----------------------------------------------------------------


class LiveTracker:
    """The part of :class:`~mbmssec.refinement.tracecheck.Tracker` the event mapper uses,
    over the live state (the timing rule of the module docstring replaces the zone)."""

    def __init__(self, model: Model, naming: StreamNaming) -> None:
        self.model = model
        self.profile = model.profile
        self.core = LiveState(model)
        self.names = naming
        self.hint: dict[tuple[int, int], float] = {}
        self.pruned = 0
        self.step_count = 0
        self.last: ProjectedStep | None = None
        self._actions = {a.name: a for a in model.actions}

    @property
    def universe(self) -> Universe:
        """The elements named so far (element numbers are never reused)."""
        return self.names.universe

    def _action(self, name: str) -> Action:
        act = self._actions.get(name)
        if act is None:
            self.model.action(name)  # raises: unknown, or absent under this profile
            raise AssertionError(name)
        return act

    def trial(self, action: str, args: tuple[Any, ...]) -> ProjectedStep | None:
        """The step's writes without committing them (None if disabled)."""
        return run_projected(self.core, self._action(action), self.profile, args)

    def apply(self, action: str, alternatives: Sequence[tuple[Any, ...]]) -> bool:
        for args in alternatives:
            st = self.trial(action, args)
            if st is not None:
                self.core.commit(st.writes)
                self.last = st
                self.step_count += 1
                return True
        return False

    def enabled(self, action: str, args: tuple[Any, ...]) -> bool:
        return self.trial(action, args) is not None

    def fails_on_timing_only(self, action: str, alternatives: Sequence[tuple[Any, ...]]) -> bool:
        """Never: a step the timing rule refuses is refused at every timing."""
        return False

    def witness(self) -> tuple[tuple[tuple[int, int], int], ...]:
        """The timing rule's fetch offsets of the registered pairs."""
        live = self.core
        return tuple(
            sorted(
                ((u, s), 0 if live.synced(u, s) else -1)
                for s, group in live.registered_for.items()
                for u in group
            )
        )

    def snapshot(self, limit: int = 3) -> list[dict[str, Any]]:
        return [self.core.as_dict()]


class StreamNaming(Naming):
    """Log names -> element numbers, never reused (a packet leaving the window frees its
    name, not its number), with no upper bound."""

    def __init__(self) -> None:
        super().__init__()
        self.next_ue = self.next_svc = self.next_tek = self.next_pkt = 0
        self.on_service: Callable[[int], None] | None = None
        self.universe = Universe(ue=1, svc=1, tek=1, pkt=1)
        """The elements named so far (the universe argument of the methods is unused)."""

    def _grown(self) -> None:
        self.universe = Universe(
            ue=max(1, self.next_ue),
            svc=max(1, self.next_svc),
            tek=max(1, self.next_tek),
            pkt=max(1, self.next_pkt),
        )

    def ue(self, name: str, universe: Universe) -> int:
        got = self.ues.get(name)
        if got is None:
            got = self.ues[name] = self.next_ue
            self.next_ue += 1
            self._grown()
        return got

    def svc(self, name: str, universe: Universe) -> int:
        got = self.services.get(name)
        if got is None:
            got = self.services[name] = self.next_svc
            self.next_svc += 1
            self._grown()
            if self.on_service is not None:
                self.on_service(got)
        return got

    def tek(self, service: str, mki: int, universe: Universe) -> int:
        key = (service, mki)
        got = self.teks.get(key)
        if got is None:
            got = self.teks[key] = self.next_tek
            self.next_tek += 1
            self._grown()
        return got

    def packet(self, service: str, seq: int, universe: Universe) -> int:
        key = (service, seq)
        got = self.packets.get(key)
        if got is None:
            got = self.packets[key] = self.next_pkt
            self.next_pkt += 1
            self._grown()
        return got


class _Capped(list[int]):
    """A list that keeps its first :data:`MAX_LISTED` entries and counts all of them."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def append(self, item: int) -> None:
        self.total += 1
        if len(self) < MAX_LISTED:
            super().append(item)


class StreamMapper(EventMapper):
    """:class:`~mbmssec.refinement.tracecheck.EventMapper` over a :class:`LiveTracker`:
    outcomes are paired by their place in the log, TEKs are looked up in the live
    state's indexes, and packets leave a window of ``packet_window`` per service."""

    def __init__(
        self,
        tracker: LiveTracker,
        naming: StreamNaming,
        *,
        late_fetch: str,
        packet_window: int,
    ) -> None:
        # LiveTracker/StreamNaming offer the parts of Tracker/Naming the base class uses
        # (duck-typed, not subclasses)
        super().__init__(tracker, naming, late_fetch=late_fetch)  # type: ignore[arg-type]
        self.live = tracker
        self.packet_window = packet_window
        self.window: dict[str, deque[tuple[int, int]]] = {}
        """Service -> (seq, packet) of its kept packets, oldest first."""
        self.forgotten: dict[str, int] = {}
        """Service -> the highest sequence number of a packet that left the window."""
        self.reused_auth: _Capped = _Capped()
        self.unanswered: _Capped = _Capped()
        self.late_count = 0
        self.wire: WireCheck | None = None
        """The capture's packets, checked at each ``Send`` (``--pcap``)."""
        naming.on_service = tracker.core.services.append

    def _key(self) -> int:
        return self.line - 1  # the event's place in the log

    def _at(self, pos: int) -> None:
        self.index = self.explained
        self.line = pos + 1

    def explain(self, pos: int, e: Mapping[str, Any]) -> None:
        """Explain the event at ``pos`` in the log (any but a ``Deliver``)."""
        self._at(pos)
        self._one(e, (), 0)
        self.explained += 1

    def explain_deliver(
        self,
        pos: int,
        e: Mapping[str, Any],
        outcome: Mapping[str, Any] | None,
        outcome_pos: int,
        later: bool,
    ) -> None:
        """Explain the ``Deliver`` at ``pos`` whose UE outcome is at ``outcome_pos``
        (see :meth:`EventMapper.deliver`)."""
        self._at(pos)
        why = self.backwards.get(pos)
        if why is not None:
            raise self._fail(e, why)
        self.deliver(e, outcome, outcome_pos, later)
        self.explained += 1

    def _installed(self, u: int) -> set[int]:
        core = self.live.core
        ctr = core.get("ctr", u)
        return {t for t in core.held.get(u, ()) if core.get("dlv_ctr", u, t) == ctr}

    def _withdrawn(self) -> set[int]:
        return {k[0] for k in self.live.core.tables["withdrawn"]}

    def _goes_out(self, u: int, s: int) -> set[int] | None:
        """As the reference: a trial ``DeliveryLost`` with ``u``'s ``delivered`` row
        cleared (its fetch time is reached under the timing rule)."""
        live = self.live.core
        table = live.tables["delivered"]
        # the row as far as the step reads it: its support's TEKs
        row = [(u, t) for t in live.support("DeliveryLost", (u, s, 1))[2]]
        saved = {k: table.pop(k) for k in row if k in table}
        if not saved:
            # the row is clear already: the trial's pre-state is the delivery's own, and
            # both Register and DeliveryLost write delivered as DeliveryLost does (the
            # BM-SC's half, _bmsc_delivery), so the delivery's step shows what it sends
            return FROM_STEP
        try:
            st = self.live.trial("DeliveryLost", (u, s, 1))
        finally:
            table.update(saved)
        if st is None:
            return None
        return {t for (v, t), on in st.writes.get("delivered", {}).items() if v == u and on}

    def _expected_after(self, u: int, expected: set[int] | None) -> set[int] | None:
        if expected is not FROM_STEP:
            return expected
        last = self.live.last
        assert last is not None
        return {t for (v, t), on in last.writes.get("delivered", {}).items() if v == u and on}

    def _ev_Activate(self, e: Mapping[str, Any], events: Any, i: int) -> None:
        core = self.live.core
        s = self._s(e)
        old = core.get("active", s) if core.get("has_active", s) else None
        before = len(self.late_fetches)
        super()._ev_Activate(e, events, i)
        self.late_count += len(self.late_fetches) - before
        del self.late_fetches[MAX_LISTED:]
        # neither the TEK activated nor the one it replaces is next: their delivered,
        # acked and dlv_ctr entries are dead (a re-fetch writes the active one's again)
        core.retire(core.get("active", s))
        if old is not None:
            core.retire(old)

    def _ev_Revoke(self, e: Mapping[str, Any], events: Any, i: int) -> None:
        before = self._withdrawn()
        super()._ev_Revoke(e, events, i)
        for t in self._withdrawn() - before:
            self.live.core.retire(t)

    def _ev_Send(self, e: Mapping[str, Any], events: Any, i: int) -> None:
        super()._ev_Send(e, events, i)
        if self.wire is not None:
            # the model's active TEK of the service, which the step above took: the
            # Send's own MKI names it (a Send under another TEK is refused before)
            core = self.live.core
            active = core.get("active", self._s(e))
            mki = e["mki"]
            if self.names.teks.get((e["service"], mki)) != active:
                raise TraceCheckError(f"line {self.line}: the Send's MKI is not the active TEK")
            why = self.wire.explain_send(self.line - 1, e, int(mki))
            if why is not None:
                raise self._fail(e, why)
        service, seq = e["service"], int(e.get("seq", 0))
        kept = self.window.setdefault(service, deque())
        kept.append((seq, self.names.packets[(service, seq)]))
        while len(kept) > self.packet_window:
            old_seq, p = kept.popleft()
            del self.names.packets[(service, old_seq)]
            self.sent.pop((service, old_seq), None)
            self.live.core.forget_packet(p)
            self.forgotten[service] = max(old_seq, self.forgotten.get(service, old_seq))

    def _ev_Receive(self, e: Mapping[str, Any], events: Any, i: int) -> None:
        if not e["ok"] and e.get("reason") in RECEIVE_REFUSED_UNKEYED:
            return  # no model step (see the reference checker)
        service, seq = e.get("service"), int(e.get("seq", -1))
        if (service, seq) not in self.sent and seq <= self.forgotten.get(str(service), -1):
            raise TraceCheckError(
                f"line {self.line}: a Receive of packet seq {seq} of {service}, which left "
                f"the checker's window of the last {self.packet_window} packets of the "
                "service (raise it with --packet-window)"
            )
        super()._ev_Receive(e, events, i)
        if self.wire is not None:
            why = self.wire.explain_receive(self.line - 1)
            if why is not None:
                raise self._fail(e, why)


# -- the stream ---------------------------------------------------------------------------------


class _Reader:
    """Reads events one at a time: validates the event name, counts, notes a Start
    event, and checks each source's clock in the log's own order."""

    def __init__(self, events: Iterable[Mapping[str, Any]], mapper: StreamMapper) -> None:
        self.it: Iterator[Mapping[str, Any]] = iter(events)
        self.mapper = mapper
        self.count = 0
        self.started = False
        self.done = False

    def next(self) -> tuple[int, Mapping[str, Any]] | None:
        if self.done:
            return None
        try:
            e = next(self.it)
        except StopIteration:
            self.done = True
            return None
        name = str(e["event"])
        if name not in KNOWN_EVENTS:
            raise TraceCheckError(f"unknown event name(s) in the log: {name}")
        if name == "Start":
            self.started = True
        pos = self.count
        self.count += 1
        self.mapper.check_clock(e, pos)
        if self.mapper.wire is not None:
            self.mapper.wire.read(pos, e)
        return pos, e

    def drain(self) -> None:
        while self.next() is not None:
            pass


class _Held:
    """An event read but not yet explained."""

    __slots__ = ("done", "e", "pos")

    def __init__(self, pos: int, e: Mapping[str, Any]) -> None:
        self.pos = pos
        self.e = e
        self.done = False


class _Holder:
    """The events read and not yet explained, in log order, indexed by UE, by packet
    (``Send``) and by service (``Activate``/``Generate``), so that pairing a ``Deliver``
    and reordering around it cost in proportion to that UE's events, not to all the
    events held."""

    def __init__(self, reader: _Reader, mapper: StreamMapper, lookahead: int) -> None:
        self.reader = reader
        self.mapper = mapper
        self.lookahead = lookahead
        self.held: deque[_Held] = deque()
        self.by_ue: dict[str, deque[_Held]] = {}
        self.sends: dict[tuple[Any, Any], list[_Held]] = {}
        self.schedule: dict[Any, deque[int]] = {}
        """Service -> positions of its held ``Activate`` and ``Generate`` events."""

    def read(self) -> _Held | None:
        got = self.reader.next()
        if got is None:
            return None
        h = _Held(*got)
        e = h.e
        self.held.append(h)
        ue = e.get("ue")
        if ue is not None:
            q = self.by_ue.get(ue)
            if q is None:
                q = self.by_ue[ue] = deque()
            q.append(h)
        name = e["event"]
        if name == "Send":
            self.sends.setdefault((e.get("service"), e.get("seq")), []).append(h)
        elif name in ("Activate", "Generate"):
            self.schedule.setdefault(e.get("service"), deque()).append(h.pos)
        return h

    def _done(self, h: _Held) -> None:
        h.done = True
        e = h.e
        ue = e.get("ue")
        if ue is not None:
            q = self.by_ue[ue]
            while q and q[0].done:
                q.popleft()
            if not q:
                del self.by_ue[ue]
        name = e["event"]
        if name == "Send":
            key = (e.get("service"), e.get("seq"))
            group = self.sends[key]
            group.remove(h)
            if not group:
                del self.sends[key]
        elif name in ("Activate", "Generate"):
            sched = self.schedule[e.get("service")]
            sched.popleft()  # never moved: explained in log order
            if not sched:
                del self.schedule[e.get("service")]

    def explain(self, h: _Held) -> None:
        self._done(h)
        self.mapper.explain(h.pos, h.e)

    def run(self) -> None:
        """Explain the events in the reference's causal order; raises at the first verdict."""
        held = self.held
        while True:
            while held and held[0].done:
                held.popleft()
            if not held:
                if self.read() is None:
                    return
                continue
            h = held[0]
            e = h.e
            if e["event"] != "Deliver" or e.get("ue") is None:
                held.popleft()
                if e["event"] == "Deliver":  # refused: no UE
                    self._done(h)
                    self.mapper.explain_deliver(h.pos, e, None, -1, False)
                else:
                    self.explain(h)
                continue
            self._deliver(h)

    def _deliver(self, d: _Held) -> None:
        """Explain the ``Deliver`` at the head: find the UE's outcome (holding events back
        until it, the next delivery to the same UE and service, or the end of the log),
        move the UE's receptions in between before it as the reference does, then take it."""
        ue, svc = d.e["ue"], d.e.get("service")
        q = self.by_ue[ue]  # d is its first entry: every earlier event was explained
        outcome: _Held | None = None
        later = False
        k = 1
        while outcome is None and not later:
            while k < len(q):
                r = q[k]
                k += 1
                if r.done or r.e.get("service") != svc:
                    continue
                if r.e["event"] == "Deliver":
                    later = True
                    break
                if is_outcome(r.e):
                    outcome = r
                    break
            if outcome is not None or later:
                break
            if len(self.held) - 1 >= self.lookahead:
                raise TraceCheckError(
                    f"line {d.pos + 1}: the UE's outcome of this Deliver to {ue} is not among "
                    f"the next {self.lookahead} events, the checker's look-ahead (raise it "
                    "with --lookahead)"
                )
            if self.read() is None:
                break
        if outcome is not None:
            # the reference's reordering (causal_order_indices): each of the UE's receptions
            # before the outcome goes before the Deliver, with its packet's Send if that
            # lies in between and no Activate or Generate of the service precedes it there
            moved: list[_Held] = []
            for r in list(q)[1:]:
                if r.pos >= outcome.pos:
                    break
                if r.done or r.e["event"] != "Receive":
                    continue
                rs = r.e.get("service")
                sends = [x for x in self.sends.get((rs, r.e.get("seq")), ()) if x.pos < r.pos]
                if sends:
                    send = max(sends, key=lambda x: x.pos)
                    sched = self.schedule.get(rs)
                    if sched and sched[0] < send.pos:
                        continue  # the Send cannot move: the reception stays
                    moved.append(send)
                    self._done(send)
                moved.append(r)
                self._done(r)
            for m in moved:
                self.mapper.explain(m.pos, m.e)
        self.held.popleft()
        self._done(d)
        self.mapper.explain_deliver(
            d.pos,
            d.e,
            None if outcome is None else outcome.e,
            -1 if outcome is None else outcome.pos,
            later,
        )


def check_stream(
    events: Iterable[Mapping[str, Any]],
    profile: Profile,
    *,
    strict_timing: bool = True,
    lookahead: int = DEFAULT_LOOKAHEAD,
    packet_window: int = DEFAULT_PACKET_WINDOW,
    wire: WireCheck | None = None,
) -> TraceResult:
    """The verdict of the reference checker on ``events`` (any iterable, read once), in
    time linear in the log and memory bounded by the live state (see the module
    docstring).  Raises :class:`TraceCheckError` for a log that is not a run's log (empty,
    no ``Start`` event, an unknown event name) or that needs more than ``lookahead`` held
    events or ``packet_window`` kept packets.  With ``wire`` the SRTP packets of a capture
    are checked too, against each ``Send`` and the model's active TEK
    (:mod:`mbmssec.refinement.wirecheck`)."""
    if lookahead < 1 or packet_window < 1:
        raise TraceCheckError("the look-ahead and the packet window must be at least 1")
    model = Model(profile)
    naming = StreamNaming()
    tracker = LiveTracker(model, naming)
    mapper = StreamMapper(
        tracker,
        naming,
        late_fetch="grace" if strict_timing else "fetch_time",
        packet_window=packet_window,
    )
    mapper.wire = wire
    reader = _Reader(events, mapper)
    failure: Unexplained | None = None
    try:
        _Holder(reader, mapper, lookahead).run()
    except Unexplained as exc:
        failure = exc
    if failure is not None:
        mapper.wire = None  # the capture is not read past a verdict
    reader.drain()  # the rest is still read: its names, its count, a Start event
    if reader.count == 0:
        raise TraceCheckError("the event log is empty: there is no run to check")
    if not reader.started:
        raise TraceCheckError(
            "the event log has no Start event: it does not declare the run's profile and "
            "timing (is it a whole log of mbmssec demo, serve or ue?)"
        )
    if failure is None and wire is not None:
        problem = wire.finish()
        if problem is not None:
            mapper._at(problem.pos)
            failure = mapper._fail(problem.event, problem.why)
    late: list[LateFetch] = mapper.late_fetches
    result = TraceResult(
        failure is None,
        reader.count,
        mapper.explained,
        tracker.step_count,
        0,
        tracker.universe,
        late,
        failure,
        profile=profile.overrides,
        timing="strict" if strict_timing else "lenient",
        fetch_grace=mapper.fetch_grace,
        reused_auth=list(mapper.reused_auth),
        unanswered=list(mapper.unanswered),
        counts={
            "late_fetches": mapper.late_count,
            "reused_auth": mapper.reused_auth.total,
            "unanswered": mapper.unanswered.total,
        },
        wire=None if wire is None else wire.summary(),
    )
    return result

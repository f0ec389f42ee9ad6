"""Counterexamples on real code: a model trace replayed on the BM-SC and UE cores.

A counterexample of the bounded search (:mod:`mbmssec.proofs.bmc`) is a
:class:`~mbmssec.model.trace.Trace` of model actions (TS 33.246 6.2.2-6.2.3.3 as
modelled in :mod:`mbmssec.model`).  :func:`plan` turns it into operations of the
:class:`~mbmssec.refinement.abstraction.Lockstep` driver (real Digest AKA, real MIKEY bytes,
real SRTP packets), :func:`execute` runs them, and :func:`evidence` reads the concrete
run for the byte-level trace of the violated property.

Mapping of model actions:

* ``Subscribe``/``Revoke``/``LoseCoverage``/``RegainCoverage``: the same operation;
* ``Authenticate``: part of the registration (Digest AKA runs inside ``register``);
  ``Acknowledge``: the MIKEY response the registration already sends (step 4b);
* ``Register``/``DeliveryLost``: a registration, the MIKEY reply installed or lost;
* ``Generate``: the BM-SC's schedule keeps one next TEK generated ahead (6.2.3.1), so the
  model's k-th TEK is the BM-SC's k-th (MKI ``k + 1``) and must already exist;
* ``Activate``: time advances (BM-SC timer) until the next TEK becomes active; when a
  synchronised UE's fetch time comes first, time goes on past it while that UE's fetch is
  late but within the BM-SC's fetch grace (the request under way: the model's UE fetching
  at its fetch time, which the BM-SC's grace exists to cover), never beyond;
* ``Tick``: time advances a little, with nothing generated or activated;
* ``Send``/``Receive``: an SRTP packet under the active TEK / through the UE's receiver;
* ``Replay``: a captured MIKEY delivery to the UE carrying that TEK, sent again;
* every other action (the attacker's ``Compromise``/``Leak``/``Eavesdrop``, an insider's
  step, or one added to the model later) is replayed by its *effect*: the facts the model
  step makes true among :data:`REALISABLE` are each produced on the real bytes, then the
  model step is applied to the lockstep model.  A colluding UE (``compromised``) hands
  over its keys: the TEKs it holds and every KEK it uses (its own, and with
  ``kek_scope=common`` the service's common KEK it keeps); the attacker learns a TEK
  (``att_tek``) only by taking it from a colluding UE or by opening, with a KEK it holds,
  a MIKEY answer the BM-SC sent (every answer is recorded as it leaves the BM-SC, lost
  ones too); it learns a UE's KEK (``att_kek``) only when it holds the very bytes that
  UE's deliveries are protected with; a UE comes to hold a TEK outside a delivery
  (``holds``, an insider) only by opening another UE's recorded answer with its own KEK,
  whose keys its device then installs.  An action changing anything else has no
  concrete counterpart: :class:`CounterexampleReplayError` names it.

A *faithful* replay (``strict``) checks after every step that the implementation did
what the model step did (the MKIs delivered, the MKI activated and sent under, each
packet decrypted or refused as unknown MKI); where the implementation's time-driven
schedule cannot produce the model's order it raises :class:`Unfaithful` naming the step
and why.  A non-strict run executes the same operations under another profile (the
baseline) and records what happened instead, so a test can show the violation is absent
there.  :func:`schedulable_counterexample` asks the bounded search for a shortest
counterexample restricted to orders the BM-SC's schedule can produce.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import z3

from mbmssec.errors import MbmssecError
from mbmssec.impl.protocols.mikey import MikeyError, split_messages
from mbmssec.impl.protocols.mikey_messages import ReplayMode, ReplayState, parse_and_verify
from mbmssec.impl.protocols.srtp import MasterKey
from mbmssec.impl.service.bmsc import MKI_LENGTH, Outcome, RegisterRequest, Result
from mbmssec.impl.service.ue import HeldKey, PacketOutcome, Source, UeError
from mbmssec.model.concrete import State, Universe
from mbmssec.model.dsl import ModelError, Sort
from mbmssec.model.machine import Model
from mbmssec.model.trace import Trace
from mbmssec.proofs.bmc import Unrolling, replay_violation
from mbmssec.refinement.abstraction import Divergence, Lockstep
from mbmssec.spec.loader import Profile

__all__ = [
    "LOCKSTEP_UNIVERSE",
    "REALISABLE",
    "REPLAY_FETCH_GRACE",
    "CounterexampleReplayError",
    "Op",
    "Receipt",
    "ReplayResult",
    "Unfaithful",
    "evidence",
    "execute",
    "plan",
    "replay_counterexample",
    "schedulable_counterexample",
    "sent_plaintext",
    "shortest_counterexample",
    "unrealisable_attack",
]

LOCKSTEP_UNIVERSE: Final = Universe(ue=2, svc=1, tek=7, pkt=4)
"""Universe of the lockstep model following the concrete run (the BM-SC generates TEKs
ahead, so it needs more TEKs than the counterexample's universe)."""

REALISABLE: Final = frozenset({"compromised", "att_kek", "att_tek", "holds", "overheard"})
"""Symbols whose new facts a model step outside the honest mapping may make true: each
is produced on the real bytes (see the module docstring)."""

REPLAY_FETCH_GRACE: Final = 1.0
"""The BM-SC's fetch grace in replays (s; one TEK period of the lockstep driver): a UE
whose fetch is under way up to the next planned activation still counts as fetching on
time, so an activation rule that does not wait for it can be seen (the default grace is
shorter than the gap between the end of the fetch window and the next activation)."""

_HONEST: Final = frozenset(
    {
        "Authenticate",
        "Acknowledge",
        "Generate",
        "Subscribe",
        "Revoke",
        "Register",
        "DeliveryLost",
        "Activate",
        "Tick",
        "Send",
        "Receive",
        "LoseCoverage",
        "RegainCoverage",
        "Replay",
        "LoseReplayCache",
        "StopListening",
        "StartListening",
    }
)

_HEADER, _PAYLOAD, _TAG = 12, 12, 10  # RTP header, "MBMS" + 8-octet index, HMAC-SHA1-80
_DT: Final = 0.05  # time step while waiting for an activation (s)
_MAX_WAIT: Final = 200  # steps of _DT before giving up on an activation


class CounterexampleReplayError(MbmssecError):
    """A trace that cannot be turned into operations (an action without a concrete
    counterpart, an element beyond what the driver supports)."""


class Unfaithful(CounterexampleReplayError):
    """The implementation did not do what the model step did: ``step`` (1-based, in the
    model trace) and ``why``."""

    def __init__(self, step: int, what: str, why: str) -> None:
        super().__init__(f"model step {step} ({what}): {why}")
        self.step = step
        self.what = what
        self.why = why


@dataclass(frozen=True)
class Op:
    """One concrete operation: ``kind`` in subscribe, revoke, register, activate, tick,
    send, receive, lose_coverage, regain_coverage, replay, lose_replay_cache,
    stop_listening, start_listening; ``ue``,
    ``packet`` (sending order), ``tek`` (generation order), ``lost``; ``step`` is the
    model step (1-based)."""

    kind: str
    step: int
    ue: int | None = None
    packet: int | None = None
    tek: int | None = None
    lost: bool = False
    what: str = ""
    action: str = ""
    args: tuple[tuple[str, int], ...] = ()
    """For ``attack``: the model action's arguments as (sort, value), a TEK as its MKI."""
    facts: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = ()
    """For ``attack``: the facts the model step made true, as (symbol, arguments)."""


@dataclass(frozen=True)
class Receipt:
    """What one concrete operation did (the bytes involved and the outcome)."""

    op: Op
    index: int
    ok: bool = True
    reason: str | None = None
    mkis: tuple[int, ...] = ()
    wire: bytes = b""
    payload: bytes | None = None
    before: tuple[int, ...] = ()
    after: tuple[int, ...] = ()
    note: str = ""


@dataclass
class ReplayResult:
    """A concrete run: the driver (its store, UEs and wire), what each operation did,
    and the model properties the lockstep model of the run violates."""

    profile: Profile
    ls: Lockstep
    receipts: list[Receipt] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    answers: list[tuple[int, bytes]] = field(default_factory=list)
    """Every MIKEY answer the BM-SC sent, (UE, bytes), as an eavesdropper records it."""
    ue_keks: dict[int, list[bytes]] = field(default_factory=dict)
    """The KEKs each UE's deliveries were protected with, in order."""
    colluding: set[int] = field(default_factory=set)
    att_keks: list[bytes] = field(default_factory=list)
    att_teks: dict[int, bytes] = field(default_factory=dict)
    """TEK bytes the attacker obtained, by MKI."""
    att_how: dict[int, str] = field(default_factory=dict)
    #: TEKs a UE read from another UE's recorded answer: (UE, MKI) -> (key, how)
    overheard: dict[tuple[int, int], tuple[bytes, str]] = field(default_factory=dict)
    """How the attacker obtained each TEK (by MKI)."""

    @property
    def service(self) -> str:
        return self.ls.service

    def first(self, kind: str, ue: int | None = None) -> Receipt | None:
        return next(
            (r for r in self.receipts if r.op.kind == kind and (ue is None or r.op.ue == ue)), None
        )

    def model_violations(self) -> list[int]:
        """Properties the model, following the concrete run step by step, violates (in
        some candidate timing of the lockstep tracker)."""
        tr = self.ls.tracker
        out: set[int] = set(tr.step_violations)
        for timing in tr.timings:
            out.update(tr.model.violated(tr.full(timing)))
        return sorted(out)


# -- trace -> operations -------------------------------------------------------------------


def plan(trace: Trace, model: Model) -> list[Op]:
    """The operations standing for a model trace (see the module docstring)."""
    if trace.universe.svc != 1:
        raise CounterexampleReplayError(
            f"the driver runs one service; the trace has {trace.universe.svc}"
        )
    states = trace.replay(model)
    ops: list[Op] = []
    first_activation = True
    for n, st in enumerate(trace.steps, start=1):
        what = Trace.describe(model, st)
        a, post = st.args, states[n]
        if st.action in ("Authenticate", "Acknowledge", "Generate"):
            continue
        if st.action == "Activate" and first_activation:
            first_activation = False  # the service is created with its first TEK active
            continue
        if st.action in ("Subscribe", "Revoke"):
            ops.append(Op(st.action.lower(), n, ue=a[0], what=what))
        elif st.action in ("Register", "DeliveryLost"):
            ops.append(Op("register", n, ue=a[0], lost=st.action == "DeliveryLost", what=what))
        elif st.action == "Activate":
            ops.append(Op("activate", n, tek=post.get("mki", post.get("active", a[0])), what=what))
        elif st.action == "Tick":
            ops.append(Op("tick", n, what=what))
        elif st.action == "Send":
            ops.append(Op("send", n, packet=a[1], what=what))
        elif st.action == "Receive":
            ops.append(Op("receive", n, ue=a[0], packet=a[1], what=what))
        elif st.action == "LoseCoverage":
            ops.append(Op("lose_coverage", n, ue=a[0], what=what))
        elif st.action == "RegainCoverage":
            ops.append(Op("regain_coverage", n, ue=a[0], what=what))
        elif st.action == "Replay":
            ops.append(Op("replay", n, ue=a[0], tek=post.get("mki", a[1]), what=what))
        elif st.action == "LoseReplayCache":
            ops.append(Op("lose_replay_cache", n, ue=a[0], what=what))
        elif st.action in ("StopListening", "StartListening"):
            kind = "stop_listening" if st.action == "StopListening" else "start_listening"
            ops.append(Op(kind, n, ue=a[0], what=what))
        elif st.action in _HONEST:  # pragma: no cover - every honest action is mapped above
            raise CounterexampleReplayError(f"model action {st.action} is not mapped")
        else:
            ops.append(_attack_op(model, n, what, st.action, a, states[n - 1], post))
    return ops


def _attack_op(
    model: Model, n: int, what: str, name: str, args: Sequence[Any], pre: State, post: State
) -> Op:
    """A step outside the honest mapping, replayed by its effect (module docstring)."""
    try:
        act = model.action(name)
    except ModelError as exc:
        raise CounterexampleReplayError(
            f"model step {n} ({what}): unknown model action {name}: {exc}"
        ) from None

    def mki_of(sort: Sort, v: int) -> tuple[str, int]:
        return (sort.value, post.get("mki", v) + 1) if sort is Sort.TEK else (sort.value, int(v))

    facts = []
    changed = set()
    for sym in sorted(act.modifies):
        old, new = pre.tables.get(sym, {}), post.tables.get(sym, {})
        for key in sorted(set(old) | set(new)):
            if pre.get(sym, *key) == post.get(sym, *key):
                continue
            changed.add(sym)
            if post.get(sym, *key) is True:
                sorts = model.vocab[sym].args
                facts.append((sym, tuple(mki_of(so, v) for so, v in zip(sorts, key, strict=True))))
    beyond = sorted(changed - REALISABLE)
    if beyond:
        raise CounterexampleReplayError(
            f"model step {n} ({what}): model action {name} changes {', '.join(beyond)}, "
            "which the replay cannot produce on the implementation (it produces new "
            f"facts of {', '.join(sorted(REALISABLE))} only)"
        )
    return Op(
        "attack",
        n,
        what=what,
        action=name,
        args=tuple(mki_of(p.sort, v) for p, v in zip(act.params, args, strict=True)),
        facts=tuple(facts),
    )


# -- running operations ------------------------------------------------------------------------


def _keys(ls: Lockstep, i: int) -> tuple[int, ...]:
    st = ls.ues[i].services.get(ls.service)
    return tuple(sorted(st.keys)) if st is not None else ()


def _active_mki(ls: Lockstep) -> int:
    tek = ls.core.active_tek(ls.service)
    assert tek is not None
    return tek.mki


def execute(
    ops: Sequence[Op],
    profile: Profile,
    *,
    trace: Trace | None = None,
    model: Model | None = None,
    seed: int = 0,
    universe: Universe = LOCKSTEP_UNIVERSE,
) -> ReplayResult:
    """Run the operations on a fresh :class:`Lockstep` under ``profile``.

    With ``trace`` and ``model`` the replay is strict: every step must do what the model
    step did, else :class:`Unfaithful`.  Without, an operation the implementation does not
    allow (a registration the UE's client would not make, an activation the BM-SC holds
    back) is recorded in ``skipped`` and the run goes on.
    """
    strict = trace is not None
    states: list[State] = trace.replay(model) if trace is not None and model is not None else []
    ls = Lockstep(profile, universe, seed=seed, fetch_grace=REPLAY_FETCH_GRACE)
    ls.tracker.judge_steps = True
    res = ReplayResult(profile, ls)
    _record_answers(ls, res)
    packet_of: dict[int, int] = {}  # model packet -> wire index

    def fail(op: Op, why: str) -> None:
        if strict:
            raise Unfaithful(op.step, op.what, why)
        res.skipped.append(f"step {op.step} ({op.what}): {why}")

    def note(op: Op, **kw: Any) -> None:
        res.receipts.append(Receipt(op, len(res.receipts), **kw))

    for op in ops:
        try:
            _run(op, ls, res, strict, states, packet_of, fail, note, model)
        except Divergence as exc:
            if not strict:
                raise
            lines = str(exc).splitlines()
            diff = next((x.strip() for x in lines if x.strip().startswith("difference")), "")
            why = f"the implementation and the model part at '{ls.steps[-1]}': {diff}"
            if op.kind == "replay" and "no_kek" in ls.steps[-1]:
                why += (
                    "; the UE keeps no KEK after a registration (second_service_auth="
                    f"{profile['second_service_auth']}: one AKA run, one delivery), so it "
                    "cannot verify a replayed MIKEY delivery even without replay "
                    "protection"
                )
            raise Unfaithful(op.step, op.what, why) from None
    return res


def _record_answers(ls: Lockstep, res: ReplayResult) -> None:
    """Record every MIKEY answer the BM-SC sends (the eavesdropper's vantage point: an
    answer lost on its way to the UE was still on the wire)."""
    core = ls.core
    original = core.register

    def register(req: RegisterRequest, now: float) -> Outcome:
        out = original(req, now)
        if out.result is Result.DELIVERED:
            res.answers.append((ls.names.index(req.ue), out.mikey))
        return out

    # wrap this one core instance's method (the recording tap), not the class
    core.register = register  # type: ignore[method-assign]


def _run(
    op: Op,
    ls: Lockstep,
    res: ReplayResult,
    strict: bool,
    states: list[State],
    packet_of: dict[int, int],
    fail: Any,
    note: Any,
    model: Model | None,
) -> None:
    """One operation of :func:`execute` (checked against the model step when strict)."""
    pre = states[op.step - 1] if strict else None
    post = states[op.step] if strict else None
    i = op.ue
    if op.kind == "subscribe":
        assert i is not None
        ls.subscribe(i)
        note(op)
    elif op.kind == "revoke":
        assert i is not None
        ls.revoke(i)
        note(op)
    elif op.kind in ("register", "tick"):
        n_teks, act = ls.teks_used(), _active_mki(ls)
        if i is not None and not ls.may_register(i):
            reg = ls.store.get_registration(ls.names[i], ls.service)
            target = reg.fetch_time if reg is not None else ls.now
            ls.advance(max(0.0, target - ls.now))
            if not ls.may_register(i):
                fail(op, "the UE's client would not register now")
                return
        if op.kind == "tick":
            ls.advance(_DT)
        if (ls.teks_used(), _active_mki(ls)) != (n_teks, act):
            fail(
                op,
                "time had to pass and the BM-SC's timer generated or activated a "
                "TEK the model has not",
            )
        if op.kind == "tick":
            note(op)
            return
        assert i is not None
        before = _keys(ls, i)
        k0 = len(ls.captured)
        ls.register(i, op.lost)
        held = ls.ues[i].services.get(ls.service)
        if held is not None and held.kek is not None and not op.lost:
            res.ue_keks.setdefault(i, []).append(held.kek)
        got = ls.captured[k0][2] if len(ls.captured) > k0 else ()
        sent = _delivered_mkis(ls, i)
        if strict:
            assert pre is not None
            want = _model_delivery(model, pre, i)
            if tuple(sorted(sent)) != want:
                fail(
                    op,
                    f"the BM-SC delivered MKIs {sorted(sent)}, the model step "
                    f"delivers {list(want)} (the schedule keeps a next TEK generated "
                    "ahead of every registration)",
                )
        note(
            op,
            mkis=tuple(got) if not op.lost else tuple(sent),
            before=before,
            after=_keys(ls, i),
            wire=ls.captured[k0][1] if len(ls.captured) > k0 else b"",
        )
    elif op.kind == "activate":
        wanted = (op.tek + 1) if op.tek is not None else None
        start = _active_mki(ls)
        for _ in range(_MAX_WAIT):
            if _active_mki(ls) != start:
                break
            t0 = ls.now
            ls.advance(_DT)
            if ls.now == t0 and _active_mki(ls) == start and not _late_advance(ls):
                break  # held at a synchronised UE's fetch time, its grace used up
        now_active = _active_mki(ls)
        if now_active == start:
            pending = ls.store.teks(ls.service, "pending")
            fetch = ls.synchronised_fetch_times()
            why = "the BM-SC does not activate the next TEK here"
            if pending and fetch and min(fetch) < pending[0].planned:
                why += (
                    f": time cannot pass a synchronised UE's fetch time (+"
                    f"{min(fetch) - ls.now:.2f} s; UEs fetch on time, as in the "
                    f"model's Tick) and MKI {pending[0].mki} is planned later (+"
                    f"{pending[0].planned - ls.now:.2f} s), one period after the "
                    "previous activation"
                )
            elif pending:
                why += (
                    f" (MKI {pending[0].mki} planned at +"
                    f"{pending[0].planned - ls.now:.2f} s is held back)"
                )
            fail(op, why)
            return
        if strict and now_active != wanted:
            fail(op, f"the BM-SC activated MKI {now_active}, the model TEK has MKI {wanted}")
        note(op, mkis=(now_active,))
    elif op.kind == "send":
        assert op.packet is not None
        ls.send()
        p = len(ls.wire) - 1
        packet_of[op.packet] = p
        (
            mki,
            with_mki,
        ) = ls.record.packets[p][1], ls.record.packets[p][2]
        if strict:
            assert post is not None
            want_mki = post.get("mki", post.get("pkt_tek", op.packet)) + 1
            if (mki, with_mki) != (want_mki, bool(post.get("pkt_has_mki", op.packet))):
                fail(
                    op,
                    f"the packet went out under MKI {mki} (MKI field "
                    f"{'present' if with_mki else 'absent'}), the model's under MKI "
                    f"{want_mki} (MKI field "
                    f"{'present' if post.get('pkt_has_mki', op.packet) else 'absent'})",
                )
        note(op, mkis=(mki,), wire=ls.wire[p])
    elif op.kind == "receive":
        assert i is not None and op.packet is not None
        if not ls.record.covered.get(ls.names[i], True):
            fail(op, "the UE is out of coverage")
            return
        p = packet_of[op.packet]
        outcome = _receive(ls, i, p)
        ok, reason = outcome.ok, outcome.reason
        if strict:
            assert pre is not None and post is not None
            m_ok = bool(post.get("decrypted", i, op.packet)) and not bool(
                pre.get("decrypted", i, op.packet)
            )
            if ok != m_ok:
                fail(
                    op,
                    f"the UE's SRTP receiver {'decrypted' if ok else reason}, the "
                    f"model step {'decrypts' if m_ok else 'does not decrypt'}",
                )
        note(
            op,
            ok=ok,
            reason=reason,
            wire=ls.wire[p],
            payload=outcome.payload,
            mkis=(ls.record.packets[p][1],),
        )
    elif op.kind == "lose_coverage":
        assert i is not None
        ls.lose_coverage(i)
        note(op)
    elif op.kind == "regain_coverage":
        assert i is not None
        ls.regain_coverage(i)
        note(op)
    elif op.kind == "lose_replay_cache":
        assert i is not None
        ls.lose_replay_cache(i)
        note(op)
    elif op.kind in ("stop_listening", "start_listening"):
        assert i is not None
        ls.listen(i, op.kind == "start_listening")
        note(op)
    elif op.kind == "attack":
        _attack(op, ls, res, strict, packet_of, note)
    elif op.kind == "replay":
        assert i is not None and op.tek is not None
        mki = op.tek + 1
        ks = [k for k, (u, _b, m) in enumerate(ls.captured) if u == i and mki in m]
        if not ks:
            fail(op, f"no captured MIKEY delivery to UE{i} carries MKI {mki}")
            return
        before = _keys(ls, i)
        ls.replay(ks[-1])
        note(
            op,
            mkis=ls.captured[ks[-1]][2],
            wire=ls.captured[ks[-1]][1],
            before=before,
            after=_keys(ls, i),
            ok="accepted" in ls.steps[-1],
            note=ls.steps[-1],
        )
    else:
        raise CounterexampleReplayError(f"unknown operation {op.kind}")


_EPS: Final = 1e-3


def _late_advance(ls: Lockstep) -> bool:
    """Time passes although a synchronised UE's fetch time has come: that UE's fetch is
    late, under way, as long as the BM-SC's grace for it lasts (never to its end, where
    the BM-SC stops waiting).  False when no time can pass that way."""
    fetch = ls.synchronised_fetch_times()
    due = [f for f in fetch if f <= ls.now]
    if not due:
        return False
    limit = min(due) + ls.config.fetch_grace - _EPS
    ahead = [f for f in fetch if f > ls.now]  # the other UEs still fetch on time
    if ahead:
        limit = min(limit, min(ahead))
    if limit <= ls.now:
        return False
    late = ls.now - min(due)
    ls.now = min(ls.now + _DT, limit)
    ls._do(f"advance(late fetch: {late:.2f} s past a fetch time)", ls.core.tick(ls.now))
    return True


# -- steps replayed by their effect (the attacker, an insider) ----------------------------------


def _collect(ls: Lockstep, res: ReplayResult) -> None:
    """Colluding UEs hand over what they hold: every KEK they use and their TEKs."""
    for c in sorted(res.colluding):
        st = ls.ues[c].services.get(ls.service)
        keks = list(res.ue_keks.get(c, []))
        if st is not None and st.kek is not None:
            keks.append(st.kek)
        for kek in keks:
            if kek not in res.att_keks:
                res.att_keks.append(kek)
        for mki, held in (st.keys if st is not None else {}).items():
            if mki not in res.att_teks:
                res.att_teks[mki] = held.key
                res.att_how[mki] = f"held by colluding UE{c}"


def _open_answers(
    ls: Lockstep, res: ReplayResult, keks: Sequence[bytes], mki: int, but: int | None = None
) -> tuple[HeldKey, str] | None:
    """Open a recorded MIKEY answer carrying ``mki`` (not one to UE ``but``) with the
    given KEKs, taking any common KEK an answer yields along the way."""
    ring = list(keks)
    for v, body in res.answers:
        if v == but:
            continue
        try:
            parts = split_messages(body)
        except MikeyError:
            continue
        for group_key in (True, False):
            for part in parts:
                for kek in list(ring):
                    try:
                        d = parse_and_verify(
                            part, kek, ReplayState(ReplayMode.NONE), ls.now, group_key=group_key
                        ).delivery
                    except MikeyError:
                        continue
                    for key in d.keys:
                        if group_key and key.tek not in ring:
                            ring.append(key.tek)
                        elif not group_key and int.from_bytes(key.mki or b"", "big") == mki:
                            return (
                                HeldKey(ls.service, mki, key.tek, key.salt or b""),
                                f"opened the MIKEY answer to UE{v} ({len(part)} octets, "
                                f"{part[:12].hex()}...) with KEK {kek.hex()}",
                            )
    return None


def _kek_of(ls: Lockstep, v: int) -> bytes | None:
    """The KEK UE ``v``'s deliveries are protected with now (its latest delivery's, or
    with a common KEK and no delivery yet, the service's)."""
    st = ls.ues[v].services.get(ls.service)
    if st is not None and st.kek is not None:
        return st.kek
    return ls.store.get_group_kek(ls.service)


def _read_from_others(
    ls: Lockstep, res: ReplayResult, u: int, mki: int, *, own: bool = False
) -> tuple[HeldKey, str] | str:
    """An insider UE ``u`` opens a recorded answer to another UE (or, with ``own``, to
    any UE, itself included) carrying ``mki`` with its own KEKs: the key and how, or why
    it cannot."""
    st = ls.ues[u].state(ls.service)
    keks = [*res.ue_keks.get(u, []), *([st.kek] if st.kek is not None else [])]
    got = _open_answers(ls, res, keks, mki, but=None if own else u)
    if got is None:
        whose = "any UE" if own else "another UE"
        return f"UE{u}'s own KEKs open no recorded answer to {whose} carrying MKI {mki}"
    return got


def _realise(
    ls: Lockstep, res: ReplayResult, sym: str, vals: list[int], shown: list[str]
) -> str | None:
    """Produce one fact on the real bytes; the reason it cannot be, or ``None``."""
    if sym == "compromised":
        res.colluding.add(vals[0])
        _collect(ls, res)
        shown.append(f"UE{vals[0]} colludes (hands over its KEKs and TEKs)")
        return None
    if sym == "att_kek":
        (v,) = vals
        kek = _kek_of(ls, v)
        if v in res.colluding:
            shown.append(f"UE{v}'s KEKs come from UE{v} itself")
            return None
        if kek is not None and kek in res.att_keks:
            shown.append(f"the KEK of UE{v}'s deliveries, {kek.hex()}, is one the attacker holds")
            return None
        return f"the attacker holds no KEK that protects UE{v}'s deliveries"
    if sym == "att_tek":
        (mki,) = vals
        if mki not in res.att_teks:
            got = _open_answers(ls, res, res.att_keks, mki)
            if got is None:
                return f"no KEK the attacker holds opens a recorded answer carrying MKI {mki}"
            res.att_teks[mki] = got[0].key
            res.att_how[mki] = got[1]
        tek = next((t for t in ls.store.teks(ls.service) if t.mki == mki), None)
        if tek is None or tek.key != res.att_teks[mki]:
            return f"the bytes obtained for MKI {mki} are not the BM-SC's TEK"
        shown.append(f"TEK MKI {mki} = {tek.key.hex()} ({res.att_how[mki]})")
        return None
    if sym == "holds":
        u, mki = vals
        read = _read_from_others(ls, res, u, mki)
        if isinstance(read, str):
            return read
        held, how = read
        st = ls.ues[u].state(ls.service)
        st.keys.setdefault(mki, held)
        wire = mki.to_bytes(MKI_LENGTH, "big")
        if st.receiver is not None and wire not in st.receiver.mkis:
            st.receiver.add_key(MasterKey(wire, held.key, held.salt))
        shown.append(f"UE{u} {how} and installs MKI {mki} = {held.key.hex()}")
        return None
    if sym == "overheard":
        u, mki = vals
        read = _read_from_others(ls, res, u, mki, own=True)
        if isinstance(read, str):
            return read
        held, how = read
        tek = next((t for t in ls.store.teks(ls.service) if t.mki == mki), None)
        if tek is None or tek.key != held.key:
            return f"the bytes UE{u} read for MKI {mki} are not the BM-SC's TEK"
        res.overheard[(u, mki)] = (held.key, how)
        shown.append(f"UE{u} {how} and reads MKI {mki} = {held.key.hex()}")
        return None
    return f"no concrete counterpart for {sym}"  # pragma: no cover - plan() rules it out


def _attack(
    op: Op,
    ls: Lockstep,
    res: ReplayResult,
    strict: bool,
    packet_of: dict[int, int],
    note: Any,
) -> None:
    """A model step replayed by its effect (module docstring)."""
    _collect(ls, res)
    shown: list[str] = []
    missing: list[str] = []
    units = {u for sym, args in op.facts if sym == "holds" for _s, u in args[:1]}
    before = {u: _keys(ls, u) for u in units}
    # a UE colludes first: what it hands over is what the other facts may draw on
    for sym, args in sorted(op.facts, key=lambda f: f[0] != "compromised"):
        why = _realise(ls, res, sym, [v for _s, v in args], shown)
        if why is not None:
            missing.append(why)
    targs: list[Any] = []
    for sort, v in op.args:
        if sort == Sort.TEK.value:
            targs.append(ls.mapper.names.teks.get((ls.service, v)))
        elif sort == Sort.PKT.value:
            targs.append(packet_of.get(v))
        elif sort == Sort.BOOL.value:
            targs.append(bool(v))
        else:
            targs.append(v)
    names = {a.name for a in ls.tracker.model.actions}
    applied = (
        op.action in names
        and None not in targs
        and not (strict and missing)
        and ls.tracker.apply(op.action, [tuple(targs)])
    )
    if strict and (missing or not applied):
        raise Unfaithful(
            op.step,
            op.what,
            "; ".join(missing) or "the model following the run does not allow the step",
        )
    label = f"{op.action}({', '.join(str(v) for _s, v in op.args)})"
    ls.steps.append(f"{label} -> {'; '.join(shown + missing)}")
    if applied:
        ls.check(ls.steps[-1])
    u = next(iter(sorted(units)), None)
    note(
        op,
        ok=not missing and bool(applied),
        note="; ".join(shown + missing),
        before=before.get(u, ()) if u is not None else (),
        after=_keys(ls, u) if u is not None else (),
    )


def unrealisable_attack(trace: Trace, profile: Profile, step: int) -> list[str]:
    """Why model step ``step`` (an attacker's or insider's, 1-based) has no concrete
    counterpart: the trace's operations before it are run on the implementation and
    two invariants are checked on what it sent.  (1) Each UE the step gives key material
    to the attacker through (a colluding UE, an insider) received no answer from the
    BM-SC and its core holds no KEK; (2) every answer the BM-SC sent opens only with its
    recipient's own KEK (its first message, with ``kek_scope=common``: the common KEK
    travels only inside answers to the UE it is for).  Returns the checked statements,
    or an empty list if an invariant does not hold (the step could be produced)."""
    model = Model(profile)
    ops = plan(trace, model)
    target = next((op for op in ops if op.step == step and op.kind == "attack"), None)
    if target is None:
        return []
    res = execute([op for op in ops if op.step < step], profile)
    ls = res.ls
    suppliers = set(res.colluding)
    for sym, args in target.facts:
        if sym in ("compromised", "holds"):
            suppliers.add(args[0][1])
    out = []
    for c in sorted(suppliers):
        st = ls.ues[c].services.get(ls.service)
        if (st is not None and st.kek is not None) or any(v == c for v, _b in res.answers):
            return []
        out.append(f"UE{c} received no answer from the BM-SC and holds no KEK")
    if not out:
        return []
    keks = {}
    for v, name in enumerate(ls.names):
        reg = ls.store.get_registration(name, ls.service)
        if reg is not None:
            keks[v] = reg.kek
    for v, body in res.answers:
        first = split_messages(body)[0]
        opens = []
        for w, kek in keks.items():
            try:
                parse_and_verify(
                    first,
                    kek,
                    ReplayState(ReplayMode.NONE),
                    ls.now,
                    group_key=profile["kek_scope"] == "common",
                )
            except MikeyError:
                continue
            opens.append(w)
        if opens != [v]:
            return []
    out.append(
        f"each of the {len(res.answers)} answers the BM-SC sent opens only with its "
        "recipient's own KEK"
    )
    return out


def _receive(ls: Lockstep, i: int, p: int) -> PacketOutcome:
    """``ls.receive(i, p)``, keeping the UE's :class:`PacketOutcome` (its plaintext)."""
    ue = ls.ues[i]
    seen: list[PacketOutcome] = []
    original = ue.on_packet

    def on_packet(
        service: str, data: bytes, now: float, source: Source | None = None
    ) -> PacketOutcome:
        out = original(service, data, now, source)
        seen.append(out)
        return out

    # wrap this one UE core's method (the recording tap), not the class
    ue.on_packet = on_packet  # type: ignore[method-assign]
    try:
        ls.receive(i, p)
    finally:
        del ue.on_packet
    return seen[-1]


def sent_plaintext(p: int) -> bytes:
    """The payload the driver puts in its ``p``-th SRTP packet (``Lockstep.send``)."""
    return b"MBMS" + p.to_bytes(8, "big")


def _delivered_mkis(ls: Lockstep, i: int) -> tuple[int, ...]:
    """MKIs of the UE's latest delivery as the BM-SC recorded it."""
    reg = ls.store.get_registration(ls.names[i], ls.service)
    if reg is None:
        return ()
    out = []
    for ref in reg.delivered:
        tek = ls.store.get_tek(ref)
        if tek is not None:
            out.append(tek.mki)
    return tuple(sorted(out))


def _model_delivery(model: Model | None, pre: State, u: int) -> tuple[int, ...]:
    """MKIs (implementation numbering) of the TEKs a model Register/DeliveryLost sends."""
    assert model is not None
    s = 0
    act, nxt = pre.get("active", s), pre.get("next", s)
    send_active = True
    if model.profile["membership_rekey"] in ("join", "both"):
        send_active = pre.get("act_ev", act) > pre.get("join_ev", u, s)
    out = []
    if send_active and pre.get("has_active", s):
        out.append(pre.get("mki", act) + 1)
    if pre.get("has_next", s):
        out.append(pre.get("mki", nxt) + 1)
    return tuple(sorted(out))


# -- replaying a counterexample ----------------------------------------------------------------


def replay_counterexample(trace: Trace, profile: Profile, seed: int = 0) -> ReplayResult:
    """Replay a model counterexample faithfully (:class:`Unfaithful` if the
    implementation cannot follow it)."""
    model = Model(profile)
    ops = plan(trace, model)
    _check_initial_schedule(trace, model)
    return execute(ops, profile, trace=trace, model=model, seed=seed)


def _check_initial_schedule(trace: Trace, model: Model) -> None:
    """The BM-SC creates a service with its first TEK active and the next one generated;
    a model trace sending, registering or receiving before that cannot be followed."""
    seen: list[str] = []
    for n, st in enumerate(trace.steps, start=1):
        if st.action in ("Generate", "Activate"):
            seen.append(st.action)
            if seen[:3] == ["Generate", "Activate", "Generate"]:
                return
            continue
        if (
            seen
            and st.action in ("Register", "DeliveryLost")
            and seen != ["Generate", "Activate", "Generate"]
        ):
            raise Unfaithful(
                n,
                Trace.describe(model, st),
                "the BM-SC creates a service with its first TEK active and the "
                "next one already generated, so a registration always receives "
                "a next TEK; the model step registers before the next TEK "
                "exists",
            )


def shortest_counterexample(
    model: Model, number: int, universe: Universe, depth: int = 12
) -> Trace | None:
    """The bounded search's shortest counterexample to property ``number``; for a
    liveness property, the prefix of the shortest fair lasso that starts as the BM-SC's
    schedule does (:data:`_SETUP`).  The lasso's loop repeats only while the BM-SC's key
    schedule stands still, which the model allows and the implementation's timer does
    not do, so on real code the evidence is the prefix followed by the UE's recovery
    attempt, which leaves it without the active TEK (:func:`evidence`)."""
    from mbmssec.proofs.bmc import search

    prop = model.prop(number)
    if prop.kind == "liveness":
        from mbmssec.proofs.liveness import find_lasso

        got = find_lasso(model, prop, start=_SETUP, depth=depth).lasso
        if got is None:
            return None
        return Trace(got.trace.steps[: got.loop], got.trace.universe, (number,))
    found = search(model, props=[model.prop(number)], depth=depth, universe=universe)
    f = found.violations.get(number)
    return f.trace if f is not None else None


_SETUP: Final = ("Generate", "Activate", "Generate")
"""The first steps of every schedulable trace: the BM-SC creates a service with its first
TEK active and the next one generated before anything else can happen to it."""

SCHEDULE_ACTIONS: Final = frozenset(
    {"Subscribe", "Authenticate", "Register", "DeliveryLost", "Generate", "Activate"}
)
"""The steps that build a key schedule and registrations (see
:func:`schedulable_counterexample`'s ``like``)."""


def schedulable_counterexample(
    model: Model, number: int, universe: Universe, depth: int = 12, like: Trace | None = None
) -> Trace | None:
    """A shortest counterexample to property ``number`` among the traces whose key
    schedule the BM-SC can produce and whose attacker steps the implementation's keys
    support: the service created first (its first TEK generated and active, the next
    one generated); a registration only while a next TEK exists; once a TEK is active, every
    state without a next TEK (while the universe has a TEK left to generate) is followed
    by ``Generate`` (the BM-SC generates the next TEK in the same step as an activation
    or a withdrawal); with ``kek_scope=common``, a UE compromised (or acting in a step
    outside the honest mapping) holds a key, so it has received the common KEK, which
    the BM-SC gives only with a delivery.  With ``like`` (a counterexample found
    without these constraints), the search uses only the kinds of steps that trace uses
    and :data:`SCHEDULE_ACTIONS`, which keeps deeper searches cheap."""
    prop = model.prop(number)
    unr = Unrolling(model, universe)
    index = {a.name: k for k, a in enumerate(model.actions)}
    svc = unr.sorts.elements[Sort.SVC][0]
    teks = unr.sorts.elements[Sort.TEK]
    common = model.profile["kek_scope"] == "common"
    insiders = [
        k
        for k, a in enumerate(model.actions)
        if a.name == "Compromise" or (a.name not in _HONEST and a.name not in ("Leak", "Eavesdrop"))
    ]
    kinds = None
    if like is not None:
        names = SCHEDULE_ACTIONS | {st.action for st in like.steps}
        kinds = [index[a] for a in sorted(names) if a in index]
    for k in range(depth + 1):
        if k > 0:
            unr.extend()
            pre = unr.states[k - 1]
            sel = unr.selectors[k - 1]
            if kinds is not None:
                unr.solver.add(z3.Or(*[sel == a for a in kinds]))
            if k <= len(_SETUP) and _SETUP[k - 1] in index:
                unr.solver.add(sel == index[_SETUP[k - 1]])
            regs = [sel == index[a] for a in ("Register", "DeliveryLost") if a in index]
            unr.solver.add(z3.Implies(z3.Or(*regs), pre.get("has_next", svc)))
            if "Generate" in index:
                left = z3.Or(*[z3.Not(pre.get("generated", t)) for t in teks])
                unr.solver.add(
                    z3.Implies(
                        z3.And(pre.get("has_active", svc), z3.Not(pre.get("has_next", svc)), left),
                        sel == index["Generate"],
                    )
                )
            for a in insiders if common else []:
                stp = unr.steps[k - 1][a]
                for p, c in zip(stp.action.params, stp.params, strict=True):
                    if p.sort is Sort.UE:
                        held = z3.Or(*[pre.get("holds", c, t) for t in teks])
                        unr.solver.add(z3.Implies(sel == a, held))
        cond = unr.violation(prop, k)
        if cond is None:
            continue
        m = unr.ask(cond)
        if m is not None:
            tr = unr.trace(m, k, (number,))
            replay_violation(model, tr, prop)
            return tr
    return None


# -- byte-level evidence -------------------------------------------------------------------------


def _subscription_index(res: ReplayResult, ue: int) -> int | None:
    r = res.first("subscribe", ue)
    return r.index if r is not None else None


def evidence(number: int, res: ReplayResult) -> list[str]:
    """The concrete evidence of a violation of property ``number`` in a run (empty if
    the run shows none).  P9 and P4 probe the run further (a re-registration, a packet)."""
    ls = res.ls
    out: list[str] = []
    if number == 3:
        for p, data in enumerate(ls.wire):
            if len(data) == _HEADER + _PAYLOAD + _TAG:
                out.append(
                    f"packet P{p} is {len(data)} octets: RTP header {_HEADER}, "
                    f"encrypted payload {_PAYLOAD}, tag {_TAG}: no MKI field "
                    f"(bytes {data.hex()})"
                )
    elif number == 7:
        sends = {r.op.packet: r for r in res.receipts if r.op.kind == "send"}
        for r in res.receipts:
            if r.op.kind != "receive" or not r.ok:
                continue
            assert r.op.ue is not None and r.op.packet is not None
            sub = _subscription_index(res, r.op.ue)
            sent = sends[r.op.packet]
            wire_index = next(k for k, w in enumerate(ls.wire) if w == sent.wire)
            if (
                sub is not None
                and sent.index < sub
                and r.payload is not None
                and r.payload[:_HEADER] == sent.wire[:_HEADER]
                and r.payload[_HEADER:] == sent_plaintext(wire_index)
            ):
                out.append(
                    f"UE{r.op.ue} decrypted packet {sent.wire.hex()} (MKI "
                    f"{sent.mkis[0]}) to payload {r.payload[_HEADER:]!r}, the bytes "
                    f"sent; it was sent at operation "
                    f"{sent.index}, before the UE subscribed at operation {sub}"
                )
    elif number == 6:
        for i, name in enumerate(ls.names):
            rev = ls.store.get_subscription(name, ls.service)
            if rev is None or rev.subscribed or rev.revoke_ev is None:
                continue
            for tek in ls.store.teks(ls.service):
                if tek.mki in _keys(ls, i) and (tek.act_ev or 0) > rev.revoke_ev:
                    out.append(
                        f"revoked UE{i} holds MKI {tek.mki}, a TEK activated (event "
                        f"{tek.act_ev}) after its revocation (event {rev.revoke_ev}): it "
                        "can decrypt the service's traffic after leaving"
                    )
                read = res.overheard.get((i, tek.mki))
                if read is not None and (
                    tek.gen_ev > rev.revoke_ev or (tek.act_ev or 0) > rev.revoke_ev
                ):
                    out.append(
                        f"revoked UE{i} {read[1]} and read MKI {tek.mki} = {read[0].hex()}, "
                        f"a TEK generated (event {tek.gen_ev}) after its revocation (event "
                        f"{rev.revoke_ev}): one KEK for all UEs lets a leaver read later keys"
                    )
        for r in res.receipts:
            if r.op.kind != "receive" or not r.ok:
                continue
            assert r.op.ue is not None
            rev = ls.store.get_subscription(ls.names[r.op.ue], ls.service)
            tek = next(t for t in ls.store.teks(ls.service) if t.mki == r.mkis[0])
            if (
                rev is not None
                and not rev.subscribed
                and rev.revoke_ev is not None
                and (tek.act_ev or 0) > rev.revoke_ev
            ):
                out.append(
                    f"revoked UE{r.op.ue} decrypted {r.wire.hex()} under MKI "
                    f"{tek.mki}, activated (event {tek.act_ev}) after its revocation "
                    f"(event {rev.revoke_ev})"
                )
    elif number == 8:
        for r in res.receipts:
            if r.op.kind in ("replay", "attack") and r.ok:
                new = sorted(set(r.after) - set(r.before))
                if new and r.before and min(new) < max(r.before):
                    out.append(
                        f"UE{r.op.ue} re-installed MKI(s) {new} from MIKEY bytes "
                        f"{r.wire[:24].hex()}... while holding newer MKI "
                        f"{max(r.before)} ({r.note})"
                    )
    elif number == 4:
        out += _probe_activation(res)
    elif number == 10:
        out += _probe_activation(res, any_time=True)
    elif number == 11:
        for i in range(len(ls.names)):
            newest = max(
                (
                    r.mkis[0]
                    for r in res.receipts
                    if r.op.kind == "receive" and r.ok and r.op.ue == i and r.mkis
                ),
                default=None,
            )
            older = [m for m in _keys(ls, i) if newest is not None and m < newest]
            if older:
                out.append(
                    f"UE{i} decrypted a packet under MKI {newest} and still holds "
                    f"older MKI(s) {older} of the service (it holds {list(_keys(ls, i))})"
                )
    elif number in (9, 12):
        out += _probe_recovery(res)
    elif number == 1:
        for r in res.receipts:
            if r.op.kind != "receive" or not r.ok or r.op.ue is None or not r.mkis:
                continue
            name = ls.names[r.op.ue]
            tek = next(t for t in ls.store.teks(ls.service) if t.mki == r.mkis[0])
            if not ls.store.was_delivered(name, tek.id) and r.payload is not None:
                out.append(
                    f"UE{r.op.ue} decrypted {r.wire.hex()} under MKI {tek.mki} to "
                    f"{r.payload[_HEADER:]!r}; the BM-SC never delivered that TEK to it"
                )
    elif number == 5:
        for mki, key in sorted(res.att_teks.items()):
            row = next((t for t in ls.store.teks(ls.service) if t.mki == mki), None)
            if row is None or row.key != key:
                continue
            if not any(ls.store.was_delivered(ls.names[c], row.id) for c in res.colluding):
                out.append(
                    f"the attacker holds TEK MKI {mki} = {key.hex()}, the BM-SC's key, "
                    f"which it delivered to no colluding UE "
                    f"({', '.join(f'UE{c}' for c in sorted(res.colluding)) or 'none'}): "
                    f"{res.att_how[mki]}"
                )
    else:
        raise CounterexampleReplayError(f"no concrete evidence defined for property {number}")
    return out


def _probe_activation(res: ReplayResult, any_time: bool = False) -> list[str]:
    """After the last activation (with ``any_time``: at the end of the run, P10): every
    registered, authorised UE in coverage without a lost delivery gets a packet under
    the active TEK; an unknown MKI is the violation."""
    ls = res.ls
    if not any_time and (res.first("activate") is None or res.receipts[-1].op.kind != "activate"):
        return []
    if ls.core.active_tek(ls.service) is None:
        return []
    mki = _active_mki(ls)
    out = []
    ls.send()
    p = len(ls.wire) - 1
    for i, name in enumerate(ls.names):
        reg = ls.store.get_registration(name, ls.service)
        sub = ls.store.get_subscription(name, ls.service)
        if (
            reg is None
            or not reg.registered
            or sub is None
            or not sub.subscribed
            or not ls.record.covered.get(name, True)
            or ls.record.dropped.get((name, ls.service), False)
        ):
            continue
        outcome = _receive(ls, i, p)
        if outcome.reason == "unknown_mki":
            out.append(
                f"UE{i} (registered, in coverage) holds MKIs {list(_keys(ls, i))}; "
                f"its SRTP receiver refuses packet {ls.wire[p].hex()} with MKI "
                f"field {ls.wire[p][-_TAG - MKI_LENGTH : -_TAG].hex()} (active MKI "
                f"{mki}): unknown MKI"
            )
        elif any_time and not outcome.ok:
            out.append(
                f"UE{i} (registered, in coverage) holds MKIs {list(_keys(ls, i))}; "
                f"its SRTP receiver refuses packet {ls.wire[p].hex()} under the active "
                f"MKI {mki}: {outcome.reason}"
            )
    return out


def _probe_recovery(res: ReplayResult) -> list[str]:
    """A UE that saw an unknown MKI, subscribed and in coverage, runs its recovery
    (register again if its client would, authentication included): does it then hold
    the active TEK?"""
    ls = res.ls
    out = []
    for i, name in enumerate(ls.names):
        st = ls.ues[i].services.get(ls.service)
        sub = ls.store.get_subscription(name, ls.service)
        if ls.core.active_tek(ls.service) is None:
            continue
        mki = _active_mki(ls)
        # P9's premise: a packet under the active TEK, which the UE does not hold,
        # reached it (whether or not its client noticed an unknown MKI)
        reached = any(
            r.op.kind == "receive"
            and r.op.ue == i
            and r.wire in ls.wire
            and ls.record.packets[ls.wire.index(r.wire)][1] == mki
            for r in res.receipts
        )
        if (
            st is None
            or not (st.saw_unknown or reached)
            or mki in _keys(ls, i)
            or sub is None
            or not sub.subscribed
            or not ls.record.covered.get(name, True)
        ):
            continue
        if not ls.may_register(i):
            reg = ls.store.get_registration(name, ls.service)
            assert reg is not None
            out.append(
                f"UE{i} was reached by a packet under the active MKI {mki}, which it "
                "does not hold, but its client does not re-register "
                f"(unknown_mki_resync={res.profile['unknown_mki_resync']}; next "
                f"fetch in {reg.fetch_time - ls.now:.2f} s); it holds MKIs "
                f"{list(_keys(ls, i))}, not the active MKI {mki}"
            )
            continue
        k0 = len(ls.captured)
        try:
            ls.register(i)
        except UeError as exc:  # pragma: no cover - a refused delivery is reported
            out.append(f"UE{i}'s re-registration failed: {exc}")
            continue
        if mki not in _keys(ls, i):
            body = ls.captured[k0][1] if len(ls.captured) > k0 else b""
            out.append(
                f"UE{i} re-registered after an unknown MKI; the MIKEY delivery "
                f"({len(body)} octets) carries MKIs {list(ls.captured[k0][2])}, not "
                f"the active MKI {mki}; it holds {list(_keys(ls, i))}"
            )
    return out

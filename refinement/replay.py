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
* ``Activate``: time advances (BM-SC timer) until the next TEK becomes active;
* ``Tick``: time advances a little, with nothing generated or activated;
* ``Send``/``Receive``: an SRTP packet under the active TEK / through the UE's receiver;
* ``Replay``: a captured MIKEY delivery to the UE carrying that TEK, sent again;
* ``Compromise``/``Leak``/``Eavesdrop``: no attacker runs against the implementation, so
  a trace using them cannot be replayed.

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
from mbmssec.impl.service.bmsc import MKI_LENGTH
from mbmssec.impl.service.ue import PacketOutcome, UeError
from mbmssec.model.concrete import State, Universe
from mbmssec.model.dsl import Sort
from mbmssec.model.machine import Model
from mbmssec.model.trace import Trace
from mbmssec.proofs.bmc import Unrolling, replay_violation
from mbmssec.refinement.abstraction import Divergence, Lockstep
from mbmssec.spec.loader import Profile

__all__ = [
    "LOCKSTEP_UNIVERSE",
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
]

LOCKSTEP_UNIVERSE: Final = Universe(ue=2, svc=1, tek=7, pkt=4)
"""Universe of the lockstep model following the concrete run (the BM-SC generates TEKs
ahead, so it needs more TEKs than the counterexample's universe)."""

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
    send, receive, lose_coverage, regain_coverage, replay; ``ue``, ``packet`` (sending
    order), ``tek`` (generation order), ``lost``; ``step`` is the model step (1-based)."""

    kind: str
    step: int
    ue: int | None = None
    packet: int | None = None
    tek: int | None = None
    lost: bool = False
    what: str = ""


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
        else:
            raise CounterexampleReplayError(
                f"model step {n} ({what}): no attacker runs against the "
                "implementation, so this step has no concrete counterpart"
            )
    return ops


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
    ls = Lockstep(profile, universe, seed=seed)
    ls.tracker.judge_steps = True
    res = ReplayResult(profile, ls)
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
            if ls.now == t0 and _active_mki(ls) == start:
                break  # held at a synchronised UE's fetch time
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


def _receive(ls: Lockstep, i: int, p: int) -> PacketOutcome:
    """``ls.receive(i, p)``, keeping the UE's :class:`PacketOutcome` (its plaintext)."""
    ue = ls.ues[i]
    seen: list[PacketOutcome] = []
    original = ue.on_packet

    def on_packet(service: str, data: bytes, now: float) -> PacketOutcome:
        out = original(service, data, now)
        seen.append(out)
        return out

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
    """The bounded search's shortest counterexample to property ``number``."""
    from mbmssec.proofs.bmc import search

    found = search(model, props=[model.prop(number)], depth=depth, universe=universe)
    f = found.violations.get(number)
    return f.trace if f is not None else None


def schedulable_counterexample(
    model: Model, number: int, universe: Universe, depth: int = 12
) -> Trace | None:
    """A shortest counterexample to property ``number`` among the traces whose key
    schedule the BM-SC can produce: a registration only while a next TEK exists, and
    once a TEK is active every state without a next TEK is followed by ``Generate`` (the
    BM-SC generates the next TEK in the same step as an activation or a withdrawal)."""
    prop = model.prop(number)
    unr = Unrolling(model, universe)
    index = {a.name: k for k, a in enumerate(model.actions)}
    svc = unr.sorts.elements[Sort.SVC][0]
    for k in range(depth + 1):
        if k > 0:
            unr.extend()
            pre = unr.states[k - 1]
            sel = unr.selectors[k - 1]
            regs = [sel == index[a] for a in ("Register", "DeliveryLost") if a in index]
            unr.solver.add(z3.Implies(z3.Or(*regs), pre.get("has_next", svc)))
            if "Generate" in index:
                unr.solver.add(
                    z3.Implies(
                        z3.And(pre.get("has_active", svc), z3.Not(pre.get("has_next", svc))),
                        sel == index["Generate"],
                    )
                )
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
            if r.op.kind == "replay" and r.ok:
                new = sorted(set(r.after) - set(r.before))
                if new and r.before and min(new) < max(r.before):
                    out.append(
                        f"UE{r.op.ue} re-installed MKI(s) {new} from replayed MIKEY "
                        f"bytes {r.wire[:24].hex()}... while holding newer MKI "
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
    elif number == 9:
        out += _probe_recovery(res)
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

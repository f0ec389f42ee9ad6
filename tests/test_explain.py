"""The sentence of why a trace violates its property (model/explain.py).

The expected sentences are built from facts read here from the traces (which step sends
the packet, which step first subscribes the UE) and from the properties' formulas
evaluated directly on the replayed states, not from the explanation code.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from mbmssec.model.concrete import ConcreteOps, Universe
from mbmssec.model.explain import explain
from mbmssec.model.machine import Model
from mbmssec.model.trace import Trace, TraceStep
from mbmssec.proofs.check import Report
from mbmssec.spec.loader import load_spec

U = Universe(ue=2, svc=1, tek=3, pkt=2)


def _trace(steps: list[tuple[str, tuple[Any, ...]]], violates: int, **kw: Any) -> Trace:
    return Trace(tuple(TraceStep(a, x) for a, x in steps), kw.pop("universe", U), (violates,), **kw)


def _first(trace: Trace, action: str, match: Any) -> int:
    """The number (from 1) of the first step of ``action`` whose arguments satisfy ``match``."""
    return next(
        i for i, st in enumerate(trace.steps, start=1) if st.action == action and match(st.args)
    )


@pytest.mark.xdist_group("checker")
def test_the_baseline_late_joiner_is_explained_with_its_ue_packet_and_steps(
    baseline_report: Report,
) -> None:
    """Property 7 of the baseline: the sentence names the UE that decrypts, the packet,
    the step that sent it and the TEK, and the step at which the UE first subscribed."""
    verdict = baseline_report.verdicts[7]
    trace = verdict.trace
    assert trace is not None and verdict.explanation is not None
    model = Model(load_spec().baseline())
    receive = trace.steps[-1]
    assert receive.action == "Receive"
    u, p = receive.args
    sent = _first(trace, "Send", lambda a: a[1] == p)
    states = trace.replay(model)
    t = states[sent].get("pkt_tek", p)  # the TEK the Send step protected the packet with
    s = trace.steps[_first(trace, "Generate", lambda a: a[1] == t) - 1].args[0]
    joined = _first(trace, "Subscribe", lambda a: a == (u, s))
    assert sent < joined < len(trace.steps)
    assert verdict.explanation == (
        f"UE{u} decrypts P{p} at step {len(trace.steps)}, a packet sent at step {sent} "
        f"under T{t}, but UE{u} first subscribed to S{s} at step {joined}."
    )
    # without the property's own wording: the failing instance and the facts it reads
    plain = dataclasses.replace(model.prop(7), why=None)
    generic = explain(dataclasses.replace(model, properties=(plain,)), trace, 7)
    assert generic.startswith(
        f"After step {len(trace.steps)} the property fails for UE{u} and P{p}:"
    )
    assert f"decrypted(UE{u}, P{p}) = true (since step {len(trace.steps)})" in generic
    assert f"pkt_tek(P{p}) = T{t} (since step {sent})" in generic
    assert f"joined_ev(UE{u}, S{s}) = " in generic and f"(since step {joined})" in generic


def test_a_step_property_names_the_step_and_what_it_changes() -> None:
    """Activating a new TEK at once (property 4): the activation of T1 while UE1, in sync
    since its registration, holds only T0."""
    model = Model(load_spec().profile({"activation": "immediate"}))
    trace = _trace(
        [
            ("Authenticate", (1,)),
            ("Generate", (0, 0)),
            ("Activate", (0,)),
            ("Subscribe", (1, 0)),
            ("Register", (1, 0, 1)),
            ("Generate", (0, 1)),
            ("Activate", (0,)),
        ],
        4,
    )
    states = trace.replay(model)
    body = model.prop(4).body
    assert body is not None
    ops = ConcreteOps(U)
    failing = [
        (s, u)
        for s in range(U.svc)
        for u in range(U.ue)
        if not body(_Only(ops, s, u), states[-2], states[-1])
    ]
    assert failing == [(0, 1)]
    registered = _first(trace, "Register", lambda a: a[0] == 1)
    text = explain(model, trace)
    assert text.startswith("Step 7, Activate(S0), breaks the property for S0 and UE1: ")
    assert "it changes active(S0) from T0 to T1" in text
    assert f"in_sync(UE1, S0) = true (since step {registered})" in text
    assert "holds(UE1, T1) = false (from the start)" in text


class _Only(ConcreteOps):
    """Quantifiers over SVC and UE restricted to one service and one UE."""

    def __init__(self, ops: ConcreteOps, s: int, u: int) -> None:
        super().__init__(ops.universe)
        self.only = {"SVC": s, "UE": u}

    def forall(self, sort: Any, body: Any) -> bool:
        if sort.value in self.only:
            return bool(body(self.only[sort.value]))
        return super().forall(sort, body)


def test_a_lasso_names_the_ue_and_what_stays_on_the_loop() -> None:
    """The fair lasso against property 9 under re-key on join: UE0 heard P0 under the
    active TEK before it subscribed, and re-registering forever never gives it that TEK."""
    model = Model(load_spec().profile({"membership_rekey": "join"}))
    trace = _trace(
        [
            ("Generate", (0, 0)),
            ("Activate", (0,)),
            ("Send", (0, 0, True)),
            ("Receive", (0, 0)),
            ("Authenticate", (0,)),
            ("Subscribe", (0, 0)),
            ("Register", (0, 0, 1)),
            ("Tick", ()),
            ("Authenticate", (0,)),
            ("Register", (0, 0, 1)),
        ],
        9,
        universe=Universe(ue=1, svc=1, tek=2, pkt=1),
        loop=7,
    )
    prop = model.prop(9)
    assert prop.premise is not None and prop.goal is not None
    states = trace.replay(model)
    ops = ConcreteOps(trace.universe)
    premise = [bool(prop.premise(ops, st, 0, 0)) for st in states]
    goal = [bool(prop.goal(ops, st, 0, 0)) for st in states]
    start = premise.index(True)
    assert not any(goal[start:])
    subscribed = _first(trace, "Subscribe", lambda a: a == (0, 0))
    assert start == subscribed  # the premise needs the subscription
    text = explain(model, trace)
    assert text.startswith(
        f"The goal is never reached for UE0 and S0: the premise holds after step {start} ("
    )
    assert "on the loop of steps 8-10 (Tick(), Authenticate(UE0), Register(UE0, S0, f=1))" in text
    active = states[-1].get("active", 0)
    assert all(st.get("active", 0) == active for st in states[7:])
    assert f"active(S0) = T{active}, holds(UE0, T{active}) = false" in text
    assert text.endswith("stay as they are.")


@pytest.mark.parametrize(
    ("overrides", "steps", "end"),
    [
        (
            {"unknown_mki_resync": "wait"},
            [
                ("Subscribe", (0, 0)),
                ("Authenticate", (0,)),
                ("Generate", (0, 0)),
                ("Activate", (0,)),
                ("DeliveryLost", (0, 0, 1)),
                ("Send", (0, 0, True)),
                ("Receive", (0, 0)),
            ],
            "fails: Register(UE0, S0, f=1) is not enabled.",
        ),
        (
            {"membership_rekey": "join"},
            [
                ("Generate", (0, 0)),
                ("Activate", (0,)),
                ("Send", (0, 0, True)),
                ("Subscribe", (0, 0)),
                ("Receive", (0, 0)),
            ],
            "ends with the goal false (active(S0) = T0, holds(UE0, T0) = false).",
        ),
    ],
)
def test_a_response_property_says_where_the_plan_fails(
    overrides: dict[str, str], steps: list[tuple[str, tuple[Any, ...]]], end: str
) -> None:
    model = Model(load_spec().profile(overrides))
    trace = _trace(steps, 12)
    states = trace.replay(model)
    assert model.response_failures(model.prop(12), states[-1])[0] == (0, 0)
    text = explain(model, trace)
    assert text.startswith(f"After step {len(steps)} the premise holds for UE0 and S0 (")
    assert "but the plan Authenticate(UE0), Register(UE0, S0, f=1) " in text
    assert text.endswith(end)
    # whether the plan's second step is enabled, read from the model directly
    after_auth = model.step(states[-1], "Authenticate", (0,))
    assert after_auth is not None
    enabled = model.step(after_auth, "Register", (0, 0, 1)) is not None
    assert enabled == ("not enabled" not in end)

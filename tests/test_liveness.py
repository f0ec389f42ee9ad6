"""Liveness (property 9): the proof rule for every population size, fair lassos that
really repeat, and the bound stated where neither is found."""

from __future__ import annotations

import itertools

import pytest
from conftest import CheckerResults

from mbmssec.model.concrete import ConcreteOps, State
from mbmssec.model.dsl import ModelError, Sort
from mbmssec.model.machine import Model
from mbmssec.model.properties import FAIRNESS
from mbmssec.model.trace import Trace, TraceStep
from mbmssec.proofs.induction import prove
from mbmssec.proofs.liveness import LASSO_UNIVERSE, _validate, fair_instances, find_lasso
from mbmssec.spec.loader import load_spec

P9 = 9


def _model(**overrides: str) -> Model:
    return Model(load_spec().profile(overrides))


def test_baseline_recovery_is_proved_by_every_obligation() -> None:
    model = _model()
    res = prove(model)
    queries = res.liveness_results[P9]
    # O0, O1 per action, O2-O5
    assert len(queries) == 1 + len(model.actions) + 4
    assert [q.action for q in queries if q.verdict != "proved"] == []
    assert res.property_proved(model.prop(P9))
    assert P9 not in res.liveness_failed


def test_waiting_for_the_fetch_time_fails_the_rule_where_registration_is_held_back() -> None:
    model = _model(unknown_mki_resync="wait")
    res = prove(model)
    assert not res.property_proved(model.prop(P9))
    assert res.liveness_failed[P9].startswith("O5")


def _fair_instances_concrete(model: Model, state: State) -> dict[tuple[str, tuple[int, ...]], bool]:
    """Which fair instances are enabled in ``state``, asked of the executable model."""
    out = {}
    for name, key, _strength in fair_instances(model, state.universe):
        act = model.action(name)
        it = iter(key)
        args = tuple(p.lo if p.sort is Sort.INT else next(it) for p in act.params)
        out[(name, key)] = model.step(state, name, args) is not None
    return out


def _key(model: Model, st: TraceStep) -> tuple[str, tuple[int, ...]]:
    act = model.action(st.action)
    return st.action, tuple(
        a for p, a in zip(act.params, st.args, strict=True) if p.sort is not Sort.INT
    )


@pytest.mark.slow
@pytest.mark.xdist_group("checker")
def test_rekey_on_join_never_recovers_and_the_lasso_repeats_on_the_executable_model(
    checker_results: CheckerResults,
) -> None:
    """The lasso `mbmssec check` reports for rekey_on_join (taken from the shared checker
    results), judged by the executable model alone."""
    model = _model(membership_rekey="join")
    (cmp,) = [
        c for c in checker_results.comparisons if c.proposal and c.proposal.name == "rekey_on_join"
    ]
    verdict = cmp.report.verdicts[P9]
    assert verdict.verdict == "refuted" and verdict.trace is not None
    trace = verdict.trace
    assert trace.loop is not None and 0 < trace.loop < len(trace.steps)
    prefix, loop = list(trace.steps[: trace.loop]), list(trace.steps[trace.loop :])
    # the goal's pair: the one UE and service of the lasso universe
    u, s = 0, 0
    # five turns of the loop, run by the executable model alone (no solver involved)
    states = Trace(tuple(prefix + loop * 5), trace.universe).replay(model)
    ops = ConcreteOps(trace.universe)
    prop = model.prop(P9)
    assert prop.premise is not None and prop.goal is not None
    # the premise holds somewhere in the prefix and the goal never holds from there on
    assert any(
        prop.premise(ops, states[i], u, s)
        and not any(prop.goal(ops, st, u, s) for st in states[i:])
        for i in range(trace.loop + 1)
    )
    # each turn ends where it started, up to the same shift of integer entries
    starts = [states[len(prefix) + i * len(loop)] for i in range(6)]
    for a, b in itertools.pairwise(starts):
        for sym in model.vocab.symbols:
            for args in trace.universe.tuples(sym.args):
                if sym.result is Sort.INT:
                    d = b.get(sym.name, *args) - a.get(sym.name, *args)
                    assert d == starts[1].get(sym.name, *args) - starts[0].get(sym.name, *args)
                else:
                    assert a.get(sym.name, *args) == b.get(sym.name, *args), sym.name
    # fairness, judged on the executable model: every fair instance the loop does not
    # take is disabled in every state of the loop
    taken = {_key(model, st) for st in loop}
    assert ("Register", (u, s)) in taken  # the UE keeps re-registering and gets nothing
    for st in states[len(prefix) : len(prefix) + len(loop)]:
        for inst, on in _fair_instances_concrete(model, st).items():
            assert inst in taken or not on, inst


def test_a_loop_that_cannot_repeat_forever_is_rejected() -> None:
    """Under ``wait``, a UE whose delivery was lost keeps authenticating while time
    passes: two turns of that loop are fair, but once the clock reaches the UE's fetch
    time its registration is enabled and never taken.  The every-k check must refuse
    the loop although a replay of a few turns would accept it."""
    model = _model(unknown_mki_resync="wait")
    prop = model.prop(P9)
    assert prop.premise is not None and prop.goal is not None
    steps = (
        TraceStep("Generate", (0, 0)),
        TraceStep("Activate", (0,)),
        TraceStep("Send", (0, 0, True)),
        TraceStep("Subscribe", (0, 0)),
        TraceStep("Authenticate", (0,)),
        TraceStep("DeliveryLost", (0, 0, 3)),
        TraceStep("Authenticate", (0,)),
        TraceStep("Receive", (0, 0)),
        TraceStep("Authenticate", (0,)),
        TraceStep("Tick", ()),
    )
    loop = 8
    trace = Trace(steps, LASSO_UNIVERSE)
    ops = ConcreteOps(LASSO_UNIVERSE)
    # two turns are fine on the executable model ...
    states = Trace(steps + steps[loop:], LASSO_UNIVERSE).replay(model)
    assert prop.premise(ops, states[loop], 0, 0)
    assert not any(prop.goal(ops, st, 0, 0) for st in states[loop:])
    for st in states[loop:]:
        assert not _fair_instances_concrete(model, st)[("Register", (0, 0))]
    # ... but not forever
    instances = fair_instances(model, LASSO_UNIVERSE)
    assert _validate(model, prop, trace, loop, loop, 0, 0, instances, len(steps), 0.0) is None


def test_no_lasso_is_a_bounded_result_that_says_its_bound() -> None:
    from mbmssec.proofs.check import _liveness_verdict

    model = _model(unknown_mki_resync="wait")
    found = find_lasso(model, model.prop(P9), depth=5)
    assert found.lasso is None and found.depth == 5
    v = _liveness_verdict(model.prop(P9), prove(model), found)
    assert v.verdict == "unknown" and v.kind == "liveness"
    assert (
        "no fair lasso within 5 steps over 1 UE, 1 service, 2 TEK, 1 packet, fetch times up to "
        "1000 ahead (bounded)"
    ) in v.how
    assert v.how.startswith("not proved (O5 ")
    assert v.trace is None


def test_fairness_names_existing_actions() -> None:
    model = _model()
    names = {a.name for a in model.all_actions}
    assert {n for n, _ in FAIRNESS} <= names
    assert {k for _, k in FAIRNESS} <= {"weak", "strong"}


def test_lasso_json_round_trip_and_a_bad_loop_index_is_refused() -> None:
    t = Trace((TraceStep("Tick", ()), TraceStep("Tick", ())), LASSO_UNIVERSE, (9,), loop=1)
    assert Trace.from_json(t.to_json()) == t
    bad = t.to_json() | {"loop": 2}
    with pytest.raises(ModelError, match="loop"):
        Trace.from_json(bad)

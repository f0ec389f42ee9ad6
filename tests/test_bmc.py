"""Bounded model checking (proofs/bmc.py): shortest counterexamples, replay, witnesses."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from mbmssec.model.concrete import State, Universe, enabled_instances
from mbmssec.model.machine import Model
from mbmssec.model.symbolic import Sorts
from mbmssec.model.trace import Trace
from mbmssec.proofs.bmc import (
    BMC_UNIVERSE,
    SearchResult,
    ToolBug,
    _independence,
    replay_violation,
    replay_witness,
    search,
)
from mbmssec.spec.loader import load_spec


@pytest.fixture(scope="module")
def baseline_search() -> tuple[Model, SearchResult]:
    model = Model.baseline()
    return model, search(
        model, props=[model.prop(7)], actions=[a.name for a in model.actions], depth=8
    )


def test_backward_secrecy_counterexample_is_seven_steps(
    baseline_search: tuple[Model, SearchResult],
) -> None:
    model, res = baseline_search
    found = res.violations[7]
    assert found.depth == 7
    assert Counter(s.action for s in found.trace.steps) == Counter(
        ["Generate", "Activate", "Send", "Subscribe", "Authenticate", "Register", "Receive"]
    )
    states = found.trace.replay(model)
    assert not model.holds(model.prop(7), states[-1])
    assert all(model.holds(model.prop(7), s) for s in states[:-1])


def test_every_action_has_a_replaying_witness(baseline_search: tuple[Model, SearchResult]) -> None:
    model, res = baseline_search
    assert set(res.witnesses) == {a.name for a in model.actions}
    for name, found in res.witnesses.items():
        replay_witness(model, found.trace, name)
        assert found.trace.steps[-1].action == name


def test_non_replaying_traces_are_tool_bugs(baseline_search: tuple[Model, SearchResult]) -> None:
    model, res = baseline_search
    trace = res.violations[7].trace
    no_generate = Trace(
        tuple(s for s in trace.steps if s.action != "Generate"), trace.universe, trace.violates
    )
    with pytest.raises(ToolBug, match="does not replay"):
        replay_violation(model, no_generate, model.prop(7))
    truncated = Trace(trace.steps[:-1], trace.universe, trace.violates)
    with pytest.raises(ToolBug, match="holds in its last state"):
        replay_violation(model, truncated, model.prop(7))


def test_proved_properties_have_no_short_counterexample() -> None:
    model = Model.baseline()
    res = search(model, props=[p for p in model.properties if p.number != 7], depth=5)
    assert res.violations == {}


def _bfs_shortest(model: Model, number: int, universe: Universe, limit: int) -> int | None:
    """Breadth-first search on the executable model (independent of Z3)."""
    prop = model.prop(number)
    frontier = [model.initial(universe)]
    seen = set(frontier)
    for depth in range(1, limit + 1):
        nxt = []
        for state in frontier:
            for act in model.actions:
                for _args, succ in enabled_instances(act, model.profile, state):
                    if not model.holds(prop, succ, state):
                        return depth
                    if succ not in seen:
                        seen.add(succ)
                        nxt.append(succ)
        frontier = nxt
    return None


def test_shortest_length_agrees_with_breadth_first_search() -> None:
    model = Model(load_spec().profile({"mki_in_srtp": "optional"}))
    small = Universe(ue=1, svc=1, tek=2, pkt=1)
    res = search(model, props=[model.prop(3)], depth=5, universe=small)
    assert res.violations[3].depth == _bfs_shortest(model, 3, small, 4) == 3


@pytest.mark.parametrize(
    ("overrides", "number", "length"),
    [
        ({"mki_in_srtp": "optional"}, 3, 3),
        ({"activation": "immediate"}, 4, 7),
        ({"kek_scope": "common"}, 5, 7),
    ],
)
def test_proposal_counterexamples(overrides: dict[str, str], number: int, length: int) -> None:
    model = Model(load_spec().profile(overrides))
    res = search(model, props=[model.prop(number)], depth=length, universe=BMC_UNIVERSE)
    found = res.violations[number]
    assert found.depth == length
    states = found.trace.replay(model)
    assert not model.holds(model.prop(number), states[-1], states[-2])


def _walk_states(model: Model, universe: Universe, seed: int, length: int) -> list[State]:
    rng = random.Random(seed)
    state = model.initial(universe)
    out = [state]
    for _ in range(length):
        options = [
            nxt for act in model.actions for _a, nxt in enabled_instances(act, model.profile, state)
        ]
        if not options:
            break
        state = rng.choice(options)
        out.append(state)
    return out


@pytest.mark.parametrize(
    "overrides",
    [{}, {"kek_scope": "common", "membership_rekey": "both"}],
    ids=["baseline", "variant"],
)
def test_steps_the_search_treats_as_independent_commute(overrides: dict[str, str]) -> None:
    """The partial-order reduction may only order steps that commute: from reachable
    states, every enabled instance of one action of an independent pair followed by the
    other reaches the same state in either order (and stays enabled)."""
    model = Model(load_spec().profile(overrides))
    universe = Universe(ue=2, svc=1, tek=2, pkt=1)
    pairs = _independence(model, Sorts.finite(universe, tag=f"_por_test{len(overrides)}"))
    assert pairs, "no independent pair at all: the reduction would be idle"
    acts = model.actions
    states = [s for seed in range(6) for s in _walk_states(model, universe, seed, 25)]
    checked = 0
    for state in states:
        for i, j in pairs:
            a, b = acts[i], acts[j]
            for args_a, after_a in enabled_instances(a, model.profile, state):
                for args_b, after_b in enabled_instances(b, model.profile, state):
                    ab = model.step(after_a, b.name, args_b)
                    ba = model.step(after_b, a.name, args_a)
                    assert ab is not None and ba is not None and ab == ba, (
                        f"{a.name}{args_a} and {b.name}{args_b} do not commute"
                    )
                    checked += 1
    assert checked > 1000

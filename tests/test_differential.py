"""The concrete and the Z3 reading of every action agree (enabledness and successor), under
option profiles and under the shipped proposals that state behaviour.

Random states are arbitrary tables (reachable or not); for each action the same
arguments are run concretely and symbolically over finite enumeration sorts, and one
solver query per (state, action) asks whether the two readings can differ.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import pytest
import z3

from mbmssec.model.concrete import State, Universe, param_values, step
from mbmssec.model.dsl import Sort
from mbmssec.model.machine import Model
from mbmssec.model.symbolic import (
    Sorts,
    SymbolicState,
    concrete_value,
    transition,
)
from mbmssec.proofs.check import resolve_proposal, shipped_proposals
from mbmssec.spec.loader import load_spec

sys.path.insert(0, str(Path(__file__).parent))

from model_profiles import PROFILES

pytestmark = pytest.mark.slow

U = Universe(ue=2, svc=2, tek=3, pkt=2)

MIN_STATES = 100
"""Random states drawn per profile at least; more are drawn (up to :data:`MAX_STATES`)
until every action has been both enabled and disabled :data:`MIN_CASES` times."""

MAX_STATES = 1000

MIN_CASES = 10
"""How often each action must have been compared on a state that enables it (the guard
and every written entry compared) and on one that does not (the guard compared): the
coverage is counted and asserted, not left to the number of states."""


def random_state(model: Model, rng: random.Random) -> State:
    tables: dict[str, dict[tuple[int, ...], int | bool]] = {}
    for sym in model.vocab.symbols:
        table: dict[tuple[int, ...], int | bool] = {}
        for args in U.tuples(sym.args):
            if sym.result is Sort.BOOL:
                table[args] = rng.random() < 0.5
            elif sym.result is Sort.INT:
                table[args] = rng.randint(0, 4)
            else:
                table[args] = rng.randrange(U.size(sym.result))
        tables[sym.name] = table
    return State(model.vocab, U, tables)


#: The shipped proposals that state behaviour (their changed and added actions are read
#: from the proposal language, model/behaviour.py): checked like the option profiles.
BEHAVIOUR = sorted(p.name for p in shipped_proposals() if p.behaviour is not None)


@pytest.mark.parametrize("profile", sorted(PROFILES) + BEHAVIOUR)
def test_concrete_and_z3_readings_agree(profile: str) -> None:
    if profile in PROFILES:
        model = Model(load_spec().profile(PROFILES[profile]))
    else:
        model = Model(resolve_proposal(profile).profile)
    sorts = Sorts.finite(U, tag=profile)
    pre = SymbolicState(model.vocab, sorts, "pre")
    rng = random.Random(20261128)
    # under a proposal, the actions it changes or adds (the others are read as above)
    actions = [a for a in model.actions if a.origin or profile in PROFILES]
    checked = {a.name: 0 for a in actions}
    enabled = {a.name: 0 for a in actions}
    # The symbolic transition depends only on the action and its arguments (the pre-state
    # is the same symbolic state for every random state), so each is built once.
    transitions: dict[tuple[str, tuple[object, ...]], Any] = {}
    posts: dict[tuple[tuple[str, tuple[object, ...]], str, tuple[int, ...]], Any] = {}
    # The equality terms are built once per (term, value): the values range over a few
    # Booleans, small integers and elements, and building Z3 terms is most of the cost.
    equalities: dict[tuple[Any, ...], Any] = {}

    def pinned(name: str, args: tuple[int, ...], value: Any) -> Any:
        key = ("pre", name, args, value)
        if key not in equalities:
            sym = model.vocab[name]
            za = [concrete_value(sorts, so, x) for so, x in zip(sym.args, args, strict=True)]
            equalities[key] = pre.get(name, *za) == concrete_value(sorts, sym.result, value)
        return equalities[key]

    # An action whose guard Z3 proves true in every state (the attacker's Compromise, a
    # UE's LoseReplayCache: taking them again changes nothing) has no disabled case.
    unguarded = set()
    for act in actions:
        proof = z3.Solver()
        proof.add(z3.Not(transition(act, model.profile, pre, sorts, tag="always").guard))
        if proof.check() == z3.unsat:
            unguarded.add(act.name)

    def covered() -> bool:
        return all(
            enabled[a] >= MIN_CASES and (a in unguarded or checked[a] - enabled[a] >= MIN_CASES)
            for a in checked
        )

    n_states = 0
    while n_states < MIN_STATES or (not covered() and n_states < MAX_STATES):
        n_states += 1
        state = random_state(model, rng)
        solver = z3.Solver()
        solver.add(
            [
                pinned(sym.name, a, state.get(sym.name, *a))
                for sym in model.vocab.symbols
                for a in U.tuples(sym.args)
            ]
        )
        for act in actions:
            args = tuple(rng.choice(list(param_values(p, U))) for p in act.params)
            key = (act.name, args)
            if key not in transitions:
                zargs = tuple(
                    concrete_value(sorts, p.sort, a) for p, a in zip(act.params, args, strict=True)
                )
                transitions[key] = transition(act, model.profile, pre, sorts, zargs)
            sym = transitions[key]
            nxt = step(act, model.profile, state, args)
            agree = [sym.guard == (nxt is not None)]
            if nxt is not None:
                enabled[act.name] += 1
                for name in act.modifies:
                    s = model.vocab[name]
                    for a in U.tuples(s.args):
                        if (key, name, a) not in posts:
                            za = [
                                concrete_value(sorts, so, x)
                                for so, x in zip(s.args, a, strict=True)
                            ]
                            posts[(key, name, a)] = sym.post.get(name, *za)
                        value = nxt.get(name, *a)
                        ekey = ("post", key, name, a, value)
                        if ekey not in equalities:
                            equalities[ekey] = posts[(key, name, a)] == concrete_value(
                                sorts, s.result, value
                            )
                        agree.append(equalities[ekey])
            solver.push()
            solver.add(z3.Not(z3.And(*agree)))
            verdict = solver.check()
            solver.pop()
            assert verdict == z3.unsat, f"{act.name}{args}: readings differ ({verdict})"
            checked[act.name] += 1
    assert all(n == n_states for n in checked.values())
    # the random states must exercise the update, not only the guard, and the guard both
    # ways, for every action
    assert covered(), (n_states, enabled)
    assert unguarded <= {"Compromise", "LoseReplayCache"}, unguarded


def test_the_profiles_make_every_action_exist() -> None:
    """Every action of the model (those only some options create among them) is read
    under at least one of the profiles above, so the comparison covers all of them."""
    from mbmssec.model.actions import ACTIONS

    spec = load_spec()
    seen = {a.name for p in PROFILES.values() for a in Model(spec.profile(p)).actions}
    assert seen == {a.name for a in ACTIONS}

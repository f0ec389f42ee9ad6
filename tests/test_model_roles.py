"""History symbols are records only: no action's guard, and no update of a design or
environment symbol, reads one (model/dsl.py, Symbol.role), so that a faulty action
cannot hide its own evidence from the properties that read the history."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import z3

from mbmssec.model.actions import ACTIONS
from mbmssec.model.dsl import Action, Ops, Param, Sort, Step
from mbmssec.model.machine import Model
from mbmssec.model.symbolic import Sorts, SymbolicState, transition
from mbmssec.model.vocabulary import VOCABULARY
from mbmssec.spec.loader import load_spec

sys.path.insert(0, str(Path(__file__).parent))

from model_profiles import PROFILES as MODEL_PROFILES

HISTORY = {s.name for s in VOCABULARY.symbols if s.role == "history"}
PROFILES = {"baseline": {}, **MODEL_PROFILES}


def _symbols_in(term: Any) -> set[str]:
    out: set[str] = set()
    seen: set[int] = set()
    todo = [term]
    while todo:
        t = todo.pop()
        if not isinstance(t, z3.ExprRef) or t.get_id() in seen:
            continue
        seen.add(t.get_id())
        if z3.is_app(t):
            name = t.decl().name()
            if "@" in name:
                out.add(name.split("@")[0])
            todo.extend(t.children())
    return out


def history_reads(action: Action, profile: Any) -> dict[str, set[str]]:
    """Where an action's guard or an update of a design or environment symbol reads
    history: ``{"guard" or updated symbol: history symbols read}``."""
    sorts = Sorts.unbounded()
    pre = SymbolicState(VOCABULARY, sorts, "roles")
    tr = transition(action, profile, pre, sorts, tag="roles")
    out: dict[str, set[str]] = {}
    bad = _symbols_in(tr.guard) & HISTORY
    if bad:
        out["guard"] = bad
    for name in sorted(action.modifies):
        sym = VOCABULARY[name]
        args = tuple(z3.Const(f"x{i}", sorts.of(a)) for i, a in enumerate(sym.args))
        if sym.role == "history":
            continue  # a record may read other records (and itself)
        read = _symbols_in(tr.post.get(name, *args)) & HISTORY
        if read:
            out[name] = read
    return out


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_no_action_reads_history(profile: str) -> None:
    prof = load_spec().profile(PROFILES[profile])
    for act in Model(prof).actions:
        assert history_reads(act, prof) == {}, act.name


def test_the_check_sees_a_read_of_history() -> None:
    """Not vacuous: an action whose guard reads a history symbol is reported."""

    def peek(ops: Ops, st: Step, prof: Any, u: Any, p: Any) -> None:
        ops.require(st.get("heard", u, p))
        st.set("holds", (u, st.get("pkt_tek", p)), True)

    planted = Action(
        "Peek",
        (Param("u", Sort.UE), Param("p", Sort.PKT)),
        frozenset({"holds"}),
        (),
        "UE",
        "",
        peek,
    )
    assert history_reads(planted, load_spec().baseline()) == {"guard": {"heard"}}


def test_every_history_symbol_is_recorded_by_some_action() -> None:
    written = {n for a in ACTIONS for n in a.modifies}
    assert written >= HISTORY

"""The proposal language (model/lang.py), behaviour in proposals (model/behaviour.py) and
its printing reading of the model (model/show.py, ``mbmssec model show``)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import z3

from mbmssec.cli import main
from mbmssec.model import lang
from mbmssec.model.behaviour import load_behaviour
from mbmssec.model.concrete import ConcreteOps, Universe
from mbmssec.model.dsl import Action
from mbmssec.model.lang import LangError
from mbmssec.model.machine import Model
from mbmssec.model.show import show
from mbmssec.model.symbolic import Sorts, SymbolicState, Z3Ops, param_consts, transition
from mbmssec.proofs.check import load_proposal, resolve_proposal
from mbmssec.proofs.induction import as_z3
from mbmssec.spec.loader import Profile, SpecError, load_spec

HEAD = """title = "t"
rationale = "r"
clauses = ["6.2.3.3/UNKNOWN-MKI"]
"""


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "p.toml"
    path.write_text(HEAD + body)
    return path


# -- parsing and printing -------------------------------------------------------------------

EXPRESSIONS = [
    "holds(u, t) and not covered(u) or clock + 1 > fetch_time(u, s)",
    "forall v: UE, y: TEK. holds(v, y) implies delivered(v, y)",
    "exists p: PKT. sent(p) and pkt_tek(p) == active(s)",
    "if has_next(s) then t == next(s) else t == active(s)",
    "(next_mki(s) + 1) mod 2 == 0 and 3 * ctr(u) - 2 >= ue_ctr(u) div 4",
    "a implies b implies c",
    "not (clock < 2) and -clock <= 0",
    "holds'(u, t) != holds(u, t)",
]


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_printing_parses_back_to_the_same_tree(text: str) -> None:
    node = lang.parse_expr(text)
    assert lang.parse_expr(lang.render(node)) == node
    assert lang.parse_expr("\n".join(lang.pretty(node, width=20))) == node


def test_precedence() -> None:
    node = lang.parse_expr("a or b and c implies d")
    assert node == lang.parse_expr("(a or (b and c)) implies d")
    assert lang.parse_expr("x + 1 * y") == lang.parse_expr("x + (1 * y)")
    assert lang.parse_expr("a and forall t: TEK. b or c") == lang.parse_expr(
        "a and (forall t: TEK. (b or c))"
    )


# -- errors name the file, the field and the position ----------------------------------

ERRORS = [
    # (guard text, column of the error, words of the message)
    ("covered(u) and holdz(u, t)", 16, "unknown name 'holdz' (did you mean 'holds'?)"),
    ("holds(u)", 1, "holds takes 2 argument(s), not 1"),
    ("holds(u, s)", 10, "argument 2 of holds must be TEK, but this is SVC"),
    ("covered(u) and clock", 16, "the right operand of 'and' must be Bool, but this is Int"),
    ("covered(u) and (clock > 1", 26, "expected ')'"),
    ("clock = 1", 7, "'=' alone: write == to compare"),
    ("0 < clock < 3", 11, "comparisons do not chain"),
    ("clock * clock > 1", 7, "'*' needs a constant on one side"),
    ("clock mod ctr(u) == 0", 7, "'mod' needs a positive constant"),
    ("covered'(u)", 1, "only a step property may do"),
    ("heard(u, p0) or true", 1, "heard is history"),
    ("s == u", 3, "'==' compares a SVC with a UE"),
    ("forall t: TEK. mki(t)", 16, "the body of 'forall' must be Bool"),
    ("covered(u) $", 12, "unexpected character '$'"),
]


@pytest.mark.parametrize(("guard", "column", "words"), ERRORS, ids=[e[2][:30] for e in ERRORS])
def test_bad_expressions_name_file_field_and_position(
    tmp_path: Path, guard: str, column: int, words: str
) -> None:
    path = _write(
        tmp_path, f'[[change]]\naction = "Register"\nguards = ["covered(u)", {json.dumps(guard)}]\n'
    )
    with pytest.raises(LangError) as err:
        load_proposal(path)
    e = err.value
    assert e.where == "change.Register.guards[1]"
    assert e.column == column, str(e)
    assert words in str(e)
    assert str(path) in str(e) and f"column {column}" in str(e)
    # the line is shown with a caret under the position
    assert str(e).splitlines()[-1] == "    " + " " * (column - 1) + "^"


def test_errors_in_updates_actions_states_and_properties(tmp_path: Path) -> None:
    cases = [
        (
            '[[change]]\naction = "Generate"\nreplace = ["holds(u, t) := true"]\n',
            "change.Generate.replace[0]",
            "Generate does not update holds",
        ),
        (
            '[[change]]\naction = "Generate"\nupdates = ["forall y. mki(t) := 1"]\n',
            "change.Generate.updates[0]",
            "y is bound by 'forall' but is not an argument of mki",
        ),
        (
            '[[change]]\naction = "Generate"\nupdates = ["mki(t) := true"]\n',
            "change.Generate.updates[0]",
            "mki holds a Int, but the value is Bool",
        ),
        (
            '[[change]]\naction = "Regster"\ndisable = true\n',
            "change[0].action",
            "unknown action 'Regster'",
        ),
        (
            '[[action]]\nname = "Poke"\nparams = ["u: UE", "f: Int"]\nactor = "UE"\n'
            'clauses = ["6.2.2/STEP4"]\ndoc = "d"\nupdates = ["covered(u) := true"]\n',
            "action.Poke.params[1]",
            "an Int parameter needs a range",
        ),
        (
            '[[action]]\nname = "Poke"\nparams = ["u: UE"]\nactor = "operator"\n'
            'clauses = ["6.2.2/STEP4"]\ndoc = "d"\nupdates = ["covered(u) := true"]\n',
            "action.Poke.actor",
            "unknown actor 'operator'",
        ),
        (
            '[[state]]\nname = "seen"\nsorts = ["UE", "KEY"]\ntype = "Bool"\ndoc = "d"\n',
            "state.seen.sorts[1]",
            "unknown sort 'KEY'",
        ),
        (
            '[[state]]\nname = "holds"\nsorts = ["UE"]\ntype = "Bool"\ndoc = "d"\n',
            "state.holds.name",
            "already has a state of this name",
        ),
        (
            '[[property]]\nname = "p"\ntitle = "t"\nkind = "invariant"\ndoc = "d"\n'
            'expect = "holds"\nformula = "forall u: UE. holds(u, active(s))"\n',
            "property.p.formula",
            "unknown name 's'",
        ),
        (
            '[[property]]\nname = "p"\ntitle = "t"\nkind = "response"\ndoc = "d"\n'
            'expect = "holds"\npremise = "covered(u)"\ngoal = "true"\n'
            'plan = ["Register(u, s)"]\n',
            "property.p.plan[0]",
            "Register takes 3 argument(s)",
        ),
    ]
    for body, where, words in cases:
        with pytest.raises(SpecError) as err:
            load_proposal(_write(tmp_path, body))
        assert err.value.where == where, (body, str(err.value))
        assert words in str(err.value), str(err.value)


def test_cli_exits_2_naming_file_field_and_position(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path, '[[change]]\naction = "Register"\nguards = ["covered(u) and holdz(u)"]\n'
    )
    for argv in (
        ["check", str(path), "--quiet"],
        ["explore", "--proposal", str(path)],
        ["model", "show", "--proposal", str(path)],
        ["mutate", "--proposal", str(path), "--list"],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert f"{path}: change.Register.guards[0]: column 16: unknown name 'holdz'" in err


# -- behaviour read into the modelling language -------------------------------------------


def _transitions_agree(model_a: Model, a: Action, model_b: Model, b: Action, prof: Profile) -> None:
    """Z3: the two actions have the same guard and, when it holds, write the same values
    (every state, every population size)."""
    sorts = Sorts.unbounded("_same")
    ops = Z3Ops(sorts)
    pre = SymbolicState(model_b.vocab, sorts, "same")
    args = param_consts(a, sorts, "same")
    ta = transition(a, prof, pre, sorts, params=args)
    tb = transition(b, model_b.profile, pre, sorts, params=args)
    same = []
    for sym in model_b.vocab.symbols:
        if sym.name not in a.modifies | b.modifies:
            continue
        if not sym.args:
            same.append(as_z3(ta.post.get(sym.name)) == as_z3(tb.post.get(sym.name)))
            continue
        same.append(
            ops.forall_n(
                sym.args,
                lambda *xs, n=sym.name: as_z3(ta.post.get(n, *xs)) == as_z3(tb.post.get(n, *xs)),
            )
        )
    solver = z3.Solver()
    solver.add(z3.Not(z3.And(ta.guard == tb.guard, z3.Implies(ta.guard, z3.And(*same)))))
    assert solver.check() == z3.unsat, a.name


@pytest.mark.parametrize(
    "overrides",
    [{}, {"membership_rekey": "both", "replay_protection": "none", "kek_scope": "common"}],
    ids=["baseline", "variants"],
)
def test_every_action_printed_reads_back_to_the_same_steps(overrides: dict[str, str]) -> None:
    """The printing reading is faithful: each action of the model, printed in the
    proposal language and read back as a proposal's new action, takes the same steps
    (proved by Z3 for every state), so what ``model show`` prints is what the model does."""
    spec = load_spec()
    prof = spec.profile(overrides)
    model = Model(prof)
    tables = []
    for act in model.actions:
        shown = show(act, prof, model.vocab)
        tables.append(
            {
                "name": f"{act.name}Printed",
                "params": [lang.render_param(p) for p in act.params],
                "actor": act.actor,
                "clauses": list(act.clauses),
                "doc": act.doc,
                "guards": ["\n".join(lang.pretty(g, 40)) for g in shown.guards],
                "updates": ["\n".join(lang.pretty_update(u, 40)) for u in shown.updates],
            }
        )
    behaviour = load_behaviour(
        {"action": tables},
        "printed",
        "printed",
        vocab=model.vocab,
        actions=model.all_actions,
        properties=model.properties,
        clause_ids=frozenset(spec.clauses),
    )
    printed = Model(prof.with_behaviour(behaviour))
    for act in model.actions:
        _transitions_agree(model, act, printed, printed.action(f"{act.name}Printed"), prof)


def test_applying_a_behaviour_twice_changes_nothing() -> None:
    proposal = resolve_proposal("push_next_tek")
    model = Model(proposal.profile)
    again = dataclasses.replace(model)
    assert [a.name for a in again.all_actions] == [a.name for a in model.all_actions]
    assert again.vocab.names() == model.vocab.names()
    assert [p.number for p in again.properties] == [p.number for p in model.properties]
    assert "pushed" in model.vocab.names() and "Push" in [a.name for a in model.actions]
    assert model.action("Push").origin == proposal.name
    assert model.action("Register").origin == ""


def test_a_change_adds_guards_replaces_and_adds_updates(tmp_path: Path) -> None:
    """Run on concrete states: an added guard disables, a replaced update writes only the
    proposal's value, an added update of some entries keeps the action's own writes of
    the others."""
    path = _write(
        tmp_path,
        '[[change]]\naction = "Generate"\nguards = ["next_mki(s) < 1"]\n'
        'replace = ["next_mki(s) := next_mki(s) + 5"]\n'
        'updates = ["forall y: TEK. generated(y) := y == t or generated(y)", "mki(t) := 7"]\n'
        '[[change]]\naction = "Tick"\ndisable = true\n',
    )
    model = Model(load_proposal(path).profile)
    assert "Tick" not in [a.name for a in model.actions]
    s0 = model.initial(Universe(ue=1, svc=1, tek=2, pkt=1))
    s1 = model.step(s0, "Generate", (0, 0))
    assert s1 is not None
    assert s1.get("next_mki", 0) == 5 and s1.get("mki", 0) == 7
    assert s1.get("generated", 0) and not s1.get("generated", 1)
    assert s1.get("has_next", 0) and s1.get("next", 0) == 0  # the action's own updates
    s2 = model.step(s1, "Activate", (0,))
    assert s2 is not None
    assert model.step(s2, "Generate", (0, 1)) is None  # the added guard


def test_proposal_properties_read_concretely() -> None:
    proposal = resolve_proposal("ue_clears_keys_out_of_coverage")
    model = Model(proposal.profile)
    prop = model.prop(15)
    assert prop.origin == proposal.name and prop.kind == "invariant"
    s0 = model.initial(Universe(ue=2, svc=1, tek=2, pkt=1))
    ops = ConcreteOps(s0.universe)
    assert prop.body is not None and prop.body(ops, s0)
    held = s0.with_values({"holds": {(1, 0): True}})
    assert prop.body(ops, held)
    assert not prop.body(ops, held.with_values({"covered": {(1,): False}}))
    # the proposal's change keeps it: losing coverage deletes the keys
    lost = model.step(held, "LoseCoverage", (1,))
    assert lost is not None and prop.body(ops, lost) and not lost.get("holds", 1, 0)


def test_model_show_prints_actions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "show", "Register"]) == 0
    out = capsys.readouterr().out
    assert "action Register(u: UE, s: SVC, f: Int 1..) by UE" in out
    assert "  guard   subscribed(u, s)" in out
    assert "fetch_time(u, s) := clock + f" in out
    assert "``" not in out and ":mod:" not in out
    assert max(len(x) for x in out.splitlines()) <= 100
    assert main(["model", "show", "Refetch", "--proposal", "refetch_skips_authorisation"]) == 0
    out = capsys.readouterr().out
    assert "action Refetch(u: UE, s: SVC, f: Int 1..) by UE  (from proposal" in out
    assert "guard   saw_unknown(u, s)" in out
    assert "forall t: TEK. holds(u, t) :=" in out
    assert main(["model", "show", "Regster"]) == 2
    assert "unknown action 'Regster'" in capsys.readouterr().err
    assert main(["model", "show", "--state"]) == 0
    assert "holds(UE, TEK) : Bool = false" in capsys.readouterr().out


@pytest.mark.slow
def test_added_properties_of_every_kind_are_proved_by_the_checker(tmp_path: Path) -> None:
    """A step, a response and a liveness property (with its certificate) written in the
    proposal language go through the inductive proofs like the model's own; an invariant
    that a reachable state violates is not proved."""
    from mbmssec.proofs.induction import prove

    path = _write(
        tmp_path,
        """
[[property]]
name = "clock_moves_by_one"
title = "The clock moves by at most one"
kind = "step"
doc = "d"
formula = "clock' <= clock + 1 and clock' >= clock"
expect = "holds"

[[property]]
name = "can_authenticate"
title = "A UE in coverage can authenticate at once"
kind = "response"
doc = "d"
premise = "covered(u)"
goal = "authenticated(u)"
plan = ["Authenticate(u)"]
expect = "holds"

[[property]]
name = "eventually_authenticated"
title = "A UE in coverage eventually authenticates"
kind = "liveness"
doc = "d"
premise = "covered(u) and not authenticated(u)"
goal = "authenticated(u) or not covered(u)"
pending = "covered(u) and not authenticated(u)"
ready = "true"
enabler = "Authenticate(u)"
helpful = "Authenticate(u)"
expect = "holds"

[[property]]
name = "nobody_authenticated"
title = "No UE is authenticated"
kind = "invariant"
doc = "d"
formula = "forall u: UE. not authenticated(u)"
expect = "violated"
""",
    )
    proposal = load_proposal(path)
    model = Model(proposal.profile)
    assert proposal.added == {15: "holds", 16: "holds", 17: "holds", 18: "violated"}
    ind = prove(model)
    assert [n for n in (15, 16, 17, 18) if ind.property_proved(model.prop(n))] == [15, 16, 17]
    assert model.prop(17).kind == "liveness" and model.prop(16).bound == 1

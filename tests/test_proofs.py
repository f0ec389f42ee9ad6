"""Inductive proofs (proofs/induction.py): what is proved, what is not, and why."""

from __future__ import annotations

from typing import Any

import pytest
import z3

from mbmssec.model.dsl import Ops, Reader, Sort
from mbmssec.model.machine import Model
from mbmssec.proofs import induction
from mbmssec.proofs.check import Report
from mbmssec.proofs.induction import InductionResult, prop_key, prove
from mbmssec.proofs.lemmas import LEMMAS, Lemma, lemmas_for

pytestmark = pytest.mark.xdist_group("checker")


@pytest.fixture(scope="module")
def baseline(baseline_report: Report) -> tuple[Model, InductionResult]:
    """The baseline model and its induction result (shared with the check's report)."""
    return Model.baseline(), baseline_report.induction


def test_baseline_proves_all_but_backward_secrecy(baseline: tuple[Model, InductionResult]) -> None:
    model, res = baseline
    proved = {p.number for p in model.properties if res.property_proved(p)}
    assert proved == {1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14}
    assert res.initial_satisfiable
    assert "Receive" in res.dropped[prop_key(model.prop(7))]


def test_every_baseline_lemma_is_proved_inductive(baseline: tuple[Model, InductionResult]) -> None:
    model, res = baseline
    names = {lem.name for lem in lemmas_for(model.profile)}
    assert names <= set(res.surviving)
    # each surviving conjunct has a query per action (solver or frame) and a base case
    for name in names:
        actions = {q.action for q in res.queries if q.conjunct == name}
        assert actions == {"init"} | {a.name for a in model.actions}
        assert all(q.verdict in ("proved", "frame") for q in res.queries if q.conjunct == name)


def test_lemmas_used_are_reported(baseline: tuple[Model, InductionResult]) -> None:
    model, res = baseline
    used6 = res.lemmas_used(model.prop(6))
    assert "revoked_unsubscribed" in used6
    assert "fetch_time_ahead" in res.lemmas_used(model.prop(4))
    assert set(used6) <= set(res.surviving)


def test_without_a_needed_lemma_forward_secrecy_is_not_proved() -> None:
    model = Model.baseline()
    lems = [lem for lem in lemmas_for(model.profile) if lem.name != "revoked_unsubscribed"]
    res = prove(model, lemmas=lems)
    assert not res.property_proved(model.prop(6))
    assert res.property_proved(model.prop(1))


def _nobody_holds(ops: Ops, st: Reader, prof: Any) -> Any:
    return ops.forall(
        Sort.UE, lambda u: ops.forall(Sort.TEK, lambda t: ops.not_(st.get("holds", u, t)))
    )


def _clock_is_one(ops: Ops, st: Reader, prof: Any) -> Any:
    return st.get("clock") == 1


def test_false_lemmas_are_dropped_with_a_counterexample_to_induction() -> None:
    model = Model.baseline()
    lems = (
        *lemmas_for(model.profile),
        Lemma("nobody_holds", "false", _nobody_holds),
        Lemma("clock_is_one", "false initially", _clock_is_one),
    )
    res = prove(model, lemmas=lems)
    assert "nobody_holds" not in res.surviving
    assert res.dropped["nobody_holds"].startswith("not preserved by ")
    text = res.ctis["nobody_holds"].render()
    assert text.startswith("invariant nobody_holds is not preserved by action ")
    assert "holds(" in text
    assert res.dropped["clock_is_one"] == "failed in the initial state"
    # the real properties are unaffected by the dropped candidates
    assert res.property_proved(model.prop(6))


def test_unknown_answers_never_count_as_proved(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(z3.Solver, "check", lambda self, *a: z3.unknown)
    monkeypatch.setattr(z3.Solver, "reason_unknown", lambda self: "timeout")
    model = Model.baseline()
    with pytest.raises(induction.ProofError):
        prove(model)  # the initial-state check itself is unknown: no proof at all


def test_unknown_in_the_inductive_step_drops_the_conjunct(monkeypatch: pytest.MonkeyPatch) -> None:
    real = z3.Solver.check

    def check(self: z3.Solver, *assumptions: Any) -> Any:
        return z3.unknown if assumptions else real(self, *assumptions)

    monkeypatch.setattr(z3.Solver, "check", check)
    model = Model.baseline()
    res = prove(model)
    for p in model.properties:
        if p.kind != "response":
            assert not res.property_proved(p), p.number
    # the response property's plan works from any state satisfying its premise, so its
    # query needs no lemma (and has no assumption that the patch would turn unknown)
    assert res.lemmas_used(model.prop(12)) == []
    assert any("unknown" in why for why in res.dropped.values())


def test_profile_specific_lemmas() -> None:
    names = {lem.name for lem in LEMMAS}
    assert "joiner_keys_new" in names
    join = Model(Model.baseline().profile._spec.profile({"membership_rekey": "join"}))
    res = prove(join)
    assert res.property_proved(join.prop(7))
    assert "joiner_keys_new" in res.lemmas_used(join.prop(7))

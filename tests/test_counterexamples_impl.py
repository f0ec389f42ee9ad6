"""Counterexamples on real code: each shipped proposal's counterexample replayed on the
BM-SC and UE cores (real Digest AKA, MIKEY and SRTP bytes), showing the violation.

For every shipped proposal and every property it is expected to break (and for the
baseline's own property 7), the bounded search's shortest counterexample is replayed
faithfully on the implementation (:func:`mbmssec.refinement.replay.replay_counterexample`):
for a safety property, the very counterexample ``mbmssec check`` reports (the tests'
shared checker results, so the module runs on their pytest-xdist worker); for the
liveness property, the prefix of the shortest fair lasso that starts as the BM-SC's
schedule does (:func:`~mbmssec.refinement.replay.shortest_counterexample`).
Where the BM-SC's time-driven key schedule cannot produce the model's order, the
shortest counterexample among the orders it can produce
(:func:`~mbmssec.refinement.replay.schedulable_counterexample`) is replayed instead.  The
same concrete operations are then run under a profile that forbids the violation (the
baseline; for the baseline's property 7, re-keying on join) and must not show it.

A proposal that states behaviour of its own (``[[action]]``, ``[[change]]``, ...) changes
the model, not an option the implementation implements, so its counterexamples stay on
the model (``mbmssec check``); every other proposal's are replayed here.  Nothing else
is skipped.  Two counterexamples of the model cannot happen on the
implementation as such, and the test proves why on the implementation:

* a replayed MIKEY delivery under ``second_service_auth=reauthenticate``: the UE keeps
  no KEK between registrations, so it can verify no replayed answer whatever the replay
  protection; the counterexample is replayed (with its bytes) under
  ``second_service_auth=authorise_only``, where the UE keeps its KEK, and the invariant
  is checked on every recorded answer under the proposal's own profile;
* an attacker step that draws on key material the implementation never gave the UE
  (with ``kek_scope=common`` the model lets any UE know the common KEK, the BM-SC sends
  it only in answers to a registration):
  :func:`~mbmssec.refinement.replay.unrealisable_attack` checks that the UE received no
  answer and holds no KEK, and that every answer opens only with its recipient's KEK.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import CheckerResults

from mbmssec.impl.service.ue import UeError
from mbmssec.model.concrete import Universe
from mbmssec.model.machine import Model
from mbmssec.model.trace import Trace
from mbmssec.proofs.check import shipped_proposals
from mbmssec.refinement.replay import (
    ReplayResult,
    Unfaithful,
    evidence,
    execute,
    plan,
    replay_counterexample,
    schedulable_counterexample,
    shortest_counterexample,
    unrealisable_attack,
)
from mbmssec.spec.loader import Profile, load_spec

SEARCH_UNIVERSE = Universe(ue=1, svc=1, tek=2, pkt=1)
"""One UE, two TEKs, one packet: enough for every expected violation, and fast."""

TWO_UES = Universe(ue=2, svc=1, tek=2, pkt=1)
"""With a common KEK, what one UE holds is used against another UE: two UEs."""

SCHEDULE_DEPTH = 14
"""How deep a counterexample whose order the BM-SC's schedule can produce is searched
(over steps of the kinds the shortest one uses): the schedule generates the next TEK
with every activation, so a UE that must miss a TEK needs one more activation and
generation than the model's shortest counterexample (fetch_time_as_seq against
property 10: 12 steps, schedulable in 14)."""

BOUNDED_FORM = 12
"""The bounded form of the liveness property 9, which a finite run can violate."""

SPEC = load_spec()
BASELINE = SPEC.baseline()
REKEY_ON_JOIN = SPEC.profile({"membership_rekey": "join"})


def cases() -> list[Any]:
    out = [pytest.param("baseline", BASELINE, 7, REKEY_ON_JOIN, id="baseline-P7")]
    for prop in shipped_proposals(SPEC):
        if prop.behaviour is not None:
            continue  # see the module docstring
        for n in prop.expect_broken:
            out.append(
                pytest.param(
                    prop.name,
                    prop.profile,
                    n,
                    BASELINE,
                    id=f"{prop.name}-P{n}",
                )
            )
    return out


def universe_for(profile: Profile) -> Universe:
    return TWO_UES if profile["kek_scope"] == "common" else SEARCH_UNIVERSE


def keeps_kek(profile: Profile) -> Profile:
    """The profile with the UE keeping its KEK between registrations."""
    return SPEC.profile({**profile.overrides, "second_service_auth": "authorise_only"})


def replayed(
    profile: Profile, number: int, shortest: Trace | None = None
) -> tuple[Trace, ReplayResult | list[str], str]:
    """The counterexample replayed on the implementation and which one it is, or, for
    an attacker step the implementation cannot produce, the invariants that show why
    (``shortest``: the shortest counterexample under ``profile``, if already found)."""
    model = Model(profile)
    universe = universe_for(profile)
    trace = shortest or shortest_counterexample(model, number, universe)
    assert trace is not None, f"the model finds no counterexample to P{number}"
    try:
        return trace, replay_counterexample(trace, profile), "shortest"
    except Unfaithful as first:
        for n, st in enumerate(trace.steps, start=1):
            if model.action(st.action).actor == "attacker":
                proof = unrealisable_attack(trace, profile, n)
                if proof:
                    return trace, [f"model step {n} ({st.action}): {p}" for p in proof], "attack"
        schedule = Universe(ue=universe.ue, svc=1, tek=3, pkt=1)
        alt = schedulable_counterexample(model, number, schedule, depth=SCHEDULE_DEPTH, like=trace)
        if alt is None:
            pytest.fail(
                f"the shortest counterexample cannot be replayed ({first}) and no "
                f"counterexample within {SCHEDULE_DEPTH} steps (over {schedule}) has an "
                "order the BM-SC's schedule can produce"
            )
        try:
            return alt, replay_counterexample(alt, profile), "schedulable"
        except Unfaithful as second:
            pytest.fail(
                f"the shortest counterexample cannot be replayed ({first}); nor the "
                f"shortest schedulable one ({second})"
            )


def checker_counterexample(results: CheckerResults, name: str, number: int) -> Trace | None:
    """The counterexample ``mbmssec check`` reports for property ``number`` of the shipped
    proposal ``name`` (or of the baseline)."""
    if name == "baseline":
        report = results.baseline
    else:
        report = next(
            c.report for c in results.comparisons if c.proposal and c.proposal.name == name
        )
    return report.verdicts[number].trace


@pytest.mark.slow  # the shared checker results are the full suite's (tests/conftest.py)
@pytest.mark.xdist_group("checker")
@pytest.mark.parametrize("name,profile,number,forbidding", cases())
def test_counterexample_replays_on_the_implementation(
    name: str,
    profile: Profile,
    number: int,
    forbidding: Profile,
    checker_results: CheckerResults,
) -> None:
    model = Model(profile)
    if model.prop(number).kind == "liveness":
        shortest = shortest_counterexample(model, number, universe_for(profile))
    else:
        shortest = checker_counterexample(checker_results, name, number)
    assert shortest is not None
    dropped_kek = profile["second_service_auth"] == "reauthenticate" and any(
        st.action == "Replay" for st in shortest.steps
    )
    if dropped_kek:
        # The UE drops its KEK after each registration: shown below on the proposal's
        # profile; the counterexample is replayed where the UE keeps its KEK.
        _assert_replays_need_a_kept_kek(shortest, profile)
        profile = keeps_kek(profile)
        model = Model(profile)
    # the shortest counterexample found above is reused unless the profile changed
    trace, res, which = replayed(profile, number, None if dropped_kek else shortest)
    if isinstance(res, list):  # an attacker step with no concrete counterpart, and why
        assert res and which == "attack"
        return
    # the model following the concrete run step by step violates the property too; for
    # the liveness property (no finite run violates it) the lasso's prefix violates its
    # bounded form, and the evidence shows the UE's recovery attempt failing
    judged = BOUNDED_FORM if model.prop(number).kind == "liveness" else number
    assert judged in res.model_violations(), (which, trace.render_text(model))
    shown = evidence(number, res)
    if not shown and number == BOUNDED_FORM and _lost(trace):
        # The model's UE whose delivery was lost waits for the fetch time of an answer it
        # never received; the real UE, having no answer, retries at once (the recovery
        # probe in evidence() re-registered it).  The counterexample is not realisable
        # on the implementation, and the test checks why: every UE the run left
        # without the active TEK holds it after that one retry.
        ls = res.ls
        tek = ls.core.active_tek(ls.service)
        assert tek is not None
        for i, ue in enumerate(ls.ues):
            st = ue.services.get(ls.service)
            if st is not None and ls.store.get_subscription(ls.names[i], ls.service):
                assert tek.mki in st.keys, (i, sorted(st.keys), res.ls.steps)
        assert any(s.startswith("register(") for s in ls.steps[-1:]), ls.steps
        return
    assert shown, (which, trace.render_text(model), res.ls.steps)
    # the same concrete operations under a profile forbidding the violation
    other = execute(plan(trace, model), forbidding)
    # (under the baseline the BM-SC holds back an activation a late fetch still awaits)
    assert all("Activate" in s for s in other.skipped), other.skipped
    assert judged not in other.model_violations()
    assert evidence(number, other) == [], other.ls.steps


def _lost(trace: Trace) -> bool:
    return any(st.action == "DeliveryLost" for st in trace.steps)


def _assert_replays_need_a_kept_kek(trace: Trace, profile: Profile) -> None:
    """The trace's operations but the replays, on the implementation under ``profile``;
    then every answer the BM-SC sent, replayed to every UE, is refused for want of a
    KEK and installs nothing (the UE keeps no KEK between registrations)."""
    model = Model(profile)
    res = execute([op for op in plan(trace, model) if op.kind != "replay"], profile)
    assert res.answers
    for ue in res.ls.ues:
        assert ue.auth is None
        st = ue.services.get(res.ls.service)
        held = sorted(st.keys) if st is not None else []
        for _v, body in res.answers:
            with pytest.raises(UeError) as info:
                ue.accept_delivery(res.ls.service, body, res.ls.now, "replay")
            assert info.value.code == "no_kek"
        assert (sorted(st.keys) if st is not None else []) == held


def test_shortest_p7_counterexample_is_out_of_the_schedule() -> None:
    """The model's shortest P7 trace registers before a next TEK exists; the BM-SC
    creates every service with the next TEK generated, so the faithful replay refuses
    it at that step (and the schedulable one replays)."""
    model = Model(BASELINE)
    trace = shortest_counterexample(model, 7, SEARCH_UNIVERSE)
    assert trace is not None
    with pytest.raises(Unfaithful) as info:
        replay_counterexample(trace, BASELINE)
    assert trace.steps[info.value.step - 1].action == "Register"
    alt = schedulable_counterexample(model, 7, Universe(ue=1, svc=1, tek=3, pkt=1))
    assert alt is not None
    res = replay_counterexample(alt, BASELINE)
    assert evidence(7, res)

"""Lockstep refinement: the sans-I/O BM-SC and UE cores against the model, step by step.

A Hypothesis state machine applies concrete operations (subscribe, revoke, registration
through real Digest AKA and MIKEY bytes, a lost delivery, time passing with the BM-SC's
timer, SRTP packets under the active TEK's MKI, reception through the UE's SRTP
receiver, coverage loss and regain, replay of a captured MIKEY delivery, a BM-SC
restart); each step's events are replayed on the model and the abstraction of the
concrete state must equal the model state on the observed symbols
(:mod:`mbmssec.refinement.abstraction`).  It runs for the baseline and every shipped proposal
the implementation can be configured for (``kek_scope=common`` and
``tek_protection=tls`` are refused by the implementation and skipped).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from mbmssec.impl.service.bmsc import check_profile
from mbmssec.model.concrete import Universe
from mbmssec.proofs.check import shipped_proposals
from mbmssec.refinement.abstraction import Lockstep
from mbmssec.spec.loader import Profile, load_spec

pytestmark = pytest.mark.slow

UNIVERSE = Universe(ue=3, svc=1, tek=7, pkt=6)
STEPS = 50
# 200 examples of up to 50 steps for every profile (MBMSSEC_REFINEMENT_EXAMPLES lowers
# or raises the count for the non-baseline profiles when iterating locally).
BASELINE_EXAMPLES = 200
EXAMPLES = int(os.environ.get("MBMSSEC_REFINEMENT_EXAMPLES", "200"))


ATTACKER_ONLY = frozenset({"kek_scope", "tek_protection"})
"""Options the model reads only in attacker actions, which the lockstep driver does not
run: under them the honest run is the baseline's step for step (their message formats
are checked by the core tests, the end-to-end server test and the counterexample
replays), so their profiles would repeat the baseline's search."""


def implementable_profiles() -> list[tuple[str, Profile]]:
    """The baseline and every shipped proposal that changes what honest parties do."""
    out = [("baseline", load_spec().baseline())]
    for prop in shipped_proposals():
        check_profile(prop.profile)  # every option value is implemented
        if set(prop.profile.overrides) <= ATTACKER_ONLY:
            continue
        out.append((prop.name, prop.profile))
    return out


def machine_for(profile: Profile, **variant: Any) -> type[RuleBasedStateMachine]:
    """A lockstep state machine class for one profile (and optionally a broken variant)."""

    class Refinement(RuleBasedStateMachine):
        ls: Lockstep

        @initialize(seed=st.integers(0, 2**16))
        def setup(self, seed: int) -> None:
            self.ls = Lockstep(profile, UNIVERSE, seed=seed, **variant)

        ue = st.integers(0, UNIVERSE.ue - 1)

        @rule(i=ue)
        def subscribe(self, i: int) -> None:
            self.ls.subscribe(i)

        @precondition(lambda self: self.ls.teks_used() < UNIVERSE.tek)
        @rule(i=ue)
        def revoke(self, i: int) -> None:
            self.ls.revoke(i)

        @rule(i=ue, lost=st.sampled_from([False, False, False, True]))
        def register(self, i: int, lost: bool) -> None:
            if self.ls.may_register(i):
                self.ls.register(i, lost)

        @precondition(lambda self: self.ls.teks_used() < UNIVERSE.tek)
        @rule(dt=st.sampled_from([0.1, 0.3, 0.6, 1.0]))
        def advance(self, dt: float) -> None:
            self.ls.advance(dt)

        @precondition(lambda self: len(self.ls.wire) < UNIVERSE.pkt)
        @rule()
        def send(self) -> None:
            self.ls.send()

        @precondition(lambda self: bool(self.ls.wire))
        @rule(i=ue, data=st.data())
        def receive(self, i: int, data: st.DataObject) -> None:
            if self.ls.record.covered.get(self.ls.names[i], True):
                p = data.draw(st.integers(0, len(self.ls.wire) - 1), label="packet")
                self.ls.receive(i, p)

        @rule(i=ue)
        def coverage(self, i: int) -> None:
            if self.ls.record.covered.get(self.ls.names[i], True):
                self.ls.lose_coverage(i)
            else:
                self.ls.regain_coverage(i)

        @precondition(lambda self: bool(self.ls.captured))
        @rule(data=st.data())
        def replay(self, data: st.DataObject) -> None:
            k = data.draw(st.integers(0, len(self.ls.captured) - 1), label="delivery")
            if self.ls.record.covered.get(self.ls.names[self.ls.captured[k][0]], True):
                self.ls.replay(k)

        @rule()
        def restart(self) -> None:
            self.ls.restart()

    return Refinement


def run_machine(profile: Profile, examples: int, **variant: Any) -> None:
    machine = machine_for(profile, **variant)
    machine.TestCase.settings = settings(
        max_examples=examples,
        stateful_step_count=STEPS,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    machine.TestCase().runTest()


PROFILES = implementable_profiles()


def test_skipped_profiles_are_the_unimplementable_ones() -> None:
    names = {n for n, _ in PROFILES}
    skipped = {p.name for p in shipped_proposals()} - names
    assert skipped == {"kek_common", "tek_over_tls"}


@pytest.mark.parametrize("name,profile", PROFILES, ids=[n for n, _ in PROFILES])
def test_lockstep_refinement(name: str, profile: Profile) -> None:
    run_machine(profile, BASELINE_EXAMPLES if name == "baseline" else EXAMPLES)

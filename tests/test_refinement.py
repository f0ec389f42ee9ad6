"""Lockstep refinement: the sans-I/O BM-SC and UE cores against the model, step by step.

A Hypothesis state machine applies concrete operations (subscribe, revoke, registration
through real Digest AKA and MIKEY bytes, a lost delivery, time passing with the BM-SC's
timer, SRTP packets under the active TEK's MKI, reception through the UE's SRTP
receiver, coverage loss and regain, replay of a captured MIKEY delivery, a BM-SC
restart, re-fetches when each UE core's own ``due`` says so, a UE fetching late within
and beyond the BM-SC's fetch grace, time advanced to the next planned activation, and an
attacker registering with a wrong RES or a stolen Authorization header); each step's
events are replayed on the model and the abstraction of the concrete state must equal
the model state on the observed symbols, with key bytes, salts, MKIs and fetch times
(:mod:`mbmssec.refinement.abstraction`).  Every profile's run must reach each model action
and driver operation, a key switch and, where a revocation re-keys, a revocation re-key
(:func:`required`).  It runs for the baseline and every shipped proposal
the implementation can be configured for (``kek_scope=common`` and
``tek_protection=tls`` are refused by the implementation and skipped).
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from mbmssec.impl.service.bmsc import check_profile
from mbmssec.model.concrete import Universe
from mbmssec.proofs.check import shipped_proposals
from mbmssec.refinement.abstraction import IMPERSONATIONS, Lockstep
from mbmssec.spec.loader import Profile, load_spec

pytestmark = pytest.mark.slow

UNIVERSE = Universe(ue=2, svc=1, tek=7, pkt=6)
STEPS = 50
MAX_RESTARTS = 1
"""BM-SC restarts per example (a rule without arguments is drawn often; one restart
is enough to compare the state before and after)."""
MAX_COVERAGE_LOSSES = 2
"""Coverage losses per example (likewise drawn often, and each one stalls the UE)."""
# 40 examples of up to 50 steps for every profile (half of them start with every UE
# subscribed and registered; the coverage assertions below say what each run reached).
# MBMSSEC_REFINEMENT_EXAMPLES lowers or raises the count for the non-baseline profiles.
BASELINE_EXAMPLES = 40
EXAMPLES = int(os.environ.get("MBMSSEC_REFINEMENT_EXAMPLES", "40"))


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


def machine_for(
    profile: Profile, reached: Counter[str] | None = None, **variant: Any
) -> type[RuleBasedStateMachine]:
    """A lockstep state machine class for one profile (and optionally a broken variant);
    ``reached`` collects what every example reached (:attr:`Lockstep.reached`)."""

    class Refinement(RuleBasedStateMachine):
        ls: Lockstep

        @initialize(seed=st.integers(0, 2**16), ready=st.booleans())
        def setup(self, seed: int, ready: bool) -> None:
            """A fresh BM-SC and UEs; with ``ready``, every UE subscribed and registered
            first (so that half the examples start where re-keying happens)."""
            self.ls = Lockstep(profile, UNIVERSE, seed=seed, **variant)
            if reached is not None:
                reached["examples"] += 1
            if ready:
                for i in range(UNIVERSE.ue):
                    self.ls.subscribe(i)
                    self.ls.register(i, False, "initial")

        def teardown(self) -> None:
            if reached is not None and hasattr(self, "ls"):
                reached.update(self.ls.reached)

        ue = st.integers(0, UNIVERSE.ue - 1)

        def pick(self, data: st.DataObject, ues: list[int]) -> int:
            return data.draw(st.sampled_from(ues), label="ue")

        def subscribed(self, want: bool) -> list[int]:
            return [
                i
                for i, n in enumerate(self.ls.names)
                if bool((s := self.ls.store.get_subscription(n, self.ls.service)) and s.subscribed)
                == want
            ]

        @precondition(lambda self: bool(self.subscribed(False)))
        @rule(data=st.data())
        def subscribe(self, data: st.DataObject) -> None:
            self.ls.subscribe(self.pick(data, self.subscribed(False)))

        @precondition(
            lambda self: self.ls.teks_used() < UNIVERSE.tek and bool(self.subscribed(True))
        )
        @rule(data=st.data())
        def revoke(self, data: st.DataObject) -> None:
            self.ls.revoke(self.pick(data, self.subscribed(True)))

        def wanting(self) -> list[int]:
            """UEs whose client would register now, among those ever subscribed (a UE
            never subscribed is refused as a revoked one is, a step the search needs
            once)."""
            return [
                i
                for i, n in enumerate(self.ls.names)
                if self.ls.wants_register(i) is not None
                and self.ls.store.get_subscription(n, self.ls.service) is not None
            ]

        @precondition(lambda self: bool(self.wanting()))
        @rule(data=st.data())
        def register(self, data: st.DataObject) -> None:
            """A UE's client registers when it would: first, when its own core says the
            service is due, after an unknown MKI, or to retry (one argument: Hypothesis
            draws rules with fewer arguments more often)."""
            i = self.pick(data, self.wanting())
            lost = data.draw(st.sampled_from([False, False, False, True]), label="lost")
            self.ls.register(i, lost, self.ls.wants_register(i))

        @precondition(lambda self: self.ls.teks_used() < UNIVERSE.tek)
        @rule(dt=st.sampled_from([0.1, 0.3, 0.6, 1.0]))
        def advance(self, dt: float) -> None:
            self.ls.advance(dt)

        @precondition(lambda self: self.ls.teks_used() < UNIVERSE.tek)
        @rule()
        def advance_to_activation(self) -> None:
            self.ls.advance_to_activation()

        def synchronised(self) -> list[int]:
            return [i for i in range(UNIVERSE.ue) if self.ls.synchronised(i)]

        @precondition(lambda self: self.ls.teks_used() < UNIVERSE.tek and bool(self.synchronised()))
        @rule(data=st.data())
        def delay(self, data: st.DataObject) -> None:
            i = self.pick(data, self.synchronised())
            self.ls.delay(i, data.draw(st.booleans(), label="beyond grace"))

        @rule(i=ue, kind=st.sampled_from(IMPERSONATIONS), k=st.integers(0, 7))
        def impersonate(self, i: int, kind: str, k: int) -> None:
            if kind == "wrong_res" or self.ls.authorizations:
                self.ls.impersonate(i, kind, k)

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

        @precondition(lambda self: self.ls.reached["LoseCoverage"] < MAX_COVERAGE_LOSSES)
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

        @precondition(lambda self: self.ls.reached["restart"] < MAX_RESTARTS)
        @rule()
        def restart(self) -> None:
            self.ls.restart()

    return Refinement


def run_machine(
    profile: Profile, examples: int, reached: Counter[str] | None = None, **variant: Any
) -> None:
    machine = machine_for(profile, reached, **variant)
    machine.TestCase.settings = settings(
        max_examples=examples,
        stateful_step_count=STEPS,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    machine.TestCase().runTest()


def required(profile: Profile) -> set[str]:
    """What every lockstep run of the profile must reach: each model action the driver
    can take, each operation of the driver, a key switch, and a revocation re-key where
    a revocation re-keys."""
    out = {
        "Subscribe",
        "Revoke",
        "Authenticate",
        "Register",
        "DeliveryLost",
        "Generate",
        "Activate",
        "Send",
        "Receive",
        "LoseCoverage",
        "RegainCoverage",
        "Replay",
        "register:initial",
        "register:fetch_time",
        "advance",
        "advance to activation",
        "delay within grace",
        "delay beyond grace",
        "restart",
        "key switch",
        *(f"impersonate:{k}" for k in IMPERSONATIONS),
    }
    if profile["mikey_response"] != "none":
        out.add("Acknowledge")
    if profile["unknown_mki_resync"] == "refetch" and profile["mki_in_srtp"] == "mandatory":
        out.add("register:unknown_mki")
    if profile["membership_rekey"] in ("leave", "both"):
        out.add("revocation re-key")
    return out


PROFILES = implementable_profiles()


def test_skipped_profiles_are_the_unimplementable_ones() -> None:
    names = {n for n, _ in PROFILES}
    skipped = {p.name for p in shipped_proposals()} - names
    assert skipped == {"kek_common", "tek_over_tls"}


@pytest.mark.parametrize("name,profile", PROFILES, ids=[n for n, _ in PROFILES])
def test_lockstep_refinement(name: str, profile: Profile) -> None:
    reached: Counter[str] = Counter()
    run_machine(profile, BASELINE_EXAMPLES if name == "baseline" else EXAMPLES, reached)
    missing = sorted(required(profile) - {k for k, n in reached.items() if n > 0})
    assert not missing, f"{name}: never reached {missing} in {reached['examples']} examples"

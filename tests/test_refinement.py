"""Lockstep refinement: the sans-I/O BM-SC and UE cores against the model, step by step.

A Hypothesis state machine applies concrete operations (subscribe, revoke, registration
through real Digest AKA and MIKEY bytes, a lost delivery, time passing with the BM-SC's
timer, SRTP packets under the active TEK's MKI, reception through the UE's SRTP
receiver, coverage loss and regain, replay of a captured MIKEY delivery, a BM-SC
restart, re-fetches when each UE core's own ``due`` says so or at once after an unknown
MKI, a UE fetching late within and beyond the BM-SC's fetch grace, time advanced to the
next planned activation, and an attacker registering with a wrong RES or a stolen
Authorization header); each step's events are replayed on the model and the abstraction
of the concrete state must equal the model state on the observed symbols, with key
bytes, salts, MKIs and fetch times (:mod:`mbmssec.refinement.abstraction`).  Besides the
uniform choice among the operations, the search is steered to where activation must
wait: a revocation while another synchronised UE holds the next TEK (the re-key leaves
that UE without the replacement, whose planned activation comes before its fetch time)
and that UE then fetching late within the grace.  Every profile's run must reach each
model action and driver operation, a key switch and, where a revocation re-keys, a
revocation re-key (:func:`required`; the mutant catalogue, tests/test_refinement_mutants.py,
shows what the steering reaches).  It runs for the baseline and every shipped proposal the
implementation can be configured for (``kek_scope=common`` and ``tek_protection=tls``
are refused by the implementation and skipped).  The searches are derandomised and draw
the same examples whatever ran before them in the same process
(:func:`same_draws_in_any_process`).
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any, Final

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from mbmssec.impl.service.bmsc import check_profile
from mbmssec.model.concrete import Universe
from mbmssec.proofs.check import shipped_proposals
from mbmssec.refinement.abstraction import IMPERSONATIONS, Lockstep
from mbmssec.spec.loader import Profile, load_spec

pytestmark = pytest.mark.slow

UNIVERSE = Universe(ue=2, svc=1, tek=7, pkt=6)
STEPS = 50
MAX_RESTARTS = 1
"""BM-SC restarts per example (one is enough to compare the state before and after)."""
MAX_COVERAGE_LOSSES = 2
"""Coverage losses per example (each one stalls the UE)."""
MAX_REPLAYS = 4
MAX_IMPERSONATIONS = 4
"""Replays of captured deliveries and impersonation attempts per example: each is always
possible once there is something to replay and changes no state the model follows, so
without a bound a few examples spend most of their steps on them."""
LATEST = 0.95
"""The latest a UE fetches within the BM-SC's fetch grace, as a share of it (where the
BM-SC has waited longest for it)."""
PACKETS_PER_TEK = 2
"""Packets sent under one active TEK: the packet universe is small, and packets spread
over several TEKs are what key switches (and unknown MKIs) need."""
# 30 examples of up to 50 steps for every profile (three in four start with every UE
# subscribed and registered; every step is an operation enabled at that point, about
# 1,500 checked steps per profile; the coverage assertions below say what each run
# reached).  MBMSSEC_REFINEMENT_EXAMPLES lowers or raises the count for the non-baseline
# profiles.
BASELINE_EXAMPLES = 30
EXAMPLES = int(os.environ.get("MBMSSEC_REFINEMENT_EXAMPLES", "30"))


ATTACKER_ONLY = frozenset({"kek_scope", "tek_protection"})
"""Options the model reads only in attacker actions, which the lockstep driver does not
run: under them the honest run is the baseline's step for step (their message formats
are checked by the core tests, the end-to-end server test and the counterexample
replays), so their profiles would repeat the baseline's search."""


def implementable_profiles() -> list[tuple[str, Profile]]:
    """The baseline and every shipped proposal that changes what honest parties do."""
    out = [("baseline", load_spec().baseline())]
    for prop in shipped_proposals():
        if prop.behaviour is not None:
            continue  # it changes the model itself: the implementation follows the text
        check_profile(prop.profile)  # every option value is implemented
        if set(prop.profile.overrides) <= ATTACKER_ONLY:
            continue
        out.append((prop.name, prop.profile))
    return out


OPERATIONS: Final = (
    "subscribe",
    "revoke",
    "revoke_while_others_hold_next",
    "register",
    "refetch",
    "advance",
    "delay",
    "late_for_next",
    "impersonate",
    "send",
    "receive",
    "coverage",
    "replay",
    "restart",
)
"""The driver's operations (methods of the state machine, each enabled by its
``may_<name>`` method); a step draws one of those enabled, as likely as its weight."""

WEIGHTS: Final = {"revoke_while_others_hold_next": 2, "late_for_next": 2}
"""Operations drawn more often than the others (weight 1) when enabled: the two that
lead to where the BM-SC must hold an activation up, which the other operations leave
again before long (a revocation of the UE waited for, its coverage lost, time passing
beyond its grace)."""


def machine_for(
    profile: Profile, reached: Counter[str] | None = None, **variant: Any
) -> type[RuleBasedStateMachine]:
    """A lockstep state machine class for one profile (and optionally a broken variant);
    ``reached`` collects what every example reached (:attr:`Lockstep.reached`)."""

    class Refinement(RuleBasedStateMachine):
        ls: Lockstep

        @initialize(seed=st.integers(0, 2**16), ready=st.sampled_from([False, True, True, True]))
        def setup(self, seed: int, ready: bool) -> None:
            """A fresh BM-SC and UEs; with ``ready`` (three examples in four), every UE
            subscribed and registered first, where re-keying happens."""
            self.ls = Lockstep(profile, UNIVERSE, seed=seed, **variant)
            self.done: Counter[str] = Counter()
            self.heard: set[tuple[int, int]] = set()  # (UE, packet) received
            self._seen: dict[str, Any] = {}
            self._seen_at = -1
            if reached is not None:
                reached["examples"] += 1
            if ready:
                for i in range(UNIVERSE.ue):
                    self.ls.subscribe(i)
                    self.ls.register(i, False, "initial")

        def teardown(self) -> None:
            if reached is not None and hasattr(self, "ls"):
                reached.update(self.ls.reached)

        @rule(data=st.data())
        def step(self, data: st.DataObject) -> None:
            """One operation of :data:`OPERATIONS`, drawn among those enabled now.  One
            rule rather than one per operation: Hypothesis switches rules off at random
            for each example (swarm testing), which would leave most examples without
            one of the few operations that a re-key, a key switch or an unknown MKI
            needs together."""
            ops = [
                op
                for op in OPERATIONS
                if getattr(self, f"may_{op}")()
                for _ in range(WEIGHTS.get(op, 1))
            ]
            if ops:  # (none once the TEK universe is used up and nothing else is left)
                getattr(self, data.draw(st.sampled_from(ops), label="operation"))(data)

        def seen(self, key: str, compute: Any) -> Any:
            """``compute()``, once per step (every operation adds a step)."""
            if self._seen_at != len(self.ls.steps):
                self._seen_at = len(self.ls.steps)
                self._seen.clear()
            if key not in self._seen:
                self._seen[key] = compute()
            return self._seen[key]

        def pick(self, data: st.DataObject, ues: list[int]) -> int:
            return data.draw(st.sampled_from(ues), label="ue")

        def teks_left(self) -> bool:
            """Room for one more TEK: an operation that lets time pass or revokes may
            generate one."""
            return bool(self.seen("teks", lambda: self.ls.teks_used() < UNIVERSE.tek))

        def timer_safe(self) -> bool:
            """The BM-SC's timer, run now, generates no TEK beyond the universe: there is
            room for one, or the next TEK's planned activation has not come (time stands
            still once the universe is used up)."""
            tek = self.next_tek()
            return self.teks_left() or (tek is not None and self.ls.now < tek.planned)

        def subscribed(self, want: bool) -> list[int]:
            def compute() -> list[int]:
                ls = self.ls
                return [
                    i
                    for i, n in enumerate(ls.names)
                    if bool((s := ls.store.get_subscription(n, ls.service)) and s.subscribed)
                    == want
                ]

            return list(self.seen(f"subscribed {want}", compute))

        def synchronised(self) -> list[int]:
            return list(
                self.seen(
                    "synchronised",
                    lambda: [i for i in range(UNIVERSE.ue) if self.ls.synchronised(i)],
                )
            )

        def may_subscribe(self) -> bool:
            return bool(self.subscribed(False))

        def subscribe(self, data: st.DataObject) -> None:
            self.ls.subscribe(self.pick(data, self.subscribed(False)))

        def may_revoke(self) -> bool:
            return self.teks_left() and bool(self.subscribed(True))

        def revoke(self, data: st.DataObject) -> None:
            self.ls.revoke(self.pick(data, self.subscribed(True)))

        def next_tek(self) -> Any:
            return self.seen("next", self.ls.next_tek)

        def holders(self) -> list[int]:
            """UEs the BM-SC delivered the service's next TEK to."""

            def compute() -> list[int]:
                tek, ls = self.next_tek(), self.ls
                if tek is None:
                    return []
                return [i for i, n in enumerate(ls.names) if ls.store.was_delivered(n, tek.id)]

            return list(self.seen("holders", compute))

        def rekeying(self) -> list[int]:
            """Subscribed UEs holding the next TEK while another synchronised UE holds it
            too: revoking one re-keys (where a leave does), and the replacement keeps the
            withdrawn TEK's planned activation, which comes before the other UE's fetch
            time, so the BM-SC must wait for that UE."""
            holders = self.holders()
            synced = set(holders) & set(self.synchronised())
            return [i for i in self.subscribed(True) if i in holders and synced - {i}]

        def may_revoke_while_others_hold_next(self) -> bool:
            return self.teks_left() and bool(self.rekeying())

        def revoke_while_others_hold_next(self, data: st.DataObject) -> None:
            self.ls.reached["revoke while another UE holds the next TEK"] += 1
            self.ls.revoke(self.pick(data, self.rekeying()))

        def wants(self) -> list[str | None]:
            """Why each UE's client would register now (:meth:`Lockstep.wants_register`)."""
            ls = self.ls
            return list(
                self.seen("wants", lambda: [ls.wants_register(i) for i in range(UNIVERSE.ue)])
            )

        def wanting(self) -> list[int]:
            """UEs whose client would register now, among those ever subscribed (a UE
            never subscribed is refused as a revoked one is, a step the search needs
            once)."""

            def compute() -> list[int]:
                ls = self.ls
                return [
                    i
                    for i, n in enumerate(ls.names)
                    if self.wants()[i] is not None
                    and ls.store.get_subscription(n, ls.service) is not None
                ]

            return list(self.seen("wanting", compute))

        def may_register(self) -> bool:
            return self.timer_safe() and bool(self.wanting())

        def register(self, data: st.DataObject) -> None:
            """A UE's client registers when it would: first, when its own core says the
            service is due, after an unknown MKI, or to retry; one time in three the
            answer is lost."""
            i = self.pick(data, self.wanting())
            lost = data.draw(st.sampled_from([False, False, True]), label="lost")
            self.ls.register(i, lost, self.wants()[i])

        def refetching(self) -> list[int]:
            return [i for i in self.wanting() if self.wants()[i] == "unknown_mki"]

        def may_refetch(self) -> bool:
            return self.timer_safe() and bool(self.refetching())

        def refetch(self, data: st.DataObject) -> None:
            """A UE that saw an unknown MKI registers again (``unknown_mki_resync=refetch``:
            its client does so at once, so the step has an operation of its own besides
            :meth:`register`)."""
            self.register(data)

        def may_advance(self) -> bool:
            """Fewer TEKs than the universe holds, and no synchronised UE at its fetch
            time (time waits for it to fetch: a step would change nothing)."""

            return self.teks_left() and self.ls.now < min(
                (self.fetch_limit(i) for i in self.synchronised()), default=float("inf")
            )

        def advance(self, data: st.DataObject) -> None:
            """Time passes by a while, or to the next planned activation."""
            dt = data.draw(st.sampled_from([0.1, 0.3, 0.6, 1.0, None]), label="dt")
            if dt is None:
                self.ls.advance_to_activation()
            else:
                self.ls.advance(dt)

        def may_delay(self) -> bool:
            return self.teks_left() and bool(self.synchronised())

        def delay(self, data: st.DataObject) -> None:
            """A synchronised UE fetches late: within the grace or beyond it, by half or
            nearly all of the grace."""
            i = self.pick(data, self.synchronised())
            beyond = data.draw(st.booleans(), label="beyond grace")
            self.ls.delay(i, beyond, data.draw(st.sampled_from([0.5, LATEST]), label="share"))

        def fetch_limit(self, i: int) -> float:
            return float(self.seen(f"limit {i}", lambda: self.ls.fetch_limit(i)))

        def waiting(self) -> list[int]:
            """Synchronised UEs without the next TEK whose fetch time is at or after its
            planned activation, so that the BM-SC must hold the activation up until they
            have fetched (as after a revocation re-key, whose replacement keeps the
            withdrawn TEK's planned time while the other UEs fetch after it), and that are
            not yet as late within the grace as :data:`LATEST` makes them."""
            tek, late = self.next_tek(), LATEST * self.ls.config.fetch_grace
            return [
                i
                for i in self.synchronised()
                if tek is not None
                and i not in self.holders()
                and tek.planned <= self.fetch_limit(i)
                and self.ls.now < self.fetch_limit(i) + late
            ]

        def may_late_for_next(self) -> bool:
            return self.teks_left() and bool(self.waiting())

        def late_for_next(self, data: st.DataObject) -> None:
            """A UE the BM-SC must wait for fetches late within the grace, by nearly all
            of it: the BM-SC must still not activate the TEK the UE lacks (:meth:`delay`
            makes UEs late by half the grace as well)."""
            i = self.pick(data, self.waiting())
            self.ls.reached["late for the next TEK"] += 1
            self.ls.delay(i, False, LATEST)

        def may_impersonate(self) -> bool:
            return self.timer_safe() and self.done["impersonate"] < MAX_IMPERSONATIONS

        def impersonate(self, data: st.DataObject) -> None:
            """An attacker registers as a UE: with a wrong RES, or with an Authorization
            header a UE sent, half the time (where there is one) one the BM-SC refused
            after authenticating it (the UE was not authorised then: replayed once it
            is, it must still be refused)."""
            i = data.draw(st.integers(0, UNIVERSE.ue - 1), label="ue")
            kind = data.draw(st.sampled_from(IMPERSONATIONS), label="kind")
            k = data.draw(st.integers(0, 7), label="authorization")
            refused = [
                n
                for n, (_, _, header) in enumerate(self.ls.authorizations)
                if self.ls.answered.get(header) == "not_subscribed"
            ]
            if (
                kind == "replayed_authorization"
                and refused
                and data.draw(st.booleans(), label="a refused one")
            ):
                k = refused[k % len(refused)]
            if kind == "wrong_res" or self.ls.authorizations:
                self.done["impersonate"] += 1
                self.ls.impersonate(i, kind, k)

        def may_send(self) -> bool:
            """A packet is left in the universe and fewer than :data:`PACKETS_PER_TEK`
            went out under the active TEK."""

            def compute() -> bool:
                tek = self.ls.core.active_tek(self.ls.service)
                under = sum(1 for _, mki, _ in self.ls.record.packets if tek and mki == tek.mki)
                return under < PACKETS_PER_TEK

            return len(self.ls.wire) < UNIVERSE.pkt and bool(self.seen("send", compute))

        def send(self, data: st.DataObject) -> None:
            self.ls.send()

        def may_receive(self) -> bool:
            return bool(self.ls.wire)

        def receive(self, data: st.DataObject) -> None:
            """A UE (in coverage) receives a packet: the latest one sent (under the
            active TEK: a key switch where it is a new one), one it has not received yet,
            or any (a replayed packet included)."""
            i = data.draw(st.integers(0, UNIVERSE.ue - 1), label="ue")
            if self.ls.record.covered.get(self.ls.names[i], True):
                which = data.draw(st.sampled_from(["latest", "new", "any"]), label="which")
                sent = range(len(self.ls.wire))
                pool = [p for p in sent if (i, p) not in self.heard] if which == "new" else []
                if which == "latest":
                    p = len(self.ls.wire) - 1
                else:
                    p = data.draw(st.sampled_from(pool or list(sent)), label="packet")
                self.heard.add((i, p))
                self.ls.receive(i, p)

        def may_coverage(self) -> bool:
            return self.ls.reached["LoseCoverage"] < MAX_COVERAGE_LOSSES

        def coverage(self, data: st.DataObject) -> None:
            i = data.draw(st.integers(0, UNIVERSE.ue - 1), label="ue")
            if self.ls.record.covered.get(self.ls.names[i], True):
                self.ls.lose_coverage(i)
            else:
                self.ls.regain_coverage(i)

        def may_replay(self) -> bool:
            return bool(self.ls.captured) and self.done["replay"] < MAX_REPLAYS

        def replay(self, data: st.DataObject) -> None:
            k = data.draw(st.integers(0, len(self.ls.captured) - 1), label="delivery")
            if self.ls.record.covered.get(self.ls.names[self.ls.captured[k][0]], True):
                self.done["replay"] += 1
                self.ls.replay(k)

        def may_restart(self) -> bool:
            return self.ls.reached["restart"] < MAX_RESTARTS

        def restart(self, data: st.DataObject) -> None:
            self.ls.restart()

    return Refinement


@contextlib.contextmanager
def same_draws_in_any_process() -> Iterator[None]:
    """Make a derandomised search draw the same examples whatever ran before it.

    Besides its seeded random source, Hypothesis (6.131 and later) draws integers now and
    then from the literals of the project modules loaded so far (those of at least 100:
    the seed of the concrete run, and Hypothesis's own draw of how many rules to switch
    off in an example, can be one).  Which modules are loaded depends on the tests that
    ran before in the same process, so the same search took other examples in a run of
    one file than in the full suite.  Inside this context the pool of such literals is
    empty (the built-in pool of constants stays in use)."""
    try:
        from hypothesis.internal.conjecture import providers
        from hypothesis.internal.constants_ast import Constants
    except ImportError:  # pragma: no cover (an older or restructured Hypothesis)
        yield
        return
    if not hasattr(providers, "_get_local_constants"):
        if hasattr(providers, "constants_from_module"):
            raise RuntimeError(
                "Hypothesis collects module literals in a way this test does not know: "
                "the lockstep searches would depend on what ran before them"
            )
        yield
        return
    get, empty = providers._get_local_constants, Constants()
    providers._get_local_constants = lambda: empty
    providers.CONSTANTS_CACHE.cache.clear()  # allowed values computed from the old pool
    try:
        yield
    finally:
        providers._get_local_constants = get
        providers.CONSTANTS_CACHE.cache.clear()


def run_machine(
    profile: Profile,
    examples: int,
    reached: Counter[str] | None = None,
    **variant: Any,
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
    with same_draws_in_any_process():
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
    proposals = shipped_proposals()
    skipped = {p.name for p in proposals if p.behaviour is None} - names
    assert skipped == {"kek_common", "tek_over_tls"}
    # a proposal stating behaviour changes the model, not an option the implementation
    # implements: none is a lockstep profile
    assert not names & {p.name for p in proposals if p.behaviour is not None}


@pytest.mark.parametrize("name,profile", PROFILES, ids=[n for n, _ in PROFILES])
def test_lockstep_refinement(name: str, profile: Profile) -> None:
    reached: Counter[str] = Counter()
    examples = BASELINE_EXAMPLES if name == "baseline" else EXAMPLES
    run_machine(profile, examples, reached)
    missing = sorted(required(profile) - {k for k, n in reached.items() if n > 0})
    assert not missing, f"{name}: never reached {missing} in {reached['examples']} examples"


def test_ue_refuses_a_replayed_packet_after_a_delivery_without_mkis() -> None:
    """Found by the ``mki_optional`` search: a packet the UE decrypted is replayed to it
    after it fetched again while the same TEK is still active (a revocation re-key holds
    the activation up).  The UE once replaced its SRTP receiver, and with it the replay
    list, on every delivery without MKIs, and decrypted the packet again; it now keeps
    the receiver while the key is the same (impl/service/ue.py, accept_delivery).  The
    driver raises :class:`Divergence` if the implementation decrypts it."""
    ls = Lockstep(dict(PROFILES)["mki_optional"], UNIVERSE, seed=1)
    for i in range(UNIVERSE.ue):
        ls.subscribe(i)
        ls.register(i)
    ls.send()
    ls.receive(0, 0)
    ls.revoke(1)  # the replacement TEK keeps the withdrawn one's planned activation
    ls.advance_to_activation()  # UE0 has not fetched the replacement: no activation
    while ls.wants_register(0) is None:
        ls.advance(0.1)
    ls.register(0)  # UE0 fetches at its fetch time; the first TEK is still active
    ls.receive(0, 0)  # the same packet again: refused by model and implementation


def test_bmsc_refuses_a_replayed_request_it_refused_before() -> None:
    """Found by the ``second_service_no_reauth`` search: a revoked UE comes back at its
    fetch time with the authentication it keeps (the next nonce count), the BM-SC
    refuses it as not authorised, the UE is authorised again, and an attacker replays
    the refused request.  The BM-SC once refused before recording the nonce count, so
    the replay registered as the UE; a refusal now spends the nonce count
    (impl/service/bmsc.py, _register).  The driver raises :class:`Divergence` if the
    implementation accepts the replay."""
    ls = Lockstep(dict(PROFILES)["second_service_no_reauth"], UNIVERSE, seed=1)
    ls.subscribe(0)
    ls.register(0)  # Digest AKA; the nonce stays usable (authorise_only)
    ls.revoke(0)
    while ls.wants_register(0) is None:
        ls.advance(0.1)
    ls.register(0)  # refused: not authorised (the nonce count is spent all the same)
    ls.subscribe(0)
    ls.impersonate(0, "replayed_authorization", len(ls.authorizations) - 1)

"""Hand-written runs of the executable model with the outcome the text implies.

The expected outcomes come from reading clauses 6.2.2-6.2.3.3, not from the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from mbmssec.model.concrete import Universe
from mbmssec.model.dsl import ModelError
from mbmssec.model.machine import Model
from mbmssec.model.trace import Trace, TraceStep
from mbmssec.spec.loader import load_spec

U = Universe(ue=2, svc=1, tek=3, pkt=2)


def run(overrides: dict[str, str], steps: Sequence[tuple[str, tuple[object, ...]]]) -> list[int]:
    model = Model(load_spec().profile(overrides))
    return Trace(tuple(TraceStep(a, tuple(x)) for a, x in steps), U).violations(model)


LATE_JOINER = [
    ("Generate", (0, 0)),
    ("Activate", (0,)),
    ("Send", (0, 0, True)),
    ("Subscribe", (0, 0)),
    ("Authenticate", (0,)),
    ("Register", (0, 0, 1)),
    ("Receive", (0, 0)),
]


def test_late_joiner_reads_old_traffic_in_the_baseline() -> None:
    assert run({}, LATE_JOINER) == [7]


def test_rekey_on_join_withholds_the_old_tek() -> None:
    model = Model(load_spec().profile({"membership_rekey": "join"}))
    states = Trace(tuple(TraceStep(a, x) for a, x in LATE_JOINER[:-1]), U).replay(model)
    assert not states[-1].get("holds", 0, 0)


def test_unauthorised_ue_cannot_register() -> None:
    model = Model.baseline()
    s = model.initial(U)
    for a, x in [("Generate", (0, 0)), ("Activate", (0,)), ("Authenticate", (0,))]:
        after = model.step(s, a, x)
        assert after is not None
        s = after
    assert model.step(s, "Register", (0, 0, 1)) is None  # not subscribed: step 4 refuses


LEAVER = [
    ("Subscribe", (0, 0)),
    ("Generate", (0, 0)),
    ("Activate", (0,)),
    ("Generate", (0, 1)),
    ("Authenticate", (0,)),
    ("Register", (0, 0, 1)),
    ("Revoke", (0, 0)),
    ("Activate", (0,)),
    ("Send", (0, 0, True)),
    ("Receive", (0, 0)),
]


def test_leaver_keeps_next_tek_without_rekey_on_leave() -> None:
    assert run({"membership_rekey": "never"}, LEAVER) == [6]


def test_rekey_on_leave_withdraws_the_next_tek() -> None:
    with pytest.raises(ModelError, match="step 8"):
        run({}, LEAVER)  # the next TEK was withdrawn, so there is nothing to activate


def test_immediate_activation_strands_a_registered_ue() -> None:
    steps = [
        ("Subscribe", (0, 0)),
        ("Generate", (0, 0)),
        ("Activate", (0,)),
        ("Authenticate", (0,)),
        ("Register", (0, 0, 1)),
        ("Generate", (0, 1)),
        ("Activate", (0,)),
    ]
    assert run({"activation": "immediate"}, steps) == [4]
    with pytest.raises(ModelError, match="step 7"):
        run({}, steps)  # the baseline waits for the fetch window


def test_common_kek_lets_one_colluder_read_everyone() -> None:
    steps = [
        ("Subscribe", (0, 0)),
        ("Generate", (0, 0)),
        ("Activate", (0,)),
        ("Authenticate", (0,)),
        ("Register", (0, 0, 1)),
        ("Compromise", (1,)),
        ("Eavesdrop", (0, 0)),
    ]
    assert run({"kek_scope": "common"}, steps) == [5]
    with pytest.raises(ModelError, match="step 7"):
        run({}, steps)


def test_out_of_coverage_ue_recovers_through_unknown_mki() -> None:
    model = Model.baseline()
    steps = [
        ("Subscribe", (0, 0)),
        ("Generate", (0, 0)),
        ("Activate", (0,)),
        ("Authenticate", (0,)),
        ("Register", (0, 0, 3)),
        ("LoseCoverage", (0,)),
        ("Generate", (0, 1)),
        ("Tick", ()),
        ("Tick", ()),
        ("Tick", ()),
        ("Tick", ()),
        ("Activate", (0,)),
        ("RegainCoverage", (0,)),
        ("Send", (0, 0, True)),
        ("Receive", (0, 0)),
    ]
    states = Trace(tuple(TraceStep(a, x) for a, x in steps), U).replay(model)
    last = states[-1]
    assert last.get("saw_unknown", 0, 0) and not last.get("decrypted", 0, 0)
    authenticated = model.step(last, "Authenticate", (0,))
    assert authenticated is not None
    s = model.step(authenticated, "Register", (0, 0, 1))
    assert s is not None and s.get("holds", 0, 1)
    s2 = model.step(s, "Receive", (0, 0))
    assert s2 is not None and s2.get("decrypted", 0, 0)


TWO_SERVICES = [
    ("Subscribe", (0, 0)),
    ("Subscribe", (0, 1)),
    ("Generate", (0, 0)),
    ("Activate", (0,)),
    ("Generate", (1, 1)),
    ("Activate", (1,)),
    ("Authenticate", (0,)),  # the sixth event: stamp 6
    ("Register", (0, 0, 1)),
]


@pytest.mark.parametrize(
    ("option", "after_first", "second_stamp"),
    [("reauthenticate", False, 7), ("authorise_only", True, 6)],
)
def test_a_registration_for_a_further_service_records_its_authentication(
    option: str, after_first: bool, second_stamp: int
) -> None:
    """6.2.2/SECOND-SERVICE: with reauthenticate the registration for service 1 needs a
    new Digest AKA run (a new stamp, 7); with authorise_only it is made under the one
    that served service 0 (stamp 6)."""
    model = Model(load_spec().profile({"second_service_auth": option}))
    two = Universe(ue=1, svc=2, tek=2, pkt=1)
    s = Trace(tuple(TraceStep(a, x) for a, x in TWO_SERVICES), two).replay(model)[-1]
    assert (s.get("auth_ev", 0), s.get("dlv_auth", 0, 0)) == (6, 6)
    assert s.get("authenticated", 0) is after_first
    if not after_first:
        assert model.step(s, "Register", (0, 1, 1)) is None  # step 3 must come first
        again = model.step(s, "Authenticate", (0,))
        assert again is not None
        s = again
    after = model.step(s, "Register", (0, 1, 1))
    assert after is not None
    assert (after.get("dlv_auth", 0, 0), after.get("dlv_auth", 0, 1)) == (6, second_stamp)


def test_action_writing_outside_modifies_is_caught() -> None:
    from dataclasses import replace

    model = Model.baseline()
    bad = replace(model.action("Tick"), modifies=frozenset())
    from mbmssec.model.concrete import step

    with pytest.raises(ModelError, match="does not list it in modifies"):
        step(bad, model.profile, model.initial(U), ())


def test_a_chart_whose_last_lane_has_a_long_cell_fits_100_columns() -> None:
    """The counterexample to property 8 without replay protection: the attacker's replay,
    the last lane, carries a note; indented by eight, every line fits 100 columns."""
    model = Model(load_spec().profile({"replay_protection": "none"}))
    steps = [
        ("Generate", (0, 0)),
        ("Activate", (0,)),
        ("Generate", (0, 1)),
        ("Subscribe", (1, 0)),
        ("Authenticate", (1,)),
        ("Register", (1, 0, 1)),
        ("Activate", (0,)),
        ("Send", (0, 0, True)),
        ("Receive", (1, 0)),
        ("Replay", (1, 0)),
    ]
    trace = Trace(tuple(TraceStep(a, x) for a, x in steps), U, (8,))
    assert 8 in trace.violations(model)
    lines = trace.render_text(model).splitlines()
    assert max(len(" " * 8 + line) for line in lines) <= 100, lines
    assert lines[0].split() == ["#", "BM-SC", "UE", "/", "network", "attacker"]
    assert lines[11].startswith(" 10> ") and lines[11].endswith("Replay(UE1, T0)  installs T0")

"""Every option labelled ``modelled`` in spec/options.toml changes what the model says.

tests/test_option_labels.py shows that the model *reads* each modelled option; reading it
is not enough (a read can be without effect).  Here each modelled option is shown to
change one of:

* **a verdict**: a shipped proposal that sets that option alone has a verdict other than
  the baseline's (broken, weakened or fixed) in the checker's own results (the shared
  ``mbmssec check --all`` of tests/conftest.py);
* **the reachable states**: a state predicate that induction proves invariant for every
  population size under the baseline (with the model's own lemmas), and that the bounded
  search violates under the option's value: a state the option makes reachable.

An option with neither is not modelled, whatever its label says; the test says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import pytest
from conftest import CheckerResults

from mbmssec.model.concrete import Universe
from mbmssec.model.dsl import Ops, Sort
from mbmssec.model.machine import Model
from mbmssec.model.properties import PROPERTIES, Property, for_all
from mbmssec.proofs.bmc import BMC_UNIVERSE, search
from mbmssec.proofs.check import Comparison
from mbmssec.proofs.induction import prove
from mbmssec.spec.loader import load_spec

pytestmark = pytest.mark.xdist_group("checker")

UE, SVC, TEK = Sort.UE, Sort.SVC, Sort.TEK


def _no_acknowledgement(ops: Ops, st: Any) -> Any:
    """No UE ever confirmed a TEK with the MIKEY verification message."""
    return for_all(ops, (UE, TEK), lambda u, t: ops.not_(st.get("acked", u, t)))


def _attacker_learns_only_from_colluders(ops: Ops, st: Any) -> Any:
    """Every TEK the attacker knows was installed by a colluding UE (a compromised UE
    with a delivery of that TEK it accepted): the attacker reads no MIKEY delivery.  With
    the facts that make it inductive: a UE holds only TEKs of a delivery it accepted
    (recorded with a positive counter), and overhears nothing (one KEK per UE)."""
    learnt = for_all(
        ops,
        (TEK,),
        lambda t: ops.implies(
            st.get("att_tek", t),
            ops.exists(
                UE, lambda u: ops.and_(st.get("compromised", u), st.get("dlv_ctr", u, t) > 0)
            ),
        ),
    )
    accepted = for_all(
        ops,
        (UE, TEK),
        lambda u, t: ops.and_(
            ops.implies(st.get("holds", u, t), st.get("dlv_ctr", u, t) > 0),
            ops.not_(st.get("overheard", u, t)),
        ),
    )
    counters = for_all(ops, (UE,), lambda u: st.get("ctr", u) >= 0)
    return ops.and_(learnt, accepted, counters)


def _one_authentication_per_registration(ops: Ops, st: Any) -> Any:
    """No UE is registered for two services under one authentication: the latest
    deliveries of two services a UE is registered for were made under authentications
    with different stamps."""
    return for_all(
        ops,
        (UE, SVC, SVC),
        lambda u, s, r: ops.implies(
            ops.and_(s != r, st.get("registered", u, s), st.get("registered", u, r)),
            st.get("dlv_auth", u, s) != st.get("dlv_auth", u, r),
        ),
    )


class Reach(NamedTuple):
    """A state an option's value makes reachable (see the module docstring)."""

    profile: dict[str, str]
    """The option value that reaches the state."""
    what: str
    body: Callable[..., Any]
    """The predicate that is invariant under the *other* value."""
    universe: Universe = BMC_UNIVERSE
    """Where the bounded search looks for the state."""
    depth: int = 8


REACHABLE: dict[str, Reach] = {
    "mikey_response": Reach(
        {"mikey_response": "required"},
        "a UE has confirmed a TEK (Acknowledge exists only when the response is sent)",
        _no_acknowledgement,
    ),
    "tek_protection": Reach(
        {"tek_protection": "mikey_kek"},
        "the attacker reads a TEK from a recorded MIKEY delivery to a colluding UE "
        "that never installed it (its delivery was lost); over TLS it cannot",
        _attacker_learns_only_from_colluders,
    ),
    # Two services, each with its active TEK, one UE subscribed to both, one
    # authentication and two registrations: 9 steps.
    "second_service_auth": Reach(
        {"second_service_auth": "authorise_only"},
        "one authentication served the registrations of a UE for two services",
        _one_authentication_per_registration,
        Universe(ue=1, svc=2, tek=2, pkt=1),
        9,
    ),
}
"""Option -> the state its value makes reachable.  For ``tek_protection`` the baseline
is the value that reaches more (MIKEY under the KEK): the invariant is proved under
``tls``."""

NOT_YET: dict[str, str] = {}
"""Options labelled modelled that this test shows have no effect yet (expected failures)."""


def _modelled() -> list[str]:
    return [n for n, o in load_spec().options.items() if not o.neutral]


def _single_option_verdicts(comparisons: list[Comparison], option: str) -> list[str]:
    """The verdict changes of the shipped proposals that set ``option`` and nothing else."""
    out = []
    for c in comparisons:
        p = c.proposal
        if p is None or set(p.overrides) != {option}:
            continue
        changed = (
            [f"P{n} broken" for n in c.broken]
            + [f"P{n} no longer proved" for n in c.weakened]
            + [f"P{n} fixed" for n in c.fixed]
        )
        if changed:
            out.append(f"{p.name}: {', '.join(changed)}")
    return out


def _distinguisher(number: int, body: Callable[..., Any], what: str) -> Property:
    return Property(number, "option_effect", what, (), what, "invariant", body=body)


def _reachable_difference(option: str) -> str | None:
    """The evidence that ``option`` changes the reachable states, or None."""
    if option not in REACHABLE:
        return None
    reaching, what, body, universe, depth = REACHABLE[option]
    spec = load_spec()
    other = {
        name: spec.options[name].baseline
        if value != spec.options[name].baseline
        else next(v for v in spec.options[name].values if v != value)
        for name, value in reaching.items()
    }
    prop = _distinguisher(99, body, what)
    # invariant for every population size where the option does not reach the state
    calm = Model(spec.profile(other), properties=(*PROPERTIES, prop))
    proved = prove(calm)
    assert proved.property_proved(prop), (option, other, proved.dropped)
    # and violated, within a bound, where it does
    loud = Model(spec.profile(reaching), properties=(prop,))
    found = search(loud, props=[prop], depth=depth, universe=universe)
    assert 99 in found.violations, (option, reaching)
    steps = found.violations[99].depth
    return f"{what}: invariant under {other}, reached under {reaching} in {steps} steps"


@pytest.mark.slow
@pytest.mark.parametrize(
    "option",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=NOT_YET[n]))
        if n in NOT_YET
        else n
        for n in _modelled()
    ],
)
def test_a_modelled_option_changes_a_verdict_or_the_reachable_states(
    option: str, checker_results: CheckerResults
) -> None:
    verdicts = _single_option_verdicts(checker_results.comparisons, option)
    reachable = _reachable_difference(option)
    assert verdicts or reachable, f"{option}: labelled modelled but changes nothing"


def test_the_declarations_name_modelled_options() -> None:
    modelled = set(_modelled())
    assert set(REACHABLE) <= modelled
    assert set(NOT_YET) <= modelled
    assert not set(REACHABLE) & set(NOT_YET)


def test_a_distinguisher_is_not_vacuous() -> None:
    """The acknowledgement predicate is refuted under its option (the search can fail)
    and is not proved there (induction can fail)."""
    spec = load_spec()
    prop = _distinguisher(99, _no_acknowledgement, "no acknowledgement")
    model = Model(spec.profile({"mikey_response": "required"}), properties=(*PROPERTIES, prop))
    assert not prove(model).property_proved(prop)

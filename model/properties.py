"""The key-lifecycle properties the proposed text is meant to guarantee.

Each property is stated once, as a formula over the vocabulary, and read both
concretely (Hypothesis, trace checking) and by Z3 (proofs, bounded search).

* ``invariant`` properties are state formulas that must hold in every reachable state;
* ``step`` properties relate the pre- and post-state of every transition;
* the ``response`` property (9) says that a given short plan of UE actions, started in
  any reachable state satisfying a premise, is enabled and reaches a goal: a bounded
  liveness claim whose bound is the plan's length.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mbmssec.model.dsl import Ops, Reader, Sort

UE, SVC, TEK, PKT = Sort.UE, Sort.SVC, Sort.TEK, Sort.PKT


@dataclass(frozen=True)
class Property:
    """One property, tagged with the clauses it supports.

    ``body`` is ``(ops, state) -> formula`` for invariants and ``(ops, pre, post) ->
    formula`` for step properties.  For the response property, ``premise`` and ``goal``
    take ``(ops, state, u, s)`` and ``plan`` lists ``(action name, {param: role})``
    where a role is ``"u"``, ``"s"`` or an int constant.
    """

    number: int
    name: str
    title: str
    clauses: tuple[str, ...]
    doc: str
    kind: str
    body: Callable[..., Any] | None = None
    premise: Callable[..., Any] | None = None
    goal: Callable[..., Any] | None = None
    plan: tuple[tuple[str, tuple[tuple[str, str | int], ...]], ...] = ()
    holds_in_baseline: bool = True

    @property
    def bound(self) -> int | None:
        """The number of steps a response property allows (``None`` otherwise)."""
        return len(self.plan) if self.kind == "response" else None


def for_all(ops: Ops, sorts: tuple[Sort, ...], body: Callable[..., Any]) -> Any:
    """Universal closure over several sorts (shared by properties and proof lemmas)."""
    if not sorts:
        return body()
    head, rest = sorts[0], sorts[1:]
    return ops.forall(head, lambda x: for_all(ops, rest, lambda *xs: body(x, *xs)))


def p1_decrypt_needs_authorised_tek(ops: Ops, st: Reader) -> Any:
    return for_all(
        ops,
        (UE, PKT),
        lambda u, p: ops.implies(
            st.get("decrypted", u, p), st.get("delivered", u, st.get("pkt_tek", p))
        ),
    )


def p2_send_only_to_authorised(ops: Ops, pre: Reader, post: Reader) -> Any:
    return for_all(
        ops,
        (UE, TEK),
        lambda u, t: ops.implies(
            ops.and_(post.get("delivered", u, t), ops.not_(pre.get("delivered", u, t))),
            ops.and_(
                pre.get("authenticated", u),
                pre.get("subscribed", u, pre.get("tek_svc", t)),
                pre.get("generated", t),
            ),
        ),
    )


def p3_mki_unique_and_present(ops: Ops, st: Reader) -> Any:
    unique = for_all(
        ops,
        (TEK, TEK),
        lambda a, b: ops.implies(
            ops.and_(
                st.get("generated", a),
                st.get("generated", b),
                st.get("tek_svc", a) == st.get("tek_svc", b),
                st.get("mki", a) == st.get("mki", b),
            ),
            a == b,
        ),
    )
    tagged = for_all(
        ops,
        (PKT,),
        lambda p: ops.implies(
            st.get("sent", p),
            ops.and_(st.get("pkt_has_mki", p), st.get("generated", st.get("pkt_tek", p))),
        ),
    )
    return ops.and_(unique, tagged)


def p4_activation_after_delivery(ops: Ops, st: Reader) -> Any:
    return for_all(ops, (UE, TEK), lambda u, t: ops.not_(st.get("missed_activation", u, t)))


def p5_tek_secrecy(ops: Ops, st: Reader) -> Any:
    return for_all(
        ops,
        (TEK,),
        lambda t: ops.implies(
            st.get("att_tek", t),
            ops.exists(UE, lambda u: ops.and_(st.get("compromised", u), st.get("delivered", u, t))),
        ),
    )


def p6_forward_secrecy(ops: Ops, st: Reader) -> Any:
    def no_new_keys(u: Any, t: Any) -> Any:
        s = st.get("tek_svc", t)
        return ops.implies(
            ops.and_(st.get("holds", u, t), st.get("revoked", u, s)),
            st.get("gen_ev", t) < st.get("revoke_ev", u, s),
        )

    def no_new_traffic(u: Any, p: Any) -> Any:
        t = st.get("pkt_tek", p)
        s = st.get("tek_svc", t)
        return ops.implies(
            ops.and_(st.get("decrypted", u, p), st.get("revoked", u, s)),
            st.get("act_ev", t) < st.get("revoke_ev", u, s),
        )

    return ops.and_(for_all(ops, (UE, TEK), no_new_keys), for_all(ops, (UE, PKT), no_new_traffic))


def p7_backward_secrecy(ops: Ops, st: Reader) -> Any:
    return for_all(
        ops,
        (UE, PKT),
        lambda u, p: ops.implies(
            st.get("decrypted", u, p),
            st.get("pkt_ev", p) > st.get("join_ev", u, st.get("tek_svc", st.get("pkt_tek", p))),
        ),
    )


def p8_no_rollback(ops: Ops, st: Reader) -> Any:
    return for_all(ops, (UE,), lambda u: ops.not_(st.get("rolled_back", u)))


def p9_premise(ops: Ops, st: Reader, u: Any, s: Any) -> Any:
    return ops.and_(
        st.get("saw_unknown", u, s),
        st.get("subscribed", u, s),
        st.get("covered", u),
        st.get("has_active", s),
    )


def p9_goal(ops: Ops, st: Reader, u: Any, s: Any) -> Any:
    return st.get("holds", u, st.get("active", s))


PROPERTIES: tuple[Property, ...] = (
    Property(
        1,
        "decrypt_needs_authorised_tek",
        "No UE decrypts without an authorised TEK",
        ("6.2.2/AUTH-BEFORE-TEK", "6.2.2/STEP7", "6.2.1/TEK-TO-REGISTERED", "6.2.2/JOIN-NOT-AUTH"),
        "A UE decrypts a packet only if the BM-SC delivered that packet's TEK to it, "
        "which it does only while the UE is authenticated and authorised.",
        "invariant",
        body=p1_decrypt_needs_authorised_tek,
    ),
    Property(
        2,
        "send_only_to_authorised",
        "TEKs go only to authenticated, authorised UEs",
        ("6.2.2/AUTH-BEFORE-TEK", "6.2.2/STEP4", "6.2.3.2/DELIVERY"),
        "Every step that delivers a TEK to a UE starts from a state where the UE is "
        "authenticated and subscribed to that TEK's service, and the TEK exists.",
        "step",
        body=p2_send_only_to_authorised,
    ),
    Property(
        3,
        "mki_unique_and_present",
        "MKIs are unique and every packet carries one",
        ("6.2.2/STEP4-MKI", "6.2.3.3/MKI-IN-PACKETS", "6.3/MKI-MANDATORY", "6.2.2/STEP7"),
        "No two TEKs of a service share an MKI, and every SRTP packet carries the MKI "
        "of a generated TEK.",
        "invariant",
        body=p3_mki_unique_and_present,
    ),
    Property(
        4,
        "activation_after_delivery",
        "Every synchronised UE has the TEK at activation",
        ("6.2.3.3/FETCHED-FIRST", "6.2.2/STEP4-MKI", "6.2.3.3/ACTIVATE"),
        "When a TEK is activated, every registered, authorised UE in coverage that lost "
        "neither a delivery nor coverage since its last fetch already holds it.",
        "invariant",
        body=p4_activation_after_delivery,
    ),
    Property(
        5,
        "tek_secrecy",
        "TEK secrecy",
        ("6.2.1/TEK-UNDER-KEK", "6.2.1/KEK-PER-UE", "3.1/KEK"),
        "The attacker knows a TEK only if it was delivered to a UE that colludes with it.",
        "invariant",
        body=p5_tek_secrecy,
    ),
    Property(
        6,
        "forward_secrecy",
        "Forward secrecy on revocation",
        ("6.2.3.1/REASONS", "6.2.2/AUTH-BEFORE-TEK"),
        "A revoked UE holds no TEK generated after its revocation, and decrypts no packet "
        "sent under a TEK activated after its revocation.",
        "invariant",
        body=p6_forward_secrecy,
    ),
    Property(
        7,
        "backward_secrecy",
        "Backward secrecy on join",
        ("6.2.3.1/REASONS", "6.2.1/TEK-TO-REGISTERED"),
        "A UE decrypts no packet sent before it first subscribed to the service.",
        "invariant",
        body=p7_backward_secrecy,
        holds_in_baseline=False,
    ),
    Property(
        8,
        "no_rollback",
        "No rollback",
        ("D/REPLAY", "6.2.3.3/UE-SWITCH"),
        "A UE never installs a TEK older than one of the same service it already holds.",
        "invariant",
        body=p8_no_rollback,
    ),
    Property(
        9,
        "unknown_mki_recovery",
        "Recovery after an unknown MKI (bounded)",
        ("6.2.3.3/UNKNOWN-MKI", "6.2.3.2/REREGISTER"),
        "A subscribed UE in coverage that has seen an unknown MKI holds the service's "
        "active TEK after at most two steps of its own (authenticate, re-register), when "
        "no message is lost.",
        "response",
        premise=p9_premise,
        goal=p9_goal,
        plan=(("Authenticate", (("u", "u"),)), ("Register", (("u", "u"), ("s", "s"), ("f", 1)))),
    ),
)


def property_by_number(number: int) -> Property:
    for prop in PROPERTIES:
        if prop.number == number:
            return prop
    raise KeyError(number)

"""The key-lifecycle properties the proposed text is meant to guarantee.

Each property is stated once, as a formula over the vocabulary, and read both
concretely (Hypothesis, trace checking) and by Z3 (proofs, bounded search).

* ``invariant`` properties are state formulas that must hold in every reachable state;
* ``step`` properties relate the pre- and post-state of every transition;
* the ``liveness`` property (9) says that whenever a premise holds, a goal holds later,
  on every run that is fair (:data:`FAIRNESS`): a UE that keeps trying and a network that
  does not lose one UE's answers forever;
* the ``response`` property (12) is its bounded form: a given short plan of UE actions,
  started in any reachable state satisfying the premise, is enabled and reaches the
  goal; its bound is the plan's length.

Properties read the design state (what the BM-SC and the UEs hold) and the *history*
symbols (:class:`~mbmssec.model.dsl.Symbol` role ``"history"``: what was sent to whom
while authenticated, which packets reached which UE), never a flag that an action sets
to report on itself, so that a faulty action cannot hide its own evidence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from mbmssec.model.dsl import Ops, Reader, Sort

UE, SVC, TEK, PKT = Sort.UE, Sort.SVC, Sort.TEK, Sort.PKT


class Why(Protocol):
    """What a property's ``why`` renderer reads about a trace's violating state
    (see :mod:`mbmssec.model.explain`)."""

    def get(self, name: str, *args: Any) -> Any:
        """The value of ``name(args)`` in the violating state."""
        ...

    def name(self, sort: Sort, element: Any) -> str:
        """The element's name in traces and charts (``UE0``, ``P1``)."""
        ...

    def since(self, name: str, *args: Any) -> int:
        """The step after which ``name(args)`` has had its value (0: from the start)."""
        ...


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
    #: liveness only: the proof certificate (see :mod:`mbmssec.proofs.liveness`):
    #: ``pending(ops, st, u, s)`` holds from the premise until the goal; ``enabler`` is
    #: a weakly fair action of the UE that makes ``ready(ops, st, u, s)`` true, and
    #: ``helpful`` a strongly fair action that, taken while pending, reaches the goal.
    pending: Callable[..., Any] | None = None
    ready: Callable[..., Any] | None = None
    enabler: tuple[str, tuple[tuple[str, str | int], ...]] | None = None
    helpful: tuple[str, tuple[tuple[str, str | int], ...]] | None = None
    #: invariants and step properties: ``why(w, *instance)`` words why the formula fails
    #: for a failing instance of the quantifiers over the sorts ``why_over`` (``w`` a
    #: :class:`Why`); without it, the explanation lists the facts the instance reads
    why: Callable[..., str] | None = None
    why_over: tuple[Sort, ...] = ()
    #: "" for the model's own properties; the name of the proposal that adds it otherwise
    origin: str = ""

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
            st.get("decrypted", u, p), st.get("auth_dlv", u, st.get("pkt_tek", p))
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


def synchronised(ops: Ops, st: Reader, u: Any, s: Any) -> Any:
    """The UE received a delivery for the service, has lost no delivery, coverage or
    authorisation since, and is in coverage: read from the history, not from the BM-SC's
    registration records."""
    return ops.and_(st.get("in_sync", u, s), st.get("covered", u))


def p4_activation_after_delivery(ops: Ops, pre: Reader, post: Reader) -> Any:
    def newly_active(s: Any) -> Any:
        return ops.and_(
            post.get("has_active", s),
            ops.or_(
                ops.not_(pre.get("has_active", s)), pre.get("active", s) != post.get("active", s)
            ),
        )

    return for_all(
        ops,
        (SVC, UE),
        lambda s, u: ops.implies(
            ops.and_(newly_active(s), synchronised(ops, pre, u, s)),
            pre.get("holds", u, post.get("active", s)),
        ),
    )


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
        rev = st.get("revoke_ev", u, s)
        return ops.implies(
            ops.and_(
                ops.or_(st.get("holds", u, t), st.get("overheard", u, t)), st.get("revoked", u, s)
            ),
            ops.and_(
                st.get("gen_ev", t) < rev,
                ops.implies(st.get("activated", t), st.get("act_ev", t) < rev),
            ),
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
            st.get("pkt_ev", p) > st.get("joined_ev", u, st.get("tek_svc", st.get("pkt_tek", p))),
        ),
    )


def p7_why(w: Why, u: Any, p: Any) -> str:
    """The late joiner: which packet the UE decrypted, when it was sent and under which
    TEK, and when the UE first subscribed to that TEK's service."""
    t = w.get("pkt_tek", p)
    s = w.get("tek_svc", t)
    ue, joined = w.name(UE, u), w.since("joined_ev", u, s)
    svc = w.name(SVC, s)
    first = (
        f"first subscribed to {svc} at step {joined}" if joined else f"never subscribed to {svc}"
    )
    return (
        f"{ue} decrypts {w.name(PKT, p)} at step {w.since('decrypted', u, p)}, a packet sent "
        f"at step {w.since('pkt_ev', p)} under {w.name(TEK, t)}, but {ue} {first}"
    )


def p8_no_rollback(ops: Ops, pre: Reader, post: Reader) -> Any:
    def installs_older(u: Any, t: Any) -> Any:
        newer_held = ops.exists(
            TEK,
            lambda y: ops.and_(
                pre.get("holds", u, y),
                pre.get("tek_svc", y) == pre.get("tek_svc", t),
                pre.get("gen_ev", y) > pre.get("gen_ev", t),
            ),
        )
        return ops.and_(post.get("holds", u, t), ops.not_(pre.get("holds", u, t)), newer_held)

    return for_all(ops, (UE, TEK), lambda u, t: ops.not_(installs_older(u, t)))


def p9_premise(ops: Ops, st: Reader, u: Any, s: Any) -> Any:
    """A packet under the service's active TEK, which the UE does not hold, reached the
    subscribed UE, which is in coverage."""
    act = st.get("active", s)
    reached = ops.exists(
        PKT, lambda p: ops.and_(st.get("heard", u, p), st.get("pkt_tek", p) == act)
    )
    return ops.and_(
        st.get("has_active", s),
        reached,
        ops.not_(st.get("holds", u, act)),
        st.get("subscribed", u, s),
        st.get("covered", u),
    )


def p9_goal(ops: Ops, st: Reader, u: Any, s: Any) -> Any:
    """The UE holds the service's active TEK, or it is no longer subscribed or in
    coverage (the promise is made only to a subscribed UE in coverage)."""
    return ops.or_(
        st.get("holds", u, st.get("active", s)),
        ops.not_(st.get("subscribed", u, s)),
        ops.not_(st.get("covered", u)),
    )


def p12_goal(ops: Ops, st: Reader, u: Any, s: Any) -> Any:
    return st.get("holds", u, st.get("active", s))


def p13_premise(ops: Ops, st: Reader, u: Any, s: Any) -> Any:
    """The UE is registered for the service, still subscribed and in coverage, the
    service has an active TEK, and the UE's fetch time has come."""
    return ops.and_(
        st.get("registered", u, s),
        st.get("subscribed", u, s),
        st.get("covered", u),
        st.get("has_active", s),
        st.get("fetch_time", u, s) <= st.get("clock"),
    )


def p13_goal(ops: Ops, st: Reader, u: Any, s: Any) -> Any:
    """The UE fetched: its next fetch time lies in the future."""
    return st.get("fetch_time", u, s) > st.get("clock")


def p14_fetch_discipline(ops: Ops, pre: Reader, post: Reader) -> Any:
    def body(u: Any, s: Any) -> Any:
        served = post.get("fetches", u, s) > pre.get("fetches", u, s)
        early = ops.and_(
            pre.get("registered", u, s), pre.get("clock") < pre.get("fetch_time", u, s)
        )
        return ops.implies(ops.and_(served, early), pre.get("heard_unheld", u, s))

    return for_all(ops, (UE, SVC), body)


def p9_pending(ops: Ops, st: Reader, u: Any, s: Any) -> Any:
    """Proof certificate of property 9: the UE is subscribed, in coverage, lacks the
    active TEK and has noted an unknown MKI, so it may re-register at once."""
    return ops.and_(
        st.get("has_active", s),
        ops.not_(p9_goal(ops, st, u, s)),
        st.get("saw_unknown", u, s),
    )


def p9_ready(ops: Ops, st: Reader, u: Any, s: Any) -> Any:
    return st.get("authenticated", u)


def p10_availability(ops: Ops, pre: Reader, post: Reader) -> Any:
    def first_reception(u: Any, p: Any) -> Any:
        return ops.and_(post.get("heard", u, p), ops.not_(pre.get("heard", u, p)))

    def under_active(u: Any, p: Any) -> Any:
        t = pre.get("pkt_tek", p)
        s = pre.get("tek_svc", t)
        return ops.and_(
            pre.get("has_active", s), pre.get("active", s) == t, synchronised(ops, pre, u, s)
        )

    return for_all(
        ops,
        (UE, PKT),
        lambda u, p: ops.implies(
            ops.and_(first_reception(u, p), under_active(u, p)), post.get("decrypted", u, p)
        ),
    )


def p11_key_hygiene(ops: Ops, st: Reader) -> Any:
    def body(u: Any, p: Any, y: Any) -> Any:
        t = st.get("pkt_tek", p)
        return ops.implies(
            ops.and_(
                st.get("decrypted", u, p),
                st.get("pkt_has_mki", p),
                st.get("holds", u, y),
                st.get("tek_svc", y) == st.get("tek_svc", t),
            ),
            st.get("gen_ev", y) >= st.get("gen_ev", t),
        )

    return for_all(ops, (UE, PKT, TEK), body)


PROPERTIES: tuple[Property, ...] = (
    Property(
        1,
        "decrypt_needs_authorised_tek",
        "No UE decrypts without an authorised TEK",
        ("6.2.2/AUTH-BEFORE-TEK", "6.2.2/STEP7", "6.2.1/TEK-TO-REGISTERED", "6.2.2/JOIN-NOT-AUTH"),
        "A UE decrypts a packet only under a TEK that the BM-SC sent it in a delivery made "
        "while the UE was authenticated and authorised for the service (read from the "
        "history of deliveries, not from the delivery's guard).",
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
        "In every step that makes a TEK the service's active TEK, every registered, "
        "authorised UE in coverage that lost neither a delivery nor coverage since its "
        "last fetch already holds it (read from what the UEs hold before the step).",
        "step",
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
        "A revoked UE, which keeps listening, knows (holds, or read from another UE's "
        "delivery) no TEK generated after its revocation nor one activated after it, and "
        "decrypts no packet sent under a TEK activated after its revocation.",
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
        why=p7_why,
        why_over=(UE, PKT),
    ),
    Property(
        8,
        "no_rollback",
        "No rollback",
        ("D/REPLAY", "6.2.3.3/UE-SWITCH"),
        "No step gives a UE a TEK older than one of the same service it already holds.",
        "step",
        body=p8_no_rollback,
    ),
    Property(
        9,
        "unknown_mki_recovery",
        "Recovery after an unknown MKI",
        ("6.2.3.3/UNKNOWN-MKI", "6.2.3.2/REREGISTER"),
        "On every fair run: a subscribed UE in coverage that was reached by a packet under "
        "the service's active TEK without holding that TEK eventually holds the active "
        "TEK, unless it leaves coverage or loses its subscription first.  Fair means: a "
        "UE in coverage keeps authenticating, a registration that keeps being possible "
        "is eventually answered and reaches the UE (no answer is lost forever), and time "
        "advances when nothing holds it back.  The BM-SC's key schedule is not assumed to "
        "move on: recovery must not wait for the next key switch.",
        "liveness",
        premise=p9_premise,
        goal=p9_goal,
        pending=p9_pending,
        ready=p9_ready,
        enabler=("Authenticate", (("u", "u"),)),
        helpful=("Register", (("u", "u"), ("s", "s"), ("f", 1))),
    ),
    Property(
        10,
        "availability",
        "Synchronised UEs decrypt the active TEK's packets",
        ("6.2.3.3/UE-SWITCH", "6.2.3.3/FETCHED-FIRST", "6.2.2/STEP7"),
        "When a packet under the service's active TEK first reaches a registered, "
        "authorised UE in coverage that lost neither a delivery nor coverage since its "
        "last fetch, the UE decrypts it (no false rejection).",
        "step",
        body=p10_availability,
    ),
    Property(
        11,
        "key_hygiene",
        "No older key kept after a switch",
        ("6.2.3.3/UE-SWITCH",),
        "After decrypting a packet carrying an MKI, a UE holds no TEK of that service "
        "older than the packet's TEK.",
        "invariant",
        body=p11_key_hygiene,
    ),
    Property(
        12,
        "unknown_mki_recovery_bounded",
        "Recovery after an unknown MKI within two steps (bounded)",
        ("6.2.3.3/UNKNOWN-MKI", "6.2.3.2/REREGISTER"),
        "The bounded form of property 9: from any reachable state meeting its premise, "
        "the UE holds the active TEK after two steps of its own (authenticate, "
        "re-register), when no message is lost.",
        "response",
        premise=p9_premise,
        goal=p12_goal,
        plan=(("Authenticate", (("u", "u"),)), ("Register", (("u", "u"), ("s", "s"), ("f", 1)))),
    ),
    Property(
        13,
        "fetch_when_due",
        "A UE whose fetch time has come can fetch",
        ("6.2.2/STEP4-FETCH-TIME", "6.2.3.2/REREGISTER", "6.2.3.2/P2P"),
        "From any reachable state in which a registered UE, subscribed and in coverage, "
        "has reached its fetch time, the UE can authenticate and re-register at once and "
        "is given a fetch time in the future: the BM-SC never turns away a UE that comes "
        "back when it was told to (and time, which waits for that UE, can go on).",
        "response",
        premise=p13_premise,
        goal=p13_goal,
        plan=(("Authenticate", (("u", "u"),)), ("Register", (("u", "u"), ("s", "s"), ("f", 1)))),
    ),
    Property(
        14,
        "fetch_when_told",
        "A registered UE fetches when told, or after an unknown MKI",
        ("6.2.2/STEP4-FETCH-TIME", "6.2.3.2/REREGISTER", "6.2.3.3/UNKNOWN-MKI"),
        "The fetch time spreads the fetches of the UEs over the fetch window: every step "
        "in which the BM-SC serves a registered UE before the fetch time it gave it "
        "follows a packet carrying the MKI of a TEK the UE did not hold, which reached "
        "the UE after its latest delivery (read from the history of deliveries and "
        "receptions, not from the UE's note of an unknown MKI).",
        "step",
        body=p14_fetch_discipline,
    ),
)

#: The fairness assumptions of the liveness property, per action: ``weak`` (an instance
#: enabled from some point on is eventually taken) or ``strong`` (an instance enabled
#: again and again is eventually taken).  Register instances count per (UE, service),
#: whatever fetch time the BM-SC gives.  Nothing else is assumed: the operator, the
#: radio, the attacker and the BM-SC's key schedule may do anything or nothing.
FAIRNESS: tuple[tuple[str, str], ...] = (
    ("Authenticate", "weak"),
    ("Register", "strong"),
    ("Tick", "weak"),
)


def property_by_number(number: int) -> Property:
    for prop in PROPERTIES:
        if prop.number == number:
            return prop
    raise KeyError(number)

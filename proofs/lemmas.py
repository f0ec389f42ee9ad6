"""Named strengthening lemmas for the inductive proofs of the key-lifecycle properties.

A property such as forward secrecy (6.2.3.1) is true in every reachable state but is not
*inductive* on its own: a state that satisfies it can still step to one that does not.
Each lemma below states one more fact about reachable states, written with the same
:class:`~mbmssec.model.dsl.Ops` / :class:`~mbmssec.model.dsl.Reader` vocabulary as the
properties, so it is read by Z3 exactly as the model is.  No lemma is trusted: the
induction (:mod:`mbmssec.proofs.induction`) proves each one inductive relative to the
others, and drops any that is not (Houdini's fixpoint), so a lemma that fails under some
option profile simply does not take part in that profile's proofs.

A lemma may depend on the option profile (``when``): for instance, with re-keying on
join a UE only ever holds TEKs activated after it joined.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mbmssec.model.actions import rekey_on
from mbmssec.model.dsl import Ops, Reader, Sort
from mbmssec.model.properties import for_all

UE, SVC, TEK, PKT = Sort.UE, Sort.SVC, Sort.TEK, Sort.PKT

Prof = Any


@dataclass(frozen=True)
class Lemma:
    """One candidate invariant: ``body(ops, state, profile) -> formula``."""

    name: str
    doc: str
    body: Callable[[Ops, Reader, Prof], Any]
    when: Callable[[Prof], bool] = lambda _p: True


def synchronised(ops: Ops, st: Reader, u: Any, s: Any) -> Any:
    """The BM-SC's and the UE's view of synchronisation: registered, authorised, in
    coverage and no delivery or coverage lost since the last fetch."""
    return ops.and_(
        st.get("registered", u, s),
        st.get("subscribed", u, s),
        st.get("covered", u),
        ops.not_(st.get("dropped", u, s)),
    )


def _lemma(
    name: str, when: Callable[[Prof], bool] = lambda _p: True
) -> Callable[[Callable[[Ops, Reader, Prof], Any]], Lemma]:
    def wrap(body: Callable[[Ops, Reader, Prof], Any]) -> Lemma:
        return Lemma(name, (body.__doc__ or "").strip(), body, when)

    return wrap


# -- where things come from ------------------------------------------------------------


@_lemma("decrypted_sent")
def decrypted_sent(ops: Ops, st: Reader, prof: Prof) -> Any:
    """A UE decrypted only packets that were sent."""
    return for_all(
        ops, (UE, PKT), lambda u, p: ops.implies(st.get("decrypted", u, p), st.get("sent", p))
    )


@_lemma("sent_activated")
def sent_activated(ops: Ops, st: Reader, prof: Prof) -> Any:
    """A sent packet is under an activated TEK, stamped after that activation."""
    return for_all(
        ops,
        (PKT,),
        lambda p: ops.implies(
            st.get("sent", p),
            ops.and_(
                st.get("activated", st.get("pkt_tek", p)),
                st.get("act_ev", st.get("pkt_tek", p)) < st.get("pkt_ev", p),
            ),
        ),
    )


@_lemma("holds_delivered")
def holds_delivered(ops: Ops, st: Reader, prof: Prof) -> Any:
    """A UE holds only TEKs the BM-SC delivered to it."""
    return for_all(
        ops, (UE, TEK), lambda u, t: ops.implies(st.get("holds", u, t), st.get("delivered", u, t))
    )


@_lemma("decrypted_delivered")
def decrypted_delivered(ops: Ops, st: Reader, prof: Prof) -> Any:
    """A UE decrypted only packets under TEKs the BM-SC delivered to it."""
    return for_all(
        ops,
        (UE, PKT),
        lambda u, p: ops.implies(
            st.get("decrypted", u, p), st.get("delivered", u, st.get("pkt_tek", p))
        ),
    )


@_lemma("holds_auth_delivered")
def holds_auth_delivered(ops: Ops, st: Reader, prof: Prof) -> Any:
    """A UE holds only TEKs sent to it while it was authenticated and authorised."""
    return for_all(
        ops, (UE, TEK), lambda u, t: ops.implies(st.get("holds", u, t), st.get("auth_dlv", u, t))
    )


@_lemma("accepted_auth_delivered")
def accepted_auth_delivered(ops: Ops, st: Reader, prof: Prof) -> Any:
    """A delivery the UE accepted (its counter is recorded) was made while the UE was
    authenticated and authorised."""
    return for_all(
        ops,
        (UE, TEK),
        lambda u, t: ops.implies(st.get("dlv_ctr", u, t) > 0, st.get("auth_dlv", u, t)),
    )


@_lemma("accepted_delivered")
def accepted_delivered(ops: Ops, st: Reader, prof: Prof) -> Any:
    """A delivery the UE accepted (its counter is recorded) was sent to it."""
    return for_all(
        ops,
        (UE, TEK),
        lambda u, t: ops.implies(st.get("dlv_ctr", u, t) > 0, st.get("delivered", u, t)),
    )


@_lemma("acked_delivered")
def acked_delivered(ops: Ops, st: Reader, prof: Prof) -> Any:
    """A UE acknowledged only TEKs delivered to it."""
    return for_all(
        ops, (UE, TEK), lambda u, t: ops.implies(st.get("acked", u, t), st.get("delivered", u, t))
    )


@_lemma("delivered_generated")
def delivered_generated(ops: Ops, st: Reader, prof: Prof) -> Any:
    """Only generated TEKs were delivered."""
    return for_all(
        ops,
        (UE, TEK),
        lambda u, t: ops.implies(st.get("delivered", u, t), st.get("generated", t)),
    )


@_lemma("delivered_once_subscribed")
def delivered_once_subscribed(ops: Ops, st: Reader, prof: Prof) -> Any:
    """A TEK was delivered only to a UE once subscribed to its service."""
    return for_all(
        ops,
        (UE, TEK),
        lambda u, t: ops.implies(
            st.get("delivered", u, t), st.get("ever_sub", u, st.get("tek_svc", t))
        ),
    )


@_lemma("activated_generated")
def activated_generated(ops: Ops, st: Reader, prof: Prof) -> Any:
    """An activated TEK was generated first."""
    return for_all(
        ops,
        (TEK,),
        lambda t: ops.implies(
            st.get("activated", t),
            ops.and_(st.get("generated", t), st.get("gen_ev", t) < st.get("act_ev", t)),
        ),
    )


@_lemma("activated_not_newer")
def activated_not_newer(ops: Ops, st: Reader, prof: Prof) -> Any:
    """An activated TEK is no newer than its service's active TEK."""

    def body(t: Any) -> Any:
        s = st.get("tek_svc", t)
        return ops.implies(
            st.get("activated", t),
            ops.and_(
                st.get("has_active", s),
                st.get("gen_ev", t) <= st.get("gen_ev", st.get("active", s)),
            ),
        )

    return for_all(ops, (TEK,), body)


@_lemma("registered_subscribed")
def registered_subscribed(ops: Ops, st: Reader, prof: Prof) -> Any:
    """A registered UE is authorised (revocation ends the registration)."""
    return for_all(
        ops,
        (UE, SVC),
        lambda u, s: ops.implies(st.get("registered", u, s), st.get("subscribed", u, s)),
    )


@_lemma("subscribed_recorded")
def subscribed_recorded(ops: Ops, st: Reader, prof: Prof) -> Any:
    """A subscribed UE's subscription is on record."""
    return for_all(
        ops,
        (UE, SVC),
        lambda u, s: ops.implies(st.get("subscribed", u, s), st.get("ever_sub", u, s)),
    )


# -- the key schedule ----------------------------------------------------------------------


@_lemma("mki_below_next")
def mki_below_next(ops: Ops, st: Reader, prof: Prof) -> Any:
    """Every generated TEK's MKI is below its service's next unused MKI."""
    return for_all(
        ops,
        (TEK,),
        lambda t: ops.implies(
            st.get("generated", t), st.get("mki", t) < st.get("next_mki", st.get("tek_svc", t))
        ),
    )


@_lemma("mki_in_generation_order")
def mki_in_generation_order(ops: Ops, st: Reader, prof: Prof) -> Any:
    """Of two generated TEKs of one service, the one with the lower MKI was generated
    first (so a UE that orders keys by MKI orders them by age)."""

    def body(y: Any, t: Any) -> Any:
        return ops.implies(
            ops.and_(
                st.get("generated", y),
                st.get("generated", t),
                st.get("tek_svc", y) == st.get("tek_svc", t),
            ),
            (st.get("mki", y) < st.get("mki", t)) == (st.get("gen_ev", y) < st.get("gen_ev", t)),
        )

    return for_all(ops, (TEK, TEK), body)


@_lemma("next_fresh")
def next_fresh(ops: Ops, st: Reader, prof: Prof) -> Any:
    """The next TEK is generated, belongs to its service, is neither activated nor
    withdrawn, and is the newest TEK of the service."""

    def body(s: Any) -> Any:
        n = st.get("next", s)
        return ops.implies(
            st.get("has_next", s),
            ops.and_(
                st.get("generated", n),
                st.get("tek_svc", n) == s,
                ops.not_(st.get("activated", n)),
                ops.not_(st.get("withdrawn", n)),
            ),
        )

    return for_all(ops, (SVC,), body)


@_lemma("next_newest")
def next_newest(ops: Ops, st: Reader, prof: Prof) -> Any:
    """Every other generated TEK of a service is older than its next TEK."""
    return for_all(
        ops,
        (SVC, TEK),
        lambda s, y: ops.implies(
            ops.and_(
                st.get("has_next", s),
                st.get("generated", y),
                st.get("tek_svc", y) == s,
                y != st.get("next", s),
            ),
            st.get("gen_ev", y) < st.get("gen_ev", st.get("next", s)),
        ),
    )


@_lemma("active_activated")
def active_activated(ops: Ops, st: Reader, prof: Prof) -> Any:
    """The active TEK was activated and belongs to its service."""
    return for_all(
        ops,
        (SVC,),
        lambda s: ops.implies(
            st.get("has_active", s),
            ops.and_(
                st.get("activated", st.get("active", s)),
                st.get("tek_svc", st.get("active", s)) == s,
            ),
        ),
    )


@_lemma("withdrawn_never_active")
def withdrawn_never_active(ops: Ops, st: Reader, prof: Prof) -> Any:
    """A withdrawn TEK was generated and is never activated."""
    return for_all(
        ops,
        (TEK,),
        lambda t: ops.implies(
            st.get("withdrawn", t),
            ops.and_(st.get("generated", t), ops.not_(st.get("activated", t))),
        ),
    )


@_lemma("delivered_pending")
def delivered_pending(ops: Ops, st: Reader, prof: Prof) -> Any:
    """A delivered TEK not yet activated is its service's next TEK, or was withdrawn."""

    def body(u: Any, t: Any) -> Any:
        s = st.get("tek_svc", t)
        return ops.implies(
            ops.and_(st.get("delivered", u, t), ops.not_(st.get("activated", t))),
            ops.or_(
                ops.and_(st.get("has_next", s), st.get("next", s) == t), st.get("withdrawn", t)
            ),
        )

    return for_all(ops, (UE, TEK), body)


# -- the logical clock -------------------------------------------------------------------


@_lemma("stamps_in_past")
def stamps_in_past(ops: Ops, st: Reader, prof: Prof) -> Any:
    """Every event stamp already given out is below the event counter."""
    ev = st.get("ev")
    return ops.and_(
        for_all(
            ops,
            (TEK,),
            lambda t: ops.and_(
                ops.implies(st.get("generated", t), st.get("gen_ev", t) < ev),
                ops.implies(st.get("activated", t), st.get("act_ev", t) < ev),
            ),
        ),
        for_all(ops, (PKT,), lambda p: ops.implies(st.get("sent", p), st.get("pkt_ev", p) < ev)),
        for_all(
            ops,
            (UE, SVC),
            lambda u, s: ops.and_(
                ops.implies(st.get("ever_sub", u, s), st.get("join_ev", u, s) < ev),
                ops.implies(st.get("revoked", u, s), st.get("revoke_ev", u, s) < ev),
            ),
        ),
    )


# -- authentications and the registrations they served --------------------------------------


@_lemma("auth_stamp_in_past")
def auth_stamp_in_past(ops: Ops, st: Reader, prof: Prof) -> Any:
    """An authenticated UE's authentication is stamped below the event counter."""
    return for_all(
        ops,
        (UE,),
        lambda u: ops.implies(st.get("authenticated", u), st.get("auth_ev", u) < st.get("ev")),
    )


@_lemma("registration_auth_in_past")
def registration_auth_in_past(ops: Ops, st: Reader, prof: Prof) -> Any:
    """The authentication a registration was made under is stamped below the event
    counter."""
    return for_all(
        ops,
        (UE, SVC),
        lambda u, s: ops.implies(
            st.get("registered", u, s), st.get("dlv_auth", u, s) < st.get("ev")
        ),
    )


@_lemma(
    "registration_spends_authentication",
    when=lambda prof: prof["second_service_auth"] == "reauthenticate",
)
def registration_spends_authentication(ops: Ops, st: Reader, prof: Prof) -> Any:
    """When every registration runs Digest AKA again, an authenticated UE's
    authentication is newer than the one each of its registrations was made under (a
    delivery spends the authentication it was made under)."""
    return for_all(
        ops,
        (UE, SVC),
        lambda u, s: ops.implies(
            ops.and_(st.get("authenticated", u), st.get("registered", u, s)),
            st.get("dlv_auth", u, s) < st.get("auth_ev", u),
        ),
    )


# -- synchronisation ---------------------------------------------------------------------


@_lemma("counters_ordered")
def counters_ordered(ops: Ops, st: Reader, prof: Prof) -> Any:
    """The UE's MIKEY counter never passes the BM-SC's."""
    return for_all(ops, (UE,), lambda u: st.get("ue_ctr", u) <= st.get("ctr", u))


@_lemma("accepted_counters_seen")
def accepted_counters_seen(ops: Ops, st: Reader, prof: Prof) -> Any:
    """Every accepted delivery's counter is at most the UE's (so a replay is never
    fresh)."""
    return for_all(ops, (UE, TEK), lambda u, t: st.get("dlv_ctr", u, t) <= st.get("ue_ctr", u))


@_lemma("uncovered_dropped")
def uncovered_dropped(ops: Ops, st: Reader, prof: Prof) -> Any:
    """A UE out of coverage counts as out of synchronisation for every service."""
    return for_all(
        ops,
        (UE, SVC),
        lambda u, s: ops.implies(ops.not_(st.get("covered", u)), st.get("dropped", u, s)),
    )


@_lemma("fetch_time_ahead")
def fetch_time_ahead(ops: Ops, st: Reader, prof: Prof) -> Any:
    """A synchronised UE's fetch time has not passed (time waits for UEs to fetch)."""
    return for_all(
        ops,
        (UE, SVC),
        lambda u, s: ops.implies(
            synchronised(ops, st, u, s), st.get("fetch_time", u, s) >= st.get("clock")
        ),
    )


@_lemma("synchronised_holds_next")
def synchronised_holds_next(ops: Ops, st: Reader, prof: Prof) -> Any:
    """A synchronised UE that was sent the next TEK still holds it."""
    return for_all(
        ops,
        (UE, SVC),
        lambda u, s: ops.implies(
            ops.and_(
                synchronised(ops, st, u, s),
                st.get("has_next", s),
                st.get("delivered", u, st.get("next", s)),
            ),
            st.get("holds", u, st.get("next", s)),
        ),
    )


@_lemma("synchronised_holds_active", when=lambda prof: not rekey_on(prof, "join"))
def synchronised_holds_active(ops: Ops, st: Reader, prof: Prof) -> Any:
    """A synchronised UE holds its service's active TEK."""
    return for_all(
        ops,
        (UE, SVC),
        lambda u, s: ops.implies(
            ops.and_(synchronised(ops, st, u, s), st.get("has_active", s)),
            st.get("holds", u, st.get("active", s)),
        ),
    )


@_lemma("unheld_active_noticed")
def unheld_active_noticed(ops: Ops, st: Reader, prof: Prof) -> Any:
    """A UE reached by a packet with an MKI under its service's active TEK, which it does
    not hold, has noted an unknown MKI for the service."""

    def body(u: Any, p: Any) -> Any:
        t = st.get("pkt_tek", p)
        s = st.get("tek_svc", t)
        return ops.implies(
            ops.and_(
                st.get("heard", u, p),
                st.get("sent", p),
                st.get("pkt_has_mki", p),
                st.get("has_active", s),
                st.get("active", s) == t,
                ops.not_(st.get("holds", u, t)),
            ),
            st.get("saw_unknown", u, s),
        )

    return for_all(ops, (UE, PKT), body)


@_lemma("noticed_unheld_heard")
def noticed_unheld_heard(ops: Ops, st: Reader, prof: Prof) -> Any:
    """A UE that has noted an unknown MKI for a service was reached, since its latest
    delivery of the service, by a packet with the MKI of a TEK it did not hold."""
    return for_all(
        ops,
        (UE, SVC),
        lambda u, s: ops.implies(st.get("saw_unknown", u, s), st.get("heard_unheld", u, s)),
    )


@_lemma("heard_sent")
def heard_sent(ops: Ops, st: Reader, prof: Prof) -> Any:
    """Only sent packets reached a UE."""
    return for_all(
        ops, (UE, PKT), lambda u, p: ops.implies(st.get("heard", u, p), st.get("sent", p))
    )


@_lemma("in_sync_is_synchronised")
def in_sync_is_synchronised(ops: Ops, st: Reader, prof: Prof) -> Any:
    """The history's synchronisation (in_sync, in coverage) is the BM-SC's and UE's."""
    return for_all(
        ops,
        (UE, SVC),
        lambda u, s: ops.and_(
            ops.implies(st.get("in_sync", u, s), synchronised(ops, st, u, s)),
            ops.implies(synchronised(ops, st, u, s), st.get("in_sync", u, s)),
        ),
    )


@_lemma("join_history_agrees")
def join_history_agrees(ops: Ops, st: Reader, prof: Prof) -> Any:
    """The BM-SC's record of a UE's first subscription is the history's."""
    return for_all(
        ops,
        (UE, SVC),
        lambda u, s: ops.and_(
            st.get("joined", u, s) == st.get("ever_sub", u, s),
            ops.implies(
                st.get("joined", u, s), st.get("joined_ev", u, s) == st.get("join_ev", u, s)
            ),
        ),
    )


@_lemma("holds_active_below_newer")
def holds_active_below_newer(ops: Ops, st: Reader, prof: Prof) -> Any:
    """A UE holding a TEK newer than its service's active TEK also holds the active TEK
    (when the BM-SC sends the active TEK to this UE at all)."""

    def body(u: Any, y: Any) -> Any:
        s = st.get("tek_svc", y)
        act = st.get("active", s)
        sends_active: Any = True
        if rekey_on(prof, "join"):
            sends_active = st.get("act_ev", act) > st.get("join_ev", u, s)
        return ops.implies(
            ops.and_(
                st.get("holds", u, y),
                st.get("has_active", s),
                st.get("gen_ev", y) > st.get("gen_ev", act),
                sends_active,
            ),
            st.get("holds", u, act),
        )

    return for_all(ops, (UE, TEK), body)


# -- membership ----------------------------------------------------------------------------


@_lemma("revoked_unsubscribed")
def revoked_unsubscribed(ops: Ops, st: Reader, prof: Prof) -> Any:
    """A revoked UE is not authorised (until it subscribes again)."""
    return for_all(
        ops,
        (UE, SVC),
        lambda u, s: ops.implies(st.get("revoked", u, s), ops.not_(st.get("subscribed", u, s))),
    )


@_lemma("revoked_keys_old")
def revoked_keys_old(ops: Ops, st: Reader, prof: Prof) -> Any:
    """Every TEK delivered to a revoked UE was generated before the revocation and was
    either activated before it or withdrawn."""

    def body(u: Any, t: Any) -> Any:
        s = st.get("tek_svc", t)
        rev = st.get("revoke_ev", u, s)
        return ops.implies(
            ops.and_(st.get("revoked", u, s), st.get("delivered", u, t)),
            ops.and_(
                st.get("gen_ev", t) < rev,
                ops.or_(
                    st.get("withdrawn", t),
                    ops.and_(st.get("activated", t), st.get("act_ev", t) < rev),
                ),
            ),
        )

    return for_all(ops, (UE, TEK), body)


@_lemma("revoked_lacks_next", when=lambda prof: rekey_on(prof, "leave"))
def revoked_lacks_next(ops: Ops, st: Reader, prof: Prof) -> Any:
    """A revoked UE was never sent its service's next TEK (re-key on leave)."""
    return for_all(
        ops,
        (UE, SVC),
        lambda u, s: ops.implies(
            ops.and_(st.get("revoked", u, s), st.get("has_next", s)),
            ops.not_(st.get("delivered", u, st.get("next", s))),
        ),
    )


@_lemma("joiner_keys_new", when=lambda prof: rekey_on(prof, "join"))
def joiner_keys_new(ops: Ops, st: Reader, prof: Prof) -> Any:
    """With re-keying on join, every activated TEK a UE holds was activated after the UE
    first subscribed to its service."""
    return for_all(
        ops,
        (UE, TEK),
        lambda u, t: ops.implies(
            ops.and_(st.get("holds", u, t), st.get("activated", t)),
            st.get("act_ev", t) > st.get("join_ev", u, st.get("tek_svc", t)),
        ),
    )


# -- the attacker --------------------------------------------------------------------------


@_lemma("attacker_keks_compromised")
def attacker_keks_compromised(ops: Ops, st: Reader, prof: Prof) -> Any:
    """The attacker knows the KEK only of UEs that collude with it."""
    return for_all(
        ops, (UE,), lambda u: ops.implies(st.get("att_kek", u), st.get("compromised", u))
    )


@_lemma("nothing_overheard")
def nothing_overheard(ops: Ops, st: Reader, prof: Prof) -> Any:
    """No UE has read a TEK from another UE's delivery (true when every UE has its own
    KEK; the induction drops it where a KEK is shared)."""
    return for_all(ops, (UE, TEK), lambda u, t: ops.not_(st.get("overheard", u, t)))


LEMMAS: tuple[Lemma, ...] = (
    decrypted_sent,
    sent_activated,
    holds_delivered,
    decrypted_delivered,
    holds_auth_delivered,
    accepted_auth_delivered,
    accepted_delivered,
    acked_delivered,
    delivered_generated,
    delivered_once_subscribed,
    activated_generated,
    activated_not_newer,
    registered_subscribed,
    subscribed_recorded,
    mki_below_next,
    mki_in_generation_order,
    next_fresh,
    next_newest,
    active_activated,
    withdrawn_never_active,
    delivered_pending,
    stamps_in_past,
    auth_stamp_in_past,
    registration_auth_in_past,
    registration_spends_authentication,
    counters_ordered,
    accepted_counters_seen,
    uncovered_dropped,
    fetch_time_ahead,
    synchronised_holds_next,
    synchronised_holds_active,
    in_sync_is_synchronised,
    join_history_agrees,
    unheld_active_noticed,
    noticed_unheld_heard,
    heard_sent,
    holds_active_below_newer,
    revoked_unsubscribed,
    revoked_keys_old,
    revoked_lacks_next,
    joiner_keys_new,
    attacker_keks_compromised,
    nothing_overheard,
)


def lemmas_for(profile: Prof) -> tuple[Lemma, ...]:
    """The candidate lemmas that apply under ``profile``."""
    return tuple(lem for lem in LEMMAS if lem.when(profile))

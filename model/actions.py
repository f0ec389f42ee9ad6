"""The actions of the MBMS key-management model, each tagged with its clauses.

Every action is one guarded update written once in the language of
:mod:`mbmssec.model.dsl`; the concrete and the Z3 readings both run this code.
Options of the profile (``prof[...]``) are fixed per model instance, so reading them
with Python ``if`` is allowed; state values never are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mbmssec.model.dsl import Action, Ops, Param, Sort, Step
from mbmssec.model.vocabulary import FETCH_WINDOW, VOCABULARY

UE, SVC, TEK, PKT, BOOL, INT = Sort.UE, Sort.SVC, Sort.TEK, Sort.PKT, Sort.BOOL, Sort.INT

Prof = Any  # a mbmssec.spec.loader.Profile; kept loose so the model stays data-driven


def action(
    *,
    params: tuple[Param, ...],
    modifies: tuple[str, ...],
    clauses: tuple[str, ...],
    actor: str,
    applies: Callable[[Prof], bool] = lambda _p: True,
    radio: tuple[str, ...] = (),
) -> Callable[[Callable[..., None]], Action]:
    """Turn a body function into an :class:`Action` carrying its declaration.

    ``radio`` names the UEs whose radio link the action uses: it happens only while they
    are in coverage (the world's condition, added by the language; see
    :attr:`~mbmssec.model.dsl.Action.radio`)."""

    def wrap(body: Callable[..., None]) -> Action:
        return Action(
            name=body.__name__.strip("_").title().replace("_", ""),
            params=params,
            modifies=VOCABULARY.with_stamps(frozenset(modifies)),
            clauses=clauses,
            actor=actor,
            doc=(body.__doc__ or "").strip(),
            body=body,
            applies=applies,
            radio=radio,
        )

    return wrap


def _p(name: str, sort: Sort, lo: int = 0, hi: int | None = 0, enum_hi: int = 0) -> Param:
    return Param(name, sort, lo, hi, enum_hi)


#: The fetch time a delivery gives, as a delay ``f`` after now: any future time (the text
#: puts no bound on it; finite searches try up to FETCH_WINDOW).
_FETCH_DELAY = _p("f", INT, 1, None, FETCH_WINDOW)


def _tick_event(st: Step) -> Any:
    """Stamp an event: returns the stamp and advances the logical counter."""
    stamp = st.get("ev")
    st.set("ev", (), stamp + 1)
    return stamp


# -- authorisation database (operator side) -------------------------------------------


@action(
    params=(_p("u", UE), _p("s", SVC)),
    modifies=("subscribed", "ever_sub", "join_ev", "revoked", "ev", "joined", "joined_ev"),
    clauses=("6.2.2/AUTH-BEFORE-TEK", "6.2.3.1/REASONS"),
    actor="BM-SC",
)
def subscribe(ops: Ops, st: Step, prof: Prof, u: Any, s: Any) -> None:
    """The operator authorises the UE for the service (a join)."""
    ops.require(ops.not_(st.get("subscribed", u, s)))
    stamp = _tick_event(st)
    st.set("subscribed", (u, s), True)
    st.set("revoked", (u, s), False)
    st.set("ever_sub", (u, s), True)
    st.set("join_ev", (u, s), ops.ite(st.get("ever_sub", u, s), st.get("join_ev", u, s), stamp))
    # history
    st.set("joined_ev", (u, s), ops.ite(st.get("joined", u, s), st.get("joined_ev", u, s), stamp))
    st.set("joined", (u, s), True)


def rekey_on(prof: Prof, event: str) -> bool:
    """Does the profile re-key on this membership event ("join" or "leave")?"""
    return bool(prof["membership_rekey"] in (event, "both"))


@action(
    params=(_p("u", UE), _p("s", SVC)),
    modifies=(
        "subscribed",
        "registered",
        "revoked",
        "revoke_ev",
        "ev",
        "has_next",
        "withdrawn",
        "in_sync",
    ),
    clauses=("6.2.3.1/REASONS", "6.2.2/AUTH-BEFORE-TEK"),
    actor="BM-SC",
)
def revoke(ops: Ops, st: Step, prof: Prof, u: Any, s: Any) -> None:
    """The operator withdraws the UE's authorisation (a leave).

    With re-keying on leave, a next TEK the BM-SC already gave this UE is discarded,
    so the leaver never sees it activated.
    """
    ops.require(st.get("subscribed", u, s))
    stamp = _tick_event(st)
    st.set("subscribed", (u, s), False)
    st.set("registered", (u, s), False)
    st.set("revoked", (u, s), True)
    st.set("revoke_ev", (u, s), stamp)
    st.set("in_sync", (u, s), False)
    if rekey_on(prof, "leave"):
        nxt = st.get("next", s)
        leak = ops.and_(st.get("has_next", s), st.get("delivered", u, nxt))
        st.set("has_next", (s,), ops.and_(st.get("has_next", s), ops.not_(leak)))
        st.set("withdrawn", (nxt,), ops.or_(st.get("withdrawn", nxt), leak))


# -- authentication and registration ---------------------------------------------------


@action(
    params=(_p("u", UE),),
    modifies=("authenticated", "ev"),
    clauses=("6.2.2/STEP3", "6.2.1/KEK-FROM-AUTH", "6.2.3.2/REREGISTER"),
    actor="UE",
    radio=("u",),
)
def authenticate(ops: Ops, st: Step, prof: Prof, u: Any) -> None:
    """HTTP Digest AKA between the UE and the BM-SC succeeds; both now share a KEK."""
    _tick_event(st)  # the language stamps auth_ev (when authenticated becomes true)
    st.set("authenticated", (u,), True)


_REGISTER_MODIFIES = (
    "registered",
    "fetch_time",
    "ctr",
    "delivered",
    "authenticated",
    "auth_dlv",
    "dlv_auth",
    "fetches",
)
_RECEIVE_MODIFIES = (
    "in_sync",
    "holds",
    "dlv_ctr",
    "ue_ctr",
    "dropped",
    "saw_unknown",
    "current",
    "has_current",
    "heard_unheld",
)


def _bmsc_delivery(
    ops: Ops, st: Step, prof: Prof, u: Any, s: Any, f: Any
) -> tuple[Any, Any, Any, Any]:
    """Steps 2-4 (and 6.2.3.2) at the BM-SC: guard, and which keys go out (the request
    comes over the UE's radio link: the actions that call this declare ``radio``).

    Returns ``(send_active, send_next, active, next)``.
    """
    ops.require(st.get("authenticated", u))
    ops.require(st.get("subscribed", u, s))  # the authorisation check of step 4
    ops.require(st.get("has_active", s))
    # A registered UE comes back at its fetch time, or earlier after an unknown MKI.
    early_ok = st.get("saw_unknown", u, s) if prof["unknown_mki_resync"] == "refetch" else False
    ops.require(
        ops.or_(
            ops.not_(st.get("registered", u, s)),
            st.get("fetch_time", u, s) <= st.get("clock"),
            early_ok,
        )
    )
    act, nxt = st.get("active", s), st.get("next", s)
    send_active: Any = True
    if rekey_on(prof, "join"):
        send_active = st.get("act_ev", act) > st.get("join_ev", u, s)
    send_next = st.get("has_next", s)
    st.set("registered", (u, s), True)
    st.set("fetch_time", (u, s), st.get("clock") + f)
    st.set("ctr", (u,), st.get("ctr", u) + 1)

    def goes_out(v: Any, t: Any) -> Any:
        return ops.and_(
            v == u, ops.or_(ops.and_(send_active, t == act), ops.and_(send_next, t == nxt))
        )

    st.set_all("delivered", lambda v, t: ops.or_(st.get("delivered", v, t), goes_out(v, t)))
    # history: whether the UE was authenticated and authorised when this delivery was
    # made, read from the state the guards above are meant to check
    cleared = ops.and_(st.get("authenticated", u), st.get("subscribed", u, s))
    st.set_all(
        "auth_dlv",
        lambda v, t: ops.or_(st.get("auth_dlv", v, t), ops.and_(goes_out(v, t), cleared)),
    )
    # history: which authentication this delivery for the service was made under, and
    # one more delivery of the service to the UE
    st.set("dlv_auth", (u, s), st.get("auth_ev", u))
    st.set("fetches", (u, s), st.get("fetches", u, s) + 1)
    if prof["second_service_auth"] == "reauthenticate":
        st.set("authenticated", (u,), False)
    return send_active, send_next, act, nxt


@action(
    params=(_p("u", UE), _p("s", SVC), _FETCH_DELAY),
    modifies=(*_REGISTER_MODIFIES, *_RECEIVE_MODIFIES, "cached", "in_window"),
    clauses=(
        "6.2.2/P2P",
        "6.2.2/STEP2",
        "6.2.2/STEP4",
        "6.2.2/STEP4-MKI",
        "6.2.2/STEP4-FETCH-TIME",
        "6.2.2/AUTH-BEFORE-TEK",
        "6.2.1/TEK-TO-REGISTERED",
        "6.2.1/BMSC-GENERATES",
        "6.2.1/TEK-UNDER-KEK",
        "6.2.3.2/P2P",
        "6.2.3.2/REREGISTER",
        "6.2.3.2/DELIVERY",
        "6.2.2/SECOND-SERVICE",
        "6.2.1/KEK-PER-UE",
    ),
    actor="UE",
    radio=("u",),
)
def register(ops: Ops, st: Step, prof: Prof, u: Any, s: Any, f: Any) -> None:
    """The UE (re-)registers; the BM-SC delivers the active and next TEK with their MKIs
    and a fetch time ``clock + f`` in MIKEY under the UE's KEK, and the UE installs them."""
    send_a, send_n, act, nxt = _bmsc_delivery(ops, st, prof, u, s, f)
    counter = st.get("ctr", u) + 1
    # The UE checks a fresh delivery's replay counter as it checks a replayed one, and
    # drops a delivery that fails the check (D/REPLAY).
    fresh: Any = True
    if prof["replay_protection"] != "none":
        fresh = counter > st.get("ue_ctr", u)

    def new_here(t: Any) -> Any:
        return ops.or_(ops.and_(send_a, t == act), ops.and_(send_n, t == nxt))

    def installs(v: Any, t: Any) -> Any:
        return ops.and_(v == u, fresh, new_here(t))

    st.set_all("holds", lambda v, t: ops.or_(st.get("holds", v, t), installs(v, t)))
    st.set_all("dlv_ctr", lambda v, t: ops.ite(installs(v, t), counter, st.get("dlv_ctr", v, t)))
    st.set("ue_ctr", (u,), ops.ite(fresh, counter, st.get("ue_ctr", u)))
    if prof["replay_protection"] == "timestamp":
        # the message's timestamp is now: in the window, and recorded in the replay cache
        st.set_all("cached", lambda v, t: ops.or_(st.get("cached", v, t), installs(v, t)))
        st.set_all("in_window", lambda v, t: ops.or_(st.get("in_window", v, t), installs(v, t)))
    st.set("dropped", (u, s), False)
    st.set("in_sync", (u, s), True)  # the delivery reached the UE (history)
    st.set("heard_unheld", (u, s), False)  # (history) nothing heard since this delivery
    st.set("saw_unknown", (u, s), ops.and_(st.get("saw_unknown", u, s), ops.not_(fresh)))
    switch = ops.and_(fresh, send_a)
    st.set("current", (u, s), ops.ite(switch, act, st.get("current", u, s)))
    st.set("has_current", (u, s), ops.or_(st.get("has_current", u, s), switch))


@action(
    params=(_p("u", UE), _p("s", SVC), _FETCH_DELAY),
    modifies=(*_REGISTER_MODIFIES, "dropped", "in_sync"),
    clauses=("6.2.2/STEP4", "6.2.3.2/DELIVERY", "6.2.3.3/UNKNOWN-MKI"),
    actor="net",
    radio=("u",),
)
def delivery_lost(ops: Ops, st: Step, prof: Prof, u: Any, s: Any, f: Any) -> None:
    """As Register, but the HTTP response carrying the MIKEY message never reaches the UE."""
    _bmsc_delivery(ops, st, prof, u, s, f)
    st.set("dropped", (u, s), True)
    st.set("in_sync", (u, s), False)


@action(
    params=(_p("u", UE), _p("s", SVC)),
    modifies=("acked",),
    clauses=("6.2.2/STEP4B",),
    actor="UE",
    applies=lambda prof: prof["mikey_response"] != "none",
    radio=("u",),
)
def acknowledge(ops: Ops, st: Step, prof: Prof, u: Any, s: Any) -> None:
    """The UE confirms the next TEK with the MIKEY response message (step 4b)."""
    nxt = st.get("next", s)
    ops.require(ops.and_(st.get("has_next", s), st.get("holds", u, nxt)))
    st.set("acked", (u, nxt), True)


# -- the key schedule -------------------------------------------------------------------


@action(
    params=(_p("s", SVC), _p("t", TEK)),
    modifies=("generated", "tek_svc", "mki", "next_mki", "ev", "has_next", "next"),
    clauses=(
        "3.1/TEK",
        "6.2.1/BMSC-GENERATES",
        "6.2.1/COMMON-TEK",
        "6.2.3.1/PHASES",
        "6.2.2/STEP4-MKI",
    ),
    actor="BM-SC",
)
def generate(ops: Ops, st: Step, prof: Prof, s: Any, t: Any) -> None:
    """The BM-SC creates the service's next TEK and gives it a fresh MKI."""
    ops.require(ops.and_(ops.not_(st.get("generated", t)), ops.not_(st.get("has_next", s))))
    _tick_event(st)  # the language stamps gen_ev (the relation generated changes)
    st.set("generated", (t,), True)
    st.set("tek_svc", (t,), s)
    st.set("mki", (t,), st.get("next_mki", s))
    st.set("next_mki", (s,), st.get("next_mki", s) + 1)
    st.set("has_next", (s,), True)
    st.set("next", (s,), t)


def _activation_allowed(ops: Ops, st: Step, prof: Prof, s: Any, nxt: Any) -> Any:
    rule = prof["activation"]
    if rule == "immediate":
        return True
    evidence = "delivered" if rule == "after_fetch_window" else "acked"
    return ops.forall(
        UE,
        lambda v: ops.implies(
            st.get("registered", v, s),
            ops.or_(st.get(evidence, v, nxt), st.get("fetch_time", v, s) < st.get("clock")),
        ),
    )


@action(
    params=(_p("s", SVC),),
    modifies=("has_active", "active", "has_next", "activated", "act_ev", "ev"),
    clauses=("6.2.3.3/ACTIVATE", "6.2.3.3/FETCHED-FIRST", "6.2.3.1/PHASES", "6.2.2/STEP4-MKI"),
    actor="BM-SC",
)
def activate(ops: Ops, st: Step, prof: Prof, s: Any) -> None:
    """The BM-SC switches the service to its next TEK (packets now carry its MKI)."""
    nxt = st.get("next", s)
    ops.require(st.get("has_next", s))
    ops.require(_activation_allowed(ops, st, prof, s, nxt))
    stamp = _tick_event(st)
    st.set("has_active", (s,), True)
    st.set("active", (s,), nxt)
    st.set("has_next", (s,), False)
    st.set("activated", (nxt,), True)
    st.set("act_ev", (nxt,), stamp)


# -- the data plane ------------------------------------------------------------------------


@action(
    params=(_p("s", SVC), _p("p", PKT), _p("m", BOOL)),
    modifies=("sent", "pkt_tek", "pkt_has_mki", "ev"),
    clauses=("6.2.2/STEP7", "6.2.3.3/MKI-IN-PACKETS", "6.3/SRTP", "6.3/MKI-MANDATORY"),
    actor="BM-SC",
)
def send(ops: Ops, st: Step, prof: Prof, s: Any, p: Any, m: Any) -> None:
    """The BM-SC sends an SRTP packet under the active TEK, with the MKI field if ``m``."""
    ops.require(ops.and_(st.get("has_active", s), ops.not_(st.get("sent", p))))
    if prof["mki_in_srtp"] == "mandatory":
        ops.require(m)
    _tick_event(st)  # the language stamps pkt_ev (the relation sent changes)
    st.set("sent", (p,), True)
    st.set("pkt_tek", (p,), st.get("active", s))
    st.set("pkt_has_mki", (p,), m)


@action(
    params=(_p("u", UE), _p("p", PKT)),
    modifies=(
        "decrypted",
        "heard",
        "saw_unknown",
        "current",
        "has_current",
        "holds",
        "heard_unheld",
    ),
    clauses=(
        "6.2.2/STEP7",
        "6.2.3.3/UE-SWITCH",
        "6.2.3.3/UNKNOWN-MKI",
        "6.2.2/JOIN-NOT-AUTH",
        "6.2.2/STEP5",
        "6.3/MKI-MANDATORY",
    ),
    actor="UE",
    radio=("u",),
)
def receive(ops: Ops, st: Step, prof: Prof, u: Any, p: Any) -> None:
    """Any UE in coverage may receive any sent packet (joining the bearer needs no
    authorisation).  With an MKI it looks the key up by MKI: it decrypts, or notes an
    unknown MKI; without one it tries its current key.  After decrypting under a newer
    TEK (a higher MKI) it switches to it and drops older TEKs of the service."""
    ops.require(st.get("sent", p))
    t = st.get("pkt_tek", p)
    s = st.get("tek_svc", t)

    def same_mki(y: Any) -> Any:
        return ops.and_(
            st.get("holds", u, y), st.get("tek_svc", y) == s, st.get("mki", y) == st.get("mki", t)
        )

    has_mki = st.get("pkt_has_mki", p)
    known = ops.exists(TEK, same_mki)
    by_mki = ops.and_(known, ops.forall(TEK, lambda y: ops.implies(same_mki(y), y == t)))
    by_current = ops.and_(
        st.get("has_current", u, s), st.get("current", u, s) == t, st.get("holds", u, t)
    )
    ok = ops.ite(has_mki, by_mki, by_current)
    st.set("decrypted", (u, p), ops.or_(st.get("decrypted", u, p), ok))
    st.set("heard", (u, p), True)
    # history: a packet with the MKI of a TEK the UE does not hold reached it
    unheld = ops.and_(has_mki, ops.not_(st.get("holds", u, t)))
    st.set("heard_unheld", (u, s), ops.or_(st.get("heard_unheld", u, s), unheld))
    st.set(
        "saw_unknown",
        (u, s),
        ops.or_(st.get("saw_unknown", u, s), ops.and_(has_mki, ops.not_(known))),
    )
    switch = ops.and_(ok, has_mki)
    st.set("current", (u, s), ops.ite(switch, t, st.get("current", u, s)))
    st.set("has_current", (u, s), ops.or_(st.get("has_current", u, s), switch))
    st.set_all(
        "holds",
        lambda v, y: ops.and_(
            st.get("holds", v, y),
            ops.not_(
                ops.and_(
                    switch,
                    v == u,
                    st.get("tek_svc", y) == s,
                    st.get("mki", y) < st.get("mki", t),
                )
            ),
        ),
    )


# -- the environment -----------------------------------------------------------------------


@action(
    params=(_p("u", UE),),
    modifies=("covered", "dropped", "in_sync"),
    clauses=("6.2.3.3/UNKNOWN-MKI",),
    actor="net",
)
def lose_coverage(ops: Ops, st: Step, prof: Prof, u: Any) -> None:
    """The UE leaves radio coverage and drops out of key synchronisation."""
    ops.require(st.get("covered", u))
    st.set("covered", (u,), False)
    st.set_all("dropped", lambda v, s: ops.or_(st.get("dropped", v, s), v == u))
    st.set_all("in_sync", lambda v, s: ops.and_(st.get("in_sync", v, s), v != u))


@action(params=(_p("u", UE),), modifies=("covered",), clauses=("6.2.3.3/UNKNOWN-MKI",), actor="net")
def regain_coverage(ops: Ops, st: Step, prof: Prof, u: Any) -> None:
    """The UE comes back into coverage."""
    ops.require(ops.not_(st.get("covered", u)))
    st.set("covered", (u,), True)


def _by_index(prof: Prof) -> bool:
    """Is the fetch time given as an SRTP index (the streams' position)?"""
    return bool(prof["fetch_time_unit"] == "sequence_number")


@action(
    params=(),
    modifies=("clock", "in_window"),
    clauses=("6.2.2/STEP4-FETCH-TIME", "6.2.3.2/REREGISTER"),
    actor="net",
)
def tick(ops: Ops, st: Step, prof: Prof) -> None:
    """Time advances, but not past the fetch time of a registered, authorised UE in
    coverage that has not fetched yet (UEs fetch at their fetch time).  With the fetch
    time given as an SRTP index, the clock is the streams' index, which a UE sees only
    while it receives them: a UE that is not listening does not know that its fetch
    time has come, and does not hold time back."""
    clock = st.get("clock")

    def knows(v: Any) -> Any:
        return st.get("listening", v) if _by_index(prof) else True

    ops.require(
        ops.forall(
            UE,
            lambda v: ops.forall(
                SVC,
                lambda s: ops.not_(
                    ops.and_(
                        st.get("registered", v, s),
                        st.get("subscribed", v, s),
                        st.get("covered", v),
                        ops.not_(st.get("dropped", v, s)),
                        st.get("fetch_time", v, s) <= clock,
                        knows(v),
                    )
                ),
            ),
        )
    )
    st.set("clock", (), clock + 1)
    if prof["replay_protection"] == "timestamp":
        # the timestamp window is shorter than one clock unit (seconds against a fetch
        # period): a message accepted before this tick is now too old to be accepted again
        st.set_all("in_window", lambda v, t: False)


@action(
    params=(_p("u", UE),),
    modifies=("listening",),
    clauses=("6.2.2/FETCH-AS-SEQ",),
    actor="net",
    applies=_by_index,
)
def stop_listening(ops: Ops, st: Step, prof: Prof, u: Any) -> None:
    """The UE stops receiving the SRTP streams (the user leaves the service's bearer, or
    the radio drops it): it no longer sees the index advance."""
    ops.require(st.get("listening", u))
    st.set("listening", (u,), False)


@action(
    params=(_p("u", UE),),
    modifies=("listening",),
    clauses=("6.2.2/FETCH-AS-SEQ",),
    actor="net",
    applies=_by_index,
)
def start_listening(ops: Ops, st: Step, prof: Prof, u: Any) -> None:
    """The UE receives the SRTP streams again and sees their index."""
    ops.require(ops.not_(st.get("listening", u)))
    st.set("listening", (u,), True)


@action(
    params=(_p("u", UE),),
    modifies=("cached",),
    clauses=("D/REPLAY",),
    actor="net",
    applies=lambda prof: prof["replay_protection"] == "timestamp",
)
def lose_replay_cache(ops: Ops, st: Step, prof: Prof, u: Any) -> None:
    """The UE loses its MIKEY replay cache (it restarts; the cache is kept in memory).
    Its keys and its counters are kept: they are the UE's stored state."""
    st.set_all("cached", lambda v, t: ops.and_(st.get("cached", v, t), v != u))


# -- the attacker --------------------------------------------------------------------------


@action(
    params=(_p("u", UE),),
    modifies=("compromised", "att_kek"),
    clauses=("6.2.1/KEK-PER-UE", "3.1/KEK"),
    actor="attacker",
)
def compromise(ops: Ops, st: Step, prof: Prof, u: Any) -> None:
    """A subscriber colludes with the attacker: hands over its KEK (the TEKs it knows it
    passes on with Leak, one at a time).  With one KEK common to all UEs, that KEK opens
    every UE's deliveries.  Colluding again changes nothing, so no guard is needed."""
    st.set("compromised", (u,), True)
    if prof["kek_scope"] == "common":
        st.set_all("att_kek", lambda v: True)
    else:
        st.set("att_kek", (u,), True)


def _knows(ops: Ops, st: Step, u: Any, t: Any) -> Any:
    """What a UE knows of a TEK: installed as its own, or read from another UE's delivery."""
    return ops.or_(st.get("holds", u, t), st.get("overheard", u, t))


@action(
    params=(_p("u", UE), _p("t", TEK)),
    modifies=("att_tek",),
    clauses=("6.2.1/TEK-UNDER-KEK",),
    actor="attacker",
)
def leak(ops: Ops, st: Step, prof: Prof, u: Any, t: Any) -> None:
    """A colluding UE passes on a TEK it knows."""
    ops.require(ops.and_(st.get("compromised", u), _knows(ops, st, u, t)))
    st.set("att_tek", (t,), True)


@action(
    params=(_p("u", UE), _p("t", TEK)),
    modifies=("att_tek",),
    clauses=("6.2.1/TEK-UNDER-KEK", "6.2.1/KEK-PER-UE", "6.2.1/TLS"),
    actor="attacker",
    applies=lambda prof: prof["tek_protection"] == "mikey_kek",
)
def eavesdrop(ops: Ops, st: Step, prof: Prof, u: Any, t: Any) -> None:
    """The attacker decrypts a recorded MIKEY delivery to ``u`` with a KEK it knows."""
    ops.require(ops.and_(st.get("delivered", u, t), st.get("att_kek", u)))
    st.set("att_tek", (t,), True)


@action(
    params=(_p("u", UE), _p("v", UE), _p("t", TEK)),
    modifies=("overheard",),
    clauses=("6.2.1/KEK-PER-UE", "3.1/KEK", "6.2.1/TEK-UNDER-KEK"),
    actor="attacker",
    applies=lambda prof: prof["tek_protection"] == "mikey_kek" and prof["kek_scope"] == "common",
)
def overhear(ops: Ops, st: Step, prof: Prof, u: Any, v: Any, t: Any) -> None:
    """A UE keeps listening, whether or not it is still authorised: it records the MIKEY
    delivery of ``t`` to a UE ``v`` (another, or itself) and reads it if it knows ``v``'s
    KEK.  With one KEK per UE it reads only its own deliveries, which hold nothing it was
    not sent (so the action exists only with ``kek_scope=common``); with one KEK common
    to all UEs, any UE that authenticated once (and so was given that KEK) does.  A UE
    authenticated once if it is authenticated now or was ever sent a delivery (only a
    delivery ends an authentication)."""
    ever_authenticated = ops.or_(st.get("authenticated", u), st.get("ctr", u) > 0)
    ops.require(ops.and_(st.get("delivered", v, t), ever_authenticated))
    st.set("overheard", (u, t), True)


@action(
    params=(_p("u", UE), _p("t", TEK)),
    modifies=("holds",),
    clauses=("D/REPLAY",),
    actor="attacker",
    radio=("u",),
)
def replay(ops: Ops, st: Step, prof: Prof, u: Any, t: Any) -> None:
    """The attacker replays to ``u`` the latest MIKEY delivery of ``t`` that ``u``
    accepted.  With counter protection the UE rejects it (its counter has moved on); with
    timestamp protection it rejects it while the message is in its replay cache or out
    of the timestamp window, so only a replay inside the window after the cache was lost
    is accepted.  (A replay accepted so is not put back in the cache: the attacker may
    repeat it while the window lasts, which only gives it more.)"""
    ops.require(st.get("dlv_ctr", u, t) > 0)  # u accepted a delivery of t (so it was sent)
    accepted: Any = True
    if prof["replay_protection"] == "counter":
        accepted = st.get("dlv_ctr", u, t) > st.get("ue_ctr", u)
    elif prof["replay_protection"] == "timestamp":
        accepted = ops.and_(st.get("in_window", u, t), ops.not_(st.get("cached", u, t)))
    st.set("holds", (u, t), ops.or_(st.get("holds", u, t), accepted))


ACTIONS: tuple[Action, ...] = (
    subscribe,
    revoke,
    authenticate,
    register,
    delivery_lost,
    acknowledge,
    generate,
    activate,
    send,
    receive,
    lose_coverage,
    regain_coverage,
    tick,
    stop_listening,
    start_listening,
    lose_replay_cache,
    compromise,
    leak,
    eavesdrop,
    overhear,
    replay,
)

"""The state of the MBMS key-management model: one declaration per component.

Sorts: UE (user equipment), SVC (MBMS service), TEK (traffic keys the BM-SC
generates), PKT (SRTP packets the BM-SC sends).  Their sizes are left open: the proofs
hold for every size, the executable reading picks a finite universe.

``ev`` is a logical event counter: generation, activation, subscription, revocation,
authentication and sending stamp it, so properties can say "before" and "after" without
a clock.
``clock`` is the time in which fetch times are expressed.
"""

from __future__ import annotations

from mbmssec.model.dsl import Sort, Symbol, Vocabulary

B, INT = Sort.BOOL, Sort.INT
UE, SVC, TEK, PKT = Sort.UE, Sort.SVC, Sort.TEK, Sort.PKT

#: The model lets the BM-SC set a UE's next fetch time any number of clock units ahead;
#: finite searches (exploration, enabled-instance enumeration) try offsets 1..FETCH_WINDOW.
FETCH_WINDOW = 3


def _s(
    name: str,
    args: tuple[Sort, ...],
    result: Sort,
    doc: str,
    initial: bool | int | None = False,
    ghost: bool = False,
    role: str = "design",
    stamps: str = "",
    monotone: bool = False,
) -> Symbol:
    return Symbol(name, args, result, doc, initial, ghost, role, stamps=stamps, monotone=monotone)


VOCABULARY = Vocabulary(
    (
        # time
        _s(
            "clock",
            (),
            INT,
            "Current time, in the unit fetch times are given in.",
            0,
            role="environment",
        ),
        _s("ev", (), INT, "Logical event counter (ghost).", 0, ghost=True),
        # BM-SC: authorisation database and authentication
        _s("subscribed", (UE, SVC), B, "The UE is authorised for the service."),
        _s("ever_sub", (UE, SVC), B, "The UE was subscribed at some point (ghost).", ghost=True),
        _s(
            "join_ev",
            (UE, SVC),
            INT,
            "Event stamp of the UE's first subscription (ghost).",
            0,
            ghost=True,
        ),
        _s(
            "revoked",
            (UE, SVC),
            B,
            "The UE's subscription was revoked and not renewed (history).",
            ghost=True,
            role="history",
        ),
        _s(
            "revoke_ev",
            (UE, SVC),
            INT,
            "Event stamp of the UE's latest revocation (history).",
            0,
            ghost=True,
            role="history",
        ),
        _s("authenticated", (UE,), B, "The UE has a fresh Digest AKA authentication (and KEK)."),
        _s(
            "auth_ev",
            (UE,),
            INT,
            "Event stamp of the UE's latest authentication (history, recorded by the language).",
            0,
            ghost=True,
            role="history",
            stamps="authenticated",
        ),
        _s("registered", (UE, SVC), B, "The BM-SC has the UE registered for the service."),
        _s("fetch_time", (UE, SVC), INT, "When the UE must next fetch a TEK of the service.", 0),
        _s("ctr", (UE,), INT, "The BM-SC's MIKEY replay counter towards the UE.", 0),
        _s("acked", (UE, TEK), B, "The BM-SC received the UE's MIKEY response for the TEK."),
        # BM-SC: keys
        _s("generated", (TEK,), B, "The BM-SC has generated this TEK."),
        _s("tek_svc", (TEK,), SVC, "The service a TEK belongs to.", None),
        _s("mki", (TEK,), INT, "The TEK's MKI.", 0),
        _s(
            "gen_ev",
            (TEK,),
            INT,
            "Event stamp of the TEK's generation (history, recorded by the language).",
            0,
            ghost=True,
            role="history",
            stamps="generated",
        ),
        _s("next_mki", (SVC,), INT, "The next unused MKI of the service.", 0),
        _s("has_active", (SVC,), B, "The service has an active TEK."),
        _s("active", (SVC,), TEK, "The service's active TEK (when has_active).", None),
        _s("has_next", (SVC,), B, "The service has a generated, not yet active TEK."),
        _s("next", (SVC,), TEK, "The service's next TEK (when has_next).", None),
        _s(
            "activated",
            (TEK,),
            B,
            "The TEK has been activated at some point (history: no action reads it).",
            role="history",
        ),
        _s("act_ev", (TEK,), INT, "Event stamp of the TEK's activation (ghost).", 0, ghost=True),
        _s(
            "withdrawn",
            (TEK,),
            B,
            "The TEK was discarded before activation (re-key on leave; history).",
            role="history",
        ),
        _s("delivered", (UE, TEK), B, "The BM-SC sent this TEK to the UE (ghost).", ghost=True),
        _s(
            "dlv_ctr",
            (UE, TEK),
            INT,
            "Replay counter of the latest delivery of the TEK that the UE accepted.",
            0,
        ),
        # UE
        _s("covered", (UE,), B, "The UE is in radio coverage.", True, role="environment"),
        _s(
            "listening",
            (UE,),
            B,
            "fetch_time_unit=sequence_number: the UE follows the services' SRTP streams, "
            "so it sees their index (the clock) advance.  One that does not may still be "
            "reached by a packet now and then (Receive: it notes an unknown MKI as "
            "usual), which the model does not let tell it the index.",
            True,
            role="environment",
        ),
        _s(
            "dropped",
            (UE, SVC),
            B,
            "The UE lost a delivery or coverage since its last fetch.",
            role="environment",
        ),
        _s("holds", (UE, TEK), B, "The UE has this TEK installed."),
        _s("ue_ctr", (UE,), INT, "Highest MIKEY replay counter the UE has accepted.", 0),
        _s(
            "cached",
            (UE, TEK),
            B,
            "replay_protection=timestamp: the UE's replay cache holds the latest delivery "
            "of the TEK it accepted (until the cache is lost).",
        ),
        _s(
            "in_window",
            (UE, TEK),
            B,
            "replay_protection=timestamp: the latest delivery of the TEK the UE accepted "
            "is still within the timestamp window (until the clock moves on).",
        ),
        _s("saw_unknown", (UE, SVC), B, "The UE received a packet with an MKI it does not know."),
        _s("current", (UE, SVC), TEK, "The TEK the UE uses for packets without an MKI.", None),
        _s("has_current", (UE, SVC), B, "The UE has chosen a current TEK."),
        # data plane
        _s("sent", (PKT,), B, "The BM-SC has sent this SRTP packet."),
        _s("pkt_tek", (PKT,), TEK, "The TEK a packet was protected with.", None),
        _s("pkt_has_mki", (PKT,), B, "The packet carries the MKI field."),
        _s(
            "pkt_ev",
            (PKT,),
            INT,
            "Event stamp of the packet's sending (history, recorded by the language).",
            0,
            ghost=True,
            role="history",
            stamps="sent",
        ),
        _s(
            "decrypted",
            (UE, PKT),
            B,
            "The UE decrypted this packet (history).",
            ghost=True,
            role="history",
        ),
        _s(
            "heard",
            (UE, PKT),
            B,
            "The packet reached the UE, decrypted or not (history).",
            ghost=True,
            role="history",
        ),
        # attacker
        _s(
            "compromised",
            (UE,),
            B,
            "The UE colludes with the attacker (gave away its KEK).",
            monotone=True,
        ),
        _s(
            "att_kek",
            (UE,),
            B,
            "The attacker can decrypt deliveries addressed to the UE (knowledge: only grows).",
            monotone=True,
        ),
        _s(
            "att_tek",
            (TEK,),
            B,
            "The attacker knows this TEK (knowledge: only grows).",
            monotone=True,
        ),
        _s(
            "overheard",
            (UE, TEK),
            B,
            "The UE, as an insider, read this TEK from a MIKEY delivery addressed to "
            "another UE (possible only when it knows that UE's KEK; knowledge: only grows).",
            monotone=True,
        ),
        # history of membership and synchronisation
        _s(
            "joined",
            (UE, SVC),
            B,
            "The UE was subscribed to the service at some point (history).",
            ghost=True,
            role="history",
        ),
        _s(
            "joined_ev",
            (UE, SVC),
            INT,
            "Event stamp of the UE's first subscription to the service (history).",
            0,
            ghost=True,
            role="history",
        ),
        _s(
            "in_sync",
            (UE, SVC),
            B,
            "The UE received a delivery for the service and has lost no delivery, no "
            "coverage and no authorisation since (history).",
            ghost=True,
            role="history",
        ),
        # history of deliveries
        _s(
            "auth_dlv",
            (UE, TEK),
            B,
            "The TEK was sent to the UE in a delivery made while the UE was authenticated "
            "and authorised for the TEK's service (history).",
            ghost=True,
            role="history",
        ),
        _s(
            "dlv_auth",
            (UE, SVC),
            INT,
            "The authentication (its auth_ev stamp) the latest delivery of the service to "
            "the UE was made under (history).",
            0,
            ghost=True,
            role="history",
        ),
        _s(
            "fetches",
            (UE, SVC),
            INT,
            "How many deliveries of the service the BM-SC has made to the UE (history).",
            0,
            ghost=True,
            role="history",
        ),
        _s(
            "heard_unheld",
            (UE, SVC),
            B,
            "Since the latest delivery of the service reached the UE, a packet of the "
            "service carrying the MKI of a TEK the UE did not hold reached it (history).",
            ghost=True,
            role="history",
        ),
    )
)

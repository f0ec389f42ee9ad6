"""The sans-I/O BM-SC core (TS 33.246 6.2.2-6.2.3.3) against the UE core and oracles.

Expected values come from the configuration and from independent code paths: the
challenge is checked with the USIM function of TS 33.102 (:mod:`mbmssec.impl.protocols.aka`), the
KEK with MILENAGE f3 of the challenge's RAND, the MIKEY delivery by parsing it with the
KEK the test derives itself, fetch times against the window the configuration defines.
Time is a fake clock and randomness a seeded generator, so every run is the same.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mbmssec.impl.net.api import HTTP_STATUS, answer, status_of
from mbmssec.impl.net.client import register_uri
from mbmssec.impl.protocols.aka import UsimState, derive_kek, usim_authenticate
from mbmssec.impl.protocols.digest import decode_aka_nonce, parse_challenge
from mbmssec.impl.protocols.mikey import (
    EncrAlg,
    FetchAtTime,
    MikeyAuthError,
    TsType,
    split_messages,
)
from mbmssec.impl.protocols.mikey_messages import (
    ReplayMode,
    ReplayState,
    parse_and_verify,
    unix_from_ntp,
)
from mbmssec.impl.protocols.milenage import Milenage
from mbmssec.impl.protocols.srtp import MasterKey, SrtpPolicy, SrtpSender
from mbmssec.impl.service.bmsc import (
    MKI_LENGTH,
    BmscConfig,
    BmscCore,
    BmscError,
    Outcome,
    RegisterRequest,
    Result,
    check_profile,
    parse_register_query,
)
from mbmssec.impl.service.store import Store
from mbmssec.impl.service.ue import DeliveryOutcome, UeCore, UeError
from mbmssec.spec.loader import load_spec

S = "239.255.0.1"
S2 = "239.255.0.2"
T0 = 1_800_000_000.0


def _status(x: Outcome | BmscError) -> int:
    """The HTTP status the server answers an outcome or refusal with (impl/net/api)."""
    return HTTP_STATUS[x.refusal] if isinstance(x, BmscError) else status_of(x)


def _challenge(reply: Outcome) -> str:
    """The Digest AKA challenge a refusal carries (the WWW-Authenticate value)."""
    assert reply.challenge is not None, (reply.code, reply.message)
    return reply.challenge


@dataclass
class Harness:
    """A BM-SC core on a temporary database, a fake clock, and UE cores."""

    tmp: Path
    overrides: dict[str, str] = field(default_factory=dict)
    config: BmscConfig = field(default_factory=lambda: BmscConfig(period=1.0))
    n: int = 3
    sqn_ms: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.profile = load_spec().profile(self.overrides)
        self.rng = random.Random(7)
        self.now = T0
        self.core = BmscCore(
            Store(self.tmp / "bmsc.db", durability="normal"),
            self.profile,
            self.config,
            rand=self.rng.randbytes,
        )
        self.events: list[Any] = list(self.core.add_service(S, self.now))
        self.keys: dict[str, tuple[bytes, bytes]] = {}
        self.ues: list[UeCore] = []
        for i in range(self.n):
            name = f"00101000000{i:04d}"
            k, opc = self.rng.randbytes(16), self.rng.randbytes(16)
            self.keys[name] = (k, opc)
            self.core.add_subscriber(name, k, opc)
            self.events += self.core.subscribe(name, S, self.now)
            self.ues.append(
                UeCore(
                    name,
                    k,
                    opc,
                    self.profile,
                    sqn_ms=self.sqn_ms.get(i, 0),
                    rand=self.rng.randbytes,
                )
            )

    def ue(self, i: int) -> UeCore:
        return self.ues[i]

    def request(
        self,
        ue: UeCore,
        service: str = S,
        auth: str | None = None,
        trigger: str = "initial",
        port: int = 40000,
    ) -> tuple[Outcome, str]:
        uri = register_uri(ue.ue, service, port, trigger)
        reply = self.core.register(
            RegisterRequest(ue.ue, service, port, trigger, auth, "GET", uri), self.now
        )
        self.events += reply.events
        return reply, uri

    def register(
        self, i: int, service: str = S, trigger: str = "initial"
    ) -> tuple[Outcome, DeliveryOutcome | None]:
        ue = self.ues[i]
        uri = register_uri(ue.ue, service, 40000 + i, trigger)
        reply, uri = self.request(ue, service, ue.preemptive_authorization(uri), trigger, 40000 + i)
        rounds = 0
        while _status(reply) == 401 and rounds < 3:
            rounds += 1
            answer = ue.answer_challenge(_challenge(reply), uri)
            reply, uri = self.request(ue, service, answer, trigger, 40000 + i)
        if _status(reply) != 200:
            return reply, None
        return reply, ue.accept_delivery(service, reply.mikey, self.now, trigger)

    def tick(self, dt: float) -> list[Any]:
        self.now += dt
        events = self.core.tick(self.now)
        self.events += events
        return events

    def teks(self, state: str) -> list[int]:
        return [t.mki for t in self.core.store.teks(S, state)]

    def named(self, name: str) -> list[Any]:
        return [e for e in self.events if e.event == name]


def test_challenge_is_a_digest_aka_challenge_the_usim_accepts(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    reply, _ = h.request(h.ue(0))
    assert _status(reply) == 401
    challenge = parse_challenge(_challenge(reply))
    assert challenge.algorithm == "AKAv1-MD5" and challenge.qop == ("auth",)
    nonce = decode_aka_nonce(challenge.nonce)
    k, opc = h.keys[h.ue(0).ue]
    answer, state = usim_authenticate(Milenage(k, opc), UsimState(0), nonce.rand, nonce.autn)
    assert answer.sqn == 1 and state.sqn_ms == 1
    sub = h.core.store.get_subscriber(h.ue(0).ue)
    assert sub is not None and sub.sqn == 1  # committed before the challenge went out


def test_registration_delivers_active_and_next_with_fetch_time(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    uri = register_uri(h.ue(0).ue, S, 40000, "initial")
    first, _ = h.request(h.ue(0))
    header = _challenge(first)
    rand_value = decode_aka_nonce(parse_challenge(header).nonce).rand
    answer = h.ue(0).answer_challenge(header, uri)
    reply, _ = h.request(h.ue(0), auth=answer)
    assert _status(reply) == 200 and reply.result is Result.DELIVERED
    # The oracle: KEK = CK = f3(RAND) (kek_derivation=ck), from MILENAGE directly.
    k, opc = h.keys[h.ue(0).ue]
    kek = Milenage(k, opc).f3(rand_value)
    verified = parse_and_verify(reply.mikey, kek, ReplayState(ReplayMode.COUNTER), h.now)
    d = verified.delivery
    active, pending = h.teks("active"), h.teks("pending")
    assert [int.from_bytes(key.mki or b"", "big") for key in d.keys] == active + pending
    assert len(pending) == 1 and d.timestamp.ts_type is TsType.COUNTER
    assert d.timestamp.value == 1 and not d.v_flag and d.lifetime is None
    assert isinstance(d.fetch, FetchAtTime)
    planned = h.core.store.teks(S, "pending")[0].planned
    window = h.config.fetch_window * 1.0
    fetch = unix_from_ntp(d.fetch.ntp)
    assert (
        planned + h.config.fetch_delay - 1e-6
        <= fetch
        <= planned + h.config.fetch_delay + window + 1e-6
    )
    assert [e.event for e in reply.events] == ["Authenticate", "Deliver"]


def test_fetch_time_unit_sequence_number_and_lifetime(tmp_path: Path) -> None:
    h = Harness(tmp_path, {"fetch_time_unit": "sequence_number", "tek_lifetime": "present"})
    h.core.note_stream_index(S, 5000, h.now)
    _, out = h.register(0)
    assert out is not None and out.fetch_time is None and out.fetch_index is not None
    st = h.ue(0).state(S)
    assert st.lifetime == 2  # ceil(period * (pending + 1)) = 2 s
    # 50 packets/s: the fetch index is the stream index at the fetch time.
    planned = h.core.store.teks(S, "pending")[0].planned
    lo = 5000 + (planned - h.now + h.config.fetch_delay) * 50
    hi = lo + h.config.fetch_window * 50
    assert lo - 1 <= out.fetch_index <= hi + 1


@pytest.mark.parametrize("grouped", [False, True], ids=["transaction", "group-commit"])
def test_tick_reads_the_schedule_again_whenever_it_may_have_changed(
    tmp_path: Path, grouped: bool
) -> None:
    """A tick that found nothing due keeps that conclusion until the next planned
    activation only while the schedule stays as read: a TEK withdrawn by another
    connection (``bmsc-admin --db``), and a re-planning seen by a tick and then rolled
    back, are both acted on at the next tick."""
    h = Harness(tmp_path, n=0)
    store = h.core.store
    if grouped:  # the schedule first read inside a batch, which then commits
        store.group_commits(lambda: None)
        with store.transaction():
            store.set_meta("note", "a batch is open")
    assert h.tick(0.1) == []  # nothing due before the next TEK's planned activation
    store.commit_batch()
    nxt = store.teks(S, "pending")[0]
    other = Store(tmp_path / "bmsc.db", durability="normal")
    with other.transaction():
        other.set_tek_state(nxt.id, "withdrawn", end_t=h.now)
    other.close()
    assert [e.event for e in h.tick(0.1)] == ["Generate"]  # its replacement
    replacement = store.teks(S, "pending")[0]
    with pytest.raises(RuntimeError), store.transaction():
        store.set_planned(replacement.id, h.now + 1e6)
        assert h.tick(0.0) == []  # seen re-planned: nothing due for a long time
        raise RuntimeError("the step fails: its re-planning is undone")
    h.now = replacement.planned
    assert "Activate" in [e.event for e in h.tick(0.0)]
    assert h.teks("active") == [replacement.mki]
    if grouped:
        store.group_commits(None)


def test_second_service_authorise_only_reuses_the_nonce(tmp_path: Path) -> None:
    h = Harness(tmp_path, {"second_service_auth": "authorise_only"})
    h.core.add_service(S2, h.now)
    h.core.subscribe(h.ue(0).ue, S2, h.now)
    reply, out = h.register(0)
    assert _status(reply) == 200 and out is not None
    sqn_before = _sqn(h, 0)
    reply, out = h.register(0, S2)
    assert _status(reply) == 200 and out is not None
    assert [e.event for e in reply.events] == ["Deliver"]  # no new challenge, no AKA run
    assert _sqn(h, 0) == sqn_before
    # KEKs differ per service with derived KEKs; with kek=ck they are CK for both.
    auth = h.ue(0).auth
    assert auth is not None and auth.nc == 2


def test_nonce_count_replay_is_refused(tmp_path: Path) -> None:
    h = Harness(tmp_path, {"second_service_auth": "authorise_only"})
    _, out = h.register(0)
    assert out is not None
    uri = register_uri(h.ue(0).ue, S, 40000, "fetch_time")
    auth = h.ue(0).preemptive_authorization(uri)
    ok, _ = h.request(h.ue(0), auth=auth, trigger="fetch_time")
    assert _status(ok) == 200
    before = h.core.store.snapshot()
    again, _ = h.request(h.ue(0), auth=auth, trigger="fetch_time")
    assert _status(again) == 401 and again.code == "nonce_count_replayed"
    after = h.core.store.snapshot()
    assert after["registrations"] == before["registrations"]
    assert after["deliveries"] == before["deliveries"]


def test_reauthenticate_consumes_the_nonce(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    first, uri = h.request(h.ue(0))
    auth = h.ue(0).answer_challenge(_challenge(first), uri)
    assert _status(h.request(h.ue(0), auth=auth)[0]) == 200
    before = h.core.store.snapshot()
    replay, _ = h.request(h.ue(0), auth=auth)
    assert _status(replay) == 401 and replay.code == "nonce_used"
    assert "already used" in replay.message
    after = h.core.store.snapshot()
    for table in ("registrations", "deliveries", "teks", "subscriptions"):
        assert after[table] == before[table]
    # Only the fresh challenge moved the SQN (by one); the MIKEY counter did not move.
    sub_b = {r["ue"]: r for r in before["subscribers"]}[h.ue(0).ue]
    sub_a = {r["ue"]: r for r in after["subscribers"]}[h.ue(0).ue]
    assert sub_a["sqn"] == sub_b["sqn"] + 1 and sub_a["ctr"] == sub_b["ctr"]


def test_auts_resynchronisation(tmp_path: Path) -> None:
    h = Harness(tmp_path, sqn_ms={0: 50})
    reply, out = h.register(0)
    assert _status(reply) == 200 and out is not None
    resync = h.named("Resync")
    assert len(resync) == 1 and resync[0].extra["sqn_ms"] == 50
    sub = h.core.store.get_subscriber(h.ue(0).ue)
    assert sub is not None and sub.sqn == 51 and h.ue(0).usim.sqn_ms == 51
    assert h.ue(0).resyncs == 1


def test_wrong_res_is_refused_and_state_unchanged(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    first, uri = h.request(h.ue(0))
    header = _challenge(first)
    # The UE with the wrong K: its USIM rejects the network (MAC-A) ...
    impostor = UeCore(h.ue(0).ue, bytes(16), bytes(16), h.profile)
    with pytest.raises(UeError, match="network failed authentication"):
        impostor.answer_challenge(header, uri)
    # ... and a forged answer with a wrong RES is refused by the BM-SC.
    h.ue(0).answer_challenge(header, uri)
    auth = h.ue(0).auth
    assert auth is not None
    from mbmssec.impl.protocols.digest import respond, serialise_authorization

    forged = serialise_authorization(
        respond(
            auth.challenge,
            username=h.ue(0).ue,
            res=bytes(8),
            method="GET",
            uri=uri,
            rand=h.rng.randbytes,
        )
    )
    before = h.core.store.snapshot()
    reply, _ = h.request(h.ue(0), auth=forged)
    assert _status(reply) == 403 and reply.code == "auth_failed"
    assert "wrong RES" in reply.message
    assert h.core.store.snapshot() == before


def test_pre_authentication_answers_tell_nothing(tmp_path: Path) -> None:
    """Before authentication a subscribed UE, an unsubscribed one, an unknown UE and an
    unknown service all get the same answer: a Digest AKA challenge of one shape.  The
    unknown UE's is a decoy, the same on every request in the reuse window, and nothing
    is stored for it."""
    h = Harness(tmp_path)
    h.core.add_service(S2, h.now)
    subscribed, _ = h.request(h.ue(0))
    before = h.core.store.snapshot()
    challenges = _challenge_rows(h)
    replies = {
        "subscribed": h.request(h.ue(0))[0],
        "unsubscribed": h.request(h.ue(1), S2)[0],
        "unknown service": h.request(h.ue(2), "239.9.9.9")[0],
        "unknown UE": h.core.register(RegisterRequest("999999", S, 40000), h.now),
    }
    shapes = set()
    for name, reply in replies.items():
        assert (_status(reply), reply.code, reply.message) == (
            401,
            "challenge",
            "authentication required (HTTP Digest AKA, RFC 3310)",
        ), name
        ch = parse_challenge(_challenge(reply))
        assert ch.opaque is not None
        shapes.add((ch.realm, ch.algorithm, ch.qop, ch.stale, len(ch.nonce), len(ch.opaque)))
        decode_aka_nonce(ch.nonce)  # RAND || AUTN || issue time, as a real one
    assert len(shapes) == 1
    assert replies["subscribed"].challenge == subscribed.challenge  # answered again
    # UE 1 and UE 2 had no outstanding challenge: one new vector each, nothing for
    # the unknown UE, whose decoy is the same when it asks again.
    assert _challenge_rows(h) == challenges + 2
    after = h.core.store.snapshot()
    sqn = {r["ue"]: r["sqn"] for r in after["subscribers"]}
    assert sqn == {r["ue"]: r["sqn"] + (r["ue"] != h.ue(0).ue) for r in before["subscribers"]}
    again = h.core.register(RegisterRequest("999999", S, 40000), h.now + 1)
    assert again.challenge == replies["unknown UE"].challenge
    other = h.core.register(RegisterRequest("999998", S, 40000), h.now)
    assert other.challenge != again.challenge
    assert _challenge_rows(h) == challenges + 2
    # An answer to the decoy is refused as a wrong answer to a real challenge is.
    impostor = UeCore("999999", bytes(16), bytes(16), h.profile, rand=h.rng.randbytes)
    uri = register_uri("999999", S, 40000, "initial")
    with pytest.raises(UeError, match="network failed"):
        impostor.answer_challenge(_challenge(again), uri)
    forged = _forged_answer(h, "999999", _challenge(again), uri)
    reply = h.core.register(
        RegisterRequest("999999", S, 40000, "initial", forged, "GET", uri), h.now
    )
    assert (_status(reply), reply.code, reply.message) == (
        403,
        "auth_failed",
        "authentication failed: the response does not match (wrong RES)",
    )
    tables = ("subscribers", "subscriptions", "registrations", "deliveries", "acks")
    assert h.core.store.snapshot(*tables) == {t: after[t] for t in tables}
    assert _challenge_rows(h) == challenges + 2


def _challenge_rows(h: Harness) -> int:
    row = h.core.store._one("SELECT count(*) AS n FROM challenges")
    assert row is not None
    return int(row["n"])


def _sqn(h: Harness, i: int) -> int:
    sub = h.core.store.get_subscriber(h.ue(i).ue)
    assert sub is not None, "the harness provisions every UE"
    return sub.sqn


def _forged_answer(h: Harness, ue: str, header: str, uri: str) -> str:
    """A well-formed Digest AKA answer to ``header`` with a wrong RES."""
    from mbmssec.impl.protocols.digest import respond, serialise_authorization

    return serialise_authorization(
        respond(
            parse_challenge(header),
            username=ue,
            res=bytes(8),
            method="GET",
            uri=uri,
            rand=h.rng.randbytes,
        )
    )


def test_unsubscribed_or_unknown_service_refused_only_after_authentication(
    tmp_path: Path,
) -> None:
    """Authorisation is checked once the UE has authenticated, and no TEK goes out: an
    unsubscribed service is 403, an unknown one 404; nothing is delivered or recorded.
    The nonce is spent all the same, so the authenticated request cannot be replayed
    once the UE is authorised."""
    h = Harness(tmp_path)
    h.core.add_service(S2, h.now)
    before = h.core.store.snapshot("registrations", "deliveries", "subscriptions", "teks")
    uri = register_uri(h.ue(0).ue, S2, 40000, "initial")
    first, _ = h.request(h.ue(0), S2)
    answer = h.ue(0).answer_challenge(_challenge(first), uri)
    reply, _ = h.request(h.ue(0), S2, answer)
    assert _status(reply) == 403 and reply.code == "not_subscribed"
    assert "not authorised" in reply.message
    assert [e.event for e in reply.events] == ["Rejected"]  # no Authenticate, no Deliver
    reply, _ = h.register(0, "239.9.9.9")
    assert _status(reply) == 404 and reply.code == "unknown_service"
    assert h.core.store.snapshot(*before) == before
    h.events += h.core.subscribe(h.ue(0).ue, S2, h.now)
    replayed, _ = h.request(h.ue(0), S2, answer)
    assert _status(replayed) == 401 and replayed.code == "nonce_used"
    reply, out = h.register(0, S2)
    assert _status(reply) == 200 and out is not None and h.ue(0).resyncs == 0


def test_outstanding_challenge_answered_again_without_work(tmp_path: Path) -> None:
    """The finding: every request without credentials took an SQN and wrote a row.  Now
    20 of them move the SQN by one and write one challenge; a new one is made only once
    that one was used, or half a nonce lifetime after it was issued."""
    h = Harness(tmp_path, config=BmscConfig(period=1.0, nonce_lifetime=10.0))
    sqn0 = _sqn(h, 0)
    rows0 = _challenge_rows(h)
    replies = [h.request(h.ue(0))[0] for _ in range(20)]
    assert len({r.challenge for r in replies}) == 1
    assert _sqn(h, 0) == sqn0 + 1
    assert _challenge_rows(h) == rows0 + 1
    assert [e.event for r in replies for e in r.events] == ["Challenge"]
    reply, out = h.register(0)  # the UE answers it: used
    assert _status(reply) == 200 and out is not None
    fresh = h.request(h.ue(0))[0]
    assert fresh.challenge not in {r.challenge for r in replies}
    h.now += 4.9
    assert h.request(h.ue(0))[0].challenge == fresh.challenge
    h.now += 0.2  # past half the lifetime: a UE might not answer it in time
    later = h.request(h.ue(0))[0]
    assert later.challenge != fresh.challenge
    assert _sqn(h, 0) == sqn0 + 3


def test_wrong_answers_do_not_cancel_the_ues_nonce(tmp_path: Path) -> None:
    """The finding: one wrong answer from an observer burnt the UE's pending nonce.  Now
    wrong answers are counted: below ``nonce_failures`` (3) the UE's own answer still
    works; at 3 the nonce is invalidated and the UE is challenged anew."""
    h = Harness(tmp_path)
    for wrong, delivered in ((2, True), (3, False)):
        first, uri = h.request(h.ue(0))
        header = _challenge(first)
        for _ in range(wrong):
            forged = _forged_answer(h, h.ue(0).ue, header, uri)
            reply, _ = h.request(h.ue(0), auth=forged)
            assert _status(reply) == 403 and reply.code == "auth_failed"
        nonce = parse_challenge(header).nonce
        rec = h.core.store.get_challenge(nonce)
        assert rec is not None and rec.failures == wrong
        assert rec.state == ("pending" if delivered else "failed")
        reply, _ = h.request(h.ue(0), auth=h.ue(0).answer_challenge(header, uri))
        if delivered:
            assert _status(reply) == 200
        else:
            assert _status(reply) == 401 and reply.code == "nonce_used"
            assert parse_challenge(_challenge(reply)).nonce != nonce


def test_registrations_beyond_the_rate_limit_get_429(tmp_path: Path) -> None:
    """The finding: the BM-SC had no per-UE rate limit, so a UE driven to re-register
    (injected SRTP made one do it 49 times in 10 s) cost a full AKA run and a MIKEY
    delivery each time.  Now beyond ``max_deliveries`` in ``rate_window`` a request of
    that UE, with or without credentials, is 429 with the seconds until the oldest
    delivery leaves the window, before any work: no SQN, no challenge, no row."""
    config = BmscConfig(period=1.0, rate_window=10.0, max_deliveries=3)
    h = Harness(tmp_path, config=config)
    for _ in range(3):
        reply, out = h.register(0, trigger="unknown_mki")
        assert _status(reply) == 200 and out is not None
        h.now += 1.0
    first, uri = h.request(h.ue(1))  # a challenge UE 1 answers later
    before, rows, sqn = h.core.store.snapshot(), _challenge_rows(h), _sqn(h, 0)
    bare, _ = h.request(h.ue(0), trigger="unknown_mki")
    answered = h.request(h.ue(0), auth=_forged_answer(h, h.ue(0).ue, _challenge(first), uri))[0]
    for reply in (bare, answered):
        assert (_status(reply), reply.code) == (429, "rate_limited")
        assert reply.retry_after == pytest.approx(7.0)  # the first delivery was at T0
        assert ("Retry-After", "7") in answer(reply).headers
        assert [(e.event, e.reason) for e in reply.events] == [("Rejected", "rate_limited")]
    assert (h.core.store.snapshot(), _challenge_rows(h), _sqn(h, 0)) == (before, rows, sqn)
    reply = h.request(h.ue(1), auth=h.ue(1).answer_challenge(_challenge(first), uri))[0]
    assert _status(reply) == 200  # other UEs are not held back
    h.now = T0 + 10.0
    reply, out = h.register(0, trigger="retry")
    assert _status(reply) == 200 and out is not None


def test_challenge_creation_is_rate_limited_per_ue(tmp_path: Path) -> None:
    """An observer who answers a UE's challenge wrongly ``nonce_failures`` times makes
    the BM-SC take a new vector (an SQN) for that UE; at most ``max_challenges`` of them
    within ``rate_window``, then 429 with nothing taken or written."""
    config = BmscConfig(period=1.0, rate_window=10.0, max_challenges=3)
    h = Harness(tmp_path, config=config)
    sqn0, rows0 = _sqn(h, 0), _challenge_rows(h)
    for _ in range(3):
        first, uri = h.request(h.ue(0))
        assert _status(first) == 401
        for _ in range(config.nonce_failures):
            forged = _forged_answer(h, h.ue(0).ue, _challenge(first), uri)
            assert _status(h.request(h.ue(0), auth=forged)[0]) == 403
        h.now += 1.0
    assert (_sqn(h, 0), _challenge_rows(h)) == (sqn0 + 3, rows0 + 3)
    h.tick(0.0)  # the key schedule brought up to now: only the request could change it
    before = h.core.store.snapshot()
    limited, _ = h.request(h.ue(0))
    assert (_status(limited), limited.code, limited.challenge) == (429, "rate_limited", None)
    assert limited.retry_after == pytest.approx(7.0)
    assert (h.core.store.snapshot(), _challenge_rows(h)) == (before, rows0 + 3)
    reply, out = h.register(1)
    assert _status(reply) == 200 and out is not None
    h.now = T0 + 10.0
    reply, out = h.register(0)
    assert _status(reply) == 200 and out is not None and _sqn(h, 0) == sqn0 + 4


def test_stale_nonce_rechallenged(tmp_path: Path) -> None:
    h = Harness(tmp_path, config=BmscConfig(period=1.0, nonce_lifetime=5.0))
    first, uri = h.request(h.ue(0))
    auth = h.ue(0).answer_challenge(_challenge(first), uri)
    h.now += 6.0
    before = h.core.store.snapshot()
    reply, _ = h.request(h.ue(0), auth=auth)
    assert _status(reply) == 401 and reply.code == "stale_nonce"
    assert parse_challenge(_challenge(reply)).stale
    assert h.core.store.snapshot()["registrations"] == before["registrations"]


@pytest.mark.parametrize(
    "header,code,status",
    [
        ("Basic dXNlcjpwYXNz", "bad_authorization", 400),
        ('Digest username="x", realm="r"', "bad_authorization", 400),
    ],
)
def test_malformed_authorization(tmp_path: Path, header: str, code: str, status: int) -> None:
    h = Harness(tmp_path)
    before = h.core.store.snapshot()
    reply, _ = h.request(h.ue(0), auth=header)
    assert (_status(reply), reply.code) == (status, code)
    assert "offset" in reply.message
    assert h.core.store.snapshot() == before


def test_identity_mismatch(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    first, uri = h.request(h.ue(1))
    auth = h.ue(1).answer_challenge(_challenge(first), uri)
    reply, _ = h.request(h.ue(0), auth=auth)  # UE 1's credentials on UE 0's request
    assert _status(reply) == 403 and reply.code == "identity_mismatch"


@pytest.mark.parametrize(
    "query,fragment",
    [
        ({"service": S, "port": "1"}, "'ue'"),
        ({"ue": "1", "service": S, "port": "70000"}, "UDP port"),
        ({"ue": "a b", "service": S, "port": "1"}, "'ue'"),
        ({"ue": "1", "service": "x/y", "port": "1"}, "'service'"),
        ({"ue": "1", "service": S, "port": "1", "reason": "whim"}, "'reason'"),
        ({"ue": "1", "service": S, "port": "1", "extra": "1"}, "unknown"),
    ],
)
def test_query_validation(query: dict[str, str], fragment: str) -> None:
    with pytest.raises(BmscError) as info:
        parse_register_query(query)
    assert _status(info.value) == 400 and fragment in info.value.message


def _withdrawal_blockers(h: Harness) -> tuple[int, float]:
    """Three UEs registered, the third revoked: the first two hold a withdrawn next TEK
    and their fetch times (no spreading: all at planned + delay) lie after the planned
    activation of its replacement.  Returns (replacement MKI, the common fetch time)."""
    for i in range(3):
        assert h.register(i)[1] is not None
    h.events += h.core.revoke(h.ue(2).ue, S, h.now)
    replacement = h.core.store.teks(S, "pending")[0]
    fetch = h.core.store.get_registration(h.ue(0).ue, S).fetch_time  # type: ignore[union-attr]
    assert fetch == pytest.approx(replacement.planned + h.config.fetch_delay)
    return replacement.mki, fetch


def test_after_fetch_window_waits_for_fetch_times(tmp_path: Path) -> None:
    h = Harness(tmp_path, {"fetch_spreading": "none"}, n=3)
    mki, fetch = _withdrawal_blockers(h)
    planned = h.core.store.teks(S, "pending")[0].planned
    h.tick(planned - h.now + 0.01)
    assert h.teks("pending")[0] == mki, "activated while registered UEs could still fetch"
    h.now = fetch - 0.02
    assert h.register(0, trigger="fetch_time")[1] is not None  # UE 0 gets it; UE 1 not
    h.tick(0.01)
    assert h.teks("pending")[0] == mki, "UE 1's fetch time has not come yet"
    grace = h.core.config.fetch_grace
    h.tick(0.02 + grace / 2)  # UE 1 is late, but its request may still be in transit
    assert h.teks("pending")[0] == mki, "activated within UE 1's fetch grace"
    h.tick(grace)  # UE 1 missed its fetch time and the grace: activation goes ahead
    assert h.teks("active") == [mki]
    assert h.named("Activate")[-1].extra["late"] > 0


def test_immediate_activation_ignores_blockers(tmp_path: Path) -> None:
    h = Harness(tmp_path, {"activation": "immediate", "fetch_spreading": "none"}, n=3)
    mki, _ = _withdrawal_blockers(h)
    planned = h.core.store.teks(S, "pending")[0].planned
    h.tick(planned - h.now + 0.01)
    assert h.teks("active") == [mki]


def test_after_acks_activation_needs_mikey_responses(tmp_path: Path) -> None:
    h = Harness(tmp_path, {"mikey_response": "required", "activation": "after_acks"}, n=2)
    outs = [h.register(i)[1] for i in range(2)]
    verifications = [o.verification for o in outs if o is not None and o.verification]
    assert len(verifications) == 2
    pending = h.core.store.teks(S, "pending")[0]
    # Only UE 0 answers; UE 1's fetch time lies after the planned activation.
    reply = h.core.mikey_response(h.ue(0).ue, S, verifications[0], h.now)
    assert _status(reply) == 204 and [e.event for e in reply.events] == ["Acknowledge"]
    fetch1 = h.core.store.get_registration(h.ue(1).ue, S).fetch_time  # type: ignore[union-attr]
    assert fetch1 > pending.planned
    h.tick(pending.planned - h.now + 1e-3)
    assert h.teks("active") != [pending.mki], "activated without UE 1's acknowledgement"
    reply = h.core.mikey_response(h.ue(1).ue, S, verifications[1], h.now)
    assert _status(reply) == 204
    h.tick(0.01)
    assert h.teks("active") == [pending.mki]


def test_garbled_and_forged_mikey_responses(tmp_path: Path) -> None:
    h = Harness(tmp_path, {"mikey_response": "required", "activation": "after_acks"}, n=2)
    _, out = h.register(0)
    assert out is not None and out.verification is not None
    before = h.core.store.snapshot()
    garbled = h.core.mikey_response(h.ue(0).ue, S, out.verification[:-3], h.now)
    assert _status(garbled) == 400 and garbled.code == "bad_mikey"
    assert "MIKEY response malformed" in garbled.message
    flipped = bytearray(out.verification)
    flipped[-1] ^= 1
    forged = h.core.mikey_response(h.ue(0).ue, S, bytes(flipped), h.now)
    assert _status(forged) == 403 and forged.code == "mikey_auth_failed"
    other = h.core.mikey_response(h.ue(1).ue, S, out.verification, h.now)
    assert _status(other) == 409  # UE 1 has no delivery awaiting a response
    big = h.core.mikey_response(h.ue(0).ue, S, bytes(5000), h.now)
    assert _status(big) == 413
    assert h.core.store.snapshot() == before


def test_mikey_response_endpoint_unused_without_option(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    reply = h.core.mikey_response(h.ue(0).ue, S, b"x", h.now)
    assert _status(reply) == 404 and "mikey_response=none" in reply.message


def test_leave_rekey_withdraws_the_leavers_next_tek(tmp_path: Path) -> None:
    h = Harness(tmp_path, n=3)
    for i in range(3):
        h.register(i)
    leaver = h.ue(2)
    held_before = set(leaver.state(S).mkis)
    old_next = h.teks("pending")
    events = h.core.revoke(leaver.ue, S, h.now)
    h.events += events
    assert [e.event for e in events] == ["Revoke", "Withdraw", "Generate"]
    replacement = h.teks("pending")
    assert replacement and replacement[0] > max(old_next)  # a fresh MKI, never reused
    withdrawn = [t.mki for t in h.core.store.teks(S, "withdrawn")]
    assert withdrawn == old_next
    # The leaver cannot fetch the replacement.
    reply, out = h.register(2, trigger="fetch_time")
    assert _status(reply) == 403 and out is None
    # Run the schedule for a few periods with the others re-fetching on time.
    for _ in range(40):
        h.tick(0.1)
        for i in range(2):
            if S in h.ue(i).due(h.now):
                assert h.register(i, trigger="fetch_time")[1] is not None
    activated = [e.mki for e in h.named("Activate")]
    assert replacement[0] in activated
    assert not set(activated) & set(withdrawn)
    assert held_before.isdisjoint(set(activated[activated.index(replacement[0]) :]))


def test_never_rekey_keeps_the_leavers_next_tek(tmp_path: Path) -> None:
    h = Harness(tmp_path, {"membership_rekey": "never"}, n=2)
    for i in range(2):
        h.register(i)
    old_next = h.teks("pending")
    events = h.core.revoke(h.ue(1).ue, S, h.now)
    assert [e.event for e in events] == ["Revoke"]
    assert h.teks("pending") == old_next
    assert set(old_next) <= set(h.ue(1).state(S).mkis)


def test_join_rekey_withholds_the_active_tek_from_newcomers(tmp_path: Path) -> None:
    h = Harness(tmp_path, {"membership_rekey": "join", "fetch_spreading": "none"}, n=2)
    # Both UEs subscribed after the first TEK was activated: they only get the next one.
    _, out = h.register(0)
    active, pending = h.teks("active"), h.teks("pending")
    assert out is not None and list(out.mkis) == pending and not set(active) & set(out.mkis)
    planned = h.core.store.teks(S, "pending")[0].planned
    h.tick(planned - h.now + 0.1)
    assert h.teks("active") == pending
    # That TEK was activated after they joined: now the active TEK is sent as well.
    _, out = h.register(1)
    assert out is not None and list(out.mkis) == h.teks("active") + h.teks("pending")


def test_multi_key_delivers_several_next_teks(tmp_path: Path) -> None:
    config = BmscConfig(period=1.0, multi_key_depth=3)
    h = Harness(tmp_path, {"fetch_spreading": "multi_key"}, config=config, n=1)
    _, out = h.register(0)
    pending = h.core.store.teks(S, "pending")
    assert out is not None and len(pending) == 3
    assert list(out.mkis) == h.teks("active") + [t.mki for t in pending]
    assert out.fetch_time is not None
    assert (
        pending[-1].planned + config.fetch_delay - 1e-6
        <= out.fetch_time
        <= pending[-1].planned + config.fetch_delay + config.fetch_window + 1e-6
    )


def test_scheduled_slots_spread_evenly(tmp_path: Path) -> None:
    h = Harness(tmp_path, {"fetch_spreading": "scheduled_slots"}, n=5)
    outs = [h.register(i)[1] for i in range(5)]
    base = h.core.store.teks(S, "pending")[0].planned + h.config.fetch_delay
    offsets = sorted(o.fetch_time - base for o in outs if o and o.fetch_time is not None)
    assert len(offsets) == 5
    step = h.config.fetch_window / 5
    assert offsets == pytest.approx([i * step for i in range(5)], abs=1e-6)


def test_no_spreading_gives_everyone_the_same_time(tmp_path: Path) -> None:
    h = Harness(tmp_path, {"fetch_spreading": "none"}, n=4)
    times = {o.fetch_time for o in (h.register(i)[1] for i in range(4)) if o}
    assert len(times) == 1


def test_kek_derivation_must_match(tmp_path: Path) -> None:
    h = Harness(tmp_path, {"kek_derivation": "derived"}, n=2)
    reply, out = h.register(0)
    assert _status(reply) == 200 and out is not None
    # A UE that takes KEK = CK cannot open a delivery made with the derived KEK.
    k, opc = h.keys[h.ue(1).ue]
    wrong = UeCore(h.ue(1).ue, k, opc, load_spec().profile({}), rand=h.rng.randbytes)
    first, uri = h.request(wrong, port=40001)
    auth = wrong.answer_challenge(_challenge(first), uri)
    reply, _ = h.request(wrong, auth=auth, port=40001)
    assert _status(reply) == 200
    assert wrong.auth is not None
    assert derive_kek("derived", wrong.auth.ck, wrong.auth.ik, wrong.ue, S) != wrong.auth.ck
    with pytest.raises(UeError, match="authentication failed"):
        wrong.accept_delivery(S, reply.mikey, h.now)
    assert wrong.state(S).mkis == []


def test_replay_protection_counter_rejects_an_old_delivery(tmp_path: Path) -> None:
    h = Harness(tmp_path, {"second_service_auth": "authorise_only"}, n=1)
    first, _ = h.register(0)
    second, _ = h.register(0, trigger="fetch_time")
    assert _status(first) == _status(second) == 200
    with pytest.raises(UeError, match="replay protection"):
        h.ue(0).accept_delivery(S, first.mikey, h.now)


def test_replay_protection_none_accepts_an_old_delivery(tmp_path: Path) -> None:
    h = Harness(
        tmp_path, {"second_service_auth": "authorise_only", "replay_protection": "none"}, n=1
    )
    first, _ = h.register(0)
    h.register(0, trigger="fetch_time")
    out = h.ue(0).accept_delivery(S, first.mikey, h.now)
    assert out.event.ok


def test_timestamp_replay_protection_uses_ntp(tmp_path: Path) -> None:
    h = Harness(
        tmp_path, {"replay_protection": "timestamp", "second_service_auth": "authorise_only"}, n=1
    )
    reply, out = h.register(0)
    assert out is not None
    # T is an NTP time stamp of the delivery time, not a counter.
    assert unix_from_ntp(out.event.extra["counter"]) == pytest.approx(h.now, abs=1e-3)
    # The UE refuses the same delivery again (replay cache) ...
    with pytest.raises(UeError, match="replay"):
        h.ue(0).accept_delivery(S, reply.mikey, h.now + 1)


def test_mkis_never_reused_across_churn(tmp_path: Path) -> None:
    h = Harness(tmp_path, n=3)
    for step in range(30):
        h.tick(0.25)
        i = step % 3
        if step % 7 == 0:
            h.events += h.core.revoke(h.ue(i).ue, S, h.now)
        elif step % 7 == 3:
            h.events += h.core.subscribe(h.ue(i).ue, S, h.now)
        else:
            h.register(i, trigger="fetch_time")
    mkis = [t.mki for t in h.core.store.teks(S)]
    assert mkis == sorted(set(mkis)) == list(range(1, len(mkis) + 1))
    generated = [e.mki for e in h.named("Generate")]
    assert len(generated) == len(set(generated))
    activated = [e.mki for e in h.named("Activate")]
    assert activated == sorted(activated)


def test_profile_with_an_undeclared_value_is_refused() -> None:
    profile = dict(load_spec().baseline())
    profile["kek_scope"] = "shared"
    with pytest.raises(BmscError) as info:
        check_profile(profile)
    assert info.value.code == "bad_profile"
    assert "kek_scope=shared (declared: per_ue, common)" in info.value.message
    with pytest.raises(BmscError):
        UeCore("001010000000001", bytes(16), bytes(16), profile)


def _every_option_value() -> list[Any]:
    spec = load_spec()
    out = []
    for name, opt in spec.options.items():
        for value in opt.values:
            overrides = {name: value}
            rule = opt.requires.get(value)
            if rule is not None:  # e.g. activation=after_acks needs MIKEY responses
                other, allowed = rule.split("=")
                overrides[other] = allowed.split("|")[0]
            out.append(pytest.param(overrides, id=f"{name}={value}"))
    return out


@pytest.mark.parametrize("overrides", _every_option_value())
def test_every_option_value_runs_on_the_cores(tmp_path: Path, overrides: dict[str, str]) -> None:
    """Each value of each option of spec/options.toml: a UE registers (Digest AKA, MIKEY
    delivery) and decrypts an SRTP packet sent under the active TEK."""
    h = Harness(tmp_path, overrides, n=1)
    reply, out = h.register(0)
    assert out is not None, (reply.code, reply.message)
    active = h.core.active_tek(S)
    assert active is not None
    if h.profile["membership_rekey"] in ("join", "both"):
        # a newcomer is not given the TEK active when it joined: wait for the next one
        assert active.mki not in out.mkis
        while (active := h.core.active_tek(S)) is not None and active.mki not in out.mkis:
            h.tick(0.1)
    assert active is not None and active.mki in out.mkis
    with_mki = h.profile["mki_in_srtp"] == "mandatory"
    mki = active.mki.to_bytes(MKI_LENGTH, "big") if with_mki else b""
    sender = SrtpSender(SrtpPolicy(mki_length=len(mki)))
    sender.add_key(MasterKey(mki, active.key, active.salt))
    svc = h.core.store.get_service(S)
    assert svc is not None
    header = bytes([0x80, 96, 0, 1, 0, 0, 0, 160]) + svc.ssrc.to_bytes(4, "big")
    packet = h.ue(0).on_packet(S, sender.protect(header + b"every option"), h.now)
    assert packet.ok and packet.payload == header + b"every option", packet.reason


def _cks(h: Harness, reply_rands: list[bytes], i: int) -> bytes:
    k, opc = h.keys[h.ue(i).ue]
    return Milenage(k, opc).f3(reply_rands[i])


def _register_recording_rand(h: Harness, i: int) -> tuple[Outcome, bytes]:
    """Register UE ``i`` by hand, returning the delivery and the RAND of its challenge."""
    ue = h.ue(i)
    uri = register_uri(ue.ue, S, 40000 + i, "initial")
    first, _ = h.request(ue, port=40000 + i)
    header = _challenge(first)
    rand_value = decode_aka_nonce(parse_challenge(header).nonce).rand
    reply, _ = h.request(ue, auth=ue.answer_challenge(header, uri), port=40000 + i)
    assert _status(reply) == 200
    return reply, rand_value


def test_common_kek_is_one_key_that_opens_every_ues_delivery(tmp_path: Path) -> None:
    """kek_scope=common: the answer is the service's KEK under the UE's own KEK (CK),
    then the TEKs under that common KEK; the common KEK one UE obtains opens the TEK
    delivery to another UE, which its own CK does not."""
    h = Harness(tmp_path, {"kek_scope": "common"}, n=2)
    replies, rands = [], []
    for i in range(2):
        reply, rand_value = _register_recording_rand(h, i)
        replies.append(reply)
        rands.append(rand_value)
    ck0, ck1 = _cks(h, rands, 0), _cks(h, rands, 1)
    opened = []
    for i, ck in enumerate((ck0, ck1)):
        carrier, teks = split_messages(replies[i].mikey)
        group = parse_and_verify(carrier, ck, ReplayState(ReplayMode.NONE), h.now, group_key=True)
        opened.append((group.keys[0].tek, teks))
    (kek0, _teks0), (kek1, teks1) = opened
    assert kek0 == kek1 and len(kek0) == 16  # one KEK for both UEs
    # UE0's copy of the common KEK opens the TEK delivery addressed to UE1 ...
    d = parse_and_verify(teks1, kek0, ReplayState(ReplayMode.NONE), h.now).delivery
    assert d.id_r is not None and d.id_r.data == h.ue(1).ue.encode()
    store_keys = {t.mki: t.key for t in h.core.store.teks(S)}
    assert {int.from_bytes(k.mki or b"", "big"): k.tek for k in d.keys}.items() <= (
        store_keys.items()
    )
    # ... which UE0's own CK does not.
    with pytest.raises(MikeyAuthError):
        parse_and_verify(teks1, ck0, ReplayState(ReplayMode.NONE), h.now)
    # The UE cores install the TEKs and keep the common KEK.
    for i in range(2):
        out = h.ue(i).accept_delivery(S, replies[i].mikey, h.now)
        assert sorted(out.mkis) == h.teks("active") + h.teks("pending")
        assert h.ue(i).state(S).kek == kek0


def test_common_kek_answer_must_be_one_pair(tmp_path: Path) -> None:
    """The UE takes the common KEK and the TEKs only from the two messages of one answer."""
    h = Harness(tmp_path, {"kek_scope": "common", "second_service_auth": "authorise_only"}, n=2)
    first, _ = _register_recording_rand(h, 0)
    ue0 = h.ue(0)
    uri = register_uri(ue0.ue, S, 40000, "initial")
    second, _ = h.request(ue0, auth=ue0.preemptive_authorization(uri))
    other, _ = _register_recording_rand(h, 1)
    carrier_a, teks_a = split_messages(first.mikey)
    _carrier_b, teks_b = split_messages(second.mikey)
    _carrier_o, teks_o = split_messages(other.mikey)
    with pytest.raises(UeError, match="1 MIKEY message"):
        ue0.accept_delivery(S, teks_a, h.now)  # the TEK delivery alone
    with pytest.raises(UeError, match="different T"):
        ue0.accept_delivery(S, carrier_a + teks_b, h.now)  # parts of two answers
    with pytest.raises(UeError, match="another UE"):
        ue0.accept_delivery(S, carrier_a + teks_o, h.now)  # UE1's TEKs behind UE0's KEK
    assert ue0.state(S).keys == {}
    assert ue0.accept_delivery(S, second.mikey, h.now).mkis


def test_tls_delivery_carries_keys_in_the_clear_and_mikey_kek_refuses_that(
    tmp_path: Path,
) -> None:
    """tek_protection=tls: MIKEY encryption is NULL (the TEK bytes are in the message;
    HTTPS protects them), the MAC under the UE's CK still authenticates it; a UE under
    tek_protection=mikey_kek refuses such a delivery."""
    h = Harness(tmp_path, {"tek_protection": "tls"}, n=1)
    reply, rand_value = _register_recording_rand(h, 0)
    for tek in h.core.store.teks(S, "active") + h.core.store.teks(S, "pending"):
        assert tek.key in reply.mikey and tek.salt in reply.mikey
    d = parse_and_verify(
        reply.mikey, _cks(h, [rand_value], 0), ReplayState(ReplayMode.NONE), h.now
    ).delivery
    assert d.encr_alg is EncrAlg.NULL
    with pytest.raises(MikeyAuthError):
        parse_and_verify(reply.mikey, bytes(16), ReplayState(ReplayMode.NONE), h.now)
    # The same BM-SC answers a UE configured for tek_protection=mikey_kek (a downgrade).
    k, opc = h.keys[h.ue(0).ue]
    victim = UeCore(h.ue(0).ue, k, opc, load_spec().baseline())
    uri = register_uri(victim.ue, S, 40000, "initial")
    first, _ = h.request(victim)
    reply2, _ = h.request(victim, auth=victim.answer_challenge(_challenge(first), uri))
    assert _status(reply2) == 200
    with pytest.raises(UeError, match="unencrypted"):
        victim.accept_delivery(S, reply2.mikey, h.now)
    assert victim.state(S).keys == {}


def test_profile_recorded_and_mismatch_refused(tmp_path: Path) -> None:
    h = Harness(tmp_path, n=1)
    h.core.store.close()
    with pytest.raises(BmscError, match="different profile"):
        BmscCore(Store(tmp_path / "bmsc.db"), load_spec().profile({"activation": "immediate"}))
    BmscCore(Store(tmp_path / "bmsc.db"), load_spec().profile({}))  # the same one is fine


def test_admin_validation(tmp_path: Path) -> None:
    h = Harness(tmp_path, n=1)
    with pytest.raises(BmscError, match="already exists"):
        h.core.add_subscriber(h.ue(0).ue, bytes(16), bytes(16))
    with pytest.raises(BmscError, match="16 octets"):
        h.core.add_subscriber("00199", bytes(15), bytes(16))
    with pytest.raises(BmscError, match="unknown subscriber"):
        h.core.subscribe("00199", S, h.now)
    with pytest.raises(BmscError, match="period"):
        h.core.add_service("239.1.1.1", h.now, period=0.0)
    assert h.core.subscribe(h.ue(0).ue, S, h.now) == []  # already subscribed: a no-op
    assert h.core.revoke(h.ue(0).ue, S, h.now)[0].event == "Revoke"
    assert h.core.revoke(h.ue(0).ue, S, h.now) == []


def test_srtp_index_reservation_is_monotone(tmp_path: Path) -> None:
    h = Harness(tmp_path, n=1)
    _ssrc, start = h.core.stream_start(S)
    assert start == 0
    limit = h.core.stream_reserve(S, 999)
    assert limit >= 1000
    _, start2 = h.core.stream_start(S)  # a restarted sender
    assert start2 >= limit

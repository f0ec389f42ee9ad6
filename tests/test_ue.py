"""The sans-I/O UE core: key switching by MKI, unknown MKIs, bad packets and deliveries.

Packets are made with the project's SRTP sender (:mod:`mbmssec.impl.protocols.srtp`, itself
checked against libsrtp) under the TEKs the BM-SC core stored; deliveries come from the
BM-SC core or are built with :mod:`mbmssec.impl.protocols.mikey_messages` under a KEK the test
derives from the UE's own authentication.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from test_bmsc import Harness, S

from mbmssec.impl.net.client import register_uri
from mbmssec.impl.protocols.aka import derive_kek
from mbmssec.impl.protocols.mikey import FetchAtTime, IdPayload, IdType, SrtpCs
from mbmssec.impl.protocols.mikey_messages import (
    TekKey,
    build_tek_delivery,
    new_tek_delivery,
    ntp_from_unix,
)
from mbmssec.impl.protocols.srtp import MasterKey, SrtpPolicy, SrtpSender
from mbmssec.impl.service.bmsc import MKI_LENGTH
from mbmssec.impl.service.store import TekRow
from mbmssec.impl.service.ue import UeError


def _sender(h: Harness, with_mki: bool = True) -> tuple[SrtpSender, int]:
    ssrc, start = h.core.stream_start(S)
    sender = SrtpSender(SrtpPolicy(mki_length=MKI_LENGTH if with_mki else 0))
    sender.set_roc(ssrc, start >> 16)
    return sender, ssrc


def _use(sender: SrtpSender, tek: TekRow, with_mki: bool = True) -> None:
    mki = tek.mki.to_bytes(MKI_LENGTH, "big") if with_mki else b""
    for old in sender.mkis:
        sender.remove_key(old)
    sender.add_key(MasterKey(mki, tek.key, tek.salt))


def _packet(sender: SrtpSender, ssrc: int, seq: int) -> bytes:
    rtp = struct.pack("!BBHII", 0x80, 96, seq, seq * 160, ssrc) + b"media" * 20
    return sender.protect(rtp)


def test_switch_on_newer_mki_drops_older_keys(tmp_path: Path) -> None:
    h = Harness(tmp_path, n=1)
    _, out = h.register(0)
    assert out is not None
    active, nxt = h.core.store.teks(S, "active")[0], h.core.store.teks(S, "pending")[0]
    ue = h.ue(0)
    sender, ssrc = _sender(h)
    _use(sender, active)
    first = ue.on_packet(S, _packet(sender, ssrc, 0), h.now)
    assert first.ok and first.mki == active.mki and first.payload is not None
    assert first.payload.endswith(b"media")
    assert ue.state(S).mkis == [active.mki, nxt.mki]
    _use(sender, nxt)
    switched = ue.on_packet(S, _packet(sender, ssrc, 1), h.now)
    assert switched.ok and switched.switched and ue.state(S).current == nxt.mki
    assert ue.state(S).mkis == [nxt.mki]  # the older TEK is gone
    _use(sender, active)  # a late packet under the dropped TEK
    late = ue.on_packet(S, _packet(sender, ssrc, 2), h.now)
    assert not late.ok and late.reason == "unknown_mki" and late.refetch
    assert late.event.event == "Receive" and late.event.mki == active.mki


def test_bad_packets(tmp_path: Path) -> None:
    h = Harness(tmp_path, n=1)
    h.register(0)
    active = h.core.store.teks(S, "active")[0]
    ue = h.ue(0)
    sender, ssrc = _sender(h)
    _use(sender, active)
    good = _packet(sender, ssrc, 5)
    tampered = bytearray(good)
    tampered[20] ^= 0x01
    assert ue.on_packet(S, bytes(tampered), h.now).reason == "auth_failed"
    assert ue.on_packet(S, good, h.now).ok
    assert ue.on_packet(S, good, h.now).reason == "replay"
    assert ue.on_packet(S, b"\x80\x00", h.now).reason == "malformed"
    st = ue.state(S)
    assert (st.decrypted, st.failures) == (1, 3)


def test_unknown_mki_wait_mode_does_not_refetch(tmp_path: Path) -> None:
    h = Harness(tmp_path, {"unknown_mki_resync": "wait"}, n=1)
    h.register(0)
    sender, ssrc = _sender(h)
    rogue = TekRow(0, S, 999, bytes(16), bytes(14), "active", 0, 0.0, 0.0, None, None, None)
    _use(sender, rogue)
    outcome = h.ue(0).on_packet(S, _packet(sender, ssrc, 0), h.now)
    assert outcome.reason == "unknown_mki" and not outcome.refetch
    assert h.ue(0).state(S).saw_unknown


def test_without_mki_the_ue_is_stuck_on_its_current_key(tmp_path: Path) -> None:
    h = Harness(tmp_path, {"mki_in_srtp": "optional"}, n=1)
    h.register(0)
    active, nxt = h.core.store.teks(S, "active")[0], h.core.store.teks(S, "pending")[0]
    ue = h.ue(0)
    sender, ssrc = _sender(h, with_mki=False)
    _use(sender, active, with_mki=False)
    assert ue.on_packet(S, _packet(sender, ssrc, 0), h.now).ok
    _use(sender, nxt, with_mki=False)  # the BM-SC switched; nothing in the packet says so
    after = ue.on_packet(S, _packet(sender, ssrc, 1), h.now)
    assert not after.ok and after.reason == "auth_failed" and not after.refetch
    # Only a re-registration (current = the new active TEK) gets it going again.
    h.tick(nxt.planned - h.now + 0.01)
    h.register(0, trigger="fetch_time")
    assert ue.state(S).current == nxt.mki
    assert ue.on_packet(S, _packet(sender, ssrc, 2), h.now).ok


def test_due_by_time_and_by_srtp_index(tmp_path: Path) -> None:
    h = Harness(tmp_path, n=1)
    _, out = h.register(0)
    assert out is not None and out.fetch_time is not None
    assert h.ue(0).due(out.fetch_time - 0.01) == []
    assert h.ue(0).due(out.fetch_time) == [S]
    assert h.ue(0).next_fetch_time() == out.fetch_time
    (tmp_path / "seq").mkdir()
    h2 = Harness(tmp_path / "seq", {"fetch_time_unit": "sequence_number"}, n=1)
    h2.core.note_stream_index(S, 0, h2.now)
    _, out2 = h2.register(0)
    assert out2 is not None and out2.fetch_index is not None
    ue = h2.ue(0)
    sender, ssrc = _sender(h2)
    _use(sender, h2.core.store.teks(S, "active")[0])
    assert ue.on_packet(S, _packet(sender, ssrc, out2.fetch_index - 1), h2.now).ok
    assert ue.due(h2.now) == []
    assert ue.on_packet(S, _packet(sender, ssrc, out2.fetch_index), h2.now).ok
    assert ue.due(h2.now) == [S]


def test_challenge_must_be_aka(tmp_path: Path) -> None:
    h = Harness(tmp_path, n=1)
    with pytest.raises(UeError, match="not AKAv1-MD5"):
        h.ue(0).answer_challenge('Digest realm="r", nonce="abc", algorithm=MD5, qop="auth"', "/")
    with pytest.raises(UeError, match="unusable challenge"):
        h.ue(0).answer_challenge("Negotiate abc", "/")
    with pytest.raises(UeError, match="not an AKA nonce"):
        h.ue(0).answer_challenge(
            'Digest realm="r", nonce="abc", algorithm=AKAv1-MD5, qop="auth"', "/"
        )


def test_delivery_checks(tmp_path: Path) -> None:
    h = Harness(tmp_path, n=1)
    ue = h.ue(0)
    with pytest.raises(UeError, match="without a completed authentication"):
        ue.accept_delivery(S, b"\x01", h.now)
    first, uri = h.request(ue)
    assert first.challenge is not None
    ue.answer_challenge(first.challenge, uri)
    assert ue.auth is not None
    kek = derive_kek("ck", ue.auth.ck, ue.auth.ik, ue.ue, S)

    def delivery(id_r: bytes, keys: list[TekKey], cs: bool = True) -> bytes:
        d = new_tek_delivery(
            csb_id=1,
            keys=keys,
            now=h.now,
            rand=h.rng.randbytes,
            counter=100,
            cs_map=(SrtpCs(0, 5, 0),) if cs else (),
            id_i=IdPayload(IdType.URI, b"http://bmsc/"),
            id_r=IdPayload(IdType.NAI, id_r),
            fetch=FetchAtTime(ntp_from_unix(h.now + 1)),
        )
        return build_tek_delivery(d, kek)

    key = TekKey(bytes(16), bytes(14), (7).to_bytes(MKI_LENGTH, "big"))
    with pytest.raises(UeError, match="another UE"):
        ue.accept_delivery(S, delivery(b"001019999999999", [key]), h.now)
    with pytest.raises(UeError, match="MKI"):
        ue.accept_delivery(S, delivery(ue.ue.encode(), [TekKey(bytes(16), bytes(14))]), h.now)
    with pytest.raises(UeError, match="salt"):
        ue.accept_delivery(S, delivery(ue.ue.encode(), [TekKey(bytes(16), None, b"1234")]), h.now)
    with pytest.raises(UeError, match="CS map"):
        ue.accept_delivery(S, delivery(ue.ue.encode(), [key], cs=False), h.now)
    with pytest.raises(UeError, match="MIKEY TEK delivery rejected"):
        ue.accept_delivery(S, b"\x01\x00\x00", h.now)
    assert ue.state(S).mkis == []  # nothing installed by any of them
    ok = ue.accept_delivery(S, delivery(ue.ue.encode(), [key]), h.now)
    assert ok.mkis == (7,) and ue.state(S).mkis == [7]


def test_register_uri_is_the_digest_uri() -> None:
    uri = register_uri("a@b+c", "239.1.1.1", 4000, "fetch_time")
    assert uri == "/mbms/register?ue=a%40b%2Bc&service=239.1.1.1&port=4000&reason=fetch_time"


# -- injected traffic ------------------------------------------------------------------------


def _forged(ssrc: int, seq: int, mki: int, size: int = 60) -> bytes:
    """An SRTP-shaped packet anyone on the bearer can send: the stream's SSRC (it is in
    the clear), a sequence number near the stream's, an MKI and a tag of its choosing."""
    head = struct.pack("!BBHII", 0x80, 96, seq & 0xFFFF, seq * 160, ssrc)
    return head + bytes(size) + mki.to_bytes(MKI_LENGTH, "big") + bytes(10)


BMSC_SOURCE = ("127.0.0.1", 40123)


def test_replayed_truncated_and_foreign_packets_are_counted_as_such(tmp_path: Path) -> None:
    """The finding: replayed old packets and truncated ones were classified as an unknown
    MKI, and every such packet asked for a re-registration; datagrams were accepted from
    any source.  Now each is refused before any key is looked up, counted by its reason,
    and asks for nothing; the model's ``saw_unknown`` is not set."""
    h = Harness(tmp_path, n=1)
    h.register(0)
    active, nxt = h.core.store.teks(S, "active")[0], h.core.store.teks(S, "pending")[0]
    ue = h.ue(0)
    ue.announce_source(S, BMSC_SOURCE)
    sender, ssrc = _sender(h)
    _use(sender, active)
    old = _packet(sender, ssrc, 0)
    assert ue.on_packet(S, old, h.now, BMSC_SOURCE).ok
    _use(sender, nxt)
    assert ue.on_packet(S, _packet(sender, ssrc, 1), h.now, BMSC_SOURCE).switched
    assert ue.state(S).mkis == [nxt.mki]  # the first TEK is gone: its MKI is unknown now
    st = ue.state(S)
    before = (st.decrypted, st.keys.copy(), st.current)
    outcomes = {
        "replay": [ue.on_packet(S, old, h.now, BMSC_SOURCE)],
        "malformed": [
            ue.on_packet(S, old[:n], h.now, BMSC_SOURCE)
            for n in (0, 2, 11, 12, 12 + MKI_LENGTH + 9)
        ],
        "foreign_ssrc": [ue.on_packet(S, _forged(ssrc ^ 1, 2, 999), h.now, BMSC_SOURCE)],
        "foreign_source": [
            ue.on_packet(S, _forged(ssrc, 2, 999), h.now, ("127.0.0.1", 40124)),
            ue.on_packet(S, _packet(sender, ssrc, 2), h.now, ("127.0.0.2", BMSC_SOURCE[1])),
        ],
    }
    for reason, outs in outcomes.items():
        for out in outs:
            assert (out.ok, out.reason, out.refetch, out.mki) == (False, reason, False, None)
            assert out.event.reason == reason
    assert dict(st.refused) == {r: len(o) for r, o in outcomes.items()}
    assert not st.saw_unknown and st.refetches == 0
    assert (st.decrypted, st.keys, st.current) == before
    # A genuine packet still decrypts (from the announced source, or handed over
    # without one), and a never-seen packet under the dropped TEK is an unknown MKI.
    assert ue.on_packet(S, _packet(sender, ssrc, 3), h.now, BMSC_SOURCE).ok
    _use(sender, active)
    late = ue.on_packet(S, _packet(sender, ssrc, 4), h.now)
    assert (late.reason, late.refetch) == ("unknown_mki", True) and st.saw_unknown


def test_injected_unknown_mkis_cause_at_most_two_refetches(tmp_path: Path) -> None:
    """The finding: forged packets with changing unknown MKIs reset the UE's back-off,
    and 20,000 packets in 10 s caused 49 re-registrations of one UE.  Now, with packets
    that pass every check an injector can pass (the stream's SSRC, plausible sequence
    numbers, a new unknown MKI each), the first re-fetch comes at once, the second after
    the back-off (0.5 to 1 s), and the cap of 2 per minute holds the rest; the MKIs
    changing reset nothing.  The third comes once the first is a minute old."""
    h = Harness(tmp_path, n=1)
    h.register(0)
    ue = h.ue(0)
    sender, ssrc = _sender(h)
    _use(sender, h.core.store.teks(S, "active")[0])
    assert ue.on_packet(S, _packet(sender, ssrc, 100), h.now).ok
    t0 = h.now
    # A packet far beyond the stream (more than RefetchPolicy.ahead) never asks.
    far = ue.on_packet(S, _forged(ssrc, 100 + 5000, 5_000_000), t0)
    assert far.reason == "unknown_mki" and not far.refetch
    asked = []
    for k in range(20_000):
        now = t0 + k * 0.0005  # 20,000 packets in 10 s
        out = ue.on_packet(S, _forged(ssrc, 101 + k % 3000, 10_000 + k), now)
        assert out.reason == "unknown_mki"
        if out.refetch:
            asked.append(now - t0)
    assert len(asked) == 2 and asked[0] == 0.0
    assert 0.5 <= asked[1] <= 1.0
    st = ue.state(S)
    assert st.refetches == 2 and st.refused["unknown_mki"] == 20_001
    later = [
        t for t in (59.9, 60.0, 60.1) if ue.on_packet(S, _forged(ssrc, 102, 7), t0 + t).refetch
    ]
    assert later == [60.0]
    assert st.refetch_gap == 4.0  # 1, 2, 4: doubled after each re-fetch that did not help


def test_a_refetch_that_brings_the_mki_resets_the_back_off(tmp_path: Path) -> None:
    """Only an authenticated packet under the MKI that caused the last re-fetch (the
    re-fetch did its job) resets back-off and cap; an injected packet never
    authenticates.  A UE that missed two activations gets the active TEK at once."""
    h = Harness(tmp_path, n=2)
    h.register(0)
    h.register(1)
    ue = h.ue(0)
    sender, ssrc = _sender(h)
    for _ in range(2):  # two activations UE 0 misses (UE 1 keeps fetching)
        tek = h.core.store.teks(S, "pending")[0]
        h.tick(tek.planned - h.now + 0.01)
        h.register(1, trigger="fetch_time")
    active = h.core.store.teks(S, "active")[0]
    assert active.mki not in ue.state(S).mkis
    _use(sender, active)
    first = ue.on_packet(S, _packet(sender, ssrc, 0), h.now)
    assert (first.reason, first.refetch) == ("unknown_mki", True)
    assert not ue.on_packet(S, _forged(ssrc, 1, 999), h.now + 0.01).refetch  # backing off
    _, out = h.register(0, trigger="unknown_mki")
    assert out is not None and active.mki in out.mkis
    assert ue.on_packet(S, _packet(sender, ssrc, 2), h.now + 0.02).ok
    st = ue.state(S)
    assert (st.refetch_gap, st.refetch_times, st.refetch_mki) == (0.0, [], None)
    assert ue.on_packet(S, _forged(ssrc, 3, 999), h.now + 0.03).refetch

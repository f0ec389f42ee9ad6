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

"""Attacks on the running BM-SC and UE client: injected SRTP, re-registration floods, a
BM-SC that is unreachable, busy or asks to wait.

Each test starts the real server (:func:`test_server.bed`: HTTP and UDP on loopback)
and real UE clients, replays one attack of issue 14's findings and asserts the status
answered, that nothing changed after a refused request, and the figures.  The other
findings' tests are listed, with these, on the documentation's attack page
(``docs/attacks.rst``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import socket
import struct
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from test_server import S, _until, bed

from mbmssec.impl.net.client import ClientConfig, UeClient, register_uri
from mbmssec.impl.net.server import TrafficCapture
from mbmssec.impl.protocols.digest import (
    encode_aka_nonce,
    parse_authorization,
    parse_challenge,
    respond_resync,
    serialise_authorization,
)
from mbmssec.impl.protocols.pcap import Proto
from mbmssec.impl.service.bmsc import MKI_LENGTH, BmscConfig
from mbmssec.impl.service.ue import UeError

N_INJECTED = 20_000


def _forged(ssrc: int, seq: int, mki: int) -> bytes:
    """What anyone on the bearer can send: the stream's SSRC and a sequence number near
    its own (both in the clear), an MKI never issued and a tag of its choosing."""
    head = struct.pack("!BBHII", 0x80, 96, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, ssrc)
    return head + bytes(120) + mki.to_bytes(MKI_LENGTH, "big") + bytes(10)


def _injected(ssrc: int, seq: int, genuine: list[bytes]) -> tuple[list[bytes], dict[str, int]]:
    """:data:`N_INJECTED` datagrams of four kinds in turn, and how many of each the UE
    must count: forged packets under a new unknown MKI each (1,000 packets ahead of the
    stream: ahead of it for the test's few seconds, within what the UE finds plausible),
    replays of packets the UE decrypted, those packets truncated, and packets of another
    SSRC."""
    out: list[bytes] = []
    kinds = {"unknown_mki": 0, "replay": 0, "malformed": 0, "foreign_ssrc": 0}
    for k in range(N_INJECTED):
        old = genuine[k % len(genuine)]
        if k % 4 == 0:
            out.append(_forged(ssrc, seq + 1000 + k % 50, 0x7F000000 + k))
            kinds["unknown_mki"] += 1
        elif k % 4 == 1:
            out.append(old)
            kinds["replay"] += 1
        elif k % 4 == 2:
            cut = old[: k % len(old)]
            out.append(cut)
            # shorter than an RTP header, an MKI and a tag: not SRTP; longer: a replay
            # of a packet received (its sequence number is in the replay list)
            kinds["malformed" if len(cut) < 12 + MKI_LENGTH + 10 else "replay"] += 1
        else:
            out.append(_forged(ssrc ^ 0x5A5A, seq + 1, 0x7F000000 + k))
            kinds["foreign_ssrc"] += 1
    return out, kinds


def test_injected_srtp_causes_at_most_two_reregistrations(tmp_path: Path) -> None:
    """Finding 6: forged packets with changing unknown MKIs reset the UE's back-off (20,000
    in 10 s caused 49 re-registrations of one UE), replayed and truncated packets were
    taken for unknown MKIs, and the UE accepted datagrams from any source.

    20,000 datagrams (forged unknown MKIs with the stream's SSRC and plausible sequence
    numbers, replays of packets the UE decrypted, truncations of them, another SSRC)
    reach a registered UE twice: from the attacker's own socket, where all are refused
    as ``foreign_source`` (the BM-SC's source port cannot be bound by anyone else), and
    as if sent from the BM-SC's announced address (a spoofing attacker), where each is
    counted by its kind and the forged MKIs cause at most 2 re-registrations.  The
    genuine stream keeps decrypting throughout."""

    async def main() -> dict[str, Any]:
        capture = TrafficCapture()
        async with (
            bed(tmp_path, n=1, period=1.0, capture=capture) as b,
            aiohttp.ClientSession() as http,
        ):
            ue = b.ues[0]
            client = UeClient(ue, b.url, http, log=b.log, log_receives=False)
            port = await client.add_service(S)
            client.start()
            st = ue.state(S)
            assert await _until(lambda: st.decrypted >= 10, 10)
            assert st.source == ("127.0.0.1", b.server.udp_port)
            with (
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as spoof,
                pytest.raises(OSError),
            ):
                spoof.bind(st.source)
            genuine = [
                p.payload for p in capture.packets if p.proto is Proto.UDP and p.dst_port == port
            ][-8:]  # sent long after the source was announced: each one decrypted
            assert st.ssrc is not None and st.receiver is not None
            highest = st.receiver.highest_index(st.ssrc)
            assert highest is not None
            datagrams, kinds = _injected(st.ssrc, highest, genuine)
            refused0, decrypted0 = dict(st.refused), st.decrypted

            def grew() -> dict[str, int]:
                return {
                    r: n - refused0.get(r, 0)
                    for r, n in st.refused.items()
                    if n != refused0.get(r, 0)
                }

            # 1. From the attacker's own socket, over the bearer (loopback UDP), in bursts
            # the UE's socket buffer holds (the loop reads one datagram per turn).
            loop = asyncio.get_running_loop()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as attacker:
                attacker.bind(("127.0.0.1", 0))
                for k, data in enumerate(datagrams):
                    attacker.sendto(data, ("127.0.0.1", port))
                    if k % 100 == 99 or k == N_INJECTED - 1:
                        deadline = loop.time() + 5
                        while grew().get("foreign_source", 0) <= k and loop.time() < deadline:
                            await asyncio.sleep(0)
            assert grew() == {"foreign_source": N_INJECTED} and st.refetches == 0
            # 2. As if from the BM-SC's address: every check past the source.
            refused0 = dict(st.refused)
            refetches0, started = st.refetches, time.time()
            for k, data in enumerate(datagrams):
                client.on_datagram(S, data, st.source)
                if k % 500 == 499:
                    await asyncio.sleep(0)
            injected_for = time.time() - started

            def refetched() -> list[dict[str, Any]]:
                return [
                    e
                    for e in b.events("Register")
                    if e["trigger"] == "unknown_mki" and e["t"] >= started
                ]

            # every re-registration asked for has started and finished (an unknown MKI
            # met while the UE is registering anyway, at its fetch time, starts none)
            await asyncio.sleep(0.2)
            assert await _until(lambda: not client.svcs[S].inflight, 5)
            figures = {
                "counted": grew(),
                "refetches": st.refetches - refetches0,
                "decrypted during": st.decrypted - decrypted0,
                "injected for": injected_for,
            }
            await client.stop()
            figures["kinds"] = kinds
            figures["unknown_mki registrations"] = refetched()
            figures["deliveries"] = [
                e
                for e in b.events("Deliver")
                if e["trigger"] == "unknown_mki" and e["t"] >= started
            ]
            figures["rejected"] = [e for e in b.events("Rejected") if e["ue"] == ue.ue]
            return figures

    got = asyncio.run(main())
    kinds = got["kinds"]
    assert got["counted"] == kinds, got["counted"]
    # the core asked for a re-fetch (at most 2); the client made one for each request
    # it did not already have under way (a registration at the fetch time brings the
    # keys as well)
    assert 1 <= got["refetches"] <= 2
    assert len(got["unknown_mki registrations"]) <= got["refetches"]
    assert len(got["deliveries"]) == len(got["unknown_mki registrations"])
    assert not got["rejected"]
    assert got["decrypted during"] > 0


# -- the BM-SC asks to wait; the UE client retries -------------------------------------------


def test_a_ue_beyond_the_rate_limit_gets_429_and_waits_for_retry_after(tmp_path: Path) -> None:
    """The BM-SC refuses a UE's registrations beyond ``max_deliveries`` within
    ``rate_window`` with ``429`` and ``Retry-After``; the UE client sends nothing to the
    BM-SC for that service before then (not at its fetch time, not on an unknown MKI),
    and registers when the time has come."""
    config = BmscConfig(period=30.0, rate_window=2.0, max_deliveries=2)

    async def main() -> None:
        async with (
            bed(tmp_path, n=1, stream=False, config=config, record_arrivals=True) as b,
            aiohttp.ClientSession() as http,
        ):
            arrivals = b.server.arrivals
            assert arrivals is not None
            client = UeClient(
                b.ues[0], b.url, http, log=b.log, receive=False, config=ClientConfig(max_wait=0.5)
            )
            await client.add_service(S, 40000)
            assert await client.register(S) and await client.register(S, "unknown_mki")
            url = b.url + "/mbms/register?ue=" + b.ues[0].ue + f"&service={S}&port=40000"
            async with http.get(url) as resp:
                assert resp.status == 429
                wait = int(resp.headers["Retry-After"])
                body = await resp.json()
            assert 1 <= wait <= 2 and body["error"] == "rate_limited"
            before = b.core.store.snapshot()
            assert not await client.register(S, "unknown_mki")
            refused_at = arrivals[-1]
            retry = [
                e for e in b.events("Rejected") if e["ue"] == b.ues[0].ue and e["source"] == "bmsc"
            ]
            assert [e["reason"] for e in retry] == ["rate_limited", "rate_limited"]
            assert b.core.store.snapshot() == before
            svc = client.svcs[S]
            assert svc.hold_until >= refused_at + retry[-1]["retry_after"] - 0.01
            client.start()
            client.on_datagram(S, b"x" * 40, ("127.0.0.1", 1))  # nothing it may act on
            assert await _until(lambda: svc.registrations == 3, 10)
            await client.stop()
            after = [t for t in arrivals if t > refused_at]
            assert after and after[0] >= refused_at + retry[-1]["retry_after"]

    asyncio.run(main())


def test_client_retries_an_unreachable_or_busy_bmsc_with_backoff(tmp_path: Path) -> None:
    """The finding: with the machine busy, UEs gave up at once on "BM-SC unreachable:
    TimeoutError".  A request that fails for the network, or with a 5xx or 429, is sent
    again after a random delay below ``retry_min * 2^(k-1)`` (at most ``retry_max``,
    never before a ``Retry-After``), each retry logged, at most ``max_retries`` times."""
    cfg = ClientConfig(retry_min=0.05, retry_max=0.4, max_retries=30)

    async def main() -> None:
        async with (
            bed(tmp_path, n=2, stream=False, max_connections=1) as b,
            aiohttp.ClientSession() as http,
        ):
            port = b.server.port
            await b.server.stop()  # nothing listens on the port now
            client = UeClient(b.ues[0], b.url, http, log=b.log, receive=False, config=cfg)
            await client.add_service(S, 40000)
            task = asyncio.create_task(client.register(S))
            await asyncio.sleep(0.5)
            await b.server.start(port=port)
            assert await task
            # The limit: two retries, then the registration fails and is logged.
            await b.server.stop()
            short = ClientConfig(retry_min=0.05, retry_max=0.4, max_retries=2)
            other = UeClient(b.ues[1], b.url, http, log=b.log, receive=False, config=short)
            await other.add_service(S, 40001)
            assert not await other.register(S)
            await b.server.start(port=port)
            # Busy: the only connection slot held, the BM-SC answers 503 + Retry-After: 1.
            held = await asyncio.open_connection("127.0.0.1", port)
            assert await _until(lambda: b.server.connections == 1, 5)
            started = time.time()
            task = asyncio.create_task(other.register(S))
            await asyncio.sleep(0.3)
            held[1].close()
            assert await task
            busy_for = time.time() - started

            def ue_events(ue: str, name: str) -> list[dict[str, Any]]:
                return [e for e in b.events(name) if e["ue"] == ue]

            first = ue_events(b.ues[0].ue, "Retry")
            assert len(first) >= 2 and not ue_events(b.ues[0].ue, "Rejected")
            for e in first:
                assert e["reason"] == "unreachable"
                assert 0 <= e["delay"] <= min(0.4, 0.05 * 2 ** (e["attempt"] - 1))
            assert [e["attempt"] for e in first] == list(range(1, len(first) + 1))
            second = ue_events(b.ues[1].ue, "Retry")
            assert [(e["attempt"], e["reason"]) for e in second[:2]] == [
                (1, "unreachable"),
                (2, "unreachable"),
            ]
            gave_up = ue_events(b.ues[1].ue, "Rejected")
            assert [e["reason"] for e in gave_up] == ["unreachable"]
            busy = second[2:]
            assert [(e["status"], e["delay"]) for e in busy] == [(503, 1.0)]
            assert busy_for >= 1.0

    asyncio.run(main())


def test_every_repeated_request_is_the_ues_own_and_logged(tmp_path: Path) -> None:
    """Found in the fleet test: a worker committed a delivery and was killed before it
    answered; aiohttp sent the UE's GET again by itself, the UE never saw the failure and
    logged no Retry, and trace-check refused the log.  Against a peer that reads each
    request and drops the connection unanswered, every request it sees is one the UE
    sent and logged: the first, then one per Retry event."""
    cfg = ClientConfig(retry_min=0.01, retry_max=0.05, max_retries=2)
    seen: list[bytes] = []

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.transport.abort()  # gone without an answer, as a SIGKILLed worker

    async def main() -> None:
        async with bed(tmp_path, n=1, stream=False) as b, aiohttp.ClientSession() as http:
            server = await asyncio.start_server(drop, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            async with server:
                client = UeClient(b.ues[0], f"http://127.0.0.1:{port}", http, log=b.log, config=cfg)
                await client.add_service(S, 40000)
                assert not await client.register(S)
            retries = [e for e in b.events("Retry") if e["ue"] == b.ues[0].ue]
            assert [(e["attempt"], e["reason"]) for e in retries] == [
                (1, "unreachable"),
                (2, "unreachable"),
            ]
            assert len(seen) == 1 + len(retries)  # 6 when aiohttp repeated each GET

    asyncio.run(main())


# -- attacks that already held --------------------------------------------------------------


def test_authentication_attacks_are_refused_with_state_unchanged(tmp_path: Path) -> None:
    """The attacks on Digest AKA that held, against the real server: a replayed
    Authorization, a forged nonce, a wrong RES, an algorithm downgrade, a duplicated
    parameter, the user or the URI swapped, a resynchronisation (AUTS) that does not
    verify; each answered with its status and error, and after the first (which takes
    one new challenge for the UE whose nonce it replays) no subscriber, SQN, counter,
    subscription, registration or delivery changes.  Then bit flips and truncations of
    a real MIKEY delivery: the UE refuses every one and installs nothing."""

    async def main() -> None:
        async with bed(tmp_path, n=2, stream=False) as b, aiohttp.ClientSession() as http:
            ue, other = b.ues
            uri = register_uri(ue.ue, S, 40000, "initial")

            async def get(target: str, auth: str | None) -> tuple[int, str, str | None, bytes]:
                headers = {"Authorization": auth} if auth is not None else {}
                async with http.get(b.url + target, headers=headers) as resp:
                    body = await resp.read()
                    code = "" if resp.status == 200 else json.loads(body)["error"]
                    return resp.status, code, resp.headers.get("WWW-Authenticate"), body

            status, _, www, _ = await get(uri, None)
            assert status == 401 and www is not None
            good = ue.answer_challenge(www, uri)
            first_auth = ue.auth  # the KEK the delivery below is made under
            status, _, _, mikey = await get(uri, good)
            assert status == 200
            # The first replay finds the nonce used and takes one new challenge.
            assert (await get(uri, good))[:2] == (401, "nonce_used")
            before = b.core.store.snapshot()
            _, _, www, _ = await get(uri, None)
            assert www is not None
            challenge = parse_challenge(www)
            fresh = ue.answer_challenge(www, uri)
            cred = parse_authorization(fresh)
            wrong = dataclasses.replace(cred, response="0" * 32)
            forged_nonce = encode_aka_nonce(os.urandom(16), os.urandom(16), bytes(8))
            swapped_uri = register_uri(ue.ue, S, 40001, "initial")
            auts = respond_resync(
                challenge, username=ue.ue, auts=bytes(14), method="GET", uri=uri, rand=os.urandom
            )
            attacks: dict[str, tuple[str, str, tuple[int, str]]] = {
                "replayed Authorization": (uri, good, (401, "nonce_used")),
                "forged nonce": (
                    uri,
                    serialise_authorization(dataclasses.replace(cred, nonce=forged_nonce)),
                    (401, "unknown_nonce"),
                ),
                "wrong RES": (uri, serialise_authorization(wrong), (403, "auth_failed")),
                "algorithm downgrade": (
                    uri,
                    serialise_authorization(dataclasses.replace(cred, algorithm="MD5")),
                    (403, "digest_mismatch"),
                ),
                "duplicated parameter": (
                    uri,
                    fresh + f', nonce="{forged_nonce}"',
                    (400, "bad_authorization"),
                ),
                "user swapped": (
                    register_uri(other.ue, S, 40000, "initial"),
                    fresh,
                    (403, "identity_mismatch"),
                ),
                "URI swapped": (swapped_uri, fresh, (403, "digest_mismatch")),
                "AUTS that does not verify": (
                    uri,
                    serialise_authorization(auts),
                    (403, "auts_failed"),
                ),
            }
            for name, (target, header, expected) in attacks.items():
                assert (await get(target, header))[:2] == expected, name
                assert b.core.store.snapshot() == before, name
            # The UE's own answer to its challenge still works (two wrong answers
            # counted on it, below nonce_failures).
            status, _, _, _ = await get(uri, fresh)
            assert status == 200
            # Bit flips and truncations of the first delivery, to a UE holding the KEK
            # it was made under (its answer to the first challenge).
            ue.auth = first_auth
            st = ue.state(S)
            held = (st.keys.copy(), ue.replay)
            rng = random.Random(5)
            mutants = [mikey[:n] for n in range(0, len(mikey), 7)]
            for _ in range(300):
                flipped = bytearray(mikey)
                flipped[rng.randrange(len(mikey))] ^= 1 << rng.randrange(8)
                mutants.append(bytes(flipped))
            for data in mutants:
                with pytest.raises(UeError) as refused:
                    ue.accept_delivery(S, data, time.time())
                assert refused.value.code == "bad_delivery"
                assert (st.keys, ue.replay) == held
            assert ue.accept_delivery(S, mikey, time.time()).mkis  # the delivery itself

    asyncio.run(main())


def test_a_mikey_response_is_retried_until_the_bmsc_takes_it(tmp_path: Path) -> None:
    """Under ``activation=after_acks`` a lost MIKEY response holds the next TEK's
    activation up: the UE retries it as it retries a registration, logged, until the
    BM-SC acknowledges it."""
    overrides = {"mikey_response": "required", "activation": "after_acks"}
    cfg = ClientConfig(retry_min=0.05, retry_max=0.4, max_retries=8)

    async def main() -> None:
        async with (
            bed(tmp_path, overrides, n=1, stream=False) as b,
            aiohttp.ClientSession() as http,
        ):
            client = UeClient(b.ues[0], b.url, http, log=b.log, receive=False, config=cfg)
            held: list[bytes] = []

            async def hold(service: str, message: bytes) -> None:
                held.append(message)

            send = client._send_verification
            client._send_verification = hold  # type: ignore[method-assign]
            await client.add_service(S, 40000)
            assert await client.register(S) and len(held) == 1
            port = b.server.port
            await b.server.stop()
            task = asyncio.create_task(send(S, held[0]))
            await asyncio.sleep(0.4)
            await b.server.start(port=port)
            await task
            retries = [e for e in b.events("Retry") if e["ue"] == b.ues[0].ue]
            assert retries and all(e["reason"] == "unreachable" for e in retries)
            assert all(e["message"].startswith("MIKEY response") for e in retries)
            assert [e["ue"] for e in b.events("Acknowledge")] == [b.ues[0].ue]
            assert not [e for e in b.events("Rejected") if e["ue"] == b.ues[0].ue]

    asyncio.run(main())


def test_each_delivery_announces_the_streams_source(tmp_path: Path) -> None:
    """The source the UE accepts the stream from is the one the BM-SC sends it from:
    any free port by default, or the one it is given (as the workers of a fleet behind
    a load balancer must be, so that the source holds whichever worker leads)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        chosen = int(probe.getsockname()[1])

    async def main() -> None:
        async with (
            bed(tmp_path, n=1, stream_port=chosen) as b,
            aiohttp.ClientSession() as http,
        ):
            assert b.server.udp_port == chosen
            client = UeClient(b.ues[0], b.url, http, log=b.log, log_receives=False)
            await client.add_service(S)
            client.start()
            st = b.ues[0].state(S)
            assert await _until(lambda: st.decrypted >= 3, 10)
            assert st.source == ("127.0.0.1", chosen)
            await client.stop()

    asyncio.run(main())

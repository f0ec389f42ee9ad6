"""The BM-SC over HTTP and UDP on loopback, with UE clients, in one process.

Covers what a client sees: curl's 401 with an AKAv1-MD5 challenge, the status and the
message of every kind of bad input with the stored state unchanged, the admin
endpoints, the whole registration / re-key / decryption loop, MIKEY responses with
after-ack activation, AUTS resynchronisation and the second-service shortcut over HTTP,
and a delivery lost when the UE leaves coverage with a request in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mbmssec.impl.net.client import UeClient, UeClientError, register_uri
from mbmssec.impl.net.server import BmscServer, GroupCommit, ServerError, TrafficCapture
from mbmssec.impl.net.tls import TlsFiles, client_context, ensure_tls_files, server_context
from mbmssec.impl.protocols.digest import parse_challenge, respond, serialise_authorization
from mbmssec.impl.service.bmsc import (
    BmscConfig,
    BmscCore,
    Outcome,
    RegisterRequest,
    Result,
)
from mbmssec.impl.service.events import Event, EventLog, read_events
from mbmssec.impl.service.store import Store
from mbmssec.impl.service.ue import UeCore
from mbmssec.spec.loader import load_spec

S = "239.255.0.1"
S2 = "239.255.0.2"
ADMIN_TOKEN = "t" * 20 + "0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class Bed:
    """A running BM-SC with subscribed UEs (cores only; clients are made per test)."""

    server: BmscServer
    core: BmscCore
    log: EventLog
    log_path: Path
    url: str
    ues: list[UeCore]
    keys: dict[str, tuple[bytes, bytes]]

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        return [e for e in read_events(self.log_path) if name is None or e["event"] == name]


@asynccontextmanager
async def bed(
    tmp_path: Path,
    overrides: dict[str, str] | None = None,
    *,
    n: int = 3,
    period: float = 0.6,
    stream: bool = True,
    sqn_ms: dict[int, int] | None = None,
    capture: TrafficCapture | None = None,
    tls: TlsFiles | None = None,
    busy_timeout: float = 10.0,
    config: BmscConfig | None = None,
    **limits: Any,
) -> AsyncIterator[Bed]:
    profile = load_spec().profile(overrides or {})
    core = BmscCore(
        Store(tmp_path / "bmsc.db", durability="normal", busy_timeout=busy_timeout),
        profile,
        config or BmscConfig(period=period),
    )
    log_path = tmp_path / "events.jsonl"
    log = EventLog(log_path)
    now = time.time()
    log.emit_all(core.add_service(S, now))
    ues, keys = [], {}
    for i in range(n):
        name = f"0010100000{i:05d}"
        k, opc = os.urandom(16), os.urandom(16)
        keys[name] = (k, opc)
        core.add_subscriber(name, k, opc)
        log.emit_all(core.subscribe(name, S, now))
        ues.append(UeCore(name, k, opc, profile, sqn_ms=(sqn_ms or {}).get(i, 0)))
    server = BmscServer(
        core,
        log=log,
        stream=stream,
        capture=capture,
        ssl_context=server_context(tls) if tls is not None else None,
        admin_token=ADMIN_TOKEN,
        **limits,
    )
    url = await server.start()
    try:
        yield Bed(server, core, log, log_path, url, ues, keys)
    finally:
        await server.stop()
        log.close()
        core.store.close()


async def _until(cond: Callable[[], bool], timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def _raw(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(4096), 5)
    finally:
        writer.close()


class _GatedStore(Store):
    """A SQLite store at ``durability="full"`` whose fsyncs in the group commit's own
    thread each wait for a permit (the real fsync follows), so that a test can hold one
    in flight; an fsync in the event loop's thread does not wait."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, durability="full")
        self.permits = threading.Semaphore(0)
        self.waiting = 0

    def sync(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            self.waiting += 1
            assert self.permits.acquire(timeout=10), "no permit for a sync"
            self.waiting -= 1
        super().sync()


def test_deferred_fsync_answers_batches_in_commit_order_once_durable(tmp_path: Path) -> None:
    """The fsync runs off the event loop, and a batch is answered and logged only once a
    sync that began after its commit returned, after every batch committed before it
    (also one that needs no fsync); work queued to run on durable state runs when
    everything committed is durable."""

    async def main() -> None:
        store = _GatedStore(tmp_path / "b.db")
        log_path = tmp_path / "events.jsonl"
        log = EventLog(log_path)
        commits = GroupCommit(store, log)
        other = sqlite3.connect(tmp_path / "b.db")

        def logged() -> list[int]:
            return [e["i"] for e in read_events(log_path)]

        async def step(i: int, *, sync: bool = True) -> asyncio.Future[None]:
            with store.transaction(sync=sync):
                store.set_meta(f"k{i}", str(i))
            commits.emit([Event("Step", float(i), extra={"i": i})])
            answered = asyncio.ensure_future(commits.durable())
            await asyncio.sleep(0.02)  # the batch's turn ends: it is committed
            assert other.execute("SELECT value FROM meta WHERE key = ?", (f"k{i}",)).fetchone()
            return answered

        first = await step(1)
        assert await _until(lambda: store.waiting == 1, 5)
        second = await step(2)  # committed while the first sync is in flight
        third = await step(3, sync=False)  # needs no fsync, but comes after the second
        assert not (first.done() or second.done() or third.done()) and logged() == []
        store.permits.release()  # the first sync returns: it covers the first batch only
        await asyncio.wait_for(first, 5)
        assert logged() == [1] and not second.done() and not third.done()
        store.permits.release()  # the second sync, begun after both commits
        await asyncio.wait_for(asyncio.gather(second, third), 5)
        assert logged() == [1, 2, 3]

        fourth = await step(4)
        assert await _until(lambda: store.waiting == 1, 5) and not fourth.done()
        seen: list[list[int]] = []
        commits.when_durable(lambda: seen.append(logged()))
        assert seen == []  # a batch is committed but not durable: not yet
        await asyncio.wait_for(fourth, 5)  # made durable in the loop, for the queued work
        assert seen == [[1, 2, 3, 4]]
        store.permits.release()  # the sync in flight returns later: nothing is repeated
        await asyncio.sleep(0.05)
        commits.close()
        assert logged() == [1, 2, 3, 4] and commits.batches == 4
        other.close()
        log.close()
        store.close()

    asyncio.run(main())


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_gets_a_401_with_an_akav1_md5_challenge(tmp_path: Path) -> None:
    async def main() -> None:
        async with bed(tmp_path, stream=False) as b:
            url = f"{b.url}{register_uri(b.ues[0].ue, S, 40000, 'initial')}"
            proc = await asyncio.create_subprocess_exec(
                "curl", "-s", "-i", url, stdout=asyncio.subprocess.PIPE
            )
            out, _ = await proc.communicate()
            text = out.decode()
            status_line, _, rest = text.partition("\r\n")
            assert status_line.split()[1] == "401"
            headers = dict(line.split(": ", 1) for line in rest.split("\r\n\r\n")[0].split("\r\n"))
            challenge = parse_challenge(headers["WWW-Authenticate"])
            assert challenge.algorithm == "AKAv1-MD5" and challenge.qop == ("auth",)
            assert json.loads(text.split("\r\n\r\n", 1)[1])["error"] == "challenge"

    asyncio.run(main())


def test_bad_http_is_refused_with_state_unchanged(tmp_path: Path) -> None:
    async def main() -> None:
        async with bed(tmp_path, stream=False) as b:
            port = b.server.port
            before = b.core.store.snapshot()
            garbage = await _raw(port, b"GARBAGE\r\n\r\n")
            assert garbage.startswith(b"HTTP/1.0 400") and b"Invalid method" in garbage
            huge_header = await _raw(
                port,
                b"GET /mbms/register HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10_000 + b"\r\n\r\n",
            )
            assert huge_header.startswith(b"HTTP/1.0 400") and b"8190 bytes" in huge_header
            bad_length = await _raw(
                port,
                b"POST /mbms/mikey-response HTTP/1.1\r\nHost: x\r\nContent-Length: 12x\r\n\r\n",
            )
            assert bad_length.startswith(b"HTTP/1.0 400")
            big = f"/mbms/mikey-response?ue={b.ues[0].ue}&service={S}".encode()
            too_big = await _raw(
                port,
                b"POST " + big + b" HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: 100000\r\n\r\n" + b"a" * 100_000,
            )
            assert too_big.startswith(b"HTTP/1.1 413")
            body = json.loads(too_big.split(b"\r\n\r\n", 1)[1])
            assert body["status"] == 413 and "at most 4096" in body["message"]
            rejected = b.events("Rejected")
            assert {e["reason"] for e in rejected} >= {"malformed_http", "too_large"}
            assert b.core.store.snapshot() == before

    asyncio.run(main())


def test_refusals_carry_status_and_message(tmp_path: Path) -> None:
    async def main() -> None:
        # a key period far longer than the test: the store may change only by a refusal,
        # never by the key schedule running beside it (on a busy machine it did)
        async with (
            bed(tmp_path, stream=False, period=60.0) as b,
            aiohttp.ClientSession() as http,
        ):
            b.core.add_service(S2, time.time())
            ue = b.ues[0].ue
            before = b.core.store.snapshot()
            cases = [
                ("/mbms/register?service=x&port=1", 400, "missing_parameter"),
                (f"/mbms/register?ue={ue}&service={S}&port=99999", 400, "bad_port"),
                (f"/mbms/register?ue={ue}&ue={ue}&service={S}&port=1", 400, "bad_parameter"),
                ("/nowhere", 404, "not_found"),
            ]
            for path, status, code in cases:
                async with http.get(b.url + path) as resp:
                    data = await resp.json()
                    assert (resp.status, data["error"]) == (status, code), path
                    assert data["message"], path
            async with http.post(b.url + "/mbms/register") as resp:
                assert resp.status == 405 and "GET" in resp.headers["Allow"]
            # Two Authorization headers, and one that is not Digest at all.
            path = register_uri(ue, S, 40000, "initial")
            async with http.get(
                b.url + path,
                headers=[("Authorization", "Digest a=b"), ("Authorization", "Digest c=d")],
            ) as r:
                assert r.status == 400 and "more than one" in (await r.json())["message"]
            async with http.get(b.url + path, headers={"Authorization": "Basic eA=="}) as r:
                assert r.status == 400 and "not Digest" in (await r.json())["message"]
            assert b.core.store.snapshot() == before
            # A garbled MIKEY response, for a UE that is waiting for none.
            async with http.post(
                b.url + f"/mbms/mikey-response?ue={ue}&service={S}", data=b"\x01\x02"
            ) as resp:
                assert resp.status == 404  # mikey_response=none: the endpoint is unused
            assert b.core.store.snapshot() == before
            # Unknown UE, unknown or unsubscribed service: a challenge, like any UE before
            # it authenticates (test_no_work_before_authentication).
            for query in (f"ue=001019&service={S}", f"ue={ue}&service=239.9.9.9"):
                async with http.get(f"{b.url}/mbms/register?{query}&port=1") as resp:
                    assert resp.status == 401 and "WWW-Authenticate" in resp.headers

    asyncio.run(main())


def test_garbled_mikey_response_over_http(tmp_path: Path) -> None:
    async def main() -> None:
        overrides = {"mikey_response": "required", "activation": "after_acks"}
        async with (
            bed(tmp_path, overrides, n=1, stream=False) as b,
            aiohttp.ClientSession() as http,
        ):
            client = UeClient(b.ues[0], b.url, http, log=b.log, receive=False)
            held: list[bytes] = []

            async def hold(service: str, message: bytes) -> None:
                held.append(message)

            client._send_verification = hold  # type: ignore[method-assign]
            await client.add_service(S, 40000)
            assert await client.register(S) and len(held) == 1
            target = b.url + f"/mbms/mikey-response?ue={b.ues[0].ue}&service={S}"
            before = b.core.store.snapshot()
            async with http.post(target, data=held[0][:-4]) as resp:
                data = await resp.json()
                assert resp.status == 400 and data["error"] == "bad_mikey"
                assert "MIKEY response malformed" in data["message"]
            forged = bytearray(held[0])
            forged[-1] ^= 0x80
            async with http.post(target, data=bytes(forged)) as resp:
                assert resp.status == 403
            assert b.core.store.snapshot() == before
            async with http.post(target, data=held[0]) as resp:
                assert resp.status == 204
            async with http.post(target, data=held[0]) as resp:
                assert resp.status == 409  # acknowledged already
            acks = b.events("Acknowledge")
            assert len(acks) == 1 and acks[0]["ue"] == b.ues[0].ue

    asyncio.run(main())


def test_admin_endpoints(tmp_path: Path) -> None:
    async def main() -> None:
        async with bed(tmp_path, n=1, stream=False) as b, aiohttp.ClientSession() as http:
            assert b.server.admin_port not in (0, b.server.port)

            async def post(path: str, body: Any) -> tuple[int, Any]:
                async with http.post(
                    b.server.admin_url + path, data=json.dumps(body).encode(), headers=ADMIN
                ) as resp:
                    return resp.status, await resp.json()

            assert (
                await post("/admin/subscribers", {"ue": "001017", "k": "00" * 16, "opc": "11" * 16})
            )[0] == 200
            status, data = await post(
                "/admin/subscribers", {"ue": "001017", "k": "00" * 16, "opc": "11" * 16}
            )
            assert status == 409 and "already exists" in data["message"]
            status, data = await post(
                "/admin/subscribers", {"ue": "001018", "k": "zz", "opc": "11" * 16}
            )
            assert status == 400 and "hex" in data["message"]
            assert (await post("/admin/services", {"service": S2, "period": 2}))[0] == 200
            status, data = await post("/admin/subscribe", {"ue": "001017", "service": S2})
            assert status == 200 and data["events"][0]["event"] == "Subscribe"
            status, data = await post("/admin/revoke", {"ue": "001017", "service": S2})
            assert status == 200 and data["events"][0]["event"] == "Revoke"
            status, data = await post("/admin/subscribe", ["not", "an", "object"])
            assert status == 400 and "JSON object" in data["message"]
            async with http.post(
                b.server.admin_url + "/admin/subscribe", data=b"{", headers=ADMIN
            ) as resp:
                assert resp.status == 400
            async with http.get(b.server.admin_url + "/admin/state", headers=ADMIN) as resp:
                state = await resp.json()
            assert {s["service"] for s in state["services"]} == {S, S2}
            assert all(
                set(sub) == {"ue", "sqn", "mikey_counter"}  # no key material
                for sub in state["subscribers"]
            )
            # Every change made through the admin API is in the BM-SC's event log.
            logged = [
                (e["event"], e["ue"], e["service"])
                for e in b.events()
                if e["event"] in ("Provision", "Subscribe", "Revoke")
                or (e["event"] == "Generate" and e["service"] == S2)
            ]
            assert ("Provision", "001017", None) in logged
            assert ("Generate", None, S2) in logged
            assert logged[-2:] == [("Subscribe", "001017", S2), ("Revoke", "001017", S2)]
            assert "00" * 16 not in b.log_path.read_text()  # K is never logged

    asyncio.run(main())


def test_admin_api_is_off_the_ue_listener_and_needs_the_token(tmp_path: Path) -> None:
    """The finding: any UE could POST /admin/subscribe on the UE listener (answered 200)
    and subscribe itself.  Now the UE listener has no admin path at all, and the admin
    listener refuses every request without the bearer token, changing nothing."""

    async def main() -> None:
        async with bed(tmp_path, n=2, stream=False) as b, aiohttp.ClientSession() as http:
            b.core.add_service(S2, time.time())
            ue = b.ues[1].ue
            attack = json.dumps({"ue": ue, "service": S2}).encode()
            before = b.core.store.snapshot()
            for path in ("/admin/subscribe", "/admin/subscribers", "/admin/state"):
                async with http.post(b.url + path, data=attack) as resp:
                    assert resp.status == 404, path
                async with http.get(b.url + path) as resp:
                    assert resp.status == 404, path
            wrong = [
                {},
                {"Authorization": "Bearer " + "x" * len(ADMIN_TOKEN)},
                {"Authorization": "Bearer " + ADMIN_TOKEN[:-1]},
                {"Authorization": "Basic " + ADMIN_TOKEN},
                {"Authorization": ADMIN_TOKEN},
            ]
            for headers in wrong:
                for path in ("/admin/subscribe", "/admin/nowhere"):
                    async with http.post(
                        b.server.admin_url + path, data=attack, headers=headers
                    ) as resp:
                        data = await resp.json()
                        assert resp.status == 401, (headers, path)
                        assert data["error"] == "unauthorized" and "Bearer" in data["message"]
                        assert resp.headers["WWW-Authenticate"].startswith("Bearer ")
                async with http.get(b.server.admin_url + "/admin/state", headers=headers) as r:
                    assert r.status == 401
            two = [("Authorization", ADMIN["Authorization"])] * 2
            async with http.get(b.server.admin_url + "/admin/state", headers=two) as resp:
                assert resp.status == 401
            assert b.core.store.snapshot() == before
            refused = [e for e in b.events("Rejected") if e["reason"].startswith("admin_token")]
            assert len(refused) == 2 * len(wrong) + len(wrong) + 1
            # With the token, the same request is served, on the admin listener only.
            async with http.post(
                b.server.admin_url + "/admin/subscribe", data=attack, headers=ADMIN
            ) as resp:
                assert resp.status == 200
            sub = b.core.store.get_subscription(ue, S2)
            assert sub is not None and sub.subscribed

    asyncio.run(main())


def test_without_a_token_there_is_no_admin_listener(tmp_path: Path) -> None:
    async def main() -> None:
        core = BmscCore(Store(tmp_path / "b.db"), load_spec().profile({}))
        server = BmscServer(core, stream=False)
        await server.start()
        try:
            assert server.admin_url == "" and server.admin_port == 0
        finally:
            await server.stop()
            core.store.close()
        with pytest.raises(ServerError, match="at least 32"):
            BmscServer(core, admin_token="short")

    asyncio.run(main())


def test_loopback_only() -> None:
    async def main() -> None:
        core = BmscCore(Store(":memory:"), load_spec().profile({}))
        with pytest.raises(ServerError, match="loopback only"):
            await BmscServer(core).start("0.0.0.0")
        async with aiohttp.ClientSession() as http:
            with pytest.raises(UeClientError, match="loopback only"):
                UeClient(
                    UeCore("001", bytes(16), bytes(16), core.profile), "http://192.0.2.1:80", http
                )

    asyncio.run(main())


def test_streaming_rekey_and_decryption(tmp_path: Path) -> None:
    async def main() -> None:
        capture = TrafficCapture()
        async with (
            bed(tmp_path, n=3, period=0.5, sqn_ms={0: 20}, capture=capture) as b,
            aiohttp.ClientSession() as http,
        ):
            clients = [UeClient(ue, b.url, http, log=b.log) for ue in b.ues]
            for client in clients:
                await client.add_service(S)
                client.start()
            start = len(b.events("Activate"))
            assert await _until(lambda: len(b.events("Activate")) >= start + 3, 6)
            await asyncio.sleep(0.2)
            for client in clients:
                await client.stop()
            events = b.events()
            last = [e for e in events if e["event"] == "Activate"][-2]["mki"]
            for client in clients:
                mkis = {
                    e["mki"]
                    for e in events
                    if e["event"] == "Receive" and e["ue"] == client.ue and e["ok"]
                }
                assert last in mkis, f"{client.ue} did not decrypt under MKI {last}"
            assert [e["ue"] for e in events if e["event"] == "Resync"] == [b.ues[0].ue]
            assert not b.server.errors
            sent = {e["mki"] for e in events if e["event"] == "Send"}
            assert last in sent
            # The capture holds HTTP (TCP) and SRTP (UDP), all between loopback ports.
            protos = {p.proto for p in capture.packets}
            assert len(protos) == 2
            path = tmp_path / "run.pcap"
            assert capture.write(path) == len(capture.packets) and path.stat().st_size > 0

    asyncio.run(main())


def test_common_kek_and_tek_over_tls_end_to_end(tmp_path: Path) -> None:
    """kek_scope=common and tek_protection=tls on the real BM-SC and UEs: registration
    over HTTPS on loopback (the UEs verify the BM-SC against the project's CA), the
    common KEK shared by both UEs, SRTP decrypted under a TEK activated during the run;
    a client trusting another CA gets no TEK."""

    async def main() -> None:
        tls = ensure_tls_files(tmp_path / "tls")
        for path in (tls.ca, tls.server_cert, tls.server_key, tls.directory / "ca.key"):
            assert path.stat().st_mode & 0o777 == 0o600, path
        other_ca = ensure_tls_files(tmp_path / "other").ca
        overrides = {"kek_scope": "common", "tek_protection": "tls"}
        async with (
            bed(tmp_path, overrides, n=3, period=0.4, tls=tls) as b,
            aiohttp.ClientSession() as http,
        ):
            assert b.url.startswith("https://127.0.0.1:")
            with pytest.raises(UeClientError, match="must be https"):
                UeClient(b.ues[0], b.url.replace("https", "http"), http)
            with pytest.raises(UeClientError, match="needs the CA"):
                UeClient(b.ues[0], b.url, http)
            ctx = client_context(tls.ca)
            clients = [UeClient(ue, b.url, http, log=b.log, ssl_context=ctx) for ue in b.ues[:2]]
            for client in clients:
                await client.add_service(S)
                client.start()
            start = len(b.events("Activate"))
            assert await _until(lambda: len(b.events("Activate")) >= start + 2, 6)
            await asyncio.sleep(0.15)
            for client in clients:
                await client.stop()
            # a UE that trusts another CA refuses the BM-SC's certificate: no delivery
            stranger = UeClient(
                b.ues[2], b.url, http, log=b.log, ssl_context=client_context(other_ca)
            )
            await stranger.add_service(S, 40009)
            assert not await stranger.register(S)
            error = stranger.svcs[S].last_error
            assert error is not None and "certificate" in error.lower(), error
            await stranger.stop()
            assert b.ues[2].state(S).keys == {}
            # plain HTTP to the HTTPS port gets no TEK delivery either
            reply = await _raw(b.server.port, b"GET /mbms/register HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"application/mikey" not in reply
            events = b.events()
            activated = [e["mki"] for e in events if e["event"] == "Activate"][start:]
            group = b.core.store.get_group_kek(S)
            for client in clients[:2]:
                st = client.core.state(S)
                assert st.kek == group  # the one KEK of the service
                mkis = {
                    e["mki"]
                    for e in events
                    if e["event"] == "Receive" and e["ue"] == client.ue and e["ok"]
                }
                assert activated[0] in mkis, (client.ue, activated, mkis)
            assert not b.server.errors

    asyncio.run(main())


def test_second_service_without_reauthentication_over_http(tmp_path: Path) -> None:
    async def main() -> None:
        async with (
            bed(tmp_path, {"second_service_auth": "authorise_only"}, n=1, stream=False) as b,
            aiohttp.ClientSession() as http,
        ):
            b.core.add_service(S2, time.time())
            b.core.subscribe(b.ues[0].ue, S2, time.time())
            client = UeClient(b.ues[0], b.url, http, log=b.log, receive=False)
            await client.add_service(S, 40000)
            await client.add_service(S2, 40001)
            assert await client.register(S)
            assert await client.register(S2)
            assert len(b.events("Challenge")) == 1 and len(b.events("Authenticate")) == 1
            assert len(b.events("Deliver")) == 2

    asyncio.run(main())


def test_delivery_lost_when_coverage_goes_mid_request(tmp_path: Path) -> None:
    async def main() -> None:
        async with bed(tmp_path, n=1, stream=False) as b, aiohttp.ClientSession() as http:
            client = UeClient(b.ues[0], b.url, http, log=b.log, receive=False)
            await client.add_service(S, 40000)
            real = b.core.register

            def register_then_lose(req: RegisterRequest, now: float) -> Outcome:
                reply = real(req, now)
                if reply.result is Result.DELIVERED:
                    client.lose_coverage()  # the answer is on its way when coverage goes
                return reply

            b.core.register = register_then_lose  # type: ignore[method-assign]
            assert not await client.register(S)
            names = [e["event"] for e in b.events() if e["ue"] == b.ues[0].ue]
            assert names[-1] == "DeliveryLost"
            assert {"Deliver", "LoseCoverage"} <= set(names[-4:-1])
            assert b.ues[0].state(S).mkis == []
            b.core.register = real  # type: ignore[method-assign]
            client.regain_coverage()
            assert await client.register(S, "retry")
            assert b.ues[0].state(S).mkis

    asyncio.run(main())


# -- robust HTTP -----------------------------------------------------------------------------


def test_json_bodies_are_parsed_within_limits(tmp_path: Path) -> None:
    """The finding: a deeply nested body or a 4,300-digit integer on an admin endpoint
    was a 500 carrying the exception's text.  Now each is a 400 naming the limit, with
    nothing of an exception in the answer and nothing changed."""

    async def main() -> None:
        async with bed(tmp_path, n=1, stream=False) as b, aiohttp.ClientSession() as http:
            ue = b.ues[0].ue
            huge = "1" + "0" * 4299
            nested = "[" * 4000 + "]" * 4000
            cases: list[tuple[str, bytes, str]] = [
                ("/admin/subscribe", f'{{"ue": {nested}, "service": "{S}"}}'.encode(), "deeper"),
                ("/admin/services", f'{{"service": "{S2}", "period": {huge}}}'.encode(), "longer"),
                (
                    "/admin/services",
                    f'{{"service": "{S2}", "period": 1e{huge}}}'.encode(),
                    "longer",
                ),
                (
                    "/admin/subscribers",
                    f'{{"ue": "001019", "k": "{"00" * 16}", "opc": "{"11" * 16}", '
                    f'"sqn": {huge}}}'.encode(),
                    "longer",
                ),
                ("/admin/services", f'{{"service": "{S2}", "period": NaN}}'.encode(), "NaN"),
                ("/admin/revoke", b'{"ue": "' + b"a" * 9000 + b'"}', "at most 8192"),
                ("/admin/revoke", b"\xff\xfe{}", "not UTF-8"),
                ("/admin/revoke", b'{"ue": "x",', "not JSON"),
            ]
            before = b.core.store.snapshot()
            for path, body, fragment in cases:
                async with http.post(b.server.admin_url + path, data=body, headers=ADMIN) as r:
                    text = await r.text()
                    assert r.status == 400, (path, body[:40], text)
                    assert fragment in json.loads(text)["message"], text
                    for leak in ("Error", "Traceback", "exceed", "recursion"):
                        assert leak not in text, text
            assert b.core.store.snapshot() == before
            assert b.server.errors == []
            # Within the limits, the same endpoints work.
            async with http.post(
                b.server.admin_url + "/admin/revoke",
                data=json.dumps({"ue": ue, "service": S}).encode(),
                headers=ADMIN,
            ) as r:
                assert r.status == 200

    asyncio.run(main())


def test_a_fault_is_a_generic_500_with_a_correlation_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A real fault (the database locked by another process beyond the busy timeout):
    the answer names a correlation id and nothing of the fault (the error class, the
    database's path); the BM-SC's log and event log carry the id with the details."""

    async def main() -> None:
        async with (
            bed(tmp_path, n=1, stream=False, busy_timeout=0.2) as b,
            aiohttp.ClientSession() as http,
        ):
            url = b.url + register_uri(b.ues[0].ue, S, 40000, "initial")
            locker = sqlite3.connect(
                tmp_path / "bmsc.db", isolation_level=None, check_same_thread=False
            )
            # Another writer: it waits (off the server's loop) for the server's open
            # batch, if any, to commit, then holds the database.
            await asyncio.to_thread(locker.execute, "BEGIN EXCLUSIVE")
            try:
                async with http.get(url) as resp:
                    text = await resp.text()
                    ref = resp.headers["X-Correlation-Id"]
                    assert resp.status == 500, text
            finally:
                locker.execute("ROLLBACK")
                locker.close()
            data = json.loads(text)
            assert data["error"] == "internal" and ref in data["message"]
            for leak in ("StoreError", "locked", "bmsc.db", str(tmp_path)):
                assert leak not in text
            logged = [r for r in caplog.records if r.name == "mbmssec.bmsc" and ref in r.message]
            assert logged and logged[0].exc_info is not None
            assert "database is locked" in str(logged[0].exc_info[1])
            assert any(e.get("correlation_id") == ref for e in b.events("Rejected"))
            assert any(ref in err and "StoreError" in err for err in b.server.errors)
            async with http.get(url) as resp:  # the service goes on
                assert resp.status == 401

    with caplog.at_level(logging.ERROR, logger="mbmssec.bmsc"):
        asyncio.run(main())


async def _closed_after(reader: asyncio.StreamReader, limit: float) -> float:
    """Seconds until the server closes the connection (reads until end of stream)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    with contextlib.suppress(ConnectionError):
        while await asyncio.wait_for(reader.read(4096), limit):
            pass
    return loop.time() - start


def test_clients_that_never_finish_a_request_are_disconnected(tmp_path: Path) -> None:
    """The finding: connections that never finished their headers were held forever.
    With ``idle_timeout=0.5`` the BM-SC closes a silent connection, one trickling its
    head a byte at a time, and an idle kept-alive one after 0.5 s, and answers a body
    that does not come with 408."""

    async def main() -> None:
        async with bed(tmp_path, n=1, stream=False, idle_timeout=0.5) as b:
            port = b.server.port

            async def silent() -> float:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                try:
                    return await _closed_after(reader, 5)
                finally:
                    writer.close()

            async def trickle() -> float:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET /mbms/register HTTP/1.1\r\nHost: x\r\n")

                async def drip() -> None:
                    with contextlib.suppress(ConnectionError):
                        for _ in range(50):
                            writer.write(b"X")
                            await writer.drain()
                            await asyncio.sleep(0.1)

                dripping = asyncio.create_task(drip())
                try:
                    return await _closed_after(reader, 5)
                finally:
                    dripping.cancel()
                    writer.close()

            async def kept_alive() -> float:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                assert head.startswith(b"HTTP/1.1 404")
                try:
                    return await _closed_after(reader, 5)
                finally:
                    writer.close()

            times = await asyncio.gather(silent(), trickle(), kept_alive())
            assert all(0.4 <= t <= 2.5 for t in times), times
            target = f"/mbms/mikey-response?ue={b.ues[0].ue}&service={S}".encode()
            slow_body = await _raw(
                port,
                b"POST " + target + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"a",
            )
            assert slow_body.startswith(b"HTTP/1.1 408")
            assert b"not received within 0.5 s" in slow_body

    asyncio.run(main())


def test_connections_beyond_the_cap_get_503(tmp_path: Path) -> None:
    async def main() -> None:
        async with (
            bed(tmp_path, n=1, stream=False, max_connections=4) as b,
            aiohttp.ClientSession() as http,
        ):
            held = [await asyncio.open_connection("127.0.0.1", b.server.port) for _ in range(4)]
            assert await _until(lambda: b.server.connections == 4, 5)
            busy = await _raw(b.server.port, b"GET /mbms/register HTTP/1.1\r\nHost: x\r\n\r\n")
            assert busy.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in busy
            assert json.loads(busy.split(b"\r\n\r\n", 1)[1])["error"] == "too_many_connections"
            url = b.url + register_uri(b.ues[0].ue, S, 40000, "initial")
            async with http.get(url) as resp:
                assert resp.status == 503
            assert b.server.refused_connections == 2
            # The admin listener has a cap of its own: it still answers.
            async with http.get(b.server.admin_url + "/admin/state", headers=ADMIN) as resp:
                assert resp.status == 200
            _, writer = held.pop()
            writer.close()
            assert await _until(lambda: b.server.connections == 3, 5)
            async with http.get(url) as resp:
                assert resp.status == 401
            for _, writer in held:
                writer.close()

    asyncio.run(main())


# -- no work before authentication ----------------------------------------------------------


def test_no_work_before_authentication(tmp_path: Path) -> None:
    """The findings, against the real server: requests without credentials (GET and
    HEAD) each took an SQN and wrote a row (500 of them moved an SQN by 500); the
    status told a subscribed UE (401), an unsubscribed one (403) and an unknown UE or
    service (404) apart; and one wrong answer cancelled the UE's pending nonce."""

    async def main() -> None:
        async with bed(tmp_path, n=1, stream=False) as b, aiohttp.ClientSession() as http:
            b.core.add_service(S2, time.time())
            ue = b.ues[0]

            def sqn() -> int:
                sub = b.core.store.get_subscriber(ue.ue)
                assert sub is not None
                return sub.sqn

            def rows() -> int:
                with contextlib.closing(sqlite3.connect(tmp_path / "bmsc.db")) as con:
                    return int(con.execute("SELECT count(*) FROM challenges").fetchone()[0])

            sqn0, rows0 = sqn(), rows()
            targets = {
                "subscribed": register_uri(ue.ue, S, 40000, "initial"),
                "unsubscribed": register_uri(ue.ue, S2, 40000, "initial"),
                "unknown UE": register_uri("001019", S, 40000, "initial"),
                "unknown service": register_uri(ue.ue, "239.9.9.9", 40000, "initial"),
            }
            seen: dict[str, str] = {}
            for name, target in targets.items():
                async with http.get(b.url + target) as resp:
                    body = await resp.read()
                    www = resp.headers["WWW-Authenticate"]
                    ch = parse_challenge(www)
                    assert ch.opaque is not None
                    shape = (
                        resp.status,
                        sorted(k.lower() for k in resp.headers),
                        json.loads(body),
                        len(body),
                        (ch.realm, ch.algorithm, ch.qop, ch.stale, len(ch.nonce), len(ch.opaque)),
                    )
                    assert resp.status == 401, name
                    seen[name] = repr(shape)
            assert len(set(seen.values())) == 1, seen
            # 20 more, GET and HEAD: the same challenge; the SQN moved once in all.
            nonces = set()
            for i in range(20):
                method = http.get if i % 2 else http.head
                async with method(b.url + targets["subscribed"]) as resp:
                    assert resp.status == 401
                    nonces.add(parse_challenge(resp.headers["WWW-Authenticate"]).nonce)
            assert len(nonces) == 1
            assert sqn() == sqn0 + 1 and rows() == rows0 + 1
            # An observer answers that challenge wrongly: refused, and the UE's own
            # registration still goes through on the same challenge.
            forged = respond(
                parse_challenge(resp.headers["WWW-Authenticate"]),
                username=ue.ue,
                res=bytes(8),
                method="GET",
                uri=targets["subscribed"],
                rand=os.urandom,
            )
            header = {"Authorization": serialise_authorization(forged)}
            async with http.get(b.url + targets["subscribed"], headers=header) as resp:
                assert resp.status == 403 and (await resp.json())["error"] == "auth_failed"
            client = UeClient(ue, b.url, http, log=b.log, receive=False)
            await client.add_service(S, 40000)
            assert await client.register(S)
            assert sqn() == sqn0 + 1 and ue.resyncs == 0

    asyncio.run(main())

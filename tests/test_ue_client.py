"""The UE client's own loop (impl/net/client.py), without a BM-SC: its back-off over a
long run of refusals, and ``stop`` whatever the loop is doing when it is called.

Both were found by the fleet test (tests/test_fleet.py, the leader kill) in a full
suite run: a revoked UE was refused 1,026 times in a row while ``stop`` waited, and the
1,026th back-off raised OverflowError (``refused_min * 2 ** 1025``).  ``stop`` had
cancelled the loop's task just as its wait for a wake-up finished; Python 3.11's
``asyncio.wait_for`` then returns the finished wait instead of raising the
cancellation, and the loop went on registering, 0.5 s apart, for 8 minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

import aiohttp

from mbmssec.impl.net.client import ClientConfig, UeClient
from mbmssec.impl.service.ue import UeCore
from mbmssec.spec.loader import load_spec

S = "239.255.0.1"


def _core() -> UeCore:
    return UeCore("001010000000001", os.urandom(16), os.urandom(16), load_spec().baseline())


def test_backoff_stays_bounded_over_any_run_of_refusals() -> None:
    """5,000 refusals and 5,000 failures in a row: every delay within the configured
    bounds (the 1,025th once overflowed a float)."""
    cfg = ClientConfig(refused_min=0.2, refused_max=0.5, retry_min=0.1, retry_max=0.3)

    async def main() -> None:
        async with aiohttp.ClientSession() as http:
            client = UeClient(_core(), "http://127.0.0.1:9", http, config=cfg, receive=False)
            await client.add_service(S)
            svc = client.svcs[S]
            for refused, top in ((True, cfg.refused_max), (False, cfg.retry_max)):
                for _ in range(5000):
                    now = client.clock()
                    client._failed(S, svc, "not_subscribed", "refused", refused=refused)
                    assert svc.retry_at is not None
                    assert 0 < svc.retry_at - now <= top + 0.01

    asyncio.run(main())


def test_stop_ends_the_loop_whenever_it_is_called() -> None:
    """``stop`` called at each of the first event-loop turns after the loop's wait was
    woken (a failed registration wakes it, so this happens all along): it returns every
    time.  A loop that outlives the cancellation never ends by itself, so the bound
    (5 s, where a stop takes well under a millisecond) only keeps a failure from
    hanging the suite."""

    async def main() -> list[int]:
        hung = []
        async with aiohttp.ClientSession() as http:
            for turns in range(8):
                client = UeClient(_core(), "http://127.0.0.1:9", http, receive=False)
                client.start()
                loop_task = client._task
                assert loop_task is not None
                for _ in range(3):  # the loop reaches its wait (no service: nothing due)
                    await asyncio.sleep(0)
                client._wake.set()
                for _ in range(turns):
                    await asyncio.sleep(0)
                stopping = asyncio.create_task(client.stop())
                done, _ = await asyncio.wait({stopping}, timeout=5.0)
                if stopping not in done:
                    hung.append(turns)
                    loop_task.cancel()  # the loop is still waiting: end it for good
                    with contextlib.suppress(asyncio.CancelledError):
                        await stopping
        return hung

    assert asyncio.run(main()) == []

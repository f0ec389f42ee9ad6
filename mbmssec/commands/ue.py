"""``mbmssec ue``: run one UE against a BM-SC on loopback.

The UE registers for each ``--service`` with HTTP Digest AKA (its USIM holds K and OPc,
read from ``--secrets FILE``, a TOML file with ``k`` and ``opc`` as 32 hex digits each
that only its owner may read, or from standard input with ``--secrets -``; never from
the command line, which every local user can read in ``ps``), installs the MIKEY TEK
deliveries, receives the SRTP stream on its own
UDP port on 127.0.0.1, decrypts it by MKI, re-fetches at the fetch times the BM-SC
gives and on an unknown MKI (TS 33.246 6.2.2-6.2.3.3; see :mod:`mbmssec.impl.net.client`).
It runs for ``--duration`` seconds (or until SIGINT/SIGTERM with 0) and prints a
summary per service (JSON with ``--json``).  Exit status 0 when every service was
registered and decrypted at least one packet, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from pathlib import Path
from typing import Any

import aiohttp

from mbmssec.commands.arguments import (
    SECRETS_HELP,
    add_profile_arguments,
    profile_from_args,
    read_secrets,
)
from mbmssec.errors import UsageError
from mbmssec.impl.net.client import UeClient, UeClientError
from mbmssec.impl.net.tls import TlsError, client_context
from mbmssec.impl.service.bmsc import BmscError, validate_service, validate_ue
from mbmssec.impl.service.events import EventLog
from mbmssec.impl.service.files import private_umask
from mbmssec.impl.service.ue import UeCore

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``ue``."""
    p = subparsers.add_parser(
        "ue",
        help="run one UE (register, decrypt, re-key) against a BM-SC on loopback",
        description=__doc__,
    )
    p.add_argument("--url", required=True, help="the BM-SC, e.g. http://127.0.0.1:8080")
    p.add_argument(
        "--ca",
        type=Path,
        help="CA file to verify an https BM-SC against (the one serve printed); "
        "required with https, which tek_protection=tls requires",
    )
    p.add_argument("--ue", required=True, help="the UE identity (IMSI)")
    p.add_argument("--secrets", required=True, metavar="FILE|-", help=SECRETS_HELP)
    p.add_argument(
        "--service",
        action="append",
        required=True,
        metavar="SERVICE",
        help="service to register for (repeatable)",
    )
    p.add_argument("--sqn-ms", type=int, default=0, help="the USIM's highest accepted SQN")
    p.add_argument(
        "--duration", type=float, default=0.0, help="seconds to run (0: until interrupted)"
    )
    p.add_argument("--log", type=Path, help="append the JSON-lines event log to FILE")
    p.add_argument(
        "--no-receive-log",
        action="store_true",
        help="keep per-packet Receive events out of the log",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_profile_arguments(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        validate_ue(args.ue)
        for service in args.service:
            validate_service(service)
    except BmscError as exc:
        raise UsageError(exc.message) from None
    if args.duration < 0 or args.sqn_ms < 0:
        raise UsageError("--duration and --sqn-ms must not be negative")
    k, opc = read_secrets(args.secrets)
    core = UeCore(args.ue, k, opc, profile_from_args(args), sqn_ms=args.sqn_ms)
    with private_umask():
        log = EventLog(args.log) if args.log else None
    try:
        summary = asyncio.run(_main(core, args, log))
    finally:
        if log is not None:
            log.close()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for row in summary:
            print(
                f"{row['ue']} {row['service']}: {row['state']}, keys {row['keys']}, "
                f"{row['decrypted']} decrypted, {row['failures']} failed, "
                f"{row['registrations']} registrations"
                + (f", last error: {row['last_error']}" if row["last_error"] else "")
            )
    healthy = all(r["registrations"] > 0 and r["decrypted"] > 0 for r in summary)
    return 0 if healthy else 1


async def _main(
    core: UeCore, args: argparse.Namespace, log: EventLog | None
) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        try:
            ctx = client_context(args.ca) if args.ca is not None else None
            client = UeClient(
                core,
                args.url,
                session,
                log=log,
                log_receives=not args.no_receive_log,
                ssl_context=ctx,
            )
        except (UeClientError, TlsError) as exc:
            raise UsageError(str(exc)) from None
        for service in args.service:
            await client.add_service(service)
        client.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), args.duration or None)
        await client.stop()
        return client.summary()

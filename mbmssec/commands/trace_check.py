"""``mbmssec trace-check LOG``: does some run of the model explain an event log?

Reads a JSON-lines event log of the BM-SC and UEs (``mbmssec demo --log``, ``serve``,
``ue``; format in :mod:`mbmssec.impl.service.events`) and searches for a sequence of model
transitions that explains every event of it, choosing only what the log does not record
(the model clock and fetch times; see :mod:`mbmssec.refinement.tracecheck`).  Prints OK,
or the first event no transition explains (its line, in one line) and the candidate
model state as tables keyed by IMSI, MKI and sequence number.

The profile checked is the one given here (``--profile FILE`` / ``-o NAME=VALUE``, else
the baseline); a log whose ``Start`` event declares another profile fails.  Timing is
strict by default: an activation is explained by a UE's late fetch only when that UE's
fetch time is more than the BM-SC's fetch grace (logged in its ``Start`` event) before
the activation; ``--lenient-timing`` accepts any fetch time before the activation.
The log is read one line at a time and checked as it is read, in time linear in the
log and memory bounded by the live state (:mod:`mbmssec.refinement.streamcheck`): a
``Deliver`` waits for the UE's outcome among the next ``--lookahead`` events, and a
``Receive`` must be of one of the last ``--packet-window`` packets of its service; a log
beyond either bound is exit 2 with a message naming it, never accepted.

``--pcap FILE`` also checks the BM-SC's SRTP packets on the wire: every UDP datagram of
the capture (classic libpcap, as ``mbmssec demo --pcap`` writes it or as taken on the
loopback interface with a filter on the BM-SC's UDP port) is decoded as an SRTP packet
(sequence number, SSRC, the MKI field of the profile's length) and matched with the
``Send`` of its stream and index: each packet must carry the MKI of the model's active
TEK at that ``Send``; a packet with no ``Send``, a packet sent twice to one port, a packet
to a port no ``Deliver`` registered, or a ``Send`` missing from the wire while the capture
covers it (every registered port gets every packet once the stream's first packet is
captured) is a verdict naming the frame number, sequence number and MKI and the event.
With ``--db FILE`` (the BM-SC's database, which holds the TEKs' keys; they are never in
the log) each packet must also authenticate and decrypt under its TEK's key with the
``Send``'s rollover counter.  See :mod:`mbmssec.refinement.wirecheck`.

Exit status: 0 explained, 1 an event or packet no model run explains, 2 bad input
(unreadable or empty log, no ``Start`` event, unknown option, a bound exceeded, a pcap
that is not a readable capture).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mbmssec.errors import UsageError
from mbmssec.impl.service.events import iter_events
from mbmssec.refinement.streamcheck import DEFAULT_LOOKAHEAD, DEFAULT_PACKET_WINDOW
from mbmssec.refinement.tracecheck import DEFAULT_WIDTH, TraceResult, check_events
from mbmssec.refinement.wirecheck import DEFAULT_HOLD, WireCheck, keys_from_store
from mbmssec.spec.loader import Profile, load_profile, load_spec


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "trace-check", help="check an event log against the model", description=__doc__
    )
    p.add_argument("log", type=Path, metavar="LOG", help="JSON-lines event log")
    p.add_argument("--profile", type=Path, metavar="FILE", help="profile TOML file")
    p.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set one option of the profile (repeatable)",
    )
    p.add_argument(
        "--width",
        type=int,
        default=DEFAULT_WIDTH,
        help="unused: the timing search is exact (kept for compatibility)",
    )
    timing = p.add_mutually_exclusive_group()
    timing.add_argument(
        "--lenient-timing",
        action="store_true",
        help="explain an activation by late fetches of UEs merely past their fetch time, "
        "ignoring the BM-SC's fetch grace",
    )
    timing.add_argument(
        "--strict-timing",
        action="store_true",
        help="strict timing (the default; accepted for compatibility)",
    )
    p.add_argument(
        "--lookahead",
        type=int,
        default=DEFAULT_LOOKAHEAD,
        metavar="N",
        help=f"events a Deliver may wait for the UE's outcome (default {DEFAULT_LOOKAHEAD:,})",
    )
    p.add_argument(
        "--packet-window",
        type=int,
        default=DEFAULT_PACKET_WINDOW,
        metavar="N",
        help=f"packets of a service kept for a later Receive (default {DEFAULT_PACKET_WINDOW:,})",
    )
    p.add_argument(
        "--pcap",
        type=Path,
        metavar="FILE",
        help="also check the SRTP packets of this capture (classic libpcap) against the "
        "log's Send events and the model's active TEK: MKI, sequence number, index, one "
        "packet per Send and registered port",
    )
    p.add_argument(
        "--db",
        type=Path,
        metavar="FILE",
        help="with --pcap: the BM-SC's database, whose TEK keys each packet must "
        "authenticate and decrypt under",
    )
    p.add_argument(
        "--pcap-hold",
        type=int,
        default=DEFAULT_HOLD,
        metavar="N",
        help=f"with --pcap: captured packets held ahead of the log's Send events "
        f"(default {DEFAULT_HOLD:,})",
    )
    p.add_argument("--json", action="store_true", help="print the verdict as JSON")
    p.set_defaults(func=run)


def profile_for(profile_file: Path | None, options: list[str]) -> Profile:
    """The profile named on the command line (a file, then ``-o`` overrides), else the
    baseline.  The log's own declaration is never taken: it is checked against this."""
    spec = load_spec()
    base: dict[str, str] = {}
    if profile_file is not None:
        base = dict(load_profile(profile_file, spec).overrides)
    for item in options:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise UsageError(f"-o expects NAME=VALUE, got {item!r}")
        base[name.strip()] = value.strip()
    return spec.profile(base)


def check_log(
    path: Path, profile: Profile | None = None, *, strict_timing: bool = True
) -> TraceResult:
    """Check one log as it is read (against the baseline unless a profile is given)."""
    return check_events(
        iter_events(path), profile or profile_for(None, []), strict_timing=strict_timing
    )


def run(args: argparse.Namespace) -> int:
    profile = profile_for(args.profile, args.option)
    if args.db is not None and args.pcap is None:
        raise UsageError("--db gives the keys of the packets of --pcap: give --pcap too")
    wire = None
    if args.pcap is not None:
        keys = keys_from_store(args.db) if args.db is not None else None
        wire = WireCheck(args.pcap, profile, keys=keys, hold=args.pcap_hold)
    result = check_events(
        iter_events(args.log),
        profile,
        strict_timing=not args.lenient_timing,
        lookahead=args.lookahead,
        packet_window=args.packet_window,
        wire=wire,
    )
    if args.json:
        print(json.dumps(result.to_json(), indent=2, default=str))
    else:
        print(result.render())
    return 0 if result.ok else 1

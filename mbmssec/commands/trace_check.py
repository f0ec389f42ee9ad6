"""``mbmssec trace-check LOG``: does some run of the model explain an event log?

Reads a JSON-lines event log of the BM-SC and UEs (``mbmssec demo --log``, ``serve``,
``ue``; format in :mod:`mbmssec.impl.service.events`) and searches for a sequence of model
transitions that explains it, allowing for what the log does not record (time, late
fetches, reused authentications; see :mod:`mbmssec.refinement.tracecheck`).  Prints OK, or
the first event no transition explains with the candidate model states at that point.

The profile is ``--profile FILE`` / ``-o NAME=VALUE``; without either, the one recorded
in the log's ``Start`` event, else the baseline.  Exit status: 0 explained, 1 a
forbidden event, 2 bad input (unreadable log, unknown option).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mbmssec.errors import UsageError
from mbmssec.impl.service.events import read_events
from mbmssec.refinement.tracecheck import DEFAULT_WIDTH, TraceResult, check_events
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
        help=f"candidate timings kept (default {DEFAULT_WIDTH})",
    )
    p.add_argument(
        "--strict-timing",
        action="store_true",
        help="do not explain an activation past a UE's fetch time by a late fetch of that UE",
    )
    p.add_argument("--json", action="store_true", help="print the verdict as JSON")
    p.set_defaults(func=run)


def profile_for(
    events: list[dict[str, Any]], profile_file: Path | None, options: list[str]
) -> Profile:
    """The profile named on the command line, else the log's, else the baseline."""
    spec = load_spec()
    base: dict[str, str] = {}
    if profile_file is not None:
        base = dict(load_profile(profile_file, spec).overrides)
    elif not options:
        recorded = next(
            (
                e["profile"]
                for e in events
                if e["event"] == "Start" and isinstance(e.get("profile"), dict)
            ),
            None,
        )
        if recorded is not None:
            baseline = spec.baseline()
            base = {k: str(v) for k, v in recorded.items() if baseline[k] != v}
    for item in options:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise UsageError(f"-o expects NAME=VALUE, got {item!r}")
        base[name.strip()] = value.strip()
    return spec.profile(base)


def check_log(
    path: Path,
    profile: Profile | None = None,
    *,
    width: int = DEFAULT_WIDTH,
    allow_late_fetch: bool = True,
) -> TraceResult:
    """Read and check one log (the profile defaults as for the command)."""
    events = read_events(path)
    return check_events(
        events,
        profile or profile_for(events, None, []),
        width=width,
        allow_late_fetch=allow_late_fetch,
    )


def run(args: argparse.Namespace) -> int:
    events = read_events(args.log)
    profile = profile_for(events, args.profile, args.option)
    result = check_events(
        events, profile, width=args.width, allow_late_fetch=not args.strict_timing
    )
    if args.json:
        print(json.dumps(result.to_json(), indent=2, default=str))
    else:
        print(result.render())
    return 0 if result.ok else 1

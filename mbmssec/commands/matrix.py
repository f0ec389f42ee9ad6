"""``mbmssec matrix [--pairwise] [--json]``: which properties each change of the options
breaks or fixes, for every single-option change (and every pair with ``--pairwise``).

Each profile is proved/refuted as by ``mbmssec check`` and compared with the baseline;
profiles run in parallel worker processes (one per CPU).  Exit status 0.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from functools import partial
from typing import Any

from mbmssec.commands.check import parse_universe
from mbmssec.errors import UsageError
from mbmssec.proofs.bmc import DEFAULT_DEPTH
from mbmssec.proofs.check import (
    Comparison,
    check_overrides,
    compare,
    model_hash,
    pairwise_changes,
    single_changes,
    verdict_pool,
)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "matrix", help="properties broken/fixed by each option change", description=__doc__
    )
    p.add_argument(
        "--pairwise",
        action="store_true",
        help="also every consistent pair of single-option changes",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--depth", type=int, default=DEFAULT_DEPTH, help="bounded search depth")
    p.add_argument("--universe", default=None, metavar="UE,SVC,TEK,PKT")
    p.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes (default: one per CPU)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=run)


def _label(change: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(change.items()))


def run(args: argparse.Namespace) -> int:
    if args.depth < 1 or args.depth > 40:
        raise UsageError(f"--depth: expected 1..40 (got {args.depth})")
    if args.jobs < 1:
        raise UsageError(f"--jobs: expected at least 1 (got {args.jobs})")
    universe = parse_universe(args.universe)
    changes = single_changes()
    if args.pairwise:
        changes += pairwise_changes()
    work = partial(check_overrides, depth=args.depth, universe=universe)
    start = time.monotonic()
    with verdict_pool(args.jobs) as pool:
        baseline_f = pool.submit(work, {})
        futures = [pool.submit(work, c) for c in changes]
        baseline = baseline_f.result()
        comparisons: list[tuple[dict[str, str], Comparison]] = []
        for i, (change, fut) in enumerate(zip(changes, futures, strict=True), start=1):
            comparisons.append((change, compare(baseline, fut.result())))
            if not args.quiet:
                print(
                    f"mbmssec matrix: [{time.monotonic() - start:6.1f} s] {i}/{len(changes)} "
                    f"{_label(change)}",
                    file=sys.stderr,
                    flush=True,
                )
    numbers = sorted(baseline.verdicts)
    if args.json:
        print(
            json.dumps(
                {
                    "model_hash": model_hash(),
                    "baseline": {str(n): baseline.verdicts[n].verdict for n in numbers},
                    "changes": [
                        {
                            "options": c,
                            "broken": cmp.broken,
                            "weakened": cmp.weakened,
                            "fixed": cmp.fixed,
                            "shortest": {
                                str(n): len(t.steps)
                                for n, v in cmp.report.verdicts.items()
                                if (t := v.trace) is not None and n in cmp.broken
                            },
                            "verdicts": {
                                str(n): _verdict_json(v) for n, v in cmp.report.verdicts.items()
                            },
                        }
                        for c, cmp in comparisons
                    ],
                },
                indent=2,
            )
        )
        return 0
    width = max(len(_label(c)) for c, _ in comparisons) if comparisons else 10
    head = "change".ljust(width) + "  " + " ".join(f"P{n:<3}" for n in numbers)
    print(head)
    print(
        "baseline".ljust(width)
        + "  "
        + " ".join(
            (
                "ok  "
                if baseline.verdicts[n].verdict == "proved"
                else "x   "
                if baseline.verdicts[n].verdict == "refuted"
                else "?   "
            )
            for n in numbers
        )
    )
    liveness = {n for n in numbers if baseline.verdicts[n].kind == "liveness"}
    for change, cmp in comparisons:
        cells = []
        for n in numbers:
            if n in cmp.broken and n in liveness:
                cells.append("NVR ")
            elif n in cmp.broken:
                cells.append("BRK ")
            elif n in cmp.weakened:
                cells.append("?   ")
            elif n in cmp.fixed:
                cells.append("FIX ")
            else:
                cells.append(".   ")
        print(_label(change).ljust(width) + "  " + " ".join(cells))
    print("\nBRK newly broken (counterexample), FIX newly proved, ? no longer proved, . unchanged")
    if liveness:
        names = ", ".join(f"P{n}" for n in sorted(liveness))
        print(
            f"{names} (liveness): NVR never recovers (a fair lasso, replayed on the model); "
            "? not proved and no fair lasso within the lasso bound (e.g. recovers later)"
        )
    return 0


def _verdict_json(v: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": v.kind, "verdict": v.verdict, "how": v.how}
    if v.trace is not None:
        out["steps"] = len(v.trace.steps)
        if v.trace.loop is not None:
            out["lasso"] = {"prefix": v.trace.loop, "loop": len(v.trace.steps) - v.trace.loop}
    return out

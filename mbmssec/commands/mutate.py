"""``mbmssec mutate [--json] [--jobs N] [--only ID ...] [--list] [--out FILE] [--update FILE]``:
mutants generated from the model's own source, and whether the checker kills each one.

Operators: a guard dropped or negated, a conjunct of a guard dropped, an update of a
design symbol dropped, a Boolean constant flipped, ``<``/``<=`` exchanged, an option
test negated (see ``mbmssec.proofs.mutate``).  Each mutant runs through the checker,
in parallel processes, under the first profile (baseline, then the shipped proposals)
in which its code runs.  A mutant is killed when a property proved for the model is
refuted (shortest counterexample length given), a counterexample the model has is gone
or comes sooner, or an action loses its witness; equivalent when Z3 proves it takes the
model's steps from every state of the model's inductive invariant, or when
``spec/equivalent_mutants.toml`` declares it with a reason; otherwise it survived.
``--update FILE`` re-checks only what a complete earlier document leaves open.

``--proposal PROPOSAL`` mutates a proposal's own behaviour instead (its guards and
updates, written in the proposal language) and checks each mutant under the proposal
against the unmutated proposal: a survivor is a part of the proposal on which no verdict
depends.

Exit status: 0 when no mutant survived, 1 when one did (or a declaration is stale),
2 on bad arguments or declarations.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import as_completed
from functools import partial
from pathlib import Path
from typing import Any

from mbmssec.errors import MbmssecError
from mbmssec.proofs.check import resolve_proposal, verdict_pool
from mbmssec.proofs.mutate import (
    OPERATORS,
    PROVED_EQUIVALENT,
    MutantResult,
    check_mutant,
    check_proposal_mutant,
    clauses_of,
    load_equivalents,
    proposal_sites,
    sites,
    source_hash,
)
from mbmssec.spec.loader import load_spec


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "mutate", help="model mutants and whether the checker kills them", description=__doc__
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes (default: one per CPU; 1: checks in this process)",
    )
    p.add_argument(
        "--only", action="append", default=[], metavar="ID", help="only this mutant (repeatable)"
    )
    p.add_argument("--list", action="store_true", help="list the mutants without checking")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument(
        "--out",
        metavar="FILE",
        default=None,
        help="also write the JSON document to FILE (the documentation reads "
        "docs/mutants.json: each clause's page lists the properties its mutants break)",
    )
    p.add_argument(
        "--update",
        metavar="FILE",
        default=None,
        help="re-check only what a complete earlier document FILE (of the same model "
        "source) leaves open: its survivors and stale declarations, mutants it lacks, "
        "declared equivalents whose declaration changed, and any --only; keep the other "
        "verdicts, and write the merged document back to FILE (or to --out)",
    )
    p.add_argument(
        "--proposal",
        metavar="PROPOSAL",
        default=None,
        help="mutate this proposal's behaviour (a file, or the name of a shipped one) "
        "instead of the model's source",
    )
    p.set_defaults(func=run)


def _by_clause(mutants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For every normative clause: the properties its mutants break."""
    spec = load_spec()
    out = []
    for cid, clause in spec.clauses.items():
        if clause.kind != "normative":
            continue
        mine = [m for m in mutants if cid in clauses_of(m["function"])]
        # a property its mutants break (directly, through a read of an unset value, or by
        # taking away its counterexample: its verdict depends on the clause either way);
        # a lost witness names no property
        props = sorted(
            {
                k.rsplit(":", 1)[-1]
                for m in mine
                for k in m["killed_by"]
                if k[-1].isdigit() and not k.startswith("witness:")
            },
            key=lambda k: int(k[1:]),
        )
        out.append(
            {
                "clause": cid,
                "mutants": len(mine),
                "killed": sum(m["verdict"] == "killed" for m in mine),
                "properties": props,
                "no_property_depends": not props,
            }
        )
    return out


def _earlier(path: Path) -> dict[str, Any]:
    """A complete earlier document of the same model source (for ``--update``)."""
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise MbmssecError(f"--update {path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise MbmssecError(f"--update {path}: not JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("mutants"), list):
        raise MbmssecError(f"--update {path}: no 'mutants' list (not an mbmssec mutate document)")
    if doc.get("model_source") != source_hash():
        raise MbmssecError(
            f"--update {path}: made for another model source; run the whole catalogue"
        )
    if not doc.get("clauses"):
        raise MbmssecError(f"--update {path}: a partial document (--only); run the whole catalogue")
    return doc


def _still_settled(m: dict[str, Any], equivalents: dict[str, Any]) -> bool:
    """Does an earlier verdict stand without a new check?"""
    if m.get("verdict") == "killed":
        return m["id"] not in equivalents  # a new declaration must be checked (stale?)
    if m.get("verdict") == "equivalent":
        if m.get("reason") == PROVED_EQUIVALENT:
            return True
        declared = equivalents.get(m["id"])
        return declared is not None and declared.reason == m.get("reason")
    return False


def run(args: argparse.Namespace) -> int:
    if args.jobs < 1:
        raise MbmssecError(f"--jobs must be at least 1 (got {args.jobs})")
    if args.proposal is not None:
        return run_proposal(args)
    out_path = Path(args.out) if args.out else None
    if out_path is not None and not out_path.parent.is_dir():
        raise MbmssecError(f"--out {args.out}: folder {out_path.parent} does not exist")
    all_sites = sites()
    known = {s.id for s in all_sites}
    unknown = [i for i in args.only if i not in known]
    if unknown:
        raise MbmssecError(f"no such mutant: {', '.join(unknown)} (see mbmssec mutate --list)")
    chosen = [s for s in all_sites if not args.only or s.id in args.only]
    if args.list:
        if args.json:
            print(
                json.dumps(
                    [
                        {"id": s.id, "operator": s.operator, "line": s.line, "site": s.text}
                        for s in chosen
                    ],
                    indent=2,
                )
            )
        else:
            for s in chosen:
                print(f"{s.id:34} line {s.line:<4} {s.text}")
        return 0
    equivalents = load_equivalents()
    earlier: dict[str, dict[str, Any]] = {}
    spent = 0.0
    if args.update:
        doc = _earlier(Path(args.update))
        spent = float(doc.get("seconds", 0.0))
        earlier = {
            m["id"]: m
            for m in doc["mutants"]
            if m.get("id") in known and m["id"] not in args.only and _still_settled(m, equivalents)
        }
        chosen = [s for s in all_sites if s.id not in earlier]
        if out_path is None:
            out_path = Path(args.update)
    start = time.monotonic()
    results = _run_all([partial(check_mutant, s.id, equivalents) for s in chosen], all_sites, args)
    seconds = time.monotonic() - start
    mutants = [r.to_json() for r in results] + list(earlier.values())
    order = {s.id: n for n, s in enumerate(all_sites)}
    mutants.sort(key=lambda m: order[m["id"]])
    counts = {
        v: sum(m["verdict"] == v for m in mutants)
        for v in ("killed", "equivalent", "survived", "stale")
    }
    whole = len(mutants) == len(all_sites)
    document = {
        "model_source": source_hash(),
        "operators": OPERATORS,
        "seconds": round(spent + seconds, 1),
        "jobs": args.jobs,
        "counts": counts,
        "mutants": mutants,
        "clauses": _by_clause(mutants) if whole else [],
    }
    if args.update:
        document["rechecked"] = [r.site.id for r in results]
    if out_path is not None:
        try:
            out_path.write_text(json.dumps(document, indent=2) + "\n")
        except OSError as exc:
            raise MbmssecError(f"--out {args.out}: cannot write: {exc.strerror}") from None
    if args.json:
        print(json.dumps(document, indent=2))
    if not args.json:
        for m in mutants:
            what = ", ".join(m["killed_by"]) if m["killed_by"] else m["reason"]
            if m["shortest"] is not None:
                what += f" (shortest {m['shortest']} steps)"
            print(f"{m['id']:34} {m['verdict']:10} {m['profile']:24} {what}"[:160])
        n = len(mutants)
        print(
            (f"{len(results)} re-checked; " if args.update else "")
            + f"{n} mutants in {spent + seconds:.0f} s: {counts['killed']} killed, "
            f"{counts['equivalent']} equivalent, {counts['survived']} survived"
            + (f", {counts['stale']} stale declarations" if counts["stale"] else "")
        )
    return 1 if counts["survived"] or counts["stale"] else 0


def run_proposal(args: argparse.Namespace) -> int:
    """``mutate --proposal``: mutants of a proposal's behaviour, checked under it."""
    if args.out or args.update:
        raise MbmssecError("--out and --update keep the model's catalogue; not with --proposal")
    proposal = resolve_proposal(args.proposal)
    if proposal.behaviour is None:
        raise MbmssecError(
            f"{args.proposal}: the proposal sets option values only; there is no behaviour "
            "of its own to mutate (the model's mutants run under it: mbmssec mutate)"
        )
    all_sites = proposal_sites(proposal.behaviour)
    known = {s.id for s in all_sites}
    unknown = [i for i in args.only if i not in known]
    if unknown:
        raise MbmssecError(
            f"no such mutant: {', '.join(unknown)} "
            f"(see mbmssec mutate --proposal {args.proposal} --list)"
        )
    chosen = [s for s in all_sites if not args.only or s.id in args.only]
    if args.list:
        if args.json:
            print(
                json.dumps(
                    [{"id": s.id, "operator": s.operator, "site": s.text} for s in chosen], indent=2
                )
            )
        else:
            for s in chosen:
                print(f"{s.id:34} {s.text}")
        return 0
    start = time.monotonic()
    results = _run_all(
        [partial(check_proposal_mutant, proposal.reference, s.id) for s in chosen],
        all_sites,
        args,
    )
    counts = {v: sum(r.verdict == v for r in results) for v in ("killed", "equivalent", "survived")}
    document = {
        "proposal": proposal.name,
        "operators": OPERATORS,
        "seconds": round(time.monotonic() - start, 1),
        "counts": counts,
        "mutants": [r.to_json() for r in results],
    }
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        for r in results:
            what = ", ".join(r.killed_by) if r.killed_by else r.reason
            if r.shortest is not None:
                what += f" (shortest {r.shortest} steps)"
            print(f"{r.site.id:34} {r.verdict:10} {what}"[:100])
        print(
            f"{len(results)} mutants of proposal {proposal.name} in {document['seconds']:.0f} s: "
            f"{counts['killed']} killed, {counts['equivalent']} equivalent, "
            f"{counts['survived']} survived"
        )
    return 1 if counts["survived"] else 0


def _run_all(
    checks: list[Callable[[], MutantResult]], all_sites: Sequence[Any], args: argparse.Namespace
) -> list[MutantResult]:
    """Run the mutant checks in ``args.jobs`` worker processes (``--jobs 1``: in this
    process, one after the other, sharing the unmutated model's results with every
    check), one progress line per finished mutant, the results in the order of
    ``all_sites``."""
    start = time.monotonic()
    results: list[MutantResult] = []

    def done(r: MutantResult) -> None:
        results.append(r)
        if not args.quiet:
            print(
                f"mbmssec mutate: [{time.monotonic() - start:6.1f} s] {len(results)}/"
                f"{len(checks)} {r.site.id}: {r.verdict}",
                file=sys.stderr,
                flush=True,
            )

    if args.jobs == 1:
        for check in checks:
            done(check())
    else:
        with verdict_pool(args.jobs) as pool:
            futures = [pool.submit(check) for check in checks]
            for fut in as_completed(futures):
                done(fut.result())
    order = {s.id: n for n, s in enumerate(all_sites)}
    results.sort(key=lambda r: order[r.site.id])
    return results

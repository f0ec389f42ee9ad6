"""``mbmssec check [PROPOSAL ...]``: prove or refute every property for the baseline text
and for each proposed change, and print what each change breaks or fixes.

Exit status: 0 if no property that holds in the baseline breaks, 1 if one does (or is
no longer proved), 2 on bad input (the message names the file and the field).
Progress goes to stderr; ``--out DIR`` writes ``results.json`` (stamped with a hash of
the model sources), and each counterexample as JSON, as ITF JSON with the state at every
step (``.itf.json``), as SVG chart and as pytest file.  Under each counterexample's chart,
one sentence says why it violates the property.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from concurrent.futures import as_completed
from functools import partial
from pathlib import Path
from typing import Any

from mbmssec.errors import UsageError
from mbmssec.model import itf
from mbmssec.model.concrete import Universe
from mbmssec.model.machine import Model
from mbmssec.outdir import check_writable
from mbmssec.proofs.attribution import MAX_PARTS, attribute
from mbmssec.proofs.bmc import BMC_UNIVERSE, DEFAULT_DEPTH
from mbmssec.proofs.check import (
    Comparison,
    Proposal,
    Report,
    check_overrides,
    check_profile,
    compare,
    model_hash,
    resolve_proposal,
    results_document,
    shipped_proposals,
    verdict_pool,
)
from mbmssec.proofs.induction import DEFAULT_RLIMIT
from mbmssec.proofs.msc import trace_svg
from mbmssec.proofs.pytest_export import write_pytest
from mbmssec.proofs.results import RESULTS_FILE, label
from mbmssec.spec.loader import load_spec


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "check",
        help="prove/refute every property for the baseline and proposed changes",
        description=__doc__,
    )
    p.add_argument(
        "proposals",
        nargs="*",
        metavar="PROPOSAL",
        help="a proposal file, or the name of one in spec/proposals",
    )
    p.add_argument("--all", action="store_true", help="check every shipped proposal")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument(
        "--depth",
        type=int,
        default=DEFAULT_DEPTH,
        help=f"bounded search depth (default {DEFAULT_DEPTH})",
    )
    p.add_argument(
        "--universe",
        default=None,
        metavar="UE,SVC,TEK,PKT",
        help="sizes of the bounded-search universe (default "
        f"{BMC_UNIVERSE.ue},{BMC_UNIVERSE.svc},{BMC_UNIVERSE.tek},"
        f"{BMC_UNIVERSE.pkt})",
    )
    p.add_argument(
        "--rlimit",
        type=int,
        default=DEFAULT_RLIMIT,
        help="per-query resource limit of the inductive proofs, in Z3 steps (not seconds: "
        f"the verdicts do not depend on the machine's load; default {DEFAULT_RLIMIT:,})",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="write results.json, traces (JSON, ITF JSON, SVG, pytest) to DIR",
    )
    p.add_argument(
        "--no-attribution",
        action="store_true",
        help="do not re-check parts of each named proposal to find which of its option "
        "values causes each change, nor the alternatives that fix the same property "
        "(attribution is never made for the proposals --all adds)",
    )
    p.add_argument(
        "--brief",
        action="store_true",
        help="print only the verdict differences, the sentences of why and the attribution",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help=(
            "worker processes, each check in a fresh one: the proposals and the "
            "attribution's checks (default: one per CPU)"
        ),
    )
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=run)


def parse_universe(text: str | None) -> Universe:
    if text is None:
        return BMC_UNIVERSE
    parts = text.split(",")
    if len(parts) != 4 or not all(x.strip().isdigit() and int(x) >= 1 for x in parts):
        raise UsageError(f"--universe: expected four positive sizes UE,SVC,TEK,PKT, got {text!r}")
    ue, svc, tek, pkt = (int(x) for x in parts)
    return Universe(ue=ue, svc=svc, tek=tek, pkt=pkt)


class Progress:
    """Stage lines on stderr, with elapsed time."""

    def __init__(self, enabled: bool, prefix: str = "mbmssec check") -> None:
        self.enabled = enabled
        self.prefix = prefix
        self.start = time.monotonic()
        self.context = ""

    def __call__(self, message: str) -> None:
        if self.enabled:
            t = time.monotonic() - self.start
            print(
                f"{self.prefix}: [{t:6.1f} s] {self.context}{message}", file=sys.stderr, flush=True
            )


def run(args: argparse.Namespace) -> int:
    if args.depth < 1 or args.depth > 40:
        raise UsageError(f"--depth: expected 1..40 (got {args.depth})")
    if args.out is not None:
        check_writable(Path(args.out))
    if args.rlimit <= 0:
        raise UsageError("--rlimit: expected a positive number of solver steps")
    if args.jobs < 1:
        raise UsageError(f"--jobs: expected at least 1 (got {args.jobs})")
    universe = parse_universe(args.universe)
    spec = load_spec()
    proposals: list[Proposal] = [resolve_proposal(r, spec) for r in args.proposals]
    named = len(proposals)
    if args.all:
        proposals += shipped_proposals(spec)
    progress = Progress(not args.quiet)
    kwargs: dict[str, Any] = {
        "depth": args.depth,
        "universe": universe,
        "rlimit": args.rlimit,
        "progress": progress,
    }
    progress.context = "baseline: "
    baseline = check_profile(Model(spec.baseline()), **kwargs)
    progress.context = ""
    reports = _check_proposals(proposals, kwargs, args.jobs, progress)
    comparisons = [compare(baseline, r, p) for p, r in zip(proposals, reports, strict=True)]
    if not args.no_attribution:
        for c in comparisons[:named]:
            assert c.proposal is not None
            if c.proposal.behaviour is not None:
                continue  # its option values checked alone would leave its behaviour out
            progress.context = f"{c.proposal.name}: attribution: "
            checks = partial(
                check_overrides, depth=args.depth, universe=universe, rlimit=args.rlimit
            )
            c.attribution = attribute(c, spec, _parallel(checks, args.jobs, progress))
    progress.context = ""
    progress(
        f"done ({baseline.seconds + sum(c.report.seconds for c in comparisons):.1f} s checking)"
    )
    digest = model_hash()
    files: list[str] = []
    if args.out is not None:
        files = write_out(args.out, baseline, comparisons, digest)
    if args.json:
        print(results_document(baseline, comparisons, digest, files).dumps(), end="")
    elif args.brief:
        print(render_brief(baseline, comparisons))
    else:
        print(render_text(baseline, comparisons))
    return 1 if any(c.breaks for c in comparisons) else 0


def _check_one(path: str, kwargs: dict[str, Any]) -> Report:
    """Check the proposal in the file ``path`` (run in a worker of :func:`verdict_pool`)."""
    return check_profile(Model(resolve_proposal(path).profile), **kwargs)


def _check_proposals(
    proposals: Sequence[Proposal], kwargs: dict[str, Any], jobs: int, progress: Progress
) -> list[Report]:
    """Each proposal checked in a fresh process of its own (:func:`verdict_pool`, ``jobs``
    at a time), so that its verdicts are those of checking it alone; the stage lines of
    each carry its name."""
    if not proposals:
        return []
    with verdict_pool(min(jobs, len(proposals))) as pool:
        futures = []
        for prop in proposals:
            own = copy.copy(progress)
            own.context = f"{prop.name}: "
            futures.append(pool.submit(_check_one, str(prop.path), {**kwargs, "progress": own}))
        return [f.result() for f in futures]


def _parallel(
    check: Callable[[dict[str, str]], Report], jobs: int, progress: Progress
) -> Callable[[Sequence[dict[str, str]]], list[Report]]:
    """A batch checker for :func:`~mbmssec.proofs.attribution.attribute`: the profiles in
    ``jobs`` worker processes, one progress line per finished profile."""

    def run_all(batch: Sequence[dict[str, str]]) -> list[Report]:
        if not batch:
            return []
        with verdict_pool(min(jobs, len(batch))) as pool:
            futures = {pool.submit(check, dict(o)): i for i, o in enumerate(batch)}
            out: list[Report | None] = [None] * len(batch)
            for done, fut in enumerate(as_completed(futures), start=1):
                i = futures[fut]
                out[i] = fut.result()
                progress(f"{done}/{len(batch)} checked ({label(batch[i])})")
        return [r for r in out if r is not None]

    return run_all


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower() or "profile"


def write_out(out: Path, baseline: Report, comparisons: list[Comparison], digest: str) -> list[str]:
    """results.json plus, per counterexample, its JSON, ITF JSON (with the states), SVG and
    pytest file; returns the names of the counterexample files."""
    out.mkdir(parents=True, exist_ok=True)
    entries: list[tuple[str, Report]] = [("baseline", baseline)]
    entries += [
        (c.proposal.name if c.proposal else _slug(c.report.title), c.report) for c in comparisons
    ]
    files: list[str] = []
    proposals = {c.proposal.name: c.proposal for c in comparisons if c.proposal}
    for name, report in entries:
        proposal = proposals.get(name)
        model = _model(report, proposal)
        for v in report.verdicts.values():
            if v.trace is None:
                continue
            stem = f"{name}-P{v.number}"
            (out / f"{stem}.json").write_text(v.trace.dumps() + "\n", encoding="utf-8")
            states = v.itf if v.itf is not None else v.trace.to_itf(model)
            (out / f"{stem}.itf.json").write_text(itf.dumps(states), encoding="utf-8")
            (out / f"{stem}.svg").write_text(
                trace_svg(v.trace, model, f"{report.title}: property {v.number} ({v.name})"),
                encoding="utf-8",
            )
            write_pytest(
                out / f"test_{_slug(stem)}.py",
                v.trace,
                report.overrides,
                v.number,
                v.name,
                proposal.reference if proposal and proposal.behaviour else None,
            )
            files += [
                f"{stem}.json",
                f"{stem}.itf.json",
                f"{stem}.svg",
                f"test_{_slug(stem)}.py",
            ]
    document = results_document(baseline, comparisons, digest, files)
    (out / RESULTS_FILE).write_text(document.dumps(), encoding="utf-8")
    return files


def _model(report: Report, proposal: Proposal | None = None) -> Model:
    """The model a report was checked on: a proposal's (with its behaviour), or the one
    its option values give."""
    if proposal is not None:
        return Model(proposal.profile)
    return Model(load_spec().profile(report.overrides, title=report.title))


def _verdict_lines(
    report: Report, numbers: list[int] | None = None, proposal: Proposal | None = None
) -> list[str]:
    lines = []
    model = _model(report, proposal)
    for n in sorted(report.verdicts):
        if numbers is not None and n not in numbers:
            continue
        v = report.verdicts[n]
        qs = sum(q.seconds for q in v.queries)
        lines.append(f"  P{n:<3} {v.name:<30} {v.verdict.upper()}")
        how = v.how + (f" [{len(v.queries)} queries, {qs:.2f} s]" if v.queries else "")
        lines += _wrap(how, "        ")
        if v.lemmas:
            lines += _wrap("lemmas: " + ", ".join(v.lemmas), "        ", "          ")
        if v.trace is not None:
            lines += ["      " + x for x in v.trace.render_text(model).splitlines()]
        if v.explanation is not None:
            lines += _wrap("why: " + v.explanation, "      ", "           ")
        if v.cti is not None and v.verdict == "unknown":
            lines += ["      " + x for x in v.cti.render().splitlines()]
    return lines


def render_text(baseline: Report, comparisons: list[Comparison]) -> str:
    u = baseline.universe
    lines = _wrap(
        f"{baseline.title}: {baseline.seconds:.1f} s (induction "
        f"{baseline.induction.seconds:.1f} s, bounded search {baseline.bmc_seconds:.1f} s "
        f"to depth {baseline.depth} over {u.ue} UE, {u.svc} service, {u.tek} TEK, "
        f"{u.pkt} packets)",
        "",
        "  ",
    )
    missing = [a for a, w in baseline.witnesses.items() if w is None]
    lines += _wrap(
        "vacuity: initial states satisfiable; "
        + (
            "every action enabled in a reachable state (witnesses up to "
            f"{max(len(w.steps) for w in baseline.witnesses.values() if w)} steps)"
            if not missing
            else f"NOT SHOWN for {', '.join(missing)}"
        ),
        "  ",
        "    ",
    )
    lines += _verdict_lines(baseline)
    for c in comparisons:
        assert c.proposal is not None
        lines.append("")
        p = c.proposal
        lines += _wrap(
            f"Proposal {p.name}: {p.title} ({p.summary()}; {c.report.seconds:.1f} s)",
            "",
            "  ",
        )
        missing = [a for a, w in c.report.witnesses.items() if w is None]
        if missing:
            lines += _wrap(f"vacuity NOT shown for {', '.join(missing)}", "  ", "    ")
        lines.append(f"  newly broken: {_names(c.broken) or 'none'}")
        lines += _verdict_lines(c.report, c.broken, p)
        if c.weakened:
            lines.append(f"  no longer proved (not refuted): {_names(c.weakened)}")
            lines += _verdict_lines(c.report, c.weakened, p)
        lines.append(f"  newly fixed: {_names(c.fixed) or 'none'}")
        lines += _verdict_lines(c.report, c.fixed, p)
        lines.append(f"  unchanged: {_names(c.unchanged) or 'none'}")
        if c.added:
            lines.append(f"  added by the proposal: {_names(c.added)}")
            lines += _verdict_lines(c.report, c.added, p)
        lines += _attribution_lines(c)
        for err in c.expectation_errors():
            lines += _wrap(f"note: {err}", "  ", "    ")
    return "\n".join(lines)


def _attribution_lines(c: Comparison) -> list[str]:
    a = c.attribution
    p = c.proposal
    if a is None and p is not None and p.behaviour is not None and p.overrides:
        return _wrap(
            "(which of its parts causes each change is not computed: the proposal states "
            "behaviour besides its option values, and its option values alone leave it out)",
            "  ",
            "    ",
        )
    if a is None or not a.changes:
        return []
    lines = ["  what causes each change, and what else would fix it:"]
    if a.causes is None:
        lines += _wrap(
            f"(causes not computed: the proposal sets {len(c.report.overrides)} option "
            f"values, more than {MAX_PARTS})",
            "    ",
            "      ",
        )
    for sentence in a.sentences():
        lines += _wrap(sentence, "    ", "      ")
    if a.invalid:
        lines += _wrap(
            "not checked alone (not a valid profile on its own): "
            + "; ".join(label(s) for s in a.invalid),
            "    ",
            "      ",
        )
    return lines


def render_brief(baseline: Report, comparisons: list[Comparison]) -> str:
    """Only what differs from the baseline, the sentences of why, and the attribution
    (the baseline alone: its refuted properties and their sentences)."""
    lines: list[str] = []
    if not comparisons:
        refuted = [n for n, v in sorted(baseline.verdicts.items()) if v.verdict != "proved"]
        lines.append(f"{baseline.title}: not proved: {_names(refuted) or 'none'}")
        lines += _why_lines(baseline, refuted)
    for c in comparisons:
        assert c.proposal is not None
        lines += _wrap(f"{c.proposal.name}: {c.proposal.title}", "", "  ")
        for title, numbers in (
            ("newly broken", c.broken),
            ("no longer proved", c.weakened),
            ("newly fixed", c.fixed),
        ):
            if numbers:
                names = ", ".join(f"P{n} {c.report.verdicts[n].name}" for n in numbers)
                lines += _wrap(f"{title}: {names}", "  ", "    ")
        if not c.broken and not c.weakened and not c.fixed:
            lines.append("  no verdict changes")
        lines += _why_lines(c.report, c.broken)
        lines += _attribution_lines(c)
        for err in c.expectation_errors():
            lines += _wrap(f"note: {err}", "  ", "    ")
    return "\n".join(lines)


def _why_lines(report: Report, numbers: list[int]) -> list[str]:
    lines: list[str] = []
    for n in numbers:
        v = report.verdicts[n]
        if v.explanation is not None:
            lines += _wrap(f"why P{n}: {v.explanation}", "  ", "    ")
    return lines


TEXT_WIDTH = 100
"""Columns of every line ``check`` prints (counterexample charts are sized to fit too)."""


def _wrap(text: str, first: str, rest: str | None = None) -> list[str]:
    return textwrap.wrap(
        text,
        TEXT_WIDTH,
        initial_indent=first,
        subsequent_indent=first if rest is None else rest,
        break_on_hyphens=False,
    )


def _names(numbers: list[int]) -> str:
    return ", ".join(f"P{n}" for n in numbers)

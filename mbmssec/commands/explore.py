"""``mbmssec explore``: Hypothesis exploration of the model under an option profile."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from mbmssec.errors import UsageError
from mbmssec.model.concrete import Universe
from mbmssec.model.explain import explain
from mbmssec.model.explore import EXPLORE_UNIVERSE, ExploreResult, explore
from mbmssec.model.machine import Model
from mbmssec.model.properties import PROPERTIES
from mbmssec.spec.loader import Profile, load_expectations, load_profile, load_spec


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "explore",
        help="explore the model with Hypothesis and report each property",
        description="Run the model's generated Hypothesis state machine under an option "
        "profile. Exit 0 if every property expected to hold held, 1 if one was "
        "violated or an action never ran, 2 on bad input.",
    )
    p.add_argument("--profile", type=Path, help="TOML profile: title, [options], expect_violated")
    p.add_argument(
        "--proposal",
        metavar="PROPOSAL",
        default=None,
        help="explore the model of a proposal (a file, or the name of a shipped one), with "
        "the behaviour it states; expected outcomes from its expect table",
    )
    p.add_argument(
        "--option",
        "-o",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override one option (repeatable)",
    )
    p.add_argument("--examples", type=int, default=200, help="Hypothesis examples per search")
    p.add_argument("--steps", type=int, default=40, help="maximum steps per example")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--shrink",
        action="store_true",
        help="also let Hypothesis shrink a violating run (simpler arguments; can take minutes)",
    )
    p.add_argument(
        "--universe",
        default=None,
        metavar="UE,SVC,TEK,PKT",
        help=f"finite universe sizes (default {EXPLORE_UNIVERSE.ue},"
        f"{EXPLORE_UNIVERSE.svc},{EXPLORE_UNIVERSE.tek},{EXPLORE_UNIVERSE.pkt})",
    )
    p.add_argument(
        "--property",
        type=int,
        action="append",
        dest="only",
        metavar="N",
        help="explore only property N (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.set_defaults(func=run)


def _profile(args: argparse.Namespace) -> tuple[Profile, frozenset[int] | None]:
    spec = load_spec()
    expect = None
    if args.proposal is not None:
        if args.profile is not None:
            raise UsageError("--proposal and --profile: give one of them")
        from mbmssec.proofs.check import resolve_proposal

        proposal = resolve_proposal(args.proposal, spec)
        overrides = dict(proposal.overrides)
        for item in args.option:
            name, sep, value = item.partition("=")
            if not sep:
                raise UsageError(f"--option expects NAME=VALUE, got {item!r}")
            overrides[name.strip()] = value.strip()
        profile = spec.profile(overrides, title=proposal.title, source=str(proposal.path))
        profile = profile.with_behaviour(proposal.behaviour)
        if args.option:
            return profile, None
        violated = {p.number for p in PROPERTIES if not p.holds_in_baseline}
        added = {n for n, want in proposal.added.items() if want == "violated"}
        expected = (violated | set(proposal.expect_broken) | added) - set(proposal.expect_fixed)
        return profile, frozenset(expected)
    if args.profile is not None:
        base = load_profile(args.profile, spec)
        expect = load_expectations(args.profile)
        overrides = dict(base.overrides)
        title = base.title
    else:
        overrides, title = {}, ""
    for item in args.option:
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--option expects NAME=VALUE, got {item!r}")
        overrides[name.strip()] = value.strip()
    if args.option:
        title = ""
    profile = spec.profile(overrides, title=title, source=str(args.profile or "--option"))
    if expect is None and profile.overrides:
        expect = _proposal_expectation(profile)
    return profile, expect


def _proposal_expectation(profile: Profile) -> frozenset[int] | None:
    """What the shipped proposal making exactly this change expects to break (verified
    against the checker by the tests), on top of what the baseline already violates;
    ``None`` when no shipped proposal makes this change."""
    from mbmssec.model.properties import PROPERTIES
    from mbmssec.proofs.check import shipped_proposals

    for prop in shipped_proposals(profile.spec):
        if prop.behaviour is None and dict(prop.profile.overrides) == dict(profile.overrides):
            base = {p.number for p in PROPERTIES if not p.holds_in_baseline}
            return frozenset((base | set(prop.expect_broken)) - set(prop.expect_fixed))
    return None


def _universe(text: str | None) -> Universe:
    if text is None:
        return EXPLORE_UNIVERSE
    try:
        ue, svc, tek, pkt = (int(x) for x in text.split(","))
    except ValueError:
        raise UsageError(f"--universe expects four integers UE,SVC,TEK,PKT, got {text!r}") from None
    if min(ue, svc, tek, pkt) < 1 or max(ue, svc, tek, pkt) > 8:
        raise UsageError("--universe sizes must be between 1 and 8")
    return Universe(ue, svc, tek, pkt)


def run(args: argparse.Namespace) -> int:
    if args.examples < 1 or args.steps < 1:
        raise UsageError("--examples and --steps must be positive")
    profile, expect = _profile(args)
    model = Model(profile)
    known = {p.number for p in model.properties}
    if args.only and not set(args.only) <= known:
        raise UsageError(
            f"unknown property {sorted(set(args.only) - known)}; known: {sorted(known)}"
        )
    live = sorted(
        p.number for p in model.properties if p.kind == "liveness" and p.number in (args.only or ())
    )
    if live:
        raise UsageError(
            f"property {live[0]} is a liveness property: no finite run refutes it, so "
            "exploration cannot judge it; `mbmssec check` proves it or finds a fair lasso "
            "(its bounded form is property 12)"
        )

    def progress(msg: str) -> None:
        if not args.json or sys.stderr.isatty():
            print(f"[explore] {msg}", file=sys.stderr, flush=True)

    result = explore(
        model,
        examples=args.examples,
        shrink=args.shrink,
        steps=args.steps,
        seed_value=args.seed,
        universe=_universe(args.universe),
        expect_violated=expect,
        only=frozenset(args.only) if args.only else None,
        progress=progress,
    )
    if args.json:
        print(json.dumps(to_json(result, model), indent=2))
    else:
        print(render(result, model))
    return 0 if result.ok and not result.coverage_problem else 1


def to_json(result: ExploreResult, model: Model) -> dict[str, Any]:
    """The report as JSON: each counterexample also with its states (ITF, see
    :meth:`~mbmssec.model.trace.Trace.to_itf`) and the sentence of why it violates its
    property."""
    doc = result.to_json()
    for row, r in zip(doc["properties"], result.results, strict=True):
        if r.trace is not None:
            row["itf"] = r.trace.to_itf(model)
            row["explanation"] = explain(model, r.trace, r.number)
    return doc


def render(result: ExploreResult, model: Model) -> str:
    """The human-readable report."""
    u = result.universe
    out = [
        f"Profile: {result.profile}",
        f"Search: {result.examples} examples x up to {result.steps} steps, seed {result.seed}, "
        f"universe UE={u.ue} SVC={u.svc} TEK={u.tek} PKT={u.pkt}; "
        f"{result.total_steps} steps in {result.seconds:.1f} s",
        "",
        f"  {'#':>2}  {'property':<52} {'expected':<9} result",
    ]
    for r in result.results:
        title = model.prop(r.number).title
        got = "held" if r.held else f"VIOLATED ({len(r.trace.steps) if r.trace else '?'} steps)"
        flag = (
            ""
            if r.as_expected
            else (
                "   <-- unexpected" if r.expected_to_hold else "   (expected violation not found)"
            )
        )
        expected = "holds" if r.expected_to_hold else "violated"
        out.append(f"  {r.number:>2}  {title:<52} {expected:<9} {got}{flag}")
        bound = model.prop(r.number).bound
        if bound is not None and r.held:
            out[-1] += f"  [bound: {bound} steps]"
    counts = ", ".join(f"{k} {v}" for k, v in result.action_counts.items())
    out += ["", *textwrap.wrap("Actions executed: " + counts, 100, subsequent_indent="  ")]
    if result.not_applicable:
        out += textwrap.wrap(
            "Not in this profile: " + ", ".join(result.not_applicable), 100, subsequent_indent="  "
        )
    if result.coverage_problem:
        out += textwrap.wrap(
            "PROBLEM: actions never executed: " + ", ".join(result.coverage_problem),
            100,
            subsequent_indent="  ",
        )
    elif result.never_executed:
        out += textwrap.wrap(
            "Not reached before the search stopped at its last violation (not a problem: "
            "the search did not run its whole budget): " + ", ".join(result.never_executed),
            100,
            subsequent_indent="  ",
        )
    for r in result.results:
        if r.trace is not None:
            out += [
                "",
                f"Counterexample, property {r.number} ({model.prop(r.number).title}):",
                r.trace.render_text(model),
                *textwrap.wrap(
                    "why: " + explain(model, r.trace, r.number), 100, subsequent_indent="     "
                ),
            ]
    out.append("")
    out.append(
        "RESULT: "
        + (
            "all properties expected to hold held"
            if result.ok
            else "a property expected to hold was violated"
        )
    )
    return "\n".join(out)

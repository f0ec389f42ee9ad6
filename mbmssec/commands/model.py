"""``mbmssec model show [ACTION ...]``: the model's actions in the proposal language.

Each action is printed as a proposal writes one: its parameters and actor, what it
means, the clauses it encodes, its guards and its updates, in the language of
``spec/proposals/README.md``.  Option tests are decided by the profile: the baseline,
or the option values given with ``-o NAME=VALUE``, or a proposal's (``--proposal``, whose
changed and added actions are printed with the rest).  ``--state`` prints the state
names first, with their sorts, types and initial values.

Exit status: 0, or 2 on an unknown action, option or proposal.
"""

from __future__ import annotations

import argparse
from typing import Any

from mbmssec.errors import UsageError
from mbmssec.model.machine import Model
from mbmssec.model.show import render_state, show
from mbmssec.proofs.check import resolve_proposal
from mbmssec.spec.loader import Profile, load_spec


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "model",
        help="print the model's actions in the proposal language",
        description=__doc__,
    )
    sub = p.add_subparsers(dest="model_command", metavar="SUBCOMMAND")
    s = sub.add_parser(
        "show",
        help="print actions (all, or those named) in the proposal language",
        description="Print the model's actions (all, or the ACTIONs named) as a proposal "
        "writes them: parameters, actor, meaning, clauses, guards and updates.",
    )
    s.add_argument("actions", nargs="*", metavar="ACTION", help="an action name, e.g. Register")
    s.add_argument(
        "--option",
        "-o",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="read the model under this option value (repeatable)",
    )
    s.add_argument(
        "--proposal",
        metavar="PROPOSAL",
        default=None,
        help="read the model under a proposal (a file, or the name of a shipped one), "
        "with the actions it changes or adds",
    )
    s.add_argument("--state", action="store_true", help="print the state names first")
    s.set_defaults(func=run_show)
    p.set_defaults(func=lambda _a: _usage(p))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _profile(args: argparse.Namespace) -> Profile:
    spec = load_spec()
    overrides: dict[str, str] = {}
    base: Profile | None = None
    if args.proposal is not None:
        base = resolve_proposal(args.proposal, spec).profile
        overrides = dict(base.overrides)
    for item in args.option:
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--option expects NAME=VALUE, got {item!r}")
        overrides[name.strip()] = value.strip()
    title = ""
    if base is not None:
        title = base.title + (f" ({', '.join(args.option)})" if args.option else "")
    profile = spec.profile(overrides, title=title, source="--option")
    if base is not None:
        profile = profile.with_behaviour(base.behaviour)
    return profile


def run_show(args: argparse.Namespace) -> int:
    from mbmssec.cli import plain

    profile = _profile(args)
    model = Model(profile)
    known = [a.name for a in model.all_actions]
    for name in args.actions:
        if name not in known:
            raise UsageError(f"unknown action {name!r} (the model's: {', '.join(known)})")
    lines = [f"# the model under: {profile.title}"]
    if args.state:
        lines += ["", "# state", *render_state(model.vocab)]
    for act in model.all_actions:
        if args.actions and act.name not in args.actions:
            continue
        lines.append("")
        if act not in model.actions:
            lines.append(
                f"action {act.name}: not in this model (an option or proposal leaves it out)"
            )
            continue
        lines += show(act, profile, model.vocab).lines()
    print(plain("\n".join(lines)))
    return 0

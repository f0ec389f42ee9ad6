"""The security review page: each property's status for the text as written, what the
results assume (attacker, environment, options, non-vacuity, bounds) and what they do
not cover (clauses left out or stated by no property, options the model does not
distinguish, capabilities some proposals remove, unsettled verdicts)."""

from __future__ import annotations

from mbmssec.docgen.fragments import STATUS_ROLES, doc_inline, fmt_universe, verdict_cell
from mbmssec.docgen.inputs import Inputs, clause_status
from mbmssec.docgen.needs import (
    action_need_id,
    clause_need_id,
    option_need_id,
    property_need_id,
    proposal_need_id,
)
from mbmssec.docgen.rst import esc, heading, list_table, status_role
from mbmssec.docgen.site import Site
from mbmssec.model.properties import Property
from mbmssec.proofs.results import Results, VerdictResult

_NONE = "None.\n\n"


def _scope(prop: Property, v: VerdictResult | None, res: Results | None) -> str:
    """What a verdict covers: every population size, or the bounds of the search."""
    if v is None:
        return "no proof result"
    if v.verdict == "proved":
        if prop.bound is None:
            return "unbounded: every population size"
        return (
            f"bounded: the recovery plan's {prop.bound} steps, from every "
            "reachable state, every population size"
        )
    if res is None:
        return "unknown"
    b = res.baseline
    if v.verdict == "refuted":
        return (
            f"counterexample found by bounded model checking over "
            f"{fmt_universe(b.universe)}, depth ≤ {b.depth}"
        )
    return (
        "neither proved nor refuted; no counterexample within depth "
        f"{b.depth} over {fmt_universe(b.universe)}"
    )


def _properties(inp: Inputs) -> str:
    rows = []
    for prop in inp.properties:
        v = inp.verdict(prop.number)
        rows.append(
            [
                f":need:`P{prop.number} <{property_need_id(prop.number)}>`",
                esc(prop.title),
                verdict_cell(v),
                esc(_scope(prop, v, inp.results)),
                ", ".join(f"``{x}``" for x in v.lemmas) if v else "",
                ", ".join(
                    f":need:`{clause_need_id(c)}`" for c in prop.clauses if c in inp.spec.clauses
                ),
            ]
        )
    return heading("Properties", "-") + list_table(
        ["property", "title", "status", "scope of the result", "lemmas used", "clauses"],
        rows,
        widths=[8, 18, 10, 26, 22, 16],
    )


def _actors(inp: Inputs, actor: str) -> str:
    return "".join(
        f"  * :need:`{action_need_id(act.name)}`: {doc_inline(act.doc)}\n"
        for act in inp.actions
        if act.actor == actor
    )


def _result_assumptions(res: Results) -> str:
    """Non-vacuity, lemmas and bounds of the results."""
    b = res.baseline
    missing = [a for a, n in b.witnesses.items() if n is None]
    longest = max((n for n in b.witnesses.values() if n), default=0)
    vacuity = (
        "every action is enabled in some reachable state (replayed witnesses, "
        f"up to {longest} steps)"
        if not missing
        else "NOT shown for " + ", ".join(missing)
    )
    return (
        f"* **Non-vacuity**: {vacuity}.\n"
        f"* **Lemmas**: the proofs use {len(b.invariant)} "
        "invariant conjuncts, each proved inductive together (see "
        ":doc:`proofs`).\n"
        f"* **Bounded results**: counterexamples are shortest within "
        f"{fmt_universe(b.universe)} and depth {b.depth}; a property refuted only in a "
        "larger universe or deeper would show as *unknown*, never as *proved*.\n"
    )


def _assumptions(inp: Inputs) -> str:
    out = [heading("What the results assume", "-")]
    out.append(
        "* **The model is the system.** The verdicts are about the abstract "
        "state machine of ``model/``; the implementation in ``impl/`` is checked "
        "by tests against published vectors and independent implementations, "
        "not proved.\n"
    )
    out.append(
        "* **The attacker** can do exactly what these actions allow, in any "
        "order and interleaving:\n\n"
    )
    out.append(_actors(inp, "attacker"))
    out.append("\n* **The network and radio environment** behave as these actions allow:\n\n")
    out.append(_actors(inp, "net"))
    out.append(
        "\n* **The options** take their baseline values unless a proposal says "
        "otherwise: "
        + ", ".join(
            f":need:`{option_need_id(o.name)}` = ``{o.baseline}``"
            for o in inp.spec.options.values()
        )
        + ".\n"
    )
    if inp.results is not None:
        out.append(_result_assumptions(inp.results))
    out.append("\n")
    return "".join(out)


def _clauses_left_out(inp: Inputs) -> str:
    rows = [
        [f":need:`{clause_need_id(c.id)}`", c.kind, esc(c.why or c.summary)]
        for c in inp.spec.clauses.values()
        if not c.modelled or c.kind == "out-of-scope"
    ]
    return heading("Clauses the model leaves out", "~") + (
        list_table(["clause", "kind", "why"], rows, widths=[25, 15, 60]) or _NONE
    )


def _clauses_unstated(inp: Inputs) -> str:
    rows = []
    for c in inp.spec.clauses.values():
        status, _ = clause_status(inp, c)
        modelled = c.modelled and c.kind != "out-of-scope"
        if status == "tested only" or (status == "not modelled" and modelled):
            encoded = ", ".join(
                f":need:`{action_need_id(a.name)}`" for a in inp.tagged_by_actions(c.id)
            )
            rows.append(
                [
                    f":need:`{clause_need_id(c.id)}`",
                    c.kind,
                    status_role(status),
                    encoded or "none",
                ]
            )
    return heading("Clauses no property states", "~") + (
        list_table(["clause", "kind", "status", "encoded by"], rows, widths=[30, 15, 15, 40])
        or _NONE
    )


def _neutral_options(inp: Inputs) -> str:
    rows = [
        [f":need:`{option_need_id(o.name)}`", esc(o.model_note)]
        for o in inp.spec.options.values()
        if o.neutral
    ]
    return heading("Options the model does not distinguish", "~") + (
        list_table(["option", "why the model is the same for every value"], rows, widths=[25, 75])
        or _NONE
    )


def _absent_capabilities(inp: Inputs) -> str:
    baseline = inp.spec.baseline()
    rows = []
    for p in inp.proposals:
        gone = [a for a in inp.actions if a.applies(baseline) and not a.applies(p.profile)]
        if gone:
            rows.append(
                [
                    f":need:`{proposal_need_id(p.name)}`",
                    ", ".join(f":need:`{action_need_id(a.name)}`" for a in gone),
                    "A property that holds there holds because the action is gone: the "
                    "model does not show the replacement mechanism secure.",
                ]
            )
    return heading("Capabilities absent under some proposals", "~") + (
        list_table(["proposal", "actions absent", "consequence"], rows, widths=[25, 25, 50])
        or _NONE
    )


def _unsettled(inp: Inputs, res: Results) -> str:
    """Shipped proposals with unknown verdicts, and those the results do not check."""
    shipped = {p.name for p in inp.proposals}
    rows = []
    for name, pr in res.proposals.items():
        unknown = [n for n, v in pr.report.verdicts.items() if v.verdict == "unknown"]
        if unknown and name in shipped:
            rows.append([f":need:`{proposal_need_id(name)}`", ", ".join(f"P{n}" for n in unknown)])
    out = [heading("Proposals whose verdicts are not all settled", "~")]
    out.append(list_table(["proposal", "unknown"], rows) or _NONE)
    unchecked = [p for p in inp.proposals if p.name not in res.proposals]
    if unchecked:
        out.append(heading("Proposals not checked in these results", "~"))
        out.append(", ".join(f":need:`{proposal_need_id(p.name)}`" for p in unchecked) + ".\n\n")
    return "".join(out)


def write_security_review_page(site: Site) -> None:
    """``security_review``: what the results establish, assume and leave out."""
    inp = site.inp
    out = [STATUS_ROLES, heading("Security review", "=")]
    out.append(
        "Every key-lifecycle property of the model, its status for the text as written "
        "(the baseline), what the result assumes and what it does not cover. Generated "
        "from the model and the checker's results; the statuses are those of the "
        "results this documentation was built from.\n\n"
    )
    out.append(_properties(inp))
    out.append(_assumptions(inp))
    out.append(heading("What is not covered", "-"))
    out.append(_clauses_left_out(inp))
    out.append(_clauses_unstated(inp))
    out.append(_neutral_options(inp))
    out.append(_absent_capabilities(inp))
    if inp.results is not None:
        out.append(_unsettled(inp, inp.results))
    site.write("security_review.rst", "".join(out))

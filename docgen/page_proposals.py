"""The pages of the proposals: each shipped proposal with the clauses it touches, its
verdicts against the baseline's and the counterexamples to what it breaks; the index of
proposals; and the proposal file format."""

from __future__ import annotations

from mbmssec.docgen.charts import trace_need
from mbmssec.docgen.fragments import STATUS_ROLES, fmt_universe, solver_cell, verdict_cell
from mbmssec.docgen.inputs import change_of, proposal_status
from mbmssec.docgen.needs import (
    clause_need_id,
    option_need_id,
    proof_need_id,
    property_need_id,
    proposal_need_id,
)
from mbmssec.docgen.paths import rel
from mbmssec.docgen.problems import Problem
from mbmssec.docgen.rst import esc, heading, list_table, need, raw_details, status_role
from mbmssec.docgen.site import Site
from mbmssec.proofs.check import PROPOSALS_DIR, Proposal
from mbmssec.proofs.results import ProposalResult


def difference_text(site: Site, p: Proposal, depth: int) -> str:
    """One proposal's verdict difference from the baseline, with the charts of the
    properties it breaks (for a page ``depth`` folders below the generated one)."""
    pr = site.inp.proposal_result(p.name)
    head = f":need:`{proposal_need_id(p.name)}`"
    if pr is None:
        return (
            f"{head}: {status_role('not checked')} — the results have no verdicts "
            f"for it (run ``mbmssec check --all --out DIR``).\n\n"
        )
    parts = [
        f"{label} " + ", ".join(f":need:`{property_need_id(n)}`" for n in nums)
        for label, nums in (
            ("breaks", pr.broken),
            ("no longer proves", pr.weakened),
            ("fixes", pr.fixed),
        )
        if nums
    ]
    text = f"{head}: " + ("; ".join(parts) if parts else "no verdict changes") + ".\n\n"
    for n in pr.broken:
        v = pr.report.verdicts.get(n)
        if v is not None:
            text += site.charts.block(depth, p.name, v, pr.report)
    return text


def _expectation(p: Proposal) -> str:
    return (
        "expected: breaks "
        + (", ".join(map(str, p.expect_broken)) or "nothing")
        + "; fixes "
        + (", ".join(map(str, p.expect_fixed)) or "nothing")
        + (
            "; no longer proves (not refuted) " + ", ".join(map(str, p.expect_weakened))
            if p.expect_weakened
            else ""
        )
    )


def write_proposal_page(site: Site, p: Proposal) -> None:
    """``proposals/NAME``: one proposal, the clauses it touches and its verdicts."""
    inp = site.inp
    pr = inp.proposal_result(p.name)
    out = [STATUS_ROLES, heading(f"Proposal {p.name}: {p.title}", "=")]
    out.append(
        need(
            "proposal",
            f"{p.name}: {p.title}",
            proposal_need_id(p.name),
            status=proposal_status(inp, p.name),
            fields={"overrides": ", ".join(f"{k}={v}" for k, v in p.overrides.items())},
            links={
                "touches": [clause_need_id(c) for c in p.clauses],
                "sets": [option_need_id(o) for o in p.overrides],
            },
            content=esc(p.rationale),
        )
    )
    options = ", ".join(f":need:`{option_need_id(k)}` = ``{v}``" for k, v in p.overrides.items())
    out.append(f"File: ``{rel(p.path)}``. Options: {options or 'none'}.\n\n")
    out.append(heading("Clauses it touches", "-"))
    out.append(_touched_clauses(site, p))
    if p.behaviour is not None:
        out.append(heading("Behaviour", "-"))
        out.append(_behaviour(site, p, pr))
    out.append(heading("Verdicts", "-"))
    if pr is None:
        out.append(
            f"{status_role('not checked')}: the results (``{inp.results_path}``) have no "
            f"verdicts for this proposal; run ``mbmssec check --all --out DIR`` "
            f"({esc(_expectation(p))}).\n\n"
        )
    else:
        out.append(_verdicts(site, p, pr))
        out.append(heading("Proof results", "-"))
        out.append(_proof_results(site, p, pr))
        out.append(_counterexamples(site, p, pr))
    site.write(f"proposals/{p.name}.rst", "".join(out))


def _behaviour(site: Site, p: Proposal, pr: ProposalResult | None) -> str:
    """What the proposal changes in the model, in the proposal language, and the verdicts
    of the properties it adds, with their counterexamples."""
    assert p.behaviour is not None
    text = "\n".join("   " + line for line in p.behaviour.render().splitlines())
    out = [
        "The model's behaviour under this proposal, as its file states it (the language "
        "is described in :doc:`../proposal_format`; ``mbmssec model show --proposal "
        f"{p.name}`` prints every action as the proposal leaves it):\n\n"
        f".. code-block:: text\n\n{text}\n\n"
    ]
    if not p.added:
        return "".join(out)
    rows = []
    for n, want in p.added.items():
        prop = next(x for x in p.behaviour.properties if x.number == n)
        pv = pr.report.verdicts.get(n) if pr else None
        rows.append(
            [
                f"P{n} {esc(prop.name)}",
                esc(prop.title),
                "proved" if want == "holds" else "refuted",
                verdict_cell(pv),
            ]
        )
    out.append(
        list_table(
            ["added property", "title", "expected", "verdict"], rows, widths=[25, 45, 15, 15]
        )
    )
    if pr is not None:
        for n in p.added:
            pv = pr.report.verdicts.get(n)
            chart = site.charts.draw(p.name, pv, pr.report) if pv is not None else None
            if pv is None or chart is None:
                continue
            why = f"**Why:** {esc(pv.explanation)}\n\n" if pv.explanation else ""
            out.append(
                f".. container:: mbmssec-msc\n\n   .. raw:: html\n      :file: ../{chart}\n\n"
                f"{why}Counterexample to the added property P{n}.\n\n"
            )
    return "".join(out)


def _touched_clauses(site: Site, p: Proposal) -> str:
    rows = [
        [
            f":need:`{clause_need_id(cid)}`",
            esc(site.inp.spec.clauses[cid].statement),
            esc(p.replacements.get(cid, "")) or "(unchanged)",
        ]
        for cid in p.clauses
    ]
    return list_table(
        ["clause", "current statement", "proposed statement"], rows, widths=[20, 40, 40]
    )


def _verdicts(site: Site, p: Proposal, pr: ProposalResult) -> str:
    """The proposal's status and the table of its verdicts beside the baseline's."""
    r = pr.report
    out = [
        f"Status: {status_role(proposal_status(site.inp, p.name))} "
        f"({esc(_expectation(p))}). Checked in {r.seconds:.1f} s (induction "
        f"{r.induction_seconds:.1f} s, bounded search {r.bmc_seconds:.1f} s over "
        f"{fmt_universe(r.universe)}, depth ≤ {r.depth}).\n\n"
    ]
    out += [f".. warning::\n\n   {esc(err)}\n\n" for err in pr.expectation_errors]
    rows = []
    for prop in site.inp.properties:
        pv = r.verdicts.get(prop.number)
        rows.append(
            [
                f":need:`P{prop.number} <{property_need_id(prop.number)}>`",
                verdict_cell(site.inp.verdict(prop.number)),
                verdict_cell(pv),
                status_role(change_of(pr, prop.number)),
                solver_cell(pv),
                f":need:`result <{proof_need_id(p.name, prop.number)}>`" if pv else "",
            ]
        )
    out.append(
        list_table(
            ["property", "baseline", "proposal", "change", "solver time", "result"],
            rows,
            css="mbmssec-verdicts",
            widths=[24, 12, 12, 16, 20, 16],
        )
    )
    return "".join(out)


def _proof_results(site: Site, p: Proposal, pr: ProposalResult) -> str:
    """A proof-result object for each property the proposal's results have."""
    out = []
    for prop in site.inp.properties:
        pv = pr.report.verdicts.get(prop.number)
        if pv is None:
            continue
        out.append(
            need(
                "proof",
                f"P{prop.number} under {p.name}: {pv.verdict}",
                proof_need_id(p.name, prop.number),
                status=pv.verdict,
                fields={
                    "profile": p.name,
                    "verdict": pv.verdict,
                    "how": pv.how,
                    "solver_seconds": f"{pv.query_seconds:.3f}",
                    "lemmas": ", ".join(pv.lemmas),
                    "bound": pv.bound,
                },
                links={
                    "proves": [property_need_id(prop.number)],
                    "result_of": [proposal_need_id(p.name)],
                },
            )
        )
    return "".join(out)


def _counterexamples(site: Site, p: Proposal, pr: ProposalResult) -> str:
    """Every refutation under the proposal with its chart; the charts of properties
    whose verdict did not change are collapsed."""
    changed = {*pr.broken, *pr.fixed, *pr.weakened}
    out = []
    for prop in site.inp.properties:
        pv = pr.report.verdicts.get(prop.number)
        if pv is None or pv.verdict != "refuted":
            continue
        out.append(trace_need(p.name, pv, pr.report))
        block = site.charts.block(1, p.name, pv, pr.report)
        if prop.number in changed:
            out.append(block)
        else:
            summary = f"Counterexample to P{prop.number} (refuted in the baseline too)"
            out.append(raw_details(summary, block))
    return "".join(out)


def write_proposals_index(site: Site) -> None:
    """``proposals/index``: every shipped proposal and its status."""
    rows = []
    for p in site.inp.proposals:
        pr = site.inp.proposal_result(p.name)
        rows.append(
            [
                f":doc:`{p.name}`",
                esc(p.title),
                ", ".join(f"``{k}={v}``" for k, v in p.overrides.items())
                + ("; behaviour" if p.behaviour is not None else ""),
                status_role(proposal_status(site.inp, p.name)),
                ", ".join(f"P{n}" for n in pr.broken) if pr else "",
                ", ".join(f"P{n}" for n in pr.fixed) if pr else "",
            ]
        )
    out = [
        STATUS_ROLES,
        heading("Shipped proposals", "="),
        "Each file in ``spec/proposals/`` proposes a change to the text as data; "
        "``mbmssec check`` proves or refutes every property under it and compares "
        "with the baseline. See :doc:`/writing_proposals`.\n\n",
        list_table(["proposal", "title", "options", "status", "breaks", "fixes"], rows),
        ".. toctree::\n   :hidden:\n\n",
    ]
    out += [f"   {p.name}\n" for p in site.inp.proposals]
    site.write("proposals/index.rst", "".join(out) + "\n")


def write_proposal_format_page(site: Site) -> None:
    """``proposal_format``: the format of a proposal file, as ``spec/proposals`` states
    it."""
    readme = PROPOSALS_DIR / "README.md"
    try:
        text = readme.read_text(encoding="utf-8")
    except OSError:
        site.inp.problems.append(Problem(f"{readme}: cannot read the proposal format"))
        text = "# Proposal format\n\n(missing)\n"
    site.write("proposal_format.md", text)


def write_proposal_pages(site: Site) -> None:
    """Every page of the proposals: each proposal, the index, the file format."""
    for proposal in site.inp.proposals:
        write_proposal_page(site, proposal)
    write_proposals_index(site)
    write_proposal_format_page(site)

"""The pages of the text: one page per clause number with a section per statement (its
status, the model actions that encode it, the properties and their verdicts, proposed
changes, implementation and tests), and the index of every statement."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from mbmssec.docgen.fragments import (
    STATUS_ROLES,
    action_source,
    doc_inline,
    how_cell,
    linked_tests,
    solver_cell,
    verdict_cell,
)
from mbmssec.docgen.inputs import STATUSES, clause_status
from mbmssec.docgen.needs import action_need_id, clause_need_id, option_need_id, property_need_id
from mbmssec.docgen.page_proposals import difference_text
from mbmssec.docgen.paths import DOCS_DIR, rel
from mbmssec.docgen.rst import esc, heading, list_table, need, status_role
from mbmssec.docgen.site import Site
from mbmssec.spec.loader import Clause


def write_clause_page(site: Site, number: str) -> None:
    """``clauses/NUMBER``: every statement of one clause."""
    inp = site.inp
    clauses = [c for c in inp.spec.clauses.values() if c.clause == number]
    title = f"Clause {number}" if number[0].isdigit() else f"Clause: {number}"
    rows = [
        [
            f"`{c.id}`_",
            c.kind,
            status_role(clause_status(inp, c)[0]),
            ", ".join(f"P{p.number}" for p in inp.tagged_by_properties(c.id)),
        ]
        for c in clauses
    ]
    out = [STATUS_ROLES, heading(title, "=")]
    out.append(
        list_table(["statement", "kind", "status", "properties"], rows, widths=[40, 20, 20, 20])
    )
    out += [_statement_section(site, c) for c in clauses]
    site.write(f"clauses/{number}.rst", "".join(out))


def _statement_section(site: Site, c: Clause) -> str:
    inp = site.inp
    status, why = clause_status(inp, c)
    out = [heading(c.id, "-")]
    out.append(
        need(
            "clause",
            c.id,
            clause_need_id(c.id),
            status=status,
            fields={
                "clause_id": c.id,
                "clause_number": c.clause,
                "kind": c.kind,
                "modelled": "yes" if c.modelled and c.kind != "out-of-scope" else "no",
                "summary": c.summary,
            },
            content=esc(c.statement),
        )
    )
    out.append(f"**Status:** {status_role(status)} — {why}\n\n")
    if c.option:
        out.append(
            f"Open choice: :need:`{option_need_id(c.option)}` (baseline "
            f"``{inp.spec.options[c.option].baseline}``).\n\n"
        )
    out.append(_actions(site, c))
    out.append(_properties(site, c))
    if c.kind == "normative":
        out.append(_mutation_section(c))
    out.append(_proposed_changes(site, c))
    out.append(_code(site, c))
    return "".join(out)


def _actions(site: Site, c: Clause) -> str:
    """The actions that encode the statement, with their (collapsed) sources."""
    acts = site.inp.tagged_by_actions(c.id)
    out = [heading("Model actions", "~")]
    if not acts:
        return out[0] + "None.\n\n"
    out += [
        f"* :need:`{action_need_id(act.name)}` ({act.actor}): {doc_inline(act.doc)}\n"
        for act in acts
    ]
    out.append("\n")
    out += [action_source(act, collapsed=True) for act in acts]
    return "".join(out)


def _properties(site: Site, c: Clause) -> str:
    """The properties that support the statement, their baseline verdicts and the charts
    of those refuted."""
    inp = site.inp
    res = inp.results
    props = inp.tagged_by_properties(c.id)
    out = [heading("Properties and proof verdicts", "~")]
    if not props:
        return out[0] + "No property states this clause.\n\n"
    rows = [
        [
            f":need:`P{p.number} <{property_need_id(p.number)}>` {esc(p.title)}",
            verdict_cell(inp.verdict(p.number)),
            how_cell(inp.verdict(p.number), res.baseline if res else None),
            solver_cell(inp.verdict(p.number)),
        ]
        for p in props
    ]
    out.append(
        list_table(
            ["property", "baseline verdict", "how", "solver time"], rows, widths=[30, 14, 40, 16]
        )
    )
    for p in props:
        v = inp.verdict(p.number)
        if res is not None and v is not None and v.verdict == "refuted":
            out.append(site.charts.block(1, None, v, res.baseline))
    return "".join(out)


MUTANTS_FILE = DOCS_DIR / "mutants.json"
"""Results of ``mbmssec mutate --out docs/mutants.json`` (committed: the full catalogue
takes too long to run at every documentation build)."""


@cache
def _mutation_results() -> tuple[dict[str, Any] | None, str]:
    """The mutation results and, if they cannot be used, why."""
    from mbmssec.proofs.mutate import source_hash

    if not MUTANTS_FILE.is_file():
        return None, f"no mutation results ({rel(MUTANTS_FILE)} is missing)"
    try:
        data = json.loads(MUTANTS_FILE.read_text())
    except (OSError, ValueError) as exc:
        return None, f"{rel(MUTANTS_FILE)} is unreadable ({exc})"
    if data.get("model_source") != source_hash():
        return None, (
            f"the mutation results in {rel(MUTANTS_FILE)} are stale (the model's actions "
            "changed since): run ``mbmssec mutate --out docs/mutants.json``"
        )
    return data, ""


def write_mutation_page(site: Site) -> None:
    """``mutation``: the mutation score and every mutant with its verdict (from
    docs/mutants.json, the committed output of ``mbmssec mutate``)."""
    site.write("mutation.rst", mutation_page())


def mutation_page() -> str:
    """The text of the ``mutation`` page."""
    out = [heading("Mutation analysis", "=")]
    out.append(
        "Every mutant ``mbmssec mutate`` derives from the model's actions (a guard dropped "
        "or negated, a conjunct dropped, an update dropped, a constant flipped, ``<`` and "
        "``<=`` exchanged, an option test negated) and what the checker says of it: "
        "**killed** (a property the model proves is refuted, a counterexample the model "
        "has disappears or comes in fewer steps, or an action loses its last effect), "
        "**equivalent** (proved "
        "equivalent by Z3 under the model's inductive invariant, or declared in "
        "``spec/equivalent_mutants.toml`` with the reason) or **survived** (a gap: no "
        "property notices the change).\n\n"
    )
    data, why = _mutation_results()
    if data is None:
        return "".join(out) + f"Not known: {why}.\n"
    mutants = data.get("mutants", [])
    counts = data.get("counts", {})
    n = len(mutants) or 1
    out.append(
        f"**{len(mutants)} mutants**: {counts.get('killed', 0)} killed, "
        f"{counts.get('equivalent', 0)} equivalent "
        f"({100 * counts.get('equivalent', 0) / n:.1f} %), {counts.get('survived', 0)} "
        f"survived, {counts.get('stale', 0)} stale declarations; "
        f"{data.get('seconds', 0):.0f} s on {data.get('jobs', '?')} worker processes.\n\n"
    )
    rows = [
        [
            f"``{esc(m['id'])}``",
            m["verdict"],
            esc(m.get("profile", "")),
            esc(", ".join(m.get("killed_by", [])))
            + (f" ({m['shortest']} steps)" if m.get("shortest") else ""),
            esc(m.get("reason", "")),
        ]
        for m in mutants
    ]
    out.append(
        list_table(
            ["mutant", "verdict", "profile", "killed by", "reason"],
            rows,
            widths=[22, 9, 14, 20, 35],
        )
    )
    return "".join(out)


def _mutation_section(c: Clause) -> str:
    """Which properties the mutants of this clause's actions break (mutation analysis):
    the guarantees that rest on this sentence of the text."""
    out = [heading("Guarantees resting on this statement", "~")]
    data, why = _mutation_results()
    if data is None:
        return out[0] + f"Not known: {why}.\n\n"
    entry = next((e for e in data.get("clauses", []) if e.get("clause") == c.id), None)
    if entry is None or not entry.get("mutants"):
        return out[0] + "No mutant is derived from the actions that encode this statement.\n\n"
    props = entry.get("properties", [])
    counts = f"{entry['killed']} of {entry['mutants']} mutants of its actions are killed"
    if not props:
        return out[0] + (
            f"**No property depends on it**: {counts}, none by a property (only by a lost "
            "witness, or they survive or are equivalent). Either the text is redundant "
            "here or a property is missing.\n\n"
        )
    return out[0] + (
        f"Breaking the model where it encodes this statement breaks "
        f"{', '.join(props)} ({counts}; ``mbmssec mutate``).\n\n"
    )


def _proposed_changes(site: Site, c: Clause) -> str:
    """The proposals that touch the statement or set its option, and what they break."""
    inp = site.inp
    related = [
        q
        for q in inp.proposals
        if c.id in q.clauses or any(c.id in inp.spec.options[o].clauses for o in q.overrides)
    ]
    if not related:
        return ""
    out = [heading("Proposed changes and what they break", "~")]
    out += [difference_text(site, q, depth=1) for q in related]
    return "".join(out)


def _code(site: Site, c: Clause) -> str:
    """The implementation elements and tests linked to the statement."""
    impls = site.inp.elements_for(c.id, "impl")
    tests = site.inp.elements_for(c.id, "test")
    out = [heading("Implementation and tests", "~")]
    if impls:
        out.append("Implemented by: " + ", ".join(f":need:`{e.need_id}`" for e in impls) + ".\n\n")
    else:
        out.append("No implementation element is linked to this clause.\n\n")
    if tests:
        out.append("Tested by: " + linked_tests(site.inp, tests) + ".\n\n")
    else:
        out.append("No test is linked to this clause.\n\n")
    return "".join(out)


def write_clauses_index(site: Site, numbers: list[str]) -> None:
    """``clauses/index``: every statement with its status, and the count of each status."""
    inp = site.inp
    statuses = {c.id: clause_status(inp, c)[0] for c in inp.spec.clauses.values()}
    rows = [
        [
            f":need:`{clause_need_id(c.id)}`",
            f":doc:`{c.clause} <{c.clause}>`",
            c.kind,
            status_role(statuses[c.id]),
            esc(c.summary),
        ]
        for c in inp.spec.clauses.values()
    ]
    counts = {s: sum(1 for x in statuses.values() if x == s) for s in STATUSES}
    out = [
        STATUS_ROLES,
        heading("Clauses", "="),
        "Every statement of the proposed text (``spec/clauses.toml``), by clause. "
        "Status: " + "; ".join(f"{status_role(s)} {n}" for s, n in counts.items()) + ".\n\n",
        list_table(
            ["statement", "clause", "kind", "status", "summary"],
            rows,
            widths=[24, 10, 12, 12, 42],
        ),
        ".. toctree::\n   :hidden:\n\n",
    ]
    out += [f"   {n}\n" for n in numbers]
    site.write("clauses/index.rst", "".join(out) + "\n")


def write_clause_pages(site: Site) -> None:
    """Every page of the text: one per clause number, then the index."""
    numbers = list(dict.fromkeys(c.clause for c in site.inp.spec.clauses.values()))
    for number in numbers:
        write_clause_page(site, number)
    write_clauses_index(site, numbers)

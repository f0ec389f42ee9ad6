"""The pages of the model: every action with its source, every property with its
verdict under the baseline and under each proposal, and the index of properties."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial

from mbmssec.docgen.charts import trace_need
from mbmssec.docgen.fragments import (
    STATUS_ROLES,
    action_source,
    fmt_universe,
    how_cell,
    reads_option,
    solver_cell,
    verdict_cell,
)
from mbmssec.docgen.inputs import change_of
from mbmssec.docgen.needs import (
    action_need_id,
    clause_need_id,
    option_need_id,
    proof_need_id,
    property_need_id,
    proposal_need_id,
)
from mbmssec.docgen.rst import esc, heading, list_table, need, status_role
from mbmssec.docgen.site import Site
from mbmssec.model.dsl import Action, ModelError
from mbmssec.model.properties import FAIRNESS, Property
from mbmssec.model.show import show_invariant, show_property
from mbmssec.model.vocabulary import VOCABULARY
from mbmssec.proofs.lemmas import LEMMAS
from mbmssec.proofs.results import Results, VerdictResult

# -- actions -------------------------------------------------------------------------------


def write_actions_page(site: Site) -> None:
    """``model/actions``: every action of the model."""
    out = [STATUS_ROLES, heading("Model actions", "=")]
    out.append(
        "Every action of the model (``model/actions.py``), with the clauses it "
        "encodes, the options it reads and its source. Each action is one guarded "
        "update, read both on Python values (exploration, traces) and by Z3 "
        "(proofs).\n\n"
    )
    for act in site.inp.actions:
        out.append(_action_section(site, act))
    site.write("model/actions.rst", "".join(out))


def _action_section(site: Site, act: Action) -> str:
    inp = site.inp
    reads = [o for o in inp.spec.options if reads_option(act, o)]
    out = [heading(act.name, "-")]
    out.append(
        need(
            "action",
            act.name,
            action_need_id(act.name),
            fields={"actor": act.actor, "modifies": ", ".join(sorted(act.modifies))},
            links={
                "encodes": [clause_need_id(c) for c in act.clauses if c in inp.spec.clauses],
                "reads": [option_need_id(o) for o in reads],
            },
            content=inspect.cleandoc(act.doc),
        )
    )
    if inp.results is not None:
        out.append(_witness_sentence(inp.results.baseline.witnesses.get(act.name)))
    if not act.applies(inp.spec.baseline()):
        out.append("This action does not exist under the baseline profile.\n\n")
    absent = [p.name for p in inp.proposals if not act.applies(p.profile)]
    if absent:
        out.append(
            "Absent under the proposals "
            + ", ".join(f":need:`{proposal_need_id(p)}`" for p in absent)
            + ".\n\n"
        )
    out.append(action_source(act, collapsed=False))
    return "".join(out)


def _witness_sentence(n: int | None) -> str:
    if n is None:
        return (
            "**No vacuity witness in the baseline**: the action was never enabled "
            "within the search depth.\n\n"
        )
    return (
        f"Vacuity witness in the baseline: {n} step{'s' if n != 1 else ''} (the "
        "action is enabled in a reachable state).\n\n"
    )


# -- properties ----------------------------------------------------------------------------


def _kind_text(prop: Property) -> str:
    return {
        "invariant": "an invariant: a state formula that must hold in every reachable state",
        "step": "a step property: it relates the pre- and post-state of every transition",
        "response": (
            "a bounded response property: from every reachable state satisfying "
            f"its premise, a plan of {prop.bound} steps is enabled and reaches "
            "its goal"
        ),
        "liveness": (
            "a liveness property: on every fair run, whenever its premise holds its "
            "goal holds later. It is proved for every population size by the proof "
            "rule O0-O5 (obligations listed below, each a Z3 query from the inductive "
            "invariant), or refuted by a fair lasso: a prefix and a loop that repeats "
            "forever, checked for every number of turns and replayed on the executable "
            "model. Fairness assumed: "
            + "; ".join(f"{name} {kind}ly fair" for name, kind in FAIRNESS)
            + " (nothing else: the operator, the radio, the attacker and the BM-SC's "
            "key schedule may stop)"
        ),
    }.get(prop.kind, prop.kind)


def write_property_page(site: Site, prop: Property) -> None:
    """``properties/pN``: one property, its baseline verdict and its verdict under each
    proposal."""
    inp = site.inp
    v = inp.verdict(prop.number)
    clauses = [c for c in prop.clauses if c in inp.spec.clauses]
    out = [STATUS_ROLES, heading(f"Property {prop.number}: {prop.title}", "=")]
    out.append(
        need(
            "mproperty",
            f"P{prop.number} {prop.title}",
            property_need_id(prop.number),
            status=v.verdict if v else "no result",
            fields={"number": prop.number, "kind": prop.kind, "bound": prop.bound},
            links={"supports": [clause_need_id(c) for c in clauses]},
            content=esc(prop.doc),
        )
    )
    out.append(
        f"P{prop.number} is {_kind_text(prop)}. Clauses it supports: "
        + ", ".join(f":need:`{clause_need_id(c)}`" for c in clauses)
        + ".\n\n"
    )
    if prop.plan:
        out.append("Plan: " + " then ".join(f"``{name}``" for name, _ in prop.plan) + ".\n\n")
    out.append(heading("Formal statement", "-"))
    out.append(
        "As the model states it, in the language of proposals (``x'`` is ``x`` after the "
        "step; ``mbmssec model show`` prints the actions the same way; the words are on "
        "the :doc:`glossary </glossary>` page and the state names on the "
        ":doc:`actions page <../model/actions>`):\n\n"
    )
    out.append(_formal(lambda: show_property(prop, VOCABULARY)))
    out.append(heading("Verdict in the baseline", "-"))
    if inp.results is None or v is None:
        out.append(
            f"**No proof result** for this property in the results (``{inp.results_path}``).\n\n"
        )
    else:
        out.append(_baseline_verdict(site, prop, v, inp.results))
    out.append(heading("Under each proposal", "-"))
    out.append(_proposal_verdicts(site, prop))
    site.write(f"properties/p{prop.number}.rst", "".join(out))


def _baseline_verdict(site: Site, prop: Property, v: VerdictResult, res: Results) -> str:
    b = res.baseline
    out = [
        need(
            "proof",
            f"P{prop.number} under the baseline: {v.verdict}",
            proof_need_id(None, prop.number),
            status=v.verdict,
            fields={
                "profile": "baseline",
                "verdict": v.verdict,
                "how": v.how,
                "solver_seconds": f"{v.query_seconds:.3f}",
                "lemmas": ", ".join(v.lemmas),
                "bound": v.bound,
                "universe": fmt_universe(b.universe) if v.verdict == "refuted" else None,
            },
            links={"proves": [property_need_id(prop.number)]},
        ),
        f"Verdict: {status_role(v.verdict)} — {how_cell(v, b)}. "
        f"Solver time of its induction queries: {solver_cell(v)}; the "
        f"whole baseline check took {b.seconds:.1f} s (induction "
        f"{b.induction_seconds:.1f} s, bounded search {b.bmc_seconds:.1f} s).\n\n",
    ]
    if v.lemmas:
        out.append(
            "Lemmas the proof used (each itself proved inductive): "
            + ", ".join(f":ref:`{lm} <{lemma_label(lm)}>`" for lm in v.lemmas)
            + ".\n\n"
        )
    if v.verdict == "refuted":
        out.append(trace_need(None, v, b))
        out.append(site.charts.block(1, None, v, b))
    return "".join(out)


def _proposal_verdicts(site: Site, prop: Property) -> str:
    """The table of the property's verdict under each proposal, then the charts of the
    proposals that break it."""
    rows = []
    blocks = []
    for p in site.inp.proposals:
        pv = site.inp.verdict(prop.number, p.name)
        pr = site.inp.proposal_result(p.name)
        change = "" if pr is None else change_of(pr, prop.number)
        rows.append(
            [
                f":need:`{p.name} <{proposal_need_id(p.name)}>`",
                status_role("not checked") if pr is None else verdict_cell(pv),
                status_role(change) if change else "",
                esc(pv.how) if pv else "",
            ]
        )
        if pr is not None and pv is not None and change == "breaks":
            blocks.append(site.charts.block(1, p.name, pv, pr.report))
    table = list_table(["proposal", "verdict", "change", "how"], rows, widths=[30, 12, 14, 44])
    return table + "".join(blocks)


def write_properties_index(site: Site) -> None:
    """``properties/index``: every property and its baseline verdict."""
    rows = []
    for prop in site.inp.properties:
        v = site.inp.verdict(prop.number)
        rows.append(
            [
                f":doc:`P{prop.number} <p{prop.number}>`",
                esc(prop.title),
                prop.kind,
                verdict_cell(v),
                solver_cell(v),
            ]
        )
    out = [
        STATUS_ROLES,
        heading("Properties", "="),
        "The key-lifecycle properties of the model (``model/properties.py``) and "
        "their verdicts in the baseline.  The auxiliary invariants their proofs use are "
        "on the :doc:`lemmas page <lemmas>`.\n\n",
        list_table(["property", "title", "kind", "baseline", "solver time"], rows),
        ".. toctree::\n   :hidden:\n\n",
    ]
    out += [f"   p{p.number}\n" for p in site.inp.properties]
    out.append("   lemmas\n")
    site.write("properties/index.rst", "".join(out) + "\n")


def _formal(render: Callable[[], list[str]]) -> str:
    """A formal statement as a literal block, or why it cannot be shown."""
    try:
        return code_block(render())
    except ModelError as exc:
        return f"(No formal statement: {esc(str(exc))}.)\n\n"


def code_block(lines: list[str]) -> str:
    """Lines of text as a literal block."""
    return ".. code-block:: text\n\n" + "".join(f"   {x}\n" for x in lines) + "\n"


def lemma_label(name: str) -> str:
    """The reference label of a lemma's section on the lemmas page."""
    return "lemma-" + name.replace("_", "-")


def write_lemmas_page(site: Site) -> None:
    """``properties/lemmas``: every candidate lemma, what it states, whether the
    baseline's inductive invariant kept it, and which proofs used it."""
    res = site.inp.results
    users: dict[str, list[int]] = {}
    if res is not None:
        for n, v in sorted(res.baseline.verdicts.items()):
            for lm in v.lemmas:
                users.setdefault(lm, []).append(n)
    out = [
        heading("Lemmas", "="),
        "A property is rarely inductive on its own: an action may break it from a state "
        "that is not reachable.  The lemmas below are auxiliary invariants "
        "(``proofs/lemmas.py``) that rule such states out.  The checker proves the "
        "properties and the lemmas together, as one inductive invariant, dropping any "
        "candidate that is not inductive (with the reason) until the rest is; a lemma "
        "is therefore never assumed, only used once proved.  Each lemma below is stated "
        "in words, with its status in the baseline and the properties whose proof used "
        "it (the lemmas named by the unsat cores of its induction queries, and those "
        "named by theirs, in turn).\n\n",
    ]
    for lem in LEMMAS:
        out.append(f".. _{lemma_label(lem.name)}:\n\n")
        out.append(heading(lem.name, "-"))
        out.append(esc(lem.doc) + "\n\n")
        out.append(_formal(partial(show_invariant, lem.body, site.inp.spec.baseline(), VOCABULARY)))
        applies = lem.when(site.inp.spec.baseline())
        if res is None:
            status = "no results"
        elif not applies:
            status = "not a candidate in the baseline (it applies only under some options)"
        elif lem.name in res.baseline.invariant:
            status = "part of the baseline's inductive invariant"
        elif lem.name in res.baseline.dropped:
            status = "dropped in the baseline: " + esc(res.baseline.dropped[lem.name])
        else:
            status = "not in the baseline's results"
        used = users.get(lem.name, [])
        out.append(
            f"Baseline: {status}.  Used by the proof of: "
            + (", ".join(f":doc:`P{n} <p{n}>`" for n in used) if used else "no property")
            + ".\n\n"
        )
    site.write("properties/lemmas.rst", "".join(out))


def write_model_pages(site: Site) -> None:
    """Every page of the model: actions, each property, the index of properties, the
    lemmas."""
    write_actions_page(site)
    for prop in site.inp.properties:
        write_property_page(site, prop)
    write_properties_index(site)
    write_lemmas_page(site)

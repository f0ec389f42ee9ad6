"""The page of the proof results: where they come from, how the baseline was checked,
the vacuity witnesses, the inductive invariant, and every profile's verdicts."""

from __future__ import annotations

from mbmssec.docgen.fragments import STATUS_ROLES, fmt_universe, verdict_cell
from mbmssec.docgen.inputs import Inputs
from mbmssec.docgen.needs import action_need_id
from mbmssec.docgen.paths import GENERATED
from mbmssec.docgen.rst import esc, heading, list_table, status_role
from mbmssec.docgen.site import Site
from mbmssec.proofs.results import ProfileResult, Results


def verdict_matrix(inp: Inputs) -> str:
    """A table of every property's verdict (columns) under every profile (rows)."""
    header = ["profile", *[f"P{p.number}" for p in inp.properties]]
    rows = [["baseline", *[verdict_cell(inp.verdict(p.number)) for p in inp.properties]]]
    for p in inp.proposals:
        link = f":doc:`{p.name} </{GENERATED}/proposals/{p.name}>`"
        if inp.proposal_result(p.name) is None:
            rows.append([link, *[status_role("not checked") for _ in inp.properties]])
        else:
            rows.append(
                [link, *[verdict_cell(inp.verdict(q.number, p.name)) for q in inp.properties]]
            )
    return list_table(header, rows, css="mbmssec-matrix")


def _provenance(inp: Inputs, res: Results) -> str:
    fresh = res.model_hash == inp.current_hash
    state = (
        "matches the sources"
        if fresh
        else f"**stale**: the sources hash to ``{inp.current_hash[:16]}``"
    )
    b = res.baseline
    return (
        f"From ``{inp.results_path}``, model hash ``{res.model_hash[:16]}`` ({state}).\n\n"
        f"The baseline check took {b.seconds:.1f} s: the inductive proofs "
        f"{b.induction_seconds:.1f} s, bounded model checking {b.bmc_seconds:.1f} s to "
        f"depth {b.depth} over {fmt_universe(b.universe)}. A *proved* property is an "
        "inductive invariant (with lemmas), so it holds for every population size; a "
        "*refuted* one has a shortest counterexample within that universe and depth, "
        "replayed on the executable model.\n\n"
    )


def _witnesses(inp: Inputs, b: ProfileResult) -> str:
    actions = {a.name for a in inp.actions}
    rows = [
        [
            f":need:`{action_need_id(a)}`" if a in actions else f"``{a}``",
            str(n) if n is not None else "**none**",
        ]
        for a, n in b.witnesses.items()
    ]
    return (
        heading("Vacuity witnesses", "-")
        + "Each action is enabled in some reachable state (witness length in "
        "steps); without that a proof could hold vacuously.\n\n"
        + list_table(["action", "witness"], rows, widths=[60, 40])
    )


def _invariant(b: ProfileResult) -> str:
    out = [
        heading("Inductive invariant", "-"),
        "Conjuncts that survived the fixpoint (properties and lemmas): "
        + ", ".join(f"``{x}``" for x in b.invariant)
        + ".\n\n",
    ]
    if b.dropped:
        out.append(
            "Dropped (not inductive): "
            + "; ".join(f"``{k}`` ({esc(v)})" for k, v in b.dropped.items())
            + ".\n\n"
        )
    return "".join(out)


def write_proofs_page(site: Site) -> None:
    """``proofs``: the proof results and how they were obtained."""
    inp = site.inp
    res = inp.results
    out = [STATUS_ROLES, heading("Proof results", "=")]
    if res is None:
        out.append("**No results**: run ``mbmssec check --all --out DIR``.\n\n")
    else:
        out.append(_provenance(inp, res))
        out.append(_witnesses(inp, res.baseline))
        out.append(_invariant(res.baseline))
        out.append(heading("Verdicts of every profile", "-"))
        out.append(verdict_matrix(inp))
    site.write("proofs.rst", "".join(out))

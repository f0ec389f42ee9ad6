"""The pages that tie the text to the code: the implementation elements and tests with
their links (and the replay tests of counterexamples), and the traceability matrix."""

from __future__ import annotations

from mbmssec.docgen.charts import chart_stem
from mbmssec.docgen.fragments import STATUS_ROLES, outcome
from mbmssec.docgen.inputs import Inputs, clause_status, profile_title
from mbmssec.docgen.links import CodeElement
from mbmssec.docgen.needs import (
    action_need_id,
    clause_need_id,
    impl_need_id,
    option_need_id,
    property_need_id,
    replay_test_need_id,
    slug,
    trace_need_id,
)
from mbmssec.docgen.page_proofs import verdict_matrix
from mbmssec.docgen.rst import esc, heading, list_table, need, status_role
from mbmssec.docgen.site import Site
from mbmssec.proofs.results import ProfileResult, Results

# -- implementation and tests --------------------------------------------------------------


def _impl_object(e: CodeElement) -> str:
    return need(
        "impl",
        e.name.removeprefix("mbmssec."),
        e.need_id,
        fields={"source": f"{e.file}:{e.line}"},
        links={"implements": [clause_need_id(c) for c in e.clauses]},
        content=esc(e.doc),
    )


def _test_object(inp: Inputs, e: CodeElement) -> str:
    targets = (
        [clause_need_id(c) for c in e.clauses]
        + [impl_need_id(t) for t in e.impl]
        + [property_need_id(n) for n in e.properties]
    )
    return need(
        "test",
        e.name,
        e.need_id,
        status=outcome(inp, e),
        fields={"source": f"{e.file}:{e.line}"},
        links={"verifies": targets},
        content=esc(e.doc),
    )


def _replay_tests(inp: Inputs, res: Results) -> str:
    """A test object for each counterexample's pytest replay file."""
    out = [
        heading("Counterexample regression tests", "-"),
        "``mbmssec check --out`` writes each counterexample as a pytest file "
        "that replays it on the executable model and asserts the violation.\n\n",
    ]
    shipped = {p.name for p in inp.proposals}
    entries: list[tuple[str | None, ProfileResult]] = [(None, res.baseline)]
    entries += [(name, pr.report) for name, pr in res.proposals.items() if name in shipped]
    for proposal, report in entries:
        for v in report.verdicts.values():
            if v.trace is None:
                continue
            fname = f"test_{slug(chart_stem(proposal, v.number))}.py"
            written = fname in res.files
            out.append(
                need(
                    "test",
                    fname,
                    replay_test_need_id(proposal, v.number),
                    fields={"source": f"{inp.results_dir.name}/{fname}" if written else None},
                    links={"verifies": [trace_need_id(proposal, v.number)]},
                    content=f"Replays the counterexample to P{v.number} under "
                    f"{esc(profile_title(proposal))}.",
                )
            )
    return "".join(out)


def write_implementation_page(site: Site) -> None:
    """``implementation``: every implementation element and test linked to a clause."""
    inp = site.inp
    out = [STATUS_ROLES, heading("Implementation and tests", "=")]
    out.append(
        "Implementation elements and tests, by the clauses they serve. The links come "
        "from ``docs/traceability.toml`` and from clause identifiers written in "
        "docstrings (an ``impl/`` definition or a ``tests/`` test function whose "
        "docstring names, for example, ``6.2.3.3/UNKNOWN-MKI`` is linked to that "
        "clause).\n\n"
    )
    out.append(
        "Test outcomes are those of the JUnit report the build was given.\n\n"
        if inp.outcomes is not None
        else "No JUnit report was given (``mbmssec docs --junit FILE``), so no test "
        "outcomes are shown.\n\n"
    )
    out.append(heading("Implementation", "-"))
    out += [_impl_object(e) for e in inp.elements if e.kind == "impl"]
    out.append(heading("Tests", "-"))
    out += [_test_object(inp, e) for e in inp.elements if e.kind == "test"]
    if inp.results is not None:
        out.append(_replay_tests(inp, inp.results))
    site.write("implementation.rst", "".join(out))


# -- traceability --------------------------------------------------------------------------


def _short_name(e: CodeElement) -> str:
    """``Class.method`` or ``test_function``: the last part(s) of an element's name."""
    if e.kind == "test":
        return e.name.rpartition("::")[2]
    return ".".join(e.name.split(".")[-2:])


def _matrix_rows(inp: Inputs) -> list[list[str]]:
    rows = []
    for c in inp.spec.clauses.values():
        opts = [o.name for o in inp.spec.options.values() if c.id in o.clauses]
        rows.append(
            [
                f":need:`{clause_need_id(c.id)}`",
                status_role(clause_status(inp, c)[0]),
                ", ".join(f":need:`{action_need_id(a.name)}`" for a in inp.tagged_by_actions(c.id)),
                ", ".join(
                    f":need:`P{p.number} <{property_need_id(p.number)}>`"
                    for p in inp.tagged_by_properties(c.id)
                ),
                ", ".join(f":need:`{option_need_id(o)}`" for o in opts),
                ", ".join(
                    f":need:`{_short_name(e)} <{e.need_id}>`"
                    for e in inp.elements_for(c.id, "impl")
                ),
                ", ".join(
                    f":need:`{_short_name(e)} <{e.need_id}>`"
                    for e in inp.elements_for(c.id, "test")
                ),
            ]
        )
    return rows


_CLAUSE_TABLE = (
    ".. needtable::\n   :types: clause\n   :style: table\n"
    "   :sort: clause_id\n"
    '   :columns: id;status;encodes_back as "actions";'
    'supports_back as "properties";captures_back as "option";'
    'implements_back as "implementation";verifies_back as "tests"\n\n'
)
_PROPERTY_TABLE = (
    ".. needtable::\n   :types: mproperty\n   :style: table\n"
    '   :columns: id;title;status;supports as "clauses";'
    'proves_back as "proof results";verifies_back as "tests"\n\n'
)
_TRACE_TABLE = (
    ".. needtable::\n   :types: trace\n   :style: table\n"
    '   :columns: id;title;steps;refutes as "proof result";'
    'verifies_back as "replay test"\n\n'
)


def write_traceability_page(site: Site) -> None:
    """``traceability``: every clause with everything linked to it."""
    out = [STATUS_ROLES, heading("Traceability matrix", "=")]
    out.append(
        "Every clause with the model actions that encode it, the properties that "
        "support it, the open choice it belongs to, and the implementation and "
        "tests linked to it (incoming links of the clause objects).\n\n"
    )
    out.append(
        list_table(
            ["clause", "status", "actions", "properties", "option", "implementation", "tests"],
            _matrix_rows(site.inp),
            css="mbmssec-trace",
            widths=[13, 11, 14, 7, 12, 20, 23],
        )
    )
    out.append("The same links as sphinx-needs objects (the incoming links of each clause):\n\n")
    out.append(_CLAUSE_TABLE)
    out.append(heading("Properties", "-"))
    out.append(_PROPERTY_TABLE)
    out.append(heading("Verdicts by profile", "-"))
    out.append(verdict_matrix(site.inp))
    out.append(heading("Counterexamples", "-"))
    out.append(_TRACE_TABLE)
    site.write("traceability.rst", "".join(out))

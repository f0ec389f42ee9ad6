"""Pieces of reStructuredText that several pages share: the status roles, verdict and
solver-time cells, an action's source, test references with their outcomes."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path

from mbmssec.docgen.inputs import STATUSES, Inputs
from mbmssec.docgen.links import CodeElement, first_paragraph
from mbmssec.docgen.paths import rel
from mbmssec.docgen.rst import esc, indent, raw_details, role_declarations, status_role
from mbmssec.model.concrete import Universe
from mbmssec.model.dsl import Action
from mbmssec.proofs.results import ProfileResult, VerdictResult

STATUS_ROLES = role_declarations(
    (
        *STATUSES,
        # a property's verdict (a clause's status names the properties it supports)
        "proved",
        "refuted",
        "unknown",
        "no result",
        "not checked",
        "breaks",
        "fixes",
        "breaks and fixes",
        "no change",
        "modelled",
        "neutral",
        "no longer proved",
        "passed",
        "failed",
        "skipped",
        "not run",
    )
)
"""The role declarations every page that shows a status starts with."""


def doc_inline(doc: str) -> str:
    """The first paragraph of a model docstring (reStructuredText already), on one line."""
    return first_paragraph(doc)


def fmt_universe(u: Universe) -> str:
    """A bounded-search universe in words: ``2 UEs, 1 service, 2 TEKs, 1 packet``."""

    def n(count: int, word: str) -> str:
        return f"{count} {word}{'' if count == 1 else 's'}"

    return f"{n(u.ue, 'UE')}, {n(u.svc, 'service')}, {n(u.tek, 'TEK')}, {n(u.pkt, 'packet')}"


def verdict_cell(v: VerdictResult | None) -> str:
    """A verdict as a table cell (``no result`` when there is none)."""
    return status_role("no result" if v is None else v.verdict)


def solver_cell(v: VerdictResult | None) -> str:
    """The solver time of a verdict's induction queries."""
    if v is None:
        return ""
    return f"{v.query_seconds:.3f} s ({len(v.queries)} queries)"


def how_cell(v: VerdictResult | None, profile: ProfileResult | None) -> str:
    """How a verdict was reached, with the search bounds of a refutation."""
    if v is None:
        return "no result in results.json"
    text = esc(v.how)
    if v.verdict == "refuted" and profile is not None:
        text += (
            f"; bounded model checking over {fmt_universe(profile.universe)}, "
            f"depth ≤ {profile.depth}"
        )
    if v.bound is not None:
        text += f"; bounded: the plan allows {v.bound} steps"
    return text


def action_source(act: Action, collapsed: bool) -> str:
    """The source of an action's body as a code block (collapsed: in a details block)."""
    try:
        lines, start = inspect.getsourcelines(act.body)
        file = rel(Path(inspect.getsourcefile(act.body) or ""))
    except (OSError, TypeError):
        return "*(source not available)*\n\n"
    code = (
        f".. code-block:: python\n   :lineno-start: {start}\n"
        f"   :caption: {file}, line {start}\n\n" + indent("".join(lines)) + "\n\n"
    )
    if collapsed:
        return raw_details(f"Source of {act.name} ({file}, line {start})", code)
    return code


def reads_option(act: Action, option: str) -> bool:
    """Does the action's body read the option from the profile?"""
    try:
        return f'prof["{option}"]' in inspect.getsource(act.body)
    except (OSError, TypeError):
        return False


def outcome(inp: Inputs, e: CodeElement) -> str | None:
    """A test's outcome in the JUnit report (``None`` without a report)."""
    if inp.outcomes is None:
        return None
    return inp.outcomes.get(e.name, "not run")


def linked_tests(inp: Inputs, tests: Sequence[CodeElement]) -> str:
    """References to tests, each with its outcome when a JUnit report was given."""
    return ", ".join(
        f":need:`{e.need_id}`" + (f" ({status_role(o)})" if (o := outcome(inp, e)) else "")
        for e in tests
    )

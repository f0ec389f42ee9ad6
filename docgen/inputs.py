"""Everything the pages are generated from, read and cross-checked once per build.

:func:`collect` reads the spec, the model's actions and properties, the shipped
proposals, the traceability links and the checker's results, and records a
:class:`Problem` for every inconsistency between them (a clause tag naming no clause,
results computed for another model, a proposal with a property missing).  The status of
each clause, as every page shows it, is decided here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mbmssec.docgen.links import CodeElement, load_junit, load_links
from mbmssec.docgen.needs import option_need_id
from mbmssec.docgen.paths import DOCS_DIR, LINKS_FILE
from mbmssec.docgen.problems import DocsError, Problem
from mbmssec.docgen.rst import esc
from mbmssec.model.dsl import Action
from mbmssec.model.properties import Property
from mbmssec.proofs.results import (
    RESULTS_FILE,
    ProposalResult,
    Results,
    ResultsError,
    VerdictResult,
    load_results,
)
from mbmssec.spec.loader import Clause, Spec, SpecError, load_spec

if TYPE_CHECKING:
    from mbmssec.proofs.check import Proposal

STATUSES = (
    "properties proved",
    "supports a refuted property",
    "property not proved",
    "tested only",
    "FFS",
    "not modelled",
)
"""The status of a clause, as the clause pages and the matrix show it.  Each says what
it is about: a clause is not itself proved or refuted; the properties it supports are."""


@dataclass
class Inputs:
    """Everything the pages are generated from, and the problems found so far."""

    spec: Spec
    actions: tuple[Action, ...]
    properties: tuple[Property, ...]
    proposals: list[Proposal]
    results: Results | None
    results_dir: Path
    current_hash: str
    elements: list[CodeElement]
    problems: list[Problem] = field(default_factory=list)
    outcomes: dict[str, str] | None = None
    """Test outcomes by test name, when a JUnit report is given."""

    @property
    def results_path(self) -> Path:
        """The results document the pages are built from."""
        return self.results_dir / RESULTS_FILE

    def tagged_by_actions(self, cid: str) -> list[Action]:
        """The model actions that encode a clause."""
        return [a for a in self.actions if cid in a.clauses]

    def tagged_by_properties(self, cid: str) -> list[Property]:
        """The properties that support a clause."""
        return [p for p in self.properties if cid in p.clauses]

    def elements_for(self, cid: str, kind: str) -> list[CodeElement]:
        """The implementation elements (``impl``) or tests (``test``) linked to a clause."""
        return [e for e in self.elements if e.kind == kind and cid in e.clauses]

    def proposal_result(self, name: str) -> ProposalResult | None:
        """A shipped proposal's results, if the results have them."""
        return None if self.results is None else self.results.proposals.get(name)

    def verdict(self, number: int, proposal: str | None = None) -> VerdictResult | None:
        """A property's verdict under the baseline (``None``) or a proposal."""
        if self.results is None:
            return None
        if proposal is None:
            return self.results.baseline.verdicts.get(number)
        pr = self.results.proposals.get(proposal)
        return pr.report.verdicts.get(number) if pr else None


def collect(
    results_dir: Path,
    *,
    actions: Sequence[Action] | None = None,
    properties: Sequence[Property] | None = None,
    spec: Spec | None = None,
    links_file: Path | None = None,
    junit: Path | None = None,
) -> Inputs:
    """Read spec, model, proposals, links and results (the model's actions and
    properties are read from their modules at call time unless given)."""
    from mbmssec.model import actions as actions_module
    from mbmssec.model import properties as properties_module
    from mbmssec.proofs.check import model_hash, shipped_proposals

    spec = spec or load_spec()
    acts = tuple(actions if actions is not None else actions_module.ACTIONS)
    props = tuple(properties if properties is not None else properties_module.PROPERTIES)
    elements, problems = load_links(
        links_file or DOCS_DIR / LINKS_FILE, spec, {p.number for p in props}
    )
    try:
        proposals = shipped_proposals(spec)
    except SpecError as exc:
        raise DocsError(str(exc)) from None
    digest = model_hash()
    results = _read_results(results_dir, digest, problems)
    inputs = Inputs(
        spec=spec,
        actions=acts,
        properties=props,
        proposals=proposals,
        results=results,
        results_dir=results_dir,
        current_hash=digest,
        elements=elements,
        problems=problems,
        outcomes=load_junit(junit) if junit is not None else None,
    )
    _check_model(inputs)
    _check_results(inputs)
    return inputs


def _read_results(results_dir: Path, digest: str, problems: list[Problem]) -> Results | None:
    """The results document, or ``None`` (with a problem) if it cannot be read; results
    of another model hash are read but are a problem."""
    path = results_dir / RESULTS_FILE
    try:
        results = load_results(path)
    except ResultsError as exc:
        problems.append(Problem(f"no proof results: {exc}", str(path)))
        return None
    if results.model_hash != digest:
        problems.append(
            Problem(
                f"{path}: stale proof results: computed for model hash "
                f"{results.model_hash[:16]}, but model/, spec/ or proofs/ now hash to "
                f"{digest[:16]}; re-run `mbmssec check --all --out {results_dir}` "
                "(or `mbmssec docs`)",
                str(path),
            )
        )
    return results


def _check_model(inp: Inputs) -> None:
    """Clause tags that name no clause (the coverage of clauses is checked by sphinx-needs
    on the generated objects, see :mod:`mbmssec.docgen.needs`)."""
    for act in inp.actions:
        for cid in act.clauses:
            if cid not in inp.spec.clauses:
                inp.problems.append(
                    Problem(
                        f"model action {act.name} is tagged with unknown "
                        f"clause {cid!r} (broken link)"
                    )
                )
    for prop in inp.properties:
        for cid in prop.clauses:
            if cid not in inp.spec.clauses:
                inp.problems.append(
                    Problem(
                        f"property {prop.number} is tagged with unknown "
                        f"clause {cid!r} (broken link)"
                    )
                )


def _check_results(inp: Inputs) -> None:
    """Every checked proposal has a verdict for every property (the baseline's are checked
    on the generated objects); results name only known proposals and properties."""
    res = inp.results
    if res is None:
        return
    path = inp.results_path
    numbers = {p.number for p in inp.properties}
    for extra in sorted(set(res.baseline.verdicts) - numbers):
        inp.problems.append(
            Problem(
                f"{path}: baseline: result for property {extra}, "
                "which the model does not have (stale results)"
            )
        )
    shipped = {p.name for p in inp.proposals}
    for name, pr in res.proposals.items():
        if name not in shipped:
            inp.problems.append(
                Problem(
                    f"{path}: proposal {name!r} is not a shipped "
                    "proposal (spec/proposals); the docs cannot show it"
                )
            )
        inp.problems.extend(_proposal_gaps(path, pr, numbers))


def _proposal_gaps(path: Path, pr: ProposalResult, numbers: set[int]) -> list[Problem]:
    """Properties a proposal's results lack, and refutations without a trace."""
    out = [
        Problem(f"{path}: proposal {pr.name}: property {n} has no proof result")
        for n in sorted(numbers - set(pr.report.verdicts))
    ]
    out += [
        Problem(
            f"{path}: proposal {pr.name}: property {v.number} is refuted but has no "
            "counterexample trace"
        )
        for v in pr.report.verdicts.values()
        if v.verdict == "refuted" and v.trace is None
    ]
    return out


# -- what the pages say about clauses, properties and proposals ----------------------------


def clause_status(inp: Inputs, clause: Clause) -> tuple[str, str]:
    """The clause's status (one of :data:`STATUSES`) and a sentence saying why (in
    reStructuredText)."""
    if not clause.modelled or clause.kind == "out-of-scope":
        return "not modelled", esc(clause.why or "Out of the scope of the model.")
    if clause.kind == "ffs":
        opt = clause.option or ""
        return "FFS", (
            f"An open point of the text, captured by the option "
            f":need:`{option_need_id(opt)}`; the baseline takes "
            f"``{inp.spec.options[opt].baseline}``."
        )
    props = inp.tagged_by_properties(clause.id)
    if props:
        return _status_from_verdicts({p.number: inp.verdict(p.number) for p in props})
    if inp.tagged_by_actions(clause.id) or inp.elements_for(clause.id, "test"):
        return "tested only", (
            "Encoded by model actions and exercised by exploration and "
            "tests, but no property states it."
        )
    return "not modelled", "No model action or property is tagged with it."


def _status_from_verdicts(verdicts: dict[int, VerdictResult | None]) -> tuple[str, str]:
    """The status of a clause that properties support, from their baseline verdicts."""
    refuted = [n for n, v in verdicts.items() if v is not None and v.verdict == "refuted"]
    missing = [n for n, v in verdicts.items() if v is None]
    if refuted:
        return "supports a refuted property", (
            "Property "
            + ", ".join(f"P{n}" for n in refuted)
            + " that supports it is refuted in the baseline."
        )
    if missing:
        return "property not proved", "No proof result for " + ", ".join(
            f"P{n}" for n in missing
        ) + "."
    if all(v is not None and v.verdict == "proved" for v in verdicts.values()):
        return "properties proved", (
            "Every property that supports it ("
            + ", ".join(f"P{n}" for n in verdicts)
            + ") is proved."
        )
    return "property not proved", "Some supporting property is neither proved nor refuted."


def profile_title(proposal: str | None) -> str:
    """How the pages name a profile: ``baseline`` or ``proposal NAME``."""
    return "baseline" if proposal is None else f"proposal {proposal}"


def change_of(pr: ProposalResult, number: int) -> str:
    """What a proposal does to a property: breaks, fixes, no longer proved, no change."""
    if number in pr.broken:
        return "breaks"
    if number in pr.fixed:
        return "fixes"
    if number in pr.weakened:
        return "no longer proved"
    return "no change"


def proposal_status(inp: Inputs, name: str) -> str:
    """A proposal's status: not checked, breaks, fixes, breaks and fixes or no change."""
    pr = inp.proposal_result(name)
    if pr is None:
        return "not checked"
    bad = bool(pr.broken or pr.weakened)
    if bad and pr.fixed:
        return "breaks and fixes"
    return "breaks" if bad else "fixes" if pr.fixed else "no change"


def coverage_findings(inp: Inputs) -> list[str]:
    """The gaps the sphinx-needs rules (:data:`mbmssec.docgen.needs.COVERAGE_CHECKS`) fail
    the build on, as the generator sees them (listed on the problems page)."""
    out = []
    for c in inp.spec.clauses.values():
        if (
            c.kind == "normative"
            and c.modelled
            and not inp.tagged_by_actions(c.id)
            and not inp.tagged_by_properties(c.id)
        ):
            out.append(f"clause {c.id}: normative, but no model element")
    for prop in inp.properties:
        v = inp.verdict(prop.number)
        if v is None:
            out.append(f"property {prop.number}: no proof result for the baseline")
        elif v.verdict == "refuted" and v.trace is None:
            out.append(f"property {prop.number}: refuted, but no counterexample trace")
    return out

"""The sphinx-needs vocabulary of the generated pages: object types, fields and link
types (``docs/conf.py`` passes them to sphinx-needs), how each object's id is formed,
and the coverage rules sphinx-needs runs on the objects once they are all read."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sphinx.util.logging import SphinxLoggerAdapter
    from sphinx_needs.need_item import NeedItem

# -- configuration (used by docs/conf.py) --------------------------------------------------

NEEDS_TYPES: list[dict[str, str]] = [
    {"directive": "clause", "title": "Clause", "prefix": "CL_", "color": "#BFD8D2"},
    {"directive": "ffsoption", "title": "FFS option", "prefix": "OPT_", "color": "#FEDCD2"},
    {"directive": "action", "title": "Model action", "prefix": "ACT_", "color": "#DF744A"},
    {"directive": "mproperty", "title": "Property", "prefix": "PROP_", "color": "#DCB239"},
    {"directive": "proof", "title": "Proof result", "prefix": "PR_", "color": "#9fd8a0"},
    {"directive": "trace", "title": "Counterexample", "prefix": "CEX_", "color": "#f0a0a0"},
    {"directive": "impl", "title": "Implementation", "prefix": "IMPL_", "color": "#a0c0f0"},
    {"directive": "test", "title": "Test", "prefix": "TEST_", "color": "#d0d0d0"},
    {"directive": "proposal", "title": "Proposal", "prefix": "PROPOSAL_", "color": "#e0c0f0"},
]
"""The object types (``needs_types``)."""

_FIELD_DOCS = {
    "clause_id": "the clause identifier of spec/clauses.toml",
    "clause_number": "the clause number of TS 33.246 as proposed",
    "modelled": "yes, or no when the model deliberately leaves the clause out",
    "kind": "normative, informative, ffs or out-of-scope (clauses); the property kind",
    "summary": "one-line summary of the proposed wording",
    "values": "allowed values of an option",
    "baseline": "the value the text as written implies",
    "model": "how the model treats an option",
    "actor": "who performs a model action",
    "modifies": "state components an action writes",
    "number": "property number",
    "bound": "steps a bounded (response) property allows",
    "profile": "option profile a proof result is for",
    "verdict": "proved, refuted or unknown",
    "how": "how the verdict was reached",
    "solver_seconds": "Z3 time of the property's induction queries",
    "lemmas": "auxiliary invariants a proof used",
    "steps": "length of a counterexample",
    "universe": "bounded-search universe (UE, services, TEKs, packets)",
    "source": "file and line",
    "overrides": "option values a proposal changes",
}
NEEDS_FIELDS: dict[str, dict[str, Any]] = {
    name: {"description": doc, "nullable": True} for name, doc in _FIELD_DOCS.items()
}
"""The extra fields of the objects (``needs_fields``)."""

NEEDS_LINKS: dict[str, dict[str, str]] = {
    "encodes": {"outgoing": "encodes", "incoming": "encoded by"},
    "supports": {"outgoing": "supports", "incoming": "supported by"},
    "captures": {"outgoing": "open point of", "incoming": "open choice"},
    "reads": {"outgoing": "reads option", "incoming": "read by"},
    "proves": {"outgoing": "result for", "incoming": "proof results"},
    "result_of": {"outgoing": "under proposal", "incoming": "verdicts"},
    "refutes": {"outgoing": "counterexample to", "incoming": "counterexample"},
    "implements": {"outgoing": "implements", "incoming": "implemented by"},
    "verifies": {"outgoing": "verifies", "incoming": "tested by"},
    "touches": {"outgoing": "touches", "incoming": "proposals"},
    "sets": {"outgoing": "sets", "incoming": "proposals"},
}
"""The link types between objects (``needs_links``)."""

NEEDS_ID_REGEX = r"^[A-Z][A-Z0-9_]+$"
"""What every object id looks like (``needs_id_regex``)."""


# -- object ids ----------------------------------------------------------------------------


def upper_slug(text: str) -> str:
    """``text`` in capitals, every run of other characters one underscore (for ids)."""
    return re.sub(r"[^A-Z0-9]+", "_", text.upper()).strip("_")


def slug(text: str) -> str:
    """``text`` in lower case, every run of other characters one underscore (for files)."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def clause_need_id(cid: str) -> str:
    """The id of a clause statement's object."""
    return "CL_" + upper_slug(cid)


def option_need_id(name: str) -> str:
    """The id of an FFS option's object."""
    return "OPT_" + upper_slug(name)


def action_need_id(name: str) -> str:
    """The id of a model action's object (``CamelCase`` names become ``CAMEL_CASE``)."""
    return "ACT_" + upper_slug(re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name))


def property_need_id(number: int) -> str:
    """The id of a property's object."""
    return f"PROP_{number}"


def proposal_need_id(name: str) -> str:
    """The id of a shipped proposal's object."""
    return "PROPOSAL_" + upper_slug(name)


def profile_key(proposal: str | None) -> str:
    """``BASELINE`` or ``P_<NAME>``: the part of a proof-result id naming its profile."""
    return "BASELINE" if proposal is None else "P_" + upper_slug(proposal)


def proof_need_id(proposal: str | None, number: int) -> str:
    """The id of a property's proof result under the baseline (``None``) or a proposal."""
    return f"PR_{profile_key(proposal)}_{number}"


def trace_need_id(proposal: str | None, number: int) -> str:
    """The id of the counterexample to a property under the baseline or a proposal."""
    return f"CEX_{profile_key(proposal)}_{number}"


def impl_need_id(name: str) -> str:
    """The id of an implementation element (``mbmssec.impl.`` dotted name)."""
    return "IMPL_" + upper_slug(name.removeprefix("mbmssec.impl."))


def testcase_need_id(name: str) -> str:
    """The id of a test (``tests/file.py::name``)."""
    return "TEST_" + upper_slug(name.removeprefix("tests/").replace(".py::", "_"))


def replay_test_need_id(proposal: str | None, number: int) -> str:
    """The id of the pytest file that replays a counterexample."""
    return f"TEST_CEX_{profile_key(proposal)}_{number}"


# -- coverage rules run by sphinx-needs on the generated objects ---------------------------


def _coverage_warning(log: SphinxLoggerAdapter, need_item: NeedItem, message: str) -> None:
    log.warning(
        message,
        type="mbmssec",
        subtype="coverage",
        location=(need_item["docname"], need_item["lineno"]),
    )


def check_clause_covered(need_item: NeedItem, log: SphinxLoggerAdapter) -> bool:
    """A normative, modelled clause must be encoded by an action or supported by a
    property."""
    if need_item["type"] != "clause" or need_item["kind"] != "normative":
        return False
    if need_item["modelled"] == "no":
        return False
    if need_item["encodes_back"] or need_item["supports_back"]:
        return False
    _coverage_warning(
        log,
        need_item,
        f"clause {need_item['clause_id']}: normative, but no model element "
        "(no action in model/actions.py or property in model/properties.py is "
        "tagged with it; tag one, or set modelled = false with a why in "
        "spec/clauses.toml)",
    )
    return True


def check_property_proved(need_item: NeedItem, log: SphinxLoggerAdapter) -> bool:
    """Every property needs a proof result for the baseline."""
    if need_item["type"] != "mproperty":
        return False
    if any(str(x).startswith(f"PR_{profile_key(None)}_") for x in need_item["proves_back"]):
        return False
    _coverage_warning(
        log,
        need_item,
        f"property {need_item['number']} ({need_item['title']}): no proof result "
        "for the baseline in the results (run `mbmssec check --all --out DIR`)",
    )
    return True


def check_refutation_traced(need_item: NeedItem, log: SphinxLoggerAdapter) -> bool:
    """A refuted proof result needs its counterexample trace."""
    if need_item["type"] != "proof" or need_item["status"] != "refuted":
        return False
    if need_item["refutes_back"]:
        return False
    _coverage_warning(
        log,
        need_item,
        f"proof result {need_item['id']} ({need_item['title']}): refuted, but the "
        "results carry no counterexample trace",
    )
    return True


COVERAGE_CHECKS: dict[str, Callable[[Any, Any], bool]] = {
    "normative clause with no model element": check_clause_covered,
    "property with no proof result": check_property_proved,
    "refuted property with no counterexample trace": check_refutation_traced,
}
"""The rules a strict build fails on, by the name sphinx-needs reports them under."""

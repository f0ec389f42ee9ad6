"""The results document: what ``mbmssec check`` proved and refuted, as stored on disk.

``mbmssec check --out DIR`` writes one ``results.json`` per run (``--json`` prints the same
document); the documentation is generated from it.  This module is the only definition of
that document: frozen dataclasses for each part, :meth:`Results.to_json` to write it and
:meth:`Results.from_json` / :func:`load_results` to read it back.  Reading validates every
field; a :class:`ResultsError` names the file and the field path
(``results.json: baseline.properties[2].verdict: expected str``).

The document carries its format version (``"format": FORMAT_VERSION``).  A document of
another version, or one without a version, is refused as a whole: its fields may mean
something else, and the remedy is the same as for stale results, running the checker again.

Layout (every key is always written; ``null`` only where a field says "or null")::

    {"format": 3, "model_hash": str, "files": [str],
     "baseline": PROFILE,
     "proposals": [{"proposal": {"name", "path", "title", "rationale": str,
                                 "clauses": [str], "options": {str: str},
                                 "replace": {str: str},
                                 "expect": {"broken", "fixed", "weakened": [int]},
                                 "behaviour": {"state", "change", "action",
                                               "property": [TABLE]}},
                    "broken", "weakened", "fixed", "unchanged", "added": [int],
                    "expectation_errors": [str], "report": PROFILE,
                    "attribution": ATTRIBUTION or null}]}
    PROFILE = {"title": str, "overrides": {str: str}, "seconds", "bmc_seconds",
               "induction_seconds": number, "depth": int,
               "universe": {"ue", "svc", "tek", "pkt": int},
               "initial_satisfiable": bool, "witnesses": {action: int or null},
               "invariant": [str], "dropped": {str: str}, "properties": [VERDICT]}
    VERDICT = {"number": int, "name", "kind", "verdict", "how": str, "lemmas": [str],
               "bound": int or null, "query_seconds": number,
               "queries": [{"action", "conjunct", "verdict": str, "seconds": number,
                            "core": [str], "reason": str}],
               "trace": TRACE or null, "itf": ITF or null, "explanation": str or null,
               "cti": {"conjunct", "action": str, "pre", "post": [str], "text": str} or null}

``TRACE`` is a counterexample (or a fair lasso) as :meth:`mbmssec.model.trace.Trace.to_json`
writes it; ``ITF`` is the same trace with the full state at every step, in the Informal
Trace Format (:meth:`mbmssec.model.trace.Trace.to_itf`, read by
:func:`mbmssec.model.itf.read_itf`), and ``explanation`` one sentence of why it violates
the property (:func:`mbmssec.model.explain.explain`).  A verdict has all three or none.

``behaviour`` holds a proposal's behaviour tables as its file states them (each key only
when the file has the table; ``{}`` for a proposal of option values only), and ``added``
the numbers of the properties it adds (their verdicts are in its ``report``).

``ATTRIBUTION`` (:class:`Attribution`, computed by :mod:`mbmssec.proofs.attribution`) is
``{"changes": {P: "broken" | "weakened" | "fixed"}, "causes": {P: [{str: str}]} or null,
"invalid": [{str: str}], "alternatives": {P: [{"options": {str: str}, "broken",
"weakened", "fixed": [int]}]}}``, keyed by property numbers written as strings.

Format 2 added ``itf`` and ``explanation``; format 3 added ``attribution``; format 4
added ``behaviour`` and ``added``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mbmssec.errors import MbmssecError
from mbmssec.model.behaviour import SECTIONS, state_symbols
from mbmssec.model.concrete import Universe
from mbmssec.model.dsl import ModelError, Symbol, Vocabulary
from mbmssec.model.itf import ItfError
from mbmssec.model.trace import Trace
from mbmssec.model.vocabulary import VOCABULARY
from mbmssec.spec.loader import SpecError

FORMAT_VERSION = 4
"""The version of the document layout; raised whenever a field is added, removed or
changes meaning, so that older documents are refused instead of misread."""

RESULTS_FILE = "results.json"
"""The name of the document in a ``mbmssec check --out`` folder."""

_RERUN = "re-run `mbmssec check --all --out DIR`"


class ResultsError(MbmssecError):
    """A results document that cannot be used; the message names the file and the field."""

    def __init__(self, source: str, where: str, problem: str) -> None:
        super().__init__(f"{source}: {where}: {problem}" if where else f"{source}: {problem}")
        self.source = source
        self.where = where
        self.problem = problem


# -- the document --------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryResult:
    """One solver query of an inductive proof: does ``action`` preserve ``conjunct``?"""

    action: str
    conjunct: str
    verdict: str
    seconds: float
    core: tuple[str, ...]
    reason: str

    def to_json(self) -> dict[str, Any]:
        """The query as the document stores it."""
        return {
            "action": self.action,
            "conjunct": self.conjunct,
            "verdict": self.verdict,
            "seconds": self.seconds,
            "core": list(self.core),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class CtiResult:
    """A counterexample to induction, with its rendering as text."""

    conjunct: str
    action: str
    pre: tuple[str, ...]
    post: tuple[str, ...]
    text: str

    def to_json(self) -> dict[str, Any]:
        """The counterexample to induction as the document stores it."""
        return {
            "conjunct": self.conjunct,
            "action": self.action,
            "pre": list(self.pre),
            "post": list(self.post),
            "text": self.text,
        }


@dataclass(frozen=True)
class VerdictResult:
    """One property's verdict under one profile, with how it was reached."""

    number: int
    name: str
    kind: str
    verdict: str
    how: str
    lemmas: tuple[str, ...]
    bound: int | None
    query_seconds: float
    queries: tuple[QueryResult, ...]
    trace: Trace | None
    cti: CtiResult | None
    explanation: str | None = None
    """Why the trace violates the property, in one sentence (with ``trace`` only)."""
    itf: dict[str, Any] | None = None
    """The trace with its states, as an ITF document (with ``trace`` only)."""

    def to_json(self) -> dict[str, Any]:
        """The verdict as the document stores it."""
        return {
            "number": self.number,
            "name": self.name,
            "kind": self.kind,
            "verdict": self.verdict,
            "how": self.how,
            "lemmas": list(self.lemmas),
            "bound": self.bound,
            "query_seconds": self.query_seconds,
            "queries": [q.to_json() for q in self.queries],
            "trace": None if self.trace is None else self.trace.to_json(),
            "itf": self.itf,
            "explanation": self.explanation,
            "cti": None if self.cti is None else self.cti.to_json(),
        }


@dataclass(frozen=True)
class ProfileResult:
    """Every property's verdict under one option profile, and how the check was run."""

    title: str
    overrides: dict[str, str]
    seconds: float
    bmc_seconds: float
    induction_seconds: float
    depth: int
    universe: Universe
    initial_satisfiable: bool
    witnesses: dict[str, int | None]
    invariant: tuple[str, ...]
    dropped: dict[str, str]
    verdicts: dict[int, VerdictResult]
    """By property number."""

    def to_json(self) -> dict[str, Any]:
        """The profile's results as the document stores them (verdicts by number)."""
        u = self.universe
        return {
            "title": self.title,
            "overrides": dict(self.overrides),
            "seconds": self.seconds,
            "bmc_seconds": self.bmc_seconds,
            "induction_seconds": self.induction_seconds,
            "depth": self.depth,
            "universe": {"ue": u.ue, "svc": u.svc, "tek": u.tek, "pkt": u.pkt},
            "initial_satisfiable": self.initial_satisfiable,
            "witnesses": dict(self.witnesses),
            "invariant": list(self.invariant),
            "dropped": dict(self.dropped),
            "properties": [self.verdicts[n].to_json() for n in sorted(self.verdicts)],
        }


@dataclass(frozen=True)
class ProposalInfo:
    """The proposal a set of verdicts is for, as its file stated it when it was checked."""

    name: str
    path: str
    title: str
    clauses: tuple[str, ...]
    options: dict[str, str]
    rationale: str
    replace: dict[str, str]
    expect_broken: tuple[int, ...]
    expect_fixed: tuple[int, ...]
    expect_weakened: tuple[int, ...] = ()
    behaviour: dict[str, Any] = field(default_factory=dict)
    """The proposal's behaviour tables (``state``, ``change``, ``action``, ``property``)
    as its file states them; empty for a proposal of option values only."""

    def symbols(self) -> tuple[Symbol, ...]:
        """The state symbols the proposal declares (its traces' states have them)."""
        return state_symbols(self.behaviour, self.path, self.name)

    def to_json(self) -> dict[str, Any]:
        """The proposal as the document stores it."""
        return {
            "name": self.name,
            "path": self.path,
            "title": self.title,
            "clauses": list(self.clauses),
            "options": dict(self.options),
            "rationale": self.rationale,
            "replace": dict(self.replace),
            "expect": {
                "broken": list(self.expect_broken),
                "fixed": list(self.expect_fixed),
                "weakened": list(self.expect_weakened),
            },
            "behaviour": self.behaviour,
        }


def label(options: dict[str, str]) -> str:
    """``a=x, b=y`` in option-name order."""
    return ", ".join(f"{k}={v}" for k, v in sorted(options.items()))


@dataclass(frozen=True)
class Alternative:
    """A single-option change and what it does compared with the baseline."""

    options: dict[str, str]
    broken: tuple[int, ...]
    weakened: tuple[int, ...]
    fixed: tuple[int, ...]

    @property
    def harmless(self) -> bool:
        """Breaks nothing that holds in the baseline (refutes or weakens no property)."""
        return not self.broken and not self.weakened

    def to_json(self) -> dict[str, Any]:
        return {
            "options": dict(self.options),
            "broken": list(self.broken),
            "weakened": list(self.weakened),
            "fixed": list(self.fixed),
        }


@dataclass(frozen=True)
class Attribution:
    """The causes of a proposal's changes and the alternatives for its fixes."""

    changes: dict[int, str]
    """Each changed property and how (``broken``, ``weakened`` or ``fixed``)."""
    causes: dict[int, tuple[dict[str, str], ...]] | None
    """Per changed property, its smallest causes; ``None`` when the proposal has more
    than :data:`~mbmssec.proofs.attribution.MAX_PARTS` option values (not computed)."""
    invalid: tuple[dict[str, str], ...]
    """Subsets of the proposal's values that are not a valid profile on their own."""
    alternatives: dict[int, tuple[Alternative, ...]]
    """Per property the proposal fixes, the single-option changes that fix it too."""

    def to_json(self) -> dict[str, Any]:
        return {
            "changes": {str(n): kind for n, kind in sorted(self.changes.items())},
            "causes": None
            if self.causes is None
            else {str(n): [dict(c) for c in causes] for n, causes in sorted(self.causes.items())},
            "invalid": [dict(s) for s in self.invalid],
            "alternatives": {
                str(n): [a.to_json() for a in alts] for n, alts in sorted(self.alternatives.items())
            },
        }

    def sentences(self) -> list[str]:
        """The attribution in words, one sentence per changed property and per fix's
        alternatives."""
        out: list[str] = []
        verb = {"broken": "broken", "weakened": "no longer proved", "fixed": "fixed"}
        for n, kind in sorted(self.changes.items()):
            if self.causes is None:
                continue
            causes = self.causes.get(n, ())
            if not causes:
                continue
            parts = [label(c) + (" (together)" if len(c) > 1 else " alone") for c in causes[:3]]
            more = f" and {len(causes) - 3} more" if len(causes) > 3 else ""
            out.append(f"P{n} {verb[kind]} by " + "; or by ".join(parts) + more + ".")
        for n, alts in sorted(self.alternatives.items()):
            if not alts:
                out.append(f"P{n}: no other value of the proposal's options fixes it.")
                continue
            descr = []
            for a in alts:
                cost = (
                    "breaking nothing"
                    if a.harmless
                    else "but breaks " + ", ".join(f"P{m}" for m in (*a.broken, *a.weakened))
                )
                descr.append(f"{label(a.options)} ({cost})")
            out.append(f"P{n} is also fixed by " + "; by ".join(descr) + ".")
        return out


@dataclass(frozen=True)
class ProposalResult:
    """A proposal's verdicts and how they differ from the baseline's."""

    proposal: ProposalInfo
    broken: tuple[int, ...]
    """Proved in the baseline, refuted under the proposal."""
    weakened: tuple[int, ...]
    """Proved in the baseline, neither proved nor refuted under the proposal."""
    fixed: tuple[int, ...]
    """Not proved in the baseline, proved under the proposal."""
    unchanged: tuple[int, ...]
    expectation_errors: tuple[str, ...]
    """Where the verdicts differ from what the proposal file expects."""
    report: ProfileResult
    added: tuple[int, ...] = ()
    """The properties the proposal adds (not in the baseline)."""
    attribution: Attribution | None = None
    """Which of the proposal's values cause each change, and the alternatives for its
    fixes (:mod:`mbmssec.proofs.attribution`); ``None`` when not computed."""

    @property
    def name(self) -> str:
        """The proposal's name (its file name without ``.toml``)."""
        return self.proposal.name

    @property
    def title(self) -> str:
        """The proposal's title."""
        return self.proposal.title

    def to_json(self) -> dict[str, Any]:
        """The proposal's results as the document stores them."""
        return {
            "proposal": self.proposal.to_json(),
            "broken": list(self.broken),
            "weakened": list(self.weakened),
            "fixed": list(self.fixed),
            "unchanged": list(self.unchanged),
            "added": list(self.added),
            "expectation_errors": list(self.expectation_errors),
            "report": self.report.to_json(),
            "attribution": None if self.attribution is None else self.attribution.to_json(),
        }


@dataclass(frozen=True)
class Results:
    """One results document: the baseline's verdicts, each proposal's, and the hash of the
    sources they were computed from."""

    model_hash: str
    """SHA-256 of the model, spec and proof sources (see ``proofs.check.model_hash``)."""
    baseline: ProfileResult
    proposals: dict[str, ProposalResult]
    """By proposal name, in the order they were checked."""
    files: tuple[str, ...] = field(default=())
    """Counterexample files written next to the document (JSON, SVG, pytest)."""

    def to_json(self) -> dict[str, Any]:
        """The document as JSON data, format version first."""
        return {
            "format": FORMAT_VERSION,
            "model_hash": self.model_hash,
            "baseline": self.baseline.to_json(),
            "proposals": [p.to_json() for p in self.proposals.values()],
            "files": list(self.files),
        }

    def dumps(self) -> str:
        """The document as the text of a ``results.json`` file: indented, but each ITF
        document on one line (indenting every entry of every state would make it several
        times longer)."""
        data = self.to_json()
        compact: dict[str, str] = {}
        profiles = [data["baseline"]] + [p["report"] for p in data["proposals"]]
        for profile in profiles:
            for verdict in profile["properties"]:
                if verdict["itf"] is not None:
                    token = f"@itf-{len(compact)}@"
                    compact[json.dumps(token)] = json.dumps(verdict["itf"], separators=(",", ":"))
                    verdict["itf"] = token
        text = json.dumps(data, indent=2)
        if compact:
            text = re.sub(r'"@itf-[0-9]+@"', lambda m: compact[m.group(0)], text)
        return text + "\n"

    @classmethod
    def from_json(cls, data: Any, source: str = RESULTS_FILE) -> Results:
        """Validate and read parsed JSON; ``source`` names the document in errors."""
        root = _Node(data, source, "")
        _check_format(root)
        root.only("format", "model_hash", "baseline", "proposals", "files")
        return cls(
            model_hash=root.key("model_hash").text(),
            baseline=_profile_result(root.key("baseline")),
            proposals=_proposals(root.key("proposals")),
            files=root.key("files").texts(),
        )


def load_results(path: Path) -> Results:
    """Read and validate the results document at ``path`` (errors name the file and the
    field; a missing file, bad JSON and another format version are errors too)."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        rerun = f"run `mbmssec check --all --out {path.parent}`"
        raise ResultsError(source, "", f"no such file ({rerun})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(source, "", f"cannot read the file: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(source, "", f"not a results file (bad JSON: {exc})") from None
    return Results.from_json(data, source)


# -- reading -------------------------------------------------------------------------------


def _check_format(root: _Node) -> None:
    """Refuse a document of another format version before reading any other field."""
    root.fields()
    version = root.optional("format")
    if version is None:
        raise root.fail(
            f"no format version: written by an older mbmssec (this one reads format "
            f"{FORMAT_VERSION}); {_RERUN}",
            where="format",
        )
    number = version.integer()
    if number != FORMAT_VERSION:
        raise version.fail(
            f"format version {number}, but this mbmssec reads format {FORMAT_VERSION}; {_RERUN}"
        )


class _Node:
    """One value of the parsed document and the path that leads to it; each accessor
    checks the value's type and fails naming the path."""

    def __init__(self, value: Any, source: str, path: str) -> None:
        self.value = value
        self.source = source
        self.path = path

    def fail(self, problem: str, where: str | None = None) -> ResultsError:
        """The error for this value (or for ``where``, a path of a missing field)."""
        return ResultsError(self.source, self.path if where is None else where, problem)

    def _expected(self, kind: str) -> ResultsError:
        return self.fail(f"expected {kind}" + (", got null" if self.value is None else ""))

    def _child_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def fields(self) -> dict[str, Any]:
        """The value as a JSON object."""
        if not isinstance(self.value, dict):
            raise self._expected("object")
        return self.value

    def key(self, name: str) -> _Node:
        """A field of this object that must be present (it may still be null)."""
        obj = self.fields()
        if name not in obj:
            raise self.fail("missing", where=self._child_path(name))
        return _Node(obj[name], self.source, self._child_path(name))

    def optional(self, name: str) -> _Node | None:
        """A field of this object that may be absent or null."""
        obj = self.fields()
        if obj.get(name) is None:
            return None
        return _Node(obj[name], self.source, self._child_path(name))

    def nullable(self, name: str) -> _Node | None:
        """A field that must be present but may be null."""
        node = self.key(name)
        return None if node.value is None else node

    def only(self, *names: str) -> None:
        """Refuse fields this object does not define."""
        extra = sorted(set(self.fields()) - set(names))
        if extra:
            raise self.fail(f"unknown field {extra[0]!r}", where=self._child_path(extra[0]))

    def items(self) -> Iterator[_Node]:
        """The elements of this list."""
        if not isinstance(self.value, list):
            raise self._expected("list")
        for i, item in enumerate(self.value):
            yield _Node(item, self.source, f"{self.path}[{i}]")

    def entries(self) -> Iterator[tuple[str, _Node]]:
        """The fields of this object, in document order."""
        for name in self.fields():
            yield name, _Node(self.value[name], self.source, self._child_path(name))

    def text(self) -> str:
        """The value as a string."""
        if not isinstance(self.value, str):
            raise self._expected("str")
        return self.value

    def integer(self) -> int:
        """The value as an integer (not a boolean)."""
        if not isinstance(self.value, int) or isinstance(self.value, bool):
            raise self._expected("int")
        return self.value

    def number(self) -> float:
        """The value as a number of seconds (an integer or a float)."""
        if not isinstance(self.value, int | float) or isinstance(self.value, bool):
            raise self._expected("number")
        return float(self.value)

    def flag(self) -> bool:
        """The value as a boolean."""
        if not isinstance(self.value, bool):
            raise self._expected("bool")
        return self.value

    def texts(self) -> tuple[str, ...]:
        """A list of strings."""
        return tuple(item.text() for item in self.items())

    def integers(self) -> tuple[int, ...]:
        """A list of integers."""
        return tuple(item.integer() for item in self.items())

    def text_map(self) -> dict[str, str]:
        """An object whose values are strings."""
        return {name: node.text() for name, node in self.entries()}


def _optional_int(node: _Node, name: str) -> int | None:
    value = node.nullable(name)
    return None if value is None else value.integer()


def _query_result(node: _Node) -> QueryResult:
    node.only("action", "conjunct", "verdict", "seconds", "core", "reason")
    return QueryResult(
        action=node.key("action").text(),
        conjunct=node.key("conjunct").text(),
        verdict=node.key("verdict").text(),
        seconds=node.key("seconds").number(),
        core=node.key("core").texts(),
        reason=node.key("reason").text(),
    )


def _cti_result(node: _Node) -> CtiResult:
    node.only("conjunct", "action", "pre", "post", "text")
    return CtiResult(
        conjunct=node.key("conjunct").text(),
        action=node.key("action").text(),
        pre=node.key("pre").texts(),
        post=node.key("post").texts(),
        text=node.key("text").text(),
    )


def _trace(node: _Node) -> Trace:
    try:
        return Trace.from_json(node.fields())
    except ModelError as exc:
        raise node.fail(str(exc)) from None


_VERDICT_FIELDS = (
    "number",
    "name",
    "kind",
    "verdict",
    "how",
    "lemmas",
    "bound",
    "query_seconds",
    "queries",
    "trace",
    "itf",
    "explanation",
    "cti",
)


def _itf(node: _Node, trace: Trace, vocab: Vocabulary) -> dict[str, Any]:
    """An ITF document, validated, whose steps, universe and loop are the trace's."""
    data = node.fields()
    try:
        run = Trace.from_itf(data, vocab, source=node.source)
    except ItfError as exc:
        raise ResultsError(
            node.source, f"{node.path}.{exc.where}" if exc.where else node.path, exc.problem
        ) from None
    if (run.steps, run.universe, run.loop) != (trace.steps, trace.universe, trace.loop):
        raise node.fail("its steps, universe or loop differ from the verdict's trace")
    return data


def _verdict_result(node: _Node, vocab: Vocabulary) -> VerdictResult:
    node.only(*_VERDICT_FIELDS)
    trace_node = node.nullable("trace")
    trace = None if trace_node is None else _trace(trace_node)
    itf = node.nullable("itf")
    explanation = node.nullable("explanation")
    if trace is not None:
        for name, part in (("itf", itf), ("explanation", explanation)):
            if part is None:
                raise node.fail(
                    f"a verdict with a trace needs its {name}", where=f"{node.path}.{name}"
                )
    else:
        for part in (itf, explanation):
            if part is not None:
                raise part.fail("only a verdict with a trace has one")
    cti = node.nullable("cti")
    return VerdictResult(
        number=node.key("number").integer(),
        name=node.key("name").text(),
        kind=node.key("kind").text(),
        verdict=node.key("verdict").text(),
        how=node.key("how").text(),
        lemmas=node.key("lemmas").texts(),
        bound=_optional_int(node, "bound"),
        query_seconds=node.key("query_seconds").number(),
        queries=tuple(_query_result(q) for q in node.key("queries").items()),
        trace=trace,
        cti=None if cti is None else _cti_result(cti),
        explanation=None if explanation is None else explanation.text(),
        itf=None if itf is None or trace is None else _itf(itf, trace, vocab),
    )


def _universe(node: _Node) -> Universe:
    node.only("ue", "svc", "tek", "pkt")
    sizes = {name: node.key(name).integer() for name in ("ue", "svc", "tek", "pkt")}
    return Universe(**sizes)


def _witnesses(node: _Node) -> dict[str, int | None]:
    return {
        name: (None if value.value is None else value.integer()) for name, value in node.entries()
    }


def _verdicts(node: _Node, vocab: Vocabulary) -> dict[int, VerdictResult]:
    verdicts: dict[int, VerdictResult] = {}
    for item in node.items():
        verdict = _verdict_result(item, vocab)
        if verdict.number in verdicts:
            raise item.key("number").fail(f"duplicate property {verdict.number}")
        verdicts[verdict.number] = verdict
    return verdicts


_PROFILE_FIELDS = (
    "title",
    "overrides",
    "seconds",
    "bmc_seconds",
    "induction_seconds",
    "depth",
    "universe",
    "initial_satisfiable",
    "witnesses",
    "invariant",
    "dropped",
    "properties",
)


def _profile_result(node: _Node, vocab: Vocabulary = VOCABULARY) -> ProfileResult:
    node.only(*_PROFILE_FIELDS)
    return ProfileResult(
        title=node.key("title").text(),
        overrides=node.key("overrides").text_map(),
        seconds=node.key("seconds").number(),
        bmc_seconds=node.key("bmc_seconds").number(),
        induction_seconds=node.key("induction_seconds").number(),
        depth=node.key("depth").integer(),
        universe=_universe(node.key("universe")),
        initial_satisfiable=node.key("initial_satisfiable").flag(),
        witnesses=_witnesses(node.key("witnesses")),
        invariant=node.key("invariant").texts(),
        dropped=node.key("dropped").text_map(),
        verdicts=_verdicts(node.key("properties"), vocab),
    )


_PROPOSAL_FIELDS = (
    "name",
    "path",
    "title",
    "clauses",
    "options",
    "rationale",
    "replace",
    "expect",
    "behaviour",
)


def _behaviour(node: _Node) -> dict[str, Any]:
    """A proposal's behaviour tables: each an array of tables (their contents are
    checked when the proposal is loaded; here, its state tables, which its traces need)."""
    node.only(*SECTIONS)
    out: dict[str, Any] = {}
    for name, tables in node.entries():
        for table in tables.items():
            table.fields()
        out[name] = tables.value
    return out


def _proposal_info(node: _Node) -> ProposalInfo:
    node.only(*_PROPOSAL_FIELDS)
    expect = node.key("expect")
    expect.only("broken", "fixed", "weakened")
    weakened = expect.optional("weakened")
    info = ProposalInfo(
        name=node.key("name").text(),
        path=node.key("path").text(),
        title=node.key("title").text(),
        clauses=node.key("clauses").texts(),
        options=node.key("options").text_map(),
        rationale=node.key("rationale").text(),
        replace=node.key("replace").text_map(),
        expect_broken=expect.key("broken").integers(),
        expect_fixed=expect.key("fixed").integers(),
        expect_weakened=() if weakened is None else weakened.integers(),
        behaviour=_behaviour(node.key("behaviour")),
    )
    try:
        info.symbols()
    except SpecError as exc:
        where = f"{node.path}.behaviour.{exc.where}"
        raise node.key("behaviour").fail(exc.problem, where=where) from None
    return info


def _proposal_result(node: _Node) -> ProposalResult:
    node.only(
        "proposal",
        "broken",
        "weakened",
        "fixed",
        "unchanged",
        "added",
        "expectation_errors",
        "report",
        "attribution",
    )
    info = _proposal_info(node.key("proposal"))
    vocab = Vocabulary((*VOCABULARY.symbols, *info.symbols()))
    attribution = node.nullable("attribution")
    return ProposalResult(
        proposal=info,
        broken=node.key("broken").integers(),
        weakened=node.key("weakened").integers(),
        fixed=node.key("fixed").integers(),
        unchanged=node.key("unchanged").integers(),
        expectation_errors=node.key("expectation_errors").texts(),
        report=_profile_result(node.key("report"), vocab),
        added=node.key("added").integers(),
        attribution=None if attribution is None else _attribution(attribution),
    )


def _property_map(node: _Node) -> Iterator[tuple[int, _Node]]:
    """An object keyed by property numbers (as strings)."""
    for name, value in node.entries():
        if not name.isdigit():
            raise value.fail("expected a property number as the key")
        yield int(name), value


def _attribution(node: _Node) -> Attribution:
    node.only("changes", "causes", "invalid", "alternatives")
    changes = {}
    for n, kind in _property_map(node.key("changes")):
        if kind.text() not in ("broken", "weakened", "fixed"):
            raise kind.fail("expected 'broken', 'weakened' or 'fixed'")
        changes[n] = kind.text()
    causes_node = node.nullable("causes")
    causes = (
        None
        if causes_node is None
        else {
            n: tuple(item.text_map() for item in value.items())
            for n, value in _property_map(causes_node)
        }
    )
    alternatives = {}
    for n, value in _property_map(node.key("alternatives")):
        alts = []
        for item in value.items():
            item.only("options", "broken", "weakened", "fixed")
            alts.append(
                Alternative(
                    options=item.key("options").text_map(),
                    broken=item.key("broken").integers(),
                    weakened=item.key("weakened").integers(),
                    fixed=item.key("fixed").integers(),
                )
            )
        alternatives[n] = tuple(alts)
    return Attribution(
        changes=changes,
        causes=causes,
        invalid=tuple(item.text_map() for item in node.key("invalid").items()),
        alternatives=alternatives,
    )


def _proposals(node: _Node) -> dict[str, ProposalResult]:
    proposals: dict[str, ProposalResult] = {}
    for item in node.items():
        entry = _proposal_result(item)
        if entry.name in proposals:
            raise item.key("proposal").key("name").fail(f"duplicate proposal {entry.name!r}")
        proposals[entry.name] = entry
    return proposals

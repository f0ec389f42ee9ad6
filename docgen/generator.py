"""Generated documentation pages: every clause tied to the model, the proofs, the code and
the tests, written as reStructuredText with sphinx-needs objects.

Nothing here restates a clause, an option, an action or a property: the pages are
generated from ``spec/`` (clauses, options, proposals), ``model/`` (actions with their
clause tags and source, properties), the ``results.json`` that ``mbmssec check --out DIR``
writes (verdicts, solver times, counterexample traces, stamped with the model hash) and
``docs/traceability.toml`` (which implementation functions and tests serve which clause;
clause ids in their docstrings count too).  Message sequence charts are drawn from the
counterexample traces at build time with :mod:`mbmssec.proofs.msc`.

The module is also the Sphinx extension that runs the generator when a build starts
(``extensions = [..., "mbmssec.docgen.generator"]``) and turns every gap into a warning, so a
strict build (``-W``) fails on:

* a normative clause with no model element (no action or property tagged with it);
* a property with no proof result, a refuted property with no counterexample trace;
* proof results older than the model (``model_hash`` differs from the sources'), or a
  trace that no longer replays on the model;
* a traceability entry that names no existing function, test or clause; and, through
  sphinx-needs and ``-n``, any broken link.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mbmssec.docgen import pages as docs_pages
from mbmssec.errors import MbmssecError
from mbmssec.model.dsl import Action, ModelError
from mbmssec.model.properties import Property
from mbmssec.spec.loader import Clause, Option, Spec, SpecError, load_spec

if TYPE_CHECKING:
    from sphinx.application import Sphinx
    from sphinx.util.logging import SphinxLoggerAdapter
    from sphinx_needs.need_item import NeedItem

    from mbmssec.proofs.check import Proposal

ROOT = Path(__file__).resolve().parent.parent
"""The project checkout (the folder holding ``spec/``, ``model/``, ``tests/``, ``docs/``)."""
DOCS_DIR = ROOT / "docs"
GENERATED = "_generated"
RESULTS_FILE = "results.json"
LINKS_FILE = "traceability.toml"

STATUSES = ("proved", "refuted", "unknown", "tested only", "FFS", "not modelled")
"""The status of a clause, as the clause pages and the matrix show it."""


class DocsError(MbmssecError):
    """Unusable input for the documentation (a results file or traceability file that
    cannot be read); the message names the file and the field."""


# -- sphinx-needs configuration (used by docs/conf.py) -----------------------------------

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
NEEDS_ID_REGEX = r"^[A-Z][A-Z0-9_]+$"


def clause_need_id(cid: str) -> str:
    return "CL_" + _upper_slug(cid)


def option_need_id(name: str) -> str:
    return "OPT_" + _upper_slug(name)


def action_need_id(name: str) -> str:
    return "ACT_" + _upper_slug(re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name))


def property_need_id(number: int) -> str:
    return f"PROP_{number}"


def proposal_need_id(name: str) -> str:
    return "PROPOSAL_" + _upper_slug(name)


def profile_key(proposal: str | None) -> str:
    """``BASELINE`` or ``P_<NAME>``: the part of a proof-result id naming its profile."""
    return "BASELINE" if proposal is None else "P_" + _upper_slug(proposal)


def proof_need_id(proposal: str | None, number: int) -> str:
    return f"PR_{profile_key(proposal)}_{number}"


def trace_need_id(proposal: str | None, number: int) -> str:
    return f"CEX_{profile_key(proposal)}_{number}"


def _upper_slug(text: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", text.upper()).strip("_")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


# -- results of the checker ---------------------------------------------------------------


@dataclass(frozen=True)
class VerdictResult:
    """One property's verdict under one profile, as results.json records it."""

    number: int
    name: str
    kind: str
    verdict: str
    how: str
    lemmas: tuple[str, ...]
    bound: int | None
    query_seconds: float
    queries: int
    trace: dict[str, Any] | None


@dataclass(frozen=True)
class ProfileResult:
    """Every verdict under one option profile, with how the check was run."""

    title: str
    overrides: dict[str, str]
    seconds: float
    bmc_seconds: float
    induction_seconds: float
    depth: int
    universe: dict[str, int]
    witnesses: dict[str, int | None]
    invariant: tuple[str, ...]
    dropped: dict[str, str]
    verdicts: dict[int, VerdictResult]


@dataclass(frozen=True)
class ProposalResult:
    """A proposal's verdicts and their difference from the baseline's."""

    name: str
    title: str
    broken: tuple[int, ...]
    weakened: tuple[int, ...]
    fixed: tuple[int, ...]
    expectation_errors: tuple[str, ...]
    report: ProfileResult


@dataclass(frozen=True)
class Results:
    """The content of one ``results.json``."""

    path: Path
    model_hash: str
    baseline: ProfileResult
    proposals: dict[str, ProposalResult]
    files: tuple[str, ...]


class _Reader:
    """Typed access to parsed JSON that names the file and the field in every error."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str) -> DocsError:
        return DocsError(f"{self.path}: {where}: {problem}")

    def get(
        self, obj: Any, key: str, kind: type | tuple[type, ...], where: str, optional: bool = False
    ) -> Any:
        if not isinstance(obj, dict):
            raise self.fail(where, "expected an object")
        if key not in obj or obj[key] is None:
            if optional:
                return None
            raise self.fail(f"{where}.{key}" if where else key, "missing")
        value = obj[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise self.fail(f"{where}.{key}", f"expected {kinds[0].__name__}")
        if not isinstance(value, kinds):
            raise self.fail(
                f"{where}.{key}" if where else key,
                f"expected {' or '.join(k.__name__ for k in kinds)}",
            )
        return value


def _profile_result(r: _Reader, obj: Any, where: str) -> ProfileResult:
    verdicts: dict[int, VerdictResult] = {}
    for i, v in enumerate(r.get(obj, "properties", list, where)):
        w = f"{where}.properties[{i}]"
        number = r.get(v, "number", int, w)
        trace = r.get(v, "trace", dict, w, optional=True)
        verdicts[number] = VerdictResult(
            number=number,
            name=r.get(v, "name", str, w),
            kind=r.get(v, "kind", str, w),
            verdict=r.get(v, "verdict", str, w),
            how=r.get(v, "how", str, w),
            lemmas=tuple(str(x) for x in r.get(v, "lemmas", list, w)),
            bound=r.get(v, "bound", int, w, optional=True),
            query_seconds=float(r.get(v, "query_seconds", (int, float), w)),
            queries=len(r.get(v, "queries", list, w)),
            trace=trace,
        )
    universe = r.get(obj, "universe", dict, where)
    return ProfileResult(
        title=r.get(obj, "title", str, where),
        overrides={str(k): str(v) for k, v in r.get(obj, "overrides", dict, where).items()},
        seconds=float(r.get(obj, "seconds", (int, float), where)),
        bmc_seconds=float(r.get(obj, "bmc_seconds", (int, float), where)),
        induction_seconds=float(r.get(obj, "induction_seconds", (int, float), where)),
        depth=r.get(obj, "depth", int, where),
        universe={
            k: r.get(universe, k, int, f"{where}.universe") for k in ("ue", "svc", "tek", "pkt")
        },
        witnesses={
            str(k): (v if isinstance(v, int) else None)
            for k, v in r.get(obj, "witnesses", dict, where).items()
        },
        invariant=tuple(str(x) for x in r.get(obj, "invariant", list, where)),
        dropped={str(k): str(v) for k, v in r.get(obj, "dropped", dict, where).items()},
        verdicts=verdicts,
    )


def load_results(directory: Path) -> Results:
    """Read ``results.json`` from a ``mbmssec check --out`` directory."""
    path = directory / RESULTS_FILE
    r = _Reader(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DocsError(
            f"{path}: no such file (run `mbmssec check --all --out {directory}`)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DocsError(f"{path}: not a results file: {exc}") from None
    digest = r.get(data, "model_hash", str, "")
    baseline = _profile_result(r, r.get(data, "baseline", dict, ""), "baseline")
    proposals: dict[str, ProposalResult] = {}
    for i, p in enumerate(r.get(data, "proposals", list, "")):
        w = f"proposals[{i}]"
        meta = r.get(p, "proposal", dict, w)
        name = r.get(meta, "name", str, f"{w}.proposal")
        proposals[name] = ProposalResult(
            name=name,
            title=r.get(meta, "title", str, f"{w}.proposal"),
            broken=tuple(r.get(p, "broken", list, w)),
            weakened=tuple(r.get(p, "weakened", list, w)),
            fixed=tuple(r.get(p, "fixed", list, w)),
            expectation_errors=tuple(str(e) for e in r.get(p, "expectation_errors", list, w)),
            report=_profile_result(r, r.get(p, "report", dict, w), f"{w}.report"),
        )
    files = r.get(data, "files", list, "", optional=True) or []
    return Results(
        path=path,
        model_hash=digest,
        baseline=baseline,
        proposals=proposals,
        files=tuple(str(f) for f in files),
    )


def results_state(directory: Path) -> str:
    """``"fresh"``, ``"stale"`` (another model hash) or ``"missing"`` (no readable
    results file); used to decide whether the checker must run again."""
    from mbmssec.proofs.check import model_hash

    try:
        results = load_results(directory)
    except DocsError:
        return "missing"
    return "fresh" if results.model_hash == model_hash() else "stale"


# -- implementation and test links --------------------------------------------------------


@dataclass(frozen=True)
class CodeElement:
    """A function, class or test the documentation links to clauses."""

    kind: str  # "impl" | "test"
    name: str  # dotted name (impl) or "tests/file.py::func" (test)
    file: str  # path relative to the project root
    line: int
    doc: str
    clauses: tuple[str, ...]
    impl: tuple[str, ...] = ()  # tests only: implementation elements they exercise
    properties: tuple[int, ...] = ()  # tests only
    origin: str = "traceability.toml"

    @property
    def need_id(self) -> str:
        if self.kind == "impl":
            return "IMPL_" + _upper_slug(self.name.removeprefix("mbmssec.impl."))
        return "TEST_" + _upper_slug(self.name.removeprefix("tests/").replace(".py::", "_"))


@dataclass
class Problem:
    """A gap that fails the strict build; the message names what is missing."""

    message: str
    location: str | None = None


def _defs(
    tree: ast.Module,
) -> Iterable[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef]]:
    """Every function and class of a module with its qualified name."""

    def walk(
        body: list[ast.stmt], prefix: str
    ) -> Iterable[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef]]:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                qual = f"{prefix}{node.name}"
                yield qual, node
                if isinstance(node, ast.ClassDef):
                    yield from walk(node.body, qual + ".")

    return walk(tree.body, "")


def _parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None


def _rel(path: Path) -> str:
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def _first_paragraph(doc: str | None) -> str:
    return " ".join((doc or "").strip().split("\n\n")[0].split())


def _module_file(module: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


def _resolve_impl(dotted: str) -> tuple[Path, ast.AST, str] | None:
    """The file, AST node and qualified name of ``package.module.Qual.name``."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        path = _module_file(".".join(parts[:cut]))
        if path is None:
            continue
        tree = _parse(path)
        if tree is None:
            return None
        qual = ".".join(parts[cut:])
        for name, node in _defs(tree):
            if name == qual:
                return path, node, qual
        return None
    return None


def _resolve_test(ref: str) -> tuple[Path, ast.AST] | None:
    """The file and AST node of ``tests/file.py::func`` (or ``::Class::func``)."""
    file, _, qual = ref.partition("::")
    path = ROOT / file
    tree = _parse(path) if path.is_file() else None
    if tree is None or not qual:
        return None
    for name, node in _defs(tree):
        if name == qual.replace("::", "."):
            return path, node
    return None


def _str_list(value: Any) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def load_links(
    path: Path, spec: Spec, property_numbers: set[int]
) -> tuple[list[CodeElement], list[Problem]]:
    """Implementation and test elements linked to clauses, from the traceability file and
    from clause ids written in docstrings (``impl/`` definitions and ``tests/`` test
    functions).  Entries that name nothing real are problems, not silently dropped."""
    problems: list[Problem] = []
    where_file = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        data = {}
        problems.append(Problem(f"{path}: no traceability file", where_file))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DocsError(f"{path}: {exc}") from None
    elements: dict[tuple[str, str], CodeElement] = {}

    def check_clauses(ids: list[str], where: str) -> tuple[str, ...]:
        good = []
        for cid in ids:
            if cid in spec.clauses:
                good.append(cid)
            else:
                problems.append(
                    Problem(
                        f"{path}: {where}: unknown clause id {cid!r} (not in spec/clauses.toml)",
                        where_file,
                    )
                )
        return tuple(good)

    unknown_top = set(data) - {"impl", "test"}
    if unknown_top:
        problems.append(
            Problem(
                f"{path}: unknown tables {sorted(unknown_top)} (allowed: [[impl]], [[test]])",
                where_file,
            )
        )
    for i, item in enumerate(data.get("impl", [])):
        where = f"impl[{i}]"
        obj = item.get("object") if isinstance(item, dict) else None
        ids = _str_list(item.get("clauses")) if isinstance(item, dict) else None
        if not isinstance(obj, str) or ids is None:
            problems.append(
                Problem(
                    f'{path}: {where}: expected object = "dotted.name" and clauses = [...]',
                    where_file,
                )
            )
            continue
        found = _resolve_impl(obj)
        if found is None:
            problems.append(
                Problem(
                    f"{path}: {where}: {obj!r} names no function or class (broken link)", where_file
                )
            )
            continue
        file, node, _qual = found
        elements[("impl", obj)] = CodeElement(
            "impl",
            obj,
            _rel(file),
            getattr(node, "lineno", 1),
            _first_paragraph(ast.get_docstring(node))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            else "",
            check_clauses(ids, f"{where} ({obj})"),
        )
    for i, item in enumerate(data.get("test", [])):
        where = f"test[{i}]"
        ref = item.get("test") if isinstance(item, dict) else None
        ids = _str_list(item.get("clauses", [])) if isinstance(item, dict) else None
        impls = _str_list(item.get("impl", [])) if isinstance(item, dict) else None
        props = item.get("properties", []) if isinstance(item, dict) else None
        if (
            not isinstance(ref, str)
            or ids is None
            or impls is None
            or not isinstance(props, list)
            or not all(isinstance(n, int) for n in props)
        ):
            problems.append(
                Problem(
                    f'{path}: {where}: expected test = "tests/file.py::name", '
                    "clauses = [...], optional impl = [...] and "
                    "properties = [numbers]",
                    where_file,
                )
            )
            continue
        tfound = _resolve_test(ref)
        if tfound is None:
            problems.append(
                Problem(f"{path}: {where}: {ref!r} names no test (broken link)", where_file)
            )
            continue
        for n in props:
            if n not in property_numbers:
                problems.append(
                    Problem(f"{path}: {where} ({ref}): unknown property {n}", where_file)
                )
        tfile, tnode = tfound
        elements[("test", ref)] = CodeElement(
            "test",
            ref,
            _rel(tfile),
            getattr(tnode, "lineno", 1),
            _first_paragraph(ast.get_docstring(tnode))
            if isinstance(tnode, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            else "",
            check_clauses(ids, f"{where} ({ref})"),
            impl=tuple(impls),
            properties=tuple(n for n in props if n in property_numbers),
        )
    for el in list(elements.values()):
        for target in el.impl:
            if ("impl", target) not in elements:
                problems.append(
                    Problem(
                        f"{path}: test {el.name}: impl {target!r} is not an [[impl]] entry",
                        where_file,
                    )
                )
        if el.kind == "test":
            elements[("test", el.name)] = CodeElement(
                el.kind,
                el.name,
                el.file,
                el.line,
                el.doc,
                el.clauses,
                tuple(t for t in el.impl if ("impl", t) in elements),
                el.properties,
                el.origin,
            )
    for el in _docstring_links(spec):
        key = (el.kind, el.name)
        if key in elements:
            old = elements[key]
            merged = tuple(dict.fromkeys(old.clauses + el.clauses))
            elements[key] = CodeElement(
                old.kind,
                old.name,
                old.file,
                old.line,
                old.doc,
                merged,
                old.impl,
                old.properties,
                old.origin + ", docstring",
            )
        else:
            elements[key] = el
    seen: dict[str, str] = {}
    for el in elements.values():
        if el.need_id in seen and seen[el.need_id] != el.name:
            problems.append(
                Problem(
                    f"{path}: {el.name} and {seen[el.need_id]} map to the "
                    f"same need id {el.need_id}",
                    where_file,
                )
            )
        seen[el.need_id] = el.name
    return sorted(elements.values(), key=lambda e: (e.kind, e.name)), problems


def _docstring_links(spec: Spec) -> list[CodeElement]:
    """Definitions in ``impl/`` and test functions in ``tests/`` whose docstrings name a
    clause id."""
    pattern = re.compile(
        "|".join(re.escape(c) for c in sorted(spec.clauses, key=len, reverse=True))
    )
    out: list[CodeElement] = []
    impl_dir = _module_file("mbmssec.impl")
    sources: list[tuple[str, Path]] = []
    if impl_dir is not None:
        sources += [("impl", p) for p in sorted(impl_dir.parent.rglob("*.py"))]
    sources += [("test", p) for p in sorted((ROOT / "tests").glob("test_*.py"))]
    for kind, path in sources:
        tree = _parse(path)
        if tree is None:
            continue
        for qual, node in _defs(tree):
            doc = ast.get_docstring(node)
            if not doc:
                continue
            found = tuple(dict.fromkeys(pattern.findall(doc)))
            if not found:
                continue
            if kind == "impl" and impl_dir is not None:
                sub = path.relative_to(impl_dir.parent).with_suffix("").parts
                name = ".".join(("mbmssec.impl", *sub, qual))
            elif node.name.startswith("test_"):
                name = f"{_rel(path)}::{qual.replace('.', '::')}"
            else:
                continue
            out.append(
                CodeElement(
                    kind,
                    name,
                    _rel(path),
                    node.lineno,
                    _first_paragraph(doc),
                    found,
                    origin="docstring",
                )
            )
    return out


def load_junit(path: Path) -> dict[str, str]:
    """Test outcomes from a JUnit XML report (``pytest --junitxml FILE``), by test name as
    the traceability file writes it (``tests/test_x.py::test_y``; parametrised cases are
    merged: ``failed`` if any failed, ``passed`` if any passed, else ``skipped``)."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise DocsError(f"{path}: not a JUnit XML report: {exc}") from None
    seen: dict[str, set[str]] = {}
    for case in root.iter("testcase"):
        classname, name = case.get("classname", ""), case.get("name", "")
        if not classname or not name:
            continue
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        elif case.find("skipped") is not None:
            outcome = "skipped"
        else:
            outcome = "passed"
        base = name.split("[", 1)[0]
        parts = classname.split(".")
        # classname is the module path, then the class (if any)
        for cut in range(len(parts), 0, -1):
            file = "/".join(parts[:cut]) + ".py"
            if (ROOT / file).is_file() or cut == 1:
                key = "::".join([file, *parts[cut:], base])
                seen.setdefault(key, set()).add(outcome)
                break
    return {
        k: ("failed" if "failed" in v else "passed" if "passed" in v else "skipped")
        for k, v in seen.items()
    }


# -- what the generator reads ---------------------------------------------------------------


@dataclass
class Inputs:
    """Everything the pages are generated from."""

    spec: Spec
    actions: tuple[Action, ...]
    properties: tuple[Property, ...]
    proposals: list[Proposal]
    results: Results | None
    results_dir: Path
    current_hash: str
    elements: list[CodeElement]
    problems: list[Problem] = field(default_factory=list)
    outcomes: dict[str, str] | None = None  # test outcomes, when a JUnit report is given

    def tagged_by_actions(self, cid: str) -> list[Action]:
        return [a for a in self.actions if cid in a.clauses]

    def tagged_by_properties(self, cid: str) -> list[Property]:
        return [p for p in self.properties if cid in p.clauses]

    def elements_for(self, cid: str, kind: str) -> list[CodeElement]:
        return [e for e in self.elements if e.kind == kind and cid in e.clauses]

    def verdict(self, number: int, proposal: str | None = None) -> VerdictResult | None:
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
    problems: list[Problem] = []
    elements, link_problems = load_links(
        links_file or DOCS_DIR / LINKS_FILE, spec, {p.number for p in props}
    )
    problems += link_problems
    try:
        proposals = shipped_proposals(spec)
    except SpecError as exc:
        raise DocsError(str(exc)) from None
    results: Results | None = None
    digest = model_hash()
    try:
        results = load_results(results_dir)
    except DocsError as exc:
        problems.append(Problem(f"no proof results: {exc}", str(results_dir / RESULTS_FILE)))
    if results is not None and results.model_hash != digest:
        problems.append(
            Problem(
                f"{results.path}: stale proof results: computed for model hash "
                f"{results.model_hash[:16]}, but model/, spec/ or proofs/ now hash to "
                f"{digest[:16]}; re-run `mbmssec check --all --out {results_dir}` "
                "(or `mbmssec docs`)",
                str(results.path),
            )
        )
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


def _check_model(inp: Inputs) -> None:
    """Clause tags that name no clause (the coverage of clauses is checked by sphinx-needs
    on the generated objects, see :func:`check_clause_covered`)."""
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
    numbers = {p.number for p in inp.properties}
    shipped = {p.name for p in inp.proposals}
    for extra in sorted(set(res.baseline.verdicts) - numbers):
        inp.problems.append(
            Problem(
                f"{res.path}: baseline: result for property {extra}, "
                "which the model does not have (stale results)"
            )
        )
    for name, pr in res.proposals.items():
        if name not in shipped:
            inp.problems.append(
                Problem(
                    f"{res.path}: proposal {name!r} is not a shipped "
                    "proposal (spec/proposals); the docs cannot show it"
                )
            )
        for n in sorted(numbers - set(pr.report.verdicts)):
            inp.problems.append(
                Problem(f"{res.path}: proposal {name}: property {n} has no proof result")
            )
        for v in pr.report.verdicts.values():
            if v.verdict == "refuted" and v.trace is None:
                inp.problems.append(
                    Problem(
                        f"{res.path}: proposal {name}: property "
                        f"{v.number} is refuted but has no "
                        "counterexample trace"
                    )
                )


# -- reStructuredText helpers --------------------------------------------------------------

_RST_SPECIAL = re.compile(r"([\\`*_|\[\]<>])")


def esc(text: str) -> str:
    """Plain text made safe as reStructuredText inline content."""
    return _RST_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def heading(text: str, char: str, over: bool = False) -> str:
    line = char * max(len(text), 3)
    return (f"{line}\n{text}\n{line}\n" if over else f"{text}\n{line}\n") + "\n"


def indent(text: str, n: int = 3) -> str:
    pad = " " * n
    return "\n".join(pad + line if line.strip() else "" for line in text.splitlines())


def need(
    directive: str,
    title: str,
    need_id: str,
    *,
    status: str | None = None,
    fields: Mapping[str, Any] | None = None,
    links: Mapping[str, Sequence[str]] | None = None,
    content: str = "",
) -> str:
    """A sphinx-needs object (its options on one line each)."""
    out = [f".. {directive}:: {' '.join(title.split())}", f"   :id: {need_id}"]
    if status:
        out.append(f"   :status: {status}")
    for key, value in (fields or {}).items():
        if value is None or value == "" or value == ():
            continue
        out.append(f"   :{key}: {' '.join(str(value).split())}")
    for key, targets in (links or {}).items():
        uniq = list(dict.fromkeys(targets))
        if uniq:
            out.append(f"   :{key}: {', '.join(uniq)}")
    text = "\n".join(out) + "\n"
    if content.strip():
        text += "\n" + indent(content.strip()) + "\n"
    return text + "\n"


def list_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    title: str = "",
    widths: Sequence[int] | None = None,
    css: str = "",
) -> str:
    if not rows:
        return ""
    out = [f".. list-table:: {title}".rstrip(), "   :header-rows: 1"]
    if widths:
        out.append(f"   :widths: {' '.join(str(w) for w in widths)}")
    if css:
        out.append(f"   :class: {css}")
    out.append("")
    for row in [list(header), *[list(r) for r in rows]]:
        for i, cell in enumerate(row):
            lines = (cell or " ").splitlines() or [" "]
            out.append(("   * - " if i == 0 else "     - ") + lines[0])
            out.extend("       " + ln for ln in lines[1:])
    return "\n".join(out) + "\n\n"


def short_name(e: CodeElement) -> str:
    """``Class.method`` or ``test_function``: the last part(s) of an element's name."""
    if e.kind == "test":
        return e.name.rpartition("::")[2]
    return ".".join(e.name.split(".")[-2:])


def doc_inline(doc: str) -> str:
    """The first paragraph of a model docstring (reStructuredText already), on one line."""
    return _first_paragraph(doc)


def status_role(status: str) -> str:
    return f":status-{_slug(status).replace('_', '-')}:`{status}`"


STATUS_ROLES = (
    "".join(
        f".. role:: status-{_slug(s).replace('_', '-')}\n"
        for s in (
            *STATUSES,
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
    + "\n"
)


def raw_details(summary: str, body: str) -> str:
    """A collapsed HTML ``<details>`` block around reStructuredText ``body``."""
    summary = summary.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (
        f'.. raw:: html\n\n   <details class="mbmssec-source"><summary>{summary}'
        f"</summary>\n\n{body.rstrip()}\n\n.. raw:: html\n\n   </details>\n\n"
    )


def fmt_universe(u: Mapping[str, int]) -> str:
    def n(count: int, word: str) -> str:
        return f"{count} {word}{'' if count == 1 else 's'}"

    return (
        f"{n(u['ue'], 'UE')}, {n(u['svc'], 'service')}, {n(u['tek'], 'TEK')}, "
        f"{n(u['pkt'], 'packet')}"
    )


# -- the generator --------------------------------------------------------------------------


class _Writer:
    """Writes files under the generated folder, touching only those whose content changed
    (so incremental Sphinx builds stay incremental) and removing the ones not written."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.written: set[Path] = set()

    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        self.written.add(path)
        return path

    def prune(self) -> None:
        for path in sorted(self.root.rglob("*"), reverse=True):
            if path.is_file() and path not in self.written:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()


def clause_status(inp: Inputs, clause: Clause) -> tuple[str, str]:
    """The clause's status and a sentence saying why."""
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
        verdicts = {p.number: inp.verdict(p.number) for p in props}
        refuted = [n for n, v in verdicts.items() if v is not None and v.verdict == "refuted"]
        missing = [n for n, v in verdicts.items() if v is None]
        if refuted:
            return "refuted", (
                "Property "
                + ", ".join(f"P{n}" for n in refuted)
                + " that supports it is refuted in the baseline."
            )
        if missing:
            return "unknown", ("No proof result for " + ", ".join(f"P{n}" for n in missing) + ".")
        if all(v is not None and v.verdict == "proved" for v in verdicts.values()):
            return "proved", (
                "Every property that supports it ("
                + ", ".join(f"P{n}" for n in verdicts)
                + ") is proved."
            )
        return "unknown", "Some supporting property is neither proved nor refuted."
    if inp.tagged_by_actions(clause.id) or inp.elements_for(clause.id, "test"):
        return "tested only", (
            "Encoded by model actions and exercised by exploration and "
            "tests, but no property states it."
        )
    return "not modelled", "No model action or property is tagged with it."


def profile_title(inp: Inputs, proposal: str | None) -> str:
    if proposal is None:
        return "baseline"
    return f"proposal {proposal}"


class Generator:
    """Writes every generated page for one set of inputs."""

    def __init__(self, inp: Inputs, out: Path) -> None:
        self.inp = inp
        self.out = out
        self.w = _Writer(out)
        self.charts: dict[tuple[str | None, int], str] = {}  # (proposal, n) -> rel path

    # -- helpers -------------------------------------------------------------------------

    def model_for(self, overrides: Mapping[str, str]) -> Any:
        from mbmssec.model.machine import Model

        prof = self.inp.spec.profile(dict(overrides))
        return Model(prof, all_actions=self.inp.actions, properties=self.inp.properties)

    def chart(self, proposal: str | None, v: VerdictResult, profile: ProfileResult) -> str | None:
        """Draw the counterexample of ``v`` as an SVG chart (once) and return its path
        relative to the generated folder."""
        key = (proposal, v.number)
        if key in self.charts:
            return self.charts[key]
        if v.trace is None:
            return None
        from mbmssec.proofs.msc import svg_from_json

        stem = f"{'baseline' if proposal is None else proposal}-P{v.number}"
        try:
            svg = svg_from_json(
                v.trace,
                self.model_for(profile.overrides),
                f"{profile.title}: property {v.number} ({v.name})",
            )
        except (ModelError, SpecError, KeyError, TypeError, ValueError) as exc:
            self.inp.problems.append(
                Problem(
                    f"{self.inp.results.path if self.inp.results else 'results'}: the "
                    f"counterexample to property {v.number} under "
                    f"{profile_title(self.inp, proposal)} does not replay on the current model "
                    f"({exc}); the results are stale, re-run `mbmssec check`"
                )
            )
            return None
        marker = f"arrow-{_slug(stem)}"
        svg = svg.replace('id="arrow"', f'id="{marker}"').replace("url(#arrow)", f"url(#{marker})")
        self.w.write(f"msc/{stem}.svg", svg)
        self.w.write(f"msc/{stem}.json", json.dumps(v.trace, indent=2) + "\n")
        from mbmssec.model.trace import Trace
        from mbmssec.proofs.pytest_export import pytest_source

        self.w.write(
            f"msc/test_{_slug(stem)}.py",
            pytest_source(Trace.from_json(v.trace), profile.overrides, v.number, v.name),
        )
        self.charts[key] = f"msc/{stem}.svg"
        return self.charts[key]

    def chart_block(
        self, page_depth: int, proposal: str | None, v: VerdictResult, profile: ProfileResult
    ) -> str:
        rel = self.chart(proposal, v, profile)
        if rel is None:
            return ""
        up = "../" * page_depth
        stem = Path(rel).stem
        steps = len(v.trace.get("steps", [])) if v.trace else 0
        return (
            f".. container:: mbmssec-msc\n\n"
            f"   .. raw:: html\n      :file: {up}{rel}\n\n"
            f"Counterexample to P{v.number} under {esc(profile_title(self.inp, proposal))}"
            f" ({steps} steps; :need:`{trace_need_id(proposal, v.number)}`): "
            f":download:`trace JSON <{up}msc/{stem}.json>`, "
            f":download:`SVG <{up}{rel}>`, "
            f":download:`pytest replay <{up}msc/test_{_slug(stem)}.py>`.\n\n"
        )

    def outcome(self, e: CodeElement) -> str | None:
        """The test's outcome in the JUnit report (``None`` without one)."""
        if self.inp.outcomes is None:
            return None
        return self.inp.outcomes.get(e.name, "not run")

    def test_refs(self, tests: Sequence[CodeElement]) -> str:
        return ", ".join(
            f":need:`{e.need_id}`" + (f" ({status_role(o)})" if (o := self.outcome(e)) else "")
            for e in tests
        )

    def verdict_cell(self, v: VerdictResult | None) -> str:
        if v is None:
            return status_role("no result")
        return status_role(v.verdict)

    def solver_cell(self, v: VerdictResult | None) -> str:
        if v is None:
            return ""
        return f"{v.query_seconds:.3f} s ({v.queries} queries)"

    def how_cell(self, v: VerdictResult | None, profile: ProfileResult | None) -> str:
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

    def action_source(self, act: Action, collapsed: bool) -> str:
        try:
            lines, start = inspect.getsourcelines(act.body)
            file = _rel(Path(inspect.getsourcefile(act.body) or ""))
        except (OSError, TypeError):
            return "*(source not available)*\n\n"
        code = (
            f".. code-block:: python\n   :lineno-start: {start}\n"
            f"   :caption: {file}, line {start}\n\n" + indent("".join(lines)) + "\n\n"
        )
        if collapsed:
            return raw_details(f"Source of {act.name} ({file}, line {start})", code)
        return code

    # -- pages -----------------------------------------------------------------------------

    def run(self) -> None:
        self.actions_page()
        for prop in self.inp.properties:
            self.property_page(prop)
        self.properties_index()
        for name in self.inp.spec.options:
            self.option_page(self.inp.spec.options[name])
        self.options_index()
        for proposal in self.inp.proposals:
            self.proposal_page(proposal)
        self.proposals_index()
        numbers = list(dict.fromkeys(c.clause for c in self.inp.spec.clauses.values()))
        for number in numbers:
            self.clause_page(number)
        self.clauses_index(numbers)
        self.code_page()
        self.proofs_page()
        self.traceability_page()
        self.security_review_page()
        self.cli_page()
        self.measured_pages()
        self.proposal_format_page()
        self.problems_page()
        self.w.prune()

    # model actions

    def actions_page(self) -> str:
        inp = self.inp
        out = [STATUS_ROLES, heading("Model actions", "=")]
        out.append(
            "Every action of the model (``model/actions.py``), with the clauses it "
            "encodes, the options it reads and its source. Each action is one guarded "
            "update, read both on Python values (exploration, traces) and by Z3 "
            "(proofs).\n\n"
        )
        wit = inp.results.baseline.witnesses if inp.results else {}
        for act in inp.actions:
            out.append(heading(act.name, "-"))
            try:
                src = inspect.getsource(act.body)
            except (OSError, TypeError):
                src = ""
            reads = [o for o in inp.spec.options if f'prof["{o}"]' in src]
            applies = [p.name for p in inp.proposals if not act.applies(p.profile)]
            out.append(
                need(
                    "action",
                    act.name,
                    action_need_id(act.name),
                    fields={"actor": act.actor, "modifies": ", ".join(sorted(act.modifies))},
                    links={
                        "encodes": [
                            clause_need_id(c) for c in act.clauses if c in inp.spec.clauses
                        ],
                        "reads": [option_need_id(o) for o in reads],
                    },
                    content=inspect.cleandoc(act.doc),
                )
            )
            n = wit.get(act.name)
            if inp.results is not None:
                out.append(
                    f"Vacuity witness in the baseline: {n} step{'s' if n != 1 else ''} (the "
                    "action is enabled in a reachable state).\n\n"
                    if n is not None
                    else "**No vacuity witness in the baseline**: the action was never enabled "
                    "within the search depth.\n\n"
                )
            if not act.applies(inp.spec.baseline()):
                out.append("This action does not exist under the baseline profile.\n\n")
            if applies:
                out.append(
                    "Absent under the proposals "
                    + ", ".join(f":need:`{proposal_need_id(p)}`" for p in applies)
                    + ".\n\n"
                )
            out.append(self.action_source(act, collapsed=False))
        return str(self.w.write("model/actions.rst", "".join(out)))

    # properties

    def property_page(self, prop: Property) -> None:
        inp = self.inp
        res = inp.results
        v = inp.verdict(prop.number)
        out = [STATUS_ROLES, heading(f"Property {prop.number}: {prop.title}", "=")]
        out.append(
            need(
                "mproperty",
                f"P{prop.number} {prop.title}",
                property_need_id(prop.number),
                status=v.verdict if v else "no result",
                fields={"number": prop.number, "kind": prop.kind, "bound": prop.bound},
                links={
                    "supports": [clause_need_id(c) for c in prop.clauses if c in inp.spec.clauses]
                },
                content=esc(prop.doc),
            )
        )
        kind_text = {
            "invariant": "an invariant: a state formula that must hold in every reachable state",
            "step": "a step property: it relates the pre- and post-state of every transition",
            "response": (
                "a bounded response property: from every reachable state satisfying "
                f"its premise, a plan of {prop.bound} steps is enabled and reaches "
                "its goal"
            ),
        }.get(prop.kind, prop.kind)
        out.append(
            f"P{prop.number} is {kind_text}. Clauses it supports: "
            + ", ".join(
                f":need:`{clause_need_id(c)}`" for c in prop.clauses if c in inp.spec.clauses
            )
            + ".\n\n"
        )
        if prop.plan:
            out.append("Plan: " + " then ".join(f"``{name}``" for name, _ in prop.plan) + ".\n\n")
        out.append(heading("Verdict in the baseline", "-"))
        if res is None or v is None:
            out.append(
                "**No proof result** for this property in the results "
                f"(``{inp.results_dir / RESULTS_FILE}``).\n\n"
            )
        else:
            out.append(
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
                        "universe": (
                            fmt_universe(res.baseline.universe) if v.verdict == "refuted" else None
                        ),
                    },
                    links={"proves": [property_need_id(prop.number)]},
                )
            )
            out.append(
                f"Verdict: {status_role(v.verdict)} — {self.how_cell(v, res.baseline)}. "
                f"Solver time of its induction queries: {self.solver_cell(v)}; the "
                f"whole baseline check took {res.baseline.seconds:.1f} s (induction "
                f"{res.baseline.induction_seconds:.1f} s, bounded search "
                f"{res.baseline.bmc_seconds:.1f} s).\n\n"
            )
            if v.lemmas:
                out.append(
                    "Lemmas the proof used (each itself proved inductive): "
                    + ", ".join(f"``{lm}``" for lm in v.lemmas)
                    + ".\n\n"
                )
            if v.verdict == "refuted":
                out.append(self.trace_need(None, v, res.baseline))
                out.append(self.chart_block(1, None, v, res.baseline))
        out.append(heading("Under each proposal", "-"))
        rows = []
        blocks = []
        for p in inp.proposals:
            pv = inp.verdict(prop.number, p.name)
            pr = res.proposals.get(p.name) if res else None
            change = ""
            if pr is not None:
                change = (
                    "breaks"
                    if prop.number in pr.broken
                    else "fixes"
                    if prop.number in pr.fixed
                    else "no longer proved"
                    if prop.number in pr.weakened
                    else "no change"
                )
            rows.append(
                [
                    f":need:`{p.name} <{proposal_need_id(p.name)}>`",
                    status_role("not checked") if pr is None else self.verdict_cell(pv),
                    status_role(change) if change else "",
                    esc(pv.how) if pv else "",
                ]
            )
            if pr is not None and pv is not None and change == "breaks":
                blocks.append(self.chart_block(1, p.name, pv, pr.report))
        out.append(
            list_table(["proposal", "verdict", "change", "how"], rows, widths=[30, 12, 14, 44])
        )
        out.extend(blocks)
        self.w.write(f"properties/p{prop.number}.rst", "".join(out))

    def trace_need(self, proposal: str | None, v: VerdictResult, profile: ProfileResult) -> str:
        if v.trace is None:
            return ""
        steps = v.trace.get("steps", [])
        return need(
            "trace",
            f"Counterexample to P{v.number} under {profile_title(self.inp, proposal)}",
            trace_need_id(proposal, v.number),
            fields={
                "steps": len(steps) if isinstance(steps, list) else None,
                "universe": fmt_universe(profile.universe),
                "profile": profile_title(self.inp, proposal),
            },
            links={"refutes": [proof_need_id(proposal, v.number)]},
        )

    def properties_index(self) -> None:
        inp = self.inp
        rows = []
        for prop in inp.properties:
            v = inp.verdict(prop.number)
            rows.append(
                [
                    f":doc:`P{prop.number} <p{prop.number}>`",
                    esc(prop.title),
                    prop.kind,
                    self.verdict_cell(v),
                    self.solver_cell(v),
                ]
            )
        out = [
            STATUS_ROLES,
            heading("Properties", "="),
            "The key-lifecycle properties of the model (``model/properties.py``) and "
            "their verdicts in the baseline.\n\n",
            list_table(["property", "title", "kind", "baseline", "solver time"], rows),
            ".. toctree::\n   :hidden:\n\n",
        ]
        out += [f"   p{p.number}\n" for p in inp.properties]
        self.w.write("properties/index.rst", "".join(out) + "\n")

    # options and proposals

    def option_page(self, opt: Option) -> None:
        inp = self.inp
        res = inp.results
        out = [STATUS_ROLES, heading(f"Option {opt.name}", "=")]
        out.append(
            need(
                "ffsoption",
                opt.name,
                option_need_id(opt.name),
                status="neutral" if opt.neutral else "modelled",
                fields={
                    "values": ", ".join(opt.values),
                    "baseline": opt.baseline,
                    "model": opt.model,
                },
                links={"captures": [clause_need_id(c) for c in opt.clauses]},
                content=esc(opt.doc),
            )
        )
        out.append(
            "Clauses: " + ", ".join(f":need:`{clause_need_id(c)}`" for c in opt.clauses) + ".\n\n"
        )
        if opt.neutral:
            out.append(
                f"The model is the same for every value: "
                f"{esc(opt.model.removeprefix('neutral: '))}.\n\n"
            )
        readers = [a for a in inp.actions if self._reads(a, opt.name)]
        if readers:
            out.append(
                "Read by the actions "
                + ", ".join(f":need:`{action_need_id(a.name)}`" for a in readers)
                + ".\n\n"
            )
        if opt.requires:
            out.append(
                "Constraints: "
                + "; ".join(f"``{v}`` requires ``{r}``" for v, r in opt.requires.items())
                + ".\n\n"
            )
        out.append(heading("What each value breaks", "-"))
        for value in opt.values:
            out.append(
                heading(
                    f"{opt.name} = {value}" + (" (baseline)" if value == opt.baseline else ""), "~"
                )
            )
            if value == opt.baseline:
                if res is not None:
                    refuted = [v for v in res.baseline.verdicts.values() if v.verdict == "refuted"]
                    out.append(
                        "The baseline. Refuted there: "
                        + (
                            ", ".join(f":need:`{property_need_id(v.number)}`" for v in refuted)
                            or "nothing"
                        )
                        + ".\n\n"
                    )
                continue
            props = [p for p in inp.proposals if p.overrides.get(opt.name) == value]
            if not props:
                out.append("No shipped proposal sets this value.\n\n")
                continue
            for p in props:
                out.append(self.difference_text(p, depth=1))
        self.w.write(f"options/{opt.name}.rst", "".join(out))

    def _reads(self, act: Action, option: str) -> bool:
        try:
            return f'prof["{option}"]' in inspect.getsource(act.body)
        except (OSError, TypeError):
            return False

    def difference_text(self, p: Proposal, depth: int) -> str:
        """One proposal's verdict difference from the baseline, with the charts of the
        properties it breaks."""
        res = self.inp.results
        pr = res.proposals.get(p.name) if res else None
        head = f":need:`{proposal_need_id(p.name)}`"
        if pr is None:
            return (
                f"{head}: {status_role('not checked')} — the results have no verdicts "
                f"for it (run ``mbmssec check --all --out DIR``).\n\n"
            )
        parts = []
        for label, nums in (
            ("breaks", pr.broken),
            ("no longer proves", pr.weakened),
            ("fixes", pr.fixed),
        ):
            if nums:
                parts.append(
                    f"{label} " + ", ".join(f":need:`{property_need_id(n)}`" for n in nums)
                )
        text = f"{head}: " + ("; ".join(parts) if parts else "no verdict changes") + ".\n\n"
        for n in pr.broken:
            v = pr.report.verdicts.get(n)
            if v is not None:
                text += self.chart_block(depth, p.name, v, pr.report)
        return text

    def options_index(self) -> None:
        inp = self.inp
        rows = []
        for opt in inp.spec.options.values():
            rows.append(
                [
                    f":doc:`{opt.name}`",
                    ", ".join(f"``{v}``" for v in opt.values),
                    f"``{opt.baseline}``",
                    status_role("neutral" if opt.neutral else "modelled"),
                    ", ".join(f":need:`{clause_need_id(c)}`" for c in opt.clauses),
                ]
            )
        out = [
            STATUS_ROLES,
            heading("FFS options", "="),
            "Every open point of the text (an editor's note or FFS) is a named option "
            "(``spec/options.toml``); the baseline takes the value the text as written "
            "implies. Each page shows what the other values break.\n\n",
            list_table(["option", "values", "baseline", "model", "clauses"], rows),
            ".. toctree::\n   :hidden:\n\n",
        ]
        out += [f"   {name}\n" for name in inp.spec.options]
        self.w.write("options/index.rst", "".join(out) + "\n")

    def proposal_status(self, p: Proposal) -> str:
        res = self.inp.results
        pr = res.proposals.get(p.name) if res else None
        if pr is None:
            return "not checked"
        bad = bool(pr.broken or pr.weakened)
        if bad and pr.fixed:
            return "breaks and fixes"
        return "breaks" if bad else "fixes" if pr.fixed else "no change"

    def proposal_page(self, p: Proposal) -> None:
        inp = self.inp
        res = inp.results
        pr = res.proposals.get(p.name) if res else None
        out = [STATUS_ROLES, heading(f"Proposal {p.name}: {p.title}", "=")]
        out.append(
            need(
                "proposal",
                f"{p.name}: {p.title}",
                proposal_need_id(p.name),
                status=self.proposal_status(p),
                fields={"overrides": ", ".join(f"{k}={v}" for k, v in p.overrides.items())},
                links={
                    "touches": [clause_need_id(c) for c in p.clauses],
                    "sets": [option_need_id(o) for o in p.overrides],
                },
                content=esc(p.rationale),
            )
        )
        out.append(
            f"File: ``{_rel(p.path)}``. Options: "
            + (
                ", ".join(f":need:`{option_need_id(k)}` = ``{v}``" for k, v in p.overrides.items())
                or "none"
            )
            + ".\n\n"
        )
        out.append(heading("Clauses it touches", "-"))
        rows = []
        for cid in p.clauses:
            clause = inp.spec.clauses[cid]
            rows.append(
                [
                    f":need:`{clause_need_id(cid)}`",
                    esc(clause.statement),
                    esc(p.replacements.get(cid, "")) or "(unchanged)",
                ]
            )
        out.append(
            list_table(
                ["clause", "current statement", "proposed statement"], rows, widths=[20, 40, 40]
            )
        )
        out.append(heading("Verdicts", "-"))
        expect = (
            "expected: breaks "
            + (", ".join(map(str, p.expect_broken)) or "nothing")
            + "; fixes "
            + (", ".join(map(str, p.expect_fixed)) or "nothing")
        )
        if pr is None:
            out.append(
                f"{status_role('not checked')}: the results "
                f"(``{inp.results_dir / RESULTS_FILE}``) have no verdicts for this "
                f"proposal; run ``mbmssec check --all --out DIR`` ({esc(expect)}).\n\n"
            )
        else:
            out.append(
                f"Status: {status_role(self.proposal_status(p))} ({esc(expect)}). "
                f"Checked in {pr.report.seconds:.1f} s (induction "
                f"{pr.report.induction_seconds:.1f} s, bounded search "
                f"{pr.report.bmc_seconds:.1f} s over "
                f"{fmt_universe(pr.report.universe)}, depth ≤ {pr.report.depth}).\n\n"
            )
            for err in pr.expectation_errors:
                out.append(f".. warning::\n\n   {esc(err)}\n\n")
            rows = []
            for prop in inp.properties:
                bv = inp.verdict(prop.number)
                pv = pr.report.verdicts.get(prop.number)
                change = (
                    "breaks"
                    if prop.number in pr.broken
                    else "fixes"
                    if prop.number in pr.fixed
                    else "no longer proved"
                    if prop.number in pr.weakened
                    else "no change"
                )
                rows.append(
                    [
                        f":need:`P{prop.number} <{property_need_id(prop.number)}>`",
                        self.verdict_cell(bv),
                        self.verdict_cell(pv),
                        status_role(change),
                        self.solver_cell(pv),
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
            out.append(heading("Proof results", "-"))
            for prop in inp.properties:
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
            changed = [n for n in (*pr.broken, *pr.fixed, *pr.weakened)]
            for prop in inp.properties:
                pv = pr.report.verdicts.get(prop.number)
                if pv is None or pv.verdict != "refuted":
                    continue
                out.append(self.trace_need(p.name, pv, pr.report))
                block = self.chart_block(1, p.name, pv, pr.report)
                if prop.number in changed:
                    out.append(block)
                else:
                    out.append(
                        raw_details(
                            f"Counterexample to P{prop.number} (refuted in the baseline too)", block
                        )
                    )
        self.w.write(f"proposals/{p.name}.rst", "".join(out))

    def proposals_index(self) -> None:
        inp = self.inp
        res = inp.results
        rows = []
        for p in inp.proposals:
            pr = res.proposals.get(p.name) if res else None
            rows.append(
                [
                    f":doc:`{p.name}`",
                    esc(p.title),
                    ", ".join(f"``{k}={v}``" for k, v in p.overrides.items()),
                    status_role(self.proposal_status(p)),
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
        out += [f"   {p.name}\n" for p in inp.proposals]
        self.w.write("proposals/index.rst", "".join(out) + "\n")

    # clauses

    def clause_page(self, number: str) -> None:
        inp = self.inp
        res = inp.results
        clauses = [c for c in inp.spec.clauses.values() if c.clause == number]
        title = f"Clause {number}" if number[0].isdigit() else f"Clause: {number}"
        out = [STATUS_ROLES, heading(title, "=")]
        summary_rows = []
        for c in clauses:
            status, _ = clause_status(inp, c)
            summary_rows.append(
                [
                    f"`{c.id}`_",
                    c.kind,
                    status_role(status),
                    ", ".join(f"P{p.number}" for p in inp.tagged_by_properties(c.id)),
                ]
            )
        out.append(
            list_table(
                ["statement", "kind", "status", "properties"], summary_rows, widths=[40, 20, 20, 20]
            )
        )
        for c in clauses:
            status, why = clause_status(inp, c)
            out.append(heading(c.id, "-"))
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
            acts = inp.tagged_by_actions(c.id)
            props = inp.tagged_by_properties(c.id)
            out.append(heading("Model actions", "~"))
            if acts:
                for act in acts:
                    out.append(
                        f"* :need:`{action_need_id(act.name)}` ({act.actor}): "
                        f"{doc_inline(act.doc)}\n"
                    )
                out.append("\n")
                for act in acts:
                    out.append(self.action_source(act, collapsed=True))
            else:
                out.append("None.\n\n")
            out.append(heading("Properties and proof verdicts", "~"))
            if props:
                rows = []
                for p in props:
                    v = inp.verdict(p.number)
                    rows.append(
                        [
                            f":need:`P{p.number} <{property_need_id(p.number)}>` {esc(p.title)}",
                            self.verdict_cell(v),
                            self.how_cell(v, res.baseline if res else None),
                            self.solver_cell(v),
                        ]
                    )
                out.append(
                    list_table(
                        ["property", "baseline verdict", "how", "solver time"],
                        rows,
                        widths=[30, 14, 40, 16],
                    )
                )
                for p in props:
                    v = inp.verdict(p.number)
                    if res is not None and v is not None and v.verdict == "refuted":
                        out.append(self.chart_block(1, None, v, res.baseline))
            else:
                out.append("No property states this clause.\n\n")
            related = [
                q
                for q in inp.proposals
                if c.id in q.clauses
                or any(c.id in inp.spec.options[o].clauses for o in q.overrides)
            ]
            if related:
                out.append(heading("Proposed changes and what they break", "~"))
                for q in related:
                    out.append(self.difference_text(q, depth=1))
            impls = inp.elements_for(c.id, "impl")
            tests = inp.elements_for(c.id, "test")
            out.append(heading("Implementation and tests", "~"))
            if impls:
                out.append(
                    "Implemented by: " + ", ".join(f":need:`{e.need_id}`" for e in impls) + ".\n\n"
                )
            else:
                out.append("No implementation element is linked to this clause.\n\n")
            if tests:
                out.append("Tested by: " + self.test_refs(tests) + ".\n\n")
            else:
                out.append("No test is linked to this clause.\n\n")
        self.w.write(f"clauses/{number}.rst", "".join(out))

    def clauses_index(self, numbers: list[str]) -> None:
        inp = self.inp
        rows = []
        for c in inp.spec.clauses.values():
            status, _ = clause_status(inp, c)
            rows.append(
                [
                    f":need:`{clause_need_id(c.id)}`",
                    f":doc:`{c.clause} <{c.clause}>`",
                    c.kind,
                    status_role(status),
                    esc(c.summary),
                ]
            )
        counts = {
            s: sum(1 for c in inp.spec.clauses.values() if clause_status(inp, c)[0] == s)
            for s in STATUSES
        }
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
        self.w.write("clauses/index.rst", "".join(out) + "\n")

    # implementation and tests

    def code_page(self) -> None:
        inp = self.inp
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
        for e in (x for x in inp.elements if x.kind == "impl"):
            out.append(
                need(
                    "impl",
                    e.name.removeprefix("mbmssec."),
                    e.need_id,
                    fields={"source": f"{e.file}:{e.line}"},
                    links={"implements": [clause_need_id(c) for c in e.clauses]},
                    content=esc(e.doc),
                )
            )
        out.append(heading("Tests", "-"))
        for e in (x for x in inp.elements if x.kind == "test"):
            targets = (
                [clause_need_id(c) for c in e.clauses]
                + [CodeElement("impl", t, "", 0, "", ()).need_id for t in e.impl]
                + [property_need_id(n) for n in e.properties]
            )
            out.append(
                need(
                    "test",
                    e.name,
                    e.need_id,
                    status=self.outcome(e),
                    fields={"source": f"{e.file}:{e.line}"},
                    links={"verifies": targets},
                    content=esc(e.doc),
                )
            )
        res = inp.results
        if res is not None:
            out.append(heading("Counterexample regression tests", "-"))
            out.append(
                "``mbmssec check --out`` writes each counterexample as a pytest file "
                "that replays it on the executable model and asserts the violation.\n\n"
            )
            entries: list[tuple[str | None, ProfileResult]] = [(None, res.baseline)]
            entries += [
                (name, pr.report)
                for name, pr in res.proposals.items()
                if name in {p.name for p in inp.proposals}
            ]
            for proposal, report in entries:
                for v in report.verdicts.values():
                    if v.trace is None:
                        continue
                    stem = f"{'baseline' if proposal is None else proposal}-P{v.number}"
                    fname = f"test_{_slug(stem)}.py"
                    written = fname in res.files
                    out.append(
                        need(
                            "test",
                            fname,
                            f"TEST_CEX_{profile_key(proposal)}_{v.number}",
                            fields={
                                "source": f"{res.path.parent.name}/{fname}" if written else None
                            },
                            links={"verifies": [trace_need_id(proposal, v.number)]},
                            content=f"Replays the counterexample to P{v.number} under "
                            f"{esc(profile_title(inp, proposal))}.",
                        )
                    )
        self.w.write("implementation.rst", "".join(out))

    # proofs

    def proofs_page(self) -> None:
        inp = self.inp
        res = inp.results
        out = [STATUS_ROLES, heading("Proof results", "=")]
        if res is None:
            out.append("**No results**: run ``mbmssec check --all --out DIR``.\n\n")
            self.w.write("proofs.rst", "".join(out))
            return
        b = res.baseline
        fresh = res.model_hash == inp.current_hash
        out.append(
            f"From ``{res.path}``, model hash ``{res.model_hash[:16]}`` ("
            + (
                "matches the sources"
                if fresh
                else f"**stale**: the sources hash to ``{inp.current_hash[:16]}``"
            )
            + ").\n\n"
        )
        out.append(
            f"The baseline check took {b.seconds:.1f} s: the inductive proofs "
            f"{b.induction_seconds:.1f} s, bounded model checking {b.bmc_seconds:.1f} s to "
            f"depth {b.depth} over {fmt_universe(b.universe)}. A *proved* property is an "
            "inductive invariant (with lemmas), so it holds for every population size; a "
            "*refuted* one has a shortest counterexample within that universe and depth, "
            "replayed on the executable model.\n\n"
        )
        out.append(heading("Vacuity witnesses", "-"))
        out.append(
            "Each action is enabled in some reachable state (witness length in "
            "steps); without that a proof could hold vacuously.\n\n"
        )
        out.append(
            list_table(
                ["action", "witness"],
                [
                    [
                        f":need:`{action_need_id(a)}`"
                        if any(x.name == a for x in inp.actions)
                        else f"``{a}``",
                        str(n) if n is not None else "**none**",
                    ]
                    for a, n in b.witnesses.items()
                ],
                widths=[60, 40],
            )
        )
        out.append(heading("Inductive invariant", "-"))
        out.append(
            "Conjuncts that survived the fixpoint (properties and lemmas): "
            + ", ".join(f"``{x}``" for x in b.invariant)
            + ".\n\n"
        )
        if b.dropped:
            out.append(
                "Dropped (not inductive): "
                + "; ".join(f"``{k}`` ({esc(v)})" for k, v in b.dropped.items())
                + ".\n\n"
            )
        out.append(heading("Verdicts of every profile", "-"))
        out.append(self.verdict_matrix())
        self.w.write("proofs.rst", "".join(out))

    def verdict_matrix(self) -> str:
        inp = self.inp
        res = inp.results
        header = ["profile", *[f"P{p.number}" for p in inp.properties]]
        rows = [["baseline", *[self.verdict_cell(inp.verdict(p.number)) for p in inp.properties]]]
        for p in inp.proposals:
            if res is None or p.name not in res.proposals:
                rows.append(
                    [
                        f":doc:`{p.name} </{GENERATED}/proposals/{p.name}>`",
                        *[status_role("not checked") for _ in inp.properties],
                    ]
                )
                continue
            rows.append(
                [
                    f":doc:`{p.name} </{GENERATED}/proposals/{p.name}>`",
                    *[self.verdict_cell(inp.verdict(q.number, p.name)) for q in inp.properties],
                ]
            )
        return list_table(header, rows, css="mbmssec-matrix")

    # traceability

    def traceability_page(self) -> None:
        inp = self.inp
        out = [STATUS_ROLES, heading("Traceability matrix", "=")]
        out.append(
            "Every clause with the model actions that encode it, the properties that "
            "support it, the open choice it belongs to, and the implementation and "
            "tests linked to it (incoming links of the clause objects).\n\n"
        )
        rows = []
        for c in inp.spec.clauses.values():
            status, _ = clause_status(inp, c)
            opts = [o.name for o in inp.spec.options.values() if c.id in o.clauses]
            rows.append(
                [
                    f":need:`{clause_need_id(c.id)}`",
                    status_role(status),
                    ", ".join(
                        f":need:`{action_need_id(a.name)}`" for a in inp.tagged_by_actions(c.id)
                    ),
                    ", ".join(
                        f":need:`P{p.number} <{property_need_id(p.number)}>`"
                        for p in inp.tagged_by_properties(c.id)
                    ),
                    ", ".join(f":need:`{option_need_id(o)}`" for o in opts),
                    ", ".join(
                        f":need:`{short_name(e)} <{e.need_id}>`"
                        for e in inp.elements_for(c.id, "impl")
                    ),
                    ", ".join(
                        f":need:`{short_name(e)} <{e.need_id}>`"
                        for e in inp.elements_for(c.id, "test")
                    ),
                ]
            )
        out.append(
            list_table(
                ["clause", "status", "actions", "properties", "option", "implementation", "tests"],
                rows,
                css="mbmssec-trace",
                widths=[14, 8, 16, 8, 12, 20, 22],
            )
        )
        out.append(
            "The same links as sphinx-needs objects (the incoming links of each clause):\n\n"
        )
        out.append(
            ".. needtable::\n   :types: clause\n   :style: table\n"
            "   :sort: clause_id\n"
            '   :columns: id;status;encodes_back as "actions";'
            'supports_back as "properties";captures_back as "option";'
            'implements_back as "implementation";verifies_back as "tests"\n\n'
        )
        out.append(heading("Properties", "-"))
        out.append(
            ".. needtable::\n   :types: mproperty\n   :style: table\n"
            '   :columns: id;title;status;supports as "clauses";'
            'proves_back as "proof results";verifies_back as "tests"\n\n'
        )
        out.append(heading("Verdicts by profile", "-"))
        out.append(self.verdict_matrix())
        out.append(heading("Counterexamples", "-"))
        out.append(
            ".. needtable::\n   :types: trace\n   :style: table\n"
            '   :columns: id;title;steps;refutes as "proof result";'
            'verifies_back as "replay test"\n\n'
        )
        self.w.write("traceability.rst", "".join(out))

    # security review

    def measured_pages(self) -> None:
        """Re-keying load (simulated now) and the newest benchmark results."""
        bench_dir = self.w.root.parent.parent / "results" / "bench"
        self.w.write("load.rst", docs_pages.load_page(bench_dir))
        text, images = docs_pages.bench_page(bench_dir, self.w.root / "bench")
        self.w.written.update(images)
        self.w.write("benchmarks.rst", text)

    def security_review_page(self) -> None:
        inp = self.inp
        res = inp.results
        out = [STATUS_ROLES, heading("Security review", "=")]
        out.append(
            "Every key-lifecycle property of the model, its status for the text as written "
            "(the baseline), what the result assumes and what it does not cover. Generated "
            "from the model and the checker's results; the statuses are those of the "
            "results this documentation was built from.\n\n"
        )
        out.append(heading("Properties", "-"))
        rows = []
        for prop in inp.properties:
            v = inp.verdict(prop.number)
            if v is None:
                scope = "no proof result"
            elif v.verdict == "proved":
                scope = (
                    "unbounded: every population size"
                    if prop.bound is None
                    else f"bounded: the recovery plan's {prop.bound} steps, from every "
                    "reachable state, every population size"
                )
            elif v.verdict == "refuted" and res is not None:
                scope = (
                    f"counterexample found by bounded model checking over "
                    f"{fmt_universe(res.baseline.universe)}, depth ≤ "
                    f"{res.baseline.depth}"
                )
            else:
                scope = (
                    "neither proved nor refuted; no counterexample within depth "
                    f"{res.baseline.depth} over {fmt_universe(res.baseline.universe)}"
                    if res
                    else "unknown"
                )
            rows.append(
                [
                    f":need:`P{prop.number} <{property_need_id(prop.number)}>`",
                    esc(prop.title),
                    self.verdict_cell(v),
                    esc(scope),
                    ", ".join(f"``{x}``" for x in v.lemmas) if v else "",
                    ", ".join(
                        f":need:`{clause_need_id(c)}`"
                        for c in prop.clauses
                        if c in inp.spec.clauses
                    ),
                ]
            )
        out.append(
            list_table(
                ["property", "title", "status", "scope of the result", "lemmas used", "clauses"],
                rows,
                widths=[8, 18, 10, 26, 22, 16],
            )
        )
        out.append(heading("What the results assume", "-"))
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
        for act in inp.actions:
            if act.actor == "attacker":
                out.append(f"  * :need:`{action_need_id(act.name)}`: {doc_inline(act.doc)}\n")
        out.append("\n* **The network and radio environment** behave as these actions allow:\n\n")
        for act in inp.actions:
            if act.actor == "net":
                out.append(f"  * :need:`{action_need_id(act.name)}`: {doc_inline(act.doc)}\n")
        out.append(
            "\n* **The options** take their baseline values unless a proposal says "
            "otherwise: "
            + ", ".join(
                f":need:`{option_need_id(o.name)}` = ``{o.baseline}``"
                for o in inp.spec.options.values()
            )
            + ".\n"
        )
        if res is not None:
            missing = [a for a, n in res.baseline.witnesses.items() if n is None]
            out.append(
                "* **Non-vacuity**: "
                + (
                    "every action is enabled in some reachable state (replayed witnesses, "
                    f"up to {max((n for n in res.baseline.witnesses.values() if n), default=0)}"
                    " steps)"
                    if not missing
                    else "NOT shown for " + ", ".join(missing)
                )
                + ".\n"
            )
            out.append(
                f"* **Lemmas**: the proofs use {len(res.baseline.invariant)} "
                "invariant conjuncts, each proved inductive together (see "
                ":doc:`proofs`).\n"
            )
            out.append(
                f"* **Bounded results**: counterexamples are shortest within "
                f"{fmt_universe(res.baseline.universe)} and depth "
                f"{res.baseline.depth}; a property refuted only in a larger universe "
                "or deeper would show as *unknown*, never as *proved*.\n"
            )
        out.append("\n")
        out.append(heading("What is not covered", "-"))
        out.append(heading("Clauses the model leaves out", "~"))
        rows = [
            [f":need:`{clause_need_id(c.id)}`", c.kind, esc(c.why or c.summary)]
            for c in inp.spec.clauses.values()
            if not c.modelled or c.kind == "out-of-scope"
        ]
        out.append(list_table(["clause", "kind", "why"], rows, widths=[25, 15, 60]) or "None.\n\n")
        out.append(heading("Clauses no property states", "~"))
        rows = []
        for c in inp.spec.clauses.values():
            status, _ = clause_status(inp, c)
            if status == "tested only" or (
                status == "not modelled" and c.modelled and c.kind != "out-of-scope"
            ):
                rows.append(
                    [
                        f":need:`{clause_need_id(c.id)}`",
                        c.kind,
                        status_role(status),
                        ", ".join(
                            f":need:`{action_need_id(a.name)}`" for a in inp.tagged_by_actions(c.id)
                        )
                        or "none",
                    ]
                )
        out.append(
            list_table(["clause", "kind", "status", "encoded by"], rows, widths=[30, 15, 15, 40])
            or "None.\n\n"
        )
        out.append(heading("Options the model does not distinguish", "~"))
        rows = [
            [f":need:`{option_need_id(o.name)}`", esc(o.model.removeprefix("neutral: "))]
            for o in inp.spec.options.values()
            if o.neutral
        ]
        out.append(
            list_table(
                ["option", "why the model is the same for every value"], rows, widths=[25, 75]
            )
            or "None.\n\n"
        )
        out.append(heading("Capabilities absent under some proposals", "~"))
        rows = []
        for p in inp.proposals:
            gone = [
                a
                for a in inp.actions
                if a.applies(inp.spec.baseline()) and not a.applies(p.profile)
            ]
            if gone:
                rows.append(
                    [
                        f":need:`{proposal_need_id(p.name)}`",
                        ", ".join(f":need:`{action_need_id(a.name)}`" for a in gone),
                        "A property that holds there holds because the action is gone: the "
                        "model does not show the replacement mechanism secure.",
                    ]
                )
        out.append(
            list_table(["proposal", "actions absent", "consequence"], rows, widths=[25, 25, 50])
            or "None.\n\n"
        )
        if res is not None:
            out.append(heading("Proposals whose verdicts are not all settled", "~"))
            rows = []
            for name, pr in res.proposals.items():
                unknown = [n for n, v in pr.report.verdicts.items() if v.verdict == "unknown"]
                if unknown and name in {p.name for p in inp.proposals}:
                    rows.append(
                        [f":need:`{proposal_need_id(name)}`", ", ".join(f"P{n}" for n in unknown)]
                    )
            out.append(list_table(["proposal", "unknown"], rows) or "None.\n\n")
            unchecked = [p for p in inp.proposals if p.name not in res.proposals]
            if unchecked:
                out.append(heading("Proposals not checked in these results", "~"))
                out.append(
                    ", ".join(f":need:`{proposal_need_id(p.name)}`" for p in unchecked) + ".\n\n"
                )
        self.w.write("security_review.rst", "".join(out))

    # command line

    def cli_page(self) -> None:
        import argparse
        import functools

        from mbmssec.cli import build_parser

        parser = build_parser()
        out = [heading("Command-line reference", "=")]
        out.append(
            "Generated from the argument parser of ``mbmssec`` (``mbmssec.cli."
            "build_parser``). Exit status: 0 success, 1 a property or check failed, "
            "2 bad input.\n\n"
        )
        out.append(".. code-block:: text\n\n" + indent(self._help(parser)) + "\n\n")
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        for action in subs:
            for name, sub in sorted(action.choices.items()):
                sub.formatter_class = functools.partial(sub.formatter_class, width=96)
                out.append(heading(f"mbmssec {name}", "-"))
                rows = []
                for a in sub._actions:
                    if isinstance(a, argparse._HelpAction):
                        continue
                    names = ", ".join(f"``{s}``" for s in a.option_strings) or f"``{a.dest}``"
                    default = (
                        ""
                        if a.default in (None, False, [], argparse.SUPPRESS) or not a.option_strings
                        else f"``{a.default}``"
                    )
                    rows.append(
                        [
                            names,
                            esc(str(a.metavar or "")),
                            default,
                            esc(str(a.help or "").replace("%(default)s", str(a.default))),
                        ]
                    )
                out.append(".. code-block:: text\n\n" + indent(self._help(sub)) + "\n\n")
                out.append(
                    list_table(
                        ["argument", "value", "default", "meaning"], rows, widths=[25, 15, 15, 45]
                    )
                )
        self.w.write("cli.rst", "".join(out))

    @staticmethod
    def _help(parser: Any) -> str:
        import argparse
        import functools

        parser.formatter_class = functools.partial(
            parser.formatter_class
            if parser.formatter_class is not argparse.HelpFormatter
            else argparse.HelpFormatter,
            width=96,
        )
        return str(parser.format_help()).rstrip()

    # included sources and problems

    def proposal_format_page(self) -> None:
        from mbmssec.proofs.check import PROPOSALS_DIR

        readme = PROPOSALS_DIR / "README.md"
        try:
            text = readme.read_text(encoding="utf-8")
        except OSError:
            self.inp.problems.append(Problem(f"{readme}: cannot read the proposal format"))
            text = "# Proposal format\n\n(missing)\n"
        self.w.write("proposal_format.md", text)

    def problems_page(self) -> None:
        out = [heading("Build problems", "=")]
        findings = [p.message for p in self.inp.problems] + coverage_findings(self.inp)
        if not findings:
            out.append(
                "None: every normative clause has a model element, every property a "
                "proof result, every refuted property a counterexample, and the "
                "results are those of the current model.\n"
            )
        else:
            out.append("The strict build fails on each of these:\n\n")
            out += [f"* {esc(m)}\n" for m in findings]
        self.w.write("problems.rst", "".join(out) + "\n")


def coverage_findings(inp: Inputs) -> list[str]:
    """The gaps the sphinx-needs rules (:data:`COVERAGE_CHECKS`) fail the build on, as the
    generator sees them (listed on the problems page)."""
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


def generate(
    srcdir: Path,
    results_dir: Path,
    *,
    actions: Sequence[Action] | None = None,
    properties: Sequence[Property] | None = None,
    spec: Spec | None = None,
    junit: Path | None = None,
) -> list[Problem]:
    """Write the generated pages into ``srcdir/_generated`` and return the problems that
    must fail a strict build (the coverage of clauses and properties is checked by
    sphinx-needs on the generated objects, see :func:`register_checks`)."""
    inp = collect(
        results_dir,
        actions=actions,
        properties=properties,
        spec=spec,
        links_file=srcdir / LINKS_FILE,
        junit=junit,
    )
    Generator(inp, srcdir / GENERATED).run()
    write_problems(srcdir, inp.problems)
    return inp.problems


# -- coverage rules run by sphinx-needs on the generated objects --------------------------


def check_clause_covered(need_item: NeedItem, log: SphinxLoggerAdapter) -> bool:
    """A normative, modelled clause must be encoded by an action or supported by a
    property."""
    if need_item["type"] != "clause" or need_item["kind"] != "normative":
        return False
    if need_item["modelled"] == "no":
        return False
    if need_item["encodes_back"] or need_item["supports_back"]:
        return False
    log.warning(
        f"clause {need_item['clause_id']}: normative, but no model element "
        "(no action in model/actions.py or property in model/properties.py is "
        "tagged with it; tag one, or set modelled = false with a why in "
        "spec/clauses.toml)",
        type="mbmssec",
        subtype="coverage",
        location=(need_item["docname"], need_item["lineno"]),
    )
    return True


def check_property_proved(need_item: NeedItem, log: SphinxLoggerAdapter) -> bool:
    """Every property needs a proof result for the baseline."""
    if need_item["type"] != "mproperty":
        return False
    if any(str(x).startswith(f"PR_{profile_key(None)}_") for x in need_item["proves_back"]):
        return False
    log.warning(
        f"property {need_item['number']} ({need_item['title']}): no proof result "
        "for the baseline in the results (run `mbmssec check --all --out DIR`)",
        type="mbmssec",
        subtype="coverage",
        location=(need_item["docname"], need_item["lineno"]),
    )
    return True


def check_refutation_traced(need_item: NeedItem, log: SphinxLoggerAdapter) -> bool:
    """A refuted proof result needs its counterexample trace."""
    if need_item["type"] != "proof" or need_item["status"] != "refuted":
        return False
    if need_item["refutes_back"]:
        return False
    log.warning(
        f"proof result {need_item['id']} ({need_item['title']}): refuted, but the "
        "results carry no counterexample trace",
        type="mbmssec",
        subtype="coverage",
        location=(need_item["docname"], need_item["lineno"]),
    )
    return True


COVERAGE_CHECKS: dict[str, Callable[[Any, Any], bool]] = {
    "normative clause with no model element": check_clause_covered,
    "property with no proof result": check_property_proved,
    "refuted property with no counterexample trace": check_refutation_traced,
}


# -- Sphinx extension -----------------------------------------------------------------------


def _on_builder_inited(app: Sphinx) -> None:
    from sphinx.util import logging

    logger = logging.getLogger("mbmssec.docs")
    srcdir = Path(app.srcdir)
    results = Path(app.config.mbmssec_results or (srcdir / "_build" / "results"))
    if not results.is_absolute():
        results = (srcdir / results).resolve()
    if not app.config.mbmssec_generate:
        problems_file = srcdir / GENERATED / "problems.json"
        problems = (
            [Problem(**p) for p in json.loads(problems_file.read_text())]
            if problems_file.exists()
            else []
        )
    else:
        junit = Path(app.config.mbmssec_junit) if app.config.mbmssec_junit else None
        try:
            problems = generate(srcdir, results, junit=junit)
        except (DocsError, SpecError) as exc:
            logger.warning(
                f"cannot generate the documentation: {exc}", type="mbmssec", subtype="input"
            )
            return
    for p in problems:
        logger.warning(p.message, type="mbmssec", subtype="check", location=p.location)


def write_problems(srcdir: Path, problems: Sequence[Problem]) -> None:
    """Record problems next to pages generated outside Sphinx (``mbmssec_generate =
    False`` builds report them)."""
    path = srcdir / GENERATED / "problems.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps([{"message": p.message, "location": p.location} for p in problems], indent=2)
        + "\n",
        encoding="utf-8",
    )


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the generator (``builder-inited``) and the coverage rules."""
    from sphinx_needs.api.configuration import add_warning

    app.setup_extension("sphinx_needs")
    app.add_config_value("mbmssec_results", "", "env", types=(str,))
    app.add_config_value("mbmssec_generate", True, "env", types=(bool,))
    app.add_config_value("mbmssec_junit", "", "env", types=(str,))
    app.connect("builder-inited", _on_builder_inited)
    for name, check in COVERAGE_CHECKS.items():
        add_warning(app, name, function=check)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}

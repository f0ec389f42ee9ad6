"""Which implementation elements and tests serve which clause.

The links come from ``docs/traceability.toml`` (``[[impl]]`` and ``[[test]]`` entries) and
from clause ids written in docstrings of ``impl/`` definitions and ``tests/`` test
functions.  Every entry must name something real: a function, class or test that does
not exist, an unknown clause id or property number is a :class:`Problem`, never dropped
silently.  Test outcomes can be read from a JUnit XML report.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mbmssec.docgen.needs import impl_need_id, testcase_need_id
from mbmssec.docgen.paths import ROOT, rel
from mbmssec.docgen.problems import DocsError, Problem
from mbmssec.spec.loader import Spec

Definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


@dataclass(frozen=True)
class CodeElement:
    """A function, class or test the documentation links to clauses."""

    kind: str
    """``impl`` or ``test``."""
    name: str
    """Dotted name (``mbmssec.impl...``) of an implementation element, or
    ``tests/file.py::func`` of a test."""
    file: str
    """Path relative to the checkout."""
    line: int
    doc: str
    """First paragraph of the docstring."""
    clauses: tuple[str, ...]
    impl: tuple[str, ...] = ()
    """Tests only: the implementation elements they exercise."""
    properties: tuple[int, ...] = ()
    """Tests only: the properties they check."""
    origin: str = "traceability.toml"

    @property
    def need_id(self) -> str:
        """The id of the element's sphinx-needs object."""
        return impl_need_id(self.name) if self.kind == "impl" else testcase_need_id(self.name)


# -- reading sources -----------------------------------------------------------------------


def _defs(tree: ast.Module) -> Iterator[tuple[str, Definition]]:
    """Every function and class of a module with its qualified name."""

    def walk(body: list[ast.stmt], prefix: str) -> Iterator[tuple[str, Definition]]:
        for node in body:
            if isinstance(node, Definition):
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


def first_paragraph(doc: str | None) -> str:
    """The first paragraph of a docstring, on one line."""
    return " ".join((doc or "").strip().split("\n\n")[0].split())


def _module_file(module: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


def _resolve_impl(dotted: str) -> tuple[Path, Definition] | None:
    """The file and definition of ``package.module.Qual.name``."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        path = _module_file(".".join(parts[:cut]))
        if path is None:
            continue
        tree = _parse(path)
        if tree is None:
            return None
        qual = ".".join(parts[cut:])
        return next(((path, node) for name, node in _defs(tree) if name == qual), None)
    return None


def _resolve_test(ref: str) -> tuple[Path, Definition] | None:
    """The file and definition of ``tests/file.py::func`` (or ``::Class::func``)."""
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


def _int_list(value: Any) -> list[int] | None:
    if isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        return list(value)
    return None


# -- the traceability file -----------------------------------------------------------------


class _LinkReader:
    """Reads the traceability file into elements, collecting a problem for every entry
    that names nothing real."""

    def __init__(self, path: Path, spec: Spec, property_numbers: set[int]) -> None:
        self.path = path
        self.spec = spec
        self.property_numbers = property_numbers
        self.problems: list[Problem] = []
        self.elements: dict[tuple[str, str], CodeElement] = {}

    def problem(self, message: str) -> None:
        self.problems.append(Problem(f"{self.path}: {message}", str(self.path)))

    def read_file(self) -> dict[str, Any]:
        try:
            data = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            self.problem("no traceability file")
            return {}
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise DocsError(f"{self.path}: {exc}") from None
        unknown = set(data) - {"impl", "test"}
        if unknown:
            self.problem(f"unknown tables {sorted(unknown)} (allowed: [[impl]], [[test]])")
        return data

    def known_clauses(self, ids: Sequence[str], where: str) -> tuple[str, ...]:
        for cid in ids:
            if cid not in self.spec.clauses:
                self.problem(f"{where}: unknown clause id {cid!r} (not in spec/clauses.toml)")
        return tuple(cid for cid in ids if cid in self.spec.clauses)

    def read_impl(self, where: str, item: Any) -> None:
        entry = item if isinstance(item, dict) else {}
        obj, ids = entry.get("object"), _str_list(entry.get("clauses"))
        if not isinstance(obj, str) or ids is None:
            self.problem(f'{where}: expected object = "dotted.name" and clauses = [...]')
            return
        found = _resolve_impl(obj)
        if found is None:
            self.problem(f"{where}: {obj!r} names no function or class (broken link)")
            return
        file, node = found
        self.elements[("impl", obj)] = CodeElement(
            "impl",
            obj,
            rel(file),
            node.lineno,
            first_paragraph(ast.get_docstring(node)),
            self.known_clauses(ids, f"{where} ({obj})"),
        )

    def read_test(self, where: str, item: Any) -> None:
        entry = item if isinstance(item, dict) else {}
        ref = entry.get("test")
        ids = _str_list(entry.get("clauses", []))
        impls = _str_list(entry.get("impl", []))
        props = _int_list(entry.get("properties", []))
        if not isinstance(ref, str) or ids is None or impls is None or props is None:
            self.problem(
                f'{where}: expected test = "tests/file.py::name", clauses = [...], '
                "optional impl = [...] and properties = [numbers]"
            )
            return
        found = _resolve_test(ref)
        if found is None:
            self.problem(f"{where}: {ref!r} names no test (broken link)")
            return
        for n in props:
            if n not in self.property_numbers:
                self.problem(f"{where} ({ref}): unknown property {n}")
        file, node = found
        self.elements[("test", ref)] = CodeElement(
            "test",
            ref,
            rel(file),
            node.lineno,
            first_paragraph(ast.get_docstring(node)),
            self.known_clauses(ids, f"{where} ({ref})"),
            impl=tuple(impls),
            properties=tuple(n for n in props if n in self.property_numbers),
        )

    def check_test_targets(self) -> None:
        """A test's ``impl`` entries must be ``[[impl]]`` entries; others are dropped."""
        for key, el in list(self.elements.items()):
            missing = [t for t in el.impl if ("impl", t) not in self.elements]
            for target in missing:
                self.problem(f"test {el.name}: impl {target!r} is not an [[impl]] entry")
            if missing:
                self.elements[key] = replace(el, impl=tuple(t for t in el.impl if t not in missing))

    def merge(self, found: Iterable[CodeElement]) -> None:
        """Add elements linked by their docstrings (merging clauses into known ones)."""
        for el in found:
            key = (el.kind, el.name)
            old = self.elements.get(key)
            if old is None:
                self.elements[key] = el
                continue
            self.elements[key] = replace(
                old,
                clauses=tuple(dict.fromkeys(old.clauses + el.clauses)),
                origin=old.origin + ", docstring",
            )

    def check_need_ids(self) -> None:
        """Two elements must not map to the same object id."""
        seen: dict[str, str] = {}
        for el in self.elements.values():
            if el.need_id in seen and seen[el.need_id] != el.name:
                self.problem(
                    f"{el.name} and {seen[el.need_id]} map to the same need id {el.need_id}"
                )
            seen[el.need_id] = el.name


def load_links(
    path: Path, spec: Spec, property_numbers: set[int]
) -> tuple[list[CodeElement], list[Problem]]:
    """Implementation and test elements linked to clauses, from the traceability file and
    from clause ids written in docstrings (``impl/`` definitions and ``tests/`` test
    functions).  Entries that name nothing real are problems, not silently dropped."""
    reader = _LinkReader(path, spec, property_numbers)
    data = reader.read_file()
    for i, item in enumerate(data.get("impl", [])):
        reader.read_impl(f"impl[{i}]", item)
    for i, item in enumerate(data.get("test", [])):
        reader.read_test(f"test[{i}]", item)
    reader.check_test_targets()
    reader.merge(docstring_links(spec))
    reader.check_need_ids()
    elements = sorted(reader.elements.values(), key=lambda e: (e.kind, e.name))
    return elements, reader.problems


# -- clause ids in docstrings --------------------------------------------------------------


def _linked_sources() -> Iterator[tuple[str, Path, Path | None]]:
    """``impl/`` modules (with the folder of the package) and ``tests/`` test modules."""
    init = _module_file("mbmssec.impl")
    if init is not None:
        for path in sorted(init.parent.rglob("*.py")):
            yield "impl", path, init.parent
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        yield "test", path, None


def _element_name(kind: str, path: Path, package: Path | None, qual: str) -> str | None:
    """The element name of a definition, or ``None`` if it is no element (a helper
    function of a test module)."""
    if kind == "impl" and package is not None:
        sub = path.relative_to(package).with_suffix("").parts
        return ".".join(("mbmssec.impl", *sub, qual))
    if qual.rpartition(".")[2].startswith("test_"):
        return f"{rel(path)}::{qual.replace('.', '::')}"
    return None


def docstring_links(spec: Spec) -> list[CodeElement]:
    """Definitions in ``impl/`` and test functions in ``tests/`` whose docstrings name a
    clause id."""
    pattern = re.compile(
        "|".join(re.escape(c) for c in sorted(spec.clauses, key=len, reverse=True))
    )
    out: list[CodeElement] = []
    for kind, path, package in _linked_sources():
        tree = _parse(path)
        for qual, node in _defs(tree) if tree is not None else ():
            doc = ast.get_docstring(node)
            found = tuple(dict.fromkeys(pattern.findall(doc or "")))
            name = _element_name(kind, path, package, qual) if found else None
            if name is None:
                continue
            out.append(
                CodeElement(
                    kind,
                    name,
                    rel(path),
                    node.lineno,
                    first_paragraph(doc),
                    found,
                    origin="docstring",
                )
            )
    return out


# -- test outcomes -------------------------------------------------------------------------


def _outcome(case: Any) -> str:
    if case.find("failure") is not None or case.find("error") is not None:
        return "failed"
    return "skipped" if case.find("skipped") is not None else "passed"


def _test_key(classname: str, name: str) -> str:
    """The traceability name of a JUnit test case: the class name is the module path,
    then the class (if any); parameters are dropped."""
    base = name.split("[", 1)[0]
    parts = classname.split(".")
    for cut in range(len(parts), 1, -1):
        file = "/".join(parts[:cut]) + ".py"
        if (ROOT / file).is_file():
            return "::".join([file, *parts[cut:], base])
    return "::".join([parts[0] + ".py", *parts[1:], base])


def _merged(outcomes: Mapping[str, set[str]]) -> dict[str, str]:
    return {
        k: ("failed" if "failed" in v else "passed" if "passed" in v else "skipped")
        for k, v in outcomes.items()
    }


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
        if classname and name:
            seen.setdefault(_test_key(classname, name), set()).add(_outcome(case))
    return _merged(seen)

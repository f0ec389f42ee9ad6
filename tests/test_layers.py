"""The layer rule of the layout (README, "Layout"): data flows one way, spec -> model ->
proofs, and impl beside them; only refinement (and docs, bench, the CLI) sees both sides.

Every module of the package is parsed (imports inside functions included) and each import
of a project module is checked against the layers it may use.  The tests may import any
layer but the benchmarks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FOLDERS: Mapping[str, str] = {
    "mbmssec": "mbmssec",
    "mbmssec.spec": "spec",
    "mbmssec.model": "model",
    "mbmssec.proofs": "proofs",
    "mbmssec.impl": "impl",
    "mbmssec.refinement": "refinement",
    "mbmssec.simulation": "simulation",
    "mbmssec.oracles": "oracles",
    "mbmssec.docgen": "docgen",
    "mbmssec.bench": "bench",
}
"""Where each subpackage lives (pyproject.toml's package-dir)."""

BASE = ("mbmssec.errors", "mbmssec")
"""What every layer may use: the root error class and the package's version."""

ALLOWED: Mapping[str, tuple[str, ...]] = {
    "mbmssec": (),
    "mbmssec.__main__": ("mbmssec.cli",),
    "mbmssec.errors": (),
    "mbmssec.spec": (),
    "mbmssec.model": ("mbmssec.spec",),
    "mbmssec.proofs": ("mbmssec.spec", "mbmssec.model"),
    "mbmssec.impl.protocols": (),
    "mbmssec.impl.service": ("mbmssec.spec", "mbmssec.impl.protocols"),
    "mbmssec.impl.net": ("mbmssec.spec", "mbmssec.impl.protocols", "mbmssec.impl.service"),
    "mbmssec.impl": (),
    "mbmssec.refinement": ("mbmssec.spec", "mbmssec.model", "mbmssec.proofs", "mbmssec.impl"),
    "mbmssec.simulation": ("mbmssec.spec", "mbmssec.impl.service"),
    "mbmssec.oracles": ("mbmssec.impl.protocols",),
    "mbmssec.docgen": (
        "mbmssec.spec",
        "mbmssec.model",
        "mbmssec.proofs",
        "mbmssec.impl",
        "mbmssec.refinement",
        "mbmssec.simulation",
    ),
    "mbmssec.bench": (
        "mbmssec.spec",
        "mbmssec.model",
        "mbmssec.proofs",
        "mbmssec.impl",
        "mbmssec.refinement",
        "mbmssec.simulation",
        "mbmssec.oracles",
    ),
    "mbmssec.cli": ("mbmssec.commands",),
    "mbmssec.commands": (
        "mbmssec.cli",
        "mbmssec.commands",
        "mbmssec.spec",
        "mbmssec.model",
        "mbmssec.proofs",
        "mbmssec.impl",
        "mbmssec.refinement",
        "mbmssec.simulation",
        "mbmssec.docgen",
        "mbmssec.bench",
    ),
}
"""For each layer (longest prefix wins), the other layers it may import."""


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _layer(module: str) -> str:
    matches = [layer for layer in ALLOWED if _within(module, layer)]
    if not matches:
        raise AssertionError(f"{module} belongs to no layer; add it to ALLOWED")
    return max(matches, key=len)


def modules() -> Iterator[tuple[str, Path]]:
    """Every module of the package with its dotted name."""
    for package, folder in FOLDERS.items():
        base = ROOT / folder
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(base).with_suffix("").parts
            if package == "mbmssec" and rel and rel[0] in {f for f in FOLDERS.values()}:
                continue
            parts = [p for p in rel if p != "__init__"]
            yield ".".join([package, *parts]), path


def imports_of(module: str, path: Path) -> Iterator[tuple[int, str]]:
    """Every project module that ``path`` imports, with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node.lineno, target
            for alias in node.names:
                yield node.lineno, f"{target}.{alias.name}"


def _resolves(name: str) -> str | None:
    """The project layer an imported name belongs to, or None if it is not ours."""
    if not _within(name, "mbmssec"):
        return None
    if name == "mbmssec.__version__" or name in BASE:
        return "base"
    if _within(name, "mbmssec.errors"):
        return "base"
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if _within(name, layer):
            return layer
    return None  # `from mbmssec import x` names x; the x entry is checked on its own


def upward_imports(module: str, path: Path) -> list[tuple[int, str, str]]:
    """(line, imported name, its layer) for each import ``module`` may not make."""
    own = _layer(module)
    allowed = (own, *ALLOWED[own])
    out = []
    for line, name in imports_of(module, path):
        target = _resolves(name)
        if target is None or target == "base" or _within(own, target):
            continue  # not ours, the base, or a parent package of the module itself
        if not any(_within(target, a) for a in allowed):
            out.append((line, name, target))
    return out


def violations() -> list[str]:
    out = []
    for module, path in modules():
        for line, name, target in upward_imports(module, path):
            rel = path.relative_to(ROOT)
            out.append(f"{rel}:{line}: {_layer(module)} imports {name} ({target})")
    return out


def test_no_layer_imports_a_higher_one() -> None:
    assert violations() == []


def test_every_module_is_seen() -> None:
    seen = {m for m, _ in modules()}
    for expected in (
        "mbmssec.cli",
        "mbmssec.impl.protocols.mikey",
        "mbmssec.impl.service.bmsc",
        "mbmssec.impl.net.server",
        "mbmssec.refinement.tracecheck",
        "mbmssec.simulation.load",
        "mbmssec.docgen",
    ):
        assert expected in seen, expected


@pytest.mark.parametrize(
    ("module", "source", "bad"),
    [
        ("mbmssec.model.fake", "from mbmssec.impl.protocols import mikey\n", True),
        ("mbmssec.impl.service.fake", "def f():\n    from mbmssec.model import dsl\n", True),
        ("mbmssec.impl.protocols.fake", "from ..service import bmsc\n", True),
        ("mbmssec.docgen.fake", "import mbmssec.cli\n", True),
        ("mbmssec.spec.fake", "from mbmssec.errors import MbmssecError\n", False),
        ("mbmssec.refinement.fake", "from mbmssec.impl.service import ue\n", False),
    ],
)
def test_the_checker_sees_bad_imports(tmp_path: Path, module: str, source: str, bad: bool) -> None:
    """The rule is not vacuous: a planted upward import (also inside a function, also a
    relative one) is reported, an allowed one is not."""
    path = tmp_path / "fake.py"
    path.write_text(source, encoding="utf-8")
    flagged = upward_imports(module, path)
    assert bool(flagged) == bad, flagged


def test_tests_do_not_import_the_benchmarks() -> None:
    """Benchmarks are run through ``mbmssec bench``; the tests never import them."""
    found = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for line, name in imports_of("tests." + path.stem, path):
            if _within(name, "mbmssec.bench"):
                found.append(f"{path.relative_to(ROOT)}:{line}: {name}")
    assert found == []

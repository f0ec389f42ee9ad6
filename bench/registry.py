"""The project's benchmarks, registered once, and how a benchmark module is loaded.

:data:`MODULES` lists the module of every benchmark of the project, in the order they
run (cheap ones first); each module describes itself with its ``BENCHMARK``
(:class:`mbmssec.bench.benchmark.Benchmark`). A run may add other modules
(``mbmssec bench --module``): a dotted module name importable from ``sys.path`` or
``PYTHONPATH``, or the path of a ``.py`` file, that defines ``BENCHMARK``.

Loading never stops the suite: a module that is missing, or that needs a third-party
module that is not installed, is *skipped*; one that cannot be imported otherwise (a
syntax error, a missing module of the project itself, an error at import) or defines
no ``BENCHMARK`` is *failed*. Either way it is listed under its module's name without
the ``_bench`` suffix, with the reason.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Final

from mbmssec.bench.benchmark import Benchmark, Status
from mbmssec.errors import MbmssecError

__all__ = [
    "MODULES",
    "BenchError",
    "Entry",
    "NotLoaded",
    "describe_error",
    "entries",
    "entry",
    "load",
    "select",
]

#: The module of every benchmark of the project, in the order they run: cheap ones first.
MODULES: Final = (
    "mbmssec.bench.model_bench",
    "mbmssec.bench.srtp_bench",
    "mbmssec.bench.mikey_bench",
    "mbmssec.bench.load_bench",
    "mbmssec.bench.bmsc_bench",
    "mbmssec.bench.pg_bench",
    "mbmssec.bench.proof_bench",
    "mbmssec.bench.refinement_bench",
    "mbmssec.bench.tracecheck_bench",
)

_PROJECT: Final = "mbmssec"
_SUFFIX: Final = "_bench"


class BenchError(MbmssecError):
    """Bad use of the suite: an unknown benchmark name, two of one name, a bad file."""


class NotLoaded(Exception):
    """A benchmark module could not be loaded: ``status`` skipped or failed, and why."""

    def __init__(self, status: Status, reason: str) -> None:
        super().__init__(reason)
        self.status: Status = status
        self.reason = reason


def describe_error(exc: BaseException) -> str:
    """An exception as ``Type: message`` for a reason in the results."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def is_file(module: str) -> bool:
    """True if ``module`` names a file (``*.py`` or a path) rather than a dotted module."""
    return module.endswith(".py") or "/" in module


def _import_file(path: Path) -> ModuleType:
    """Import the file at ``path`` as a fresh module (named after the file)."""
    if not path.is_file():
        raise NotLoaded("skipped", f"file {path} not found")
    name = "mbmssec_bench_file_" + "".join(c if c.isalnum() else "_" for c in path.stem)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise NotLoaded("failed", f"{path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _import(module: str) -> ModuleType:
    """Import a dotted module or a file; raise :class:`NotLoaded` saying why not."""
    own = {_PROJECT} if is_file(module) else {_PROJECT, module.split(".")[0]}
    try:
        if is_file(module):
            return _import_file(Path(module))
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if not is_file(module) and (missing == module or module.startswith(missing + ".")):
            raise NotLoaded("skipped", f"module {module} not found") from None
        if missing.split(".")[0] in own:
            # A module of the project itself is missing: the benchmark is broken.
            raise NotLoaded("failed", f"import of {module} failed: {describe_error(exc)}") from None
        raise NotLoaded(
            "skipped", f"import of {module} needs a missing module: {missing}"
        ) from None
    except NotLoaded:
        raise
    except (Exception, SystemExit) as exc:  # a broken module must not stop the suite
        raise NotLoaded("failed", f"import of {module} failed: {describe_error(exc)}") from None


def load(module: str) -> Benchmark[Any]:
    """The ``BENCHMARK`` of a module (dotted name or file path).

    Raises :class:`NotLoaded` if the module is missing, cannot be imported, or does
    not define a :class:`Benchmark` as ``BENCHMARK``.
    """
    found = getattr(_import(module), "BENCHMARK", None)
    if found is None:
        raise NotLoaded("failed", f"{module} defines no BENCHMARK")
    if not isinstance(found, Benchmark):
        kind = type(found).__name__
        raise NotLoaded("failed", f"{module}: BENCHMARK is a {kind}, not a Benchmark")
    return found


@dataclass(frozen=True)
class Entry:
    """A benchmark module of a run: its benchmark, or why it could not be loaded.

    ``module`` is a dotted module name or the absolute path of a file; ``status`` and
    ``reason`` are set when ``benchmark`` is None.
    """

    module: str
    benchmark: Benchmark[Any] | None
    status: Status | None = None
    reason: str | None = None

    @property
    def name(self) -> str:
        """The benchmark's name, or its module's name without ``_bench`` if not loaded."""
        if self.benchmark is not None:
            return self.benchmark.name
        stem = Path(self.module).stem if is_file(self.module) else self.module.split(".")[-1]
        return stem.removesuffix(_SUFFIX)

    @property
    def description(self) -> str:
        """The benchmark's one-line description, or empty if not loaded."""
        return self.benchmark.description if self.benchmark is not None else ""


def entry(module: str) -> Entry:
    """Load one module into an :class:`Entry`; never raises for the module's faults."""
    if is_file(module):
        module = str(Path(module).resolve())
    try:
        return Entry(module, load(module))
    except NotLoaded as exc:
        return Entry(module, None, exc.status, exc.reason)


def entries(extra: Iterable[str] = ()) -> list[Entry]:
    """The registered benchmarks, then those of the ``extra`` modules, in that order.

    A module named twice is loaded once. Raises :class:`BenchError` if two benchmarks
    have one name.
    """
    found: list[Entry] = []
    seen: set[str] = set()
    for module in (*MODULES, *extra):
        e = entry(module)
        if e.module in seen:
            continue
        seen.add(e.module)
        clash = next((f for f in found if f.name == e.name), None)
        if clash is not None:
            raise BenchError(f"two benchmarks are named {e.name!r}: {clash.module} and {e.module}")
        found.append(e)
    return found


def select(known: Sequence[Entry], names: Iterable[str] | None) -> list[Entry]:
    """The benchmarks named (by name or module, in suite order); all when ``None``.

    Raises :class:`BenchError` naming the unknown ones and the valid names.
    """
    if names is None:
        return list(known)
    by_alias: dict[str, str] = {}
    for e in known:
        short = Path(e.module).stem if is_file(e.module) else e.module.rsplit(".", 1)[-1]
        for alias in (e.name, short, e.module):
            by_alias.setdefault(alias, e.name)
    wanted: set[str] = set()
    unknown: list[str] = []
    for raw in names:
        name = raw.strip()
        if name in by_alias:
            wanted.add(by_alias[name])
        else:
            unknown.append(raw)
    if unknown:
        valid = ", ".join(e.name for e in known)
        raise BenchError(f"unknown benchmark(s) {', '.join(map(repr, unknown))}; known: {valid}")
    return [e for e in known if e.name in wanted]

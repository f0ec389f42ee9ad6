"""What a benchmark is: the one object a ``*_bench`` module defines to describe itself.

A benchmark module defines ``BENCHMARK``, a :class:`Benchmark` that holds everything the
suite and ``mbmssec bench`` need to know about it: its name and one-line description,
the sizes of a quick and a full run, the function that measures, how its raw result
reads as rows of the results table (:class:`Figure`), the plots drawn from it and the
consistency check that fails it. The project's benchmarks are listed once, in
:mod:`mbmssec.bench.registry`; ``mbmssec bench --module`` adds another one for a run.

A result is a JSON-like mapping; :func:`jsonable` turns numpy values and non-finite
floats into strict JSON. Every figure with a reference carries its ratio (value /
reference), so the table reads the same on any machine when the reference is measured
in the same run.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

__all__ = [
    "Benchmark",
    "Figure",
    "Plot",
    "PlotData",
    "ReferenceKind",
    "Result",
    "Status",
    "generic_figures",
    "jsonable",
]

#: A benchmark's raw result: JSON-like data, keyed by measurement.
Result = Mapping[str, Any]
#: How one benchmark ended: measured, failed (with a reason) or skipped (with a reason).
Status = Literal["ok", "failed", "skipped"]
#: What a figure's reference is: timed in the same run, an analytic bound, or an aim.
ReferenceKind = Literal["measured", "limit", "target", ""]

Size = TypeVar("Size")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class Figure:
    """One figure of a benchmark: a measured value and what it is compared with.

    ``name`` says what was measured (the *Figure* column of the results table);
    ``reference_kind`` is ``measured`` (timed in the same run), ``limit`` (an analytic
    bound such as the uniform load) or ``target`` (an aim set by the project); ``ratio``
    is value / reference_value unless given. ``higher_is_better`` says how to read it.
    """

    name: str
    value: float
    unit: str
    reference: str = ""
    reference_value: float | None = None
    reference_kind: ReferenceKind = ""
    higher_is_better: bool | None = None
    ratio: float | None = None

    def __post_init__(self) -> None:
        if self.ratio is None and self.reference_value:
            ratio = self.value / self.reference_value
            if math.isfinite(ratio):
                object.__setattr__(self, "ratio", ratio)

    def to_json(self, benchmark: str) -> dict[str, Any]:
        """The row of the results file for this figure of ``benchmark``."""
        row: dict[str, Any] = jsonable(
            {
                "benchmark": benchmark,
                "figure": self.name,
                "value": self.value,
                "unit": self.unit,
                "reference": self.reference,
                "reference_value": self.reference_value,
                "reference_kind": self.reference_kind,
                "higher_is_better": self.higher_is_better,
                "ratio": self.ratio,
            }
        )
        return row


@dataclass(frozen=True)
class PlotData:
    """What a plot is drawn from: the benchmark's result and figures, and the run's others.

    ``others`` holds the raw results of the other benchmarks of the same run, by name,
    for a plot that sets its figures against another benchmark's measurement.
    """

    result: Result
    figures: Sequence[Figure]
    others: Mapping[str, Result]


#: Draws a plot into the given PNG file; False when the result has nothing to draw.
DrawPlot = Callable[[PlotData, Path], bool]


@dataclass(frozen=True)
class Plot:
    """One PNG plot of a benchmark: its file name, its title on the results page, its drawing."""

    file: str
    title: str
    draw: DrawPlot


def _numbers(data: Any, path: tuple[str, ...] = ()) -> Iterable[tuple[tuple[str, ...], float]]:
    """Every numeric leaf of nested JSON data, with the keys that lead to it."""
    if isinstance(data, Mapping):
        for key, value in data.items():
            yield from _numbers(value, (*path, str(key)))
    elif isinstance(data, list | tuple):
        for index, value in enumerate(data):
            yield from _numbers(value, (*path, str(index)))
    elif isinstance(data, int | float) and not isinstance(data, bool) and path:
        yield path, float(data)


_RATE_KEY = re.compile(r"(registrations?|requests?)_per_second$")
_REFERENCE_KEY = re.compile(r"(reference|aiohttp|minimal|baseline).*per_second$")


def generic_figures(result: Result) -> list[Figure]:
    """Figures of a benchmark that declares no reading of its own.

    Every numeric leaf named like a rate of registrations or requests is a figure,
    compared with a sibling rate named like a reference; every leaf whose name says
    ``ratio`` is a figure of its own.
    """
    by_parent: dict[tuple[str, ...], list[tuple[str, float]]] = {}
    for path, value in _numbers(result):
        by_parent.setdefault(path[:-1], []).append((path[-1], value))
    rows: list[Figure] = []
    for parent, items in by_parent.items():
        references = [(k, v) for k, v in items if _REFERENCE_KEY.search(k)]
        where = " / ".join(parent)
        for key, value in items:
            label = f"{where}: {key}" if where else key
            if _RATE_KEY.search(key) and not _REFERENCE_KEY.search(key):
                if references:
                    ref_key, ref_value = references[0]
                    reference = f"{ref_key} (same run)"
                    rows.append(Figure(label, value, "1/s", reference, ref_value, "measured", True))
                else:
                    rows.append(Figure(label, value, "1/s"))
            elif "ratio" in key:
                rows.append(Figure(label, value, "x", ratio=value))
    return rows


@dataclass(frozen=True)
class Benchmark(Generic[Size]):
    """A benchmark, described once by its module (as ``BENCHMARK``) and run by the suite.

    ``measure`` does the work for one size and returns the raw result; ``quick`` is
    the size of a quick run (a few seconds to a minute, for CI and a first look) and
    ``full`` the size of a full one. ``figures`` reads the result as rows of the
    results table (by default :func:`generic_figures`), ``plots`` are drawn from it,
    and ``check``, if given, names what is wrong with a result that measured something
    other than intended (the benchmark then counts as failed), or returns None.
    """

    name: str
    description: str
    measure: Callable[[Size], Result]
    quick: Size
    full: Size
    figures: Callable[[Result], Sequence[Figure]] = generic_figures
    plots: tuple[Plot, ...] = ()
    check: Callable[[Result], str | None] | None = None

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"benchmark name {self.name!r}: letters, digits, '_', '.', '-'")
        files = [p.file for p in self.plots]
        if len(set(files)) != len(files):
            raise ValueError(f"benchmark {self.name}: two plots write the same file")

    def size(self, quick: bool) -> Size:
        """The size of a quick or a full run."""
        return self.quick if quick else self.full

    def run(self, quick: bool) -> Result:
        """Measure once at the quick or full size and return the raw result."""
        return self.measure(self.size(quick))


def jsonable(value: Any) -> Any:
    """``value`` as strict JSON data: numpy scalars unwrapped, NaN/inf as None, keys str."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    item = getattr(value, "item", None)  # numpy scalar
    if callable(item):
        with contextlib.suppress(TypeError, ValueError):
            return jsonable(item())
    tolist = getattr(value, "tolist", None)  # numpy array
    if callable(tolist):
        with contextlib.suppress(TypeError, ValueError):
            return jsonable(tolist())
    return str(value)

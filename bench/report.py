"""The results of a benchmark run: results.json, results.md, the plots and the machine.

:func:`write` turns the outcomes of a run into the files ``mbmssec bench`` leaves in its
output directory:

* ``results.json``: ``schema``, ``mode``, ``seconds``, ``machine`` (CPUs, Python,
  libraries, libsrtp and tshark versions, date, commit), ``benchmarks`` (each one's
  module, status, wall time, reason and raw result), ``figures`` (the table's rows),
  ``plots`` (``file`` and ``title``) and ``notes``;
* ``results.md``: the same as a page, with the table *benchmark, figure, value,
  reference, ratio* and the plots;
* the PNG plots each benchmark declares, drawn from its result (a plot of a previous
  run that this run did not draw is removed).

What a benchmark's result means (its figures, plots and check) comes from its own
:class:`~mbmssec.bench.benchmark.Benchmark`; nothing here knows any benchmark by name.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Final

from mbmssec import __version__
from mbmssec.bench.benchmark import (
    Benchmark,
    Figure,
    PlotData,
    Result,
    Status,
    generic_figures,
    jsonable,
)
from mbmssec.bench.registry import BenchError, Entry, describe_error

__all__ = [
    "SCHEMA",
    "Outcome",
    "Report",
    "Row",
    "checked",
    "figures_table",
    "format_ratio",
    "format_value",
    "machine_info",
    "prepare",
    "recorded",
    "replayed",
    "results_markdown",
    "rows",
    "write",
    "write_plots",
]

#: Version of the layout of results.json.
SCHEMA: Final = 1


@dataclass(frozen=True)
class Outcome:
    """What running one benchmark gave: status, wall time, the result dict or why not."""

    name: str
    module: str
    status: Status
    seconds: float
    result: dict[str, Any] | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The outcome as plain JSON values (an entry of ``benchmarks`` in results.json)."""
        return {
            "module": self.module,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "reason": self.reason,
            "result": self.result,
        }


@dataclass(frozen=True)
class Row:
    """One row of the results table: a figure of a named benchmark."""

    benchmark: str
    figure: Figure

    def to_json(self) -> dict[str, Any]:
        """The row as plain JSON values (an entry of ``figures`` in results.json)."""
        return self.figure.to_json(self.benchmark)


# --- figures ----------------------------------------------------------------------------


def rows(outcome: Outcome, benchmark: Benchmark[Any] | None) -> tuple[list[Row], str | None]:
    """The table rows of one outcome, and a note if its result was unreadable.

    ``benchmark`` reads the result (None: a benchmark no longer known, read
    generically). A result missing an expected key gives no rows and a note.
    """
    if outcome.result is None:
        return [], None
    reader = benchmark.figures if benchmark is not None else generic_figures
    try:
        figures = list(reader(outcome.result))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        return [], f"result of {outcome.name} not readable: {describe_error(exc)}"
    return [Row(outcome.name, f) for f in figures], None


# --- formatting -------------------------------------------------------------------------


def _number(value: float) -> str:
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def format_value(value: float | None, unit: str) -> str:
    """A value with its unit, for the table (``check`` values read yes/no)."""
    if value is None:
        return "-"
    if unit == "check":
        return "yes" if value else "NO"
    if unit == "x":
        return f"{_number(value)}x"
    return f"{_number(value)} {unit}".rstrip()


def format_ratio(ratio: float | None) -> str:
    """A ratio with four significant digits, or ``-`` when there is no reference."""
    if ratio is None:
        return "-"
    return f"{ratio:.4g}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _reference_cell(f: Figure) -> str:
    if f.reference_value is None:
        return f.reference or "-"
    return f"{f.reference}: {format_value(f.reference_value, f.unit)}"


def figures_table(table: Sequence[Row]) -> str:
    """The markdown table *Benchmark | Figure | Value | Reference | Ratio*."""
    lines = ["| Benchmark | Figure | Value | Reference | Ratio |", "|---|---|---:|---|---:|"]
    for row in table:
        f = row.figure
        cells = (
            row.benchmark,
            f.name,
            format_value(f.value, f.unit),
            _reference_cell(f),
            format_ratio(f.ratio),
        )
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def _machine_line(machine: Mapping[str, Any]) -> str:
    parts = [
        f"{machine.get('cpu_count')} CPUs ({machine.get('cpus_usable')} usable)",
        str(machine.get("cpu_model") or machine.get("machine") or "unknown CPU"),
        f"Python {machine.get('python')}",
        str(machine.get("libsrtp") or "libsrtp not found"),
        f"tshark {machine.get('tshark') or 'not found'}",
    ]
    commit = machine.get("git_commit")
    if commit:
        parts.append(f"commit {str(commit)[:12]}")
    return ", ".join(parts)


def results_markdown(doc: Mapping[str, Any], table: Sequence[Row]) -> str:
    """The results page: machine, run status of each benchmark, the table, the plots."""
    machine = doc["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"Mode **{doc['mode']}**, {machine.get('date')}, {doc['seconds']:.1f} s in all.  ",
        f"Machine: {_machine_line(machine)}.",
        "",
        "Ratio = value / reference. A reference marked *same run* was measured on this machine "
        "in this run, so the ratio does not depend on the machine's speed. For rates "
        "(packets/s, messages/s, steps/s, UEs/s) a ratio above 1 is faster than the "
        "reference; for times and load peaks a ratio below 1 is better. The uniform limit "
        "N/W is the request rate if every UE fetched once, perfectly evenly, over the fetch "
        "window W; a peak-to-mean of 1.0 is a perfectly even load.",
        "",
        "## Runs",
        "",
        "| Benchmark | Status | Wall time | Note |",
        "|---|---|---:|---|",
    ]
    for name, b in doc["benchmarks"].items():
        note = b.get("reason") or ""
        lines.append(f"| {_cell(name)} | {b['status']} | {b['seconds']:.1f} s | {_cell(note)} |")
    lines += ["", "## Figures", "", figures_table(table) if table else "No figures.", ""]
    if doc.get("notes"):
        lines += ["Notes:", ""] + [f"- {_cell(n)}" for n in doc["notes"]] + [""]
    if doc.get("plots"):
        lines += ["## Plots", ""]
        for plot in doc["plots"]:
            title = plot["title"]
            lines += [f"### {title}", "", f"![{title}]({plot['file']})", ""]
    return "\n".join(lines)


# --- plots ------------------------------------------------------------------------------


def write_plots(
    outcomes: Sequence[Outcome],
    benchmarks: Mapping[str, Benchmark[Any]],
    table: Sequence[Row],
    out: Path,
) -> tuple[list[dict[str, str]], list[str]]:
    """Draw every plot of every benchmark that has a result; return ``[{file, title}]``
    and notes.

    A plot that cannot be drawn (a result missing a key) becomes a note, not an error;
    so does a matplotlib that cannot be imported (then no plot is drawn).
    """
    results = {o.name: o.result for o in outcomes if o.result is not None}
    written: list[dict[str, str]] = []
    notes: list[str] = []
    for outcome in outcomes:
        benchmark = benchmarks.get(outcome.name)
        if outcome.result is None or benchmark is None:
            continue
        others = {n: r for n, r in results.items() if n != outcome.name}
        figures = [r.figure for r in table if r.benchmark == outcome.name]
        data = PlotData(outcome.result, figures, others)
        for plot in benchmark.plots:
            try:
                drawn = plot.draw(data, out / plot.file)
            except ImportError as exc:
                notes.append(f"no plots: matplotlib is not usable ({exc})")
                return written, notes
            except (KeyError, TypeError, ValueError, ZeroDivisionError, IndexError) as exc:
                notes.append(f"plot {plot.file} not drawn: {describe_error(exc)}")
                continue
            if drawn:
                written.append({"file": plot.file, "title": plot.title})
    return written, notes


def _remove_stale(out: Path, benchmarks: Sequence[Benchmark[Any]], keep: set[str]) -> None:
    """Remove plots of a previous run that this run did not redraw (only the benchmarks')."""
    ours = {p.file for b in benchmarks for p in b.plots}
    for name in sorted(ours - keep):
        path = out / name
        if path.is_file():
            path.unlink()


# --- machine --------------------------------------------------------------------------


def _cpu_model() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or None


def _first_line(cmd: Sequence[str], cwd: Path | None = None) -> str | None:
    """First line of a command's standard output, or None if it is missing or fails."""
    if shutil.which(cmd[0]) is None:
        return None
    try:
        done = subprocess.run(
            list(cmd),
            capture_output=True,
            text=True,
            timeout=15,
            cwd=cwd,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = done.stdout.strip().splitlines()
    return lines[0].strip() if done.returncode == 0 and lines else None


def _libsrtp_version() -> str | None:
    try:
        from mbmssec.oracles import libsrtp

        return libsrtp.version() if libsrtp.available() else None
    except Exception:  # the version is informative only
        return None


def machine_info(mode: str) -> dict[str, Any]:
    """What the figures were measured on: date, mode, CPUs, Python and library versions."""
    packages: dict[str, str | None] = {}
    for dist in ("numpy", "cryptography", "z3-solver", "aiohttp", "matplotlib", "hypothesis"):
        try:
            packages[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            packages[dist] = None
    usable: int | None
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    tshark = _first_line(["tshark", "--version"])
    match = re.search(r"\d+\.\d+(\.\d+)?", tshark or "")
    repo = Path(__file__).resolve().parent.parent
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": mode,
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "cpu_model": _cpu_model(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "mbmssec": __version__,
        "git_commit": _first_line(["git", "rev-parse", "HEAD"], cwd=repo),
        "packages": packages,
        "libsrtp": _libsrtp_version(),
        "tshark": match.group(0) if match else None,
    }


# --- the files --------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """A written run: results.json's content (``doc``), its text, and the table's rows."""

    doc: dict[str, Any]
    text: str
    table: list[Row]
    out: Path

    @property
    def failed(self) -> bool:
        """True if a benchmark failed."""
        return any(b["status"] == "failed" for b in self.doc["benchmarks"].values())


def prepare(out: Path) -> None:
    """Create the output directory; :class:`BenchError` if it cannot be one."""
    if out.exists() and not out.is_dir():
        raise BenchError(f"--out {out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"--out {out}: cannot create: {exc.strerror or exc}") from None


def write(
    out: Path,
    outcomes: Sequence[Outcome],
    known: Sequence[Entry],
    *,
    mode: str,
    seconds: float,
    machine: Mapping[str, Any],
) -> Report:
    """Write results.json, results.md and the plots of ``outcomes`` into ``out``.

    ``known`` are the benchmarks of the run (their figures and plots read the results;
    their plot files of a previous run are removed if not drawn again).
    """
    prepare(out)
    benchmarks = {e.name: e.benchmark for e in known if e.benchmark is not None}
    table: list[Row] = []
    notes: list[str] = []
    for outcome in outcomes:
        got, note = rows(outcome, benchmarks.get(outcome.name))
        table.extend(got)
        if note:
            notes.append(note)
    plots, plot_notes = write_plots(outcomes, benchmarks, table, out)
    notes.extend(plot_notes)
    _remove_stale(out, list(benchmarks.values()), {p["file"] for p in plots})
    doc: dict[str, Any] = jsonable(
        {
            "schema": SCHEMA,
            "mode": mode,
            "seconds": seconds,
            "machine": machine,
            "benchmarks": {o.name: o.to_json() for o in outcomes},
            "figures": [r.to_json() for r in table],
            "plots": plots,
            "notes": notes,
        }
    )
    text = json.dumps(doc, indent=2, allow_nan=False)
    (out / "results.json").write_text(text + "\n")
    (out / "results.md").write_text(results_markdown(doc, table))
    return Report(doc, text, table, out)


def recorded(path: Path) -> dict[str, Any]:
    """An earlier run's results.json, checked enough to replay; :class:`BenchError` if not."""
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise BenchError(f"--replay {path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise BenchError(f"--replay {path}: not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), dict):
        raise BenchError(f"--replay {path}: not a results.json of mbmssec bench")
    for name, b in doc["benchmarks"].items():
        if not isinstance(b, dict) or b.get("status") not in ("ok", "failed", "skipped"):
            raise BenchError(f"--replay {path}: benchmark {name!r} has no valid status")
    return doc


def replayed(
    doc: Mapping[str, Any], known: Sequence[Entry], names: Sequence[str] | None
) -> list[Outcome]:
    """The outcomes recorded in a results.json (those ``names``, if given).

    A recorded result is checked again by its benchmark's current check, so a replay
    reads the numbers as a fresh run with today's code would; a benchmark recorded
    without a result keeps its status and reason.
    """
    recorded_runs: Mapping[str, Any] = doc["benchmarks"]
    if names is not None:
        wanted = [n.strip() for n in names]
        unknown = [n for n in wanted if n not in recorded_runs]
        if unknown:
            have = ", ".join(recorded_runs) or "none"
            raise BenchError(
                f"benchmark(s) {', '.join(map(repr, unknown))} not recorded; recorded: {have}"
            )
        recorded_runs = {n: b for n, b in recorded_runs.items() if n in wanted}
    benchmarks = {e.name: e.benchmark for e in known if e.benchmark is not None}
    outcomes = []
    for name, b in recorded_runs.items():
        result = b.get("result")
        status: Status = b["status"]
        reason = b.get("reason")
        benchmark = benchmarks.get(name)
        if isinstance(result, dict) and benchmark is not None:
            problem = checked(benchmark, result)
            status, reason = ("failed", problem) if problem else ("ok", None)
        seconds = b.get("seconds")
        outcomes.append(
            Outcome(
                name,
                str(b.get("module", "")),
                status,
                float(seconds) if isinstance(seconds, int | float) else 0.0,
                result if isinstance(result, dict) else None,
                reason if isinstance(reason, str) else None,
            )
        )
    return outcomes


def checked(benchmark: Benchmark[Any], result: Result) -> str | None:
    """The benchmark's own check of a result: what is wrong with it, or None."""
    if benchmark.check is None:
        return None
    try:
        return benchmark.check(result)
    except Exception as exc:  # a check that cannot read the result fails the benchmark
        return f"check of the result raised {describe_error(exc)}"

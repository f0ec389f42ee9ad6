"""``mbmssec bench``: run every benchmark of the project and write the results page and plots.

Runs the benchmarks registered in :mod:`mbmssec.bench.registry` (each in its own
process, see :mod:`mbmssec.bench.suite`), in a quick mode (a few minutes at most, for
CI and a first look) or a full mode, and writes to ``--out`` (default
``results/bench``):

* ``results.json``: the machine (CPUs, Python, libsrtp, tshark, date, mode), each
  benchmark's status, wall time and raw result, and the table's rows;
* ``results.md``: a markdown table *benchmark, figure, value, reference, ratio*, each
  figure against a reference measured in the same run where one exists, and the plots;
* the PNG plots each benchmark declares.

``--list`` names the benchmarks (``--list --json`` as a JSON list of objects with
``name``, ``module`` and ``description``). ``--module MODULE`` adds a benchmark for
this run: a dotted module name importable from ``PYTHONPATH`` or the path of a ``.py``
file, defining ``BENCHMARK = mbmssec.bench.Benchmark(...)``. ``--replay FILE`` measures
nothing: it reads the raw results of an earlier run's results.json and writes the table,
checks and plots again with today's code.

A benchmark that is missing, cannot be imported, fails, or runs past the timeout is
reported as skipped or failed with the reason; the others still run. Exit status: 0
every benchmark ran (or was skipped), 1 one failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from mbmssec.bench import suite
from mbmssec.bench.registry import Entry, entries, select
from mbmssec.bench.report import Report, figures_table

DEFAULT_OUT: Final = Path("results/bench")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``mbmssec bench``."""
    p = subparsers.add_parser(
        "bench",
        help="run the benchmarks and write results.json, results.md and plots",
        description="Run every benchmark of the project (quick mode by default) and write "
        "results.json, results.md (benchmark, figure, value, reference, ratio) and PNG "
        "plots. Exit 0 if every benchmark ran or was skipped, 1 if one failed, 2 on bad input.",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        dest="full",
        action="store_false",
        help="small sizes, a few minutes at most (default)",
    )
    mode.add_argument(
        "--full",
        dest="full",
        action="store_true",
        help="full sizes (10^7 UEs, BMC to depth 12, ...)",
    )
    mode.add_argument(
        "--replay",
        type=Path,
        metavar="RESULTS_JSON",
        help="measure nothing: write the results of an earlier run's results.json again "
        "(its mode, machine and raw results, read by today's figures, checks and plots)",
    )
    p.add_argument(
        "--only",
        nargs="+",
        action="extend",
        metavar="NAME",
        help="run only these benchmarks (see --list)",
    )
    p.add_argument(
        "--module",
        action="append",
        default=[],
        metavar="MODULE",
        help="also run the benchmark of this module: a dotted module name on PYTHONPATH or "
        "a .py file, defining BENCHMARK = mbmssec.bench.Benchmark(...) (repeatable)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"output directory (default {DEFAULT_OUT})",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print results.json instead of the table (with --list: the list as JSON)",
    )
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    p.add_argument(
        "--timeout",
        type=_positive,
        metavar="SECONDS",
        help="stop a benchmark after this long (default "
        f"{suite.DEFAULT_TIMEOUT['quick']:g} s quick, "
        f"{suite.DEFAULT_TIMEOUT['full']:g} s full)",
    )
    p.add_argument(
        "--in-process",
        action="store_true",
        help="run the benchmarks in this process (no isolation, no timeout)",
    )
    p.set_defaults(func=run, full=False)


def _print_list(known: Sequence[Entry], as_json: bool) -> None:
    if as_json:
        listed = [
            {"name": e.name, "module": e.module, "description": e.description, "problem": e.reason}
            for e in known
        ]
        print(json.dumps(listed, indent=2))
        return
    width = max((len(e.name) for e in known), default=0)
    for e in known:
        state = f"  ({e.status}: {e.reason})" if e.benchmark is None else ""
        print(f"{e.name:<{width}}  {e.description}{state}  [{e.module}]")


def _print_report(report: Report, as_json: bool) -> None:
    if as_json:
        print(report.text)
        return
    doc = report.doc
    print(figures_table(report.table) if report.table else "No figures.")
    for name, b in doc["benchmarks"].items():
        if b["status"] != "ok":
            print(f"{name}: {b['status']}: {b['reason']}")
    for note in doc["notes"]:
        print(f"note: {note}")
    print(
        f"wrote {report.out / 'results.json'}, {report.out / 'results.md'} and "
        f"{len(doc['plots'])} plot(s) in {doc['seconds']:.1f} s"
    )


def run(args: argparse.Namespace) -> int:
    """Handler of ``mbmssec bench``: 0 all ran, 1 a benchmark failed, 2 bad input."""
    known = entries(args.module)
    if args.list:
        _print_list(known, args.json)
        return 0
    if args.replay is not None:
        report = suite.replay_to(args.out, args.replay, known, args.only)
    else:
        chosen = select(known, args.only)
        mode = "full" if args.full else "quick"
        timeout = args.timeout if args.timeout is not None else suite.DEFAULT_TIMEOUT[mode]

        def progress(message: str) -> None:
            print(f"mbmssec bench: {message}", file=sys.stderr, flush=True)

        report = suite.run_to(
            args.out,
            chosen,
            known,
            not args.full,
            isolate=not args.in_process,
            timeout=timeout,
            progress=progress,
        )
    _print_report(report, args.json)
    return 1 if report.failed else 0

"""The benchmark suite: run the registered benchmarks, each in its own process, and report.

The benchmarks are those of :mod:`mbmssec.bench.registry` plus any module a run adds;
each one describes itself (:class:`~mbmssec.bench.benchmark.Benchmark`), so nothing
here knows a benchmark by name. A benchmark that is missing is reported as *skipped*,
one that cannot be imported, raises, returns something other than a dict, fails its own
check or runs past the timeout as *failed*; none of these stops the others.

Each benchmark runs in a fresh Python process by default (``python -m
mbmssec.bench.suite --worker MODULE``), so one benchmark's imports, threads, servers or
a crash cannot disturb the next one's timing, and a hung one can be stopped (with
everything it started) after a timeout; a run can also be made in this process.
:func:`run_to` runs and writes results.json, results.md and the plots
(:mod:`mbmssec.bench.report`); :func:`replay_to` writes them again from an earlier
run's results.json without measuring.

``python -m mbmssec.bench.suite [--full] [--only NAME...] [--module MODULE...]`` prints
the outcomes as JSON; ``mbmssec bench`` writes the results page and plots.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from mbmssec.bench.benchmark import Benchmark, Status, jsonable
from mbmssec.bench.registry import (
    BenchError,
    Entry,
    NotLoaded,
    describe_error,
    entries,
    load,
    select,
)
from mbmssec.bench.report import (
    Outcome,
    Report,
    Row,
    checked,
    figures_table,
    machine_info,
    prepare,
    recorded,
    replayed,
    rows,
)
from mbmssec.bench.report import write as write_report

__all__ = [
    "DEFAULT_TIMEOUT",
    "BenchError",
    "Outcome",
    "Progress",
    "entries",
    "main",
    "measure_here",
    "replay_to",
    "run_benchmark",
    "run_suite",
    "run_to",
    "select",
]

#: Default per-benchmark timeout (seconds) in a separate process, by mode.
DEFAULT_TIMEOUT: Final[Mapping[str, float]] = MappingProxyType({"quick": 240.0, "full": 3600.0})
#: Longest wait between two "still running" messages about an isolated benchmark.
HEARTBEAT: Final = 30.0

Progress = Callable[[str], None]

_WORKER: Final = "mbmssec.bench.suite"
_WORKER_SKIPPED: Final = 3  # worker exit status: module not found
_STDERR_TAIL: Final = 1500  # characters of a failed worker's stderr kept in the reason

#: What measuring one benchmark gave: its status, its result as JSON data, the reason.
Ran = tuple[Status, dict[str, Any] | None, str | None]


def measure_here(benchmark: Benchmark[Any], quick: bool) -> Ran:
    """Measure in this process and check the result; never raises (bar KeyboardInterrupt).

    Returns the status, the result as strict JSON data (None if there is none) and the
    reason it failed.
    """
    try:
        raw = benchmark.run(quick)
    except (Exception, SystemExit) as exc:  # SystemExit: a benchmark must not end the suite
        where = traceback.extract_tb(exc.__traceback__)[-1]
        at = f" (at {Path(where.filename).name}:{where.lineno})"
        return "failed", None, f"measuring raised {describe_error(exc)}{at}"
    if not isinstance(raw, Mapping):
        return "failed", None, f"measuring returned {type(raw).__name__}, not a dict"
    result: dict[str, Any] = jsonable(raw)
    problem = checked(benchmark, result)
    return ("failed" if problem else "ok"), result, problem


def _tail(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _STDERR_TAIL else "..." + text[-_STDERR_TAIL:]


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop the worker and anything it started (it leads its own process group).

    SIGTERM first, so servers can close their files; SIGKILL after a grace period.
    """
    for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:
            # The worker is gone; its children may have ignored SIGTERM.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        return


def _in_subprocess(
    e: Entry,
    quick: bool,
    timeout: float | None,
    progress: Progress | None,
    heartbeat: float,
) -> Ran:
    with tempfile.TemporaryDirectory(prefix="mbmssec-suite-") as tmp:
        out = Path(tmp) / "result.json"
        err = Path(tmp) / "stderr.txt"
        cmd = [sys.executable, "-m", _WORKER, "--worker", e.module, "--result", str(out)]
        if not quick:
            cmd.append("--full")
        env = dict(os.environ, MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
        start = time.perf_counter()
        with open(err, "wb") as err_file:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err_file,
                env=env,
                start_new_session=True,
            )
            try:
                while True:
                    elapsed = time.perf_counter() - start
                    left = None if timeout is None else timeout - elapsed
                    if left is not None and left <= 0:
                        _kill_group(proc)
                        return "failed", None, f"timed out after {timeout:g} s"
                    wait = heartbeat if left is None else min(heartbeat, left)
                    try:
                        proc.wait(timeout=wait)
                        # A server or helper the benchmark left running would skew
                        # the next benchmark: stop what remains of its process group.
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            os.killpg(proc.pid, signal.SIGKILL)
                        break
                    except subprocess.TimeoutExpired:
                        if progress is not None:
                            now = time.perf_counter() - start
                            progress(f"{e.name}: still running, {now:.0f} s")
            except BaseException:
                _kill_group(proc)
                raise
        code = proc.returncode
        stderr = err.read_text(errors="replace")
        payload: dict[str, Any] | None = None
        if out.exists():
            with contextlib.suppress(OSError, ValueError):
                loaded = json.loads(out.read_text())
                payload = loaded if isinstance(loaded, dict) else None
    if payload is not None and payload.get("status") in ("ok", "failed", "skipped"):
        status: Status = payload["status"]
        result = payload.get("result")
        return status, result if isinstance(result, dict) else None, payload.get("reason")
    if code < 0:
        try:
            how = f"killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"killed by signal {-code}"
    else:
        how = f"exited with status {code}"
    detail = _tail(stderr)
    return "failed", None, f"worker {how} without a result" + (f": {detail}" if detail else "")


def run_benchmark(
    e: Entry,
    quick: bool,
    *,
    isolate: bool = True,
    timeout: float | None = None,
    progress: Progress | None = None,
    heartbeat: float = HEARTBEAT,
) -> Outcome:
    """Run one benchmark and return its :class:`Outcome`; never raises for its failures.

    A benchmark whose module did not load is not run: its outcome says why. ``isolate``
    runs it in a new Python process (stopped after ``timeout`` seconds, its whole
    process group killed); otherwise in this process, with no timeout. While an isolated
    benchmark runs, ``progress`` hears from it every ``heartbeat`` seconds.
    """
    start = time.perf_counter()
    if e.benchmark is None:
        status: Status = e.status or "failed"
        return Outcome(e.name, e.module, status, 0.0, None, e.reason)
    if isolate:
        status, result, reason = _in_subprocess(e, quick, timeout, progress, heartbeat)
    else:
        status, result, reason = measure_here(e.benchmark, quick)
    return Outcome(e.name, e.module, status, time.perf_counter() - start, result, reason)


def run_suite(
    chosen: Sequence[Entry],
    quick: bool,
    *,
    isolate: bool = True,
    timeout: float | None = None,
    progress: Progress | None = None,
) -> list[Outcome]:
    """Run each benchmark in turn; a failed or skipped one is recorded and the rest run.

    An isolated benchmark is reported as still running every :data:`HEARTBEAT` seconds,
    or four times within its timeout if that is shorter.
    """
    heartbeat = HEARTBEAT if timeout is None else min(HEARTBEAT, timeout / 4)
    outcomes = []
    mode = "quick" if quick else "full"
    for number, e in enumerate(chosen, 1):
        label = f"[{number}/{len(chosen)}] {e.name}"
        if progress is not None:
            progress(f"{label}: running ({mode})")
        outcome = run_benchmark(
            e, quick, isolate=isolate, timeout=timeout, progress=progress, heartbeat=heartbeat
        )
        if progress is not None:
            why = f": {outcome.reason}" if outcome.reason else ""
            progress(f"{label}: {outcome.status} in {outcome.seconds:.1f} s{why}")
        outcomes.append(outcome)
    return outcomes


def run_to(
    out: Path,
    chosen: Sequence[Entry],
    known: Sequence[Entry],
    quick: bool,
    *,
    isolate: bool = True,
    timeout: float | None = None,
    progress: Progress | None = None,
) -> Report:
    """Run the ``chosen`` benchmarks and write results.json, results.md and plots to ``out``.

    ``known`` are all the benchmarks of the run (for removing their stale plots).
    Raises :class:`BenchError` if ``out`` cannot be a directory (before running).
    """
    prepare(out)
    mode = "quick" if quick else "full"
    start = time.perf_counter()
    outcomes = run_suite(chosen, quick, isolate=isolate, timeout=timeout, progress=progress)
    seconds = time.perf_counter() - start
    return write_report(
        out, outcomes, known, mode=mode, seconds=seconds, machine=machine_info(mode)
    )


def replay_to(
    out: Path, source: Path, known: Sequence[Entry], names: Sequence[str] | None
) -> Report:
    """Write the results of an earlier run (its results.json at ``source``) again to ``out``.

    Nothing is measured: the recorded raw results are read by today's benchmarks (their
    figures, plots and checks), with the recorded mode, machine and times. ``names``
    picks some of the recorded benchmarks.
    """
    doc = recorded(source)
    outcomes = replayed(doc, known, names)
    machine = doc.get("machine")
    seconds = doc.get("seconds")
    return write_report(
        out,
        outcomes,
        known,
        mode=str(doc.get("mode", "?")),
        seconds=float(seconds) if isinstance(seconds, int | float) else 0.0,
        machine=machine if isinstance(machine, dict) else {},
    )


# --- worker / command line -------------------------------------------------------------


def _worker(module: str, quick: bool, result_path: Path) -> int:
    """Run one benchmark in this (child) process and write its outcome as JSON."""
    try:
        status, result, reason = measure_here(load(module), quick)
    except NotLoaded as exc:
        status, result, reason = exc.status, None, exc.reason
    payload = {"status": status, "reason": reason, "result": result}
    result_path.write_text(json.dumps(jsonable(payload), allow_nan=False))
    return _WORKER_SKIPPED if status == "skipped" else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mbmssec.bench.suite``: run the suite and print every outcome as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--full", action="store_true", help="full mode (default quick)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    parser.add_argument(
        "--module",
        action="append",
        default=[],
        metavar="MODULE",
        help="also run the benchmark of this module (dotted name or .py file)",
    )
    parser.add_argument("--worker", metavar="MODULE", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = not args.full
    if args.worker is not None:
        if args.result is None:
            parser.error("--worker needs --result")
        return _worker(args.worker, quick, args.result)
    try:
        chosen = select(entries(args.module), args.only)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    mode = "quick" if quick else "full"
    outcomes = run_suite(
        chosen,
        quick,
        timeout=DEFAULT_TIMEOUT[mode],
        progress=lambda m: print(m, file=sys.stderr, flush=True),
    )
    print(json.dumps(jsonable({o.name: o.to_json() for o in outcomes}), indent=2))
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def standalone(benchmark: Benchmark[Any], argv: Sequence[str] | None = None) -> int:
    """``python -m mbmssec.bench.<name>_bench``: measure once here and print the figures.

    ``--quick`` measures at the quick size (default full); ``--json`` prints the raw
    result instead of the figures. Exit 1 if the benchmark failed.
    """
    parser = argparse.ArgumentParser(
        description=f"Benchmark {benchmark.name}: {benchmark.description}."
    )
    parser.add_argument("--quick", action="store_true", help="quick size (default full)")
    parser.add_argument("--json", action="store_true", help="print the raw result as JSON")
    args = parser.parse_args(argv)
    status, result, reason = measure_here(benchmark, args.quick)
    if args.json and result is not None:
        print(json.dumps(result, indent=2, allow_nan=False))
    elif result is not None:
        outcome = Outcome(benchmark.name, "", status, 0.0, result, reason)
        table: list[Row]
        table, note = rows(outcome, benchmark)
        print(figures_table(table) if table else "No figures.")
        if note:
            print(f"note: {note}")
    if reason:
        print(f"{benchmark.name}: {status}: {reason}", file=sys.stderr)
    return 1 if status == "failed" else 0


if __name__ == "__main__":
    sys.exit(main())

"""The benchmark suite: find every benchmark of the project, run it, collect its figures.

A benchmark is a module ``mbmssec.bench.<name>_bench`` with ``run(quick: bool) -> dict``.
The suite knows the project's benchmarks (:data:`KNOWN`) and also picks up any other
``*_bench`` module in the package, so a new benchmark needs no change here. A known
benchmark whose module is missing is reported as *skipped*, one that cannot be imported
or raises as *failed*; neither stops the others.

Each benchmark runs in a fresh Python process by default (``python -m
mbmssec.bench.suite --worker NAME``), so one benchmark's imports, threads, servers or a
crash cannot disturb the next one's timing, and a hung one can be stopped after a
timeout; :func:`run_benchmark` can also run it in this process.

:func:`figures` turns each result dict into rows of *figure, value, reference, ratio*;
the reference is measured in the same run wherever one exists (libsrtp for SRTP, a bare
HMAC + AES for MIKEY, a plain per-UE loop for the load simulation, depth 1 for bounded
model checking, a minimal aiohttp endpoint for the BM-SC), or else is a fixed limit
(the uniform load N/W of the TS 33.246 proposal's fetch window) or target.

Run ``python -m mbmssec.bench.suite [--full]`` for a plain JSON dump; ``mbmssec bench``
writes the results page and plots.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import os
import pkgutil
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Final, Literal

from mbmssec import __version__
from mbmssec.errors import MbmssecError

__all__ = [
    "KNOWN",
    "PACKAGE",
    "BenchError",
    "Benchmark",
    "Figure",
    "Outcome",
    "Status",
    "discover",
    "figures",
    "jsonable",
    "load_population",
    "machine_info",
    "main",
    "run_benchmark",
    "run_suite",
    "select",
]

PACKAGE: Final = "mbmssec.bench"
SUFFIX: Final = "_bench"

#: The project's benchmarks, in the order they run: cheap ones first.
KNOWN: Final[tuple[tuple[str, str], ...]] = (
    ("model", "model steps/s on random walks of the executable model"),
    ("srtp", "SRTP protect/unprotect packets/s against libsrtp"),
    ("mikey", "MIKEY TEK delivery messages/s against bare HMAC + AES"),
    ("load", "re-keying load simulation: peak per strategy, speed, peak against population"),
    ("bmsc", "BM-SC registrations/s against a minimal aiohttp endpoint; live request peaks"),
    ("proof", "Z3 baseline check time and bounded model checking time against depth"),
)

#: Default per-benchmark timeout (seconds) in a separate process, by mode.
DEFAULT_TIMEOUT: Final = {"quick": 240.0, "full": 3600.0}

#: The scenario of ``load_bench`` (its LoadParams), reused for peak against population.
LOAD_WINDOW: Final = 300.0
LOAD_PERIOD: Final = 3600.0
LOAD_BIN: Final = 1.0
LOAD_SEED: Final = 1
POPULATIONS: Final = {
    "quick": (10_000, 100_000, 1_000_000),
    "full": (10_000, 100_000, 1_000_000, 10_000_000),
}

Status = Literal["ok", "failed", "skipped"]
Progress = Callable[[str], None]

_WORKER_SKIPPED: Final = 3  # worker exit status: module not found
_STDERR_TAIL: Final = 1500  # characters of a failed worker's stderr kept in the reason


class BenchError(MbmssecError):
    """Bad use of the suite: an unknown benchmark name, an unusable output directory."""


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: its short name (``srtp``), module and a one-line description."""

    name: str
    module: str
    description: str = ""


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
        """The outcome as plain JSON values."""
        return {
            "module": self.module,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "reason": self.reason,
            "result": self.result,
        }


@dataclass(frozen=True)
class Figure:
    """One row of the results table: a measured value and what it is compared with.

    ``reference_kind`` is ``measured`` (timed in the same run), ``limit`` (an analytic
    bound such as the uniform load) or ``target`` (an aim set by the project);
    ``ratio`` is value / reference_value. ``higher_is_better`` says how to read it.
    """

    benchmark: str
    figure: str
    value: float
    unit: str
    reference: str = ""
    reference_value: float | None = None
    reference_kind: Literal["measured", "limit", "target", ""] = ""
    higher_is_better: bool | None = None
    ratio: float | None = field(default=None)

    def __post_init__(self) -> None:
        if self.ratio is None and self.reference_value:
            ratio = self.value / self.reference_value
            if math.isfinite(ratio):
                object.__setattr__(self, "ratio", ratio)

    def to_json(self) -> dict[str, Any]:
        """The row as plain JSON values."""
        data: dict[str, Any] = jsonable(asdict(self))
        return data


# --- discovery --------------------------------------------------------------------------


def _package_path() -> list[str]:
    package = importlib.import_module(PACKAGE)
    return list(getattr(package, "__path__", []))


def discover() -> list[Benchmark]:
    """Every benchmark: the known ones (present or not), then any other ``*_bench`` module.

    Modules are found by file name, without importing them, so a broken module is still
    listed (and then reported as failed when run).
    """
    found = sorted(
        info.name
        for info in pkgutil.iter_modules(_package_path())
        if info.name.endswith(SUFFIX) and not info.name.startswith("_")
    )
    benchmarks = [Benchmark(n, f"{PACKAGE}.{n}{SUFFIX}", d) for n, d in KNOWN]
    known = {b.module for b in benchmarks}
    for module_name in found:
        module = f"{PACKAGE}.{module_name}"
        if module not in known:
            benchmarks.append(Benchmark(module_name.removesuffix(SUFFIX), module))
    return benchmarks


def select(benchmarks: Sequence[Benchmark], names: Iterable[str] | None) -> list[Benchmark]:
    """The benchmarks named (by name or module name, in suite order); all when ``None``.

    Raises :class:`BenchError` naming the unknown ones and the valid names.
    """
    if names is None:
        return list(benchmarks)
    wanted: set[str] = set()
    unknown: list[str] = []
    by_alias: dict[str, str] = {}
    for b in benchmarks:
        short = b.module.rsplit(".", 1)[-1]
        for alias in (b.name, short, b.module):
            by_alias[alias] = b.name
    for raw in names:
        name = raw.strip()
        if name in by_alias:
            wanted.add(by_alias[name])
        else:
            unknown.append(raw)
    if unknown:
        valid = ", ".join(b.name for b in benchmarks)
        raise BenchError(f"unknown benchmark(s) {', '.join(map(repr, unknown))}; known: {valid}")
    return [b for b in benchmarks if b.name in wanted]


# --- running ----------------------------------------------------------------------------


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


def load_population(quick: bool) -> dict[str, Any]:
    """Peak request rate per fetch-spreading strategy for growing populations.

    Same scenario as ``load_bench`` (W = 300 s, P = 3600 s, 1 s bins, one instance);
    the uniform limit N/W is the reference each peak is read against.
    """
    from mbmssec.simulation.load import ALL_STRATEGIES, LoadParams, peak_against_population

    sizes = POPULATIONS["quick" if quick else "full"]
    params = LoadParams(
        ues=sizes[-1], window=LOAD_WINDOW, period=LOAD_PERIOD, bin_width=LOAD_BIN, seed=LOAD_SEED
    )
    start = time.perf_counter()
    peaks = peak_against_population(params, sizes, ALL_STRATEGIES)
    return {
        "populations": list(sizes),
        "window": LOAD_WINDOW,
        "bin_width": LOAD_BIN,
        "uniform_limit": [n / LOAD_WINDOW for n in sizes],
        "peak_rate": {str(s): [float(v) for v in values] for s, values in peaks.items()},
        "seconds": time.perf_counter() - start,
    }


#: Extra measurements the suite adds to a benchmark's result, keyed by benchmark name.
EXTRAS: Final[Mapping[str, tuple[tuple[str, Callable[[bool], dict[str, Any]]], ...]]] = {
    "load": (("peak_against_population", load_population),),
}


def _checks(name: str, result: Mapping[str, Any]) -> str | None:
    """A reason to call a completed benchmark failed (its own consistency check), or None."""
    if name == "srtp" and result.get("libsrtp_available") and not result.get("outputs_identical"):
        return "libsrtp and mbmssec produced different SRTP bytes for the same packets"
    if name == "bmsc":
        spreading = result.get("fetch_spreading")
        if isinstance(spreading, Mapping):
            rejected = {
                s: v.get("failures")
                for s, v in spreading.items()
                if isinstance(v, Mapping) and v.get("failures")
            }
            if rejected:
                where = ", ".join(f"{n} under {s}" for s, n in rejected.items())
                return f"the live BM-SC's UEs rejected TEK deliveries while re-keying: {where}"
    return None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _execute(bench: Benchmark, quick: bool) -> tuple[Status, dict[str, Any] | None, str | None]:
    """Import and run one benchmark here; never raises (bar KeyboardInterrupt)."""
    try:
        module = importlib.import_module(bench.module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing == bench.module or bench.module.startswith(missing + "."):
            return "skipped", None, f"module {bench.module} not found"
        if missing.split(".")[0] == bench.module.split(".")[0]:
            # A module of the project itself is missing: the benchmark is broken.
            return "failed", None, f"import of {bench.module} failed: {_describe(exc)}"
        return "skipped", None, f"import of {bench.module} needs a missing module: {missing}"
    except Exception as exc:  # a broken module must not stop the suite
        return "failed", None, f"import of {bench.module} failed: {_describe(exc)}"
    run = getattr(module, "run", None)
    if not callable(run):
        return "failed", None, f"{bench.module} has no run(quick) function"
    try:
        raw = run(quick)
    except (Exception, SystemExit) as exc:  # SystemExit: a benchmark must not end the suite
        where = traceback.extract_tb(exc.__traceback__)[-1]
        at = f" (at {Path(where.filename).name}:{where.lineno})"
        return "failed", None, f"run() raised {_describe(exc)}{at}"
    if not isinstance(raw, Mapping):
        return "failed", None, f"run() returned {type(raw).__name__}, not a dict"
    result: dict[str, Any] = jsonable(raw)
    for key, extra in EXTRAS.get(bench.name, ()):
        try:
            result[key] = jsonable(extra(quick))
        except Exception as exc:
            result[key] = {"error": _describe(exc)}
    problem = _checks(bench.name, result)
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
    bench: Benchmark,
    quick: bool,
    timeout: float | None,
    progress: Progress | None,
    heartbeat: float,
) -> tuple[Status, dict[str, Any] | None, str | None]:
    with tempfile.TemporaryDirectory(prefix="mbmssec-suite-") as tmp:
        out = Path(tmp) / "result.json"
        err = Path(tmp) / "stderr.txt"
        cmd = [
            sys.executable,
            "-m",
            f"{PACKAGE}.suite",
            "--worker",
            bench.name,
            "--module",
            bench.module,
            "--result",
            str(out),
        ]
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
                            progress(f"{bench.name}: still running, {now:.0f} s")
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
    bench: Benchmark,
    quick: bool,
    *,
    isolate: bool = True,
    timeout: float | None = None,
    progress: Progress | None = None,
    heartbeat: float = 30.0,
) -> Outcome:
    """Run one benchmark and return its :class:`Outcome`; never raises for its failures.

    ``isolate`` runs it in a new Python process (stopped after ``timeout`` seconds, its
    whole process group killed); otherwise in this process, with no timeout. While an
    isolated benchmark runs, ``progress`` hears from it every ``heartbeat`` seconds.
    """
    start = time.perf_counter()
    if isolate:
        status, result, reason = _in_subprocess(bench, quick, timeout, progress, heartbeat)
    else:
        status, result, reason = _execute(bench, quick)
    return Outcome(bench.name, bench.module, status, time.perf_counter() - start, result, reason)


def run_suite(
    benchmarks: Sequence[Benchmark],
    quick: bool,
    *,
    isolate: bool = True,
    timeout: float | None = None,
    progress: Progress | None = None,
) -> list[Outcome]:
    """Run each benchmark in turn; a failed or skipped one is recorded and the rest run."""
    outcomes = []
    mode = "quick" if quick else "full"
    for number, bench in enumerate(benchmarks, 1):
        label = f"[{number}/{len(benchmarks)}] {bench.name}"
        if progress is not None:
            progress(f"{label}: running ({mode})")
        outcome = run_benchmark(bench, quick, isolate=isolate, timeout=timeout, progress=progress)
        if progress is not None:
            why = f": {outcome.reason}" if outcome.reason else ""
            progress(f"{label}: {outcome.status} in {outcome.seconds:.1f} s{why}")
        outcomes.append(outcome)
    return outcomes


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
        from mbmssec.bench import libsrtp

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


# --- figures ----------------------------------------------------------------------------


def _num(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def _model_figures(r: Mapping[str, Any]) -> list[Figure]:
    rate = _num(r["model_steps_per_second"])
    return [
        Figure(
            "model",
            "random-walk steps of the baseline model",
            rate,
            "steps/s",
            "copy of the state's tables (same run)",
            _num(r["reference_copies_per_second"]),
            "measured",
            True,
        ),
        Figure(
            "model",
            "random-walk steps against the aim",
            rate,
            "steps/s",
            "aim",
            5000.0,
            "target",
            True,
        ),
    ]


def _srtp_figures(r: Mapping[str, Any]) -> list[Figure]:
    rows = []
    have_lib = bool(r.get("libsrtp_available"))
    for op in ("protect", "unprotect"):
        for api, label in (
            ("batch", f"batch API ({int(_num(r['batch_size']))}/call)"),
            ("single", "one call per packet"),
        ):
            value = _num(r[f"ours_{op}_{api}_pps"])
            if have_lib:
                rows.append(
                    Figure(
                        "srtp",
                        f"{op}, {label}",
                        value,
                        "packets/s",
                        "libsrtp, one call per packet via ctypes (same run)",
                        _num(r[f"libsrtp_{op}_pps"]),
                        "measured",
                        True,
                    )
                )
            else:
                rows.append(
                    Figure("srtp", f"{op}, {label}", value, "packets/s", "libsrtp not available")
                )
    if have_lib:
        rows.append(
            Figure(
                "srtp",
                "SRTP bytes identical to libsrtp's",
                _num(r["outputs_identical"]),
                "check",
                "libsrtp's output for the same packets",
            )
        )
    return rows


def _mikey_figures(r: Mapping[str, Any]) -> list[Figure]:
    rows = []
    for case in r["cases"]:
        keys = int(_num(case["keys"]))
        shape = f"{case['encryption']}, {keys} TEK{'s' if keys > 1 else ''}"
        rows.append(
            Figure(
                "mikey",
                f"TEK delivery build + parse + verify, {shape}",
                _num(case["build_parse_verify_per_second"]),
                "messages/s",
                "bare HMAC-SHA-1 + AES over the same bytes (same run)",
                _num(case["reference_per_second"]),
                "measured",
                True,
            )
        )
        rows.append(
            Figure(
                "mikey",
                f"verification message build + verify, {shape}",
                _num(case["verification_build_verify_per_second"]),
                "messages/s",
                "bare HMAC-SHA-1 over the same bytes (same run)",
                _num(case["verification_reference_per_second"]),
                "measured",
                True,
            )
        )
    return rows


def _load_figures(r: Mapping[str, Any]) -> list[Figure]:
    rows = []
    ues = int(_num(r["ues"]))
    for name, s in r["strategies"].items():
        rows.append(
            Figure(
                "load",
                f"peak request rate, {name}, N={ues:,}",
                _num(s["peak_rate"]),
                "requests/s",
                "uniform limit N/W",
                _num(s["uniform_limit"]),
                "limit",
                False,
            )
        )
        ptm = s.get("peak_to_mean")
        if isinstance(ptm, int | float) and ptm > 0:
            rows.append(
                Figure(
                    "load",
                    f"peak-to-mean, {name}",
                    _num(ptm),
                    "x",
                    "perfectly even load",
                    1.0,
                    "limit",
                    False,
                )
            )
    ref = r["reference_per_ue_loop"]
    random_ = r["strategies"].get("random_interval")
    if random_ is not None:
        rows.append(
            Figure(
                "load",
                "simulation speed, random_interval",
                _num(random_["ues_per_second"]),
                "UEs/s",
                "plain per-UE Python loop (same run)",
                _num(ref["ues_per_second"]),
                "measured",
                True,
            )
        )
    return rows


def _proof_figures(r: Mapping[str, Any]) -> list[Figure]:
    base = r["baseline_check"]
    rows = [
        Figure(
            "proof",
            "full baseline check (induction + BMC)",
            _num(base["seconds"]),
            "s",
            "target",
            _num(base["target_seconds"]),
            "target",
            False,
        )
    ]
    depths = r["bmc_vs_depth"]["depths"]
    if len(depths) > 1:
        one, last = depths[1], depths[-1]
        rows.append(
            Figure(
                "proof",
                f"BMC, time of depth {last['depth']}",
                _num(last["seconds"]),
                "s",
                "time of depth 1 (same run)",
                _num(one["seconds"]),
                "measured",
                False,
                ratio=_num(last["ratio_to_depth_1"]),
            )
        )
        rows.append(
            Figure(
                "proof",
                f"BMC, cumulative to depth {last['depth']}",
                _num(last["cumulative_seconds"]),
                "s",
            )
        )
    queries = r["queries"]
    rows.append(
        Figure(
            "proof",
            f"induction query median ({queries['solver_calls']} solver calls)",
            _num(queries["median_ms"]),
            "ms",
        )
    )
    return rows


def _bmsc_figures(r: Mapping[str, Any]) -> list[Figure]:
    reg = r["registration"]
    rows = [
        Figure(
            "bmsc",
            f"registrations (challenge + TEK delivery), {int(_num(reg['concurrency']))} at a time",
            _num(reg["registrations_per_second"]),
            "registrations/s",
            "minimal aiohttp endpoint, same exchanges (same run)",
            _num(reg["reference_exchanges_per_second"]),
            "measured",
            True,
        )
    ]
    failures = 0.0
    for name, s in r["fetch_spreading"].items():
        rows.append(
            Figure(
                "bmsc",
                f"peak request rate at the BM-SC, {name}, {int(_num(s['ues']))} UEs",
                _num(s["peak_rate"]),
                "requests/s",
                "mean rate over the re-key phase (same run)",
                _num(s["mean_rate"]),
                "measured",
                False,
            )
        )
        failures += _num(s["failures"])
    rows.append(
        Figure(
            "bmsc",
            "rejected TEK deliveries while re-keying",
            failures,
            "",
            "none expected",
            0.0,
            "target",
            False,
        )
    )
    return rows


def _leaves(data: Any, path: tuple[str, ...] = ()) -> Iterable[tuple[tuple[str, ...], Any]]:
    if isinstance(data, Mapping):
        for k, v in data.items():
            yield from _leaves(v, (*path, str(k)))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _leaves(v, (*path, str(i)))
    else:
        yield path, data


_RATE_KEY = re.compile(r"(registrations?|requests?)_per_second$")
_REF_KEY = re.compile(r"(reference|aiohttp|minimal|baseline).*per_second$")


def _generic_figures(name: str, r: Mapping[str, Any]) -> list[Figure]:
    """Rows for a benchmark the suite has no specific reading of.

    Every numeric leaf named like a rate of registrations/requests is a row, compared
    with a sibling rate named like a reference; every leaf whose name says ``ratio`` is
    a row of its own.
    """
    rows: list[Figure] = []
    leaves = [
        (p, v)
        for p, v in _leaves(r)
        if p and isinstance(v, int | float) and not isinstance(v, bool)
    ]
    by_parent: dict[tuple[str, ...], list[tuple[str, float]]] = {}
    for path, value in leaves:
        by_parent.setdefault(path[:-1], []).append((path[-1], float(value)))
    for parent, items in by_parent.items():
        refs = [(k, v) for k, v in items if _REF_KEY.search(k)]
        where = " / ".join(parent)
        for key, value in items:
            label = f"{where}: {key}" if where else key
            if _RATE_KEY.search(key) and not _REF_KEY.search(key):
                if refs:
                    ref_key, ref_value = refs[0]
                    rows.append(
                        Figure(
                            name,
                            label,
                            value,
                            "1/s",
                            f"{ref_key} (same run)",
                            ref_value,
                            "measured",
                            True,
                        )
                    )
                else:
                    rows.append(Figure(name, label, value, "1/s"))
            elif "ratio" in key:
                rows.append(Figure(name, label, value, "x", ratio=value))
    return rows


_READERS: Final[Mapping[str, Callable[[Mapping[str, Any]], list[Figure]]]] = {
    "model": _model_figures,
    "srtp": _srtp_figures,
    "mikey": _mikey_figures,
    "load": _load_figures,
    "proof": _proof_figures,
    "bmsc": _bmsc_figures,
}


def figures(outcome: Outcome) -> tuple[list[Figure], str | None]:
    """The table rows of one benchmark's result, and a note if its result was unreadable.

    A result missing an expected key gives no rows and a note, never an exception.
    """
    if outcome.result is None:
        return [], None
    reader = _READERS.get(outcome.name)
    try:
        if reader is None:
            return _generic_figures(outcome.name, outcome.result), None
        return reader(outcome.result), None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        return [], f"result of {outcome.name} not readable: {_describe(exc)}"


# --- worker / command line -------------------------------------------------------------


def _worker(bench: Benchmark, quick: bool, result_path: Path) -> int:
    """Run one benchmark in this (child) process and write its outcome as JSON."""
    status, result, reason = _execute(bench, quick)
    payload = {"status": status, "reason": reason, "result": result}
    result_path.write_text(json.dumps(jsonable(payload), allow_nan=False))
    return _WORKER_SKIPPED if status == "skipped" else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mbmssec.bench.suite``: run the suite and print every outcome as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--full", action="store_true", help="full mode (default quick)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    parser.add_argument("--worker", metavar="NAME", help=argparse.SUPPRESS)
    parser.add_argument("--module", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = not args.full
    if args.worker is not None:
        if args.module is None or args.result is None:
            parser.error("--worker needs --module and --result")
        return _worker(Benchmark(args.worker, args.module), quick, args.result)
    try:
        chosen = select(discover(), args.only)
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


if __name__ == "__main__":
    sys.exit(main())

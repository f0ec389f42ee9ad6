"""``mbmssec load``: re-keying load on the BM-SC for each TEK fetch-spreading strategy.

Runs :func:`mbmssec.simulation.load.simulate` (TS 33.246 proposal: UEs fetch the next TEK point to
point before activation) for every value of the spec option ``fetch_spreading`` and
prints one table row per strategy, or JSON with ``--json``; ``--plots DIR`` also writes
the load over time and the peak against population as PNG files.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from mbmssec.impl.service.spreading import FetchSpreading
from mbmssec.simulation import load
from mbmssec.simulation.load import (
    LoadError,
    LoadParams,
    LoadReport,
    StrategyResult,
)

PROGRESS_AFTER = 2.0  # seconds before the first progress line


class _Progress:
    """A one-line progress report on stderr, shown only once a run has taken 2 s."""

    def __init__(self, stream: TextIO, enabled: bool = True) -> None:
        self._stream = stream
        self._enabled = enabled
        self._start = time.monotonic()
        self._last = 0.0
        self._shown = False
        self._tty = stream.isatty()

    def __call__(self, message: str) -> None:
        now = time.monotonic() - self._start
        if not self._enabled or now < PROGRESS_AFTER:
            return
        if not self._tty and self._shown and now - self._last < 1.0:
            return  # a log file gets at most one line a second
        self._last = now
        line = f"mbmssec load: {message} [{now:.1f} s]"
        if self._tty:
            self._stream.write("\r" + line.ljust(100)[:100])
        else:
            self._stream.write(line + "\n")
        self._stream.flush()
        self._shown = True

    def finish(self) -> None:
        """End the progress line so later output starts on a fresh line."""
        if self._shown and self._tty:
            self._stream.write("\n")
            self._stream.flush()

    @property
    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self._start


def _typed(convert: Callable[[str], object]) -> Callable[[str], object]:
    """Turn a converter's LoadError/ValueError into argparse's own usage error (exit 2)."""

    def parse(text: str) -> object:
        try:
            return convert(text)
        except (LoadError, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


def _number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {text!r}")
    return value


def _count(text: str) -> int:
    return load.parse_count(text, "value")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``load`` sub-command."""
    defaults = LoadParams()
    parser = subparsers.add_parser(
        "load",
        help="simulate BM-SC load of TEK re-keying for each fetch-spreading strategy",
        description=(
            "Simulate a population of UEs fetching the next TEK from the BM-SC before "
            "activation, for each fetch_spreading strategy (none, random_interval, "
            "scheduled_slots, multi_key). Times are seconds from the opening of the "
            "fetch window; the key is activated at W."
        ),
    )
    number, count = _typed(_number), _typed(_count)
    parser.add_argument(
        "--ues",
        type=count,
        default=defaults.ues,
        metavar="N",
        help=f"population size, e.g. 1e7 (default {defaults.ues:,})",
    )
    parser.add_argument(
        "--window",
        type=number,
        default=defaults.window,
        metavar="W",
        help=f"fetch window before activation, s (default {defaults.window:g})",
    )
    parser.add_argument(
        "--period",
        type=number,
        default=defaults.period,
        metavar="P",
        help=f"TEK period, s (default {defaults.period:g})",
    )
    parser.add_argument(
        "--bin",
        type=number,
        default=defaults.bin_width,
        metavar="B",
        dest="bin_width",
        help=f"time bin, s (default {defaults.bin_width:g})",
    )
    parser.add_argument(
        "--instances",
        type=count,
        default=defaults.instances,
        metavar="K",
        help="number of BM-SC instances; UEs are assigned by a hash of their index (default 1)",
    )
    parser.add_argument(
        "--loss",
        type=number,
        default=defaults.loss,
        metavar="p",
        help="probability a request is lost; lost requests are retried "
        "with exponential back-off (default 0)",
    )
    parser.add_argument(
        "--out-of-coverage",
        type=number,
        default=defaults.out_of_coverage,
        metavar="f",
        help="share of UEs out of coverage during the window (default 0)",
    )
    parser.add_argument(
        "--return-within",
        type=number,
        default=None,
        metavar="R",
        help="out-of-coverage UEs come back within R s after activation (default P/2)",
    )
    parser.add_argument(
        "--storm",
        type=_typed(load.parse_storm),
        default=None,
        metavar="M@t",
        help="a burst of M registrations at t s "
        "(join:M@t, leave:M@t, optionally spread over d s: M@t+d)",
    )
    parser.add_argument(
        "--keys-per-request",
        type=count,
        default=defaults.keys_per_request,
        metavar="k",
        help=f"keys per request for multi_key (default {defaults.keys_per_request})",
    )
    parser.add_argument(
        "--clock-jitter",
        type=number,
        default=defaults.clock_jitter,
        metavar="J",
        help=f"UE clock spread of the 'none' herd, s (default {defaults.clock_jitter:g})",
    )
    parser.add_argument(
        "--backoff",
        type=number,
        default=defaults.backoff,
        metavar="S",
        help=f"first retry back-off, s (default {defaults.backoff:g})",
    )
    parser.add_argument(
        "--retries",
        type=count,
        default=defaults.max_retries,
        metavar="R",
        dest="max_retries",
        help=f"retries after a lost request (default {defaults.max_retries})",
    )
    capacity = parser.add_mutually_exclusive_group()
    capacity.add_argument(
        "--capacity",
        type=number,
        default=None,
        metavar="C",
        help="BM-SC instance capacity, requests/s: report the minimal window per strategy",
    )
    capacity.add_argument(
        "--capacity-from",
        type=Path,
        default=None,
        metavar="FILE",
        help="read the capacity from a JSON file (e.g. the BM-SC benchmark's results)",
    )
    parser.add_argument(
        "--capacity-key",
        default=load.DEFAULT_CAPACITY_KEY,
        metavar="KEY",
        help=f"key to read with --capacity-from (default {load.DEFAULT_CAPACITY_KEY})",
    )
    parser.add_argument(
        "--spreading",
        action="append",
        default=None,
        choices=[str(s) for s in FetchSpreading],
        metavar="S",
        help="simulate only this fetch_spreading strategy (repeatable; default all)",
    )
    parser.add_argument(
        "--seed", type=count, default=defaults.seed, metavar="S", help="random seed (default 0)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--plots",
        type=Path,
        default=None,
        metavar="DIR",
        help="write load_over_time.png and peak_vs_population.png into DIR",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    parser.set_defaults(func=run)


def _read_capacity(path: Path, key: str) -> float:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LoadError(f"cannot read capacity file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise LoadError(f"capacity file {path} is not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LoadError(
            f"capacity file {path} is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    try:
        return load.capacity_from_json(data, key)
    except LoadError as exc:
        raise LoadError(f"{path}: {exc}") from None


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _min_window(result: StrategyResult) -> str:
    method = result.min_window_method
    if method is None:
        return "-"
    if result.min_window is None:
        return "unreachable"
    if method == "independent_of_window":
        return "any"
    return f"{result.min_window:,.1f}" + (" (exact)" if method == "closed_form" else "")


def format_table(report: LoadReport, elapsed: float | None = None) -> str:
    """The human-readable results: one row per strategy, then violator examples."""
    p = report.params
    storm = "none" if p.storm is None else p.storm.describe()
    capacity = "-" if report.capacity is None else f"{report.capacity:,.6g} req/s per instance"
    lines = [
        f"TEK re-keying load: N={p.ues:,} UEs, W={p.window:g} s, P={p.period:g} s, "
        f"bin={p.bin_width:g} s, {p.instances} BM-SC instance(s), loss={p.loss:g}, "
        f"out of coverage={p.out_of_coverage:g}, storm={storm}, seed={p.seed}",
        f"capacity: {capacity}; rates are requests/s per instance; uniform limit "
        f"N/(K*W) = {_rate(p.ues / (p.instances * p.window))}",
        "",
    ]
    header = (
        f"{'strategy':<16} {'peak/s':>12} {'p99/s':>10} {'mean/s':>10} {'peak/mean':>10} "
        f"{'holding':>9} {'late':>9} {'stale max':>10} {'stale p99':>10} {'violators':>9} "
        f"{'min W (s)':>16}"
    )
    lines += [header, "-" * len(header)]
    for r in report.results:
        pmr = "-" if r.peak_to_mean is None else f"{r.peak_to_mean:.3f}"
        share = "-" if r.holding_share is None else f"{100 * r.holding_share:.3f}%"
        lines.append(
            f"{r.strategy!s:<16} {_rate(r.peak_rate):>12} {_rate(r.p99_rate):>10} "
            f"{_rate(r.mean_rate):>10} {pmr:>10} {share:>9} {r.late:>9,} "
            f"{_seconds(r.stale_max):>10} {_seconds(r.stale_p99):>10} {r.violators:>9,} "
            f"{_min_window(r):>16}"
        )
    notes = []
    for r in report.results:
        if r.violators:
            examples = ", ".join(str(i) for i in r.violator_examples)
            notes.append(
                f"{r.strategy}: {r.violators:,} in-coverage UE(s) lack the next TEK at "
                f"activation, e.g. UE {examples}"
            )
        if r.unserved:
            notes.append(f"{r.strategy}: {r.unserved:,} UE(s) got no key within the period")
        if r.over_capacity:
            notes.append(f"{r.strategy}: peak exceeds the capacity")
    if notes:
        lines += ["", *notes]
    if elapsed is not None:
        lines += ["", f"simulated in {elapsed:.1f} s"]
    return "\n".join(lines)


def _population_sizes(n: int) -> list[int]:
    sizes = [10**e for e in range(4, 8) if 10**e < n]
    return [*sizes, n]


def write_plots(
    report: LoadReport,
    directory: Path,
    peaks: dict[FetchSpreading, list[float]],
    populations: Sequence[int],
) -> list[Path]:
    """Write load_over_time.png and peak_vs_population.png; return their paths."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise LoadError("--plots needs matplotlib (pip install matplotlib)") from None
    p = report.params
    written = []
    results = report.results
    fig, axes = plt.subplots(len(results), 1, figsize=(10, 2.6 * len(results)), squeeze=False)
    for ax, r in zip(axes[:, 0], results, strict=True):
        times = [i * p.bin_width for i in range(len(r.load))]
        ax.plot(times, r.load, linewidth=0.8, drawstyle="steps-post", label="busiest instance")
        ax.axvline(r.window, color="black", linestyle=":", label="activation")
        if report.capacity is not None:
            ax.axhline(report.capacity, color="red", linestyle="--", label="capacity")
        top = max(r.peak_rate, report.capacity or 0.0, 1.0)
        ax.set_ylim(0, top * 1.1)
        ax.set_title(f"{r.strategy}: peak {_rate(r.peak_rate)}/s, mean {_rate(r.mean_rate)}/s")
        ax.set_ylabel("requests/s")
        ax.legend(loc="center right", fontsize="small")
    axes[-1, 0].set_xlabel("time since the fetch window opened (s)")
    fig.suptitle(f"TEK fetch load over time, N={p.ues:,}, W={p.window:g} s, bin={p.bin_width:g} s")
    fig.tight_layout()
    path = directory / "load_over_time.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)

    fig, ax = plt.subplots(figsize=(8, 5))
    styles = zip(peaks.items(), ["o", "s", "^", "D"] * 2, ["-", "--", "-.", ":"] * 2, strict=False)
    for (strategy, values), marker, line in styles:
        ax.plot(populations, values, marker=marker, linestyle=line, label=str(strategy))
    ax.plot(
        populations,
        [n / (p.instances * p.window) for n in populations],
        color="grey",
        linestyle="--",
        label="uniform limit N/(K*W)",
    )
    if report.capacity is not None:
        ax.axhline(report.capacity, color="red", linestyle=":", label="capacity")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("UEs (N)")
    ax.set_ylabel("peak requests/s per instance")
    storm = "" if p.storm is None else f", storm {p.storm.describe()}"
    ax.set_title(f"Peak against population, W={p.window:g} s, bin={p.bin_width:g} s{storm}")
    ax.legend(fontsize="small")
    fig.tight_layout()
    path = directory / "peak_vs_population.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)
    return written


def run(args: argparse.Namespace) -> int:
    """Handler of ``mbmssec load``: 0 on success, 2 on bad input."""
    storm = args.storm
    params = LoadParams(
        ues=args.ues,
        window=args.window,
        period=args.period,
        bin_width=args.bin_width,
        instances=args.instances,
        loss=args.loss,
        out_of_coverage=args.out_of_coverage,
        return_within=args.return_within,
        storm=storm,
        keys_per_request=args.keys_per_request,
        clock_jitter=args.clock_jitter,
        backoff=args.backoff,
        max_retries=args.max_retries,
        seed=args.seed,
    )
    capacity: float | None = args.capacity
    if args.capacity_from is not None:
        capacity = _read_capacity(args.capacity_from, args.capacity_key)
    if capacity is not None and capacity <= 0:
        raise LoadError(f"capacity must be > 0 requests/s, got {capacity:g}")
    plots: Path | None = args.plots
    if plots is not None:
        if plots.exists() and not plots.is_dir():
            raise LoadError(f"--plots {plots}: exists and is not a directory")
        try:
            plots.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LoadError(f"--plots {plots}: cannot create: {exc.strerror or exc}") from None
    strategies = (
        tuple(FetchSpreading(s) for s in dict.fromkeys(args.spreading))
        if args.spreading
        else load.ALL_STRATEGIES
    )
    progress = _Progress(sys.stderr, enabled=not args.quiet)
    try:
        report = load.simulate(params, strategies, capacity=capacity, progress=progress)
        written: list[Path] = []
        if plots is not None:
            sizes = _population_sizes(params.ues)
            # The full population was just simulated; only the smaller ones are new.
            peaks = load.peak_against_population(params, sizes[:-1], strategies, progress)
            for result in report.results:
                peaks[result.strategy].append(result.peak_rate)
            written = write_plots(report, plots, peaks, sizes)
    finally:
        progress.finish()
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(format_table(report, progress.elapsed))
        for path in written:
            print(f"wrote {path}")
    return 0

"""``mbmssec bench``: run every benchmark of the project and write the results page and plots.

Runs the benchmarks found by :mod:`mbmssec.bench.suite` (each in its own process), in a
quick mode (a few minutes at most, for CI and a first look) or a full mode, and writes
to ``--out`` (default ``results/bench``):

* ``results.json``: the machine (CPUs, Python, libsrtp, tshark, date, mode), each
  benchmark's status, wall time and raw result, and the table's rows;
* ``results.md``: a markdown table *benchmark, figure, value, reference, ratio*, each
  figure against a reference measured in the same run where one exists (libsrtp for
  SRTP, a minimal aiohttp endpoint for the BM-SC, the uniform limit N/W for the
  re-keying load of the TS 33.246 proposal), and the plots;
* PNG plots: SRTP against libsrtp, load peak and peak-to-mean per fetch-spreading
  strategy, peak against population, BMC time against depth, model steps/s ratios,
  MIKEY against bare crypto, and the ratios of any other benchmark.

A benchmark that is missing, cannot be imported or fails is reported as skipped or
failed with the reason; the others still run. Exit status: 0 every benchmark ran (or
was skipped), 1 one failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from mbmssec.bench import suite
from mbmssec.bench.suite import BenchError, Figure, Outcome

if TYPE_CHECKING:
    from matplotlib.axes import Axes

DEFAULT_OUT: Final = Path("results/bench")

#: Every plot file this command writes for the known benchmarks (stale ones are removed).
PLOT_FILES: Final = (
    "srtp_vs_libsrtp.png",
    "load_peak_per_strategy.png",
    "load_peak_vs_population.png",
    "bmc_time_vs_depth.png",
    "model_steps_ratio.png",
    "mikey_vs_reference.png",
    "bmsc_rates.png",
)


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
    p.add_argument(
        "--only",
        nargs="+",
        action="extend",
        metavar="NAME",
        help="run only these benchmarks (see --list)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"output directory (default {DEFAULT_OUT})",
    )
    p.add_argument("--json", action="store_true", help="print results.json instead of the table")
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


def figures_table(rows: Sequence[Figure]) -> str:
    """The markdown table *Benchmark | Figure | Value | Reference | Ratio*."""
    lines = ["| Benchmark | Figure | Value | Reference | Ratio |", "|---|---|---:|---|---:|"]
    for f in rows:
        cells = (
            f.benchmark,
            f.figure,
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


def results_markdown(doc: Mapping[str, Any], rows: Sequence[Figure]) -> str:
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
    lines += ["", "## Figures", "", figures_table(rows) if rows else "No figures.", ""]
    if doc.get("notes"):
        lines += ["Notes:", ""] + [f"- {_cell(n)}" for n in doc["notes"]] + [""]
    if doc.get("plots"):
        lines += ["## Plots", ""]
        for plot in doc["plots"]:
            title = plot["title"]
            lines += [f"### {title}", "", f"![{title}]({plot['file']})", ""]
    return "\n".join(lines)


# --- plots ------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path


def _unity(ax: Axes, label: str = "reference = 1") -> None:
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1, label=label)


def _bars(ax: Axes, labels: Sequence[str], values: Sequence[float], colour: str = "C0") -> None:
    xs = range(len(values))
    ax.bar(xs, values, color=colour)
    ax.set_xticks(list(xs), labels, rotation=20, ha="right", fontsize="small")
    for x, v in zip(xs, values, strict=True):
        ax.annotate(f"{v:.3g}", (x, v), ha="center", va="bottom", fontsize="small")


def _plot_srtp(r: Mapping[str, Any], path: Path) -> Path | None:
    if not r.get("libsrtp_available"):
        return None
    labels, values = [], []
    for op in ("protect", "unprotect"):
        for api, name in (("", "batch"), ("_single", "one call/packet")):
            labels.append(f"{op}\n{name}")
            values.append(float(r[f"{op}{api}_ratio"]))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    _bars(ax, labels, values)
    _unity(ax, "libsrtp = 1")
    ax.set_ylabel("packets/s, ours / libsrtp")
    ax.set_title(
        f"SRTP throughput against libsrtp, {int(r['packets']):,} packets of "
        f"{int(r['payload_bytes'])} bytes (same run)"
    )
    ax.legend(fontsize="small")
    return _save(fig, path)


def _plot_load_strategies(r: Mapping[str, Any], path: Path) -> Path | None:
    strategies = r["strategies"]
    names = list(strategies)
    over_uniform = [float(strategies[n]["peak_over_uniform"]) for n in names]
    ptm = [max(float(strategies[n]["peak_to_mean"]), 0.0) for n in names]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.4
    xs = list(range(len(names)))
    ax.bar([x - width / 2 for x in xs], over_uniform, width, label="peak / uniform limit N/W")
    ax.bar([x + width / 2 for x in xs], ptm, width, label="peak / mean (in the window)")
    for x, a, b in zip(xs, over_uniform, ptm, strict=True):
        ax.annotate(f"{a:.3g}", (x - width / 2, a), ha="center", va="bottom", fontsize="small")
        ax.annotate(f"{b:.3g}", (x + width / 2, b), ha="center", va="bottom", fontsize="small")
    ax.set_xticks(xs, names)
    ax.set_yscale("log")
    _unity(ax, "perfectly even = 1")
    ax.set_ylabel("ratio (log)")
    ax.set_title(
        f"TEK fetch peak per strategy, N={int(r['ues']):,}, W={float(r['window']):g} s, "
        f"{float(r['bin_width']):g} s bins"
    )
    ax.legend(fontsize="small")
    return _save(fig, path)


def _plot_population(pop: Mapping[str, Any], path: Path, capacity: float | None) -> Path | None:
    if "populations" not in pop:
        return None
    sizes = [int(n) for n in pop["populations"]]
    limit = [float(v) for v in pop["uniform_limit"]]
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    markers = ["o", "s", "^", "D", "v", "P"]
    for (name, peaks), marker in zip(pop["peak_rate"].items(), markers * 4, strict=False):
        values = [float(v) for v in peaks]
        left.plot(sizes, values, marker=marker, label=name)
        right.plot(
            sizes, [v / u for v, u in zip(values, limit, strict=True)], marker=marker, label=name
        )
    left.plot(sizes, limit, color="grey", linestyle="--", label="uniform limit N/W")
    if capacity is not None:
        left.axhline(
            capacity,
            color="red",
            linestyle=":",
            label=f"measured BM-SC capacity, {capacity:,.0f}/s",
        )
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("UEs (N)")
    left.set_ylabel("peak requests/s")
    left.set_title(f"Peak against population, W={float(pop['window']):g} s")
    left.legend(fontsize="small")
    right.set_xscale("log")
    right.set_yscale("log")
    _unity(right, "uniform limit = 1")
    right.set_xlabel("UEs (N)")
    right.set_ylabel("peak / (N/W)")
    right.set_title("Peak relative to the uniform limit")
    right.legend(fontsize="small")
    return _save(fig, path)


def _plot_bmc(r: Mapping[str, Any], path: Path) -> Path | None:
    depths = r["bmc_vs_depth"]["depths"]
    if len(depths) < 2:
        return None
    ks = [int(d["depth"]) for d in depths]
    per = [float(d["seconds"]) for d in depths]
    cumulative = [float(d["cumulative_seconds"]) for d in depths]
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    left.plot(ks, per, marker="o", label="time of each depth")
    left.plot(ks, cumulative, marker="s", label="cumulative")
    left.set_yscale("log")
    left.set_xlabel("BMC depth (steps)")
    left.set_ylabel("seconds (log)")
    left.set_title(f"Bounded model checking, property {r['bmc_vs_depth']['property']}")
    left.legend(fontsize="small")
    ratios = [float(d["ratio_to_depth_1"]) for d in depths[1:]]
    right.bar(ks[1:], ratios)
    right.set_yscale("log")
    _unity(right, "depth 1 = 1")
    right.set_xlabel("BMC depth (steps)")
    right.set_ylabel("time of the depth / time of depth 1 (log)")
    right.set_title("Cost of each depth against depth 1 (same run)")
    right.legend(fontsize="small")
    return _save(fig, path)


def _plot_model(r: Mapping[str, Any], path: Path) -> Path | None:
    rate = float(r["model_steps_per_second"])
    labels = [
        "model / copy of the state\n(measured, same run)",
        "model / aim 5,000 steps/s\n(target)",
    ]
    values = [rate / float(r["reference_copies_per_second"]), rate / 5000.0]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    _bars(ax, labels, values)
    ax.set_yscale("log")
    _unity(ax)
    ax.set_ylabel("ratio (log)")
    ax.set_title(f"Model random walk: {rate:,.0f} steps/s")
    ax.legend(fontsize="small")
    return _save(fig, path)


def _plot_bmsc(r: Mapping[str, Any], path: Path) -> Path | None:
    reg = r["registration"]
    spreading = r["fetch_spreading"]
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [1, 2]})
    ratio = float(reg["registrations_per_second"]) / float(reg["reference_exchanges_per_second"])
    _bars(left, ["BM-SC / minimal\naiohttp endpoint"], [ratio])
    _unity(left, "aiohttp endpoint = 1")
    left.set_ylabel("registrations/s ratio")
    left.set_title(f"Registrations: {float(reg['registrations_per_second']):,.0f}/s (same run)")
    left.legend(fontsize="small")
    names = list(spreading)
    values = [
        float(spreading[n]["peak_rate"]) / float(spreading[n]["mean_rate"])
        if float(spreading[n]["mean_rate"]) > 0
        else 0.0
        for n in names
    ]
    _bars(right, names, values, colour="C1")
    _unity(right, "perfectly even = 1")
    right.set_ylabel("peak / mean request rate")
    first = spreading[names[0]]
    right.set_title(
        f"Live BM-SC, {int(first['ues'])} UEs, TEK period {float(first['period']):g} s,"
        f" {float(r['bin_width']):g} s bins"
    )
    right.legend(fontsize="small")
    return _save(fig, path)


def _plot_ratios(rows: Sequence[Figure], title: str, path: Path) -> Path | None:
    rated = [f for f in rows if f.ratio is not None and f.unit != "check"]
    if not rated:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.45 * len(rated)))
    ys = list(range(len(rated)))
    values = [float(f.ratio or 0.0) for f in rated]
    ax.barh(ys, values)
    ax.set_yticks(ys, [f.figure for f in rated], fontsize="small")
    ax.invert_yaxis()
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1)
    if all(v > 0 for v in values) and max(values) / min(values) > 20:
        ax.set_xscale("log")
    for y, v in zip(ys, values, strict=True):
        ax.annotate(f" {v:.3g}", (v, y), va="center", fontsize="small")
    ax.set_xlabel("ratio to the reference")
    ax.set_title(title)
    return _save(fig, path)


def _capacity(results: Mapping[str, Any]) -> float | None:
    """The BM-SC's measured registrations/s, if the bmsc benchmark ran."""
    from mbmssec.simulation.load import DEFAULT_CAPACITY_KEY, LoadError, capacity_from_json

    bmsc = results.get("bmsc")
    if bmsc is None:
        return None
    try:
        return capacity_from_json(bmsc, DEFAULT_CAPACITY_KEY)
    except LoadError:
        return None


def write_plots(
    outcomes: Sequence[Outcome], rows: Sequence[Figure], out: Path
) -> tuple[list[dict[str, str]], list[str]]:
    """Write every plot whose data is there; return ``[{file, title}]`` and notes.

    A plot that cannot be drawn (a result missing a key) becomes a note, not an error.
    """
    results = {o.name: o.result for o in outcomes if o.result is not None}
    jobs: list[tuple[str, str, Callable[[Path], Path | None]]] = []
    if "srtp" in results:
        jobs.append(
            (
                "srtp_vs_libsrtp.png",
                "SRTP: ours against libsrtp",
                lambda p: _plot_srtp(results["srtp"], p),
            )
        )
    if "load" in results:
        jobs.append(
            (
                "load_peak_per_strategy.png",
                "Load: peak and peak-to-mean per strategy",
                lambda p: _plot_load_strategies(results["load"], p),
            )
        )
        pop = results["load"].get("peak_against_population")
        if isinstance(pop, Mapping):
            capacity = _capacity(results)
            jobs.append(
                (
                    "load_peak_vs_population.png",
                    "Load: peak against population",
                    lambda p: _plot_population(pop, p, capacity),
                )
            )
    if "proof" in results:
        jobs.append(
            (
                "bmc_time_vs_depth.png",
                "Proofs: BMC time against depth",
                lambda p: _plot_bmc(results["proof"], p),
            )
        )
    if "model" in results:
        jobs.append(
            (
                "model_steps_ratio.png",
                "Model: steps/s ratios",
                lambda p: _plot_model(results["model"], p),
            )
        )
    if "mikey" in results:
        mikey = [f for f in rows if f.benchmark == "mikey"]
        jobs.append(
            (
                "mikey_vs_reference.png",
                "MIKEY: messages/s against bare crypto",
                lambda p: _plot_ratios(mikey, "MIKEY against bare HMAC + AES (same run)", p),
            )
        )
    if "bmsc" in results:
        jobs.append(
            (
                "bmsc_rates.png",
                "BM-SC: registrations and request peaks",
                lambda p: _plot_bmsc(results["bmsc"], p),
            )
        )
    specific = {"srtp", "load", "proof", "model", "mikey", "bmsc"}
    for o in outcomes:
        if o.result is not None and o.name not in specific:
            own = [f for f in rows if f.benchmark == o.name]
            title = f"{o.name}: ratios to the references"
            jobs.append((f"{o.name}_ratios.png", title, partial(_plot_ratios, own, title)))
    written: list[dict[str, str]] = []
    notes: list[str] = []
    for file, title, draw in jobs:
        try:
            path = draw(out / file)
        except ImportError as exc:
            notes.append(f"no plots: matplotlib is not usable ({exc})")
            break
        except (KeyError, TypeError, ValueError, ZeroDivisionError, IndexError) as exc:
            notes.append(f"plot {file} not drawn: {type(exc).__name__}: {exc}")
            continue
        if path is not None:
            written.append({"file": file, "title": title})
    return written, notes


# --- the command ------------------------------------------------------------------------


def _prepare(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise BenchError(f"--out {out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"--out {out}: cannot create: {exc.strerror or exc}") from None


def _remove_stale(out: Path, benchmarks: Sequence[suite.Benchmark], keep: set[str]) -> None:
    """Remove plots of a previous run that this run did not redraw (only our own names)."""
    ours = set(PLOT_FILES) | {f"{b.name}_ratios.png" for b in benchmarks}
    for name in sorted(ours - keep):
        path = out / name
        if path.is_file():
            path.unlink()


def _list(benchmarks: Sequence[suite.Benchmark]) -> int:
    present = {b.module for b in benchmarks if _module_file(b.module)}
    for b in benchmarks:
        state = "" if b.module in present else "  (module not found)"
        print(f"{b.name:<8} {b.module:<28} {b.description}{state}")
    return 0


def _module_file(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def run(args: argparse.Namespace) -> int:
    """Handler of ``mbmssec bench``: 0 all ran, 1 a benchmark failed, 2 bad input."""
    import time

    benchmarks = suite.discover()
    if args.list:
        return _list(benchmarks)
    chosen = suite.select(benchmarks, args.only)
    out: Path = args.out
    _prepare(out)
    quick = not args.full
    mode = "quick" if quick else "full"
    timeout = args.timeout if args.timeout is not None else suite.DEFAULT_TIMEOUT[mode]

    def progress(message: str) -> None:
        print(f"mbmssec bench: {message}", file=sys.stderr, flush=True)

    start = time.perf_counter()
    outcomes = suite.run_suite(
        chosen, quick, isolate=not args.in_process, timeout=timeout, progress=progress
    )
    rows: list[Figure] = []
    notes: list[str] = []
    for outcome in outcomes:
        got, note = suite.figures(outcome)
        rows.extend(got)
        if note:
            notes.append(note)
    plots, plot_notes = write_plots(outcomes, rows, out)
    notes.extend(plot_notes)
    _remove_stale(out, benchmarks, {p["file"] for p in plots})
    doc: dict[str, Any] = {
        "schema": 1,
        "mode": mode,
        "seconds": time.perf_counter() - start,
        "machine": suite.machine_info(mode),
        "benchmarks": {o.name: o.to_json() for o in outcomes},
        "figures": [f.to_json() for f in rows],
        "plots": plots,
        "notes": notes,
    }
    doc = suite.jsonable(doc)
    text = json.dumps(doc, indent=2, allow_nan=False)
    (out / "results.json").write_text(text + "\n")
    (out / "results.md").write_text(results_markdown(doc, rows))
    if args.json:
        print(text)
    else:
        print(figures_table(rows) if rows else "No figures.")
        for name, b in doc["benchmarks"].items():
            if b["status"] != "ok":
                print(f"{name}: {b['status']}: {b['reason']}")
        for note in notes:
            print(f"note: {note}")
        print(
            f"wrote {out / 'results.json'}, {out / 'results.md'} and {len(plots)} plot(s) "
            f"in {doc['seconds']:.1f} s"
        )
    return 1 if any(o.status == "failed" for o in outcomes) else 0

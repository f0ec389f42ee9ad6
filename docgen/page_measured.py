"""Documentation pages of measurements, made at build time: re-keying load, and benchmark
results.

The load page runs the population simulation (:mod:`mbmssec.simulation.load`) while the docs are
built, so its numbers are those of the code the docs describe; it ties them to the
model's activation property (property 4).  The benchmark page shows the newest
``mbmssec bench`` results found in ``results/bench/`` of the working tree, or says how
to produce them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from mbmssec.docgen.site import Site
from mbmssec.simulation.load import ALL_STRATEGIES, LoadParams, LoadReport, simulate

#: The scenario the load page simulates (documented on the page itself).
LOAD_SCENARIO = LoadParams(
    ues=200_000, window=300.0, period=3600.0, bin_width=1.0, loss=0.01, out_of_coverage=0.01, seed=1
)
#: The capacity used when no BM-SC measurement is available (requests per second).
ASSUMED_CAPACITY = 250.0


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    out = [".. list-table::", "   :header-rows: 1", ""]
    for row in [header, *rows]:
        out.append("   * - " + row[0])
        out.extend(f"     - {cell}" for cell in row[1:])
    return "\n".join(out) + "\n"


def measured_capacity(bench_dir: Path) -> float | None:
    """Registrations per second of our BM-SC from a ``mbmssec bench`` results file."""
    path = bench_dir / "results.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        value = data["benchmarks"]["bmsc"]["result"]["registrations_per_second"]
    except (KeyError, TypeError, ValueError):
        return None
    return float(value) if isinstance(value, int | float) and value > 0 else None


def _strategy_rows(report: LoadReport) -> list[list[str]]:
    """One table row per fetch-spreading strategy of a simulation."""
    rows: list[list[str]] = []
    for r in report.results:
        share = None if r.holding_share is None else 100 * r.holding_share
        rows.append(
            [
                f"``{r.strategy}``",
                _fmt(r.peak_rate),
                _fmt(r.mean_rate),
                _fmt(r.peak_to_mean, 2),
                _fmt(share, 2) + " %",
                str(r.violators),
                _fmt(r.stale_p99),
                _fmt(r.min_window, 0),
            ]
        )
    return rows


def load_page(bench_dir: Path) -> str:
    """The re-keying load page (clauses 6.2.2 and 6.2.3.2, the congestion FFS)."""
    measured = measured_capacity(bench_dir)
    capacity = measured or ASSUMED_CAPACITY
    report = simulate(LOAD_SCENARIO, ALL_STRATEGIES, capacity=capacity)
    p = LOAD_SCENARIO
    source = (
        f"measured by ``mbmssec bench`` ({capacity:,.0f} registrations/s)"
        if measured
        else f"assumed ({capacity:,.0f} requests/s; run ``mbmssec bench`` to measure our BM-SC)"
    )
    rows = _strategy_rows(report)
    title = "Re-keying load at population scale"
    out = [
        title,
        "=" * len(title),
        "",
        "The text leaves open how UEs fetch the next TEK without overloading the BM-SC "
        "(editor's notes of 6.2.2 and 6.2.3.2; option ``fetch_spreading``). The model "
        "abstracts the choice away (any fetch time in the window); this page measures "
        "it with ``mbmssec load``, run while these pages were built.",
        "",
        f"Scenario: {p.ues:,} UEs, fetch window W = {p.window:.0f} s before activation, "
        f"TEK period {p.period:.0f} s, 1 s bins, one BM-SC, {100 * p.loss:.0f} % of "
        f"requests lost and retried with back-off, {100 * p.out_of_coverage:.0f} % of UEs "
        f"out of coverage during the window, seed {p.seed}. The uniform limit N/W is "
        f"{p.ues / p.window:,.0f} requests/s. Server capacity: {source}.",
        "",
        _table(
            [
                "strategy",
                "peak req/s",
                "mean req/s",
                "peak / mean",
                "hold next TEK at activation",
                "property-4 violators",
                "stale key p99 (s)",
                "min. window for capacity (s)",
            ],
            rows,
        ),
        "",
        "*Property-4 violators* are in-coverage members without the new TEK when it is "
        "activated: the UEs that would violate the model's activation property "
        "(:doc:`property 4 <properties/p4>`) in this population. Out-of-coverage UEs are "
        "excluded, as in the model; they recover through the unknown-MKI path "
        "(6.2.3.3). The violators here are UEs whose request was lost near the end of "
        "the window and whose retry came after activation: the model's premise "
        '"no delivery lost" is exactly what keeps them out of property 4.',
        "",
        "Reading the table: with no spreading every UE asks at once and the peak is the "
        "whole population in one bin; random spreading over W comes close to the "
        "uniform limit with a binomial excess; scheduled slots reach it; several keys "
        "per message divide the number of requests by the number of keys, at the price "
        "of keys delivered long before use. The minimal window is the shortest W that "
        "keeps the peak under the capacity.",
        "",
    ]
    return "\n".join(out)


def _read_bench(bench_dir: Path) -> dict[str, Any] | None:
    """The newest ``mbmssec bench`` results, if there are usable ones."""
    data_path = bench_dir / "results.json"
    try:
        data = json.loads(data_path.read_text(encoding="utf-8")) if data_path.is_file() else None
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("figures"), list):
        return None
    return data


def _figure_rows(figures: list[Any]) -> list[list[str]]:
    """One table row per benchmark figure (entries that are not objects are skipped)."""
    return [
        [
            f"{f.get('benchmark', '')}",
            str(f.get("figure", "")),
            f"{_fmt(f.get('value'), 1)} {f.get('unit', '')}",
            f"{f.get('reference', '')} ({_fmt(f.get('reference_value'), 1)})",
            _fmt(f.get("ratio"), 3),
        ]
        for f in figures
        if isinstance(f, dict)
    ]


def _copy_plots(bench_dir: Path, out_dir: Path) -> list[Path]:
    """Copy the benchmark plots into ``out_dir`` (only those that changed)."""
    copied: list[Path] = []
    for png in sorted(bench_dir.glob("*.png")):
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / png.name
        if not target.exists() or target.read_bytes() != png.read_bytes():
            shutil.copyfile(png, target)
        copied.append(target)
    return copied


def bench_page(bench_dir: Path, out_dir: Path) -> tuple[str, list[Path]]:
    """The latest benchmark results (copying their plots into ``out_dir``), or how to
    produce them; returns the page and the files copied."""
    title = "Benchmark results"
    out = [title, "=" * len(title), ""]
    data = _read_bench(bench_dir)
    if data is None:
        out += [
            "No benchmark results were found in ``results/bench/`` when these pages "
            "were built. Run ``mbmssec bench`` (quick mode, under a minute) or "
            "``mbmssec bench --full`` and build the docs again.",
            "",
        ]
        return "\n".join(out), []
    machine = data.get("machine") or {}
    out += [
        f"Results of ``mbmssec bench`` in {data.get('mode', '?')} mode, "
        f"{machine.get('date', 'unknown date')}, on {machine.get('cpu_count', '?')} CPUs "
        f"({machine.get('cpu_model', 'unknown CPU')}), commit "
        f"``{str(machine.get('git_commit', '?'))[:12]}``. Every figure is a ratio "
        "against a reference measured in the same run where one exists; otherwise "
        "against a stated target or limit.",
        "",
    ]
    out.append(
        _table(
            ["benchmark", "figure", "value", "reference", "ratio"], _figure_rows(data["figures"])
        )
    )
    copied = _copy_plots(bench_dir, out_dir)
    for png in copied:
        out += ["", f".. image:: bench/{png.name}", f"   :alt: {png.stem}", ""]
    return "\n".join(out), copied


def write_measured_pages(site: Site) -> None:
    """``load`` and ``benchmarks``, from the ``results/bench`` folder beside the
    documentation sources (the checkout's, for ``docs/``)."""
    bench_dir = site.writer.root.parent.parent / "results" / "bench"
    site.write("load.rst", load_page(bench_dir))
    text, images = bench_page(bench_dir, site.writer.root / "bench")
    site.writer.keep(images)
    site.write("benchmarks.rst", text)

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
    produce them, then what the MIKEY and BM-SC benchmarks measure and where a
    registration's time goes; returns the page and the files copied."""
    title = "Benchmark results"
    out = [title, "=" * len(title), ""]
    data = _read_bench(bench_dir)
    if data is None:
        out += [
            "No benchmark results were found in ``results/bench/`` when these pages "
            "were built. Run ``mbmssec bench`` (quick mode, under a minute) or "
            "``mbmssec bench --full`` and build the docs again.",
            "",
            REGISTRATION_NOTES,
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
    out += ["", REGISTRATION_NOTES]
    return "\n".join(out), copied


#: What the ``mikey`` and ``bmsc`` benchmarks measure, and the profile of a registration
#: before and after the MIKEY codec and Digest parser were rewritten (measured figures,
#: kept as text: the code they describe is gone; the live profile is in the table above).
REGISTRATION_NOTES = """\
What the MIKEY and BM-SC benchmarks measure
-------------------------------------------

``mikey`` times a TEK delivery built, parsed and verified (and the UE's verification
message built and verified) against a reference that does the same cryptography and
no encoding: the MIKEY-1 PRF (RFC 3830 4.1.2, P over HMAC-SHA-1) deriving the message
keys from the KEK at both ends, the AES of the Key data chain (AES-CM-128 with the
4.2.3 IV, or AES-KW-128) and its inverse, and HMAC-SHA-1-160 over the same message
bytes and its check, through the same functions the messages use.  A ratio of 0.5
means that encoding, parsing and checks cost as much as the cryptography they wrap.
Both are timed in CPU time over equal windows, interleaved: each round times the
messages and then their reference back to back.  The rates shown are the best round's;
the ratio is the median over the rounds of the ratio within each round, which a round
slowed by other load on the (virtual) machine moves less than it moves either rate.

``bmsc`` runs the BM-SC as ``mbmssec serve`` does (SQLite with ``durability=full``, the
event log in a file) in the benchmark's process and the UEs in a process of their own.
The UEs do all of a UE's work: the USIM (Milenage, AUTN check, RES), the Digest
answer, the KEK, the MIKEY verification and decryption and the SRTP receiver's keys.
The reference is a minimal aiohttp endpoint that replays genuine answers (a challenge
and a TEK delivery made for each of its UEs by another BM-SC before the clock starts)
to the same client process doing the same work.  The server process's CPU time per
registration is given for both, and the client's busy fraction: near 1 against the
reference endpoint, the clients rather than the endpoint set its pace, which bounds
the registrations ratio (on two cores there is one core for the clients).

Where a registration's time goes
--------------------------------

``python -m mbmssec.bench.bmsc_bench --profile`` runs 600 registrations, 32 at a time,
with the BM-SC under ``cProfile`` and the UEs in their own process.  Each part is the
time spent in calls into its modules (a part includes the library code it calls:
SQLite and its fsync for the store, ``cryptography`` for MIKEY); the BM-SC's own code
counts its own time; the rest is the HTTP server (aiohttp, asyncio) and everything
else; waiting in ``epoll`` is not counted.  ``cProfile`` inflates code that makes many
small calls, so the shares are indicative.  Before (commit ``fa42e3b``) and after the
MIKEY codec and the Digest parser were rewritten, run one after the other on the same
two-core machine, loaded by other work (load average about 6), milliseconds per
registration:

.. list-table::
   :header-rows: 1

   * - part
     - before
     - after
   * - AKA (Milenage vector, KEK)
     - 0.98 (4.1 %)
     - 1.20 (5.3 %)
   * - HTTP Digest (parse, challenge, verify)
     - 2.45 (10.1 %)
     - 1.35 (6.0 %)
   * - MIKEY TEK delivery build
     - 1.89 (7.8 %)
     - 0.79 (3.5 %)
   * - store (SQLite, commits)
     - 12.75 (52.8 %)
     - 13.32 (59.4 %)
   * - event log
     - 0.50 (2.1 %)
     - 0.49 (2.2 %)
   * - BM-SC core logic (own code)
     - 1.12 (4.6 %)
     - 1.03 (4.6 %)
   * - HTTP server (aiohttp, asyncio) and the rest
     - 4.45 (18.4 %)
     - 4.22 (18.9 %)
   * - busy in all
     - 24.1
     - 22.4

Without the profiler (CPU time per call, best of nine, same machine): a BM-SC TEK
delivery (COUNTER T, IDi and IDr, fetch time, AES-CM-128, one TEK) took 112-115 us to
assemble and build and 222-287 us to parse and verify, and takes 65-79 us and
47-55 us; parsing a UE's ``Authorization`` header (391 characters) took 106-126 us and
takes 42-69 us.  The BM-SC's CPU time per registration in the ``bmsc`` benchmark went
from 4.2-4.3 ms to 3.6-3.7 ms (the reference endpoint: 0.65-0.85 ms) and its
registrations from 183-185/s to 211-212/s (quiet machine, two runs each).  What was
left was mostly the store.

The store, the schedule and the fsync
-------------------------------------

Group commit (one transaction and one fsync per event-loop turn) came next; then a
registration went from 29 SQL statements to 19 (counted in the profiled storm, where the
requests of a batch share its ``BEGIN`` and ``COMMIT``): the schedule read in one
statement, and not at all while nothing can be due and its stamp
(this connection's schedule writes and rollbacks, SQLite's ``data_version`` for other
connections) is unchanged; the SQN taken and checked in one statement; the
authorisation checked in the transaction that delivers; the TEKs read, and their
deliveries recorded, in one statement each.  The WAL's fsync runs in a thread of its own
while the event loop serves the next requests; a batch is answered and logged, in commit
order, once a sync begun after its commit returned.  MILENAGE computes on 128-bit
integers with one AES context per subscriber object and an authentication vector's f1 to
f5 from one TEMP.  ``python -m mbmssec.bench.bmsc_bench --profile``, before (commit
``0c909f2``) and after, run one after the other on the same two-core machine (load
average about 1), two runs each, milliseconds per registration (``cProfile`` counts
wall time: before, the fsync's wait in the event loop is in the store's part; after, it
is in the sync's thread and not counted, but handing each sync to that thread is, in the
last part):

.. list-table::
   :header-rows: 1

   * - part
     - before
     - after
   * - AKA (Milenage vector, KEK)
     - 0.47-0.51
     - 0.18-0.22
   * - HTTP Digest (parse, challenge, verify)
     - 0.57-0.58
     - 0.43-0.51
   * - MIKEY TEK delivery build
     - 0.31-0.32
     - 0.27-0.35
   * - store (SQLite, commits)
     - 1.23-1.26
     - 0.64-0.82
   * - event log
     - 0.24-0.25
     - 0.17-0.20
   * - BM-SC core logic (own code)
     - 0.36
     - 0.28-0.36
   * - HTTP server (aiohttp, asyncio) and the rest
     - 1.08-1.09
     - 0.99-1.25
   * - busy in all
     - 4.28-4.36
     - 2.97-3.72

Without the profiler, six runs of the registrations part of ``bmsc`` in quick mode
alternating the two versions (150 registrations, 32 at a time, best of two rounds; load
average 0.7-1.2): 339-385 registrations/s before and 436-680/s after, 0.43-0.69 and
0.51-0.82 of the minimal endpoint in the same run; the BM-SC's CPU time per registration
2.4-2.9 ms before and 1.5-2.3 ms after (the endpoint's: 0.4-0.7 ms).  The UE clients
run the same MILENAGE code in both versions, so the endpoint's clients got faster too.
What is left: the store (about a fifth of the busy time under the profiler: SQLite's own
work for the 19 statements, and their rows turned into objects), aiohttp's per-request
work, which the minimal endpoint pays as well, and the Digest and MIKEY codecs.
"""


def write_measured_pages(site: Site) -> None:
    """``load`` and ``benchmarks``, from the ``results/bench`` folder beside the
    documentation sources (the checkout's, for ``docs/``)."""
    bench_dir = site.writer.root.parent.parent / "results" / "bench"
    site.write("load.rst", load_page(bench_dir))
    text, images = bench_page(bench_dir, site.writer.root / "bench")
    site.writer.keep(images)
    site.write("benchmarks.rst", text)

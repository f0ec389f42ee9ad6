"""Benchmark of the re-keying load simulation (:mod:`mbmssec.simulation.load`).

Reports, per ``fetch_spreading`` strategy, how many UEs per second the vectorised
simulation handles and how its peak compares with the uniform limit N/W (1.0 would be a
perfectly even load; TS 33.246 proposal, TEK fetch before activation). Speed is also
given as a ratio against a reference measured in the same run: a plain per-UE Python
loop doing the work of ``random_interval`` one UE at a time (draw, hash to an instance,
count into a bin, check the key arrives by activation), the way a one-object-per-UE
simulation would. The benchmark also sweeps the population (peak against N for each
strategy, against N/W), and its plot marks the BM-SC's registrations/s when the BM-SC
benchmark ran in the same run.

Run ``python -m mbmssec.bench.load_bench [--quick] [--json]``.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from mbmssec.bench.benchmark import Benchmark, Figure, Plot, PlotData, Result
from mbmssec.bench.plotting import pyplot, save, unity
from mbmssec.simulation.load import (
    ALL_STRATEGIES,
    DEFAULT_CAPACITY_KEY,
    LoadError,
    LoadParams,
    build_plan,
    capacity_from_json,
    evaluate,
    population,
)
from mbmssec.simulation.load import peak_against_population as sweep_population

#: The scenario: fetch window W, TEK period P, bin width of the rates, random seed.
WINDOW: Final = 300.0
PERIOD: Final = 3600.0
BIN_WIDTH: Final = 1.0
SEED: Final = 1
#: The benchmark whose result gives the BM-SC's capacity, drawn on the population plot.
CAPACITY_FROM: Final = "bmsc"


def _per_ue_reference(ues: int, params: LoadParams) -> float:
    """UEs per second of a per-UE Python loop doing what ``random_interval`` does.

    Per UE: draw the fetch time, hash the index to its BM-SC instance, count the request
    into its instance's bin, and check that the key arrives by activation.
    """
    mask = (1 << 64) - 1
    rng = random.Random(params.seed)
    window, width, instances = params.window, params.bin_width, params.instances
    counts: dict[tuple[int, int], int] = {}
    holding = 0
    start = time.perf_counter()
    for ue in range(ues):
        t = rng.random() * window
        x = (ue + 0x9E3779B97F4A7C15) & mask
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
        cell = ((x ^ (x >> 31)) % instances, int(t / width))
        counts[cell] = counts.get(cell, 0) + 1
        holding += t <= window
    elapsed = time.perf_counter() - start
    assert sum(counts.values()) == ues == holding
    return ues / elapsed


@dataclass(frozen=True)
class LoadSize:
    """How big a population to simulate, to time the per-UE reference on, and to sweep."""

    ues: int
    reference_ues: int
    populations: tuple[int, ...]


QUICK: Final = LoadSize(ues=100_000, reference_ues=20_000, populations=(10_000, 100_000, 1_000_000))
FULL: Final = LoadSize(
    ues=10_000_000,
    reference_ues=500_000,
    populations=(10_000, 100_000, 1_000_000, 10_000_000),
)


def _params(ues: int) -> LoadParams:
    return LoadParams(ues=ues, window=WINDOW, period=PERIOD, bin_width=BIN_WIDTH, seed=SEED)


def peak_against_population(populations: Sequence[int]) -> dict[str, Any]:
    """Peak request rate per fetch-spreading strategy for growing populations.

    Same scenario as the rest of the benchmark (W = 300 s, P = 3600 s, 1 s bins, one
    instance); the uniform limit N/W is the reference each peak is read against.
    """
    sizes = tuple(populations)
    start = time.perf_counter()
    peaks = sweep_population(_params(sizes[-1]), sizes, ALL_STRATEGIES)
    return {
        "populations": list(sizes),
        "window": WINDOW,
        "bin_width": BIN_WIDTH,
        "uniform_limit": [n / WINDOW for n in sizes],
        "peak_rate": {str(s): [float(v) for v in values] for s, values in peaks.items()},
        "seconds": time.perf_counter() - start,
    }


def measure(size: LoadSize) -> dict[str, Any]:
    """Time every strategy on one population, sweep the population; return the figures."""
    ues = size.ues
    params = _params(ues)
    start = time.perf_counter()
    pop = population(params)
    population_s = time.perf_counter() - start
    strategies: dict[str, dict[str, float | int]] = {}
    vectorised_random = 0.0
    for strategy in ALL_STRATEGIES:
        start = time.perf_counter()
        plan = build_plan(params, strategy, pop=pop)
        result = evaluate(plan)
        elapsed = time.perf_counter() - start
        del plan
        strategies[str(strategy)] = {
            "seconds": elapsed,
            "ues_per_second": ues / elapsed,
            "requests": result.requests,
            "peak_rate": result.peak_rate,
            "uniform_limit": result.uniform_limit,
            "peak_over_uniform": result.peak_over_uniform,
            "peak_to_mean": result.peak_to_mean if result.peak_to_mean is not None else -1.0,
        }
        if strategy == "random_interval":
            vectorised_random = ues / elapsed
    reference = _per_ue_reference(size.reference_ues, params)
    sweep: dict[str, Any]
    try:
        sweep = peak_against_population(size.populations)
    except Exception as exc:  # the sweep is an addition: its failure must not lose the rest
        sweep = {"error": f"{type(exc).__name__}: {exc}"}
    return {
        "benchmark": "load",
        "quick": size == QUICK,
        "ues": ues,
        "window": params.window,
        "bin_width": params.bin_width,
        "population_seconds": population_s,
        "strategies": strategies,
        "reference_per_ue_loop": {"ues": size.reference_ues, "ues_per_second": reference},
        "random_interval_speedup_over_per_ue_loop": vectorised_random / reference,
        "peak_against_population": sweep,
    }


def run(quick: bool) -> dict[str, Any]:
    """Measure at the quick or the full size (as ``BENCHMARK.run``, with the dict type)."""
    return measure(QUICK if quick else FULL)


def figures(r: Result) -> list[Figure]:
    """Peak and peak-to-mean per strategy against the uniform limit; speed against a loop."""
    rows = []
    ues = int(r["ues"])
    for name, s in r["strategies"].items():
        rows.append(
            Figure(
                f"peak request rate, {name}, N={ues:,}",
                float(s["peak_rate"]),
                "requests/s",
                "uniform limit N/W",
                float(s["uniform_limit"]),
                "limit",
                False,
            )
        )
        ptm = s.get("peak_to_mean")
        if isinstance(ptm, int | float) and ptm > 0:
            rows.append(
                Figure(
                    f"peak-to-mean, {name}",
                    float(ptm),
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
                "simulation speed, random_interval",
                float(random_["ues_per_second"]),
                "UEs/s",
                "plain per-UE Python loop (same run)",
                float(ref["ues_per_second"]),
                "measured",
                True,
            )
        )
    return rows


def _plot_strategies(data: PlotData, path: Path) -> bool:
    r = data.result
    strategies = r["strategies"]
    names = list(strategies)
    over_uniform = [float(strategies[n]["peak_over_uniform"]) for n in names]
    ptm = [max(float(strategies[n]["peak_to_mean"]), 0.0) for n in names]
    plt = pyplot()
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
    unity(ax, "perfectly even = 1")
    ax.set_ylabel("ratio (log)")
    ax.set_title(
        f"TEK fetch peak per strategy, N={int(r['ues']):,}, W={float(r['window']):g} s, "
        f"{float(r['bin_width']):g} s bins"
    )
    ax.legend(fontsize="small")
    return save(fig, path)


def _capacity(others: Mapping[str, Result]) -> float | None:
    """The BM-SC's registrations/s, if the BM-SC benchmark ran in the same run."""
    bmsc = others.get(CAPACITY_FROM)
    if bmsc is None:
        return None
    try:
        return capacity_from_json(bmsc, DEFAULT_CAPACITY_KEY)
    except LoadError:
        return None


def _plot_population(data: PlotData, path: Path) -> bool:
    pop = data.result.get("peak_against_population")
    if not isinstance(pop, Mapping) or "populations" not in pop:
        return False
    capacity = _capacity(data.others)
    sizes = [int(n) for n in pop["populations"]]
    limit = [float(v) for v in pop["uniform_limit"]]
    plt = pyplot()
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
    unity(right, "uniform limit = 1")
    right.set_xlabel("UEs (N)")
    right.set_ylabel("peak / (N/W)")
    right.set_title("Peak relative to the uniform limit")
    right.legend(fontsize="small")
    return save(fig, path)


BENCHMARK: Final = Benchmark(
    name="load",
    description="re-keying load simulation: peak per strategy, speed, peak against population",
    measure=measure,
    quick=QUICK,
    full=FULL,
    figures=figures,
    plots=(
        Plot(
            "load_peak_per_strategy.png",
            "Load: peak and peak-to-mean per strategy",
            _plot_strategies,
        ),
        Plot("load_peak_vs_population.png", "Load: peak against population", _plot_population),
    ),
)


if __name__ == "__main__":
    from mbmssec.bench.suite import standalone

    sys.exit(standalone(BENCHMARK))

"""Benchmark of the re-keying load simulation (:mod:`mbmssec.simulation.load`).

Reports, per ``fetch_spreading`` strategy, how many UEs per second the vectorised
simulation handles and how its peak compares with the uniform limit N/W (1.0 would be a
perfectly even load; TS 33.246 proposal, TEK fetch before activation). Speed is also
given as a ratio against a reference measured in the same run: a plain per-UE Python
loop doing the work of ``random_interval`` one UE at a time (draw, hash to an instance,
count into a bin, check the key arrives by activation), the way a one-object-per-UE
simulation would.

Run ``python -m mbmssec.bench.load_bench [--quick]``; it prints JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import time

from mbmssec.simulation.load import ALL_STRATEGIES, LoadParams, build_plan, evaluate, population


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


def run(quick: bool) -> dict[str, object]:
    """Time every strategy on one population and return the figures as a dict."""
    ues = 100_000 if quick else 10_000_000
    reference_ues = 20_000 if quick else 500_000
    params = LoadParams(ues=ues, window=300.0, period=3600.0, bin_width=1.0, seed=1)
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
    reference = _per_ue_reference(reference_ues, params)
    return {
        "benchmark": "load",
        "quick": quick,
        "ues": ues,
        "window": params.window,
        "bin_width": params.bin_width,
        "population_seconds": population_s,
        "strategies": strategies,
        "reference_per_ue_loop": {"ues": reference_ues, "ues_per_second": reference},
        "random_interval_speedup_over_per_ue_loop": vectorised_random / reference,
    }


def main() -> None:
    """Command-line entry: print the benchmark's JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10^5 UEs instead of 10^7")
    args = parser.parse_args()
    print(json.dumps(run(args.quick), indent=2))


if __name__ == "__main__":
    main()

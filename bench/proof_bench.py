"""Benchmark of the proofs (:mod:`mbmssec.proofs`): a full baseline check, each induction
query, and bounded model checking time against depth.

* the full baseline check (:func:`mbmssec.proofs.check.check_profile`: inductive
  fixpoint, step and response properties, bounded search for the shortest
  counterexample of backward secrecy and a witness for every action), reported with its
  ratio to the 20 s target;
* every induction query's time (one per action and conjunct, plus base cases);
* the bounded search's cumulative time at each depth up to 12 (8 with ``--quick``), on a
  property that holds (forward secrecy), so that every depth is searched to the end;
  each depth is also given as a ratio to the time of depth 1 measured in the same run.

* the baseline check again beside CPU hogs (one busy process per CPU, started and
  stopped by this benchmark): the verdicts, the lemmas each proof used and the surviving
  conjuncts must be those of the idle run (solver limits are step counts, not seconds),
  and the slowdown is reported as a ratio to the idle run.

Run ``python -m mbmssec.bench.proof_bench [--quick] [--json]``.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from mbmssec.bench.benchmark import Benchmark, Figure, Plot, PlotData, Result
from mbmssec.bench.plotting import pyplot, save, unity
from mbmssec.model.machine import Model
from mbmssec.proofs.bmc import search
from mbmssec.proofs.check import check_profile

#: The time the project aims at for the full baseline check.
TARGET_SECONDS: Final = 20.0
#: The property searched at every depth: forward secrecy, which holds.
BMC_PROPERTY: Final = 6


@dataclass(frozen=True)
class ProofSize:
    """How deep the bounded search against depth goes."""

    depth: int


QUICK: Final = ProofSize(depth=8)
FULL: Final = ProofSize(depth=12)


def _hog() -> None:  # pragma: no cover - runs in a child process until terminated
    while True:
        pass


def _verdict_summary(report: Any) -> dict[str, object]:
    return {
        "verdicts": {str(n): v.verdict for n, v in sorted(report.verdicts.items())},
        "lemmas": {str(n): list(v.lemmas) for n, v in sorted(report.verdicts.items())},
        "surviving": list(report.induction.surviving),
    }


def under_load(idle: Any, idle_seconds: float) -> dict[str, object]:
    """The baseline check beside one busy process per CPU, compared with the idle run."""
    hogs = [multiprocessing.Process(target=_hog, daemon=True) for _ in range(os.cpu_count() or 1)]
    for h in hogs:
        h.start()
    try:
        t0 = time.perf_counter()
        loaded = check_profile(Model.baseline())
        seconds = time.perf_counter() - t0
    finally:
        for h in hogs:  # only the processes started above, by their handles
            h.terminate()
            h.join(5)
    a, b = _verdict_summary(idle), _verdict_summary(loaded)
    return {
        "hogs": len(hogs),
        "seconds": round(seconds, 3),
        "ratio_to_idle": round(seconds / idle_seconds, 2) if idle_seconds > 0 else None,
        "identical": a == b,
        "idle": a,
        "loaded": b,
    }


def measure(size: ProofSize) -> dict[str, object]:
    """Run the three measurements and return the figures as a dict."""
    model = Model.baseline()
    t0 = time.perf_counter()
    report = check_profile(model)
    full = time.perf_counter() - t0
    queries = report.induction.queries
    solver_times = [q.seconds for q in queries if q.verdict != "frame"]
    slowest = sorted(queries, key=lambda q: -q.seconds)[:10]
    loaded = under_load(report, full)
    res = search(model, props=[model.prop(BMC_PROPERTY)], depth=size.depth)
    cumulative = res.depth_seconds
    per_depth = [cumulative[0]] + [b - a for a, b in itertools.pairwise(cumulative)]
    unit = per_depth[1] if len(per_depth) > 1 and per_depth[1] > 0 else 1.0
    return {
        "benchmark": "proofs",
        "quick": size == QUICK,
        "baseline_check": {
            "seconds": round(full, 3),
            "ratio_to_target": round(full / TARGET_SECONDS, 3),
            "target_seconds": TARGET_SECONDS,
            "induction_seconds": round(report.induction.seconds, 3),
            "bmc_seconds": round(report.bmc_seconds, 3),
            "verdicts": {n: v.verdict for n, v in sorted(report.verdicts.items())},
        },
        "under_load": loaded,
        "queries": {
            "count": len(queries),
            "solver_calls": len(solver_times),
            "frame_shortcuts": len(queries) - len(solver_times),
            "total_seconds": round(sum(solver_times), 4),
            "median_ms": round(1000 * statistics.median(solver_times), 3),
            "max_ms": round(1000 * max(solver_times), 3),
            "slowest": [q.to_json() for q in slowest],
            "all": [
                {
                    "action": q.action,
                    "conjunct": q.conjunct,
                    "verdict": q.verdict,
                    "ms": round(1000 * q.seconds, 3),
                }
                for q in queries
            ],
        },
        "bmc_vs_depth": {
            "property": BMC_PROPERTY,
            "universe": {
                "ue": res.universe.ue,
                "svc": res.universe.svc,
                "tek": res.universe.tek,
                "pkt": res.universe.pkt,
            },
            "depths": [
                {
                    "depth": k,
                    "seconds": round(t, 3),
                    "cumulative_seconds": round(c, 3),
                    "ratio_to_depth_1": round(t / unit, 2),
                }
                for k, (t, c) in enumerate(zip(per_depth, cumulative, strict=True))
            ],
        },
    }


def figures(r: Result) -> list[Figure]:
    """The baseline check against its target; BMC depths against depth 1; query median."""
    base = r["baseline_check"]
    rows = [
        Figure(
            "full baseline check (induction + BMC)",
            float(base["seconds"]),
            "s",
            "target",
            float(base["target_seconds"]),
            "target",
            False,
        )
    ]
    depths = r["bmc_vs_depth"]["depths"]
    if len(depths) > 1:
        one, last = depths[1], depths[-1]
        rows.append(
            Figure(
                f"BMC, time of depth {last['depth']}",
                float(last["seconds"]),
                "s",
                "time of depth 1 (same run)",
                float(one["seconds"]),
                "measured",
                False,
                ratio=float(last["ratio_to_depth_1"]),
            )
        )
        rows.append(
            Figure(
                f"BMC, cumulative to depth {last['depth']}",
                float(last["cumulative_seconds"]),
                "s",
            )
        )
    queries = r["queries"]
    rows.append(
        Figure(
            f"induction query median ({queries['solver_calls']} solver calls)",
            float(queries["median_ms"]),
            "ms",
        )
    )
    load = r.get("under_load")
    if isinstance(load, dict):
        rows.append(
            Figure(
                f"baseline check beside {load['hogs']} CPU hogs (verdicts "
                f"{'identical' if load['identical'] else 'DIFFERENT'})",
                float(load["seconds"]),
                "s",
                "idle check (same run)",
                float(base["seconds"]),
                "measured",
                False,
            )
        )
    return rows


def _plot(data: PlotData, path: Path) -> bool:
    r = data.result
    depths = r["bmc_vs_depth"]["depths"]
    if len(depths) < 2:
        return False
    ks = [int(d["depth"]) for d in depths]
    per = [float(d["seconds"]) for d in depths]
    cumulative = [float(d["cumulative_seconds"]) for d in depths]
    plt = pyplot()
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
    unity(right, "depth 1 = 1")
    right.set_xlabel("BMC depth (steps)")
    right.set_ylabel("time of the depth / time of depth 1 (log)")
    right.set_title("Cost of each depth against depth 1 (same run)")
    right.legend(fontsize="small")
    return save(fig, path)


def check(r: Result) -> str | None:
    """A loaded machine must not change a verdict, a lemma set or a surviving conjunct."""
    load = r.get("under_load")
    if isinstance(load, dict) and not load.get("identical"):
        return "the baseline check beside CPU hogs gave other verdicts or proofs than idle"
    return None


BENCHMARK: Final = Benchmark(
    name="proof",
    description="Z3 baseline check time and bounded model checking time against depth",
    measure=measure,
    quick=QUICK,
    full=FULL,
    figures=figures,
    plots=(Plot("bmc_time_vs_depth.png", "Proofs: BMC time against depth", _plot),),
    check=check,
)


if __name__ == "__main__":
    from mbmssec.bench.suite import standalone

    sys.exit(standalone(BENCHMARK))

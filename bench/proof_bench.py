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

Run ``python -m mbmssec.bench.proof_bench [--quick]``; it prints JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time

from mbmssec.model.machine import Model
from mbmssec.proofs.bmc import search
from mbmssec.proofs.check import check_profile

TARGET_SECONDS = 20.0


def run(quick: bool) -> dict[str, object]:
    """Run the three measurements and return the figures as a dict."""
    model = Model.baseline()
    t0 = time.perf_counter()
    report = check_profile(model)
    full = time.perf_counter() - t0
    queries = report.induction.queries
    solver_times = [q.seconds for q in queries if q.verdict != "frame"]
    slowest = sorted(queries, key=lambda q: -q.seconds)[:10]
    depth = 8 if quick else 12
    res = search(model, props=[model.prop(6)], depth=depth)
    cumulative = res.depth_seconds
    per_depth = [cumulative[0]] + [b - a for a, b in itertools.pairwise(cumulative)]
    unit = per_depth[1] if len(per_depth) > 1 and per_depth[1] > 0 else 1.0
    return {
        "benchmark": "proofs",
        "quick": quick,
        "baseline_check": {
            "seconds": round(full, 3),
            "ratio_to_target": round(full / TARGET_SECONDS, 3),
            "target_seconds": TARGET_SECONDS,
            "induction_seconds": round(report.induction.seconds, 3),
            "bmc_seconds": round(report.bmc_seconds, 3),
            "verdicts": {n: v.verdict for n, v in sorted(report.verdicts.items())},
        },
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
            "property": 6,
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


def main() -> None:
    """Command-line entry: print the benchmark's JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="bounded search to depth 8")
    args = parser.parse_args()
    print(json.dumps(run(args.quick), indent=2))


if __name__ == "__main__":
    main()

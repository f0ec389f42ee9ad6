"""Lockstep refinement speed: concrete+model+abstraction steps per second, against the
model alone on the same step sequence (the reference, measured in the same run).

Run ``python -m mbmssec.bench.refinement_bench [--quick] [--json]``.
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass
from typing import Any, Final

from mbmssec.bench.benchmark import Benchmark, Figure, Result
from mbmssec.bench.plotting import ratios_plot
from mbmssec.model.concrete import Universe
from mbmssec.refinement.abstraction import Lockstep
from mbmssec.spec.loader import load_spec

UNIVERSE = Universe(ue=3, svc=1, tek=7, pkt=6)
#: Random operations tried per episode.
EPISODE_STEPS: Final = 50


@dataclass(frozen=True)
class RefinementSize:
    """How many random episodes (each of EPISODE_STEPS operations) to run in lockstep."""

    episodes: int


def _episode(seed: int, steps: int) -> Lockstep:
    rng = random.Random(seed)
    ls = Lockstep(load_spec().baseline(), UNIVERSE, seed=seed)
    for _ in range(steps):
        i = rng.randrange(UNIVERSE.ue)
        op = rng.choice(
            ["subscribe", "register", "register", "advance", "send", "receive", "coverage"]
        )
        if op == "subscribe":
            ls.subscribe(i)
        elif op == "register" and ls.may_register(i):
            ls.register(i)
        elif op == "advance" and ls.teks_used() < UNIVERSE.tek:
            ls.advance(rng.choice([0.1, 0.3, 0.6]))
        elif op == "send" and len(ls.wire) < UNIVERSE.pkt:
            ls.send()
        elif op == "receive" and ls.wire and ls.record.covered.get(ls.names[i], True):
            ls.receive(i, rng.randrange(len(ls.wire)))
        elif op == "coverage":
            if ls.record.covered.get(ls.names[i], True):
                ls.lose_coverage(i)
            else:
                ls.regain_coverage(i)
    return ls


def measure(size: RefinementSize) -> dict[str, Any]:
    """Lockstep steps/s and model-only steps/s on the model steps the lockstep took."""
    episodes = size.episodes
    t0 = time.perf_counter()
    runs = [_episode(seed, EPISODE_STEPS) for seed in range(episodes)]
    lock_s = time.perf_counter() - t0
    lock_steps = sum(len(r.steps) for r in runs)
    t1 = time.perf_counter()
    model_steps = 0
    for r in runs:
        st = r.model.initial(UNIVERSE)
        for action, args in r.tracker.steps:
            nxt = r.model.step(st, action, args)
            if nxt is not None:  # clock-reading steps may need unlogged ticks first
                st = nxt
            model_steps += 1
    model_s = time.perf_counter() - t1
    lock_rate = lock_steps / lock_s
    model_rate = model_steps / model_s
    return {
        "name": "refinement",
        "lockstep_steps": lock_steps,
        "lockstep_steps_per_s": round(lock_rate, 1),
        "model_steps_per_s": round(model_rate, 1),
        "lockstep_vs_model": round(lock_rate / model_rate, 4),
    }


def figures(r: Result) -> list[Figure]:
    """Lockstep steps/s against the model alone on the same steps (same run)."""
    return [
        Figure(
            "lockstep steps (implementation + model + abstraction)",
            float(r["lockstep_steps_per_s"]),
            "steps/s",
            "the model alone on the same steps (same run)",
            float(r["model_steps_per_s"]),
            "measured",
            True,
        )
    ]


BENCHMARK: Final = Benchmark(
    name="refinement",
    description="lockstep refinement steps/s against the model alone on the same steps",
    measure=measure,
    quick=RefinementSize(episodes=5),
    full=RefinementSize(episodes=40),
    figures=figures,
    plots=(
        ratios_plot(
            "refinement_ratios.png",
            "refinement: ratios to the references",
            "Lockstep refinement against the model alone (same run)",
        ),
    ),
)


if __name__ == "__main__":
    from mbmssec.bench.suite import standalone

    sys.exit(standalone(BENCHMARK))

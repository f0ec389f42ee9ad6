"""Model steps per second on random walks of the executable model.

A step is one action applied to a state with random arguments (a disabled step still
evaluates the guard); ``enabled_fraction`` says how many changed the state.

Reference in the same run: the cheapest possible immutable-state step (copying the
state's table dictionary), so the ratio says how much the modelling language costs
above bookkeeping; the steps are also set against an aim of 5,000 steps/s.

Run ``python -m mbmssec.bench.model_bench [--quick] [--json]``.
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from mbmssec.bench.benchmark import Benchmark, Figure, Plot, PlotData, Result
from mbmssec.bench.plotting import bars, pyplot, save, unity
from mbmssec.model.concrete import State, Universe, param_values
from mbmssec.model.machine import Model

#: The speed the project aims at for random walks of the baseline model.
AIM_STEPS_PER_SECOND: Final = 5000.0


@dataclass(frozen=True)
class ModelSize:
    """How long a walk to time: the number of random steps (and of reference copies)."""

    steps: int


def _walk(model: Model, steps: int, seed: int) -> tuple[int, int, float]:
    rng = random.Random(seed)
    universe = Universe()
    state = model.initial(universe)
    taken = enabled = 0
    t0 = time.perf_counter()
    for _ in range(steps):
        act = rng.choice(model.actions)
        args = tuple(rng.choice(list(param_values(p, universe))) for p in act.params)
        nxt = model.step(state, act.name, args)
        taken += 1
        if nxt is not None:
            state, enabled = nxt, enabled + 1
    return taken, enabled, time.perf_counter() - t0


def _reference(model: Model, steps: int) -> float:
    state = model.initial(Universe())
    t0 = time.perf_counter()
    for _ in range(steps):
        state = State(state.vocab, state.universe, dict(state.tables))
    return time.perf_counter() - t0


def measure(size: ModelSize) -> dict[str, Any]:
    """Time a random walk of the baseline model and the reference; return the figures."""
    model = Model.baseline()
    steps = size.steps
    taken, enabled, secs = _walk(model, steps, seed=1)
    ref = _reference(model, steps)
    rate = taken / secs
    return {
        "model_steps_per_second": round(rate),
        "reference_copies_per_second": round(steps / ref),
        "ratio_model_to_reference": round(rate / (steps / ref), 4),
        "ratio_to_aim_5000": round(rate / AIM_STEPS_PER_SECOND, 2),
        "steps": taken,
        "enabled_fraction": round(enabled / taken, 3),
    }


def figures(r: Result) -> list[Figure]:
    """Steps/s against a copy of the state (same run) and against the aim."""
    rate = float(r["model_steps_per_second"])
    return [
        Figure(
            "random-walk steps of the baseline model",
            rate,
            "steps/s",
            "copy of the state's tables (same run)",
            float(r["reference_copies_per_second"]),
            "measured",
            True,
        ),
        Figure(
            "random-walk steps against the aim",
            rate,
            "steps/s",
            "aim",
            AIM_STEPS_PER_SECOND,
            "target",
            True,
        ),
    ]


def _plot(data: PlotData, path: Path) -> bool:
    r = data.result
    rate = float(r["model_steps_per_second"])
    labels = [
        "model / copy of the state\n(measured, same run)",
        f"model / aim {AIM_STEPS_PER_SECOND:,.0f} steps/s\n(target)",
    ]
    values = [rate / float(r["reference_copies_per_second"]), rate / AIM_STEPS_PER_SECOND]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    bars(ax, labels, values)
    ax.set_yscale("log")
    unity(ax)
    ax.set_ylabel("ratio (log)")
    ax.set_title(f"Model random walk: {rate:,.0f} steps/s")
    ax.legend(fontsize="small")
    return save(fig, path)


BENCHMARK: Final = Benchmark(
    name="model",
    description="model steps/s on random walks of the executable model",
    measure=measure,
    quick=ModelSize(steps=20_000),
    full=ModelSize(steps=200_000),
    figures=figures,
    plots=(Plot("model_steps_ratio.png", "Model: steps/s ratios", _plot),),
)


if __name__ == "__main__":
    from mbmssec.bench.suite import standalone

    sys.exit(standalone(BENCHMARK))

"""Model steps per second on random walks of the executable model.

A step is one action applied to a state with random arguments (a disabled step still
evaluates the guard); ``enabled_fraction`` says how many changed the state.

Reference in the same run: the cheapest possible immutable-state step (copying the
state's table dictionary), so the ratio says how much the modelling language costs
above bookkeeping.  Run: ``python -m mbmssec.bench.model_bench [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from typing import Any

from mbmssec.model.concrete import State, Universe, param_values
from mbmssec.model.machine import Model


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


def run(quick: bool) -> dict[str, Any]:
    model = Model.baseline()
    steps = 20_000 if quick else 200_000
    taken, enabled, secs = _walk(model, steps, seed=1)
    ref = _reference(model, steps)
    rate = taken / secs
    return {
        "model_steps_per_second": round(rate),
        "reference_copies_per_second": round(steps / ref),
        "ratio_model_to_reference": round(rate / (steps / ref), 4),
        "ratio_to_aim_5000": round(rate / 5000, 2),
        "steps": taken,
        "enabled_fraction": round(enabled / taken, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(parser.parse_args().quick), indent=2))


if __name__ == "__main__":
    main()

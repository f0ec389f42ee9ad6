"""Hypothesis exploration of the model: a stateful machine generated from it.

One rule per action (its precondition: some instance of the action is enabled; its
arguments: drawn among the enabled instances), one invariant per property.  Each
property gets its own run, so the counterexample of one property is not masked by
another.  A violating run is cut down by :meth:`~mbmssec.model.trace.Trace.minimise` (no
single step or pair of steps can be dropped); Hypothesis's own shrinking, which also
simplifies arguments but can take minutes on a long run, is used only when asked for
(``shrink=True``, ``mbmssec explore --shrink``).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from mbmssec.model.concrete import State, Universe, enabled_instances
from mbmssec.model.dsl import Action
from mbmssec.model.machine import Model
from mbmssec.model.properties import Property
from mbmssec.model.trace import Trace, TraceStep

#: The universe exploration uses unless told otherwise: small, so short traces reach
#: the interesting interleavings.
EXPLORE_UNIVERSE = Universe(ue=2, svc=1, tek=3, pkt=2)


class PropertyViolation(AssertionError):
    """Raised inside the machine when a property under test fails."""

    def __init__(self, number: int) -> None:
        super().__init__(f"property {number} violated")
        self.number = number


@dataclass
class _Recorder:
    """What the machine reports back across Hypothesis's runs."""

    counts: Counter[str] = field(default_factory=Counter)
    last_trace: list[TraceStep] = field(default_factory=list)
    steps: int = 0


def build_machine(
    model: Model, props: tuple[Property, ...], universe: Universe, recorder: _Recorder
) -> type[RuleBasedStateMachine]:
    """A RuleBasedStateMachine class for ``model`` that checks ``props``.

    Swarm testing: each example first draws a set of environment and attacker actions
    to leave out, which lets short runs reach deep states that a uniform choice among
    all actions rarely does.
    """
    names = [a.name for a in model.actions]

    def init(self: Any) -> None:
        RuleBasedStateMachine.__init__(self)
        self.state = model.initial(universe)
        self.pre = None
        self.left_out = frozenset()
        self.enabled = _enabled(model, self.state)
        recorder.last_trace = []

    # Swarm testing over the environment and the attacker: each example leaves out
    # each of their actions with probability 1/2, so protocol runs get deeper
    swarmed = [a.name for a in model.actions if a.actor in ("net", "attacker")]

    @initialize(drop=st.lists(st.booleans(), min_size=len(swarmed), max_size=len(swarmed)))
    def swarm(self: Any, drop: list[bool]) -> None:
        # shrinking moves towards leaving nothing out
        self.left_out = frozenset(n for n, d in zip(swarmed, drop, strict=True) if d)

    def make_rule(act: Action) -> Callable[..., None]:
        @precondition(lambda self: act.name not in self.left_out and self.enabled.has(act.name))
        @rule(data=st.data())
        def run(self: Any, data: st.DataObject) -> None:
            options = self.enabled[act.name]
            index = data.draw(st.integers(0, len(options) - 1), label=act.name)
            args, nxt = options[index]
            self.pre, self.state = self.state, nxt
            self.enabled = _enabled(model, nxt)
            recorder.counts[act.name] += 1
            recorder.steps += 1
            recorder.last_trace.append(TraceStep(act.name, args))

        run.__name__ = act.name
        return run

    def check(self: Any) -> None:
        for prop in props:
            if not model.holds(prop, self.state, self.pre):
                raise PropertyViolation(prop.number)

    @precondition(
        lambda self: not any(self.enabled.has(n) for n in names if n not in self.left_out)
    )
    @rule()
    def idle(self: Any) -> None:
        """Nothing the swarm allows is enabled: let the run end quietly."""

    namespace: dict[str, Any] = {
        "__init__": init,
        "swarm": swarm,
        "idle": idle,
        "check_properties": invariant()(check),
    }
    for act in model.actions:
        namespace[f"rule_{act.name}"] = make_rule(act)
    return type("ExploreModel", (RuleBasedStateMachine,), namespace)


class _Enabled:
    """Enabled instances of each action in one state, computed only when asked."""

    def __init__(self, model: Model, state: State) -> None:
        self.model = model
        self.state = state
        self.lists: dict[str, list[tuple[tuple[Any, ...], State]]] = {}
        self.any: dict[str, bool] = {}

    def has(self, name: str) -> bool:
        if name not in self.any:
            if name in self.lists:
                self.any[name] = bool(self.lists[name])
            else:
                act = self.model.action(name)
                gen = enabled_instances(act, self.model.profile, self.state)
                self.any[name] = next(iter(gen), None) is not None
        return self.any[name]

    def __getitem__(self, name: str) -> list[tuple[tuple[Any, ...], State]]:
        if name not in self.lists:
            act = self.model.action(name)
            self.lists[name] = list(enabled_instances(act, self.model.profile, self.state))
        return self.lists[name]


def _enabled(model: Model, state: State) -> _Enabled:
    return _Enabled(model, state)


@dataclass(frozen=True)
class PropertyResult:
    """The outcome of exploring one property."""

    number: int
    name: str
    expected_to_hold: bool
    held: bool
    trace: Trace | None
    seconds: float

    @property
    def as_expected(self) -> bool:
        return self.held == self.expected_to_hold


@dataclass(frozen=True)
class ExploreResult:
    """Everything ``mbmssec explore`` reports."""

    profile: str
    examples: int
    steps: int
    seed: int
    universe: Universe
    results: tuple[PropertyResult, ...]
    action_counts: dict[str, int]
    not_applicable: tuple[str, ...]
    total_steps: int
    seconds: float
    budget_spent: bool = True
    """Did a search run its whole budget without a violation?  When every searched
    property was violated, the search stopped early, so an action it never reached says
    nothing about the model."""

    @property
    def never_executed(self) -> list[str]:
        return [a for a, n in self.action_counts.items() if n == 0]

    @property
    def coverage_problem(self) -> list[str]:
        """Actions never executed in a search that ran its whole budget."""
        return self.never_executed if self.budget_spent else []

    @property
    def ok(self) -> bool:
        """Every property expected to hold held."""
        return all(r.held for r in self.results if r.expected_to_hold)

    def to_json(self) -> dict[str, Any]:
        u = self.universe
        return {
            "profile": self.profile,
            "examples": self.examples,
            "steps": self.steps,
            "seed": self.seed,
            "universe": {"ue": u.ue, "svc": u.svc, "tek": u.tek, "pkt": u.pkt},
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "total_steps": self.total_steps,
            "properties": [
                {
                    "number": r.number,
                    "name": r.name,
                    "expected": "holds" if r.expected_to_hold else "violated",
                    "result": "held" if r.held else "violated",
                    "trace": r.trace.to_json() if r.trace else None,
                }
                for r in self.results
            ],
            "action_counts": self.action_counts,
            "never_executed": self.never_executed,
            "budget_spent": self.budget_spent,
            "not_applicable": list(self.not_applicable),
        }


def _search(
    model: Model,
    props: tuple[Property, ...],
    *,
    examples: int,
    steps: int,
    seed_value: int,
    universe: Universe,
    recorder: _Recorder,
    shrink: bool,
) -> Trace | None:
    """One Hypothesis run checking ``props``: the trace of the first violation (shrunk
    by Hypothesis when ``shrink``)."""
    from hypothesis.stateful import get_state_machine_test

    machine = build_machine(model, props, universe, recorder)
    conf = settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        database=None,
        print_blob=False,
        report_multiple_bugs=False,
        phases=(Phase.generate, Phase.shrink) if shrink else (Phase.generate,),
        suppress_health_check=list(HealthCheck),
    )
    test = seed(seed_value)(get_state_machine_test(machine, settings=conf))
    try:
        test()
    except PropertyViolation as exc:
        return Trace(tuple(recorder.last_trace), universe, (exc.number,))
    return None


def explore(
    model: Model,
    *,
    examples: int = 200,
    steps: int = 30,
    seed_value: int = 0,
    universe: Universe = EXPLORE_UNIVERSE,
    expect_violated: frozenset[int] | None = None,
    only: frozenset[int] | None = None,
    progress: Callable[[str], None] | None = None,
    shrink: bool = False,
) -> ExploreResult:
    """Explore the properties of the model (all, or those in ``only``) under its profile.

    Runs Hypothesis on all properties at once; when one fails, its minimised trace is
    kept and the search restarts on the properties not yet violated.
    """
    if expect_violated is None:
        expect_violated = frozenset(p.number for p in model.properties if not p.holds_in_baseline)
    rec = _Recorder(counts=Counter({a.name: 0 for a in model.actions}))
    # a liveness property has no finite counterexample: proofs/liveness.py judges it
    checked = [
        p for p in model.properties if (only is None or p.number in only) and p.kind != "liveness"
    ]
    remaining = list(checked)
    traces: dict[int, Trace] = {}
    found_at: dict[int, float] = {}
    start = time.perf_counter()
    spent = False
    while remaining:
        if progress:
            progress(
                f"searching {len(remaining)} properties "
                f"({', '.join(str(p.number) for p in remaining)}) ..."
            )
        trace = _search(
            model,
            tuple(remaining),
            examples=examples,
            steps=steps,
            seed_value=seed_value,
            universe=universe,
            recorder=rec,
            shrink=shrink,
        )
        if trace is None:
            spent = True
            break
        number = trace.violates[0]
        trace.replay(model)  # a counterexample is believed only once it replays
        if number not in trace.violations(model):
            raise RuntimeError(
                f"trace for property {number} does not violate it on "
                "replay: a bug in the exploration"
            )
        traces[number] = trace.minimise(model, number)
        found_at[number] = time.perf_counter() - start
        remaining = [p for p in remaining if p.number != number]
        if progress:
            progress(f"property {number} violated ({len(trace.steps)} steps)")
    results = tuple(
        PropertyResult(
            p.number,
            p.name,
            p.number not in expect_violated,
            p.number not in traces,
            traces.get(p.number),
            found_at.get(p.number, time.perf_counter() - start),
        )
        for p in checked
    )
    na = tuple(a.name for a in model.all_actions if a not in model.actions)
    return ExploreResult(
        model.profile.title,
        examples,
        steps,
        seed_value,
        universe,
        results,
        dict(rec.counts),
        na,
        rec.steps,
        time.perf_counter() - start,
        spent,
    )

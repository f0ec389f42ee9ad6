"""Why a trace violates its property, in one sentence, from the property's formula.

The property is evaluated on the trace's replayed states by an instrumented reading of
the modelling language (:class:`_ExplainingOps`): every read of a state symbol is
recorded, and a universal quantifier that fails returns the first failing instance
(the elements it was evaluated for, in the order of the ``for_all``) with the reads that
instance made.  Of an existential quantifier that holds, only the reads of its witness
are kept; of one that fails, the reads of every candidate.

* An invariant is evaluated on the last state, a step property on the last step.  The
  sentence names the failing instance with the trace's names (``UE0``, ``P0``) and lists
  the facts its formula reads, ``symbol(args) = value``, each with the step at which it
  last changed (read from the replayed states).  A property with a ``why`` renderer
  (:class:`~mbmssec.model.properties.Property`) words the same instance its own way.
* A lasso (liveness): the UE and service whose premise holds and whose goal never does,
  the facts of the premise where it first holds, and the facts of the goal that stay as
  they are on every state of the loop.
* A response property: the UE and service whose plan fails from the last state, and
  whether a step of the plan is not enabled or the goal is false at its end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mbmssec.model.concrete import ConcreteOps, State
from mbmssec.model.dsl import Sort
from mbmssec.model.itf import element_name
from mbmssec.model.machine import Model
from mbmssec.model.properties import Property
from mbmssec.model.trace import Trace, TraceStep

Binding = tuple[tuple[Sort, int], ...]


@dataclass(frozen=True)
class Fact:
    """A value the formula read: ``name(args)`` in the state of index ``index``."""

    index: int
    name: str
    args: tuple[int, ...]
    value: Any


class _Log:
    """A stack of frames of facts: one per quantifier instance being evaluated."""

    def __init__(self) -> None:
        self.frames: list[list[Fact]] = [[]]

    def push(self) -> None:
        self.frames.append([])

    def pop(self) -> list[Fact]:
        return self.frames.pop()

    def extend(self, facts: Sequence[Fact]) -> None:
        self.frames[-1].extend(facts)


class _Recorder:
    """Reads of one state, recorded in the log."""

    def __init__(self, state: State, index: int, log: _Log) -> None:
        self.state = state
        self.index = index
        self.log = log

    def get(self, name: str, *args: Any) -> Any:
        value = self.state.get(name, *args)
        self.log.extend([Fact(self.index, name, tuple(args), value)])
        return value


class _Failed:
    """A false formula that is a failing universal quantifier: the failing instance and
    the facts it read."""

    __slots__ = ("binding", "facts")

    def __init__(self, binding: Binding, facts: tuple[Fact, ...]) -> None:
        self.binding = binding
        self.facts = facts

    def __bool__(self) -> bool:
        return False


class _ExplainingOps(ConcreteOps):
    """The concrete reading, keeping the failing instance of each universal quantifier."""

    def __init__(self, state: State, log: _Log) -> None:
        super().__init__(state.universe)
        self.log = log

    def and_(self, *xs: Any) -> Any:
        for x in xs:
            if not x:
                return x
        return True

    def implies(self, a: Any, b: Any) -> Any:
        return True if not a or b else b

    def forall(self, sort: Sort, body: Callable[[Any], Any]) -> Any:
        kept: list[Fact] = []
        for x in self.universe.elements(sort):
            self.log.push()
            result = body(x)
            facts = self.log.pop()
            if not result:
                inner = result.binding if isinstance(result, _Failed) else ()
                self.log.extend(facts)
                return _Failed(((sort, x), *inner), tuple(facts))
            kept.extend(facts)
        self.log.extend(kept)
        return True

    def exists(self, sort: Sort, body: Callable[[Any], Any]) -> Any:
        tried: list[Fact] = []
        for x in self.universe.elements(sort):
            self.log.push()
            result = body(x)
            facts = self.log.pop()
            if result:
                self.log.extend(facts)
                return True
            tried.extend(facts)
        self.log.extend(tried)
        return False


def _evaluate(
    body: Callable[..., Any], states: Sequence[tuple[State, int]], *args: Any
) -> tuple[bool, Binding, tuple[Fact, ...]]:
    """Evaluate ``body(ops, *readers, *args)``: whether it holds, the failing instance of
    its first failing quantifier, and the facts that matter (see the module docstring)."""
    log = _Log()
    ops = _ExplainingOps(states[0][0], log)
    readers = [_Recorder(state, index, log) for state, index in states]
    result = body(ops, *readers, *args)
    top = log.pop()
    if isinstance(result, _Failed):
        return False, result.binding, result.facts
    return bool(result), (), tuple(top)


def _unique(facts: Sequence[Fact]) -> list[Fact]:
    seen: set[tuple[int, str, tuple[int, ...]]] = set()
    out: list[Fact] = []
    for f in facts:
        key = (f.index, f.name, f.args)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


class _Why:
    """What a property's ``why`` renderer reads (:class:`~mbmssec.model.properties.Why`)."""

    def __init__(self, model: Model, states: Sequence[State]) -> None:
        self.model = model
        self.states = states

    def get(self, name: str, *args: Any) -> Any:
        return self.states[-1].get(name, *args)

    def name(self, sort: Sort, element: Any) -> str:
        return element_name(sort, int(element))

    def since(self, name: str, *args: Any) -> int:
        return since(self.states, len(self.states) - 1, name, tuple(args))


def since(states: Sequence[State], index: int, name: str, args: tuple[int, ...]) -> int:
    """The step after which ``name(args)`` has had the value it has in state ``index`` (0:
    from the initial state on).  A symbol the initial state leaves unconstrained counts as
    set by the first step that writes it, even to the value the executable model starts
    it with."""

    def seen(state: State) -> Any:
        value = state.get(name, *args)
        if state.vocab[name].initial is None:
            return value, args in state.tables[name]
        return value

    now = seen(states[index])
    j = index
    while j > 0 and seen(states[j - 1]) == now:
        j -= 1
    return j


class _Renderer:
    def __init__(self, model: Model, states: Sequence[State]) -> None:
        self.model = model
        self.states = states

    def value(self, name: str, value: Any) -> str:
        sort = self.model.vocab[name].result
        if sort is Sort.BOOL:
            return "true" if value else "false"
        if sort is Sort.INT:
            return str(value)
        return element_name(sort, int(value))

    def term(self, name: str, args: tuple[int, ...]) -> str:
        sorts = self.model.vocab[name].args
        if not sorts:
            return name
        names = ", ".join(element_name(s, a) for s, a in zip(sorts, args, strict=True))
        return f"{name}({names})"

    def when(self, index: int, name: str, args: tuple[int, ...]) -> str:
        k = since(self.states, index, name, args)
        return f"since step {k}" if k else "from the start"

    def fact(self, f: Fact, with_step: bool = True) -> str:
        text = f"{self.term(f.name, f.args)} = {self.value(f.name, f.value)}"
        return f"{text} ({self.when(f.index, f.name, f.args)})" if with_step else text

    def facts(self, facts: Sequence[Fact]) -> str:
        return ", ".join(self.fact(f) for f in _unique(facts))

    def step_facts(self, facts: Sequence[Fact], last: int) -> str:
        """Facts of a step property: what the step changes, then what was read before it
        and what after it (a value read on both sides and changed counts as a change)."""
        changed: list[str] = []
        before: list[str] = []
        after: list[str] = []
        done: set[tuple[str, tuple[int, ...]]] = set()
        for f in _unique(facts):
            key = (f.name, f.args)
            if key in done:
                continue
            done.add(key)
            old = self.states[last - 1].get(f.name, *f.args)
            new = self.states[last].get(f.name, *f.args)
            sides = {g.index for g in facts if (g.name, g.args) == key}
            if sides == {last - 1, last} and old != new:
                changed.append(
                    f"{self.term(f.name, f.args)} from {self.value(f.name, old)} to "
                    f"{self.value(f.name, new)}"
                )
            elif f.index == last - 1:
                before.append(self.fact(f))
            else:
                after.append(self.fact(f))
        parts = [f"it changes {', '.join(changed)}"] if changed else []
        if before:
            parts.append(f"before it {', '.join(before)}")
        if after:
            parts.append(f"after it {', '.join(after)}")
        return "; ".join(parts)

    def instance(self, binding: Binding) -> str:
        return " and ".join(element_name(s, x) for s, x in binding)

    def step(self, st: TraceStep) -> str:
        return Trace.describe(self.model, st)


def explain(model: Model, trace: Trace, number: int | None = None) -> str:
    """One sentence saying why ``trace`` violates property ``number`` (by default the
    first it is recorded to violate) on ``model``; replays the trace."""
    if number is None:
        if not trace.violates:
            raise ValueError("the trace records no violated property")
        number = trace.violates[0]
    prop = model.prop(number)
    states = trace.replay(model)
    if prop.kind == "liveness":
        text = _explain_lasso(model, trace, prop, states)
    elif prop.kind == "response":
        text = _explain_response(model, prop, states)
    else:
        text = _explain_safety(model, trace, prop, states)
    return text[:1].upper() + text[1:] + "."


def _explain_safety(model: Model, trace: Trace, prop: Property, states: list[State]) -> str:
    assert prop.body is not None
    last = len(states) - 1
    r = _Renderer(model, states)
    if prop.kind == "step":
        if last == 0:
            return "the trace has no step, so it cannot break a step property"
        held, binding, facts = _evaluate(prop.body, [(states[-2], last - 1), (states[-1], last)])
    else:
        held, binding, facts = _evaluate(prop.body, [(states[-1], last)])
    if held:
        return f"property {prop.number} holds after step {last}: the trace does not violate it"
    instance = tuple(x for _s, x in binding)
    if prop.why is not None and tuple(sort for sort, _x in binding) == prop.why_over:
        return str(prop.why(_Why(model, states), *instance))
    who = f" for {r.instance(binding)}" if binding else ""
    if prop.kind == "step":
        return (
            f"step {last}, {r.step(trace.steps[-1])}, breaks the property{who}: "
            f"{r.step_facts(facts, last)}"
        )
    where = f"after step {last}" if last else "in the initial state"
    return f"{where} the property fails{who}: {r.facts(facts)}"


def _pairs(state: State) -> list[tuple[int, int]]:
    u = state.universe
    return [(a, b) for a in u.elements(Sort.UE) for b in u.elements(Sort.SVC)]


def _explain_lasso(model: Model, trace: Trace, prop: Property, states: list[State]) -> str:
    assert prop.premise is not None and prop.goal is not None
    premise, goal = prop.premise, prop.goal
    r = _Renderer(model, states)
    n = len(states) - 1
    loop = trace.loop if trace.loop is not None else n
    for u, s in _pairs(states[-1]):
        goal_false = [not _evaluate(goal, [(states[i], i)], u, s)[0] for i in range(len(states))]
        start = None
        for i in range(len(states)):
            if all(goal_false[i:]) and _evaluate(premise, [(states[i], i)], u, s)[0]:
                start = i
                break
        if start is None:
            continue
        _held, _b, pfacts = _evaluate(premise, [(states[start], start)], u, s)
        steady = _steady_goal_facts(goal, states, loop, u, s)
        who = f"{element_name(Sort.UE, u)} and {element_name(Sort.SVC, s)}"
        where = f"after step {start}" if start else "in the initial state"
        loop_steps = ", ".join(r.step(st) for st in trace.steps[loop:])
        stays = ", ".join(r.fact(f, with_step=False) for f in steady) or "the goal's facts"
        return (
            f"the goal is never reached for {who}: the premise holds {where} "
            f"({', '.join(r.fact(f) for f in _unique(pfacts))}), and on the loop of steps "
            f"{loop + 1}-{n} ({loop_steps}), repeated forever, {stays} stay as they are"
        )
    return "no UE and service meet the premise with the goal false for the rest of the lasso"


def _steady_goal_facts(
    goal: Callable[..., Any], states: Sequence[State], loop: int, u: int, s: int
) -> list[Fact]:
    """The facts the goal reads in every state of the loop, with the same value in each."""
    per_state = [
        {(f.name, f.args): f for f in _unique(_evaluate(goal, [(states[i], i)], u, s)[2])}
        for i in range(loop, len(states))
    ]
    return [
        f
        for key, f in per_state[0].items()
        if all(key in other and other[key].value == f.value for other in per_state[1:])
    ]


def _explain_response(model: Model, prop: Property, states: list[State]) -> str:
    assert prop.premise is not None and prop.goal is not None
    last = len(states) - 1
    r = _Renderer(model, states)
    failures = model.response_failures(prop, states[-1])
    if not failures:
        return f"property {prop.number} holds after step {last}: the trace does not violate it"
    u, s = failures[0]
    _held, _b, pfacts = _evaluate(prop.premise, [(states[-1], last)], u, s)
    who = f"{element_name(Sort.UE, u)} and {element_name(Sort.SVC, s)}"
    plan = [
        TraceStep(name, model.plan_args(prop, k, u, s)) for k, (name, _) in enumerate(prop.plan)
    ]
    head = (
        f"after step {last} the premise holds for {who} ({r.facts(pfacts)}), but the plan "
        f"{', '.join(r.step(st) for st in plan)}"
    )
    cur = states[-1]
    for st in plan:
        nxt = model.step(cur, st.action, st.args)
        if nxt is None:
            return f"{head} fails: {r.step(st)} is not enabled"
        cur = nxt
    _held, _b, gfacts = _evaluate(prop.goal, [(cur, last)], u, s)
    goal = ", ".join(r.fact(f, with_step=False) for f in _unique(gfacts))
    return f"{head} ends with the goal false ({goal})"

"""Liveness: "eventually, on every fair run", proved for every population size or
refuted by a fair lasso.

A liveness property (kind ``liveness``, property 9) says: whenever ``premise(u, s)``
holds, ``goal(u, s)`` holds at some later state of every run that satisfies the
fairness assumptions :data:`~mbmssec.model.properties.FAIRNESS`.  No finite run can
refute it, so it is judged here in two ways.

**Proof** (every population size).  The property carries a certificate: a state
predicate ``pending`` that the UE is in until the goal, a weakly fair *enabler* (the
UE's authentication) that makes ``ready`` true, and a strongly fair *helpful* action
(its registration) that reaches the goal.  With ``Inv`` the conjunction of the lemmas
the inductive fixpoint kept (:mod:`mbmssec.proofs.induction`), Z3 proves, over
uninterpreted sorts, the obligations

* O0 ``Inv & premise -> pending | goal``;
* O1 for every action A: ``Inv & pending & A -> pending' | goal'``;
* O2 ``Inv & pending & helpful -> goal'`` (any parameters, e.g. any fetch time);
* O3 ``Inv & pending & !ready -> enabler enabled``;
* O4 ``Inv & pending & !ready & enabler -> ready' | goal'``;
* O5 ``Inv & pending & ready -> helpful enabled``.

From them: suppose ``pending`` holds and the goal never does afterwards.  By O1
``pending`` holds forever.  If ``ready`` were false from some point on, the enabler
would be enabled from then on (O3), so weak fairness takes it and ``ready`` becomes true
(O4), a contradiction; so ``ready`` holds again and again, the helpful action is enabled
again and again (O5), strong fairness takes it, and the goal holds (O2): a
contradiction.  The premise leads to ``pending`` or the goal (O0), so the premise
leads to the goal.

**Refutation** (bounded).  When an obligation fails, a bounded search looks for a
*fair lasso*: a prefix reaching the premise, then a loop that can be repeated forever,
with the goal false from the premise on, in which every fair action instance (see
:data:`~mbmssec.model.properties.FAIRNESS`; a Register instance is a UE and service
whatever the fetch time) is either taken or disabled in every state of the loop (this
meets weak and strong fairness alike).  A loop may end in a state that equals its
start except for integer entries (clock, fetch times, replay counters, stamps), which
may have moved by a fixed amount ``d``; the search accepts it only after Z3 has proved
that, from the start state shifted by ``k * d`` for *every* ``k >= 0``, the loop's
steps are enabled, end in the start shifted by ``(k + 1) * d``, keep the goal false and
keep every fair instance they do not take disabled: so the loop really repeats forever.
The lasso is then replayed on the executable model (prefix and two turns of the loop).
No lasso within the bound is a bounded result and says so.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import z3

from mbmssec.model.concrete import State, Universe
from mbmssec.model.dsl import ModelError, Sort
from mbmssec.model.machine import Model
from mbmssec.model.properties import FAIRNESS, Property
from mbmssec.model.symbolic import (
    Sorts,
    SymbolicState,
    Z3Ops,
    concrete_value,
    transition,
)
from mbmssec.model.trace import Trace
from mbmssec.proofs.induction import ProofError, Query, as_z3

#: The universe fair lassos are searched in: one UE suffices for the runs that never
#: recover (a larger one only adds fairness obligations for the other UEs), with room
#: for a next TEK.
LASSO_UNIVERSE = Universe(ue=1, svc=1, tek=2, pkt=1)

#: Longest lasso (prefix plus loop) searched by default.
LASSO_DEPTH = 11

#: Largest integer parameter (fetch-time offset) the lasso search tries, and the turn at
#: which a candidate loop must still be fair and goal-free.  Every integer the search
#: handles is below ``LASSO_DEPTH * (MAX_PARAM + 1)``, so a comparison that changes side
#: as the loop turns does so before ``FAR_TURN``.
MAX_PARAM = 1_000
FAR_TURN = 1_000_000

#: How many candidate loops that fail the every-``k`` check are set aside per depth
#: before the search moves on to the next depth; a depth where that happened is
#: reported as searched incompletely (the loops closing up to a shift of the integers are
#: infinitely many, e.g. one per fetch time the BM-SC may give).
MAX_CANDIDATES = 20


Roles = tuple[tuple[str, str | int], ...]

_VALIDATIONS = itertools.count()  # fresh Z3 sort names for each every-k check


def _args(
    model: Model, name: str, roles: Roles, u: Any, s: Any, free: Callable[[str], Any] | None
) -> tuple[Any, tuple[Any, ...]]:
    """Arguments of ``name`` for a certificate's roles: "u"/"s", a constant, or (with
    ``free``) a fresh constant for every integer parameter."""
    act = model.action(name)
    values = dict(roles)
    out: list[Any] = []
    for p in act.params:
        role = values[p.name]
        if isinstance(role, str):
            out.append({"u": u, "s": s}[role])
        elif p.sort is Sort.INT:
            out.append(free(p.name) if free is not None else z3.IntVal(role))
        else:
            out.append(role)
    return act, tuple(out)


# -- the proof ----------------------------------------------------------------------------


@dataclass
class Obligation:
    """One proof obligation: its name and the formula to prove valid under ``Inv``."""

    name: str
    formula: z3.BoolRef


def obligations(model: Model, prop: Property, sorts: Sorts, pre: SymbolicState) -> list[Obligation]:
    """The obligations O0-O5 of ``prop``'s certificate over the state ``pre``."""
    assert prop.kind == "liveness"
    assert prop.premise and prop.goal and prop.pending and prop.ready
    assert prop.enabler and prop.helpful
    ops = Z3Ops(sorts)
    u = z3.Const(f"live{prop.number}.u", sorts.of(Sort.UE))
    s = z3.Const(f"live{prop.number}.s", sorts.of(Sort.SVC))

    def at(fn: Callable[..., Any], st: Any) -> z3.BoolRef:
        return as_z3(fn(ops, st, u, s))

    pending, goal, ready = (at(prop.pending, pre), at(prop.goal, pre), at(prop.ready, pre))
    out = [
        Obligation(
            "O0 premise leads to pending",
            z3.Implies(at(prop.premise, pre), z3.Or(pending, goal)),
        )
    ]
    for act in model.actions:
        tr = transition(act, model.profile, pre, sorts, tag=f"live{prop.number}.{act.name}")
        out.append(
            Obligation(
                f"O1 pending kept by {act.name}",
                z3.Implies(
                    z3.And(pending, tr.guard),
                    z3.Or(at(prop.pending, tr.post), at(prop.goal, tr.post)),
                ),
            )
        )
    hname, hroles = prop.helpful
    fresh = {
        n: z3.Int(f"live{prop.number}.{n}") for n, r in hroles if isinstance(r, int)
    }  # any value of the helpful action's integer parameters
    try:
        hact, hargs = _args(model, hname, hroles, u, s, fresh.__getitem__)
        eact, eargs = _args(model, prop.enabler[0], prop.enabler[1], u, s, None)
        _, hargs1 = _args(model, hname, hroles, u, s, None)
    except ModelError as exc:
        return [*out, Obligation(f"O2-O5 certificate actions exist ({exc})", z3.BoolVal(False))]
    htr = transition(hact, model.profile, pre, sorts, params=hargs)
    out.append(
        Obligation(
            f"O2 {hname} reaches the goal",
            z3.Implies(z3.And(pending, htr.guard), at(prop.goal, htr.post)),
        )
    )
    etr = transition(eact, model.profile, pre, sorts, params=eargs)
    out.append(
        Obligation(
            f"O3 {eact.name} enabled while pending and not ready",
            z3.Implies(z3.And(pending, z3.Not(ready)), etr.guard),
        )
    )
    out.append(
        Obligation(
            f"O4 {eact.name} makes the UE ready",
            z3.Implies(
                z3.And(pending, z3.Not(ready), etr.guard),
                z3.Or(at(prop.ready, etr.post), at(prop.goal, etr.post)),
            ),
        )
    )
    h1 = transition(hact, model.profile, pre, sorts, params=hargs1)
    out.append(
        Obligation(
            f"O5 {hname} enabled while pending and ready",
            z3.Implies(z3.And(pending, ready), h1.guard),
        )
    )
    return out


def prove(
    model: Model,
    prop: Property,
    sorts: Sorts,
    pre: SymbolicState,
    solver: z3.Solver,
    assumptions: list[z3.BoolRef],
    check: Callable[..., tuple[str, tuple[str, ...], float, z3.ModelRef | None, str]],
    lit_names: dict[str, str],
) -> tuple[list[Query], str | None]:
    """Check every obligation in ``solver`` (which holds ``Inv`` behind the assumption
    literals).  Returns the queries and the name of the first failed obligation."""
    queries: list[Query] = []
    first_failed: str | None = None
    if None in (prop.pending, prop.ready, prop.enabler, prop.helpful):
        # a property a proposal adds without a certificate: only the lasso search judges it
        return queries, "no proof certificate (pending, ready, enabler, helpful)"
    for ob in obligations(model, prop, sorts, pre):
        verdict, core, dt, _m, reason = check(solver, ob.formula, assumptions, lit_names)
        queries.append(Query(ob.name, f"P{prop.number}_{prop.name}", verdict, dt, core, reason))
        if verdict != "proved" and first_failed is None:
            first_failed = ob.name + (f" ({verdict}: {reason})" if reason else "")
    return queries, first_failed


# -- fair lassos ----------------------------------------------------------------------------


@dataclass
class Lasso:
    """A fair run on which the goal never comes: ``trace.steps[loop:]`` repeats forever
    (each turn shifts the integer entries listed in ``shift`` by that amount)."""

    trace: Trace
    loop: int
    premise_at: int
    shift: dict[str, int]
    depth: int
    seconds: float


@dataclass
class LassoSearch:
    """What the bounded lasso search established."""

    lasso: Lasso | None
    depth: int
    universe: Universe
    seconds: float
    rejected: int = 0  # candidate loops that failed the every-k check
    #: depths at which MAX_CANDIDATES candidates were set aside before the query became
    #: unsatisfiable: there, "no lasso" is not established
    incomplete: tuple[int, ...] = ()


def fair_instances(model: Model, universe: Universe) -> list[tuple[str, tuple[Any, ...], str]]:
    """Every fair action instance of the universe: (action, key arguments, strength).
    Integer parameters are not part of the key (any fetch time counts)."""
    out: list[tuple[str, tuple[Any, ...], str]] = []
    for name, strength in FAIRNESS:
        try:
            act = model.action(name)
        except ModelError:
            continue
        keys = [p for p in act.params if p.sort is not Sort.INT]
        tuples: list[tuple[int, ...]] = [()]
        for p in keys:
            tuples = [(*t, e) for t in tuples for e in range(universe.size(p.sort))]
        out.extend((name, t, strength) for t in tuples)
    return out


def _full_args(model: Model, name: str, key: tuple[Any, ...], sorts: Sorts) -> tuple[Any, ...]:
    """Z3 arguments of a fair instance, integer parameters at their smallest value."""
    act = model.action(name)
    it = iter(key)
    out: list[Any] = []
    for p in act.params:
        if p.sort is Sort.INT:
            out.append(z3.IntVal(p.lo))
        else:
            out.append(concrete_value(sorts, p.sort, next(it)))
    return tuple(out)


class _Shifted:
    """A state read ``turns`` loop turns later: every integer entry moved by ``turns``
    times its shift per turn (``delta(name, args)``), everything else as in ``base``."""

    def __init__(self, base: Any, delta: Callable[..., Any], turns: int) -> None:
        self.base = base
        self.vocab = base.vocab
        self.delta = delta
        self.turns = turns

    def get(self, name: str, *args: Any) -> Any:
        v = self.base.get(name, *args)
        if self.vocab[name].result is Sort.INT:
            return v + self.turns * self.delta(name, args)
        return v


def find_lasso(
    model: Model,
    prop: Property,
    *,
    depth: int = LASSO_DEPTH,
    universe: Universe = LASSO_UNIVERSE,
    progress: Callable[[str], None] | None = None,
    start: tuple[str, ...] = (),
) -> LassoSearch:
    """A shortest fair lasso refuting ``prop`` over ``universe`` (prefix plus loop at
    most ``depth`` steps, integer parameters such as fetch-time offsets at most
    :data:`MAX_PARAM`), or none within the bound.  With ``start``, only lassos whose
    first steps are those actions (e.g. the BM-SC's own set-up of a service).

    Each candidate must also be a fair, goal-free run of its loop :data:`FAR_TURN`
    turns later (a linear condition): a loop whose integers drift apart, for instance
    time passing a fetch time that stays put, fails it, since every comparison between
    the search's values changes side, if ever, long before that turn.  Candidates are
    then checked for every number of turns (:func:`_validate`)."""
    from mbmssec.proofs.bmc import Unrolling, finite_transition

    say = progress or (lambda _m: None)
    assert prop.premise and prop.goal
    t0 = time.perf_counter()
    unr = Unrolling(model, universe, por=False, solver_params={})
    sorts, ops = unr.sorts, unr.ops
    u = z3.Const(f"lasso.u{unr.tag}", sorts.of(Sort.UE))
    s = z3.Const(f"lasso.s{unr.tag}", sorts.of(Sort.SVC))
    instances = fair_instances(model, universe)
    names = [a.name for a in model.actions]
    rejected = 0

    def guards_at(state: Any) -> list[z3.BoolRef]:
        out = []
        for name, key, _strength in instances:
            act = model.action(name)
            stp = finite_transition(
                act, model.profile, state, sorts, _full_args(model, name, key, sorts)
            )
            out.append(stp.guard)
        return out

    def taken(j: int, i: int) -> z3.BoolRef:
        """Step ``j + 1`` (from state ``j``) is an instance of fair instance ``i``."""
        name, key, _ = instances[i]
        idx = names.index(name)
        stp = unr.steps[j][idx]
        keyed = [
            (p, c)
            for p, c in zip(stp.action.params, stp.params, strict=True)
            if p.sort is not Sort.INT
        ]
        return z3.And(
            unr.selectors[j] == idx,
            *[c == concrete_value(sorts, p.sort, v) for (p, c), v in zip(keyed, key, strict=True)],
        )

    enabled = [guards_at(unr.states[0])]
    incomplete: list[int] = []
    for n in range(1, depth + 1):
        unr.extend()
        if n <= len(start):
            unr.solver.add(unr.selectors[n - 1] == names.index(start[n - 1]))
        for stp in unr.steps[-1]:
            for p, c in zip(stp.action.params, stp.params, strict=True):
                if p.sort is Sort.INT:
                    unr.solver.add(c <= MAX_PARAM)
        enabled.append(guards_at(unr.states[n]))
        say(f"lasso search depth {n}/{depth}")
        loop = z3.Int(f"lasso.loop@{n}{unr.tag}")
        since = z3.Int(f"lasso.premise@{n}{unr.tag}")
        cond = [z3.And(since >= 0, since <= loop, loop < n)]
        for j in range(n + 1):
            st = unr.states[j]
            cond.append(z3.Implies(since == j, as_z3(prop.premise(ops, st, u, s))))
            cond.append(z3.Implies(since <= j, z3.Not(as_z3(prop.goal(ops, st, u, s)))))
        end = unr.states[n]
        for j in range(n):
            st = unr.states[j]
            same = []
            for sym in model.vocab.symbols:
                if sym.result is Sort.INT:
                    continue
                for args in unr._tuples(sym.args):
                    same.append(st.get(sym.name, *args) == end.get(sym.name, *args))
            cond.append(z3.Implies(loop == j, z3.And(*same)))

        shifts: dict[tuple[Any, ...], Any] = {}

        def delta(
            name: str,
            args: tuple[Any, ...],
            n: int = n,
            loop: Any = loop,
            shifts: dict[tuple[Any, ...], Any] = shifts,
        ) -> Any:
            # one term per entry and depth, however often the far state reads it
            # (building it again was most of the search's time); the formulas are the
            # same, though Z3, given its terms in another order, may pick another lasso
            # of the same length
            key = (name, *(a.get_id() if isinstance(a, z3.AstRef) else a for a in args))
            value: Any = shifts.get(key)
            if value is None:
                value = z3.IntVal(0)
                for j in range(n):
                    diff = unr.states[n].get(name, *args) - unr.states[j].get(name, *args)
                    value = z3.If(loop == j, diff, value)
                shifts[key] = value
            return value

        far_enabled = []
        for j in range(n):
            far = _Shifted(unr.states[j], delta, FAR_TURN)
            far_enabled.append(guards_at(far))
            moves = []
            for i, stp in enumerate(unr.steps[j]):
                # _Shifted reads like a state (get, vocab) but is no SymbolicState
                again = finite_transition(
                    stp.action,
                    model.profile,
                    far,  # type: ignore[arg-type]
                    sorts,
                    stp.params,
                )
                moves.append(z3.Implies(unr.selectors[j] == i, again.guard))
            cond.append(
                z3.Implies(
                    loop <= j,
                    z3.And(*moves, z3.Not(as_z3(prop.goal(ops, far, u, s)))),
                )
            )
        for i in range(len(instances)):
            in_loop_taken = z3.Or(*[z3.And(loop <= j, taken(j, i)) for j in range(n)])
            never_enabled = z3.And(
                *[
                    z3.Implies(loop <= j, z3.And(z3.Not(enabled[j][i]), z3.Not(far_enabled[j][i])))
                    for j in range(n)
                ]
            )
            cond.append(z3.Or(in_loop_taken, never_enabled))
        query = z3.And(*cond)
        blocked: list[z3.BoolRef] = []
        for attempt in range(MAX_CANDIDATES + 1):
            m = unr.ask(z3.And(query, *blocked))
            if m is None:
                break
            if attempt == MAX_CANDIDATES:
                incomplete.append(n)
                break
            tr = unr.trace(m, n, violates=(prop.number,))
            lp = m.eval(loop, model_completion=True).as_long()
            pa = m.eval(since, model_completion=True).as_long()
            ue = unr._index[Sort.UE][str(m.eval(u, model_completion=True))]
            sv = unr._index[Sort.SVC][str(m.eval(s, model_completion=True))]
            lasso = _validate(model, prop, tr, lp, pa, ue, sv, instances, n, t0)
            if lasso is not None:
                return LassoSearch(
                    lasso, n, universe, time.perf_counter() - t0, rejected, tuple(incomplete)
                )
            rejected += 1
            # set aside every candidate with this loop from this start state: the
            # every-k check reads nothing else, so they all fail it (sound pruning)
            blocked.append(z3.Not(z3.And(loop == lp, _same_loop(unr, m, lp, n))))
    return LassoSearch(None, depth, universe, time.perf_counter() - t0, rejected, tuple(incomplete))


def _same_loop(unr: Any, m: z3.ModelRef, lp: int, n: int) -> z3.BoolRef:
    """The candidate's loop: its start index, its start state and its steps."""
    parts: list[z3.BoolRef] = []
    st = unr.states[lp]
    for sym in unr.model.vocab.symbols:
        for args in unr._tuples(sym.args):
            term = st.get(sym.name, *args)
            parts.append(term == m.eval(term, model_completion=True))
    for j in range(lp, n):
        sel = m.eval(unr.selectors[j], model_completion=True)
        parts.append(unr.selectors[j] == sel)
        for c in unr.steps[j][sel.as_long()].params:
            parts.append(c == m.eval(c, model_completion=True))
    return z3.And(*parts)


def _int_entries(model: Model, universe: Universe) -> Iterable[tuple[str, tuple[int, ...]]]:
    for sym in model.vocab.symbols:
        if sym.result is Sort.INT:
            for args in universe.tuples(sym.args):
                yield sym.name, args


def _validate(
    model: Model,
    prop: Property,
    trace: Trace,
    loop: int,
    premise_at: int,
    u: int,
    s: int,
    instances: list[tuple[str, tuple[Any, ...], str]],
    depth: int,
    t0: float,
) -> Lasso | None:
    """Prove that the candidate's loop repeats forever (see the module docstring), and
    replay prefix and two turns on the executable model; ``None`` if the loop does not
    repeat."""
    assert prop.premise is not None and prop.goal is not None
    universe = trace.universe
    states = trace.replay(model)
    first, last = states[loop], states[len(trace.steps)]
    shift = {}
    for name, args in _int_entries(model, universe):
        d = int(last.get(name, *args)) - int(first.get(name, *args))
        if d:
            shift[f"{name}{list(args)}" if args else name] = d
    sorts = Sorts.finite(universe, tag=f"_val{next(_VALIDATIONS)}")
    k = z3.Int("lasso.k")
    x = SymbolicState(model.vocab, sorts, "lasso.x")
    ops = Z3Ops(sorts)
    from mbmssec.proofs.bmc import FiniteOps, finite_transition

    fops = FiniteOps(sorts)
    pin: list[z3.BoolRef] = [k >= 0]

    def value(st: State, name: str, args: tuple[int, ...], turns: Any) -> Any:
        sym = model.vocab[name]
        v = st.get(name, *args)
        if sym.result is Sort.INT:
            d = int(last.get(name, *args)) - int(first.get(name, *args))
            return z3.IntVal(int(v)) + turns * d
        return concrete_value(sorts, sym.result, v)

    def zargs(name: str, args: tuple[int, ...]) -> list[Any]:
        sym = model.vocab[name]
        return [concrete_value(sorts, a, v) for a, v in zip(sym.args, args, strict=True)]

    for sym in model.vocab.symbols:
        for args in universe.tuples(sym.args):
            pin.append(x.get(sym.name, *zargs(sym.name, args)) == value(first, sym.name, args, k))
    zu = concrete_value(sorts, Sort.UE, u)
    zs = concrete_value(sorts, Sort.SVC, s)
    taken = set()
    for st in trace.steps[loop:]:
        act = model.action(st.action)
        taken.add(
            (
                st.action,
                tuple(
                    a for p, a in zip(act.params, st.args, strict=True) if p.sort is not Sort.INT
                ),
            )
        )
    must: list[z3.BoolRef] = []
    cur: Any = x
    loop_states = [cur]
    for st in trace.steps[loop:]:
        act = model.action(st.action)
        params = tuple(
            concrete_value(sorts, p.sort, a) for p, a in zip(act.params, st.args, strict=True)
        )
        stp = finite_transition(act, model.profile, cur, sorts, params)
        must.append(stp.guard)
        cur = stp.post
        loop_states.append(cur)
    for sym in model.vocab.symbols:
        for args in universe.tuples(sym.args):
            must.append(
                cur.get(sym.name, *zargs(sym.name, args)) == value(first, sym.name, args, k + 1)
            )
    for st_view in loop_states:
        must.append(z3.Not(as_z3(prop.goal(fops, st_view, zu, zs))))
        for name, key, _strength in instances:
            if (name, key) in taken:
                continue
            act = model.action(name)
            stp = finite_transition(
                act, model.profile, st_view, sorts, _full_args(model, name, key, sorts)
            )
            must.append(z3.Not(stp.guard))
    del ops
    solver = z3.Solver()
    solver.add(*pin)
    solver.add(z3.Not(z3.And(*must)))
    res = solver.check()
    if res == z3.unknown:
        raise ProofError(f"lasso check gave up: {solver.reason_unknown()}")
    if res == z3.sat:
        return None
    # the executable model agrees: prefix, premise, two turns, goal false throughout
    steps = list(trace.steps) + list(trace.steps[loop:])
    try:
        seen = Trace(tuple(steps), universe).replay(model)
    except ModelError as exc:
        raise ProofError(f"a proved lasso does not replay on the executable model: {exc}") from None
    cops_states = seen[premise_at:]
    from mbmssec.model.concrete import ConcreteOps

    cops = ConcreteOps(universe)
    if not prop.premise(cops, seen[premise_at], u, s) or any(
        prop.goal(cops, st, u, s) for st in cops_states
    ):
        raise ProofError("a proved lasso does not refute the property on the executable model")
    lasso_trace = Trace(trace.steps, universe, (prop.number,), loop=loop)
    return Lasso(lasso_trace, loop, premise_at, shift, depth, time.perf_counter() - t0)

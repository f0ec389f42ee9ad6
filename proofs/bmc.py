"""Bounded model checking: shortest counterexamples and reachability witnesses.

The model is unrolled over a finite universe (Z3 enumeration sorts with the universe's
elements), one depth at a time, in **one** incremental solver: the transition
constraints of depth ``k`` stay asserted while depth ``k + 1`` is added, and each
question ("is property P violated in the state after exactly k steps?", "can action A
be the k-th step?") is asked between ``push`` and ``pop``.  Depths are tried in
increasing order, so the first trace found is a shortest one (over that universe).

The reading is the model's own: every action body runs on Z3 terms through
:class:`mbmssec.model.symbolic.SymbolicStep`, with the quantifiers of the modelling
language expanded over the finite universe (so the queries are quantifier-free).
Every trace found is turned into a :class:`~mbmssec.model.trace.Trace` and replayed on
the executable model before anyone sees it; a trace that does not replay, or that
replays without violating its property, raises :class:`ToolBug`.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import z3

from mbmssec.model.concrete import Universe
from mbmssec.model.dsl import Action, ModelError, Sort
from mbmssec.model.machine import Model
from mbmssec.model.properties import Property
from mbmssec.model.symbolic import Sorts, SymbolicState, SymbolicStep, View, Z3Ops
from mbmssec.model.trace import Trace, TraceStep
from mbmssec.proofs.induction import ProofError, as_z3

#: The universe counterexamples are searched in: enough for two UEs (one colluding),
#: three TEKs of one service and two packets.
BMC_UNIVERSE = Universe(ue=2, svc=1, tek=3, pkt=2)

#: Per-query resource limit of the bounded search (Z3 ``rlimit`` steps, so that whether a
#: search completes does not depend on the machine's load).  The largest query of the
#: shipped profiles takes about 1,000,000 steps; running out raises ProofError.
DEFAULT_BMC_RLIMIT = 300_000_000

#: Z3 settings of the bounded search's solver: the older arithmetic solver and no
#: relevancy filtering answer the unrollings' queries (finite sorts, Booleans, small
#: integers) in about two thirds of the time of the default settings (measured on the
#: shipped profiles' searches, e.g. a common KEK's properties 5-7 over two UEs: 12.7 s
#: before, 8.0 s after).  They change how soon an answer comes, not the answer: the
#: solver stays complete on these quantifier-free queries, so the depth of a shortest
#: counterexample and every verdict are the same.  The fair lasso search, whose queries
#: they slow down, keeps the defaults (:func:`mbmssec.proofs.liveness.find_lasso`).
SEARCH_SOLVER_PARAMS: dict[str, int] = {"smt.arith.solver": 2, "smt.relevancy": 0}

#: Default unrolling depth (the longest shortest counterexample of the shipped
#: proposals has 11 steps).
DEFAULT_DEPTH = 12


_UNROLLINGS = itertools.count()


class ToolBug(ProofError):
    """A counterexample or witness the solver produced does not replay on the model."""


class FiniteOps(Z3Ops):
    """Z3 operations with the quantifiers expanded over a finite universe."""

    def forall(self, sort: Sort, body: Callable[[Any], Any]) -> Any:
        return z3.And(*[as_z3(body(e)) for e in self.sorts.elements[sort]])

    def exists(self, sort: Sort, body: Callable[[Any], Any]) -> Any:
        return z3.Or(*[as_z3(body(e)) for e in self.sorts.elements[sort]])


@dataclass
class _Step:
    action: Action
    params: tuple[z3.ExprRef, ...]
    guard: z3.BoolRef
    post: View


def finite_transition(
    action: Action, profile: Any, pre: SymbolicState | View, sorts: Sorts, params: tuple[Any, ...]
) -> _Step:
    """Guard and post-state of ``action`` with the quantifiers expanded (the same reading
    as :func:`mbmssec.model.symbolic.transition`, with :class:`FiniteOps`)."""
    ops = FiniteOps(sorts)
    base: Any = pre
    while isinstance(base, View):
        base = base.pre
    st = SymbolicStep(pre, action.modifies, action.name, base.vocab)
    action.run(ops, st, profile, *params)
    ranges = [
        c
        for p, a in zip(action.params, params, strict=True)
        if p.sort is Sort.INT
        for c in p.range_constraints(a)
    ]
    guard = z3.And(*[as_z3(g) for g in ops.guards], *ranges)
    st.record_stamps()
    return _Step(action, tuple(params), guard, View(pre, st.overlay))


@dataclass
class Found:
    """A trace found by the search, already replayed on the executable model."""

    trace: Trace
    depth: int
    seconds: float


@dataclass
class SearchResult:
    """What one bounded search established."""

    depth: int
    universe: Universe
    violations: dict[int, Found] = field(default_factory=dict)
    witnesses: dict[str, Found] = field(default_factory=dict)
    depth_seconds: list[float] = field(default_factory=list)  # cumulative time per depth
    seconds: float = 0.0


class Unrolling:
    """The incremental unrolling of one model over one universe (its solver set up with
    ``solver_params``, by default :data:`SEARCH_SOLVER_PARAMS`)."""

    def __init__(
        self,
        model: Model,
        universe: Universe = BMC_UNIVERSE,
        rlimit: int = DEFAULT_BMC_RLIMIT,
        *,
        por: bool = True,
        solver_params: dict[str, int] | None = None,
    ) -> None:
        for s in (Sort.UE, Sort.SVC, Sort.TEK, Sort.PKT):
            if universe.size(s) < 1:
                raise ProofError(f"BMC universe needs at least one {s.value}")
        self.model = model
        self.universe = universe
        self.tag = f"_u{next(_UNROLLINGS)}"
        self.sorts = Sorts.finite(universe, tag=self.tag)
        self.ops = FiniteOps(self.sorts)
        self.solver = z3.Solver()
        self.solver.set("rlimit", rlimit)
        for key, value in (
            SEARCH_SOLVER_PARAMS if solver_params is None else solver_params
        ).items():
            self.solver.set(key, value)
        self.states: list[SymbolicState] = [SymbolicState(model.vocab, self.sorts, "d0")]
        self.selectors: list[z3.ArithRef] = []
        self.steps: list[list[_Step]] = []
        self._index = {
            s: {str(e): i for i, e in enumerate(self.sorts.elements[s])}
            for s in self.sorts.elements
        }
        # partial-order reduction keeps every reachable state at every depth, but not every
        # intermediate state of a run: searches that read those (fair lassos) turn it off
        self._independent = _independence(model, self.sorts) if por else []
        self.solver.add(self._initial(self.states[0]))

    @property
    def depth(self) -> int:
        return len(self.states) - 1

    def _tuples(self, args: tuple[Sort, ...]) -> list[tuple[z3.ExprRef, ...]]:
        out: list[tuple[z3.ExprRef, ...]] = [()]
        for a in args:
            out = [(*t, e) for t in out for e in self.sorts.elements[a]]
        return out

    def _initial(self, st: SymbolicState) -> z3.BoolRef:
        parts = []
        for sym in self.model.vocab.symbols:
            if sym.initial is None:
                continue
            for args in self._tuples(sym.args):
                parts.append(st.get(sym.name, *args) == sym.initial)
        return z3.And(*parts)

    def extend(self) -> None:
        """Add one more step to the unrolling."""
        k = self.depth + 1
        pre = self.states[-1]
        post = SymbolicState(self.model.vocab, self.sorts, f"d{k}")
        sel = z3.Int(f"act@{k}{self.tag}")
        steps: list[_Step] = []
        for act in self.model.actions:
            params = tuple(
                z3.Const(f"{act.name}.{p.name}@{k}{self.tag}", self.sorts.of(p.sort))
                for p in act.params
            )
            steps.append(finite_transition(act, self.model.profile, pre, self.sorts, params))
        self.solver.add(sel >= 0, sel < len(steps))
        for i, stp in enumerate(steps):
            self.solver.add(z3.Implies(sel == i, z3.And(stp.guard, self._canonical(pre, stp))))
        for sym in self.model.vocab.symbols:
            writers = [(i, stp) for i, stp in enumerate(steps) if sym.name in stp.action.modifies]
            for args in self._tuples(sym.args):
                value: Any = pre.get(sym.name, *args)
                for i, stp in writers:
                    value = z3.If(sel == i, as_z3(stp.post.get(sym.name, *args)), value)
                self.solver.add(post.get(sym.name, *args) == value)
        if len(self.selectors) >= 2:
            # partial-order reduction on the prefix: two adjacent independent steps appear
            # in action order (never the last step, which a question may single out)
            a, b = self.selectors[-2], self.selectors[-1]
            for i, j in self._independent:
                if i > j:
                    self.solver.add(z3.Not(z3.And(a == i, b == j)))
        self.states.append(post)
        self.selectors.append(sel)
        self.steps.append(steps)

    def _canonical(self, pre: SymbolicState, stp: _Step) -> z3.BoolRef:
        """Symmetry reduction: TEKs are generated and packets sent in index order.

        Elements of a sort are interchangeable, so every trace can be renamed into one
        that uses fresh TEKs and packets lowest index first, with the same length; the
        search only looks at those.  (This only prunes the search; every trace found is
        still replayed on the unrestricted model.)"""
        name = stp.action.name
        if name == "Generate":
            fresh, sort, flag = stp.params[1], Sort.TEK, "generated"
        elif name == "Send":
            fresh, sort, flag = stp.params[1], Sort.PKT, "sent"
        else:
            return z3.BoolVal(True)
        els = self.sorts.elements[sort]
        return z3.And(
            *[z3.Implies(fresh == els[i], pre.get(flag, els[i - 1])) for i in range(1, len(els))]
        )

    # -- questions -------------------------------------------------------------------------

    def violation(self, prop: Property, k: int) -> z3.BoolRef | None:
        """The formula "``prop`` fails at depth ``k``" (``None`` if it cannot there)."""
        st = self.states[k]
        if prop.kind == "invariant":
            assert prop.body is not None
            return z3.Not(as_z3(prop.body(self.ops, st)))
        if prop.kind == "step":
            if k == 0:
                return None
            assert prop.body is not None
            return z3.Not(as_z3(prop.body(self.ops, self.states[k - 1], st)))
        if prop.kind == "liveness":
            return None  # no finite prefix violates it: see mbmssec.proofs.liveness
        assert prop.premise is not None and prop.goal is not None
        u = z3.Const(f"resp.u@{k}{self.tag}", self.sorts.of(Sort.UE))
        s = z3.Const(f"resp.s@{k}{self.tag}", self.sorts.of(Sort.SVC))
        cur: Any = st
        guards = []
        for name, roles in prop.plan:
            try:
                act = self.model.action(name)
            except ModelError:
                return as_z3(prop.premise(self.ops, st, u, s))
            values = dict(roles)
            arglist: list[Any] = []
            for p in act.params:
                role = values[p.name]
                arglist.append({"u": u, "s": s}[role] if isinstance(role, str) else z3.IntVal(role))
            args = tuple(arglist)
            stp = finite_transition(act, self.model.profile, cur, self.sorts, args)
            guards.append(stp.guard)
            cur = stp.post
        ok = z3.And(*guards, as_z3(prop.goal(self.ops, cur, u, s)))
        return z3.And(as_z3(prop.premise(self.ops, st, u, s)), z3.Not(ok))

    def changes(self, k: int, names: Iterable[str]) -> z3.BoolRef:
        """The formula "step ``k`` changes some entry of one of ``names``"."""
        pre, post = self.states[k - 1], self.states[k]
        parts = []
        for name in sorted(set(names)):
            sym = self.model.vocab[name]
            for args in self._tuples(sym.args):
                parts.append(pre.get(name, *args) != post.get(name, *args))
        return z3.Or(*parts) if parts else z3.BoolVal(False)

    def ask(self, condition: z3.BoolRef) -> z3.ModelRef | None:
        """A model of the unrolling plus ``condition``, or ``None`` if unsatisfiable.

        A resource limit reached or an ``unknown`` answer raises :class:`ProofError`: no "not found"
        verdict may rest on it."""
        self.solver.push()
        self.solver.add(condition)
        res = self.solver.check()
        m = self.solver.model() if res == z3.sat else None
        reason = self.solver.reason_unknown() if res == z3.unknown else ""
        self.solver.pop()
        if res == z3.unknown:
            raise ProofError(f"bounded search at depth {self.depth} gave up: {reason}")
        return m

    def trace(self, m: z3.ModelRef, k: int, violates: tuple[int, ...] = ()) -> Trace:
        """The first ``k`` steps of a model as a trace over this universe."""
        out = []
        for i in range(k):
            sel = m.eval(self.selectors[i], model_completion=True).as_long()
            stp = self.steps[i][sel]
            args: list[Any] = []
            for p, c in zip(stp.action.params, stp.params, strict=True):
                v = m.eval(c, model_completion=True)
                if p.sort is Sort.BOOL:
                    args.append(z3.is_true(v))
                elif p.sort is Sort.INT:
                    args.append(v.as_long())
                else:
                    args.append(self._index[p.sort][str(v)])
            out.append(TraceStep(stp.action.name, tuple(args)))
        return Trace(tuple(out), self.universe, violates)


class _ReadRecorder:
    """A pre-state that records which symbols an action reads."""

    def __init__(self, state: SymbolicState) -> None:
        self.state = state
        self.vocab = state.vocab
        self.names: set[str] = set()

    def get(self, name: str, *args: Any) -> Any:
        self.names.add(name)
        return self.state.get(name, *args)


def _independence(model: Model, sorts: Sorts) -> list[tuple[int, int]]:
    """Pairs of action indices whose instances always commute: neither writes what the
    other reads or writes (reads include the guard).  Swapping two such adjacent steps
    leaves both enabled and reaches the same state."""
    base = SymbolicState(model.vocab, sorts, "por")
    reads: list[set[str]] = []
    for act in model.actions:
        rec = _ReadRecorder(base)
        params = tuple(z3.Const(f"{act.name}.{p.name}@por", sorts.of(p.sort)) for p in act.params)
        # _ReadRecorder stands in for the pre-state (it has the same get/vocab the reading
        # uses) but is not a SymbolicState subclass, hence the ignore.
        stp = finite_transition(act, model.profile, rec, sorts, params)  # type: ignore[arg-type]
        # Updates written with set_all are functions evaluated only when the post-state
        # is read: read every entry of every written symbol so that their reads count.
        for name in sorted(act.modifies):
            sym = model.vocab[name]
            for args in itertools.product(*(sorts.elements[a] for a in sym.args)):
                stp.post.get(name, *args)
        reads.append(rec.names)
    out = []
    acts = model.actions
    for i, a in enumerate(acts):
        for j, b in enumerate(acts):
            if i == j:
                continue
            if (a.modifies & (reads[j] | b.modifies)) or (b.modifies & reads[i]):
                continue
            out.append((i, j))
    return out


def replay_violation(model: Model, trace: Trace, prop: Property) -> None:
    """Replay ``trace`` on the executable model and confirm that its last state violates
    ``prop``; otherwise the solver and the model disagree, which is a bug in the tool."""
    try:
        states = trace.replay(model)
    except ModelError as exc:
        raise ToolBug(
            f"counterexample for property {prop.number} does not replay: {exc}; "
            f"trace {trace.to_json()}"
        ) from None
    pre = states[-2] if len(states) > 1 else None
    if model.holds(prop, states[-1], pre):
        raise ToolBug(
            f"counterexample for property {prop.number} replays but the property "
            f"holds in its last state; trace {trace.to_json()}"
        )


def replay_witness(model: Model, trace: Trace, action: str) -> None:
    """Replay a reachability witness: every step enabled, the last one ``action``."""
    try:
        trace.replay(model)
    except ModelError as exc:
        raise ToolBug(f"witness for action {action} does not replay: {exc}") from None
    if not trace.steps or trace.steps[-1].action != action:
        raise ToolBug(f"witness for action {action} does not end with it")


def search(
    model: Model,
    *,
    props: Iterable[Property] = (),
    actions: Iterable[str] = (),
    depth: int = DEFAULT_DEPTH,
    universe: Universe = BMC_UNIVERSE,
    rlimit: int = DEFAULT_BMC_RLIMIT,
    progress: Callable[[str], None] | None = None,
    first_depth_only: bool = False,
    effective: bool = False,
) -> SearchResult:
    """Shortest violations of ``props`` and shortest witnesses enabling each of
    ``actions``, up to ``depth`` steps, in one incremental unrolling.

    With ``first_depth_only`` the search ends after the first depth at which some
    property is violated (every property is still asked at that depth), which is all a
    caller needs to know that, and how soon, something breaks.  With ``effective`` a
    witness must also change the design or environment state (an action that is enabled
    but does nothing has none)."""
    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    unr = Unrolling(model, universe, rlimit)
    todo_props = list(props)
    todo_acts = list(actions)
    result = SearchResult(depth=depth, universe=universe)
    index = {a.name: i for i, a in enumerate(model.actions)}
    for k in range(depth + 1):
        if not todo_props and not todo_acts:
            break
        if k > 0:
            unr.extend()
        say(f"bounded search depth {k}/{depth}")
        for prop in list(todo_props):
            cond = unr.violation(prop, k)
            if cond is None:
                continue
            tq = time.perf_counter()
            m = unr.ask(cond)
            if m is not None:
                tr = unr.trace(m, k, (prop.number,))
                replay_violation(model, tr, prop)
                result.violations[prop.number] = Found(tr, k, time.perf_counter() - tq)
                todo_props.remove(prop)
        if k > 0:
            for name in list(todo_acts):
                tq = time.perf_counter()
                cond = unr.selectors[k - 1] == index[name]
                if effective:
                    act = model.action(name)
                    # the event counter alone is no effect (it only stamps)
                    written = [
                        n for n in act.modifies if model.vocab[n].role != "history" and n != "ev"
                    ]
                    cond = z3.And(cond, unr.changes(k, written))
                m = unr.ask(cond)
                if m is not None:
                    tr = unr.trace(m, k)
                    replay_witness(model, tr, name)
                    result.witnesses[name] = Found(tr, k, time.perf_counter() - tq)
                    todo_acts.remove(name)
        result.depth_seconds.append(time.perf_counter() - t0)
        if first_depth_only and result.violations:
            break
    result.seconds = time.perf_counter() - t0
    return result

"""Unbounded inductive proofs of the key-lifecycle properties (every number of UEs and TEKs).

The UE, service, TEK and packet sorts are uninterpreted Z3 sorts, so a proof covers
every population size.  The candidate invariant is the conjunction of the invariant
properties and the named lemmas of :mod:`mbmssec.proofs.lemmas`.  For every pair
(action, conjunct) one Z3 query asks whether a state satisfying every candidate can
step, by that action, to one violating the conjunct; each initial state is checked
against every conjunct too.  A conjunct that fails (or whose query times out or comes
back ``unknown``) is dropped, and the pairs whose proofs used it (their unsat cores)
are asked again, until nothing changes (Houdini's fixpoint).  What survives is
inductive: every surviving lemma is proved relative to the others, and no conjunct is
ever kept on an ``unknown`` answer.

Step properties (2) are checked as ``invariant(pre) & transition -> P(pre, post)`` for
every action; the response property (9) as ``invariant(state) & premise -> plan
enabled & goal after the plan``, composing the plan's transitions (unbounded in the
population, bounded to the plan's length).

Actions that do not write any symbol a conjunct reads preserve it trivially (the frame
is implicit in the symbolic reading); such pairs are reported as ``frame`` without a
solver call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import z3

from mbmssec.errors import MbmssecError
from mbmssec.model.dsl import Action, Sort
from mbmssec.model.machine import Model
from mbmssec.model.properties import Property
from mbmssec.model.symbolic import Sorts, SymbolicState, Z3Ops, transition
from mbmssec.proofs.lemmas import Lemma, lemmas_for

#: Default per-query resource limit (Z3 ``rlimit``, a count of the solver's steps).  A
#: budget in steps, not seconds, gives the same verdict on an idle and a loaded machine.
#: The largest query of the shipped profiles takes under 100,000 steps (about 0.06 s);
#: the budget is 30 times that.
DEFAULT_RLIMIT = 3_000_000


class ProofError(MbmssecError):
    """The proof machinery itself failed (not a verdict about the model)."""


@dataclass(frozen=True)
class Query:
    """One solver query: does ``action`` preserve ``conjunct``?  (action "init": base case)."""

    action: str
    conjunct: str
    verdict: str  # "proved" | "frame" | "failed" | "unknown"
    seconds: float
    core: tuple[str, ...] = ()
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "conjunct": self.conjunct,
            "verdict": self.verdict,
            "seconds": round(self.seconds, 4),
            "core": list(self.core),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Cti:
    """A counterexample to induction: a pre-state satisfying the candidates whose step by
    ``action`` violates ``conjunct``.  The states are rendered as text (they come from a
    model over uninterpreted sorts, not necessarily reachable)."""

    conjunct: str
    action: str
    pre: tuple[str, ...]
    post: tuple[str, ...]

    def render(self) -> str:
        head = f"invariant {self.conjunct} is not preserved by action {self.action}"
        if self.action == "init":
            head = f"invariant {self.conjunct} does not hold in the initial state"
        lines = [head, "  pre-state:"]
        lines += [f"    {x}" for x in self.pre] or ["    (nothing relevant)"]
        if self.post:
            lines.append("  post-state (changed entries):")
            lines += [f"    {x}" for x in self.post]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "conjunct": self.conjunct,
            "action": self.action,
            "pre": list(self.pre),
            "post": list(self.post),
            "text": self.render(),
        }


@dataclass
class InductionResult:
    """The outcome of the fixpoint for one profile."""

    profile_title: str
    surviving: tuple[str, ...]
    dropped: dict[str, str]  # conjunct -> why ("failed by Receive", "unknown on Tick", ...)
    queries: list[Query]
    ctis: dict[str, Cti]
    step_results: dict[int, list[Query]] = field(default_factory=dict)
    response_results: dict[int, Query] = field(default_factory=dict)
    response_ctis: dict[int, Cti] = field(default_factory=dict)
    #: liveness properties: the certificate's obligations, and the first that failed
    liveness_results: dict[int, list[Query]] = field(default_factory=dict)
    liveness_failed: dict[int, str] = field(default_factory=dict)
    step_ctis: dict[int, Cti] = field(default_factory=dict)
    initial_satisfiable: bool = False
    seconds: float = 0.0
    #: for each surviving conjunct, the conjuncts its proofs used (unsat cores)
    uses: dict[str, set[str]] = field(default_factory=dict)

    def property_proved(self, prop: Property) -> bool:
        """Is the property proved inductive (vacuity is checked separately)?"""
        if prop.kind == "invariant":
            return prop_key(prop) in self.surviving
        if prop.kind == "step":
            qs = self.step_results.get(prop.number, [])
            return bool(qs) and all(q.verdict in ("proved", "frame") for q in qs)
        if prop.kind == "liveness":
            qs = self.liveness_results.get(prop.number, [])
            return bool(qs) and all(q.verdict == "proved" for q in qs)
        q = self.response_results.get(prop.number)
        return q is not None and q.verdict == "proved"

    def lemmas_used(self, prop: Property) -> list[str]:
        """The lemmas the proof of ``prop`` rests on (transitively, through unsat cores)."""
        if prop.kind == "invariant":
            roots = {prop_key(prop)}
        elif prop.kind == "step":
            roots = {c for q in self.step_results.get(prop.number, []) for c in q.core}
        elif prop.kind == "liveness":
            roots = {c for q in self.liveness_results.get(prop.number, []) for c in q.core}
        else:
            q = self.response_results.get(prop.number)
            roots = set(q.core) if q else set()
        seen: set[str] = set()
        todo = list(roots)
        while todo:
            c = todo.pop()
            if c in seen:
                continue
            seen.add(c)
            todo.extend(self.uses.get(c, ()))
        return sorted(c for c in seen if not c.startswith("P"))

    def property_queries(self, prop: Property) -> list[Query]:
        if prop.kind == "invariant":
            return [q for q in self.queries if q.conjunct == prop_key(prop)]
        if prop.kind == "step":
            return list(self.step_results.get(prop.number, []))
        if prop.kind == "liveness":
            return list(self.liveness_results.get(prop.number, []))
        q = self.response_results.get(prop.number)
        return [q] if q else []

    def cti_for(self, prop: Property) -> Cti | None:
        if prop.kind == "invariant":
            return self.ctis.get(prop_key(prop))
        if prop.kind == "step":
            return self.step_ctis.get(prop.number)
        return self.response_ctis.get(prop.number)


def prop_key(prop: Property) -> str:
    """The conjunct name of an invariant property."""
    return f"P{prop.number}_{prop.name}"


# -- reading which symbols a formula mentions ---------------------------------------------


class _Recorder:
    """A Reader that records which symbols a formula reads (for the frame shortcut)."""

    def __init__(self, state: SymbolicState) -> None:
        self.state = state
        self.names: set[str] = set()

    def get(self, name: str, *args: Any) -> Any:
        self.names.add(name)
        return self.state.get(name, *args)


Builder = Callable[[Any], z3.BoolRef]


@dataclass(frozen=True)
class _Conjunct:
    name: str
    build: Builder  # state (SymbolicState or View) -> formula


def _conjuncts(model: Model, sorts: Sorts, lemmas: Iterable[Lemma]) -> list[_Conjunct]:
    out: list[_Conjunct] = []
    prof = model.profile

    def of_property(body: Callable[..., Any]) -> Builder:
        return lambda st: body(Z3Ops(sorts), st)

    def of_lemma(body: Callable[..., Any]) -> Builder:
        return lambda st: body(Z3Ops(sorts), st, prof)

    for prop in model.properties:
        if prop.kind == "invariant":
            assert prop.body is not None
            out.append(_Conjunct(prop_key(prop), of_property(prop.body)))
    for lem in lemmas:
        out.append(_Conjunct(lem.name, of_lemma(lem.body)))
    return out


def invariant_formula(
    model: Model,
    result: InductionResult,
    sorts: Sorts,
    state: Any,
    lemmas: Iterable[Lemma] | None = None,
) -> z3.BoolRef:
    """The inductive invariant ``result`` proved for ``model`` (the conjunction of its
    surviving lemmas and invariant properties), on ``state``."""
    lems = tuple(lemmas) if lemmas is not None else lemmas_for(model.profile)
    alive = set(result.surviving)
    return z3.And(*[c.build(state) for c in _conjuncts(model, sorts, lems) if c.name in alive])


def _reads(conj: _Conjunct, state: SymbolicState) -> frozenset[str]:
    rec = _Recorder(state)
    conj.build(rec)
    return frozenset(rec.names)


# -- rendering a counterexample to induction ------------------------------------------


_MAX_ENTRIES = 40


def as_z3(v: Any) -> Any:
    """Python constants some action writes (``True``, ``0``) as Z3 values."""
    if isinstance(v, bool):
        return z3.BoolVal(v)
    if isinstance(v, int):
        return z3.IntVal(v)
    return v


def _fmt(v: z3.ExprRef) -> str:
    """A value of a counterexample to induction as text: ``True``, ``3``, ``UE0`` (an
    element of an uninterpreted sort, printed by Z3 as ``UE!val!0``), or Z3's printing
    of anything else.  The common kinds are written here: Z3's printer takes about a
    millisecond a value, and a counterexample shows hundreds."""
    if z3.is_true(v):
        return "True"
    if z3.is_false(v):
        return "False"
    if z3.is_int_value(v):
        return str(v.as_long())
    if v.num_args() == 0 and v.sort().kind() == z3.Z3_UNINTERPRETED_SORT:
        return str(v.decl().name()).replace("!val!", "")
    return str(v).replace("!val!", "")


def _render_state(
    m: z3.ModelRef,
    vocab_syms: Iterable[Any],
    sorts: Sorts,
    pre: Any,
    post: Any | None,
    names: set[str],
) -> tuple[list[str], list[str]]:
    """Entries of the relevant symbols: pre-state values that are not at rest, and the
    entries the step changed."""
    universes: dict[Sort, list[z3.ExprRef]] = {}
    for s, zs in sorts.z3sorts.items():
        try:
            universes[s] = list(m.get_universe(zs) or [])
        except z3.Z3Exception:
            universes[s] = []
    pre_lines: list[str] = []
    post_lines: list[str] = []
    for sym in vocab_syms:
        if sym.name not in names:
            continue
        doms = [universes.get(a, []) for a in sym.args]
        tuples: list[tuple[z3.ExprRef, ...]] = [()]
        for d in doms:
            tuples = [(*t, x) for t in tuples for x in d]
        for args in tuples[:_MAX_ENTRIES]:
            label = f"{sym.name}({', '.join(_fmt(a) for a in args)})" if args else sym.name
            before = m.eval(as_z3(pre.get(sym.name, *args)), model_completion=True)
            if not (z3.is_false(before) or (z3.is_int_value(before) and before.as_long() == 0)):
                pre_lines.append(f"{label} = {_fmt(before)}")
            if post is not None:
                after = m.eval(as_z3(post.get(sym.name, *args)), model_completion=True)
                if not after.eq(before):
                    post_lines.append(f"{label} = {_fmt(after)}  (was {_fmt(before)})")
    return pre_lines, post_lines


# -- the fixpoint --------------------------------------------------------------------------


class _ActionSolver:
    """One solver per action: the candidates on the pre-state (each behind an assumption
    literal, so unsat cores name the candidates a proof used; ``candidates``: those
    implications, built once for every action's solver), the guard and the post-state
    view."""

    def __init__(
        self,
        act: Action,
        model: Model,
        sorts: Sorts,
        pre: SymbolicState,
        candidates: list[z3.BoolRef],
        rlimit: int,
    ) -> None:
        self.action = act
        self.solver = z3.Solver()
        self.solver.set("rlimit", rlimit)
        for candidate in candidates:
            self.solver.add(candidate)
        self.tr = transition(act, model.profile, pre, sorts, tag="0")
        self.solver.add(self.tr.guard)


def _check(
    solver: z3.Solver, goal: z3.BoolRef, assumptions: list[z3.BoolRef], lit_names: dict[str, str]
) -> tuple[str, tuple[str, ...], float, z3.ModelRef | None, str]:
    solver.push()
    solver.add(z3.Not(goal))
    t0 = time.perf_counter()
    res = solver.check(*assumptions)
    dt = time.perf_counter() - t0
    core: tuple[str, ...] = ()
    m = None
    reason = ""
    if res == z3.unsat:
        core = tuple(sorted(lit_names[str(x)] for x in solver.unsat_core() if str(x) in lit_names))
        verdict = "proved"
    elif res == z3.sat:
        verdict = "failed"
        m = solver.model()
    else:
        verdict = "unknown"
        reason = solver.reason_unknown()
    solver.pop()
    return verdict, core, dt, m, reason


def prove(
    model: Model,
    *,
    rlimit: int = DEFAULT_RLIMIT,
    lemmas: Iterable[Lemma] | None = None,
    progress: Callable[[str], None] | None = None,
) -> InductionResult:
    """Run the inductive fixpoint for ``model``'s profile, then check step and response
    properties against what survived."""
    t_start = time.perf_counter()
    say = progress or (lambda _m: None)
    sorts = Sorts.unbounded()
    vocab = model.vocab
    pre = SymbolicState(vocab, sorts, "pre")
    lems = tuple(lemmas) if lemmas is not None else lemmas_for(model.profile)
    conjs = _conjuncts(model, sorts, lems)
    by_name = {c.name: c for c in conjs}
    reads = {c.name: _reads(c, pre) for c in conjs}
    lits = {c.name: z3.Bool(f"inv!{c.name}") for c in conjs}
    lit_names = {str(v): k for k, v in lits.items()}
    alive: set[str] = set(by_name)
    dropped: dict[str, str] = {}
    ctis: dict[str, Cti] = {}
    latest: dict[tuple[str, str], Query] = {}
    uses: dict[str, set[str]] = {c: set() for c in by_name}

    # base case: initial states satisfy every conjunct
    init_solver = z3.Solver()
    init_solver.set("rlimit", rlimit)
    s0 = SymbolicState(vocab, sorts, "init")
    init_solver.add(s0.initial(Z3Ops(sorts)))
    t0 = time.perf_counter()
    initial_sat = init_solver.check() == z3.sat
    if not initial_sat:
        raise ProofError(
            "the initial-state condition is unsatisfiable: every proof would be vacuous"
        )
    del t0
    for c in conjs:
        verdict, core, dt, m, reason = _check(init_solver, c.build(s0), [], {})
        latest[("init", c.name)] = Query("init", c.name, verdict, dt, core, reason)
        if verdict != "proved":
            alive.discard(c.name)
            dropped[c.name] = f"{verdict} in the initial state"
            if m is not None:
                pre_lines, _ = _render_state(m, vocab.symbols, sorts, s0, None, set(reads[c.name]))
                ctis[c.name] = Cti(c.name, "init", tuple(pre_lines), ())

    solvers: dict[str, _ActionSolver] = {}
    candidates = [z3.Implies(lits[c.name], c.build(pre)) for c in conjs]
    for act in model.actions:
        solvers[act.name] = _ActionSolver(act, model, sorts, pre, candidates, rlimit)

    pending = {(a.name, c) for a in model.actions for c in alive}
    rnd = 0
    while pending:
        rnd += 1
        say(f"induction round {rnd}: {len(pending)} queries")
        failed: set[str] = set()
        for act in model.actions:
            aso = solvers[act.name]
            assumptions = [lits[c] for c in sorted(alive)]
            for cname in sorted(c for a, c in pending if a == act.name):
                if cname not in alive:
                    continue
                if not (act.modifies & reads[cname]):
                    latest[(act.name, cname)] = Query(act.name, cname, "frame", 0.0, (cname,))
                    continue
                goal = by_name[cname].build(aso.tr.post)
                verdict, core, dt, m, reason = _check(aso.solver, goal, assumptions, lit_names)
                latest[(act.name, cname)] = Query(act.name, cname, verdict, dt, core, reason)
                if verdict != "proved":
                    failed.add(cname)
                    if cname not in dropped:
                        dropped[cname] = (
                            f"not preserved by {act.name}"
                            if verdict == "failed"
                            else f"{verdict} on {act.name} ({reason})"
                        )
                    if m is not None and cname not in ctis:
                        names = set(reads[cname]) | set(act.modifies)
                        pl, ql = _render_state(m, vocab.symbols, sorts, pre, aso.tr.post, names)
                        params = [
                            f"{p.name} = {_fmt(m.eval(v, model_completion=True))}"
                            for p, v in zip(act.params, aso.tr.params, strict=True)
                        ]
                        ctis[cname] = Cti(cname, act.name, tuple(params + pl), tuple(ql))
        alive -= failed
        pending = {
            key
            for key, q in latest.items()
            if key[0] != "init" and key[1] in alive and set(q.core) & failed
        }

    for (_a, cname), q in latest.items():
        if cname in alive:
            uses[cname].update(x for x in q.core if x != cname)

    result = InductionResult(
        profile_title=model.profile.title,
        surviving=tuple(sorted(alive)),
        dropped=dropped,
        queries=sorted(latest.values(), key=lambda q: (q.conjunct, q.action)),
        ctis=ctis,
        initial_satisfiable=initial_sat,
        uses={k: v for k, v in uses.items() if k in alive},
    )

    assumptions = [lits[c] for c in sorted(alive)]
    for prop in model.properties:
        if prop.kind == "step":
            say(f"step property {prop.number}")
            result.step_results[prop.number] = _prove_step(
                model, prop, sorts, pre, solvers, assumptions, lit_names, result
            )
        elif prop.kind == "response":
            say(f"response property {prop.number}")
            _prove_response(model, prop, sorts, pre, conjs, lits, alive, lit_names, rlimit, result)
        elif prop.kind == "liveness":
            say(f"liveness property {prop.number}")
            from mbmssec.proofs import liveness

            lsolver = z3.Solver()
            lsolver.set("rlimit", rlimit)
            for c in conjs:
                lsolver.add(z3.Implies(lits[c.name], c.build(pre)))
            qs, first_failed = liveness.prove(
                model, prop, sorts, pre, lsolver, assumptions, _check, lit_names
            )
            result.liveness_results[prop.number] = qs
            if first_failed is not None:
                result.liveness_failed[prop.number] = first_failed
    result.seconds = time.perf_counter() - t_start
    return result


def _prove_step(
    model: Model,
    prop: Property,
    sorts: Sorts,
    pre: SymbolicState,
    solvers: dict[str, _ActionSolver],
    assumptions: list[z3.BoolRef],
    lit_names: dict[str, str],
    result: InductionResult,
) -> list[Query]:
    body = prop.body
    assert body is not None
    out: list[Query] = []
    for act in model.actions:
        aso = solvers[act.name]
        goal = body(Z3Ops(sorts), pre, aso.tr.post)
        verdict, core, dt, m, reason = _check(aso.solver, goal, assumptions, lit_names)
        out.append(Query(act.name, f"P{prop.number}_{prop.name}", verdict, dt, core, reason))
        if m is not None and prop.number not in result.step_ctis:
            pl, ql = _render_state(
                m,
                model.vocab.symbols,
                sorts,
                pre,
                aso.tr.post,
                set(act.modifies) | {"authenticated", "subscribed", "generated", "tek_svc"},
            )
            result.step_ctis[prop.number] = Cti(
                f"P{prop.number}_{prop.name}", act.name, tuple(pl), tuple(ql)
            )
    return out


def plan_transitions(
    model: Model, prop: Property, sorts: Sorts, state: Any, u: Any, s: Any, tag: str
) -> tuple[list[z3.BoolRef], Any]:
    """The guards of the response property's plan run from ``state`` for UE ``u`` and
    service ``s``, and the state after the plan."""
    guards: list[z3.BoolRef] = []
    cur = state
    for i, (name, roles) in enumerate(prop.plan):
        act = model.action(name)
        values = dict(roles)
        args = []
        for p in act.params:
            role = values[p.name]
            if isinstance(role, str):
                args.append({"u": u, "s": s}[role])
            else:
                args.append(z3.IntVal(role) if p.sort is Sort.INT else role)
        tr = transition(act, model.profile, cur, sorts, params=tuple(args), tag=f"{tag}{i}")
        guards.append(tr.guard)
        cur = tr.post
    return guards, cur


def _prove_response(
    model: Model,
    prop: Property,
    sorts: Sorts,
    pre: SymbolicState,
    conjs: list[_Conjunct],
    lits: dict[str, z3.BoolRef],
    alive: set[str],
    lit_names: dict[str, str],
    rlimit: int,
    result: InductionResult,
) -> None:
    assert prop.premise is not None and prop.goal is not None
    ops = Z3Ops(sorts)
    solver = z3.Solver()
    solver.set("rlimit", rlimit)
    for c in conjs:
        solver.add(z3.Implies(lits[c.name], c.build(pre)))
    u = z3.Const("resp.u", sorts.of(Sort.UE))
    s = z3.Const("resp.s", sorts.of(Sort.SVC))
    solver.add(prop.premise(ops, pre, u, s))
    try:
        guards, post = plan_transitions(model, prop, sorts, pre, u, s, "resp")
    except Exception as exc:  # a plan step that does not exist under this profile
        result.response_results[prop.number] = Query(
            "plan", prop_key(prop), "failed", 0.0, (), f"plan not applicable: {exc}"
        )
        return
    goal = z3.And(*guards, prop.goal(ops, post, u, s))
    verdict, core, dt, m, reason = _check(solver, goal, [lits[c] for c in sorted(alive)], lit_names)
    result.response_results[prop.number] = Query("plan", prop_key(prop), verdict, dt, core, reason)
    if m is not None:
        pl, _ = _render_state(
            m,
            model.vocab.symbols,
            sorts,
            pre,
            None,
            {
                "saw_unknown",
                "subscribed",
                "covered",
                "has_active",
                "registered",
                "fetch_time",
                "clock",
                "holds",
                "active",
                "authenticated",
            },
        )
        result.response_ctis[prop.number] = Cti(
            prop_key(prop),
            "plan " + " ; ".join(n for n, _r in prop.plan),
            (
                f"u = {_fmt(m.eval(u, model_completion=True))}",
                f"s = {_fmt(m.eval(s, model_completion=True))}",
                *pl,
            ),
            (),
        )

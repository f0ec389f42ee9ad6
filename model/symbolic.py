"""The Z3 reading of the model: the same action and property code, run on Z3 terms.

Sorts UE, SVC, TEK and PKT become uninterpreted Z3 sorts (so a proof covers every
population size) or, for finite checks, enumeration sorts of a given size.  Each state
symbol becomes a Z3 function; an action run on a :class:`SymbolicStep` yields its guard
(the conjunction of its ``require`` calls and its parameter ranges) and a post-state
*view* in which each modified symbol is an expression over the pre-state.  The frame
(every symbol not in ``modifies`` is unchanged) comes from that view, never from text
written by hand.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import z3

from mbmssec.model.concrete import State, Universe
from mbmssec.model.dsl import ELEMENT_SORTS, Action, ModelError, Sort, Vocabulary, stamp_writes


@dataclass
class Sorts:
    """The Z3 sorts standing for the model's element sorts."""

    z3sorts: dict[Sort, z3.SortRef]
    elements: dict[Sort, list[z3.ExprRef]] = field(default_factory=dict)

    @classmethod
    def unbounded(cls, ctx_name: str = "") -> Sorts:
        """Uninterpreted sorts: results hold for every population size."""
        return cls({s: z3.DeclareSort(f"{s.value}{ctx_name}") for s in ELEMENT_SORTS})

    @classmethod
    def finite(cls, universe: Universe, tag: str = "") -> Sorts:
        """Enumeration sorts with exactly the universe's elements (for finite checks)."""
        z3sorts: dict[Sort, z3.SortRef] = {}
        elements: dict[Sort, list[z3.ExprRef]] = {}
        for s in ELEMENT_SORTS:
            names = [f"{s.value}{i}{tag}" for i in range(universe.size(s))]
            sort, consts = z3.EnumSort(f"{s.value}_fin{universe.size(s)}{tag}", names)
            z3sorts[s] = sort
            elements[s] = list(consts)
        return cls(z3sorts, elements)

    def of(self, sort: Sort) -> z3.SortRef:
        if sort is Sort.BOOL:
            return z3.BoolSort()
        if sort is Sort.INT:
            return z3.IntSort()
        return self.z3sorts[sort]


class Z3Ops:
    """:class:`~mbmssec.model.dsl.Ops` building Z3 terms; ``require`` collects guards."""

    def __init__(self, sorts: Sorts) -> None:
        self.sorts = sorts
        self.guards: list[z3.BoolRef] = []
        self._fresh = itertools.count()

    def and_(self, *xs: Any) -> Any:
        return z3.And(*xs) if xs else z3.BoolVal(True)

    def or_(self, *xs: Any) -> Any:
        return z3.Or(*xs) if xs else z3.BoolVal(False)

    def not_(self, x: Any) -> Any:
        return z3.Not(x)

    def implies(self, a: Any, b: Any) -> Any:
        return z3.Implies(a, b)

    def ite(self, c: Any, a: Any, b: Any) -> Any:
        return z3.If(c, a, b)

    def _var(self, sort: Sort) -> z3.ExprRef:
        return z3.Const(f"{sort.value.lower()}!{next(self._fresh)}", self.sorts.of(sort))

    def forall(self, sort: Sort, body: Callable[[Any], Any]) -> Any:
        x = self._var(sort)
        return z3.ForAll([x], body(x))

    def exists(self, sort: Sort, body: Callable[[Any], Any]) -> Any:
        x = self._var(sort)
        return z3.Exists([x], body(x))

    def forall_n(self, sorts: tuple[Sort, ...], body: Callable[..., Any]) -> Any:
        """Universal closure over several sorts at once."""
        xs = [self._var(s) for s in sorts]
        return z3.ForAll(xs, body(*xs))

    def require(self, cond: Any) -> None:
        self.guards.append(z3.BoolVal(cond) if isinstance(cond, bool) else cond)


Fn = Callable[..., Any]


class SymbolicState:
    """A state as Z3 functions, one per symbol (names carry ``tag``)."""

    def __init__(self, vocab: Vocabulary, sorts: Sorts, tag: str) -> None:
        self.vocab = vocab
        self.sorts = sorts
        self.tag = tag
        self.funcs: dict[str, z3.FuncDeclRef] = {}
        for sym in vocab.symbols:
            dom = [sorts.of(a) for a in sym.args]
            self.funcs[sym.name] = z3.Function(f"{sym.name}@{tag}", *dom, sorts.of(sym.result))
        # Applications already built, keyed by the arguments' Z3 AST ids: z3's Python
        # application is slow and the same terms are asked for again and again.  The
        # entry keeps its arguments alive, so an id cannot be reused by another AST
        # while it is a key here.
        self._terms: dict[tuple[str, tuple[int, ...]], tuple[tuple[Any, ...], Any]] = {}

    def get(self, name: str, *args: Any) -> Any:
        if not all(isinstance(a, z3.ExprRef) for a in args):
            return self.funcs[name](*args)
        key = (name, tuple(a.get_id() for a in args))
        hit = self._terms.get(key)
        if hit is None:
            hit = self._terms[key] = (args, self.funcs[name](*args))
        return hit[1]

    def initial(self, ops: Z3Ops) -> z3.BoolRef:
        """The initial-state condition: every symbol with a declared start value has it."""
        parts = []
        for sym in self.vocab.symbols:
            if sym.initial is None:
                continue
            value = sym.initial
            if not sym.args:
                parts.append(self.get(sym.name) == value)
            else:
                parts.append(
                    ops.forall_n(sym.args, lambda *xs, n=sym.name, v=value: self.get(n, *xs) == v)
                )
        return z3.And(*parts)

    def equals(self, other: View, ops: Z3Ops, names: tuple[str, ...] | None = None) -> z3.BoolRef:
        """This state's functions equal ``other``'s values (the one-step frame)."""
        parts = []
        for sym in self.vocab.symbols:
            if names is not None and sym.name not in names:
                continue
            if not sym.args:
                parts.append(self.get(sym.name) == other.get(sym.name))
            else:
                parts.append(
                    ops.forall_n(
                        sym.args, lambda *xs, n=sym.name: self.get(n, *xs) == other.get(n, *xs)
                    )
                )
        return z3.And(*parts)


class View:
    """A post-state: each modified symbol as a Python function building Z3 terms."""

    def __init__(self, pre: SymbolicState | View, overlay: Mapping[str, Fn]) -> None:
        self.pre = pre
        self.overlay = dict(overlay)

    def get(self, name: str, *args: Any) -> Any:
        fn = self.overlay.get(name)
        if fn is None:
            return self.pre.get(name, *args)
        return fn(*args)


class SymbolicStep:
    """Reads from a pre-state (function or view), collects writes as an overlay."""

    def __init__(
        self, pre: SymbolicState | View, modifies: frozenset[str], action: str, vocab: Vocabulary
    ) -> None:
        self.pre = pre
        self.modifies = modifies
        self.action = action
        self.vocab = vocab
        self.overlay: dict[str, Fn] = {}

    def get(self, name: str, *args: Any) -> Any:
        return self.pre.get(name, *args)

    def _check(self, name: str) -> None:
        if name not in self.modifies:
            raise ModelError(
                f"action {self.action} writes {name!r} but does not list it in modifies"
            )

    def set(self, name: str, args: tuple[Any, ...], value: Any) -> None:
        self._check(name)
        old = self.overlay.get(name) or (lambda *xs, n=name: self.pre.get(n, *xs))
        if not args:
            self.overlay[name] = lambda: value
            return
        point = tuple(args)

        def updated(*xs: Any) -> Any:
            hit = z3.And(*[x == a for x, a in zip(xs, point, strict=True)])
            return z3.If(hit, value, old(*xs))

        self.overlay[name] = updated

    def set_all(self, name: str, value: Fn) -> None:
        self._check(name)
        self.overlay[name] = value

    def record_stamps(self) -> None:
        """Keep every true entry of a monotone relation true (``Symbol.monotone``), and
        stamp, with the pre-state's event counter, every element of a stamped relation
        that the step turned from false to true (``Symbol.stamps``)."""
        for name in self.vocab.monotone & self.overlay.keys():
            written = self.overlay[name]

            def kept(*xs: Any, name: str = name, written: Fn = written) -> Any:
                return z3.Or(self.pre.get(name, *xs), written(*xs))

            self.overlay[name] = kept
        for rel, stamp in stamp_writes(self.vocab, list(self.overlay), self.modifies, self.action):
            post = self.overlay[rel]

            def stamped(*xs: Any, rel: str = rel, stamp: str = stamp, post: Fn = post) -> Any:
                became = z3.And(z3.Not(self.pre.get(rel, *xs)), post(*xs))
                return z3.If(became, self.pre.get("ev"), self.pre.get(stamp, *xs))

            self.overlay[stamp] = stamped


@dataclass
class SymbolicTransition:
    """One action instance read symbolically."""

    action: Action
    params: tuple[z3.ExprRef, ...]
    guard: z3.BoolRef
    post: View


def param_consts(action: Action, sorts: Sorts, tag: str) -> tuple[z3.ExprRef, ...]:
    return tuple(z3.Const(f"{action.name}.{p.name}@{tag}", sorts.of(p.sort)) for p in action.params)


def transition(
    action: Action,
    profile: Any,
    pre: SymbolicState | View,
    sorts: Sorts,
    params: tuple[Any, ...] | None = None,
    tag: str = "",
) -> SymbolicTransition:
    """The guard and post-state view of ``action`` applied to ``pre``."""
    ops = Z3Ops(sorts)
    vocab = pre.vocab if isinstance(pre, SymbolicState) else _vocab_of(pre)
    args = params if params is not None else param_consts(action, sorts, tag)
    st = SymbolicStep(pre, action.modifies, action.name, vocab)
    action.run(ops, st, profile, *args)
    ranges = [
        c
        for p, a in zip(action.params, args, strict=True)
        if p.sort is Sort.INT
        for c in p.range_constraints(a)
    ]
    guard = z3.And(*ops.guards, *ranges)
    st.record_stamps()
    return SymbolicTransition(action, tuple(args), guard, View(pre, st.overlay))


def _vocab_of(view: View) -> Vocabulary:
    base: SymbolicState | View = view
    while isinstance(base, View):
        base = base.pre
    return base.vocab


def property_formula(prop: Any, sorts: Sorts, state: Any, pre: Any = None) -> z3.BoolRef:
    """The Z3 formula of an invariant (on ``state``) or step property (``pre -> state``)."""
    ops = Z3Ops(sorts)
    if prop.kind == "step":
        return prop.body(ops, pre, state)
    return prop.body(ops, state)


# -- finite encodings of concrete states --------------------------------------------------


def concrete_value(sorts: Sorts, sort: Sort, value: Any) -> Any:
    """The Z3 value of a concrete value of ``sort``."""
    if sort is Sort.BOOL:
        return z3.BoolVal(bool(value))
    if sort is Sort.INT:
        return z3.IntVal(int(value))
    return sorts.elements[sort][int(value)]


def state_constraints(state: State, sym_state: SymbolicState, sorts: Sorts) -> list[z3.BoolRef]:
    """Equalities pinning every symbol of ``sym_state`` to the concrete ``state``."""
    out = []
    for sym in state.vocab.symbols:
        for args in state.universe.tuples(sym.args):
            zargs = [concrete_value(sorts, s, a) for s, a in zip(sym.args, args, strict=True)]
            out.append(
                sym_state.get(sym.name, *zargs)
                == concrete_value(sorts, sym.result, state.get(sym.name, *args))
            )
    return out

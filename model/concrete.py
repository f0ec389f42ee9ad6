"""The executable reading of the model: Python values over a finite universe.

Elements of each sort are the integers ``0 .. n-1``; a :class:`State` maps each symbol
to a sparse table whose missing entries hold the symbol's default.  States are
immutable by convention: a step copies only the tables it changes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mbmssec.model.dsl import (
    ELEMENT_SORTS,
    Action,
    Disabled,
    ModelError,
    Param,
    Sort,
    Vocabulary,
    stamp_writes,
)

Table = dict[tuple[int, ...], Any]


@dataclass(frozen=True)
class Universe:
    """How many elements each sort has in a concrete run."""

    ue: int = 3
    svc: int = 2
    tek: int = 6
    pkt: int = 6

    def size(self, sort: Sort) -> int:
        # A chain of comparisons: this runs for every quantifier of every step, and
        # building a dict per call was a tenth of the lockstep refinement tests' time.
        if sort is Sort.UE:
            return self.ue
        if sort is Sort.SVC:
            return self.svc
        if sort is Sort.TEK:
            return self.tek
        if sort is Sort.PKT:
            return self.pkt
        raise ModelError(f"sort {sort} has no elements")

    def elements(self, sort: Sort) -> range:
        return range(self.size(sort))

    def tuples(self, sorts: tuple[Sort, ...]) -> Iterable[tuple[int, ...]]:
        return itertools.product(*(self.elements(s) for s in sorts))


class State:
    """One concrete state: a sparse table per symbol."""

    __slots__ = ("_defaults", "tables", "universe", "vocab")

    def __init__(self, vocab: Vocabulary, universe: Universe, tables: dict[str, Table]) -> None:
        self.vocab = vocab
        self.universe = universe
        self.tables = tables
        self._defaults = vocab.defaults

    @classmethod
    def initial(cls, vocab: Vocabulary, universe: Universe) -> State:
        """The initial state: every symbol at its declared initial value."""
        return cls(vocab, universe, {s.name: {} for s in vocab.symbols})

    def get(self, name: str, *args: Any) -> Any:
        return self.tables[name].get(args, self._defaults[name])

    def canonical(self) -> frozenset[tuple[str, tuple[int, ...], Any]]:
        """Entries that differ from their default: equal states have equal canonicals."""
        out: list[tuple[str, tuple[int, ...], Any]] = []
        for name, table in self.tables.items():
            default = self._defaults[name]
            out.extend((name, args, v) for args, v in table.items() if v != default)
        return frozenset(out)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, State) and self.canonical() == other.canonical()

    def __hash__(self) -> int:
        return hash(self.canonical())

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view: for each symbol, its non-default entries."""
        out: dict[str, Any] = {}
        for name, args, value in sorted(self.canonical(), key=repr):
            out.setdefault(name, []).append([list(args), value])
        return out

    def with_values(self, values: Mapping[str, Mapping[tuple[int, ...], Any]]) -> State:
        """A copy with some entries replaced (used to build test states)."""
        tables = dict(self.tables)
        for name, entries in values.items():
            self.vocab[name]
            tables[name] = {**tables[name], **entries}
        return State(self.vocab, self.universe, tables)


class ConcreteOps:
    """:class:`~mbmssec.model.dsl.Ops` on Python values."""

    def __init__(self, universe: Universe) -> None:
        self.universe = universe

    def and_(self, *xs: Any) -> bool:
        return all(xs)

    def or_(self, *xs: Any) -> bool:
        return any(xs)

    def not_(self, x: Any) -> bool:
        return not x

    def implies(self, a: Any, b: Any) -> bool:
        return (not a) or bool(b)

    def ite(self, c: Any, a: Any, b: Any) -> Any:
        return a if c else b

    def forall(self, sort: Sort, body: Callable[[Any], Any]) -> bool:
        return all(body(x) for x in self.universe.elements(sort))

    def exists(self, sort: Sort, body: Callable[[Any], Any]) -> bool:
        return any(body(x) for x in self.universe.elements(sort))

    def require(self, cond: Any) -> None:
        if not cond:
            raise Disabled


class ConcreteStep:
    """Reads from the pre-state, writes to a post-state overlay."""

    def __init__(self, pre: State, modifies: frozenset[str], action: str) -> None:
        self.pre = pre
        self.modifies = modifies
        self.action = action
        self.writes: dict[str, Table] = {}

    def get(self, name: str, *args: Any) -> Any:
        return self.pre.get(name, *args)

    def _table(self, name: str) -> Table:
        if name not in self.modifies:
            raise ModelError(
                f"action {self.action} writes {name!r} but does not list it in modifies"
            )
        table = self.writes.get(name)
        if table is None:
            table = dict(self.pre.tables[name])
            self.writes[name] = table
        return table

    def set(self, name: str, args: tuple[Any, ...], value: Any) -> None:
        self._table(name)[tuple(args)] = value

    def set_all(self, name: str, value: Callable[..., Any]) -> None:
        table = self._table(name)
        for args in self.pre.universe.tuples(self.pre.vocab[name].args):
            table[args] = value(*args)

    def commit(self) -> State:
        vocab = self.pre.vocab
        for name in vocab.monotone & self.writes.keys():
            table = self.writes[name]
            for args, value in table.items():
                if not value and self.pre.get(name, *args):
                    table[args] = True
        for rel, stamp in stamp_writes(vocab, list(self.writes), self.modifies, self.action):
            now = self.pre.get("ev")
            table = dict(self.pre.tables[stamp])
            for args, value in self.writes[rel].items():
                if value and not self.pre.get(rel, *args):
                    table[args] = now
            self.writes[stamp] = table
        tables = dict(self.pre.tables)
        tables.update(self.writes)
        return State(self.pre.vocab, self.pre.universe, tables)


def param_values(param: Param, universe: Universe) -> range | tuple[bool, ...]:
    """Every value a parameter can take in this universe."""
    if param.sort is Sort.BOOL:
        return (False, True)
    if param.sort is Sort.INT:
        return range(param.lo, param.search_hi + 1)
    return universe.elements(param.sort)


def step(action: Action, profile: Any, state: State, args: tuple[Any, ...]) -> State | None:
    """Apply ``action`` with ``args``: the successor state, or ``None`` if disabled."""
    ops = ConcreteOps(state.universe)
    st = ConcreteStep(state, action.modifies, action.name)
    try:
        action.run(ops, st, profile, *args)
    except Disabled:
        return None
    return st.commit()


def enabled_instances(
    action: Action, profile: Any, state: State
) -> Iterable[tuple[tuple[Any, ...], State]]:
    """Every argument tuple for which the action is enabled, with its successor."""
    domains = [param_values(p, state.universe) for p in action.params]
    for args in itertools.product(*domains):
        nxt = step(action, profile, state, args)
        if nxt is not None:
            yield args, nxt


def element_sorts() -> tuple[Sort, ...]:
    return ELEMENT_SORTS

"""The model's actions in the proposal language: a third reading of the modelling language.

The concrete reading runs an action on Python values and the Z3 reading on solver
terms; this one runs it on *expression trees* of :mod:`mbmssec.model.lang`.  Every read
of the state becomes a state name applied to its arguments, every operation of
:class:`~mbmssec.model.dsl.Ops` (and Python's arithmetic and comparisons) a node, every
``require`` a guard and every ``set``/``set_all`` an update.  Option tests are Python
``if``\\ s on the profile, so they are decided by the profile the model is read under.
The result prints as a delegate writes a proposal (``mbmssec model show``), and parses
back into an action that takes the same steps (checked by the tests with Z3).

Constants are folded on the way (``true and x`` is ``x``), so an option value that turns
a check off leaves no trace of it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from mbmssec.model import lang
from mbmssec.model.dsl import Action, ModelError, Sort, Vocabulary
from mbmssec.model.lang import App, Binary, Ite, Lit, Name, Node, Quant, Unary, Update

# -- terms that record what is done to them ------------------------------------------------


class Term:
    """An expression under construction.  Python's operators build nodes; using a term
    as a truth value is an error (an action never branches on the state)."""

    __slots__ = ("node",)

    def __init__(self, node: Node) -> None:
        self.node = node

    def __bool__(self) -> bool:
        raise ModelError(f"a model function branches on a state value ({lang.render(self.node)})")

    __hash__ = object.__hash__

    def _bin(self, op: str, other: Any, swap: bool = False) -> Term:
        a, b = node_of(self), node_of(other)
        return Term(_fold(Binary(op, b, a) if swap else Binary(op, a, b)))

    def __add__(self, o: Any) -> Term:
        return self._bin("+", o)

    def __radd__(self, o: Any) -> Term:
        return self._bin("+", o, True)

    def __sub__(self, o: Any) -> Term:
        return self._bin("-", o)

    def __rsub__(self, o: Any) -> Term:
        return self._bin("-", o, True)

    def __mul__(self, o: Any) -> Term:
        return self._bin("*", o)

    def __rmul__(self, o: Any) -> Term:
        return self._bin("*", o, True)

    def __mod__(self, o: Any) -> Term:
        return self._bin("mod", o)

    def __truediv__(self, o: Any) -> Term:
        return self._bin("div", o)

    def __floordiv__(self, o: Any) -> Term:
        return self._bin("div", o)

    def __neg__(self) -> Term:
        return Term(Unary("-", self.node))

    def __lt__(self, o: Any) -> Term:
        return self._bin("<", o)

    def __le__(self, o: Any) -> Term:
        return self._bin("<=", o)

    def __gt__(self, o: Any) -> Term:
        return self._bin(">", o)

    def __ge__(self, o: Any) -> Term:
        return self._bin(">=", o)

    def __eq__(self, o: object) -> Term:  # type: ignore[override]
        return self._bin("==", o)

    def __ne__(self, o: object) -> Term:  # type: ignore[override]
        return self._bin("!=", o)


def node_of(value: Any) -> Node:
    """A value an action computes, as an expression."""
    if isinstance(value, Term):
        return value.node
    if isinstance(value, bool | int):
        return Lit(value)
    raise ModelError(f"cannot print the value {value!r} in the proposal language")


def _lit(node: Node) -> bool | int | None:
    return node.value if isinstance(node, Lit) else None


def _fold(node: Node) -> Node:
    """Constant folding of one node whose operands are already folded."""
    if isinstance(node, Binary):
        a, b = _lit(node.left), _lit(node.right)
        if node.op == "and":
            if a is True:
                return node.right
            if b is True:
                return node.left
            if a is False or b is False:
                return Lit(False)
        if node.op == "or":
            if a is False:
                return node.right
            if b is False:
                return node.left
            if a is True or b is True:
                return Lit(True)
        if node.op == "implies":
            if a is True:
                return node.right
            if a is False or b is True:
                return Lit(True)
        if node.op == "==" and node.left == node.right:
            return Lit(True)
    if isinstance(node, Unary) and node.op == "not":
        a = _lit(node.arg)
        if isinstance(a, bool):
            return Lit(not a)
    if isinstance(node, Ite):
        c = _lit(node.cond)
        if isinstance(c, bool):
            return node.then if c else node.other
        if node.then == node.other:
            return node.then
    return node


# -- the recording reading -------------------------------------------------------------------


class _Names:
    """Variable names in use, so that a bound variable never captures another."""

    def __init__(self, taken: Iterable[str]) -> None:
        self.taken = set(taken)

    def fresh(self, wanted: str) -> str:
        name, n = wanted, 2
        while name in self.taken or name in lang.KEYWORDS:
            name, n = f"{wanted}{n}", n + 1
        self.taken.add(name)
        return name


_FALLBACK = {Sort.UE: "v", Sort.SVC: "r", Sort.TEK: "y", Sort.PKT: "q"}
_SORT_LETTER = {Sort.UE: "u", Sort.SVC: "s", Sort.TEK: "t", Sort.PKT: "p"}


def _param_names(fn: Callable[..., Any], count: int, sorts: tuple[Sort, ...]) -> list[str]:
    """The names a lambda gives its parameters (the model's own spelling), or one per sort."""
    try:
        names = [
            p.name
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ][:count]
    except (TypeError, ValueError):
        names = []
    if len(names) < count:
        names = [_FALLBACK[s] for s in sorts]
    return names


class RecordingOps:
    """:class:`~mbmssec.model.dsl.Ops` building expression trees; ``require`` records a
    guard."""

    def __init__(self, names: _Names) -> None:
        self.names = names
        self.guards: list[Node] = []

    def and_(self, *xs: Any) -> Any:
        return _chain("and", xs, True)

    def or_(self, *xs: Any) -> Any:
        return _chain("or", xs, False)

    def not_(self, x: Any) -> Any:
        n = node_of(x)
        if isinstance(n, Unary) and n.op == "not":
            return Term(n.arg)
        return _term(_fold(Unary("not", n)))

    def implies(self, a: Any, b: Any) -> Any:
        return _term(_fold(Binary("implies", node_of(a), node_of(b))))

    def ite(self, c: Any, a: Any, b: Any) -> Any:
        return _term(_fold(Ite(node_of(c), node_of(a), node_of(b))))

    def _quant(self, kind: str, sort: Sort, body: Callable[[Any], Any]) -> Any:
        (wanted,) = _param_names(body, 1, (sort,))
        if wanted == "x":  # the generic name of a helper (for_all): the sort's letter
            wanted = _SORT_LETTER.get(sort, wanted)
        name = self.names.fresh(wanted)
        inner = node_of(body(Term(Name(name))))
        self.names.taken.discard(name)
        if isinstance(inner, Lit):
            return _term(inner)
        if isinstance(inner, Quant) and inner.kind == kind:
            return Term(Quant(kind, ((name, sort), *inner.binders), inner.body))
        return Term(Quant(kind, ((name, sort),), inner))

    def forall(self, sort: Sort, body: Callable[[Any], Any]) -> Any:
        return self._quant("forall", sort, body)

    def exists(self, sort: Sort, body: Callable[[Any], Any]) -> Any:
        return self._quant("exists", sort, body)

    def require(self, cond: Any) -> None:
        n = node_of(cond)
        if n == Lit(True):
            return
        # a conjunction of guards reads better as several guards
        self.guards += _chain_parts(n, "and")


def _term(node: Node) -> Any:
    """A folded constant as the Python value the other readings would give."""
    if isinstance(node, Lit):
        return node.value
    return Term(node)


def _chain(op: str, xs: Iterable[Any], unit: bool) -> Any:
    parts = [p for x in xs for p in _chain_parts(node_of(x), op)]
    acc: Node = Lit(unit)
    for p in parts:
        acc = _fold(Binary(op, acc, p))
    return _term(acc)


def _chain_parts(node: Node, op: str) -> list[Node]:
    if isinstance(node, Binary) and node.op == op:
        return [*_chain_parts(node.left, op), *_chain_parts(node.right, op)]
    return [node]


class RecordingStep:
    """:class:`~mbmssec.model.dsl.Step` recording updates as :class:`~mbmssec.model.lang.Update`."""

    def __init__(
        self, vocab: Vocabulary, names: _Names, modifies: frozenset[str], action: str
    ) -> None:
        self.vocab = vocab
        self.names = names
        self.modifies = modifies
        self.action = action
        self.updates: list[Update] = []

    def get(self, name: str, *args: Any) -> Any:
        self.vocab[name]
        if not args:
            return Term(Name(name))
        return Term(App(name, tuple(node_of(a) for a in args)))

    def _check(self, name: str) -> None:
        if name not in self.modifies:
            raise ModelError(
                f"action {self.action} writes {name!r} but does not list it in modifies"
            )

    def set(self, name: str, args: tuple[Any, ...], value: Any) -> None:
        self._check(name)
        self.updates.append(Update((), name, tuple(node_of(a) for a in args), node_of(value)))

    def set_all(self, name: str, value: Callable[..., Any]) -> None:
        self._check(name)
        sym = self.vocab[name]
        wanted = _param_names(value, len(sym.args), sym.args)
        names = [self.names.fresh(w) for w in wanted]
        node = node_of(value(*(Term(Name(n)) for n in names)))
        for n in names:
            self.names.taken.discard(n)
        binders = tuple(zip(names, sym.args, strict=True))
        self.updates.append(_unmix(Update(binders, name, tuple(Name(n) for n in names), node)))


def _unmix(upd: Update) -> Update:
    """``forall v, t. x(v, t) := if v == u then E else x(v, t)`` (how an update of some
    entries is written to the modelling language) printed as ``forall t. x(u, t) := E``."""
    node = upd.value
    names = {b for b, _ in upd.binders}
    if not (isinstance(node, Ite) and node.other == App(upd.name, upd.args)):
        return upd
    fixed: dict[str, Node] = {}
    for part in _chain_parts(node.cond, "and"):
        if not (isinstance(part, Binary) and part.op == "=="):
            return upd
        left, right = part.left, part.right
        if isinstance(right, Name) and right.name in names:
            left, right = right, left
        if not (isinstance(left, Name) and left.name in names) or left.name in fixed:
            return upd
        if lang.free_names(right) & names:
            return upd
        fixed[left.name] = right
    if lang.free_names(node.then) & set(fixed):
        return upd
    args = tuple(fixed.get(a.name, a) if isinstance(a, Name) else a for a in upd.args)
    binders = tuple((b, s) for b, s in upd.binders if b not in fixed)
    return Update(binders, upd.name, args, node.then)


@dataclass(frozen=True)
class Shown:
    """An action read into the proposal language under one profile."""

    action: Action
    guards: tuple[Node, ...]
    updates: tuple[Update, ...]

    def lines(self, width: int = 96) -> list[str]:
        """The action as text: its head, what it means, its clauses, guards and updates."""
        act = self.action
        params = ", ".join(lang.render_param(p) for p in act.params)
        origin = f"  (from proposal {act.origin})" if act.origin else ""
        out = [f"action {act.name}({params}) by {act.actor}{origin}"]
        out += [f"  # {x}" for x in _wrap(" ".join(act.doc.split()), width - 4)]
        clauses = _wrap(", ".join(act.clauses), width - 13)
        out += [f"  # {'clauses:' if i == 0 else '':<8} {x}" for i, x in enumerate(clauses)]
        blocks = [("guard", lang.pretty(g, width - 10)) for g in self.guards]
        blocks += [("update", lang.pretty_update(u, width - 10)) for u in self.updates]
        for label, sub in blocks:
            out.append(f"  {label:<7} {sub[0]}")
            out += ["          " + x for x in sub[1:]]
        if not self.guards:
            out.append("  guard   true")
        return out


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width, break_on_hyphens=False) or [""]


def show(action: Action, profile: Any, vocab: Vocabulary) -> Shown:
    """Read ``action`` under ``profile`` into guards and updates of the proposal
    language."""
    names = _Names([p.name for p in action.params])
    ops = RecordingOps(names)
    st = RecordingStep(vocab, names, action.modifies, action.name)
    action.run(ops, st, profile, *(Term(Name(p.name)) for p in action.params))
    return Shown(action, tuple(ops.guards), tuple(st.updates))


def render_state(vocab: Vocabulary) -> list[str]:
    """The vocabulary as the language names it: each state name with its argument sorts,
    type, initial value and meaning."""
    out = []
    for sym in vocab.symbols:
        args = f"({', '.join(lang.sort_name(a) for a in sym.args)})" if sym.args else ""
        init = (
            ""
            if sym.initial is None
            else " = "
            + (
                ("true" if sym.initial else "false")
                if isinstance(sym.initial, bool)
                else str(sym.initial)
            )
        )
        tags = [sym.role] if sym.role != "design" else []
        if sym.origin:
            tags.append(f"from proposal {sym.origin}")
        tag = f" [{', '.join(tags)}]" if tags else ""
        out.append(f"{sym.name}{args} : {lang.sort_name(sym.result)}{init}{tag}")
        out.append(f"    {' '.join(sym.doc.split())}")
    return out


# -- properties ------------------------------------------------------------------------------


class _RecordingReader:
    """A property's view of a state whose reads become state names applied to their
    arguments (primed for the post-state of a step property)."""

    def __init__(self, vocab: Vocabulary, primed: bool) -> None:
        self.vocab = vocab
        self.primed = primed

    def get(self, name: str, *args: Any) -> Any:
        self.vocab[name]
        if not args:
            return Term(Name(name, self.primed))
        return Term(App(name, tuple(node_of(a) for a in args), self.primed))


def _plan_step(step: tuple[str, tuple[tuple[str, str | int], ...]]) -> str:
    action, roles = step
    return f"{action}({', '.join(str(v) for _, v in roles)})"


def show_property(prop: Any, vocab: Vocabulary, width: int = 88) -> list[str]:
    """A property's formal statement in the proposal language (``x'`` is ``x`` after the
    step): an invariant's formula; a step property's formula over the states before and
    after every step; for a response or liveness property, its premise and goal over a
    UE ``u`` and a service ``s``, with its plan or its fairness."""
    names = _Names(["u", "s"] if prop.kind in ("response", "liveness") else [])
    ops = RecordingOps(names)
    now = _RecordingReader(vocab, primed=False)
    if prop.kind == "invariant":
        return ["always:", *("  " + x for x in lang.pretty(node_of(prop.body(ops, now)), width))]
    if prop.kind == "step":
        after = _RecordingReader(vocab, primed=True)
        formula = node_of(prop.body(ops, now, after))
        return ["for every step:", *("  " + x for x in lang.pretty(formula, width))]
    u, s = Term(Name("u")), Term(Name("s"))
    premise = node_of(prop.premise(ops, now, u, s))
    goal = node_of(prop.goal(ops, now, u, s))
    out = ["for every u: UE, s: SVC, whenever:"]
    out += ["  " + x for x in lang.pretty(premise, width)]
    if prop.kind == "response":
        plan = " then ".join(_plan_step(p) for p in prop.plan)
        out.append(f"then the plan {plan} is enabled and ends with:")
    else:
        out.append("then, on every fair run, eventually:")
    out += ["  " + x for x in lang.pretty(goal, width)]
    return out


def show_invariant(
    body: Callable[..., Any], profile: Any, vocab: Vocabulary, width: int = 88
) -> list[str]:
    """A lemma's statement (``body(ops, state, profile)``) in the proposal language."""
    ops = RecordingOps(_Names([]))
    return lang.pretty(node_of(body(ops, _RecordingReader(vocab, primed=False), profile)), width)

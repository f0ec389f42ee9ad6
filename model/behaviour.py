"""Behaviour stated in a proposal file, checked and turned into the modelling language.

A proposal (``spec/proposals/*.toml``) may change what the model does, besides the
option values it sets.  Its tables, each checked against the vocabulary of
:mod:`mbmssec.model.vocabulary` (errors name the file, the field and the position):

* ``[[state]]``: a new state component (name, argument sorts, type, initial value);
* ``[[change]]``: for an existing action, guards to add, updates to add (applied after
  the action's own, so that where both write an entry the added one wins), updates that
  *replace* every write of the action to the symbols they name, or ``disable = true``;
* ``[[action]]``: a new action (parameters, actor, clauses, guards, updates);
* ``[[property]]``: a new property: an ``invariant`` or a ``step`` formula, a
  ``response`` (premise, goal, plan) or a ``liveness`` property (premise, goal, and
  optionally the proof certificate of :mod:`mbmssec.proofs.liveness`).

Guards and updates are written in the language of :mod:`mbmssec.model.lang`.  They are
read here into :class:`~mbmssec.model.dsl.Action` and
:class:`~mbmssec.model.properties.Property` objects whose bodies call the modelling
language's operations, so the concrete reading, the Z3 reading, the explanation of a
counterexample and the printing reading of :mod:`mbmssec.model.show` run them exactly as
they run the model's own actions.  :meth:`Behaviour.apply` makes the changed model;
:class:`~mbmssec.model.machine.Model` calls it for a profile that carries a behaviour.

The history rule of the model (:class:`~mbmssec.model.dsl.Symbol` ``role``) is checked
on the text: no guard, and no update of design or environment state, may read a history
symbol.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mbmssec.model import lang
from mbmssec.model.dsl import (
    ACTORS,
    ROLES,
    Action,
    Ops,
    Param,
    Reader,
    Sort,
    Step,
    Symbol,
    Vocabulary,
)
from mbmssec.model.lang import Node, Scope, Update
from mbmssec.model.properties import Property
from mbmssec.model.vocabulary import VOCABULARY
from mbmssec.spec.loader import SpecError

KINDS = ("invariant", "step", "response", "liveness")

SECTIONS = ("state", "change", "action", "property")
"""The proposal file's tables that state behaviour."""

_IDENT = re.compile(r"[a-z][a-z0-9_]*\Z")
_ACTION_NAME = re.compile(r"[A-Z][A-Za-z0-9]*\Z")


# -- what a proposal states ---------------------------------------------------------------


@dataclass(frozen=True)
class StateDecl:
    """A new state component."""

    name: str
    args: tuple[Sort, ...]
    result: Sort
    initial: bool | int | None
    doc: str
    role: str

    def symbol(self, origin: str) -> Symbol:
        return Symbol(
            self.name, self.args, self.result, self.doc, self.initial, False, self.role, origin
        )


@dataclass(frozen=True)
class Change:
    """Changes to an existing action."""

    action: str
    guards: tuple[Node, ...] = ()
    updates: tuple[Update, ...] = ()
    replace: tuple[Update, ...] = ()
    disable: bool = False


@dataclass(frozen=True)
class NewAction:
    """An action the proposal adds."""

    name: str
    params: tuple[Param, ...]
    actor: str
    clauses: tuple[str, ...]
    doc: str
    guards: tuple[Node, ...]
    updates: tuple[Update, ...]


Roles = tuple[tuple[str, str | int], ...]


@dataclass(frozen=True)
class NewProperty:
    """A property the proposal adds (numbered after the model's own)."""

    number: int
    name: str
    title: str
    kind: str
    clauses: tuple[str, ...]
    doc: str
    expect: str  # "holds" | "violated"
    formula: Node | None = None
    premise: Node | None = None
    goal: Node | None = None
    plan: tuple[tuple[str, Roles], ...] = ()
    pending: Node | None = None
    ready: Node | None = None
    enabler: tuple[str, Roles] | None = None
    helpful: tuple[str, Roles] | None = None


@dataclass(frozen=True)
class Behaviour:
    """Everything a proposal changes in the model's behaviour, checked.

    ``name`` is the proposal's name: every symbol, action and property the behaviour adds
    or changes carries it as its ``origin``.  ``data`` keeps the tables as the file wrote
    them (for the results document and the docs).
    """

    name: str
    states: tuple[StateDecl, ...] = ()
    changes: tuple[Change, ...] = ()
    actions: tuple[NewAction, ...] = ()
    properties: tuple[NewProperty, ...] = ()
    data: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def apply(
        self,
        vocab: Vocabulary,
        actions: tuple[Action, ...],
        properties: tuple[Property, ...],
    ) -> tuple[Vocabulary, tuple[Action, ...], tuple[Property, ...]]:
        """The model with this behaviour: the vocabulary extended, the actions changed
        and added, the properties added.  Applying it to its own result changes nothing."""
        if (
            any(s.origin == self.name for s in vocab.symbols)
            or any(a.origin == self.name for a in actions)
            or any(p.origin == self.name for p in properties)
        ):
            return vocab, actions, properties
        new_vocab = Vocabulary((*vocab.symbols, *(s.symbol(self.name) for s in self.states)))
        by_name = {c.action: c for c in self.changes}
        out: list[Action] = []
        for act in actions:
            change = by_name.get(act.name)
            out.append(act if change is None else _changed(act, change, self.name))
        out += [_new_action(a, self.name) for a in self.actions]
        props = (*properties, *(_property(p, self.name) for p in self.properties))
        return new_vocab, tuple(out), props

    def render(self) -> str:
        """The behaviour as text in the proposal language (for the docs and the terminal)."""
        lines: list[str] = []
        for s in self.states:
            args = f"({', '.join(lang.sort_name(a) for a in s.args)})" if s.args else ""
            init = "" if s.initial is None else f" = {_literal(s.initial)}"
            role = "" if s.role == "design" else f" [{s.role}]"
            lines.append(f"state {s.name}{args} : {lang.sort_name(s.result)}{init}{role}")
        for c in self.changes:
            lines.append(f"change {c.action}" + (": disabled" if c.disable else ""))
            lines += _block("guard", c.guards, lang.pretty)
            lines += _block("update", c.updates, lang.pretty_update)
            lines += _block("replace", c.replace, lang.pretty_update)
        for a in self.actions:
            params = ", ".join(lang.render_param(p) for p in a.params)
            lines.append(f"action {a.name}({params}) by {a.actor}")
            lines += _block("guard", a.guards, lang.pretty)
            lines += _block("update", a.updates, lang.pretty_update)
        for p in self.properties:
            lines.append(f"property P{p.number} {p.name} ({p.kind}; expected to {_verb(p)})")
            for label, node in (
                ("formula", p.formula),
                ("premise", p.premise),
                ("goal", p.goal),
                ("pending", p.pending),
                ("ready", p.ready),
            ):
                if node is not None:
                    lines += _block(label, (node,), lang.pretty)
            if p.plan:
                lines.append("  plan    " + ", ".join(_plan_text(s) for s in p.plan))
        return "\n".join(lines)


def _verb(p: NewProperty) -> str:
    return "hold" if p.expect == "holds" else "be violated"


def _plan_text(step: tuple[str, Roles]) -> str:
    return f"{step[0]}({', '.join(str(v) for _k, v in step[1])})"


def _literal(value: bool | int) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _block(label: str, items: Sequence[Any], fmt: Callable[..., list[str]]) -> list[str]:
    out: list[str] = []
    for item in items:
        sub = fmt(item, 76)
        out.append(f"  {label:<7} {sub[0]}")
        out += ["          " + x for x in sub[1:]]
    return out


# -- reading it into the modelling language -----------------------------------------------


class _Writes:
    """One step's writes, forwarded to the reading's :class:`~mbmssec.model.dsl.Step`,
    with the current value of every symbol written so far (so that a later update that
    names only some entries keeps the others as earlier writes left them).  Writes of the
    action's own body to a symbol in ``drop`` (replaced by the proposal) are left out."""

    def __init__(self, st: Step, ops: Ops, drop: frozenset[str] = frozenset()) -> None:
        self.st = st
        self.ops = ops
        self.drop = drop
        self.current: dict[str, Callable[..., Any]] = {}

    # the Step protocol, for the action's own body
    def get(self, name: str, *args: Any) -> Any:
        return self.st.get(name, *args)

    def set(self, name: str, args: tuple[Any, ...], value: Any) -> None:
        if name not in self.drop:
            self.write_point(name, tuple(args), value)

    def set_all(self, name: str, value: Callable[..., Any]) -> None:
        if name not in self.drop:
            self.write_all(name, value)

    # the proposal's writes
    def now(self, name: str) -> Callable[..., Any]:
        """The symbol's value after the writes so far, as a function of its arguments."""
        fn = self.current.get(name)
        if fn is not None:
            return fn
        return lambda *xs: self.st.get(name, *xs)

    def write_point(self, name: str, args: tuple[Any, ...], value: Any) -> None:
        self.st.set(name, args, value)
        if not args:
            self.current[name] = lambda: value
            return
        old = self.now(name)
        ops = self.ops

        def fn(*xs: Any) -> Any:
            hit = ops.and_(*(x == a for x, a in zip(xs, args, strict=True)))
            return ops.ite(hit, value, old(*xs))

        self.current[name] = fn

    def write_all(self, name: str, value: Callable[..., Any]) -> None:
        self.st.set_all(name, value)
        self.current[name] = value


def _apply_update(w: _Writes, upd: Update, ops: Ops, env: Mapping[str, Any]) -> None:
    if not upd.binders:
        args = tuple(lang.evaluate(a, ops, w, env) for a in upd.args)
        w.write_point(upd.name, args, lang.evaluate(upd.value, ops, w, env))
        return
    positions = upd.bound_positions()
    fixed = [(i, a) for i, a in enumerate(upd.args) if i not in positions.values()]
    old = w.now(upd.name)

    def value(*xs: Any) -> Any:
        inner = {**env, **{b: xs[i] for b, i in positions.items()}}
        v = lang.evaluate(upd.value, ops, w, inner)
        if not fixed:
            return v
        hit = ops.and_(*(xs[i] == lang.evaluate(a, ops, w, inner) for i, a in fixed))
        return ops.ite(hit, v, old(*xs))

    # the binders' names, for a reading that prints the update (mbmssec.model.show)
    by_position = {i: b for b, i in positions.items()}
    names = [by_position.get(i, f"x{i}") for i in range(len(upd.args))]
    value.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names]
    )
    w.write_all(upd.name, value)


def _changed(act: Action, change: Change, origin: str) -> Action:
    if change.disable:
        return dataclasses.replace(act, applies=lambda _p: False, origin=origin)
    drop = frozenset(u.name for u in change.replace)
    own = act.body
    names = [p.name for p in act.params]
    guards, updates = change.guards, (*change.replace, *change.updates)

    def body(ops: Ops, st: Step, prof: Any, *args: Any) -> None:
        env = dict(zip(names, args, strict=True))
        for g in guards:
            ops.require(lang.evaluate(g, ops, st, env))
        w = _Writes(st, ops, drop)
        own(ops, w, prof, *args)
        for upd in updates:
            _apply_update(w, upd, ops, env)

    return dataclasses.replace(
        act,
        body=body,
        modifies=VOCABULARY.with_stamps(act.modifies | {u.name for u in updates}),
        origin=origin,
    )


def _new_action(new: NewAction, origin: str) -> Action:
    names = [p.name for p in new.params]

    def body(ops: Ops, st: Step, prof: Any, *args: Any) -> None:
        env = dict(zip(names, args, strict=True))
        for g in new.guards:
            ops.require(lang.evaluate(g, ops, st, env))
        w = _Writes(st, ops)
        for upd in new.updates:
            _apply_update(w, upd, ops, env)

    body.__name__ = new.name
    return Action(
        name=new.name,
        params=new.params,
        modifies=VOCABULARY.with_stamps(frozenset(u.name for u in new.updates)),
        clauses=new.clauses,
        actor=new.actor,
        doc=new.doc,
        body=body,
        origin=origin,
    )


def _property(p: NewProperty, origin: str) -> Property:
    def state_fn(node: Node | None) -> Callable[..., Any] | None:
        if node is None:
            return None
        return lambda ops, st, u, s: lang.evaluate(node, ops, st, {"u": u, "s": s})

    body: Callable[..., Any] | None = None
    formula = p.formula
    if p.kind == "invariant" and formula is not None:

        def invariant(ops: Ops, st: Reader) -> Any:
            return lang.evaluate(formula, ops, st, {})

        body = invariant
    elif p.kind == "step" and formula is not None:

        def step(ops: Ops, pre: Reader, post: Reader) -> Any:
            return lang.evaluate(formula, ops, pre, {}, post)

        body = step
    return Property(
        number=p.number,
        name=p.name,
        title=p.title,
        clauses=p.clauses,
        doc=p.doc,
        kind=p.kind,
        body=body,
        premise=state_fn(p.premise),
        goal=state_fn(p.goal),
        plan=p.plan,
        holds_in_baseline=p.expect == "holds",
        pending=state_fn(p.pending),
        ready=state_fn(p.ready),
        enabler=p.enabler,
        helpful=p.helpful,
        origin=origin,
    )


# -- loading from a proposal file ---------------------------------------------------------


class _Loader:
    """Reads the behaviour tables of one proposal file against the model."""

    def __init__(
        self,
        source: str,
        name: str,
        vocab: Vocabulary,
        actions: Sequence[Action],
        properties: Sequence[Property],
        clause_ids: frozenset[str],
    ) -> None:
        self.source = source
        self.name = name
        self.vocab = vocab
        self.actions = {a.name: a for a in actions}
        self.signatures = {a.name: a.params for a in actions}
        self.properties = properties
        self.clause_ids = clause_ids
        self.param_names = {p.name for a in actions for p in a.params} | {"u", "s"}

    def fail(self, where: str, problem: str) -> SpecError:
        return SpecError(self.source, where, problem)

    # field access

    def table_list(self, data: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
        items = data.get(key, [])
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise self.fail(key, f"expected an array of tables ([[{key}]])")
        return items

    def only(self, item: Mapping[str, Any], where: str, allowed: Sequence[str]) -> None:
        extra = sorted(set(item) - set(allowed))
        if extra:
            raise self.fail(f"{where}.{extra[0]}", f"unknown field (allowed: {', '.join(allowed)})")

    def text(
        self, item: Mapping[str, Any], key: str, where: str, default: str | None = None
    ) -> str:
        value = item.get(key, default)
        if value is None:
            raise self.fail(where, f"missing field {key!r}")
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{where}.{key}", "expected a non-empty string")
        return value

    def texts(self, item: Mapping[str, Any], key: str, where: str) -> list[str]:
        value = item.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(f"{where}.{key}", "expected a list of strings")
        return value

    def clauses(self, item: Mapping[str, Any], where: str, required: bool) -> tuple[str, ...]:
        ids = self.texts(item, "clauses", where)
        if required and not ids:
            raise self.fail(f"{where}.clauses", "expected the clause ids it encodes")
        for i, cid in enumerate(ids):
            if cid not in self.clause_ids:
                raise self.fail(f"{where}.clauses[{i}]", f"unknown clause id {cid!r}")
        return tuple(ids)

    def ident(
        self, item: Mapping[str, Any], where: str, pattern: re.Pattern[str], what: str
    ) -> str:
        name = self.text(item, "name", where)
        if not pattern.match(name) or name in lang.KEYWORDS or name in lang.SORTS:
            raise self.fail(f"{where}.name", f"{name!r} is not a valid {what}")
        return name

    def scope(self, text: str, where: str, variables: Mapping[str, Sort], **kw: Any) -> Scope:
        return Scope(self.vocab, dict(variables), text, self.source, where, **kw)

    # the tables

    def states(self, data: Mapping[str, Any]) -> list[StateDecl]:
        out: list[StateDecl] = []
        for n, item in enumerate(self.table_list(data, "state")):
            where = f"state[{n}]"
            self.only(item, where, ("name", "sorts", "type", "initial", "doc", "role"))
            name = self.ident(item, where, _IDENT, "state name (lower case, digits, '_')")
            where = f"state.{name}"
            if name in self.vocab.names():
                raise self.fail(f"{where}.name", "the model already has a state of this name")
            if name in self.param_names:
                raise self.fail(
                    f"{where}.name", "the name of an action parameter; choose another name"
                )
            sorts = self.texts(item, "sorts", where)
            args: list[Sort] = []
            for i, s in enumerate(sorts):
                if s not in lang.ELEMENT_SORT_NAMES:
                    raise self.fail(
                        f"{where}.sorts[{i}]",
                        f"unknown sort {s!r} (one of {', '.join(lang.ELEMENT_SORT_NAMES)})",
                    )
                args.append(lang.SORTS[s])
            kind = self.text(item, "type", where)
            if kind not in lang.SORTS:
                raise self.fail(
                    f"{where}.type", f"unknown type {kind!r} (one of {', '.join(lang.SORTS)})"
                )
            result = lang.SORTS[kind]
            initial = item.get("initial")
            if result is Sort.BOOL:
                initial = False if initial is None else initial
                if not isinstance(initial, bool):
                    raise self.fail(f"{where}.initial", "a Bool state starts true or false")
            elif result is Sort.INT:
                initial = 0 if initial is None else initial
                if not isinstance(initial, int) or isinstance(initial, bool):
                    raise self.fail(f"{where}.initial", "an Int state starts at an integer")
            elif initial is not None:
                raise self.fail(
                    f"{where}.initial",
                    f"a state holding a {kind} starts unconstrained: leave 'initial' out",
                )
            role = item.get("role", "design")
            if role not in ROLES:
                raise self.fail(
                    f"{where}.role", f"unknown role {role!r} (one of {', '.join(ROLES)})"
                )
            decl = StateDecl(
                name, tuple(args), result, initial, self.text(item, "doc", where), role
            )
            self.vocab = Vocabulary((*self.vocab.symbols, decl.symbol(self.name)))
            out.append(decl)
        return out

    def guards(
        self, item: Mapping[str, Any], where: str, params: Mapping[str, Sort]
    ) -> tuple[Node, ...]:
        out: list[Node] = []
        for i, text in enumerate(self.texts(item, "guards", where)):
            at = f"{where}.guards[{i}]"
            node = lang.parse_expr(text, self.source, at)
            scope = self.scope(text, at, params, no_history="a guard")
            if lang.check_expr(node, scope) is not Sort.BOOL:
                raise scope.error(0, "a guard must be Bool")
            out.append(node)
        return tuple(out)

    def updates(
        self,
        item: Mapping[str, Any],
        key: str,
        where: str,
        params: Mapping[str, Sort],
        writable: Callable[[str], str | None],
    ) -> tuple[Update, ...]:
        out: list[Update] = []
        for i, text in enumerate(self.texts(item, key, where)):
            at = f"{where}.{key}[{i}]"
            upd = lang.parse_update(text, self.source, at)
            target = self.vocab.names()
            history = upd.name in target and self.vocab[upd.name].role == "history"
            scope = self.scope(
                text, at, params, no_history=None if history else "an update of design state"
            )
            out.append(lang.check_update(upd, scope, writable))
        return tuple(out)

    def changes(self, data: Mapping[str, Any]) -> list[Change]:
        out: list[Change] = []
        seen: set[str] = set()
        for n, item in enumerate(self.table_list(data, "change")):
            where = f"change[{n}]"
            self.only(item, where, ("action", "guards", "updates", "replace", "disable"))
            name = self.text(item, "action", where)
            if name not in self.actions:
                raise self.fail(
                    f"{where}.action",
                    f"unknown action {name!r} (the model's: {', '.join(self.actions)})",
                )
            if name in seen:
                raise self.fail(f"{where}.action", f"{name} is changed twice; merge the tables")
            seen.add(name)
            act = self.actions[name]
            where = f"change.{name}"
            params = {p.name: p.sort for p in act.params}
            disable = item.get("disable", False)
            if not isinstance(disable, bool):
                raise self.fail(f"{where}.disable", "expected true or false")
            if disable and any(k in item for k in ("guards", "updates", "replace")):
                raise self.fail(f"{where}.disable", "a disabled action takes no guards or updates")

            def writes_own(sym: str, act: Action = act) -> str | None:
                if sym in act.modifies:
                    return None
                return (
                    f"{act.name} does not update {sym}; add an update with 'updates' instead "
                    f"(it updates {', '.join(sorted(act.modifies))})"
                )

            replace = self.updates(item, "replace", where, params, writes_own)
            change = Change(
                action=name,
                guards=self.guards(item, where, params),
                updates=self.updates(item, "updates", where, params, lambda _s: None),
                replace=replace,
                disable=disable,
            )
            if not (change.disable or change.guards or change.updates or change.replace):
                raise self.fail(where, "changes nothing: give guards, updates, replace or disable")
            out.append(change)
        return out

    def new_actions(self, data: Mapping[str, Any]) -> list[NewAction]:
        out: list[NewAction] = []
        for n, item in enumerate(self.table_list(data, "action")):
            where = f"action[{n}]"
            self.only(
                item, where, ("name", "params", "actor", "clauses", "doc", "guards", "updates")
            )
            name = self.ident(item, where, _ACTION_NAME, "action name (CamelCase)")
            where = f"action.{name}"
            if name in self.actions:
                raise self.fail(f"{where}.name", "the model already has an action of this name")
            params: list[Param] = []
            for i, text in enumerate(self.texts(item, "params", where)):
                at = f"{where}.params[{i}]"
                param = lang.parse_param(text, self.source, at)
                if param.name in self.vocab.names():
                    raise lang.LangError(
                        self.source, at, text, 0, f"parameter {param.name!r} hides a state name"
                    )
                if param.name in {p.name for p in params}:
                    raise lang.LangError(
                        self.source, at, text, 0, f"{param.name} is declared twice"
                    )
                params.append(param)
            actor = self.text(item, "actor", where)
            if actor not in ACTORS:
                raise self.fail(
                    f"{where}.actor", f"unknown actor {actor!r} (one of {', '.join(ACTORS)})"
                )
            env = {p.name: p.sort for p in params}
            new = NewAction(
                name=name,
                params=tuple(params),
                actor=actor,
                clauses=self.clauses(item, where, required=True),
                doc=self.text(item, "doc", where),
                guards=self.guards(item, where, env),
                updates=self.updates(item, "updates", where, env, lambda _s: None),
            )
            if not new.updates:
                raise self.fail(f"{where}.updates", "an action must update some state")
            self.signatures[name] = new.params
            out.append(new)
        return out

    def plan_step(self, text: str, at: str) -> tuple[str, Roles]:
        step = lang.parse_plan_step(text, self.source, at)
        params = self.signatures.get(step.action)
        if params is None:
            raise lang.LangError(
                self.source,
                at,
                text,
                step.pos,
                f"unknown action {step.action!r}{lang.suggest(step.action, list(self.signatures))}",
            )
        if len(step.args) != len(params):
            sig = ", ".join(lang.render_param(p) for p in params)
            raise lang.LangError(
                self.source,
                at,
                text,
                step.pos,
                f"{step.action} takes {len(params)} argument(s): {sig}",
            )
        roles: list[tuple[str, str | int]] = []
        for p, a in zip(params, step.args, strict=True):
            want = {"u": Sort.UE, "s": Sort.SVC}.get(a) if isinstance(a, str) else Sort.INT
            if want is not p.sort:
                raise lang.LangError(
                    self.source,
                    at,
                    text,
                    0,
                    f"parameter {p.name} of {step.action} is {lang.sort_name(p.sort)}, not {a!r}",
                )
            if isinstance(a, int) and (a < p.lo or (p.hi is not None and a > p.hi)):
                raise lang.LangError(
                    self.source, at, text, 0, f"{a} is outside {lang.render_param(p)}"
                )
            roles.append((p.name, a))
        return step.action, tuple(roles)

    def formula(
        self,
        item: Mapping[str, Any],
        key: str,
        where: str,
        variables: Mapping[str, Sort],
        primes: bool,
    ) -> Node | None:
        """A property's formula (``key``: formula, premise, goal, ...), checked as Bool."""
        if key not in item:
            return None
        at = f"{where}.{key}"
        text = self.text(item, key, where)
        node = lang.parse_expr(text, self.source, at)
        scope = self.scope(text, at, variables, primes=primes)
        if lang.check_expr(node, scope) is not Sort.BOOL:
            raise scope.error(0, f"the {key} must be Bool")
        return node

    def properties_(self, data: Mapping[str, Any]) -> list[NewProperty]:
        out: list[NewProperty] = []
        number = max((p.number for p in self.properties), default=0)
        names = {p.name for p in self.properties}
        fields = (
            "name",
            "title",
            "kind",
            "clauses",
            "doc",
            "expect",
            "formula",
            "premise",
            "goal",
            "plan",
            "pending",
            "ready",
            "enabler",
            "helpful",
        )
        for n, item in enumerate(self.table_list(data, "property")):
            where = f"property[{n}]"
            self.only(item, where, fields)
            name = self.ident(item, where, _IDENT, "property name (lower case, digits, '_')")
            where = f"property.{name}"
            if name in names:
                raise self.fail(f"{where}.name", "a property of this name exists")
            names.add(name)
            kind = self.text(item, "kind", where)
            if kind not in KINDS:
                raise self.fail(
                    f"{where}.kind", f"unknown kind {kind!r} (one of {', '.join(KINDS)})"
                )
            expect = self.text(item, "expect", where)
            if expect not in ("holds", "violated"):
                raise self.fail(f"{where}.expect", "expected 'holds' or 'violated'")
            wanted = {
                "invariant": {"formula"},
                "step": {"formula"},
                "response": {"premise", "goal", "plan"},
                "liveness": {"premise", "goal"},
            }[kind]
            optional = {"pending", "ready", "enabler", "helpful"} if kind == "liveness" else set()
            given = {k for k in ("formula", "premise", "goal", "plan", *optional) if k in item}
            missing = sorted(wanted - given)
            if missing:
                raise self.fail(where, f"a {kind} property needs {missing[0]!r}")
            stray = sorted(
                k
                for k in (
                    "formula",
                    "premise",
                    "goal",
                    "plan",
                    "pending",
                    "ready",
                    "enabler",
                    "helpful",
                )
                if k in item and k not in wanted | optional
            )
            if stray:
                raise self.fail(f"{where}.{stray[0]}", f"a {kind} property has no {stray[0]!r}")
            if kind == "liveness" and optional & given and optional - given:
                raise self.fail(
                    where,
                    "a proof certificate needs all of pending, ready, enabler and helpful "
                    f"(missing {sorted(optional - given)[0]!r})",
                )
            us = {"u": Sort.UE, "s": Sort.SVC}

            def formula(
                key: str,
                variables: Mapping[str, Sort],
                primes: bool = False,
                item: Mapping[str, Any] = item,
                where: str = where,
            ) -> Node | None:
                return self.formula(item, key, where, variables, primes)

            plan: tuple[tuple[str, Roles], ...] = ()
            if "plan" in item:
                steps = self.texts(item, "plan", where)
                if not steps:
                    raise self.fail(f"{where}.plan", "expected at least one step")
                plan = tuple(self.plan_step(t, f"{where}.plan[{i}]") for i, t in enumerate(steps))
            number += 1
            out.append(
                NewProperty(
                    number=number,
                    name=name,
                    title=self.text(item, "title", where),
                    kind=kind,
                    clauses=self.clauses(item, where, required=False),
                    doc=self.text(item, "doc", where),
                    expect=expect,
                    formula=formula("formula", {}, primes=kind == "step"),
                    premise=formula("premise", us),
                    goal=formula("goal", us),
                    plan=plan,
                    pending=formula("pending", us),
                    ready=formula("ready", us),
                    enabler=(
                        self.plan_step(self.text(item, "enabler", where), f"{where}.enabler")
                        if "enabler" in item
                        else None
                    ),
                    helpful=(
                        self.plan_step(self.text(item, "helpful", where), f"{where}.helpful")
                        if "helpful" in item
                        else None
                    ),
                )
            )
        return out


def load_behaviour(
    data: Mapping[str, Any],
    source: str,
    name: str,
    *,
    vocab: Vocabulary,
    actions: Sequence[Action],
    properties: Sequence[Property],
    clause_ids: frozenset[str],
) -> Behaviour | None:
    """The behaviour a proposal file's tables state (``None`` when it states none),
    checked against the model given; errors name the file and the field, and for an
    expression the position in it (:class:`~mbmssec.model.lang.LangError`)."""
    if not any(k in data for k in SECTIONS):
        return None
    loader = _Loader(source, name, vocab, actions, properties, clause_ids)
    states = loader.states(data)
    changes = loader.changes(data)
    new_actions = loader.new_actions(data)
    props = loader.properties_(data)
    raw = {k: data[k] for k in SECTIONS if k in data}
    return Behaviour(name, tuple(states), tuple(changes), tuple(new_actions), tuple(props), raw)


def state_symbols(data: Mapping[str, Any], source: str, origin: str) -> tuple[Symbol, ...]:
    """The symbols a behaviour's ``state`` tables declare (as a results document stores
    them), for reading its traces back."""
    loader = _Loader(source, origin, VOCABULARY, (), (), frozenset())
    return tuple(d.symbol(origin) for d in loader.states(data))

"""The proposal language: expressions over the model's vocabulary, as text.

A proposal states new behaviour (guards, updates, properties) in this small language;
:mod:`mbmssec.model.behaviour` checks it against the vocabulary and turns it into calls of
the modelling language (:mod:`mbmssec.model.dsl`), so that every reading of the model
(concrete, Z3, explanation) runs it unchanged.  :mod:`mbmssec.model.show` prints the
model's own actions in the same language.

Syntax (lowest precedence first; ``spec/proposals/README.md`` documents it for readers)::

    expr    := "forall" binder ("," binder)* "." expr
             | "exists" binder ("," binder)* "." expr
             | "if" expr "then" expr "else" expr
             | or ["implies" expr]                      (right-associative)
    or      := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | cmp
    cmp     := sum [("==" | "!=" | "<" | "<=" | ">" | ">=") sum]
    sum     := product (("+" | "-") product)*
    product := unary (("*" | "div" | "mod") unary)*
    unary   := "-" unary | atom
    atom    := INT | "true" | "false" | "(" expr ")" | NAME ["'"] ["(" expr ("," expr)* ")"]
             | a quantifier or "if" (extending as far right as possible)
    binder  := NAME ":" SORT                             SORT: UE, SVC, TEK, PKT
    update  := ["forall" NAME [":" SORT] ("," ...)* "."] NAME ["(" expr ("," expr)* ")"] ":=" expr
    param   := NAME ":" SORT [INT ".." [INT]]            (a range only for Int)

A name is a parameter, a bound variable or a state symbol (``holds(u, t)``, ``clock``);
``holds'(u, t)`` reads the state after the step (step properties only).  Every
expression reads the state before the action.  ``*`` needs a constant on one side and
``div``/``mod`` a positive constant on the right, so that arithmetic stays linear.

Nothing here evaluates text as Python: the parser is a recursive descent over tokens.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mbmssec.model.dsl import ELEMENT_SORTS, ModelError, Ops, Param, Reader, Sort, Vocabulary
from mbmssec.spec.loader import SpecError

KEYWORDS = frozenset(
    {
        "and",
        "or",
        "not",
        "implies",
        "if",
        "then",
        "else",
        "forall",
        "exists",
        "true",
        "false",
        "div",
        "mod",
    }
)

#: The sorts by the names the language writes them (the sorts' own values).
SORTS: Mapping[str, Sort] = {s.value: s for s in Sort}

ELEMENT_SORT_NAMES = tuple(s.value for s in ELEMENT_SORTS)

#: A parameter ``f: Int 1..`` (no upper bound) is tried up to this value by the finite
#: searches (exploration, enumeration of enabled instances): the model's fetch window.
DEFAULT_SEARCH_HI = 3


def sort_name(sort: Sort) -> str:
    """The sort as the language writes it."""
    return sort.value


class LangError(SpecError):
    """An expression that does not parse or does not fit the vocabulary.  The message
    names the file, the field and the position in the field's text, and shows the line
    with a caret under the position."""

    def __init__(self, source: str, where: str, text: str, pos: int, problem: str) -> None:
        pos = max(0, min(pos, len(text)))
        line_no = text.count("\n", 0, pos) + 1
        start = text.rfind("\n", 0, pos) + 1
        end = text.find("\n", pos)
        line = text[start : end if end >= 0 else len(text)]
        column = pos - start + 1
        at = f"line {line_no}, column {column}" if "\n" in text else f"column {column}"
        super().__init__(source, where, f"{at}: {problem}\n    {line}\n    {' ' * (column - 1)}^")
        self.position = pos
        self.line = line_no
        self.column = column
        self.text = text
        self.message = problem

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.source, self.where, self.text, self.position, self.message))


# -- the syntax tree ------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """An expression; ``pos`` is its offset in the text it was parsed from (-1 when it
    was built by a program, e.g. the printing reading of the model)."""


@dataclass(frozen=True)
class Lit(Node):
    value: bool | int
    pos: int = field(default=-1, compare=False)


@dataclass(frozen=True)
class Name(Node):
    """A parameter, a bound variable, or a state symbol without arguments."""

    name: str
    primed: bool = False
    pos: int = field(default=-1, compare=False)


@dataclass(frozen=True)
class App(Node):
    """A state symbol applied to arguments (``primed``: read after the step)."""

    name: str
    args: tuple[Node, ...]
    primed: bool = False
    pos: int = field(default=-1, compare=False)


@dataclass(frozen=True)
class Unary(Node):
    op: str  # "not" | "-"
    arg: Node
    pos: int = field(default=-1, compare=False)


@dataclass(frozen=True)
class Binary(Node):
    op: str
    left: Node
    right: Node
    pos: int = field(default=-1, compare=False)


@dataclass(frozen=True)
class Ite(Node):
    cond: Node
    then: Node
    other: Node
    pos: int = field(default=-1, compare=False)


@dataclass(frozen=True)
class Quant(Node):
    kind: str  # "forall" | "exists"
    binders: tuple[tuple[str, Sort], ...]
    body: Node
    pos: int = field(default=-1, compare=False)


@dataclass(frozen=True)
class Update:
    """``[forall x, y.] name(args) := value``: the binders range over the positions of
    the symbol's arguments they stand in; every other argument is an expression."""

    binders: tuple[tuple[str, Sort | None], ...]
    name: str
    args: tuple[Node, ...]
    value: Node
    pos: int = field(default=-1, compare=False)

    def bound_positions(self) -> dict[str, int]:
        """For each binder, the argument position it stands in (checked by
        :func:`check_update`)."""
        out: dict[str, int] = {}
        for i, a in enumerate(self.args):
            if isinstance(a, Name) and a.name in {b for b, _ in self.binders}:
                out[a.name] = i
        return out


@dataclass(frozen=True)
class PlanStep:
    """One step of a response property's plan: ``Register(u, s, 1)``."""

    action: str
    args: tuple[str | int, ...]
    pos: int = field(default=-1, compare=False)


# -- tokens --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # "int" | "name" | "op" | "end"
    text: str
    pos: int


_TOKEN = re.compile(
    r"(?P<space>\s+)|(?P<int>[0-9]+)|(?P<name>[A-Za-z_][A-Za-z0-9_]*'?)"
    r"|(?P<op>:=|==|!=|<=|>=|\.\.|[<>+\-*(),.:=])"
)


class _Source:
    """The text being read and where it comes from, for errors."""

    def __init__(self, text: str, source: str, where: str) -> None:
        self.text = text
        self.source = source
        self.where = where

    def error(self, pos: int, problem: str) -> LangError:
        return LangError(self.source, self.where, self.text, pos, problem)


def tokenize(src: _Source) -> list[Token]:
    out: list[Token] = []
    pos = 0
    text = src.text
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise src.error(pos, f"unexpected character {text[pos]!r}")
        kind = m.lastgroup or ""
        if kind != "space":
            if kind == "op" and m.group() == "=":
                raise src.error(pos, "'=' alone: write == to compare (and := in an update)")
            out.append(Token(kind, m.group(), pos))
        pos = m.end()
    out.append(Token("end", "", len(text)))
    return out


# -- parsing -------------------------------------------------------------------------------

_COMPARE = ("==", "!=", "<", "<=", ">", ">=")


class _Parser:
    def __init__(self, src: _Source) -> None:
        self.src = src
        self.tokens = tokenize(src)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def at(self, *texts: str) -> bool:
        t = self.tok
        return t.kind in ("op", "name") and t.text in texts

    def take(self) -> Token:
        t = self.tok
        self.i += 1
        return t

    def describe(self, t: Token) -> str:
        return "the end of the text" if t.kind == "end" else repr(t.text)

    def expect(self, text: str, what: str = "") -> Token:
        if not self.at(text):
            raise self.src.error(
                self.tok.pos, f"expected {what or repr(text)}, found {self.describe(self.tok)}"
            )
        return self.take()

    def done(self) -> None:
        if self.tok.kind != "end":
            hint = ""
            if self.tok.text == "'" or self.tok.text.endswith("'"):
                hint = " (a prime follows a state name directly: holds'(u, t))"
            raise self.src.error(
                self.tok.pos, f"unexpected {self.describe(self.tok)} after the expression{hint}"
            )

    # expressions

    def expr(self) -> Node:
        if self.at("forall", "exists"):
            return self.quant()
        if self.at("if"):
            start = self.take().pos
            cond = self.expr()
            self.expect("then", "'then'")
            then = self.expr()
            self.expect("else", "'else' (every 'if' has one)")
            return Ite(cond, then, self.expr(), start)
        left = self.or_()
        if self.at("implies"):
            pos = self.take().pos
            return Binary("implies", left, self.expr(), pos)
        return left

    def quant(self) -> Quant:
        tok = self.take()
        binders: list[tuple[str, Sort]] = []
        while True:
            name = self.binder_name()
            self.expect(":", f"':' and the sort of {name} (one of {', '.join(ELEMENT_SORT_NAMES)})")
            binders.append((name, self.element_sort()))
            if not self.at(","):
                break
            self.take()
        self.expect(".", "'.' before the body of the quantifier")
        return Quant(tok.text, tuple(binders), self.expr(), tok.pos)

    def binder_name(self) -> str:
        t = self.tok
        if t.kind != "name" or t.text in KEYWORDS or t.text.endswith("'"):
            raise self.src.error(t.pos, f"expected a variable name, found {self.describe(t)}")
        if t.text in SORTS:
            raise self.src.error(t.pos, f"{t.text} is a sort, not a variable name")
        return self.take().text

    def element_sort(self) -> Sort:
        t = self.tok
        if t.kind != "name" or t.text not in ELEMENT_SORT_NAMES:
            raise self.src.error(
                t.pos,
                f"expected a sort ({', '.join(ELEMENT_SORT_NAMES)}), found {self.describe(t)}",
            )
        self.take()
        return SORTS[t.text]

    def or_(self) -> Node:
        left = self.and_()
        while self.at("or"):
            pos = self.take().pos
            left = Binary("or", left, self.and_(), pos)
        return left

    def and_(self) -> Node:
        left = self.not_()
        while self.at("and"):
            pos = self.take().pos
            left = Binary("and", left, self.not_(), pos)
        return left

    def not_(self) -> Node:
        if self.at("not"):
            pos = self.take().pos
            return Unary("not", self.not_(), pos)
        return self.cmp()

    def cmp(self) -> Node:
        left = self.sum()
        if self.tok.kind == "op" and self.tok.text in _COMPARE:
            tok = self.take()
            node = Binary(tok.text, left, self.sum(), tok.pos)
            if self.tok.kind == "op" and self.tok.text in _COMPARE:
                raise self.src.error(
                    self.tok.pos,
                    "comparisons do not chain: write 'a < b and b < c'",
                )
            return node
        return left

    def sum(self) -> Node:
        left = self.product()
        while self.at("+", "-"):
            tok = self.take()
            left = Binary(tok.text, left, self.product(), tok.pos)
        return left

    def product(self) -> Node:
        left = self.unary()
        while self.at("*", "div", "mod"):
            tok = self.take()
            left = Binary(tok.text, left, self.unary(), tok.pos)
        return left

    def unary(self) -> Node:
        if self.at("-"):
            pos = self.take().pos
            return Unary("-", self.unary(), pos)
        return self.atom()

    def atom(self) -> Node:
        t = self.tok
        if t.kind == "int":
            self.take()
            return Lit(int(t.text), t.pos)
        if self.at("true", "false"):
            self.take()
            return Lit(t.text == "true", t.pos)
        if self.at("("):
            self.take()
            inner = self.expr()
            self.expect(")", "')'")
            return inner
        if self.at("forall", "exists", "if"):
            return self.expr()
        if t.kind == "name" and t.text not in KEYWORDS:
            self.take()
            primed = t.text.endswith("'")
            name = t.text.rstrip("'")
            if self.at("("):
                self.take()
                args = [self.expr()]
                while self.at(","):
                    self.take()
                    args.append(self.expr())
                self.expect(")", "',' or ')'")
                return App(name, tuple(args), primed, t.pos)
            return Name(name, primed, t.pos)
        raise self.src.error(t.pos, f"expected an expression, found {self.describe(t)}")

    # statements

    def update(self) -> Update:
        start = self.tok.pos
        binders: list[tuple[str, Sort | None]] = []
        if self.at("forall"):
            self.take()
            while True:
                name = self.binder_name()
                sort: Sort | None = None
                if self.at(":"):
                    self.take()
                    sort = self.element_sort()
                binders.append((name, sort))
                if not self.at(","):
                    break
                self.take()
            self.expect(".", "'.' before the updated entry")
        t = self.tok
        if t.kind != "name" or t.text in KEYWORDS:
            raise self.src.error(
                t.pos, f"expected the name of the state to update, found {self.describe(t)}"
            )
        if t.text.endswith("'"):
            raise self.src.error(t.pos, "an update names the state without a prime")
        self.take()
        args: list[Node] = []
        if self.at("("):
            self.take()
            args.append(self.expr())
            while self.at(","):
                self.take()
                args.append(self.expr())
            self.expect(")", "',' or ')'")
        self.expect(":=", "':=' (an update reads 'name(args) := value')")
        value = self.expr()
        return Update(tuple(binders), t.text, tuple(args), value, start)

    def param(self) -> tuple[str, Sort, int, int | None, int]:
        t = self.tok
        name = self.binder_name()
        self.expect(":", f"':' and the sort of {name}")
        s = self.tok
        if s.kind != "name" or s.text not in SORTS:
            raise self.src.error(
                s.pos, f"expected a sort ({', '.join(SORTS)}), found {self.describe(s)}"
            )
        self.take()
        sort = SORTS[s.text]
        lo: int = 0
        hi: int | None = 0
        if self.tok.kind == "int":
            if sort is not Sort.INT:
                raise self.src.error(self.tok.pos, "only an Int parameter has a range")
            lo = int(self.take().text)
            self.expect("..", "'..' (a range reads 'Int 1..3', or 'Int 1..' for no bound)")
            hi = int(self.take().text) if self.tok.kind == "int" else None
            if hi is not None and hi < lo:
                raise self.src.error(t.pos, f"empty range {lo}..{hi}")
        elif sort is Sort.INT:
            raise self.src.error(
                self.tok.pos, "an Int parameter needs a range: 'Int 1..3', or 'Int 1..'"
            )
        search_hi = hi if hi is not None else max(lo, DEFAULT_SEARCH_HI)
        return name, sort, lo, hi, search_hi

    def plan_step(self) -> PlanStep:
        t = self.tok
        if t.kind != "name" or t.text in KEYWORDS:
            raise self.src.error(t.pos, f"expected an action name, found {self.describe(t)}")
        self.take()
        args: list[str | int] = []
        self.expect("(", "'(' and the action's arguments")
        if not self.at(")"):
            while True:
                a = self.tok
                if a.kind == "int":
                    args.append(int(self.take().text))
                elif a.kind == "name" and a.text in ("u", "s"):
                    args.append(self.take().text)
                else:
                    raise self.src.error(
                        a.pos, f"a plan argument is u, s or a number, found {self.describe(a)}"
                    )
                if not self.at(","):
                    break
                self.take()
        self.expect(")", "',' or ')'")
        return PlanStep(t.text, tuple(args), t.pos)


def _parse(text: str, source: str, where: str, rule: Callable[[_Parser], Any]) -> Any:
    src = _Source(text, source, where)
    if not text.strip():
        raise src.error(0, "empty text")
    p = _Parser(src)
    out = rule(p)
    p.done()
    return out


def parse_expr(text: str, source: str = "<text>", where: str = "expression") -> Node:
    """Parse an expression (no vocabulary check yet: see :func:`check_expr`)."""
    node: Node = _parse(text, source, where, _Parser.expr)
    return node


def parse_update(text: str, source: str = "<text>", where: str = "update") -> Update:
    """Parse an update ``[forall x.] name(args) := value``."""
    upd: Update = _parse(text, source, where, _Parser.update)
    return upd


def parse_param(text: str, source: str = "<text>", where: str = "param") -> Param:
    """Parse an action parameter ``u: UE`` or ``f: Int 1..``."""
    name, sort, lo, hi, search_hi = _parse(text, source, where, _Parser.param)
    return Param(name, sort, lo, hi, search_hi)


def parse_plan_step(text: str, source: str = "<text>", where: str = "plan") -> PlanStep:
    """Parse a plan step of a response property: ``Register(u, s, 1)``."""
    step: PlanStep = _parse(text, source, where, _Parser.plan_step)
    return step


# -- checking against the vocabulary ------------------------------------------------------


@dataclass
class Scope:
    """What a name may refer to while an expression is checked.

    ``variables``: parameters and bound variables with their sorts; ``primes``: may the
    expression read the state after the step; ``no_history``: if set, reading a history
    symbol is an error, and the text says why (guards and updates of design state).
    """

    vocab: Vocabulary
    variables: dict[str, Sort]
    text: str
    source: str
    where: str
    primes: bool = False
    no_history: str | None = None

    def error(self, pos: int, problem: str) -> LangError:
        return LangError(self.source, self.where, self.text, pos, problem)

    def bind(self, names: Sequence[tuple[str, Sort]]) -> Scope:
        return Scope(
            self.vocab,
            {**self.variables, **dict(names)},
            self.text,
            self.source,
            self.where,
            self.primes,
            self.no_history,
        )

    def known(self) -> list[str]:
        return [*self.variables, *self.vocab.names()]


def suggest(name: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _signature(scope: Scope, name: str) -> str:
    sym = scope.vocab[name]
    args = ", ".join(sort_name(a) for a in sym.args)
    return (
        f"{name}({args}) : {sort_name(sym.result)}" if args else f"{name} : {sort_name(sym.result)}"
    )


def _symbol(scope: Scope, name: str, primed: bool, pos: int) -> None:
    if name not in scope.vocab.names():
        raise scope.error(pos, f"unknown name {name!r}{suggest(name, scope.known())}")
    if primed and not scope.primes:
        raise scope.error(
            pos,
            f"{name}' reads the state after the step, which only a step property may do",
        )
    sym = scope.vocab[name]
    if scope.no_history and sym.role == "history":
        raise scope.error(
            pos,
            f"{name} is history (a record kept for the properties): {scope.no_history} "
            "may not read it",
        )


def check_expr(node: Node, scope: Scope) -> Sort:
    """The sort of ``node``; a :class:`LangError` at the first name or sort that does not
    fit (unknown name, wrong number or sort of arguments, mismatched operands)."""

    def want(n: Node, sort: Sort, what: str) -> None:
        got = check_expr(n, scope)
        if got is not sort:
            raise scope.error(
                _pos(n), f"{what} must be {sort_name(sort)}, but this is {sort_name(got)}"
            )

    if isinstance(node, Lit):
        return Sort.BOOL if isinstance(node.value, bool) else Sort.INT
    if isinstance(node, Name):
        if node.name in scope.variables and not node.primed:
            return scope.variables[node.name]
        if node.name in scope.variables:
            raise scope.error(node.pos, f"{node.name} is a variable; only state names take a prime")
        _symbol(scope, node.name, node.primed, node.pos)
        sym = scope.vocab[node.name]
        if sym.args:
            raise scope.error(
                node.pos,
                f"{node.name} needs {len(sym.args)} argument(s): {_signature(scope, node.name)}",
            )
        return sym.result
    if isinstance(node, App):
        if node.name in scope.variables:
            raise scope.error(
                node.pos, f"{node.name} is a variable, not a state name: it takes no arguments"
            )
        _symbol(scope, node.name, node.primed, node.pos)
        sym = scope.vocab[node.name]
        if len(node.args) != len(sym.args):
            raise scope.error(
                node.pos,
                f"{node.name} takes {len(sym.args)} argument(s), not {len(node.args)}: "
                f"{_signature(scope, node.name)}",
            )
        for i, (arg, sort) in enumerate(zip(node.args, sym.args, strict=True)):
            want(arg, sort, f"argument {i + 1} of {node.name}")
        return sym.result
    if isinstance(node, Unary):
        if node.op == "not":
            want(node.arg, Sort.BOOL, "the operand of 'not'")
            return Sort.BOOL
        want(node.arg, Sort.INT, "the operand of '-'")
        return Sort.INT
    if isinstance(node, Binary):
        op = node.op
        if op in ("and", "or", "implies"):
            want(node.left, Sort.BOOL, f"the left operand of '{op}'")
            want(node.right, Sort.BOOL, f"the right operand of '{op}'")
            return Sort.BOOL
        if op in ("==", "!="):
            left = check_expr(node.left, scope)
            right = check_expr(node.right, scope)
            if left is not right:
                raise scope.error(
                    node.pos,
                    f"'{op}' compares a {sort_name(left)} with a {sort_name(right)}",
                )
            return Sort.BOOL
        if op in ("<", "<=", ">", ">="):
            want(node.left, Sort.INT, f"the left operand of '{op}'")
            want(node.right, Sort.INT, f"the right operand of '{op}'")
            return Sort.BOOL
        want(node.left, Sort.INT, f"the left operand of '{op}'")
        want(node.right, Sort.INT, f"the right operand of '{op}'")
        if op == "*" and not (_constant(node.left) or _constant(node.right)):
            raise scope.error(
                node.pos, "'*' needs a constant on one side (the solvers' arithmetic is linear)"
            )
        if op in ("div", "mod"):
            k = _constant(node.right)
            if k is None or k <= 0:
                raise scope.error(node.pos, f"'{op}' needs a positive constant on its right")
        return Sort.INT
    if isinstance(node, Ite):
        want(node.cond, Sort.BOOL, "the condition of 'if'")
        a = check_expr(node.then, scope)
        b = check_expr(node.other, scope)
        if a is not b:
            raise scope.error(
                node.pos,
                f"the branches of 'if' differ: 'then' is {sort_name(a)}, 'else' is {sort_name(b)}",
            )
        return a
    if isinstance(node, Quant):
        names = [name for name, _sort in node.binders]
        for name in names:
            if name in scope.vocab.names():
                raise scope.error(
                    node.pos, f"bound variable {name!r} hides the state name {name!r}"
                )
        if len(set(names)) != len(names):
            raise scope.error(node.pos, "a variable is bound twice")
        inner = scope.bind(node.binders)
        got = check_expr(node.body, inner)
        if got is not Sort.BOOL:
            raise scope.error(
                _pos(node.body),
                f"the body of '{node.kind}' must be Bool, but this is {sort_name(got)}",
            )
        return Sort.BOOL
    raise ModelError(f"not an expression: {node!r}")


def _constant(node: Node) -> int | None:
    """The value of an integer constant (a literal, possibly negated)."""
    if isinstance(node, Lit) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, Unary) and node.op == "-":
        inner = _constant(node.arg)
        return None if inner is None else -inner
    return None


def _pos(node: Node) -> int:
    p = getattr(node, "pos", -1)
    if p >= 0:
        return int(p)
    for child in children(node):
        q = _pos(child)
        if q >= 0:
            return q
    return 0


def children(node: Node) -> Iterator[Node]:
    """The direct sub-expressions of ``node``."""
    if isinstance(node, App):
        yield from node.args
    elif isinstance(node, Unary):
        yield node.arg
    elif isinstance(node, Binary):
        yield node.left
        yield node.right
    elif isinstance(node, Ite):
        yield node.cond
        yield node.then
        yield node.other
    elif isinstance(node, Quant):
        yield node.body


def check_update(upd: Update, scope: Scope, writable: Callable[[str], str | None]) -> Update:
    """Check an update against the vocabulary; ``writable(name)`` returns why the symbol
    may not be written here (or None).  Returns the update with every binder's sort
    filled in from the position it stands in."""
    name = upd.name
    if name in scope.variables:
        raise scope.error(upd.pos, f"{name} is a parameter; an update writes a state name")
    if name not in scope.vocab.names():
        raise scope.error(
            upd.pos, f"unknown state name {name!r}{suggest(name, scope.vocab.names())}"
        )
    why = writable(name)
    if why:
        raise scope.error(upd.pos, why)
    sym = scope.vocab[name]
    if len(upd.args) != len(sym.args):
        raise scope.error(
            upd.pos,
            f"{name} takes {len(sym.args)} argument(s), not {len(upd.args)}: "
            f"{_signature(scope, name)}",
        )
    binder_names = [b for b, _ in upd.binders]
    if len(set(binder_names)) != len(binder_names):
        raise scope.error(upd.pos, "a variable is bound twice")
    positions: dict[str, int] = {}
    for i, arg in enumerate(upd.args):
        if isinstance(arg, Name) and arg.name in binder_names and not arg.primed:
            if arg.name in positions:
                raise scope.error(arg.pos, f"{arg.name} stands for two arguments of {name}")
            positions[arg.name] = i
    binders: list[tuple[str, Sort]] = []
    for b, declared in upd.binders:
        if b in scope.variables or b in scope.vocab.names():
            raise scope.error(upd.pos, f"bound variable {b!r} hides a name already in use")
        if b not in positions:
            raise scope.error(
                upd.pos,
                f"{b} is bound by 'forall' but is not an argument of {name}: write it in "
                f"the place of the argument it ranges over",
            )
        sort = sym.args[positions[b]]
        if declared is not None and declared is not sort:
            raise scope.error(
                upd.pos,
                f"{b} is declared {sort_name(declared)}, but argument {positions[b] + 1} of "
                f"{name} is {sort_name(sort)}",
            )
        binders.append((b, sort))
    inner = scope.bind(binders)
    for i, (arg, sort) in enumerate(zip(upd.args, sym.args, strict=True)):
        if isinstance(arg, Name) and arg.name in positions:
            continue
        got = check_expr(arg, inner)
        if got is not sort:
            raise scope.error(
                _pos(arg),
                f"argument {i + 1} of {name} must be {sort_name(sort)}, "
                f"but this is {sort_name(got)}",
            )
    got = check_expr(upd.value, inner)
    if got is not sym.result:
        raise scope.error(
            _pos(upd.value),
            f"{name} holds a {sort_name(sym.result)}, but the value is {sort_name(got)}",
        )
    return Update(tuple(binders), upd.name, upd.args, upd.value, upd.pos)


# -- evaluation: the translation into the modelling language ----------------------------


def evaluate(
    node: Node, ops: Ops, pre: Reader, env: Mapping[str, Any], post: Reader | None = None
) -> Any:
    """The value of a checked expression, built with ``ops`` and reads of ``pre`` (and of
    ``post`` for primed names): a Python value under the concrete reading, a Z3 term under
    the symbolic one, whatever the reading of ``ops`` and the readers is."""

    def ev(n: Node, env: Mapping[str, Any]) -> Any:
        if isinstance(n, Lit):
            return n.value
        if isinstance(n, Name):
            if n.name in env and not n.primed:
                return env[n.name]
            return _reader(n.primed).get(n.name)
        if isinstance(n, App):
            return _reader(n.primed).get(n.name, *(ev(a, env) for a in n.args))
        if isinstance(n, Unary):
            return ops.not_(ev(n.arg, env)) if n.op == "not" else -ev(n.arg, env)
        if isinstance(n, Binary):
            op = n.op
            if op == "and":
                return ops.and_(ev(n.left, env), ev(n.right, env))
            if op == "or":
                return ops.or_(ev(n.left, env), ev(n.right, env))
            if op == "implies":
                return ops.implies(ev(n.left, env), ev(n.right, env))
            a, b = ev(n.left, env), ev(n.right, env)
            return _ARITH[op](a, b)
        if isinstance(n, Ite):
            return ops.ite(ev(n.cond, env), ev(n.then, env), ev(n.other, env))
        if isinstance(n, Quant):
            return quantify(n.kind, n.binders, lambda extra: ev(n.body, {**env, **extra}))
        raise ModelError(f"not an expression: {n!r}")

    def quantify(
        kind: str, binders: Sequence[tuple[str, Sort]], body: Callable[[dict[str, Any]], Any]
    ) -> Any:
        (name, sort), rest = binders[0], binders[1:]
        q = ops.forall if kind == "forall" else ops.exists

        def inner(x: Any) -> Any:
            if not rest:
                return body({name: x})
            return quantify(kind, rest, lambda extra: body({name: x, **extra}))

        return q(sort, inner)

    def _reader(primed: bool) -> Reader:
        if not primed:
            return pre
        if post is None:
            raise ModelError("a primed name read where there is no post-state")
        return post

    return ev(node, env)


def _div(a: Any, b: Any) -> Any:
    # integer division rounding down (the divisor is a positive constant): Python's //
    # on integers, the solver's div on terms (the same for a positive divisor)
    return a // b if isinstance(a, int) else a / b


_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "div": _div,
    "mod": lambda a, b: a % b,
}


# -- printing ------------------------------------------------------------------------------

_PREC = {
    "implies": 1,
    "or": 2,
    "and": 3,
    "not": 4,
    "==": 5,
    "!=": 5,
    "<": 5,
    "<=": 5,
    ">": 5,
    ">=": 5,
    "+": 6,
    "-": 6,
    "*": 7,
    "div": 7,
    "mod": 7,
}
_ATOM = 9


def _prec(node: Node) -> int:
    if isinstance(node, Binary):
        return _PREC[node.op]
    if isinstance(node, Unary):
        return 4 if node.op == "not" else 8
    if isinstance(node, (Ite, Quant)):
        return 0
    return _ATOM


def render(node: Node) -> str:
    """The expression as one line of text that parses back to the same tree."""
    return _render(node, 0)


def _render(node: Node, ctx: int) -> str:
    text = _render_bare(node)
    return f"({text})" if _prec(node) < ctx else text


def _render_bare(node: Node) -> str:
    if isinstance(node, Lit):
        return (
            ("true" if node.value else "false") if isinstance(node.value, bool) else str(node.value)
        )
    if isinstance(node, Name):
        return node.name + ("'" if node.primed else "")
    if isinstance(node, App):
        prime = "'" if node.primed else ""
        return f"{node.name}{prime}({', '.join(_render(a, 0) for a in node.args)})"
    if isinstance(node, Unary):
        if node.op == "not":
            return f"not {_render(node.arg, _not_ctx(node))}"
        return f"-{_render(node.arg, 8)}"
    if isinstance(node, Binary):
        p = _PREC[node.op]
        if node.op == "implies":  # right-associative
            return f"{_render(node.left, p + 1)} implies {_render(node.right, p)}"
        if p == 5:  # comparisons do not chain
            return f"{_render(node.left, p + 1)} {node.op} {_render(node.right, p + 1)}"
        right = p + 2 if node.op == "or" else p + 1
        return f"{_render(node.left, _left_ctx(node))} {node.op} {_render(node.right, right)}"
    if isinstance(node, Ite):
        return f"if {render(node.cond)} then {render(node.then)} else {render(node.other)}"
    if isinstance(node, Quant):
        return f"{node.kind} {_binders(node.binders)}. {render(node.body)}"
    raise ModelError(f"not an expression: {node!r}")


def _not_ctx(node: Unary) -> int:
    """The context of the operand of 'not': a comparison is parenthesised for the reader
    ('not (a < b)'; the parser does not need it)."""
    arg = node.arg
    return 6 if isinstance(arg, Binary) and _PREC[arg.op] == 5 else 4


def _left_ctx(node: Binary) -> int:
    """The context of a left operand: an 'and' inside an 'or' is parenthesised for the
    reader (the parser does not need it)."""
    p = _PREC[node.op]
    if node.op == "or" and isinstance(node.left, Binary) and node.left.op == "and":
        return p + 2
    return p


def _binders(binders: Sequence[tuple[str, Sort | None]]) -> str:
    return ", ".join(f"{n}: {sort_name(s)}" if s is not None else n for n, s in binders)


def render_update(upd: Update) -> str:
    """The update as one line of text."""
    head = f"forall {_binders(upd.binders)}. " if upd.binders else ""
    args = f"({', '.join(_render(a, 0) for a in upd.args)})" if upd.args else ""
    return f"{head}{upd.name}{args} := {render(upd.value)}"


def render_param(p: Param) -> str:
    """A parameter as the language writes it."""
    if p.sort is not Sort.INT:
        return f"{p.name}: {sort_name(p.sort)}"
    return f"{p.name}: Int {p.lo}..{'' if p.hi is None else p.hi}"


def pretty(node: Node, width: int = 88) -> list[str]:
    """The expression over several lines when one is wider than ``width``: each operand
    of a long ``and``/``or`` chain on its own line, ``if``/``then``/``else`` on three,
    a quantifier's body indented.  The lines parse back to the same tree."""
    return _pretty(node, 0, width)


def _chain(node: Node, op: str) -> list[Node]:
    if isinstance(node, Binary) and node.op == op:
        return [*_chain(node.left, op), node.right]
    return [node]


def _pretty(node: Node, ctx: int, width: int) -> list[str]:
    one = _render(node, ctx)
    if len(one) <= width:
        return [one]
    wrap = _prec(node) < ctx
    inner = width - 2 if wrap else width
    lines = _pretty_bare(node, inner)
    if wrap:
        lines = ["(" + lines[0], *(" " + x for x in lines[1:])]
        lines[-1] += ")"
    return lines


def _pretty_bare(node: Node, width: int) -> list[str]:
    if isinstance(node, Binary) and node.op in ("and", "or"):
        p = _PREC[node.op]
        inner = p + 2 if node.op == "or" else p + 1
        parts = _chain(node, node.op)
        lines = _pretty(parts[0], inner, width)
        pad = " " * (len(node.op) + 1)
        for part in parts[1:]:
            sub = _pretty(part, inner, width - len(pad))
            lines.append(f"{node.op} {sub[0]}")
            lines += [pad + x for x in sub[1:]]
        return lines
    if isinstance(node, Binary) and node.op == "implies":
        left = _pretty(node.left, 2, width)
        right = _pretty(node.right, 1, width - 8)
        return [*left, "implies " + right[0], *("        " + x for x in right[1:])]
    if isinstance(node, Ite):
        out: list[str] = []
        for word, part in (("if", node.cond), ("then", node.then), ("else", node.other)):
            sub = _pretty(part, 0, width - 5)
            out.append(f"{word:<4} {sub[0]}")
            out += ["     " + x for x in sub[1:]]
        return out
    if isinstance(node, Quant):
        body = _pretty(node.body, 0, width - 4)
        return [f"{node.kind} {_binders(node.binders)}.", *("    " + x for x in body)]
    if isinstance(node, Unary) and node.op == "not":
        sub = _pretty(node.arg, _not_ctx(node), width - 4)
        return ["not " + sub[0], *("    " + x for x in sub[1:])]
    return [_render_bare(node)]


def pretty_update(upd: Update, width: int = 88) -> list[str]:
    """An update over several lines when it is long: the value indented below the
    updated entry."""
    one = render_update(upd)
    if len(one) <= width:
        return [one]
    head = f"forall {_binders(upd.binders)}. " if upd.binders else ""
    args = f"({', '.join(_render(a, 0) for a in upd.args)})" if upd.args else ""
    return [f"{head}{upd.name}{args} :=", *("    " + x for x in pretty(upd.value, width - 4))]


def free_names(node: Node, bound: frozenset[str] = frozenset()) -> set[str]:
    """Names read by ``node`` that are not bound inside it (variables and symbols)."""
    if isinstance(node, Name):
        return set() if node.name in bound else {node.name}
    if isinstance(node, App):
        out = {node.name}
        for a in node.args:
            out |= free_names(a, bound)
        return out
    if isinstance(node, Quant):
        return free_names(node.body, bound | {b for b, _ in node.binders})
    out = set()
    for c in children(node):
        out |= free_names(c, bound)
    return out

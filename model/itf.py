"""Traces with their states in the Informal Trace Format (ITF), as Apalache and Quint read it.

The format is JSON (Apalache's ADR-015)::

    {"#meta": {...},
     "vars": ["clock", "ev", ..., "mbt::actionTaken"],
     "states": [{"#meta": {"index": 0, ...}, "clock": {"#bigint": "0"}, ...}, ...],
     "loop": 3}

Each state symbol of the vocabulary is a variable: a symbol with no argument is its value,
one with one argument a map from the element's name to the value
(``{"#map": [["UE0", true], ["UE1", false]]}``), one with several a map from tuples of
names (``{"#tup": ["UE0", "S0"]}``).  Booleans are JSON booleans, integers
``{"#bigint": "123"}``, elements their names in the traces and charts (``UE0``, ``S0``,
``T1``, ``P0``).  The variable ``mbt::actionTaken`` names the action that led to the state
(``init`` for the first).  Each state's ``#meta`` carries its index, the step as the chart
shows it (``step``, ``effect``) and the step's arguments (``args``, encoded as values);
the document's ``#meta`` carries the universe, the properties the trace violates and
what it is.  ``loop`` (lassos only) is the index of the state the run returns to: the
steps from there on repeat forever (integer entries such as the clock and the stamps
may move by a fixed amount each turn).

:func:`read_itf` reads a document back, validating every field; an :class:`ItfError`
names the field (``states[3].holds: ...``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mbmssec.model.concrete import State, Universe
from mbmssec.model.dsl import ELEMENT_SORTS, ModelError, Sort, Symbol, Vocabulary

FORMAT_DESCRIPTION = "https://apalache-mc.org/docs/adr/015adr-trace.html"
"""Where the format is defined."""

ACTION_VAR = "mbt::actionTaken"
"""The variable naming the action that led to each state (``init`` for the first)."""

INIT = "init"

ELEMENT_PREFIX: Mapping[Sort, str] = {Sort.UE: "UE", Sort.SVC: "S", Sort.TEK: "T", Sort.PKT: "P"}
"""How the traces and charts name the elements of each sort (``UE0``, ``S0``, ``T1``, ``P0``)."""

_SORT_KEYS: Mapping[Sort, str] = {Sort.UE: "UE", Sort.SVC: "SVC", Sort.TEK: "TEK", Sort.PKT: "PKT"}
_NAME = re.compile(r"(UE|S|T|P)(0|[1-9][0-9]*)")
_BY_PREFIX = {prefix: sort for sort, prefix in ELEMENT_PREFIX.items()}

Table = dict[tuple[int, ...], Any]


class ItfError(ModelError):
    """An ITF document that cannot be read; the message names the source and the field."""

    def __init__(self, where: str, problem: str, source: str = "ITF") -> None:
        super().__init__(f"{source}: {where}: {problem}" if where else f"{source}: {problem}")
        self.source = source
        self.where = where
        self.problem = problem


def element_name(sort: Sort, index: int) -> str:
    """The name of element ``index`` of an element sort (``UE0``, ``S1``, ``T2``, ``P0``)."""
    return f"{ELEMENT_PREFIX[sort]}{index}"


# -- writing -------------------------------------------------------------------------------


def encode_value(sort: Sort, value: Any) -> Any:
    """A value of ``sort`` as ITF: a JSON boolean, ``{"#bigint": ...}`` or an element's name."""
    if sort is Sort.BOOL:
        return bool(value)
    if sort is Sort.INT:
        return {"#bigint": str(int(value))}
    return element_name(sort, int(value))


def encode_symbol(symbol: Symbol, state: State) -> Any:
    """The whole table of ``symbol`` in ``state``: its value, or a ``#map`` over every
    argument tuple of the state's universe."""
    if not symbol.args:
        return encode_value(symbol.result, state.get(symbol.name))
    entries = []
    for args in state.universe.tuples(symbol.args):
        names = [element_name(s, a) for s, a in zip(symbol.args, args, strict=True)]
        key: Any = names[0] if len(names) == 1 else {"#tup": names}
        entries.append([key, encode_value(symbol.result, state.get(symbol.name, *args))])
    return {"#map": entries}


def encode_state(vocab: Vocabulary, state: State) -> dict[str, Any]:
    """Every symbol of ``state`` as an ITF variable."""
    return {s.name: encode_symbol(s, state) for s in vocab.symbols}


def universe_meta(universe: Universe) -> dict[str, int]:
    """The universe as the document's ``#meta`` states it (elements per sort)."""
    return {_SORT_KEYS[s]: universe.size(s) for s in ELEMENT_SORTS}


def dumps(document: Mapping[str, Any]) -> str:
    """The text of an ``.itf.json`` file: JSON with one line per variable of each state,
    so that a state reads as a table and two traces compare line by line."""

    def line(value: Any) -> str:
        return json.dumps(value, separators=(", ", ": "))

    out = ["{"]
    keys = list(document)
    for k, key in enumerate(keys):
        comma = "," if k < len(keys) - 1 else ""
        value = document[key]
        if key != "states" or not isinstance(value, list):
            out.append(f"  {line(key)}: {line(value)}{comma}")
            continue
        out.append('  "states": [')
        for i, state in enumerate(value):
            out.append("    {")
            names = list(state)
            out += [
                f"      {line(n)}: {line(state[n])}{',' if j < len(names) - 1 else ''}"
                for j, n in enumerate(names)
            ]
            out.append("    }" + ("," if i < len(value) - 1 else ""))
        out.append(f"  ]{comma}")
    out.append("}")
    return "\n".join(out) + "\n"


# -- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItfStep:
    """One step of a read document: the action and its arguments (elements as indices)."""

    action: str
    args: tuple[Any, ...]
    text: str


@dataclass(frozen=True)
class ItfRun:
    """A validated ITF document of the model: the universe, the steps and every state.

    ``states[i][name][args]`` is the value of symbol ``name`` at ``args`` (the empty tuple
    for a symbol without arguments) in the ``i``-th state, elements as indices.
    """

    universe: Universe
    violates: tuple[int, ...]
    steps: tuple[ItfStep, ...]
    states: tuple[dict[str, Table], ...]
    loop: int | None
    meta: dict[str, Any]

    def value(self, index: int, name: str, *args: int) -> Any:
        """The value of ``name(args)`` in state ``index``."""
        return self.states[index][name][tuple(args)]


class _Reader:
    """Validates one document; every failure names the field's path."""

    def __init__(self, vocab: Vocabulary, source: str) -> None:
        self.vocab = vocab
        self.source = source

    def fail(self, where: str, problem: str) -> ItfError:
        return ItfError(where, problem, self.source)

    def obj(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected an object, got {_kind(value)}")
        return value

    def key(self, obj: dict[str, Any], name: str, where: str) -> Any:
        if name not in obj:
            raise self.fail(_join(where, name), "missing")
        return obj[name]

    def integer(self, value: Any, where: str) -> int:
        if isinstance(value, dict) and set(value) == {"#bigint"}:
            text = value["#bigint"]
            if isinstance(text, str) and re.fullmatch(r"-?[0-9]+", text):
                return int(text)
            raise self.fail(where, f"#bigint {text!r} is not a decimal integer")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise self.fail(where, f'expected an integer ({{"#bigint": "..."}}), got {_kind(value)}')

    def element(self, value: Any, universe: Universe, where: str) -> tuple[Sort, int]:
        match = _NAME.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise self.fail(where, f"expected an element name (UE0, S0, T0, P0), got {value!r}")
        sort, index = _BY_PREFIX[match.group(1)], int(match.group(2))
        if index >= universe.size(sort):
            raise self.fail(
                where, f"{value} is outside the universe ({universe.size(sort)} {sort.value})"
            )
        return sort, index

    def value(self, sort: Sort, value: Any, universe: Universe, where: str) -> Any:
        if sort is Sort.BOOL:
            if not isinstance(value, bool):
                raise self.fail(where, f"expected a boolean, got {_kind(value)}")
            return value
        if sort is Sort.INT:
            return self.integer(value, where)
        got, index = self.element(value, universe, where)
        if got is not sort:
            raise self.fail(where, f"expected an element of {sort.value}, got {value!r}")
        return index

    def arg(self, value: Any, universe: Universe, where: str) -> Any:
        """A step argument: a boolean, an integer or an element's name."""
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            return self.element(value, universe, where)[1]
        return self.integer(value, where)

    def key_tuple(self, sym: Symbol, key: Any, universe: Universe, where: str) -> tuple[int, ...]:
        if len(sym.args) == 1:
            names = [key]
        else:
            if not (isinstance(key, dict) and set(key) == {"#tup"}):
                raise self.fail(where, f'expected a {{"#tup": [...]}} key, got {_kind(key)}')
            names = key["#tup"]
            if not isinstance(names, list) or len(names) != len(sym.args):
                raise self.fail(where, f"expected a tuple of {len(sym.args)} element names")
        return tuple(
            self.value(s, n, universe, f"{where}[{i}]")
            for i, (s, n) in enumerate(zip(sym.args, names, strict=True))
        )

    def table(self, sym: Symbol, value: Any, universe: Universe, where: str) -> Table:
        if not sym.args:
            return {(): self.value(sym.result, value, universe, where)}
        if not (isinstance(value, dict) and set(value) == {"#map"}):
            raise self.fail(where, f'expected {{"#map": [[key, value], ...]}}, got {_kind(value)}')
        entries = value["#map"]
        if not isinstance(entries, list):
            raise self.fail(f"{where}.#map", f"expected a list of pairs, got {_kind(entries)}")
        table: Table = {}
        for i, pair in enumerate(entries):
            at = f"{where}.#map[{i}]"
            if not (isinstance(pair, list) and len(pair) == 2):
                raise self.fail(at, "expected a [key, value] pair")
            args = self.key_tuple(sym, pair[0], universe, f"{at}[0]")
            if args in table:
                raise self.fail(f"{at}[0]", "duplicate key")
            table[args] = self.value(sym.result, pair[1], universe, f"{at}[1]")
        missing = [a for a in universe.tuples(sym.args) if a not in table]
        if missing:
            names = ", ".join(element_name(s, x) for s, x in zip(sym.args, missing[0], strict=True))
            raise self.fail(where, f"no entry for ({names}): a state gives every entry")
        return table

    def universe(self, meta: dict[str, Any]) -> Universe:
        node = self.obj(self.key(meta, "universe", "#meta"), "#meta.universe")
        sizes: dict[str, int] = {}
        for sort in ELEMENT_SORTS:
            where = f"#meta.universe.{_SORT_KEYS[sort]}"
            n = self.key(node, _SORT_KEYS[sort], "#meta.universe")
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise self.fail(where, f"expected a positive integer, got {n!r}")
            sizes[sort.value.lower()] = n
        return Universe(**sizes)

    def variables(self, data: dict[str, Any]) -> list[str]:
        names = self.key(data, "vars", "")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise self.fail("vars", "expected a list of variable names")
        expected = [*self.vocab.names(), ACTION_VAR]
        for i, name in enumerate(names):
            if name not in expected:
                raise self.fail(f"vars[{i}]", f"unknown variable {name!r}")
        absent = [n for n in expected if n not in names]
        if absent:
            raise self.fail("vars", f"no variable {absent[0]!r}")
        if len(set(names)) != len(names):
            raise self.fail("vars", "a variable is listed twice")
        return names

    def state(
        self, value: Any, index: int, universe: Universe
    ) -> tuple[dict[str, Table], str, ItfStep | None]:
        where = f"states[{index}]"
        obj = self.obj(value, where)
        extra = sorted(set(obj) - {"#meta", ACTION_VAR, *self.vocab.names()})
        if extra:
            raise self.fail(f"{where}.{extra[0]}", "not a variable of the document")
        meta = self.obj(self.key(obj, "#meta", where), f"{where}.#meta")
        got = self.key(meta, "index", f"{where}.#meta")
        if got != index or isinstance(got, bool):
            raise self.fail(f"{where}.#meta.index", f"expected {index}, got {got!r}")
        action = self.key(obj, ACTION_VAR, where)
        if not isinstance(action, str) or not action:
            raise self.fail(f"{where}.{ACTION_VAR}", "expected an action name")
        tables = {
            s.name: self.table(s, self.key(obj, s.name, where), universe, f"{where}.{s.name}")
            for s in self.vocab.symbols
        }
        if index == 0:
            if action != INIT:
                raise self.fail(f"{where}.{ACTION_VAR}", f"expected {INIT!r} for the first state")
            return tables, action, None
        args = self.key(meta, "args", f"{where}.#meta")
        if not isinstance(args, list):
            raise self.fail(f"{where}.#meta.args", f"expected a list, got {_kind(args)}")
        text = meta.get("step", action)
        if not isinstance(text, str):
            raise self.fail(f"{where}.#meta.step", "expected a string")
        parsed = tuple(
            self.arg(a, universe, f"{where}.#meta.args[{i}]") for i, a in enumerate(args)
        )
        return tables, action, ItfStep(action, parsed, text)

    def run(self, data: Any) -> ItfRun:
        root = self.obj(data, "")
        meta = self.obj(self.key(root, "#meta", ""), "#meta")
        universe = self.universe(meta)
        violates = meta.get("violates", [])
        if not isinstance(violates, list) or not all(
            isinstance(n, int) and not isinstance(n, bool) for n in violates
        ):
            raise self.fail("#meta.violates", "expected a list of property numbers")
        self.variables(root)
        raw = self.key(root, "states", "")
        if not isinstance(raw, list) or not raw:
            raise self.fail("states", "expected a non-empty list of states")
        states: list[dict[str, Table]] = []
        steps: list[ItfStep] = []
        for i, value in enumerate(raw):
            tables, _action, step = self.state(value, i, universe)
            states.append(tables)
            if step is not None:
                steps.append(step)
        loop = root.get("loop")
        if loop is not None and (
            not isinstance(loop, int) or isinstance(loop, bool) or not 0 <= loop < len(raw) - 1
        ):
            raise self.fail("loop", f"expected the index of a state before the last, got {loop!r}")
        return ItfRun(universe, tuple(violates), tuple(steps), tuple(states), loop, meta)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        type(value), "a list" if isinstance(value, list) else "an object"
    )


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def read_itf(data: Any, vocab: Vocabulary | None = None, source: str = "ITF") -> ItfRun:
    """Validate and read a parsed ITF document of the model (``vocab``: the model's
    vocabulary, by default the shipped one); ``source`` names the document in errors."""
    if vocab is None:
        from mbmssec.model.vocabulary import VOCABULARY

        vocab = VOCABULARY
    return _Reader(vocab, source).run(data)


def load_itf(path: Path, vocab: Vocabulary | None = None) -> ItfRun:
    """Read and validate the ``.itf.json`` file at ``path`` (errors name the file)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ItfError("", f"cannot read the file: {exc}", str(path)) from None
    except json.JSONDecodeError as exc:
        raise ItfError("", f"not an ITF file (bad JSON: {exc})", str(path)) from None
    return read_itf(data, vocab, str(path))

"""A small two-state modelling language read in two ways, from one source.

An *action* is a Python function written against an :class:`Ops` object (boolean
connectives, ``ite``, quantifiers, ``require``) and a :class:`Step` (reads of the
pre-state, writes of the post-state).  Integer arithmetic, comparisons and ``==`` are
plain Python operators, which work on both Python values and Z3 terms.

* :mod:`mbmssec.model.concrete` runs the function on Python values over a finite
  universe (the executable semantics used by Hypothesis, traces and refinement);
* :mod:`mbmssec.model.symbolic` runs the same function on Z3 terms and obtains the
  guard and the update as formulas (the reading used by the proofs).

Nothing here knows about MBMS: the vocabulary, actions and properties are declared in
:mod:`mbmssec.model.vocabulary`, :mod:`mbmssec.model.actions` and
:mod:`mbmssec.model.properties`.

Rules an action obeys (checked by both readings): it reads only the pre-state, writes
only the symbols it lists in ``modifies`` (the frame of everything else is generated),
and never branches in Python on a state value (use ``ops.ite``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

from mbmssec.errors import MbmssecError


class ModelError(MbmssecError):
    """A model definition breaks a rule of the modelling language."""


class Sort(enum.Enum):
    """The uninterpreted sorts of the model, plus the two built-in value kinds."""

    UE = "UE"
    SVC = "SVC"
    TEK = "TEK"
    PKT = "PKT"
    BOOL = "Bool"
    INT = "Int"

    @property
    def is_element(self) -> bool:
        """True for the uninterpreted sorts whose size the model leaves open."""
        return self not in (Sort.BOOL, Sort.INT)


ELEMENT_SORTS: tuple[Sort, ...] = (Sort.UE, Sort.SVC, Sort.TEK, Sort.PKT)

#: Whose state a symbol is (see :class:`Symbol`).
ROLES: tuple[str, ...] = ("design", "environment", "history")

#: Who takes an action's step (:class:`Action` ``actor``): the BM-SC, a UE, the
#: environment (radio, time, lost messages) or the attacker.
ACTORS: tuple[str, ...] = ("BM-SC", "UE", "net", "attacker")


@dataclass(frozen=True)
class Symbol:
    """One state component: a relation (result BOOL) or a function over element sorts.

    ``ghost`` marks bookkeeping a real BM-SC or UE would not need to keep; ``doc`` says
    what the component means; ``initial`` is its value in every initial state
    (``None``: unconstrained, allowed only for element-valued functions).

    ``role`` says whose state it is:

    * ``"design"``: the BM-SC's, the UE's or the attacker's state, which the text
      governs (the mutation operators of :mod:`mbmssec.proofs.mutate` change its updates);
    * ``"environment"``: the world the text does not govern (time, radio coverage, lost
      messages);
    * ``"history"``: a record of what happened (who was sent which key while
      authenticated, which packets reached which UE, which the UE decrypted), kept only so
      that properties can be stated over it.  Every action adds to it uniformly and no
      action reads it otherwise (``tests/test_model_roles.py`` checks both), so a faulty
      action cannot hide its own evidence.
    """

    name: str
    args: tuple[Sort, ...]
    result: Sort
    doc: str
    initial: bool | int | None = False
    ghost: bool = False
    role: str = "design"
    #: "" for the model's own symbols; the name of the proposal that declares it otherwise
    origin: str = ""
    #: For an event stamp: the relation whose change from false to true it records.  The
    #: readings of the language write the stamp themselves (the pre-state's event counter
    #: ``ev``) whenever an action sets that relation, so no action writes a stamp and a
    #: faulty action cannot leave one out (:meth:`Vocabulary.stamp_of`).
    stamps: str = ""
    #: Knowledge that only grows (what the attacker and colluding UEs have learnt): the
    #: readings keep a true entry true whatever an action writes, so no action can make
    #: the attacker forget what it learnt (the Dolev-Yao attacker never forgets).
    monotone: bool = False

    def __post_init__(self) -> None:
        if self.monotone and self.result is not Sort.BOOL:
            raise ModelError(f"symbol {self.name}: only a relation can be monotone")
        if self.stamps and (self.role != "history" or self.result is not Sort.INT):
            raise ModelError(f"symbol {self.name}: a stamp is an integer history symbol")
        if self.role not in ROLES:
            raise ModelError(f"symbol {self.name}: role {self.role!r} is not one of {ROLES}")
        if any(not a.is_element for a in self.args):
            raise ModelError(f"symbol {self.name}: arguments must be element sorts")
        if self.result.is_element and self.initial is not None:
            raise ModelError(f"symbol {self.name}: element-valued symbols start unconstrained")
        if self.result is Sort.BOOL and not isinstance(self.initial, bool):
            raise ModelError(f"symbol {self.name}: a relation starts true or false")


@dataclass(frozen=True)
class Param:
    """A parameter of an action: an element of a sort, a Bool, or an Int in [lo, hi]
    (``hi`` None: no upper bound).  ``enum_hi`` bounds the values finite searches
    (exploration, enumeration of enabled instances) try when ``hi`` is None."""

    name: str
    sort: Sort
    lo: int = 0
    hi: int | None = 0
    enum_hi: int = 0

    @property
    def search_hi(self) -> int:
        """The largest value a finite search tries."""
        return self.hi if self.hi is not None else self.enum_hi

    def range_constraints(self, value: Any) -> list[Any]:
        """The parameter's range as constraints (Z3 terms or Python values)."""
        return [value >= self.lo] + ([value <= self.hi] if self.hi is not None else [])


class Disabled(Exception):
    """Raised by the concrete reading when a ``require`` fails (the action is disabled)."""


class Ops(Protocol):
    """The operations an action or property may use besides Python's arithmetic."""

    def and_(self, *xs: Any) -> Any: ...
    def or_(self, *xs: Any) -> Any: ...
    def not_(self, x: Any) -> Any: ...
    def implies(self, a: Any, b: Any) -> Any: ...
    def ite(self, c: Any, a: Any, b: Any) -> Any: ...
    def forall(self, sort: Sort, body: Callable[[Any], Any]) -> Any: ...
    def exists(self, sort: Sort, body: Callable[[Any], Any]) -> Any: ...
    def require(self, cond: Any) -> None: ...


class Step(Protocol):
    """Reads of the pre-state and writes of the post-state during one action."""

    def get(self, name: str, *args: Any) -> Any: ...
    def set(self, name: str, args: tuple[Any, ...], value: Any) -> None: ...
    def set_all(self, name: str, value: Callable[..., Any]) -> None: ...


class Reader(Protocol):
    """Read-only access to one state (used by properties)."""

    def get(self, name: str, *args: Any) -> Any: ...


ActionBody = Callable[..., None]

COVERED = "covered"
"""The environment symbol of radio coverage that :attr:`Action.radio` reads."""


@dataclass(frozen=True)
class Action:
    """A guarded update, tagged with the clauses it encodes.

    ``body(ops, step, profile, *params)`` states the guard with ``ops.require`` and the
    update with ``step.set``/``step.set_all``.  ``applies(profile)`` says whether the
    action exists at all under an option profile (for example the MIKEY response
    only exists when the profile has one).

    ``radio`` names the UE parameters whose radio link the action uses (a message to or
    from that UE): the action can happen only while each of them is in coverage.  That
    condition is the world's, not the text's, so it is declared here once and added by
    :meth:`run` before the body's own guards (a mutant of the body never removes it),
    as is the declared range of each Int parameter.
    Every reading of an action (concrete, Z3, the language's rendering, the trace
    checker's projection) goes through :meth:`run`.
    """

    name: str
    params: tuple[Param, ...]
    modifies: frozenset[str]
    clauses: tuple[str, ...]
    actor: str
    doc: str
    body: ActionBody
    applies: Callable[[Any], bool] = field(default=lambda _p: True)
    #: "" for the model's own actions; the name of the proposal that adds or changes it
    origin: str = ""
    radio: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        for name in self.radio:
            if name not in names or self.params[names.index(name)].sort is not Sort.UE:
                raise ModelError(f"{self.name}: radio names {name!r}, which is no UE parameter")

    def run(self, ops: Ops, st: Step, profile: Any, *args: Any) -> None:
        """The declared conditions, then the body: each Int parameter lies in its
        declared range (a value from a trace may not), and each UE in :attr:`radio` is
        covered."""
        for param, arg in zip(self.params, args, strict=True):
            if param.sort is Sort.INT:
                for bound in param.range_constraints(arg):
                    ops.require(bound)
        for name in self.radio:
            ops.require(st.get(COVERED, args[self._param_index(name)]))
        self.body(ops, st, profile, *args)

    def _param_index(self, name: str) -> int:
        return [p.name for p in self.params].index(name)


@dataclass(frozen=True)
class Vocabulary:
    """All state symbols, by name, in declaration order."""

    symbols: tuple[Symbol, ...]

    def __post_init__(self) -> None:
        names = [s.name for s in self.symbols]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ModelError(f"duplicate state symbols: {sorted(dupes)}")

    def __getitem__(self, name: str) -> Symbol:
        for sym in self.symbols:
            if sym.name == name:
                return sym
        raise ModelError(f"unknown state symbol {name!r}")

    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.symbols)

    @cached_property
    def _stamps(self) -> dict[str, str]:
        out = {}
        for sym in self.symbols:
            if sym.stamps:
                rel = self[sym.stamps]
                if rel.result is not Sort.BOOL or rel.args != sym.args:
                    raise ModelError(
                        f"stamp {sym.name}: {rel.name} is not a relation over {sym.args}"
                    )
                out[rel.name] = sym.name
        return out

    @cached_property
    def monotone(self) -> frozenset[str]:
        """The relations that only grow (``Symbol.monotone``)."""
        return frozenset(s.name for s in self.symbols if s.monotone)

    def stamp_of(self, name: str) -> str | None:
        """The stamp that records when relation ``name`` first became true, if any."""
        return self._stamps.get(name)

    def with_stamps(self, names: frozenset[str]) -> frozenset[str]:
        """``names`` plus the stamps of the relations among them: what an action that
        writes ``names`` writes."""
        extra = {self._stamps[n] for n in names if n in self._stamps}
        return names | extra

    @cached_property
    def defaults(self) -> dict[str, Any]:
        """Each symbol's initial value (0 stands for "unconstrained" element values)."""
        return {s.name: (0 if s.initial is None else s.initial) for s in self.symbols}


def stamp_writes(
    vocab: Vocabulary, written: Sequence[str], modifies: frozenset[str], action: str
) -> list[tuple[str, str]]:
    """The (relation, stamp) pairs a step that wrote ``written`` must record, checked
    against the action's ``modifies`` (which :meth:`Vocabulary.with_stamps` completes)."""
    out = []
    for name in written:
        stamp = vocab.stamp_of(name)
        if stamp is None:
            continue
        if stamp not in modifies:
            raise ModelError(
                f"action {action} writes {name!r} but does not list its stamp {stamp!r} in modifies"
            )
        out.append((name, stamp))
    return out


def check_modifies(vocab: Vocabulary, actions: Sequence[Action]) -> None:
    """Every ``modifies`` entry must name a declared symbol."""
    known = set(vocab.names())
    for act in actions:
        unknown = act.modifies - known
        if unknown:
            raise ModelError(f"action {act.name} modifies unknown symbols {sorted(unknown)}")

"""Mutants of the model, generated from the model's own source, and whether the checker
kills each one.

Every action is written once in :mod:`mbmssec.model.actions`, so mutants are derived
mechanically from that module's syntax tree.  The operators (:data:`OPERATORS`):

* ``guard-drop``: a ``ops.require(...)`` is removed;
* ``guard-negate``: a ``ops.require(C)`` becomes ``ops.require(ops.not_(C))``;
* ``conjunct-drop``: one argument of an ``ops.and_(...)`` inside a guard is removed;
* ``update-drop``: a ``st.set``/``st.set_all`` of a *design* symbol is removed (in this
  language an update left out keeps the old value, so this is also "the update's value
  replaced by the old value");
* ``const-flip``: a ``True``/``False`` written by an update becomes the other;
* ``compare-flip``: ``<`` and ``<=`` (and ``>`` and ``>=``) are exchanged;
* ``option-flip``: a test of the option profile (``prof[...] == ...`` and friends, which
  select how an open point is handled, including the attacker's knowledge of KEKs) is
  negated.

Updates of *environment* and *history* symbols (:class:`~mbmssec.model.dsl.Symbol`
``role``) are never mutated: they are the world and the observer, not the design the
text governs; environment actions (actor ``net``) are left alone for the same reason,
and so are the conditions the language adds to every reading of an action
(:meth:`~mbmssec.model.dsl.Action.run`): that an action over a UE's radio link happens
only while the UE is in coverage (``radio``), and that each Int parameter lies in its
declared range.

A mutant is checked under the first profile, in the order baseline then the shipped
proposals, in which its changed code runs at all (each site is instrumented to record
that it was reached while the actions are read symbolically).  It is **killed** when a
property proved for the unmutated model under that profile is refuted (a replayed
counterexample; the shortest length is reported), when the proof becomes vacuous (an
action that had a witness with an effect no longer has one), or when a property the
unmutated model refutes loses its counterexample (``counterexample-gone``: behaviour
removed) or is refuted in fewer steps (``counterexample-sooner``: behaviour added, since
the unmutated model has no violation that short).  It is **equivalent** when Z3 proves
it takes the model's steps from every state of the inductive invariant, or when it is
not killed and ``spec/equivalent_mutants.toml`` declares it, with the reason; otherwise
it **survived**.  A declaration for a mutant that is killed, or whose site text no longer
matches, is an error.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import re
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

import z3

from mbmssec.errors import MbmssecError
from mbmssec.model import actions as actions_module
from mbmssec.model.concrete import Universe
from mbmssec.model.dsl import Action
from mbmssec.model.machine import Model
from mbmssec.model.symbolic import Sorts, SymbolicState, transition
from mbmssec.model.vocabulary import VOCABULARY
from mbmssec.proofs.bmc import DEFAULT_DEPTH
from mbmssec.spec.loader import SPEC_DIR, Profile, SpecError, load_spec, read_toml

EQUIVALENTS_FILE = SPEC_DIR / "equivalent_mutants.toml"

#: The bounded search a mutant gets: a smaller universe and depth than ``mbmssec check``
#: (a mutant that breaks something usually does so within a few steps; a verdict says
#: its bound).
MUTANT_UNIVERSE = Universe(ue=2, svc=1, tek=2, pkt=1)
MUTANT_DEPTH = 8

#: How deep the properties that induction no longer proves are searched when the first
#: search finds no violation: a broken replay or counter check needs a longer run (two
#: registrations, a newer key, then the replay: 10 steps).
DEEP_DEPTH = 10

#: How deep the unmutated model is searched for the counterexamples a mutant may remove
#: or bring sooner: the checker's own depth (the deepest shipped counterexample, a replay
#: after a replay-cache loss, takes 11 steps).
REFUTED_DEPTH = DEFAULT_DEPTH

#: A universe with two services, searched (shallowly) for the lost properties when the
#: one-service universe shows nothing: a mutant that confuses services (a TEK recorded
#: under the wrong service) cannot show in one service.
TWO_SERVICES = Universe(ue=1, svc=2, tek=2, pkt=1)
TWO_SERVICE_DEPTH = 6

#: How deep the unmutated model is searched for a step of each action that changes the
#: state (the deepest needed by the shipped profiles is 7).
EFFECT_DEPTH = 9

OPERATORS: dict[str, str] = {
    "guard-drop": "a guard (ops.require) removed",
    "guard-negate": "a guard negated",
    "conjunct-drop": "one conjunct of a guard removed",
    "update-drop": "an update of a design symbol removed (the old value kept)",
    "const-flip": "a Boolean constant written by an update flipped",
    "compare-flip": "< and <= (or > and >=) exchanged",
    "option-flip": "a test of the option profile negated",
}

_FLIP_CMP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
}

_HIT = "__mutant_hit__"


class MutateError(MbmssecError):
    """The mutation machinery or its declarations are inconsistent."""


@dataclass(frozen=True)
class Site:
    """One place in the model's source a mutation operator applies to."""

    id: str
    function: str
    operator: str
    line: int
    text: str
    symbol: str | None = None
    """The symbol a mutated update writes (update-drop and const-flip only)."""

    @property
    def description(self) -> str:
        return f"{OPERATORS[self.operator]} in {self.function} (line {self.line}): {self.text}"


# -- finding the sites -----------------------------------------------------------------


def _source() -> str:
    return inspect.getsource(actions_module)


def source_hash() -> str:
    """Hash of the model source the mutants are generated from."""
    return hashlib.sha256(_source().encode()).hexdigest()


def _is_call(node: ast.AST, obj: str, attr: str) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == attr
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == obj
    )


def _mutable_symbol(call: ast.Call) -> bool:
    if not call.args or not isinstance(call.args[0], ast.Constant):
        return False
    name = call.args[0].value
    return isinstance(name, str) and VOCABULARY[name].role == "design"


def _model_functions(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    """Top-level functions that read or write the state (take ``st``), by name, with the
    actors of the actions they belong to."""
    out: dict[str, ast.FunctionDef] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and any(a.arg == "st" for a in node.args.args):
            out[node.name] = node
    return out


def _environment_functions() -> set[str]:
    return {a.body.__name__ for a in actions_module.ACTIONS if a.actor == "net"}


def _guard_nodes(fn: ast.FunctionDef) -> Iterator[ast.Call]:
    for node in ast.walk(fn):
        if _is_call(node, "ops", "require"):
            assert isinstance(node, ast.Call)
            yield node


def _sites_of(tree: ast.Module) -> list[tuple[Site, ast.AST]]:
    skip = _environment_functions()
    out: list[tuple[Site, ast.AST]] = []
    counts: dict[tuple[str, str], int] = {}

    def add(
        fn: str,
        op: str,
        node: ast.AST,
        text_node: ast.AST | None = None,
        symbol: str | None = None,
    ) -> None:
        k = counts.get((fn, op), 0) + 1
        counts[(fn, op)] = k
        text = ast.unparse(text_node or node)
        if len(text) > 90:
            text = text[:87] + "..."
        site = Site(f"{fn}:{op}:{k}", fn, op, getattr(node, "lineno", 0), text, symbol)
        out.append((site, node))

    for name, fn in _model_functions(tree).items():
        if name in skip:
            continue
        guards = list(_guard_nodes(fn))
        for g in guards:
            add(name, "guard-drop", g)
            add(name, "guard-negate", g)
        for g in guards:
            for inner in ast.walk(g):
                if _is_call(inner, "ops", "and_"):
                    assert isinstance(inner, ast.Call)
                    if len(inner.args) > 1:
                        for arg in inner.args:
                            add(name, "conjunct-drop", arg)
        for node in ast.walk(fn):
            is_update = _is_call(node, "st", "set") or _is_call(node, "st", "set_all")
            if is_update and isinstance(node, ast.Call) and _mutable_symbol(node):
                first = node.args[0]
                assert isinstance(first, ast.Constant)  # checked by _mutable_symbol
                symbol = str(first.value)
                add(name, "update-drop", node, symbol=symbol)
                value = node.args[-1]
                if isinstance(value, ast.Constant) and isinstance(value.value, bool):
                    add(name, "const-flip", value, node, symbol=symbol)
        for node in ast.walk(fn):
            if isinstance(node, ast.Compare):
                for op in node.ops:
                    if type(op) in _FLIP_CMP:
                        add(name, "compare-flip", node)
                        break
        for node in ast.walk(fn):
            # Python branches in a model function may only test the option profile (the
            # modelling language's rule), so every one is an option test.
            if isinstance(node, (ast.If, ast.IfExp)):
                add(name, "option-flip", node.test)
    return out


@cache
def sites() -> tuple[Site, ...]:
    """Every mutation site of the model, in a stable order."""
    tree = ast.parse(_source())
    return tuple(s for s, _n in _sites_of(tree))


# -- building a mutant -----------------------------------------------------------------------


class _Apply(ast.NodeTransformer):
    """Rewrite the one node of ``site`` (found by identity in a fresh tree)."""

    def __init__(self, target: ast.AST, operator: str) -> None:
        self.target = target
        self.operator = operator

    @staticmethod
    def _hit(node: ast.expr) -> ast.expr:
        return ast.Call(ast.Name(_HIT, ast.Load()), [node], [])

    def visit_Expr(self, node: ast.Expr) -> Any:
        if node.value is self.target and self.operator in ("guard-drop", "update-drop"):
            return ast.Expr(self._hit(ast.Constant(None)))
        return self.generic_visit(node)

    def generic_visit(self, node: ast.AST) -> ast.AST:
        if node is self.target:
            return self._rewrite(node)
        for fname, old in ast.iter_fields(node):
            if isinstance(old, list):
                new_list: list[Any] = []
                for item in old:
                    if item is self.target and self.operator == "conjunct-drop":
                        new_list.append(self._hit(ast.Constant(True)))
                        continue
                    if isinstance(item, ast.AST):
                        item = self.visit(item)
                    new_list.append(item)
                setattr(node, fname, new_list)
            elif isinstance(old, ast.AST):
                setattr(node, fname, self.visit(old))
        return node

    def _rewrite(self, node: ast.AST) -> ast.AST:
        op = self.operator
        if op == "guard-negate":
            assert isinstance(node, ast.Call)
            cond = node.args[0]
            neg = ast.Call(
                ast.Attribute(ast.Name("ops", ast.Load()), "not_", ast.Load()), [cond], []
            )
            return ast.Call(node.func, [self._hit(neg)], [])
        if op == "const-flip":
            assert isinstance(node, ast.Constant)
            return self._hit(ast.Constant(not node.value))
        if op == "compare-flip":
            assert isinstance(node, ast.Compare)
            ops = [_FLIP_CMP.get(type(o), type(o))() for o in node.ops]
            return self._hit(ast.Compare(node.left, ops, node.comparators))
        if op == "option-flip":
            assert isinstance(node, ast.expr)
            return self._hit(ast.UnaryOp(ast.Not(), node))
        raise MutateError(f"operator {op} cannot rewrite {ast.dump(node)[:60]}")


@dataclass
class Mutant:
    """The model with one site mutated."""

    site: Site
    actions: tuple[Action, ...]
    hits: list[int]

    def reached(self) -> bool:
        return bool(self.hits)


def build(site: Site) -> Mutant:
    """The mutant's actions (a fresh module executed from the mutated tree)."""
    tree = ast.parse(_source())
    found = [n for s, n in _sites_of(tree) if s.id == site.id]
    if not found:
        raise MutateError(f"no mutation site {site.id!r} in the model")
    new = _Apply(found[0], site.operator).visit(tree)
    ast.fix_missing_locations(new)
    hits: list[int] = []

    def hit(x: Any = None) -> Any:
        hits.append(1)
        return x

    module = types.ModuleType(f"{actions_module.__name__}__mutant")
    module.__dict__[_HIT] = hit
    code = compile(new, f"<mutant {site.id}>", "exec")
    exec(code, module.__dict__)  # the model's own source, rewritten above
    acts = tuple(module.__dict__["ACTIONS"])
    return Mutant(site, acts, hits)


def reached_under(mutant: Mutant, profile: Profile) -> bool:
    """Does the mutated code run when the actions are read under ``profile``?"""
    mutant.hits.clear()
    model = Model(profile, all_actions=mutant.actions)
    sorts = Sorts.unbounded()
    pre = SymbolicState(model.vocab, sorts, "mut")
    for act in model.actions:
        tr = transition(act, profile, pre, sorts, tag="mut")
        # a whole-table update (set_all) is a function read lazily: read every updated
        # symbol once, so that code inside such a function counts as run
        for name in act.modifies:
            sym = model.vocab[name]
            args = tuple(z3.Const(f"x{i}@mut", sorts.of(a)) for i, a in enumerate(sym.args))
            tr.post.get(name, *args)
    return mutant.reached()


# -- the equivalence declarations ---------------------------------------------------------


@dataclass(frozen=True)
class Equivalence:
    id: str
    site: str
    reason: str


def load_equivalents(path: Path = EQUIVALENTS_FILE) -> dict[str, Equivalence]:
    """The declared equivalent mutants, checked against the current sites."""
    if not path.exists():
        return {}
    data = read_toml(path)
    entries = data.get("mutant", [])
    if not isinstance(entries, list):
        raise SpecError(path, "mutant", "expected an array of tables ([[mutant]])")
    by_id = {s.id: s for s in sites()}
    out: dict[str, Equivalence] = {}
    for i, e in enumerate(entries):
        where = f"mutant[{i}]"
        if not isinstance(e, dict) or set(e) != {"id", "site", "reason"}:
            raise SpecError(path, where, "needs exactly the keys id, site, reason")
        if not all(isinstance(e[k], str) and e[k].strip() for k in ("id", "site", "reason")):
            raise SpecError(path, where, "id, site and reason must be non-empty strings")
        if e["id"] not in by_id:
            raise SpecError(path, f"{where}.id", f"no mutation site {e['id']!r} in the model")
        if by_id[e["id"]].text != e["site"]:
            raise SpecError(
                path,
                f"{where}.site",
                f"stale: the site {e['id']} now reads {by_id[e['id']].text!r}",
            )
        if e["id"] in out:
            raise SpecError(path, f"{where}.id", f"{e['id']} declared twice")
        out[e["id"]] = Equivalence(e["id"], e["site"], e["reason"])
    return out


# -- checking a mutant ----------------------------------------------------------------------


@dataclass
class MutantResult:
    site: Site
    verdict: str  # "killed" | "survived" | "equivalent" | "stale"
    profile: str
    killed_by: list[str]
    shortest: int | None
    reason: str
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.site.id,
            "function": self.site.function,
            "operator": self.site.operator,
            "line": self.site.line,
            "site": self.site.text,
            "clauses": list(clauses_of(self.site.function)),
            "verdict": self.verdict,
            "profile": self.profile,
            "killed_by": self.killed_by,
            "shortest": self.shortest,
            "reason": self.reason,
            "seconds": round(self.seconds, 2),
        }


def profiles_to_try(site: Site | None = None) -> list[tuple[str, Profile]]:
    """The baseline, then the shipped proposals that change an option the mutated
    code depends on (every shipped proposal when ``site`` is None): the options its
    function reads (directly or through the helpers it calls) and, for a mutated
    update, those of every function that reads the updated symbol."""
    from mbmssec.proofs.check import shipped_proposals

    spec = load_spec()
    read: frozenset[str] | None = None
    if site is not None:
        read = options_read(site.function)
        if site.operator in ("update-drop", "const-flip"):
            for fn in readers_of(site.symbol or ""):
                read = read | options_read(fn)
    out = [("baseline", spec.baseline())]
    out += [
        (p.name, p.profile)
        for p in shipped_proposals(spec)
        if read is None or set(p.overrides) & read
    ]
    return out


_PROPOSALS: dict[str, Profile] = {}
"""Profiles of proposals whose own behaviour is mutated (:func:`check_proposal_mutant`),
by the name their results are cached under."""


def _profile(name: str) -> Profile:
    """The profile a mutant is checked under, by name: the baseline, a shipped proposal,
    or a proposal registered in :data:`_PROPOSALS`."""
    if name in _PROPOSALS:
        return _PROPOSALS[name]
    return dict(profiles_to_try())[name]


@cache
def readers_of(symbol: str) -> frozenset[str]:
    """The model functions that read ``symbol`` (``st.get("symbol", ...)``)."""
    tree = ast.parse(_source())
    out = set()
    for fn in _model_functions(tree).values():
        for n in ast.walk(fn):
            if (
                _is_call(n, "st", "get")
                and isinstance(n, ast.Call)
                and n.args
                and isinstance(n.args[0], ast.Constant)
                and n.args[0].value == symbol
            ):
                out.add(fn.name)
    return frozenset(out)


@cache
def options_read(function: str) -> frozenset[str]:
    """The options a model function tests (``prof["..."]``, ``rekey_on(prof, ...)``),
    with those of the functions it calls."""
    tree = ast.parse(_source())
    defs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    seen: set[str] = set()
    out: set[str] = set()
    todo = [function]
    while todo:
        name = todo.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        for n in ast.walk(defs[name]):
            if (
                isinstance(n, ast.Subscript)
                and isinstance(n.value, ast.Name)
                and n.value.id == "prof"
                and isinstance(n.slice, ast.Constant)
            ):
                out.add(str(n.slice.value))
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name):
                todo.append(n.func.id)
    return frozenset(out)


@cache
def _original_proved(name: str) -> frozenset[int]:
    """The properties the unmutated model proves inductively under the profile."""
    from mbmssec.proofs.induction import prove

    model = Model(_profile(name))
    ind = prove(model)
    return frozenset(p.number for p in model.properties if ind.property_proved(p))


@cache
def _original_refuted(name: str) -> dict[int, int]:
    """The safety properties the unmutated model violates under the profile within
    :data:`REFUTED_DEPTH` steps on the mutant universe, with the shortest length of each."""
    from mbmssec.proofs.bmc import search

    model = Model(_profile(name))
    proved = _original_proved(name)
    props = [p for p in model.properties if p.number not in proved and p.kind != "liveness"]
    if not props:
        return {}
    found = search(model, props=props, depth=REFUTED_DEPTH, universe=MUTANT_UNIVERSE)
    return {n: f.depth for n, f in found.violations.items()}


@cache
def _original_effective(name: str) -> dict[str, int]:
    """The actions that change the state in some reachable step of the unmutated model
    under the profile (within the default depth)."""
    from mbmssec.proofs.bmc import search

    model = Model(_profile(name))
    found = search(
        model,
        actions=[a.name for a in model.actions],
        depth=EFFECT_DEPTH,
        universe=MUTANT_UNIVERSE,
        effective=True,
    )
    return {a: f.depth for a, f in found.witnesses.items()}


def _sizes(u: Universe) -> str:
    return f"{u.ue} UE, {u.svc} service, {u.tek} TEKs, {u.pkt} packet"


def clauses_of(function: str) -> tuple[str, ...]:
    """The clauses of the actions whose code includes ``function`` (a helper's clauses
    are those of every action calling it)."""
    out: list[str] = []
    for act in actions_module.ACTIONS:
        if act.body.__name__ == function or function in _callees(act.body):
            out += [c for c in act.clauses if c not in out]
    return tuple(out)


@cache
def _callees(fn: Callable[..., Any]) -> frozenset[str]:
    tree = ast.parse(inspect.getsource(fn))
    return frozenset(
        n.func.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    )


def _kill_under(
    name: str, profile: Profile, mutant: Mutant, *, deep: bool = True
) -> tuple[list[str], int | None, str]:
    """Try to kill a mutant of the model's source under one profile (see
    :func:`_kill_model`)."""
    return _kill_model(name, Model(profile, all_actions=mutant.actions), deep=deep)


def _kill_model(name: str, model: Model, *, deep: bool = True) -> tuple[list[str], int | None, str]:
    """Try to kill the mutant under one profile: (killed by, shortest, why not).
    ``deep=False`` (a declared equivalent) skips the deeper search of lost properties.

    A counterexample that the solver finds but the executable model cannot replay
    (:class:`~mbmssec.proofs.bmc.ToolBug`) kills the mutant too, as
    ``undefined-read:Pn``: the mutant reads a symbol before anything set it (one with no
    initial value, such as a service's next TEK before one is generated), which the
    unmutated model's guards never allow; the solver's reading lets that value be
    anything, the executable model's takes its default, so the mutant has no single
    meaning.  The unmutated model's counterexamples always replay (checked by every
    search), so this never hides a bug of the tool on the model itself."""
    from mbmssec.proofs.bmc import ToolBug

    try:
        return _kill_under_checked(name, model, deep)
    except ToolBug as exc:
        m = re.search(r"property (\d+)", str(exc))
        return [f"undefined-read:P{m.group(1)}" if m else "undefined-read"], None, ""


def _refuted_within(
    model: Model, props: list[Any], depth: int, universe: Universe
) -> tuple[list[str], int | None, str] | None:
    """The properties among ``props`` refuted within ``depth`` steps on ``universe``,
    stopping at the first depth with a violation, as a kill; None if none is."""
    from mbmssec.proofs.bmc import search

    if not props:
        return None
    found = search(model, props=props, depth=depth, universe=universe, first_depth_only=True)
    if not found.violations:
        return None
    shortest = min(f.depth for f in found.violations.values())
    return [f"P{n}" for n in sorted(found.violations)], shortest, ""


def _kill_under_checked(name: str, model: Model, deep: bool) -> tuple[list[str], int | None, str]:
    from mbmssec.proofs.bmc import search
    from mbmssec.proofs.induction import prove

    proved = _original_proved(name)
    ind = prove(model)
    lost = [p for p in model.properties if p.number in proved and not ind.property_proved(p)]
    safety = [p for p in lost if p.kind != "liveness"]
    killed = _refuted_within(model, safety, MUTANT_DEPTH, MUTANT_UNIVERSE)
    if killed:
        return killed
    for prop in lost:
        if prop.kind == "liveness":
            from mbmssec.proofs.liveness import find_lasso

            got = find_lasso(model, prop)
            if got.lasso is not None:
                return [f"P{prop.number}"], len(got.lasso.trace.steps), ""
    effective = _original_effective(name)
    had = sorted(set(effective) & {x.name for x in model.actions})
    # as deep as the unmutated model needed, and two steps more
    bound = max((effective[a] for a in had), default=0) + 2
    wit = search(model, actions=had, depth=bound, universe=MUTANT_UNIVERSE, effective=True)
    missing = [a for a in had if a not in wit.witnesses]
    if missing:
        return [f"witness:{a}" for a in missing], None, ""
    # a counterexample of the unmutated model that the mutant no longer has, or has in
    # fewer steps: the mutant removes behaviour (e.g. an attacker step it disables) or adds
    # some (a violation the unmutated model has no trace of within that many steps), so
    # it is not equivalent
    refuted = _original_refuted(name)
    if refuted:
        props = [p for p in model.properties if p.number in refuted]
        still = search(model, props=props, depth=max(refuted.values()), universe=MUTANT_UNIVERSE)
        gone = sorted(n for n in refuted if n not in still.violations)
        if gone:
            return [f"counterexample-gone:P{n}" for n in gone], refuted[gone[0]], ""
        sooner = sorted(n for n in refuted if still.violations[n].depth < refuted[n])
        if sooner:
            return (
                [f"counterexample-sooner:P{n}" for n in sooner],
                still.violations[sooner[0]].depth,
                "",
            )
    killed = _refuted_within(model, safety, TWO_SERVICE_DEPTH, TWO_SERVICES)  # shallow
    if killed:
        return killed
    if deep:  # last, as the costliest: deeper, for the lost properties only
        killed = _refuted_within(model, safety, DEEP_DEPTH, MUTANT_UNIVERSE)
        if killed:
            return killed
    if lost:
        return (
            [],
            None,
            f"no longer proved but not refuted within {DEEP_DEPTH} steps "
            f"({_sizes(MUTANT_UNIVERSE)}): {', '.join(f'P{p.number}' for p in lost)}",
        )
    return [], None, "every verdict unchanged"


@cache
def _original_induction(name: str) -> Any:
    from mbmssec.proofs.induction import prove

    return prove(Model(_profile(name)))


def proved_equivalent(name: str, mutant: Mutant) -> bool:
    """Is the mutant proved to take exactly the unmutated model's steps from every state
    satisfying the unmutated model's inductive invariant, under the profile?  For every
    action, with the same parameters, Z3 shows under the invariant that the guards agree
    and, when they hold, every symbol the action may write has the same value afterwards
    (over unbounded sorts: every population size).  The initial states are the same, so
    the mutant then reaches exactly the unmutated model's states and steps: it is
    equivalent, proved rather than declared.  ``unknown`` counts as not proved."""
    profile = _profile(name)
    return _models_equivalent(name, Model(profile), Model(profile, all_actions=mutant.actions))


def _models_equivalent(name: str, model: Model, mutated: Model) -> bool:
    """The proof of :func:`proved_equivalent`, for any mutated model of the profile."""
    import z3

    from mbmssec.model.dsl import Sort
    from mbmssec.model.symbolic import Sorts, SymbolicState, Z3Ops, param_consts, transition
    from mbmssec.proofs.induction import DEFAULT_RLIMIT, as_z3, invariant_formula

    profile = model.profile
    if [a.name for a in model.actions] != [a.name for a in mutated.actions]:
        return False
    sorts = Sorts.unbounded("_equiv")
    ops = Z3Ops(sorts)
    pre = SymbolicState(model.vocab, sorts, "equiv")
    inv = invariant_formula(model, _original_induction(name), sorts, pre)
    for act, mut in zip(model.actions, mutated.actions, strict=True):
        args = param_consts(act, sorts, "equiv")
        orig = transition(act, profile, pre, sorts, params=args, tag="equiv")
        other = transition(mut, profile, pre, sorts, params=args, tag="equiv")
        same: list[Any] = []
        for sym in model.vocab.symbols:
            if sym.name not in act.modifies and sym.name not in mut.modifies:
                continue
            if not sym.args:
                same.append(as_z3(orig.post.get(sym.name)) == as_z3(other.post.get(sym.name)))
            elif all(a is not Sort.INT for a in sym.args):
                same.append(
                    ops.forall_n(
                        sym.args,
                        lambda *xs, n=sym.name, a=orig.post, b=other.post: (
                            as_z3(a.get(n, *xs)) == as_z3(b.get(n, *xs))
                        ),
                    )
                )
            else:
                return False
        goal = z3.And(orig.guard == other.guard, z3.Implies(orig.guard, z3.And(*same)))
        solver = z3.Solver()
        solver.set("rlimit", DEFAULT_RLIMIT)
        solver.add(inv, z3.Not(goal))
        if solver.check() != z3.unsat:
            return False
    return True


PROVED_EQUIVALENT: Final = (
    "proved equivalent: under the unmutated model's inductive invariant every action "
    "takes the same steps (guards and writes), every population size (Z3)"
)


def check_mutant(site_id: str, equivalents: dict[str, Equivalence]) -> MutantResult:
    """Build one mutant and check it under each profile in which its code runs (baseline
    first, then the shipped proposals), until one kills it: induction first; the
    properties it no longer proves are searched for a shortest violation (stopping at
    the first depth with one); if none is violated, the actions that had a witness with
    an effect are searched for one."""
    t0 = time.perf_counter()
    site = {s.id: s for s in sites()}[site_id]
    mutant = build(site)
    declared = equivalents.get(site_id)

    def result(
        verdict: str, profile: str, killed_by: list[str], shortest: int | None, reason: str
    ) -> MutantResult:
        if verdict == "killed" and declared:
            verdict, reason = "stale", f"declared equivalent but killed by {', '.join(killed_by)}"
        elif verdict == "survived" and declared:
            verdict, reason = "equivalent", declared.reason
        return MutantResult(
            site, verdict, profile, killed_by, shortest, reason, time.perf_counter() - t0
        )

    # a proof of equivalence first: it is cheap, and no search can kill such a mutant
    first = next((n for n, p in profiles_to_try(site) if reached_under(mutant, p)), None)
    if first is not None and all(
        proved_equivalent(n, mutant) for n, p in profiles_to_try(site) if reached_under(mutant, p)
    ):
        return MutantResult(
            site, "equivalent", first, [], None, PROVED_EQUIVALENT, time.perf_counter() - t0
        )
    tried: list[str] = []
    first_why = ""
    for name, profile in profiles_to_try(site):
        if declared and tried:
            break  # a declared equivalent is checked under its first profile only
        if not reached_under(mutant, profile):
            continue
        killed_by, shortest, why = _kill_under(name, profile, mutant, deep=declared is None)
        if killed_by:
            return result("killed", name, killed_by, shortest, "")
        tried.append(name)
        first_why = first_why or why
    if not tried:
        return result("survived", "-", [], None, "its code runs under no shipped profile")
    return result(
        "survived",
        tried[0],
        [],
        None,
        f"{first_why}; not killed under {', '.join(tried)}",
    )


# -- mutants of a proposal's behaviour -----------------------------------------------------
#
# A proposal that states behaviour (mbmssec.model.behaviour) is mutated the same way, on its
# expression trees rather than on Python source: a guard dropped or negated, a conjunct of
# a guard dropped, an update of a design symbol dropped, a Boolean constant written by an
# update flipped, < and <= (> and >=) exchanged.  Each mutant is checked under the
# proposal's own profile against the unmutated proposal, exactly as a model mutant is
# against the model: killed when a property the proposal's model proves is refuted, a
# counterexample it has is gone, or an action loses its witness.  A survivor is a part of
# the proposal on which no verdict depends.


def _paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every sub-expression of an expression tree with its path (field names and indexes)."""
    import dataclasses

    from mbmssec.model.lang import Node

    yield path, node
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if isinstance(value, Node):
            yield from _paths(value, (*path, f.name))
        elif isinstance(value, tuple):
            for i, item in enumerate(value):
                if isinstance(item, Node):
                    yield from _paths(item, (*path, f.name, i))


def _replace_at(node: Any, path: tuple[Any, ...], new: Any) -> Any:
    import dataclasses

    if not path:
        return new
    name, rest = path[0], path[1:]
    value = getattr(node, name)
    if isinstance(value, tuple):
        i, rest = rest[0], rest[1:]
        items = list(value)
        items[i] = _replace_at(items[i], rest, new)
        return dataclasses.replace(node, **{name: tuple(items)})
    return dataclasses.replace(node, **{name: _replace_at(value, rest, new)})


@dataclass(frozen=True)
class _TreeSite:
    site: Site
    part: str  # "changes" | "actions"
    index: int  # which change or new action
    field: str  # "guards" | "updates" | "replace"
    item: int  # which guard or update
    path: tuple[Any, ...]  # inside the item's expression (an update's value: ("value", ...))


def _tree_sites(behaviour: Any) -> list[_TreeSite]:
    from mbmssec.model import lang
    from mbmssec.model.lang import Binary, Lit

    vocab = VOCABULARY
    declared = {d.name: d.role for d in behaviour.states}
    out: list[_TreeSite] = []
    counts: dict[tuple[str, str], int] = {}

    def add(
        entity: str,
        op: str,
        part: str,
        index: int,
        field: str,
        item: int,
        path: tuple[Any, ...],
        text: str,
        symbol: str | None = None,
    ) -> None:
        k = counts.get((entity, op), 0) + 1
        counts[(entity, op)] = k
        if len(text) > 90:
            text = text[:87] + "..."
        site = Site(f"{entity}:{op}:{k}", entity, op, 0, text, symbol)
        out.append(_TreeSite(site, part, index, field, item, path))

    def role(symbol: str) -> str:
        return declared.get(symbol) or vocab[symbol].role

    entities = [("changes", i, c.action, c) for i, c in enumerate(behaviour.changes)]
    entities += [("actions", i, a.name, a) for i, a in enumerate(behaviour.actions)]
    for part, index, entity, obj in entities:
        guards = getattr(obj, "guards", ())
        for g, guard in enumerate(guards):
            text = lang.render(guard)
            add(entity, "guard-drop", part, index, "guards", g, (), text)
            add(entity, "guard-negate", part, index, "guards", g, (), text)
        for g, guard in enumerate(guards):
            inner: set[tuple[Any, ...]] = set()
            for path, node in _paths(guard):
                if not (isinstance(node, Binary) and node.op == "and") or path in inner:
                    continue
                # the conjuncts of a whole chain a and b and c, each dropped in turn
                for leaf_path, leaf in _conjuncts_of(node, path, inner):
                    add(
                        entity,
                        "conjunct-drop",
                        part,
                        index,
                        "guards",
                        g,
                        leaf_path,
                        lang.render(leaf),
                    )
        fields = [("replace", getattr(obj, "replace", ())), ("updates", obj.updates)]
        for field, updates in fields:
            for u, upd in enumerate(updates):
                if role(upd.name) != "design":
                    continue
                text = lang.render_update(upd)
                add(entity, "update-drop", part, index, field, u, (), text, upd.name)
                if isinstance(upd.value, Lit) and isinstance(upd.value.value, bool):
                    add(entity, "const-flip", part, index, field, u, ("value",), text, upd.name)
        for field, items in [("guards", guards), *fields]:
            for u, item in enumerate(items):
                root = item if field == "guards" else item.value
                prefix: tuple[Any, ...] = () if field == "guards" else ("value",)
                if field != "guards" and role(item.name) != "design":
                    continue
                for path, node in _paths(root):
                    if isinstance(node, Binary) and node.op in ("<", "<=", ">", ">="):
                        add(
                            entity,
                            "compare-flip",
                            part,
                            index,
                            field,
                            u,
                            (*prefix, *path),
                            lang.render(node),
                        )
    return out


def _conjuncts_of(
    node: Any, path: tuple[Any, ...], inner: set[tuple[Any, ...]]
) -> list[tuple[tuple[Any, ...], Any]]:
    """The leaves of the 'and' chain at ``path`` with their paths (the chain's inner
    'and' nodes are added to ``inner``)."""
    from mbmssec.model.lang import Binary

    if isinstance(node, Binary) and node.op == "and":
        inner.add(path)
        return [
            *_conjuncts_of(node.left, (*path, "left"), inner),
            *_conjuncts_of(node.right, (*path, "right"), inner),
        ]
    return [(path, node)]


def proposal_sites(behaviour: Any) -> tuple[Site, ...]:
    """Every mutation site of a proposal's behaviour, in a stable order."""
    return tuple(t.site for t in _tree_sites(behaviour))


def mutate_behaviour(behaviour: Any, site_id: str) -> Any:
    """The behaviour with one site mutated."""
    import dataclasses

    from mbmssec.model.lang import Binary, Lit, Unary

    found = [t for t in _tree_sites(behaviour) if t.site.id == site_id]
    if not found:
        raise MutateError(f"no mutation site {site_id!r} in the proposal")
    t = found[0]
    parts = list(getattr(behaviour, t.part))
    obj = parts[t.index]
    items = list(getattr(obj, t.field))
    op = t.site.operator
    if op in ("guard-drop", "update-drop"):
        del items[t.item]
    elif op == "guard-negate":
        items[t.item] = Unary("not", items[t.item])
    elif op == "conjunct-drop":
        items[t.item] = _replace_at(items[t.item], t.path, Lit(True))
    elif op == "const-flip":
        upd = items[t.item]
        assert isinstance(upd.value, Lit)
        items[t.item] = dataclasses.replace(upd, value=Lit(not upd.value.value))
    elif op == "compare-flip":
        target = items[t.item]
        node = target
        for step in t.path:
            node = node[step] if isinstance(step, int) else getattr(node, step)
        assert isinstance(node, Binary)
        flipped = {"<": "<=", "<=": "<", ">": ">=", ">=": ">"}[node.op]
        items[t.item] = _replace_at(target, t.path, dataclasses.replace(node, op=flipped))
    else:  # pragma: no cover - every operator is handled above
        raise MutateError(f"operator {op} does not apply to a proposal")
    parts[t.index] = dataclasses.replace(obj, **{t.field: tuple(items)})
    return dataclasses.replace(behaviour, **{t.part: tuple(parts)})


def check_proposal_mutant(ref: str, site_id: str) -> MutantResult:
    """Check one mutant of a proposal's behaviour under the proposal's profile (``ref``:
    a shipped proposal's name or a file): proved equivalent, killed, or survived."""
    from mbmssec.proofs.check import resolve_proposal

    t0 = time.perf_counter()
    proposal = resolve_proposal(ref)
    if proposal.behaviour is None:
        raise MutateError(f"{ref}: the proposal states no behaviour to mutate")
    name = f"proposal {proposal.name}"
    _PROPOSALS[name] = proposal.profile
    site = {s.id: s for s in proposal_sites(proposal.behaviour)}[site_id]
    mutated = Model(proposal.profile.with_behaviour(mutate_behaviour(proposal.behaviour, site_id)))
    if _models_equivalent(name, Model(proposal.profile), mutated):
        return MutantResult(
            site, "equivalent", proposal.name, [], None, PROVED_EQUIVALENT, time.perf_counter() - t0
        )
    killed_by, shortest, why = _kill_model(name, mutated)
    verdict = "killed" if killed_by else "survived"
    return MutantResult(
        site, verdict, proposal.name, killed_by, shortest, why, time.perf_counter() - t0
    )

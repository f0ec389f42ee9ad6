"""Load and validate the requirements data: clauses, options, profiles and proposals.

The TOML files next to this module are the single declaration of every clause
identifier and every option.  Everything else (model, proofs, implementation, docs)
refers to them by identifier, and :func:`load_spec` rejects data that would let those
references drift: duplicate or dangling identifiers, unknown option values, options
whose constraints are unsatisfiable.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from mbmssec.errors import MbmssecError

SPEC_DIR = Path(__file__).resolve().parent
CLAUSE_KINDS = ("normative", "informative", "ffs", "out-of-scope")


class SpecError(MbmssecError):
    """Bad requirements data; the message names the file and the field."""

    def __init__(self, source: str | Path, where: str, problem: str) -> None:
        super().__init__(f"{source}: {where}: {problem}")
        self.source = str(source)
        self.where = where
        self.problem = problem

    def __reduce__(self) -> tuple[Any, ...]:
        # picklable, so that an error raised in a worker process reaches the caller
        return (type(self), (self.source, self.where, self.problem))


@dataclass(frozen=True)
class Clause:
    """One restated statement of the proposed text."""

    id: str
    clause: str
    kind: str
    statement: str
    summary: str
    option: str | None = None
    modelled: bool = True
    why: str | None = None


@dataclass(frozen=True)
class Option:
    """One open point of the text, with its allowed values and the baseline choice."""

    name: str
    values: tuple[str, ...]
    baseline: str
    clauses: tuple[str, ...]
    doc: str
    model: str
    requires: Mapping[str, str] = field(default_factory=dict)

    @property
    def neutral(self) -> bool:
        """True when the abstract model is the same for every value of this option."""
        return self.model.startswith("neutral")

    @property
    def model_note(self) -> str:
        """What the label says besides ``modelled`` or ``neutral``: what the model shows
        of the option, or why it is the same for every value ("" if nothing)."""
        return self.model.partition(": ")[2]


@dataclass(frozen=True)
class Spec:
    """All clauses and options, by identifier."""

    clauses: Mapping[str, Clause]
    options: Mapping[str, Option]

    def baseline(self) -> Profile:
        """The profile that takes every option at its baseline value."""
        return Profile(self, {}, title="Baseline (proposed TS 33.246 text)")

    def profile(
        self, overrides: Mapping[str, str], title: str = "", source: str = "<overrides>"
    ) -> Profile:
        """A profile with some options changed; unknown names or values are errors."""
        for name, value in overrides.items():
            if name not in self.options:
                raise SpecError(
                    source,
                    f"options.{name}",
                    f"unknown option (known: {', '.join(sorted(self.options))})",
                )
            opt = self.options[name]
            if value not in opt.values:
                raise SpecError(
                    source,
                    f"options.{name}",
                    f"unknown value {value!r} (allowed: {', '.join(opt.values)})",
                )
        prof = Profile(self, dict(overrides), title=title or _describe(overrides))
        prof.check_constraints(source)
        return prof


def _describe(overrides: Mapping[str, str]) -> str:
    if not overrides:
        return "Baseline (proposed TS 33.246 text)"
    return ", ".join(f"{k}={v}" for k, v in sorted(overrides.items()))


class Profile(Mapping[str, str]):
    """An assignment of a value to every option (the baseline plus overrides).

    Reading an option that does not exist raises :class:`SpecError`, so a typo in the
    model is caught the first time the model runs.
    """

    def __init__(
        self, spec: Spec, overrides: dict[str, str], title: str, behaviour: Any = None
    ) -> None:
        self._spec = spec
        self._overrides = dict(overrides)
        self.title = title
        #: what a proposal changes in the model's behaviour besides option values (a
        #: ``mbmssec.model.behaviour.Behaviour``, applied by the model), or None
        self.behaviour = behaviour

    def with_behaviour(self, behaviour: Any) -> Profile:
        """The same option values with a proposal's behaviour."""
        return Profile(self._spec, self._overrides, self.title, behaviour)

    @property
    def spec(self) -> Spec:
        """The specification whose options this profile assigns."""
        return self._spec

    def __getitem__(self, name: str) -> str:
        if name not in self._spec.options:
            raise SpecError(
                "<model>", name, "the model reads an option that spec/options.toml does not declare"
            )
        return self._overrides.get(name, self._spec.options[name].baseline)

    def __iter__(self) -> Iterator[str]:
        return iter(self._spec.options)

    def __len__(self) -> int:
        return len(self._spec.options)

    def __hash__(self) -> int:
        return hash((tuple(sorted(self._overrides.items())), self.behaviour))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Profile)
            and dict(self) == dict(other)
            and self.behaviour == other.behaviour
        )

    def __repr__(self) -> str:
        return f"Profile({self.title!r})"

    @property
    def overrides(self) -> dict[str, str]:
        """The options that differ from the baseline."""
        return {k: v for k, v in self._overrides.items() if v != self._spec.options[k].baseline}

    def check_constraints(self, source: str = "<profile>") -> None:
        """Reject combinations an option's ``requires`` rules out."""
        for name, opt in self._spec.options.items():
            rule = opt.requires.get(self[name])
            if rule is None:
                continue
            other, _, allowed = rule.partition("=")
            if self[other] not in allowed.split("|"):
                raise SpecError(
                    source,
                    f"options.{name}",
                    f"{name}={self[name]} requires {other} in {{{allowed}}}, "
                    f"but {other}={self[other]}",
                )


def _table_list(data: dict[str, Any], key: str, source: Path) -> list[dict[str, Any]]:
    items = data.get(key)
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise SpecError(source, key, f"expected an array of [[{key}]] tables")
    return items


def _req(item: dict[str, Any], key: str, where: str, source: Path, kind: type = str) -> Any:
    if key not in item:
        raise SpecError(source, where, f"missing field {key!r}")
    value = item[key]
    if not isinstance(value, kind):
        raise SpecError(source, f"{where}.{key}", f"expected {kind.__name__}")
    return value


def read_toml(path: Path) -> dict[str, Any]:
    """Parse one TOML file, turning syntax errors into :class:`SpecError`."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise SpecError(path, "file", "no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(path, "syntax", str(exc)) from None


def _load_clauses(path: Path) -> dict[str, Clause]:
    clauses: dict[str, Clause] = {}
    for n, item in enumerate(_table_list(read_toml(path), "clause", path)):
        where = f"clause[{n}]"
        cid = _req(item, "id", where, path)
        where = f"clause {cid}"
        if cid in clauses:
            raise SpecError(path, where, "duplicate clause id")
        kind = _req(item, "kind", where, path)
        if kind not in CLAUSE_KINDS:
            raise SpecError(path, f"{where}.kind", f"unknown kind {kind!r}")
        modelled = item.get("modelled", True)
        if not modelled and not item.get("why"):
            raise SpecError(path, where, "a clause the model leaves out needs a 'why'")
        clauses[cid] = Clause(
            id=cid,
            clause=_req(item, "clause", where, path),
            kind=kind,
            statement=_req(item, "statement", where, path),
            summary=_req(item, "summary", where, path),
            option=item.get("option"),
            modelled=bool(modelled),
            why=item.get("why"),
        )
    return clauses


def _load_options(path: Path, clauses: Mapping[str, Clause]) -> dict[str, Option]:
    options: dict[str, Option] = {}
    for n, item in enumerate(_table_list(read_toml(path), "option", path)):
        name = _req(item, "name", f"option[{n}]", path)
        where = f"option {name}"
        if name in options:
            raise SpecError(path, where, "duplicate option name")
        values = tuple(_req(item, "values", where, path, list))
        baseline = _req(item, "baseline", where, path)
        if baseline not in values:
            raise SpecError(path, f"{where}.baseline", f"{baseline!r} is not one of {values}")
        refs = tuple(_req(item, "clauses", where, path, list))
        for ref in refs:
            if ref not in clauses:
                raise SpecError(path, f"{where}.clauses", f"dangling clause id {ref!r}")
        model = _req(item, "model", where, path)
        if model != "modelled" and not model.startswith(("modelled: ", "neutral: ")):
            raise SpecError(
                path,
                f"{where}.model",
                "expected 'modelled', 'modelled: <what the model shows>' or 'neutral: <why>'",
            )
        requires = item.get("requires", {})
        for value in requires:
            if value not in values:
                raise SpecError(path, f"{where}.requires", f"unknown value {value!r}")
        options[name] = Option(
            name=name,
            values=values,
            baseline=baseline,
            clauses=refs,
            doc=_req(item, "doc", where, path),
            model=model,
            requires=dict(requires),
        )
    return options


def load_spec_from(directory: Path) -> Spec:
    """Load and cross-check ``clauses.toml`` and ``options.toml`` from a directory."""
    clauses = _load_clauses(directory / "clauses.toml")
    options = _load_options(directory / "options.toml", clauses)
    for clause in clauses.values():
        if clause.option is not None and clause.option not in options:
            raise SpecError(
                directory / "clauses.toml",
                f"clause {clause.id}.option",
                f"dangling option name {clause.option!r}",
            )
        if clause.kind == "ffs" and clause.option is None:
            raise SpecError(
                directory / "clauses.toml",
                f"clause {clause.id}",
                "an FFS clause must name the option that captures it",
            )
    for opt in options.values():
        for rule in opt.requires.values():
            other, _, allowed = rule.partition("=")
            if other not in options or not set(allowed.split("|")) <= set(options[other].values):
                raise SpecError(
                    directory / "options.toml",
                    f"option {opt.name}.requires",
                    f"bad constraint {rule!r}",
                )
    return Spec(clauses=clauses, options=options)


@cache
def load_spec() -> Spec:
    """The project's requirements data (cached: it is immutable)."""
    return load_spec_from(SPEC_DIR)


def load_expectations(path: Path) -> frozenset[int] | None:
    """The ``expect_violated`` list of a profile file (``None`` when it has none)."""
    data = read_toml(path)
    value = data.get("expect_violated")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, int) for v in value):
        raise SpecError(path, "expect_violated", "expected a list of property numbers")
    return frozenset(value)


def load_profile(path: Path, spec: Spec | None = None) -> Profile:
    """Read a profile file: an optional ``title`` and an ``[options]`` table."""
    spec = spec or load_spec()
    data = read_toml(path)
    unknown = set(data) - {"title", "options", "rationale", "expect_violated"}
    if unknown:
        raise SpecError(path, "top level", f"unknown keys {sorted(unknown)}")
    options = data.get("options", {})
    if not isinstance(options, dict) or not all(isinstance(v, str) for v in options.values()):
        raise SpecError(path, "options", 'expected a table of option = "value"')
    title = data.get("title", path.stem)
    if not isinstance(title, str):
        raise SpecError(path, "title", "expected a string")
    return spec.profile(options, title=title, source=str(path))

"""Checking proposed changes to the text against today's text.

A *proposal* (``spec/proposals/*.toml``, format in ``spec/proposals/README.md``) is a
small data file: a title, a rationale, the clauses it touches, option overrides and
optional replacement text.  :func:`check_profile` proves or refutes every property
under one option profile:

* an invariant, step or response property is **proved** when the inductive fixpoint of
  :mod:`mbmssec.proofs.induction` keeps it (every population size) *and* the proof is
  not vacuous: the initial states are satisfiable and every action of the profile is
  enabled in some reachable state, shown by a replayed bounded witness;
* it is **refuted** when bounded model checking finds a shortest trace violating it
  (replayed on the executable model before it is reported);
* otherwise it is **unknown** (not inductive with the lemmas, and no counterexample up
  to the depth searched), with the counterexample to induction attached.

:func:`compare` sets a proposal's verdicts against the baseline's.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mbmssec.model.actions import ACTIONS
from mbmssec.model.behaviour import SECTIONS, Behaviour, load_behaviour
from mbmssec.model.concrete import Universe
from mbmssec.model.explain import explain
from mbmssec.model.machine import Model
from mbmssec.model.properties import PROPERTIES, Property
from mbmssec.model.trace import Trace
from mbmssec.model.vocabulary import VOCABULARY
from mbmssec.proofs.bmc import BMC_UNIVERSE, DEFAULT_DEPTH, Found, search
from mbmssec.proofs.induction import DEFAULT_RLIMIT, Cti, InductionResult, Query, prove
from mbmssec.proofs.liveness import LASSO_DEPTH, MAX_PARAM, LassoSearch, find_lasso
from mbmssec.proofs.results import (
    Attribution,
    CtiResult,
    ProfileResult,
    ProposalInfo,
    ProposalResult,
    QueryResult,
    Results,
    VerdictResult,
)
from mbmssec.spec.loader import SPEC_DIR, Profile, Spec, SpecError, load_spec, read_toml

PROPOSALS_DIR = SPEC_DIR / "proposals"

Progress = Callable[[str], None]


# -- proposals -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Proposal:
    """One proposed change to the text, as read from its data file."""

    path: Path
    name: str
    title: str
    rationale: str
    clauses: tuple[str, ...]
    overrides: Mapping[str, str]
    replacements: Mapping[str, str]
    expect_broken: tuple[int, ...]
    expect_fixed: tuple[int, ...]
    profile: Profile
    #: properties expected to be no longer proved without being refuted (a liveness
    #: property with no fair lasso within the bound)
    expect_weakened: tuple[int, ...] = ()
    #: what the proposal changes in the model's behaviour (its ``state``, ``change``,
    #: ``action`` and ``property`` tables, see :mod:`mbmssec.model.behaviour`), or None
    behaviour: Behaviour | None = None

    @property
    def added(self) -> dict[int, str]:
        """The properties the proposal adds, by number, with the verdict each expects
        ("holds" or "violated")."""
        if self.behaviour is None:
            return {}
        return {p.number: p.expect for p in self.behaviour.properties}

    @property
    def reference(self) -> str:
        """How to name the proposal to :func:`resolve_proposal`: a shipped one by its name,
        another by its file."""
        shipped = PROPOSALS_DIR / f"{self.name}.toml"
        if shipped.exists() and shipped.resolve() == self.path.resolve():
            return self.name
        return str(self.path.resolve())

    def summary(self) -> str:
        """What the proposal changes, in a few words: its option values and behaviour."""
        parts = [f"{k}={v}" for k, v in self.overrides.items()]
        b = self.behaviour
        if b is not None:
            parts += [f"new state {s.name}" for s in b.states]
            parts += [f"{'disables' if c.disable else 'changes'} {c.action}" for c in b.changes]
            parts += [f"new action {a.name}" for a in b.actions]
            parts += [f"new property P{p.number}" for p in b.properties]
        return ", ".join(parts)


_PROPOSAL_KEYS = {"title", "rationale", "clauses", "options", "replace", "expect", *SECTIONS}


def _str(data: Mapping[str, Any], key: str, path: Path) -> str:
    value = data.get(key)
    if value is None:
        raise SpecError(path, key, "missing field")
    if not isinstance(value, str) or not value.strip():
        raise SpecError(path, key, "expected a non-empty string")
    return value


def load_proposal(path: Path, spec: Spec | None = None) -> Proposal:
    """Read and validate one proposal file (errors name the file and the field)."""
    spec = spec or load_spec()
    data = read_toml(path)
    unknown = set(data) - _PROPOSAL_KEYS
    if unknown:
        raise SpecError(
            path,
            "top level",
            f"unknown keys {sorted(unknown)} (allowed: {', '.join(sorted(_PROPOSAL_KEYS))})",
        )
    title = _str(data, "title", path)
    rationale = _str(data, "rationale", path)
    clauses = data.get("clauses")
    if not isinstance(clauses, list) or not clauses or not all(isinstance(c, str) for c in clauses):
        raise SpecError(path, "clauses", "expected a non-empty list of clause ids")
    for i, cid in enumerate(clauses):
        if cid not in spec.clauses:
            raise SpecError(path, f"clauses[{i}]", f"unknown clause id {cid!r}")
    options = data.get("options", {})
    if not isinstance(options, dict) or not all(isinstance(v, str) for v in options.values()):
        raise SpecError(path, "options", 'expected a table of option = "value"')
    replace = data.get("replace", {})
    if not isinstance(replace, dict):
        raise SpecError(path, "replace", 'expected a table of "clause id" = "new text"')
    for cid, text in replace.items():
        if cid not in spec.clauses:
            raise SpecError(path, f"replace.{cid}", f"unknown clause id {cid!r}")
        if not isinstance(text, str) or not text.strip():
            raise SpecError(path, f"replace.{cid}", "expected the replacement text")
        if cid not in clauses:
            raise SpecError(path, f"replace.{cid}", "a replaced clause must be listed in 'clauses'")
    expect = data.get("expect", {})
    if not isinstance(expect, dict) or set(expect) - {"broken", "fixed", "weakened"}:
        raise SpecError(
            path, "expect", "expected a table with 'broken', 'fixed' (and 'weakened') lists"
        )
    numbers = {p.number for p in Model.baseline().properties}
    lists: dict[str, tuple[int, ...]] = {}
    for key in ("broken", "fixed", "weakened"):
        value = expect.get(key, [])
        if not isinstance(value, list) or not all(
            isinstance(n, int) and not isinstance(n, bool) for n in value
        ):
            raise SpecError(path, f"expect.{key}", "expected a list of property numbers")
        for n in value:
            if n not in numbers:
                raise SpecError(path, f"expect.{key}", f"unknown property {n}")
        lists[key] = tuple(sorted(value))
    profile = spec.profile(options, title=title, source=str(path))
    behaviour = load_behaviour(
        data,
        str(path),
        path.stem,
        vocab=VOCABULARY,
        actions=ACTIONS,
        properties=PROPERTIES,
        clause_ids=frozenset(spec.clauses),
    )
    if behaviour is not None:
        profile = profile.with_behaviour(behaviour)
    return Proposal(
        path=path,
        name=path.stem,
        title=title,
        rationale=rationale,
        clauses=tuple(clauses),
        overrides=dict(options),
        replacements=dict(replace),
        expect_broken=lists["broken"],
        expect_fixed=lists["fixed"],
        expect_weakened=lists["weakened"],
        profile=profile,
        behaviour=behaviour,
    )


def shipped_proposals(spec: Spec | None = None) -> list[Proposal]:
    """Every proposal in ``spec/proposals``, by file name."""
    return [load_proposal(p, spec) for p in sorted(PROPOSALS_DIR.glob("*.toml"))]


def resolve_proposal(ref: str, spec: Spec | None = None) -> Proposal:
    """A proposal given as a path, or as the name of a shipped one."""
    path = Path(ref)
    if not path.exists():
        shipped = PROPOSALS_DIR / f"{ref}.toml"
        if shipped.exists():
            path = shipped
        else:
            names = ", ".join(sorted(p.stem for p in PROPOSALS_DIR.glob("*.toml")))
            raise SpecError(ref, "file", f"no such file or shipped proposal (shipped: {names})")
    return load_proposal(path, spec)


# -- verdicts ------------------------------------------------------------------------------


@dataclass
class Verdict:
    """The verdict on one property under one profile."""

    number: int
    name: str
    kind: str
    verdict: str  # "proved" | "refuted" | "unknown"
    how: str
    lemmas: list[str] = field(default_factory=list)
    queries: list[Query] = field(default_factory=list)
    trace: Trace | None = None
    cti: Cti | None = None
    bound: int | None = None
    #: for a counterexample or lasso: one sentence of why it violates the property
    #: (:func:`mbmssec.model.explain.explain`) and the trace with its states in the
    #: Informal Trace Format (:meth:`mbmssec.model.trace.Trace.to_itf`)
    explanation: str | None = None
    itf: dict[str, Any] | None = None

    def to_result(self) -> VerdictResult:
        """The verdict as the results document records it (times rounded)."""
        return VerdictResult(
            number=self.number,
            name=self.name,
            kind=self.kind,
            verdict=self.verdict,
            how=self.how,
            lemmas=tuple(self.lemmas),
            bound=self.bound,
            query_seconds=round(sum(q.seconds for q in self.queries), 4),
            queries=tuple(_query_result(q) for q in self.queries),
            trace=self.trace,
            cti=None if self.cti is None else _cti_result(self.cti),
            explanation=self.explanation,
            itf=self.itf,
        )

    def to_json(self) -> dict[str, Any]:
        """The verdict as JSON, in the layout of :mod:`mbmssec.proofs.results`."""
        return self.to_result().to_json()


def _query_result(query: Query) -> QueryResult:
    return QueryResult(
        action=query.action,
        conjunct=query.conjunct,
        verdict=query.verdict,
        seconds=round(query.seconds, 4),
        core=tuple(query.core),
        reason=query.reason,
    )


def _cti_result(cti: Cti) -> CtiResult:
    return CtiResult(
        conjunct=cti.conjunct,
        action=cti.action,
        pre=tuple(cti.pre),
        post=tuple(cti.post),
        text=cti.render(),
    )


@dataclass
class Report:
    """Every property's verdict under one profile."""

    title: str
    overrides: dict[str, str]
    verdicts: dict[int, Verdict]
    witnesses: dict[str, Trace | None]
    induction: InductionResult
    depth: int
    universe: Universe
    seconds: float
    bmc_seconds: float

    @property
    def vacuous(self) -> bool:
        return not self.induction.initial_satisfiable or any(
            w is None for w in self.witnesses.values()
        )

    def holding(self) -> set[int]:
        return {n for n, v in self.verdicts.items() if v.verdict == "proved"}

    def to_result(self) -> ProfileResult:
        """The report as the results document records it (times rounded, witnesses as
        their lengths)."""
        return ProfileResult(
            title=self.title,
            overrides=dict(self.overrides),
            seconds=round(self.seconds, 3),
            bmc_seconds=round(self.bmc_seconds, 3),
            induction_seconds=round(self.induction.seconds, 3),
            depth=self.depth,
            universe=self.universe,
            initial_satisfiable=self.induction.initial_satisfiable,
            witnesses={a: (len(t.steps) if t else None) for a, t in self.witnesses.items()},
            invariant=tuple(self.induction.surviving),
            dropped=dict(self.induction.dropped),
            verdicts={n: self.verdicts[n].to_result() for n in sorted(self.verdicts)},
        )

    def to_json(self) -> dict[str, Any]:
        """The report as JSON, in the layout of :mod:`mbmssec.proofs.results`."""
        return self.to_result().to_json()


def check_profile(
    model: Model,
    *,
    depth: int = DEFAULT_DEPTH,
    universe: Universe = BMC_UNIVERSE,
    rlimit: int = DEFAULT_RLIMIT,
    progress: Progress | None = None,
    lasso_depth: int = LASSO_DEPTH,
) -> Report:
    """Prove or refute every property of ``model`` (see the module docstring)."""
    t0 = time.perf_counter()
    say = progress or (lambda _m: None)
    ind = prove(model, rlimit=rlimit, progress=say)
    unproved = [p for p in model.properties if not ind.property_proved(p) and p.kind != "liveness"]
    tb = time.perf_counter()
    lassos: dict[int, LassoSearch] = {}
    for prop in model.properties:
        if prop.kind == "liveness" and not ind.property_proved(prop):
            lassos[prop.number] = find_lasso(model, prop, depth=lasso_depth, progress=say)
    found = search(
        model,
        props=unproved,
        actions=[a.name for a in model.actions],
        depth=depth,
        universe=universe,
        progress=say,
    )
    bmc_seconds = time.perf_counter() - tb
    witnesses: dict[str, Trace | None] = {
        a.name: (found.witnesses[a.name].trace if a.name in found.witnesses else None)
        for a in model.actions
    }
    nonvacuous = ind.initial_satisfiable and all(w is not None for w in witnesses.values())
    verdicts: dict[int, Verdict] = {}
    for prop in model.properties:
        if prop.number in lassos:
            verdicts[prop.number] = _liveness_verdict(prop, ind, lassos[prop.number])
            continue
        verdicts[prop.number] = _verdict(
            prop, ind, found.violations.get(prop.number), nonvacuous, depth
        )
    for v in verdicts.values():
        if v.trace is not None:
            v.explanation = explain(model, v.trace, v.number)
            v.itf = v.trace.to_itf(model)
    return Report(
        title=model.profile.title,
        overrides=model.profile.overrides,
        verdicts=verdicts,
        witnesses=witnesses,
        induction=ind,
        depth=depth,
        universe=universe,
        seconds=time.perf_counter() - t0,
        bmc_seconds=bmc_seconds,
    )


def _liveness_verdict(prop: Property, ind: InductionResult, found: LassoSearch) -> Verdict:
    """A liveness property the certificate did not prove: refuted by a fair lasso, or
    unknown with the bound of the lasso search."""
    u = found.universe
    where = (
        f"{u.ue} UE, {u.svc} service, {u.tek} TEK, {u.pkt} packet, fetch times up to "
        f"{MAX_PARAM} ahead"
    )
    failed = ind.liveness_failed.get(prop.number, "certificate not checked")

    def make(verdict: str, how: str, trace: Trace | None = None) -> Verdict:
        return Verdict(
            number=prop.number,
            name=prop.name,
            kind=prop.kind,
            verdict=verdict,
            how=how,
            queries=ind.property_queries(prop),
            trace=trace,
        )

    if found.lasso is not None:
        lasso = found.lasso
        n_loop = len(lasso.trace.steps) - lasso.loop
        moves = ", ".join(f"{k} +{v}" for k, v in sorted(lasso.shift.items())) or "nothing"
        return make(
            "refuted",
            f"fair lasso: {lasso.loop}-step prefix, then a {n_loop}-step loop that "
            f"repeats forever (each turn moves {moves}), over {where}",
            lasso.trace,
        )
    if found.incomplete:
        searched = (
            f"no fair lasso found within {found.depth} steps over {where} (bounded, and "
            f"incomplete at depth {', '.join(map(str, found.incomplete))}: "
            f"{found.rejected} candidate loops that stop repeating after some turns were "
            "set aside)"
        )
    else:
        searched = f"no fair lasso within {found.depth} steps over {where} (bounded)"
    return make("unknown", f"not proved ({failed}); {searched}")


def _verdict(
    prop: Property, ind: InductionResult, cex: Found | None, nonvacuous: bool, depth: int
) -> Verdict:
    def make(
        verdict: str,
        how: str,
        lemmas: list[str] | None = None,
        trace: Trace | None = None,
        cti: Cti | None = None,
    ) -> Verdict:
        return Verdict(
            number=prop.number,
            name=prop.name,
            kind=prop.kind,
            verdict=verdict,
            how=how,
            lemmas=lemmas or [],
            queries=ind.property_queries(prop),
            trace=trace,
            cti=cti,
            bound=prop.bound,
        )

    if ind.property_proved(prop):
        if not nonvacuous:
            return make(
                "unknown", "proof is vacuous: some action is never enabled within the search depth"
            )
        how = {
            "invariant": "inductive invariant, every population size",
            "step": "every step from the inductive invariant, every population size",
            "liveness": "on every fair run, every population size (proof rule O0-O5 "
            "from the inductive invariant)",
        }.get(
            prop.kind,
            f"from every reachable state, within the plan's {prop.bound} "
            "steps, every population size",
        )
        return make("proved", how, lemmas=ind.lemmas_used(prop))
    if cex is not None:
        return make("refuted", f"shortest counterexample, {cex.depth} steps", trace=cex.trace)
    why = ind.dropped.get(_key(prop), "see the counterexample to induction")
    return make(
        "unknown",
        f"not inductive with the lemmas ({why}); no counterexample within {depth} steps",
        cti=ind.cti_for(prop),
    )


def _key(prop: Property) -> str:
    return f"P{prop.number}_{prop.name}"


# -- comparing with the baseline -----------------------------------------------------------


@dataclass
class Comparison:
    """A proposal's verdicts set against the baseline's."""

    proposal: Proposal | None
    baseline: Report
    report: Report
    broken: list[int]  # proved in the baseline, refuted now
    weakened: list[int]  # proved in the baseline, unknown now
    fixed: list[int]  # not proved in the baseline, proved now
    unchanged: list[int]
    added: list[int] = field(default_factory=list)  # properties the proposal adds
    #: which of the proposal's values cause each change (filled in by ``check``)
    attribution: Attribution | None = None

    @property
    def breaks(self) -> bool:
        """Does something that holds in the baseline no longer hold (or is no longer proved)?"""
        return bool(self.broken or self.weakened)

    def expectation_errors(self) -> list[str]:
        """Where the verdicts differ from what the proposal file expects."""
        if self.proposal is None:
            return []
        out = []
        if tuple(self.broken) != self.proposal.expect_broken:
            out.append(
                f"{self.proposal.path}: expect.broken is "
                f"{list(self.proposal.expect_broken)}, the check finds {self.broken}"
            )
        if tuple(self.fixed) != self.proposal.expect_fixed:
            out.append(
                f"{self.proposal.path}: expect.fixed is "
                f"{list(self.proposal.expect_fixed)}, the check finds {self.fixed}"
            )
        if tuple(self.weakened) != self.proposal.expect_weakened:
            out.append(
                f"{self.proposal.path}: expect.weakened is "
                f"{list(self.proposal.expect_weakened)}, the check finds {self.weakened} "
                "no longer proved but not refuted either"
            )
        for n, want in self.proposal.added.items():
            got = self.report.verdicts[n].verdict
            if (want == "holds") != (got == "proved") or (want == "violated") != (got == "refuted"):
                out.append(
                    f"{self.proposal.path}: property P{n} ({self.report.verdicts[n].name}) is "
                    f"expected to be {'proved' if want == 'holds' else 'refuted'}, the check "
                    f"finds it {got}"
                )
        return out

    def to_result(self) -> ProposalResult:
        """The comparison as the results document records it; only a comparison made for
        a proposal has a place there."""
        p = self.proposal
        if p is None:
            raise ValueError("a results document records comparisons made for a proposal")
        info = ProposalInfo(
            name=p.name,
            path=str(p.path),
            title=p.title,
            clauses=tuple(p.clauses),
            options=dict(p.overrides),
            rationale=p.rationale,
            replace=dict(p.replacements),
            expect_broken=p.expect_broken,
            expect_fixed=p.expect_fixed,
            expect_weakened=p.expect_weakened,
            behaviour=dict(p.behaviour.data) if p.behaviour is not None else {},
        )
        return ProposalResult(
            proposal=info,
            broken=tuple(self.broken),
            weakened=tuple(self.weakened),
            fixed=tuple(self.fixed),
            unchanged=tuple(self.unchanged),
            added=tuple(self.added),
            expectation_errors=tuple(self.expectation_errors()),
            report=self.report.to_result(),
            attribution=self.attribution,
        )

    def to_json(self) -> dict[str, Any]:
        """The comparison as JSON, in the layout of :mod:`mbmssec.proofs.results`."""
        return self.to_result().to_json()


def compare(baseline: Report, report: Report, proposal: Proposal | None = None) -> Comparison:
    """Which properties the change breaks, fixes, or leaves as they were."""
    broken, weakened, fixed, unchanged = [], [], [], []
    for n in sorted(baseline.verdicts):
        before = baseline.verdicts[n].verdict
        after = report.verdicts[n].verdict
        if before == "proved" and after == "refuted":
            broken.append(n)
        elif before == "proved" and after != "proved":
            weakened.append(n)
        elif before != "proved" and after == "proved":
            fixed.append(n)
        else:
            unchanged.append(n)
    added = sorted(set(report.verdicts) - set(baseline.verdicts))
    return Comparison(proposal, baseline, report, broken, weakened, fixed, unchanged, added)


def results_document(
    baseline: Report,
    comparisons: Sequence[Comparison],
    digest: str | None = None,
    files: Sequence[str] = (),
) -> Results:
    """The results document of one run: the baseline, each proposal's comparison with it,
    the hash of the sources (by default the current one) and the files written with it."""
    return Results(
        model_hash=model_hash() if digest is None else digest,
        baseline=baseline.to_result(),
        proposals={r.name: r for r in (c.to_result() for c in comparisons)},
        files=tuple(files),
    )


# -- provenance ----------------------------------------------------------------------------


def model_hash() -> str:
    """SHA-256 over the sources the verdicts depend on (model, spec data, lemmas, proof
    code), so stored results can be recognised as stale."""
    root = Path(__file__).resolve().parent.parent
    files: list[Path] = []
    for sub, pattern in (
        ("model", "*.py"),
        ("spec", "*.toml"),
        ("spec/proposals", "*.toml"),
        ("proofs", "*.py"),
    ):
        files.extend(sorted((root / sub).glob(pattern)))
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(root).as_posix().encode())
        h.update(b"\0")
        h.update(f.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def run_profiles(models: Iterable[Model], **kwargs: Any) -> list[Report]:
    """Check several profiles one after the other."""
    return [check_profile(m, **kwargs) for m in models]


def verdict_pool(jobs: int) -> ProcessPoolExecutor:
    """Worker processes for checking profiles in parallel, each check in a process of its
    own (one task per process, forked from a fresh fork server).

    Z3's answers, and so whether a query stays within its resource limit, depend on what
    the process asked Z3 before (terms are shared and numbered per process, and the
    solver's heuristics follow that numbering).  A worker reused for several checks, or
    forked from a process that checked something first, could give a profile a verdict
    that depends on which checks happened to run before it there: a verdict near its
    limit then changes from one run to the next.  A fresh process per check makes each
    verdict a function of the profile alone, as ``mbmssec check`` run by hand gives it.
    The processes are forked from a fork server, a process started afresh that has
    imported the checker and asked Z3 nothing (a new process costs a fork, not an
    interpreter start and the imports).
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["mbmssec.proofs.check", "mbmssec.proofs.mutate"])
    return ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=ctx, max_tasks_per_child=1)


def check_overrides(
    overrides: dict[str, str],
    depth: int = DEFAULT_DEPTH,
    universe: Universe = BMC_UNIVERSE,
    rlimit: int = DEFAULT_RLIMIT,
) -> Report:
    """Check the profile given by option overrides (a picklable entry point for worker
    processes)."""
    return check_profile(
        Model(load_spec().profile(overrides)), depth=depth, universe=universe, rlimit=rlimit
    )


def check_proposal(
    ref: str,
    depth: int = DEFAULT_DEPTH,
    universe: Universe = BMC_UNIVERSE,
    rlimit: int = DEFAULT_RLIMIT,
) -> Report:
    """Check the model of one proposal (a file or a shipped proposal's name), with its
    behaviour (a picklable entry point for worker processes)."""
    return check_profile(
        Model(resolve_proposal(ref).profile), depth=depth, universe=universe, rlimit=rlimit
    )


def single_changes(spec: Spec | None = None) -> list[dict[str, str]]:
    """Every change of one option to another value, with what its ``requires`` needs."""
    spec = spec or load_spec()
    out: list[dict[str, str]] = []
    for opt in spec.options.values():
        for value in opt.values:
            if value == opt.baseline:
                continue
            change = {opt.name: value}
            rule = opt.requires.get(value)
            if rule is not None:
                other, _, allowed = rule.partition("=")
                if spec.options[other].baseline not in allowed.split("|"):
                    change[other] = allowed.split("|")[0]
            out.append(change)
    return out


def pairwise_changes(spec: Spec | None = None) -> list[dict[str, str]]:
    """Every consistent combination of two single changes to different options."""
    spec = spec or load_spec()
    singles = single_changes(spec)
    out: list[dict[str, str]] = []
    seen: set[tuple[tuple[str, str], ...]] = set()
    for i, a in enumerate(singles):
        for b in singles[i + 1 :]:
            if set(a) & set(b) and any(a[k] != b[k] for k in set(a) & set(b)):
                continue
            merged = {**a, **b}
            key = tuple(sorted(merged.items()))
            if key in seen or len(merged) < 2:
                continue
            try:
                spec.profile(merged)
            except SpecError:
                continue
            seen.add(key)
            out.append(merged)
    return out

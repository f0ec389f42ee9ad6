"""Which part of a proposal causes each change of verdict, and which other option values
would make the same fix.

A proposal may set several option values at once.  When it breaks or fixes a property,
the delegate wants to know which of its values is responsible, and whether another value
of the same options fixes the same property at a lower price.  Both are answered by
checking more profiles, exactly as the proposal itself is checked:

* **Causes.**  Every proper, non-empty subset of the proposal's option values that is a
  valid profile on its own (an option's ``requires`` may forbid a value without its
  companion) is checked.  A *cause* of a change (a property newly broken, no longer
  proved, or newly fixed) is a valid subset -- the whole proposal included -- under which
  the same change appears and under none of whose valid proper subsets it appears.  The
  causes are listed smallest first.  A change whose only cause is the whole proposal needs
  its values together.
* **Alternatives.**  Every single-option change of the option matrix
  (:func:`~mbmssec.proofs.check.single_changes`) that sets one of the proposal's options
  to a value the proposal does not use is checked; each one that fixes a property the
  proposal fixes is listed with what it breaks, those breaking nothing first.

Subsets are enumerated only for proposals of at most :data:`MAX_PARTS` option values
(``2**MAX_PARTS - 2`` extra checks); beyond that the causes are not computed and the
attribution says so.  The extra checks use the proposal's depth, universe and solver
limit, so their verdicts mean what the proposal's mean.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import combinations

from mbmssec.proofs.check import Comparison, Report, compare, single_changes
from mbmssec.proofs.results import Alternative, Attribution, label
from mbmssec.spec.loader import Spec, SpecError

MAX_PARTS = 4
"""Most option values whose subsets are all checked (14 extra checks at four)."""

Options = dict[str, str]
CheckMany = Callable[[Sequence[Options]], list[Report]]
"""Checks a batch of option overrides (in parallel, or not), in the given order."""

CHANGE_KINDS = ("broken", "weakened", "fixed")
"""The changes of verdict that are attributed, as :class:`Comparison` names them."""


def _valid(spec: Spec, options: Options) -> bool:
    try:
        spec.profile(options)
    except SpecError:
        return False
    return True


def subsets(overrides: Options) -> list[Options]:
    """Every proper, non-empty subset of the option values, smallest first."""
    items = sorted(overrides.items())
    return [dict(c) for size in range(1, len(items)) for c in combinations(items, size)]


def alternative_changes(overrides: Options, spec: Spec) -> list[Options]:
    """The single-option changes that set one of the proposal's options to a value the
    proposal does not use (each with the companions its ``requires`` needs)."""
    return [
        change
        for change in single_changes(spec)
        if any(k in overrides and overrides[k] != v for k, v in change.items())
        and change != overrides
    ]


def _kinds(cmp: Comparison) -> dict[int, str]:
    return {n: kind for kind in CHANGE_KINDS for n in getattr(cmp, kind)}


def attribute(comparison: Comparison, spec: Spec, check_many: CheckMany) -> Attribution:
    """The attribution of one proposal's comparison, checking what it needs through
    ``check_many`` (one batch: every subset and every alternative)."""
    overrides = dict(comparison.report.overrides)
    changes = _kinds(comparison)
    parts = subsets(overrides) if len(overrides) <= MAX_PARTS else []
    valid = [s for s in parts if _valid(spec, s)]
    invalid = tuple(s for s in parts if not _valid(spec, s))
    if not changes:  # nothing to attribute, no fix to find alternatives for
        return Attribution(changes={}, causes={}, invalid=invalid, alternatives={})
    alternatives = [a for a in alternative_changes(overrides, spec) if a not in valid]
    reports = check_many([*valid, *alternatives]) if (valid or alternatives) else []
    by_subset = [
        (s, _kinds(compare(comparison.baseline, r)))
        for s, r in zip(valid, reports[: len(valid)], strict=True)
    ]
    by_subset.append((overrides, changes))
    causes: dict[int, tuple[Options, ...]] | None = None
    if len(overrides) <= MAX_PARTS:
        causes = {}
        for n, kind in changes.items():
            showing = [s for s, kinds in by_subset if kinds.get(n) == kind]
            minimal = [
                s
                for s in showing
                if not any(t != s and set(t.items()) < set(s.items()) for t in showing)
            ]
            causes[n] = tuple(sorted(minimal, key=lambda s: (len(s), label(s))))
    fixes: dict[int, list[Alternative]] = {n: [] for n, k in changes.items() if k == "fixed"}
    for change, report in zip(alternatives, reports[len(valid) :], strict=True):
        cmp = compare(comparison.baseline, report)
        alt = Alternative(change, tuple(cmp.broken), tuple(cmp.weakened), tuple(cmp.fixed))
        for n in fixes:
            if n in cmp.fixed:
                fixes[n].append(alt)
    return Attribution(
        changes=changes,
        causes=causes,
        invalid=invalid,
        alternatives={
            n: tuple(sorted(alts, key=lambda a: (not a.harmless, label(a.options))))
            for n, alts in fixes.items()
        },
    )


def extra_checks(overrides: Options, spec: Spec) -> int:
    """How many profiles :func:`attribute` checks for a proposal with these values."""
    parts = subsets(overrides) if len(overrides) <= MAX_PARTS else []
    valid = [s for s in parts if _valid(spec, s)]
    return len(valid) + len([a for a in alternative_changes(overrides, spec) if a not in valid])

"""Attribution: which of a proposal's option values causes each change of verdict, and
which other values fix the same property (``mbmssec check``, proofs/attribution.py).

The profiles the attribution needs are checked for real; those that a shipped proposal
already checks are taken from the shared checker results (the same check, computed
once), the others are checked here.  Expected values come from the shipped proposals'
``expect`` tables (written by hand when each proposal was added), not from the code
under test.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
from conftest import CheckerResults, proposal_universe

from mbmssec.commands.check import TEXT_WIDTH, render_brief, render_text
from mbmssec.proofs.attribution import CheckMany, alternative_changes, attribute, subsets
from mbmssec.proofs.check import (
    Comparison,
    Proposal,
    Report,
    check_overrides,
    compare,
    results_document,
    shipped_proposals,
)
from mbmssec.proofs.results import Results
from mbmssec.spec.loader import load_spec

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("checker")]


def _shipped(name: str) -> Proposal:
    return next(p for p in shipped_proposals() if p.name == name)


def _checker(results: CheckerResults) -> tuple[list[dict[str, str]], CheckMany]:
    """A batch checker that takes each profile from the shared results when a shipped
    proposal checked it, and checks the others; it records what it checked itself."""
    known = {tuple(sorted(c.report.overrides.items())): c.report for c in results.comparisons}
    checked: list[dict[str, str]] = []

    def check_many(batch: Sequence[dict[str, str]]) -> list[Report]:
        out = []
        for options in batch:
            report = known.get(tuple(sorted(options.items())))
            if report is None:
                checked.append(dict(options))
                universe = proposal_universe(load_spec().profile(options))
                report = check_overrides(dict(options), universe=universe)
            out.append(report)
        return out

    return checked, check_many


@pytest.fixture(scope="module")
def join_and_lifetime(checker_results: CheckerResults) -> Comparison:
    """A proposal of two values: re-key on join (fixes P7, breaks others) and a TEK
    lifetime in the delivery (changes no verdict), attributed."""
    overrides = {"membership_rekey": "join", "tek_lifetime": "present"}
    spec = load_spec()
    proposal = Proposal(
        name="join_and_lifetime",
        path=_shipped("rekey_on_join").path,
        title="Re-key on join, and a TEK lifetime",
        rationale="two values at once",
        clauses=(),
        overrides=overrides,
        replacements={},
        expect_broken=(),
        expect_fixed=(),
        profile=spec.profile(overrides),
    )
    report = check_overrides(overrides, universe=proposal_universe(proposal.profile))
    cmp = compare(checker_results.baseline, report, proposal)
    checked, check_many = _checker(checker_results)
    cmp.attribution = attribute(cmp, spec, check_many)
    # every profile it needs is a shipped proposal's (join, lifetime, both, never)
    assert checked == [], checked
    return cmp


def test_each_change_is_caused_by_the_value_whose_own_proposal_expects_it(
    join_and_lifetime: Comparison,
) -> None:
    a = join_and_lifetime.attribution
    assert a is not None and a.causes is not None
    join = _shipped("rekey_on_join")
    lifetime = _shipped("tek_lifetime")
    assert lifetime.expect_broken == () and lifetime.expect_fixed == ()
    assert join_and_lifetime.broken == list(join.expect_broken)
    assert join_and_lifetime.fixed == list(join.expect_fixed)
    for n in (*join.expect_broken, *join.expect_fixed):
        assert a.causes[n] == ({"membership_rekey": "join"},), (n, a.causes[n])


def test_a_fix_lists_the_other_values_that_fix_it_with_their_price(
    join_and_lifetime: Comparison,
) -> None:
    a = join_and_lifetime.attribution
    assert a is not None
    both = _shipped("rekey_on_join_and_leave")
    assert 7 in both.expect_fixed
    alts = {tuple(sorted(x.options.items())): x for x in a.alternatives[7]}
    assert set(alts) == {(("membership_rekey", "both"),)}, alts
    alt = alts[(("membership_rekey", "both"),)]
    assert alt.broken == both.expect_broken and not alt.harmless
    text = render_text(join_and_lifetime.baseline, [join_and_lifetime])
    assert "P6 broken by membership_rekey=join alone." in text
    assert "P7 is also fixed by membership_rekey=both (but breaks P9, P10, P12)." in text
    assert max(len(line) for line in text.splitlines()) <= TEXT_WIDTH


def test_brief_output_has_the_differences_the_sentences_and_the_attribution(
    join_and_lifetime: Comparison,
) -> None:
    text = render_brief(join_and_lifetime.baseline, [join_and_lifetime])
    assert "newly broken: P6 " in text and "newly fixed: P7 " in text
    assert "why P6: " in text
    assert "P7 fixed by membership_rekey=join alone." in text
    assert "unchanged" not in text and "lemmas:" not in text  # the full report's lines
    assert max(len(line) for line in text.splitlines()) <= TEXT_WIDTH


def test_attribution_survives_the_results_document(join_and_lifetime: Comparison) -> None:
    doc = results_document(join_and_lifetime.baseline, [join_and_lifetime], digest="x")
    back = Results.from_json(json.loads(doc.dumps()))
    assert back.proposals["join_and_lifetime"].attribution == join_and_lifetime.attribution


def test_subsets_and_alternatives_are_enumerated_from_the_spec() -> None:
    assert subsets({"a": "1", "b": "2", "c": "3"}) == [
        {"a": "1"},
        {"b": "2"},
        {"c": "3"},
        {"a": "1", "b": "2"},
        {"a": "1", "c": "3"},
        {"b": "2", "c": "3"},
    ]
    spec = load_spec()
    alts = alternative_changes({"membership_rekey": "join"}, spec)
    assert alts == [{"membership_rekey": "both"}, {"membership_rekey": "never"}]
    # activation=after_acks needs mikey_response=required: both come as one change
    acks = alternative_changes({"activation": "immediate"}, spec)
    assert acks == [{"activation": "after_acks", "mikey_response": "required"}]


def test_a_subset_that_is_not_a_valid_profile_is_reported_not_checked(
    checker_results: CheckerResults,
) -> None:
    """activate_after_acks sets activation=after_acks and mikey_response=required;
    after_acks alone is not a valid profile: it is named, and never checked.  The
    proposal changes no verdict, so nothing at all is checked for it."""
    cmp = next(
        c
        for c in checker_results.comparisons
        if c.proposal is not None and c.proposal.name == "activate_after_acks"
    )
    _, check_many = _checker(checker_results)
    asked: list[dict[str, str]] = []

    def recording(batch: Sequence[dict[str, str]]) -> list[Report]:
        asked.extend(batch)
        return check_many(batch)

    a = attribute(cmp, load_spec(), recording)
    assert cmp.broken == cmp.fixed == cmp.weakened == []
    assert a.invalid == ({"activation": "after_acks"},)
    assert asked == [] and a.changes == {} and a.sentences() == []

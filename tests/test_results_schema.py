"""The results document (``proofs/results.py``): a real check result survives writing and
reading unchanged, a document of another format version is refused, and a bad field is
named by its path.

The baseline's check is the session-wide ``baseline_report`` (tests/conftest.py); one
proposal is checked here, once per session, in the universe the shared results check it
in (tests/conftest.py, ``proposal_universe``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import proposal_universe

from mbmssec.commands.check import write_out
from mbmssec.docgen.results import results_state
from mbmssec.model.concrete import Universe
from mbmssec.model.dsl import Sort
from mbmssec.model.machine import Model
from mbmssec.model.properties import PROPERTIES
from mbmssec.proofs.check import (
    Comparison,
    Report,
    check_overrides,
    compare,
    model_hash,
    resolve_proposal,
    results_document,
)
from mbmssec.proofs.results import CtiResult, Results, ResultsError, load_results
from mbmssec.spec.loader import load_spec

pytestmark = pytest.mark.xdist_group("checker")

#: The universe of the shared baseline report (tests/conftest.py, CHECK_UNIVERSE).
UNIVERSE = Universe(ue=2, svc=1, tek=2, pkt=1)
#: Activating a new TEK at once breaks property 4 (documented in its proposal file).
PROPOSAL = "activate_immediately"
DIGEST = "ab" * 32
#: How the traces name the elements of each sort.
PREFIX = {Sort.UE: "UE", Sort.SVC: "S", Sort.TEK: "T", Sort.PKT: "P"}


@dataclasses.dataclass(frozen=True)
class Checked:
    baseline: Report
    comparison: Comparison


@pytest.fixture(scope="session")
def checked(baseline_report: Report) -> Checked:
    proposal = resolve_proposal(PROPOSAL)
    report = check_overrides(dict(proposal.overrides), universe=proposal_universe(proposal.profile))
    return Checked(baseline_report, compare(baseline_report, report, proposal))


@pytest.fixture
def document(checked: Checked) -> Results:
    return results_document(
        checked.baseline, [checked.comparison], DIGEST, files=("baseline-P7.json",)
    )


@pytest.fixture
def data(document: Results) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(document.dumps())
    return parsed


# -- round trip ----------------------------------------------------------------------------


def test_a_real_check_result_round_trips(checked: Checked, tmp_path: Path) -> None:
    document = results_document(checked.baseline, [checked.comparison], DIGEST)
    text = document.dumps()
    path = tmp_path / "results.json"
    path.write_text(text)
    again = load_results(path)
    assert again == document
    assert again.dumps() == text
    # what was read is what the checker found, not merely what was written
    assert again.model_hash == DIGEST
    assert sorted(again.baseline.verdicts) == sorted(p.number for p in PROPERTIES)
    for n, v in checked.baseline.verdicts.items():
        read = again.baseline.verdicts[n]
        assert (read.name, read.kind, read.verdict, read.how) == (v.name, v.kind, v.verdict, v.how)
        assert read.lemmas == tuple(v.lemmas)
        assert read.bound == v.bound
        assert len(read.queries) == len(v.queries)
        assert read.query_seconds == round(sum(q.seconds for q in v.queries), 4)
    assert again.baseline.universe == UNIVERSE
    assert again.baseline.depth == checked.baseline.depth
    assert set(again.baseline.witnesses) == set(checked.baseline.witnesses)


def test_the_counterexample_survives_and_still_replays(checked: Checked, tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(results_document(checked.baseline, [checked.comparison], DIGEST).dumps())
    again = load_results(path)
    trace = again.baseline.verdicts[7].trace
    assert again.baseline.verdicts[7].verdict == "refuted"
    assert trace is not None and trace == checked.baseline.verdicts[7].trace
    assert 7 in trace.violations(Model(load_spec().baseline()))


def test_every_refutation_carries_its_states_and_why(checked: Checked) -> None:
    """Each refuted property, of the baseline and of the proposal, has the ITF states of
    its trace (the executable model's replay, state by state) and a sentence of why."""
    document = Results.from_json(
        json.loads(results_document(checked.baseline, [checked.comparison], DIGEST).dumps())
    )
    spec = load_spec()
    profiles = [document.baseline, document.proposals[PROPOSAL].report]
    refuted = 0
    for profile in profiles:
        model = Model(spec.profile(profile.overrides))
        for v in profile.verdicts.values():
            if v.verdict != "refuted":
                assert v.itf is None and v.explanation is None
                continue
            refuted += 1
            assert v.trace is not None and v.itf is not None and v.explanation
            states = v.trace.replay(model)
            assert len(v.itf["states"]) == len(states)
            for i, state in enumerate(states):
                for sym in model.vocab.symbols:
                    entry = v.itf["states"][i][sym.name]
                    if sym.result is Sort.BOOL and len(sym.args) == 1:
                        sort = sym.args[0]
                        expected = [
                            [f"{PREFIX[sort]}{x}", state.get(sym.name, x)]
                            for x in range(profile.universe.size(sort))
                        ]
                        assert entry == {"#map": expected}, (v.number, i, sym.name)
    assert refuted >= 3  # P7 in the baseline, P4 and P10 (at least) under the proposal


def test_the_proposal_part_round_trips(data: dict[str, Any]) -> None:
    again = Results.from_json(data)
    [entry] = again.proposals.values()
    assert entry.name == PROPOSAL == entry.proposal.name
    assert entry.title == "Activate a new TEK at once"
    assert entry.broken == (4, 10)
    assert entry.fixed == () and entry.weakened == ()
    assert entry.report.overrides == {"activation": "immediate"}
    assert entry.proposal.expect_broken == (4, 10)


def test_the_document_names_its_format_version(data: dict[str, Any]) -> None:
    assert next(iter(data)) == "format"
    # format 2 added the ITF states and the explanation, format 3 the attribution,
    # format 4 a proposal's behaviour and the properties it adds
    assert data["format"] == 4


def test_a_counterexample_to_induction_round_trips(document: Results) -> None:
    cti = CtiResult("P4_x", "Tick", ("pre 1", "pre 2"), ("post",), "text of it")
    verdict = dataclasses.replace(document.baseline.verdicts[4], verdict="unknown", cti=cti)
    verdicts = {**document.baseline.verdicts, 4: verdict}
    changed = dataclasses.replace(
        document, baseline=dataclasses.replace(document.baseline, verdicts=verdicts)
    )
    stored = json.loads(changed.dumps())
    assert stored["baseline"]["properties"][3]["cti"] == {
        "conjunct": "P4_x",
        "action": "Tick",
        "pre": ["pre 1", "pre 2"],
        "post": ["post"],
        "text": "text of it",
    }
    assert Results.from_json(stored) == changed


def test_the_check_command_writes_the_document(checked: Checked, tmp_path: Path) -> None:
    files = write_out(tmp_path, checked.baseline, [checked.comparison], DIGEST)
    document = load_results(tmp_path / "results.json")
    assert document.files == tuple(files)
    assert "baseline-P7.json" in files and f"{PROPOSAL}-P4.svg" in files
    assert "baseline-P7.itf.json" in files and f"{PROPOSAL}-P4.itf.json" in files
    for name in files:
        assert (tmp_path / name).is_file(), name
    assert document.model_hash == DIGEST
    assert list(document.proposals) == [PROPOSAL]
    assert document.baseline.verdicts[7].trace == checked.baseline.verdicts[7].trace
    assert document.proposals[PROPOSAL].broken == (4, 10)


# -- refusals ------------------------------------------------------------------------------


def _refused(data: dict[str, Any]) -> ResultsError:
    with pytest.raises(ResultsError) as err:
        Results.from_json(data, "somewhere/results.json")
    return err.value


def test_a_document_without_a_format_version_is_refused(data: dict[str, Any]) -> None:
    del data["format"]
    err = _refused(data)
    assert err.where == "format"
    assert str(err).startswith("somewhere/results.json: format: ")
    assert "re-run `mbmssec check" in str(err)


@pytest.mark.parametrize("version", [0, 1, 2, 3, 99])
def test_a_document_of_another_version_is_refused(data: dict[str, Any], version: int) -> None:
    data["format"] = version
    err = _refused(data)
    assert err.where == "format"
    assert f"format version {version}, but this mbmssec reads format 4" in str(err)


def test_the_version_is_checked_before_any_other_field(data: dict[str, Any]) -> None:
    data["format"] = 1
    data["model_hash"] = 3
    assert _refused(data).where == "format"


def _set(data: dict[str, Any], path: list[Any], value: Any) -> None:
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "where", "problem"),
    [
        (["model_hash"], 3, "model_hash", "expected str"),
        (["format"], "1", "format", "expected int"),
        (
            ["baseline", "properties", 2, "verdict"],
            3,
            "baseline.properties[2].verdict",
            "expected str",
        ),
        (
            ["baseline", "properties", 0, "bound"],
            "x",
            "baseline.properties[0].bound",
            "expected int",
        ),
        (["baseline", "universe", "ue"], True, "baseline.universe.ue", "expected int"),
        (["baseline", "seconds"], None, "baseline.seconds", "expected number, got null"),
        (["baseline", "depth"], _DELETE, "baseline.depth", "missing"),
        (["baseline", "witnesses", "Tick"], "3", "baseline.witnesses.Tick", "expected int"),
        (
            ["baseline", "properties", 1, "queries", 0, "core"],
            "a",
            "baseline.properties[1].queries[0].core",
            "expected list",
        ),
        (
            ["proposals", 0, "report", "overrides", "activation"],
            1,
            "proposals[0].report.overrides.activation",
            "expected str",
        ),
        (
            ["proposals", 0, "proposal", "expect", "broken"],
            [4.0],
            "proposals[0].proposal.expect.broken[0]",
            "expected int",
        ),
        (["proposals", 0, "weakened"], {}, "proposals[0].weakened", "expected list"),
        (["proposals", 0, "added"], _DELETE, "proposals[0].added", "missing"),
        (
            ["proposals", 0, "proposal", "behaviour", "actions"],
            [],
            "proposals[0].proposal.behaviour.actions",
            "unknown field 'actions'",
        ),
        (
            ["proposals", 0, "proposal", "behaviour", "state"],
            [{"name": "x", "sorts": ["UE"], "type": "Colour", "doc": "d"}],
            "proposals[0].proposal.behaviour.state.x.type",
            "unknown type 'Colour'",
        ),
        (["proposals", 0, "surprise"], 1, "proposals[0].surprise", "unknown field 'surprise'"),
        (["files", 0], None, "files[0]", "expected str, got null"),
        (
            ["baseline", "properties", 6, "trace"],
            {"steps": []},
            "baseline.properties[6].trace",
            "malformed trace JSON",
        ),
        (
            ["baseline", "properties", 6, "itf", "states", 2, "clock"],
            True,
            "baseline.properties[6].itf.states[2].clock",
            "expected an integer",
        ),
        (
            ["baseline", "properties", 6, "itf", "loop"],
            0,
            "baseline.properties[6].itf",
            "differ from the verdict's trace",
        ),
        (
            ["baseline", "properties", 6, "itf"],
            None,
            "baseline.properties[6].itf",
            "a verdict with a trace needs its itf",
        ),
        (
            ["baseline", "properties", 6, "explanation"],
            _DELETE,
            "baseline.properties[6].explanation",
            "missing",
        ),
        (
            ["baseline", "properties", 6, "explanation"],
            None,
            "baseline.properties[6].explanation",
            "a verdict with a trace needs its explanation",
        ),
        (
            ["baseline", "properties", 0, "explanation"],
            "why not",
            "baseline.properties[0].explanation",
            "only a verdict with a trace has one",
        ),
    ],
)
def test_a_bad_field_is_named_by_its_path(
    data: dict[str, Any], path: list[Any], value: Any, where: str, problem: str
) -> None:
    _set(data, path, copy.deepcopy(value) if value is not _DELETE else value)
    err = _refused(data)
    assert err.where == where
    assert problem in err.problem
    assert f"somewhere/results.json: {where}: " in str(err)


def test_duplicate_properties_are_refused(data: dict[str, Any]) -> None:
    props = data["baseline"]["properties"]
    props.append(copy.deepcopy(props[0]))
    err = _refused(data)
    assert err.where == f"baseline.properties[{len(props) - 1}].number"
    assert "duplicate property 1" in str(err)


def test_unreadable_files_are_named(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    with pytest.raises(ResultsError, match=r"results\.json: no such file"):
        load_results(path)
    path.write_text("{not json")
    with pytest.raises(ResultsError, match=r"results\.json: not a results file"):
        load_results(path)
    path.write_text("[]")
    with pytest.raises(ResultsError, match=r"results\.json: expected object"):
        load_results(path)


# -- what the documentation build makes of it ----------------------------------------------


def test_results_state_says_why_results_cannot_be_used(
    data: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "results.json"
    assert results_state(tmp_path).status == "missing"
    old = {k: v for k, v in data.items() if k != "format"}
    path.write_text(json.dumps(old))
    state = results_state(tmp_path)
    assert state.status == "unreadable" and not state.fresh
    assert f"{path}: format:" in state.reason
    path.write_text(json.dumps(data))  # hash of other sources
    assert results_state(tmp_path).status == "stale"
    path.write_text(json.dumps({**data, "model_hash": model_hash()}))
    assert results_state(tmp_path).fresh


def _with_attribution(data: dict[str, Any]) -> dict[str, Any]:
    data["proposals"][0]["attribution"] = {
        "changes": {"4": "broken"},
        "causes": {"4": [{"activation": "immediate"}]},
        "invalid": [],
        "alternatives": {},
    }
    return data


def test_an_attribution_round_trips(data: dict[str, Any]) -> None:
    back = Results.from_json(_with_attribution(data))
    a = back.proposals[PROPOSAL].attribution
    assert a is not None
    assert a.changes == {4: "broken"}
    assert a.causes == {4: ({"activation": "immediate"},)}
    assert Results.from_json(json.loads(back.dumps())) == back


@pytest.mark.parametrize(
    ("path", "value", "where", "problem"),
    [
        (["changes", "x"], "broken", "changes.x", "expected a property number"),
        (["changes", "4"], "gone", "changes.4", "expected 'broken', 'weakened' or 'fixed'"),
        (["causes", "4"], "a", "causes.4", "expected list"),
        (["invalid"], _DELETE, "invalid", "missing"),
        (["surprise"], 1, "surprise", "unknown field"),
    ],
)
def test_a_bad_attribution_is_refused_naming_the_field(
    data: dict[str, Any], path: list[Any], value: Any, where: str, problem: str
) -> None:
    _set(_with_attribution(data)["proposals"][0]["attribution"], path, value)
    err = _refused(data)
    assert err.where == f"proposals[0].attribution.{where}", err.where
    assert problem in str(err)

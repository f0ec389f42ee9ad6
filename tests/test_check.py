"""Proposals and the ``mbmssec check`` driver (proofs/check.py, mbmssec/commands/check.py)."""

from __future__ import annotations

import importlib.util
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from conftest import CheckerResults

from mbmssec.cli import main
from mbmssec.model.concrete import ConcreteOps
from mbmssec.model.machine import Model
from mbmssec.model.trace import Trace
from mbmssec.proofs.check import (
    Comparison,
    load_proposal,
    model_hash,
    shipped_proposals,
    single_changes,
    verdict_pool,
)
from mbmssec.spec.loader import SpecError, load_spec

pytestmark = pytest.mark.xdist_group("checker")


@pytest.fixture(scope="module")
def comparisons(checker_results: CheckerResults) -> list[Comparison]:
    """Every shipped proposal against the baseline (shared, see tests/conftest.py)."""
    return checker_results.comparisons


def test_every_option_has_a_proposal() -> None:
    covered = {k for p in shipped_proposals() for k in p.overrides}
    assert covered == set(load_spec().options)


@pytest.mark.slow
def test_shipped_proposals_yield_their_expected_verdicts(comparisons: list[Comparison]) -> None:
    for c in comparisons:
        assert c.expectation_errors() == [], c.proposal
    base = comparisons[0].baseline
    assert {n for n, v in base.verdicts.items() if v.verdict == "proved"} == {
        1,
        2,
        3,
        4,
        5,
        6,
        8,
        9,
        10,
        11,
        12,
        13,
        14,
    }
    assert base.verdicts[9].kind == "liveness"
    assert "every population size" in base.verdicts[9].how
    assert base.verdicts[7].verdict == "refuted"
    assert not base.vacuous


def _lasso_replays(model: Model, trace: Trace, prop: Any) -> None:
    """A lasso, replayed with three turns of its loop: the premise holds for some UE and
    service at some state of the prefix, and the goal never again."""
    assert trace.loop is not None
    steps = trace.steps + trace.steps[trace.loop :] * 2
    states = Trace(steps, trace.universe).replay(model)
    ops = ConcreteOps(trace.universe)
    pairs = [(u, s) for u in range(trace.universe.ue) for s in range(trace.universe.svc)]
    assert any(
        prop.premise(ops, states[i], u, s)
        and not any(prop.goal(ops, st, u, s) for st in states[i:])
        for u, s in pairs
        for i in range(trace.loop + 1)
    )


@pytest.mark.slow
def test_every_counterexample_replays(comparisons: list[Comparison]) -> None:
    spec = load_spec()
    seen = 0
    for c in [*comparisons, comparisons[0]]:
        report = c.report
        # a proposal's own model (with the behaviour it states), the baseline's otherwise
        model = Model(c.proposal.profile if c.proposal else spec.profile(report.overrides))
        for v in report.verdicts.values():
            if v.trace is None:
                continue
            seen += 1
            if v.trace.loop is not None:
                _lasso_replays(model, v.trace, model.prop(v.number))
                continue
            states = v.trace.replay(model)
            assert not model.holds(model.prop(v.number), states[-1], states[-2])
        for name, witness in report.witnesses.items():
            assert witness is not None and witness.steps[-1].action == name
            witness.replay(model)
    assert seen >= len(comparisons)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "number", "length"),
    [
        ("mki_optional", 3, 3),
        ("activate_immediately", 4, 7),
        ("replay_none", 8, 10),
        ("kek_common", 5, 7),
        ("rekey_never", 6, 8),  # the revoked UE holds a TEK activated after it left
    ],
)
def test_named_proposals_break_with_minimal_counterexamples(
    comparisons: list[Comparison], name: str, number: int, length: int
) -> None:
    c = next(c for c in comparisons if c.proposal and c.proposal.name == name)
    assert number in c.broken and c.breaks
    trace = c.report.verdicts[number].trace
    assert trace is not None and len(trace.steps) == length


@pytest.mark.slow
def test_rekey_on_join_fixes_backward_secrecy(comparisons: list[Comparison]) -> None:
    c = next(c for c in comparisons if c.proposal and c.proposal.name == "rekey_on_join")
    assert c.fixed == [7]
    assert "joiner_keys_new" in c.report.verdicts[7].lemmas


@pytest.mark.slow
def test_tls_removes_eavesdropping(comparisons: list[Comparison]) -> None:
    c = next(c for c in comparisons if c.proposal and c.proposal.name == "tek_over_tls")
    assert "Eavesdrop" not in c.report.witnesses
    assert "Eavesdrop" in c.baseline.witnesses


def test_single_changes_respect_requires() -> None:
    changes = single_changes()
    assert {"activation": "after_acks", "mikey_response": "required"} in changes
    for ch in changes:
        load_spec().profile(ch)


# -- bad input --------------------------------------------------------------------------


GOOD = """title = "t"
rationale = "r"
clauses = ["6.3/MKI-MANDATORY"]
[options]
mki_in_srtp = "optional"
[expect]
broken = [3]
"""


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (GOOD.replace("mki_in_srtp", "mki_in_rtp"), "options.mki_in_rtp"),
        (GOOD.replace('"optional"', '"sometimes"'), "options.mki_in_srtp"),
        (GOOD.replace("6.3/MKI-MANDATORY", "9.9/NOPE"), "clauses[0]"),
        (GOOD.replace('title = "t"\n', ""), "title"),
        (GOOD + '[replace]\n"9.9/NOPE" = "x"\n', "replace.9.9/NOPE"),
        (GOOD.replace("broken = [3]", "broken = [42]"), "expect.broken"),
        ("colour = 1\n" + GOOD, "top level"),
        (GOOD.replace("[options]", "[options"), "syntax"),
    ],
)
def test_bad_proposals_name_file_and_field(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(SpecError) as err:
        load_proposal(path)
    assert err.value.where == where
    assert str(path) in str(err.value)


def test_cli_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(GOOD.replace("mki_in_srtp", "mki_in_rtp"))
    assert main(["check", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "options.mki_in_rtp" in err
    assert main(["check", "no_such_proposal", "--quiet"]) == 2


def test_cli_check_writes_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    status = main(
        [
            "check",
            "kek_derived",
            "--json",
            "--quiet",
            "--out",
            str(out),
            "--universe",
            "1,1,2,1",
            "--depth",
            "8",
        ]
    )
    assert status == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model_hash"] == model_hash()
    assert data["proposals"][0]["broken"] == []
    stored = json.loads((out / "results.json").read_text())
    assert stored["model_hash"] == data["model_hash"]
    ET.parse(out / "baseline-P7.svg")  # well-formed SVG
    trace = json.loads((out / "baseline-P7.json").read_text())
    assert len(trace["steps"]) == 7
    # the same counterexample with its states, and in the JSON output with why
    states = json.loads((out / "baseline-P7.itf.json").read_text())
    assert Trace.from_itf(states) == Trace.from_json(trace)
    p7 = data["baseline"]["properties"][6]
    assert p7["verdict"] == "refuted" and p7["itf"] == states
    assert p7["explanation"].startswith("UE") and " decrypts P" in p7["explanation"]
    # the exported pytest file replays the counterexample on its own
    spec = importlib.util.spec_from_file_location("exported", out / "test_baseline_p7.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.test_trace_replays_and_violates_property_7()


@pytest.mark.slow
def test_check_text_fits_100_columns(checker_results: CheckerResults) -> None:
    """Every line of ``mbmssec check --all``'s text (verdicts, lemma lists, every
    counterexample chart and lasso of the shipped proposals) fits 100 columns, and a
    counterexample's violating step is marked."""
    from mbmssec.commands.check import render_text

    text = render_text(checker_results.baseline, checker_results.comparisons)
    long = [line for line in text.splitlines() if len(line) > 100]
    assert long == [], long[:3]
    assert "(marked >)" in text and "attacker" in text  # charts were rendered
    # every chart is followed by the sentence of why (lassos included)
    refuted = [
        v
        for report in [checker_results.baseline] + [c.report for c in checker_results.comparisons]
        for v in report.verdicts.values()
        if v.trace is not None
    ]
    assert all(v.explanation for v in refuted)
    assert any(v.trace is not None and v.trace.loop is not None for v in refuted)
    lines = text.splitlines()
    charts = [i for i, line in enumerate(lines) if line.startswith("        => ")]
    assert charts and all(lines[i + 1].startswith("      why: ") for i in charts)


def test_no_proposal_expects_a_safety_property_unknown() -> None:
    """What makes the shared results of the proposals checked over one UE
    (tests/conftest.py, ``proposal_universe``) those of the default universe: a property
    the bounded search leaves unknown is a liveness property, which the lasso search
    judges in its own universe."""
    for p in shipped_proposals():
        model = Model(p.profile)
        assert all(model.prop(n).kind == "liveness" for n in p.expect_weakened), p.name


# -- proposals that state behaviour ------------------------------------------------------

BEHAVIOUR = {
    # name: (what it adds or changes, property, the step of the proposal its shortest
    # counterexample ends with, or None for an added property it expects to hold)
    "push_next_tek": ("new action Push", 2, "Push"),
    "refetch_skips_authorisation": ("new action Refetch", 2, "Refetch"),
    "ue_keeps_one_tek": ("changes Register", 10, "Receive"),
    "ue_clears_keys_out_of_coverage": ("changes LoseCoverage", 12, None),
}


def test_four_shipped_proposals_state_behaviour() -> None:
    named = {p.name: p for p in shipped_proposals() if p.behaviour is not None}
    assert set(named) == set(BEHAVIOUR)
    for name, p in named.items():
        assert not p.overrides, f"{name} should need no option to say what it says"
        assert BEHAVIOUR[name][0] in p.summary()
        assert p.rationale and p.replacements and (p.expect_broken or p.added)


@pytest.mark.slow
def test_behaviour_proposals_break_with_their_own_steps(comparisons: list[Comparison]) -> None:
    """Each behaviour proposal's expected verdicts hold (test above), and its
    counterexamples run through what it changed, replayed on its own model."""
    by_name = {c.proposal.name: c for c in comparisons if c.proposal}
    for name, (_what, number, last) in BEHAVIOUR.items():
        c = by_name[name]
        assert c.expectation_errors() == [] and number in c.broken, name
        trace = c.report.verdicts[number].trace
        assert trace is not None and c.proposal is not None
        model = Model(c.proposal.profile)
        changed = {a.name for a in model.all_actions if a.origin == name}
        steps = [s.action for s in trace.steps]
        assert changed & set(steps), (name, steps)  # it runs through the proposal's change
        if last is not None:
            assert steps[-1] == last, (name, steps)
    # an added property: numbered after the model's, proved as its file expects
    clears = by_name["ue_clears_keys_out_of_coverage"]
    assert clears.added == [15] and clears.report.verdicts[15].verdict == "proved"
    assert clears.report.verdicts[15].name == "no_keys_out_of_coverage"


@pytest.mark.slow
def test_behaviour_proposal_results_write_read_and_replay(
    comparisons: list[Comparison], tmp_path: Path
) -> None:
    """``check --out`` for a behaviour proposal (from the shared results, written by the
    command's own writer): the results document reads back (its traces' states have the
    proposal's new state), and the exported pytest file replays on the proposal's model."""
    from mbmssec.commands.check import render_text, write_out
    from mbmssec.proofs.results import load_results

    c = next(c for c in comparisons if c.proposal and c.proposal.name == "push_next_tek")
    files = write_out(tmp_path, c.baseline, [c], model_hash())
    assert "push_next_tek-P2.itf.json" in files
    results = load_results(tmp_path / "results.json")
    pr = results.proposals["push_next_tek"]
    assert pr.proposal.behaviour["action"][0]["name"] == "Push"
    itf = pr.report.verdicts[2].itf
    assert itf is not None and "pushed" in itf["vars"]
    spec = importlib.util.spec_from_file_location("pushed", tmp_path / "test_push_next_tek_p2.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.test_trace_replays_and_violates_property_2()
    text = render_text(c.baseline, [c])
    assert "Proposal push_next_tek: The BM-SC pushes the next TEK to registered UEs (new" in text
    assert max(len(line) for line in text.splitlines()) <= 100


def test_each_check_of_a_pool_runs_in_a_fresh_process() -> None:
    """Checks in parallel (``check --all``, ``matrix``, ``mutate --jobs``, the shared
    results of these tests) each get a process of their own, forked from a fork server
    and not from the caller, so that no check inherits what Z3 was asked before."""
    with verdict_pool(1) as pool:
        pids = [pool.submit(os.getpid).result() for _ in range(3)]
        parents = {pool.submit(os.getppid).result() for _ in range(2)}
    assert len(set(pids)) == 3
    assert os.getpid() not in parents and len(parents) == 1

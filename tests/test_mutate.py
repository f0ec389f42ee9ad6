"""Model mutants generated from the model's source (proofs/mutate.py, `mbmssec mutate`).

The command is run in-process (``main([...])``, the entry point of ``mbmssec``) with
``--jobs 1``, which checks the mutants in the calling process: the unmutated model's
results, cached per process, are then computed once for the whole module, which runs on
one pytest-xdist worker (``xdist_group("mutate")``).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from mbmssec.model.machine import Model
from mbmssec.proofs.bmc import search
from mbmssec.proofs.mutate import (
    OPERATORS,
    build,
    load_equivalents,
    reached_under,
    sites,
)
from mbmssec.spec.loader import SpecError, load_spec

pytestmark = pytest.mark.xdist_group("mutate")

ROOT = Path(__file__).resolve().parent.parent


def test_every_operator_applies_and_ids_are_unique() -> None:
    all_sites = sites()
    assert len(all_sites) >= 50
    assert len({s.id for s in all_sites}) == len(all_sites)
    assert set(Counter(s.operator for s in all_sites)) == set(OPERATORS)


def test_environment_and_history_are_never_mutated() -> None:
    from mbmssec.model.actions import ACTIONS
    from mbmssec.model.vocabulary import VOCABULARY

    env_bodies = {a.body.__name__ for a in ACTIONS if a.actor == "net"}
    for s in sites():
        assert s.function not in env_bodies
        if s.operator == "update-drop":
            assert s.symbol is not None and VOCABULARY[s.symbol].role == "design", s


def test_radio_and_parameter_ranges_are_the_languages() -> None:
    """The radio condition and the declared parameter ranges are added by the language
    (``Action.run``), not written in the bodies, so no mutant removes them: in every
    reading an action over a UE's radio link is disabled while that UE is out of
    coverage (Z3: the guard implies coverage, every population size), and a fetch delay
    below its declared bound disables a delivery."""
    import z3

    from mbmssec.model.actions import ACTIONS
    from mbmssec.model.symbolic import Sorts, SymbolicState, param_consts, transition
    from mbmssec.proofs.induction import as_z3

    radio = {a.name for a in ACTIONS if a.radio}
    assert radio == {"Authenticate", "Register", "DeliveryLost", "Acknowledge", "Receive", "Replay"}
    assert not any("covered" in s.text for s in sites())  # no body reads coverage itself
    profile = load_spec().profile({"mikey_response": "required"})
    sorts = Sorts.unbounded("_radio")
    pre = SymbolicState(Model(profile).vocab, sorts, "radio")
    for act in ACTIONS:
        if not act.radio:
            continue
        args = param_consts(act, sorts, "radio")
        guard = transition(act, profile, pre, sorts, params=args, tag="radio").guard
        u = args[[p.name for p in act.params].index(act.radio[0])]
        solver = z3.Solver()
        solver.add(guard, z3.Not(as_z3(pre.get("covered", u))))
        assert solver.check() == z3.unsat, act.name
    # concretely (the reading trace checking uses, with arguments taken from a log): a
    # registration the model takes with f=1 is refused with f=0
    from mbmssec.model.concrete import step

    model = Model(load_spec().baseline())
    found = search(model, actions=["Register"], depth=6).witnesses["Register"]
    *_, last = found.trace.steps
    before = found.trace.replay(model)[-2]
    register = model.action("Register")
    u, s, _f = last.args
    assert step(register, model.profile, before, (u, s, 1)) is not None
    assert step(register, model.profile, before, (u, s, 0)) is None


def test_a_mutant_is_checked_only_where_its_code_runs() -> None:
    """The send guard ``ops.require(m)`` exists only under ``mki_in_srtp=mandatory``:
    its mutant is reached under the baseline and not under the optional-MKI profile."""
    spec = load_spec()
    site = next(s for s in sites() if s.operator == "guard-drop" and s.text == "ops.require(m)")
    mutant = build(site)
    assert reached_under(mutant, spec.baseline())
    assert not reached_under(mutant, spec.profile({"mki_in_srtp": "optional"}))


# -- the misses of the earlier properties, planted by hand ------------------------------------

MISSES = [
    # (site, property that must catch it)
    ("_bmsc_delivery:guard-drop:1", 1),  # delivery without authentication
    ("_bmsc_delivery:guard-drop:2", 1),  # delivery without authorisation
    ("activate:guard-drop:2", 4),  # activation without the fetch-window check
    ("receive:update-drop:1", 12),  # the UE ignores unknown MKIs (recovers only later)
]


@pytest.mark.slow
@pytest.mark.parametrize(("site_id", "number"), MISSES, ids=[m[0] for m in MISSES])
def test_planted_misses_are_caught_by_the_intended_property(site_id: str, number: int) -> None:
    site = {s.id: s for s in sites()}[site_id]
    model = Model(load_spec().baseline(), all_actions=build(site).actions)
    found = search(model, props=[model.prop(number)], depth=10)
    assert number in found.violations, f"{site_id} not caught by P{number}"
    trace = found.violations[number].trace
    states = trace.replay(model)
    assert not model.holds(model.prop(number), states[-1], states[-2])
    # and the unmutated model has no such trace of that length
    clean = Model(load_spec().baseline())
    assert not search(clean, props=[clean.prop(number)], depth=len(trace.steps)).violations


# -- the declarations of equivalent mutants -------------------------------------------------


def test_declarations_are_checked_against_the_sites(tmp_path: Path) -> None:
    s = sites()[0]
    good = tmp_path / "eq.toml"
    good.write_text(f'[[mutant]]\nid = "{s.id}"\nsite = "{s.text}"\nreason = "why"\n')
    assert load_equivalents(good)[s.id].reason == "why"
    stale = tmp_path / "stale.toml"
    stale.write_text(f'[[mutant]]\nid = "{s.id}"\nsite = "old text"\nreason = "why"\n')
    with pytest.raises(SpecError, match=r"mutant\[0\]\.site: stale"):
        load_equivalents(stale)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('[[mutant]]\nid = "nope:guard-drop:1"\nsite = "x"\nreason = "why"\n')
    with pytest.raises(SpecError, match=r"mutant\[0\]\.id: no mutation site"):
        load_equivalents(unknown)
    twice = tmp_path / "twice.toml"
    twice.write_text(good.read_text() * 2)
    with pytest.raises(SpecError, match="declared twice"):
        load_equivalents(twice)
    noreason = tmp_path / "noreason.toml"
    noreason.write_text(f'[[mutant]]\nid = "{s.id}"\nsite = "{s.text}"\n')
    with pytest.raises(SpecError, match="exactly the keys id, site, reason"):
        load_equivalents(noreason)


def test_shipped_declarations_load() -> None:
    declared = load_equivalents()
    ids = {s.id for s in sites()}
    assert declared and set(declared) <= ids
    assert all(d.reason.strip() for d in declared.values())


def test_equivalents_stay_a_small_share() -> None:
    """Under 15 % of all mutants are equivalent, declared or proved: counted in the
    committed catalogue (docs/mutants.json, whose currency tests/test_docs_mutation.py
    checks), since a proved equivalence is known only by running the catalogue."""
    doc = json.loads((ROOT / "docs" / "mutants.json").read_text())
    equivalent = [m for m in doc["mutants"] if m["verdict"] == "equivalent"]
    assert len(doc["mutants"]) == len(sites())
    assert len(load_equivalents()) <= len(equivalent)
    assert len(equivalent) < 0.15 * len(doc["mutants"]), (len(equivalent), len(doc["mutants"]))


def test_cli_errors_are_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """Bad arguments are exit 2 with one line naming them, before any work (the command
    run in-process: the same entry point as ``mbmssec``, without three interpreter
    start-ups)."""
    from mbmssec.cli import main

    assert main(["mutate", "--only", "no:such:1"]) == 2
    assert "no such mutant: no:such:1" in capsys.readouterr().err
    assert main(["mutate", "--out", "/no/such/dir/m.json"]) == 2
    err = capsys.readouterr().err
    assert "--out /no/such/dir/m.json: folder /no/such/dir does not exist" in err
    assert main(["mutate", "--list", "--json"]) == 0
    assert '"operator"' in capsys.readouterr().out


@pytest.mark.slow
def test_cli_reports_killed_and_equivalent_mutants_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two mutants through the whole pipeline (the full catalogue is `mbmssec mutate`):
    the delivery without authentication is killed, the early re-registration is a
    declared equivalent (the cheapest to check) with its declared reason; ``--out``
    writes the same document.  Through two worker processes (``--jobs 2``, each mutant
    in a fresh one); ``--update`` below runs in this process (``--jobs 1``)."""
    from mbmssec.cli import main
    from mbmssec.proofs.mutate import load_equivalents

    out = tmp_path / "mutants.json"
    code = main(
        [
            "mutate",
            "--json",
            "--quiet",
            "--jobs",
            "2",
            "--only",
            "_bmsc_delivery:guard-drop:1",
            "--only",
            "revoke:guard-drop:1",
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    doc = json.loads(captured.out)
    by_id = {m["id"]: m for m in doc["mutants"]}
    killed = by_id["_bmsc_delivery:guard-drop:1"]
    assert killed["verdict"] == "killed" and killed["profile"] == "baseline"
    assert killed["killed_by"] and killed["shortest"] is not None
    eq = by_id["revoke:guard-drop:1"]
    assert eq["verdict"] == "equivalent"
    assert eq["reason"] == load_equivalents()["revoke:guard-drop:1"].reason
    assert doc["counts"] == {"killed": 1, "equivalent": 1, "survived": 0, "stale": 0}
    assert json.loads(out.read_text()) == doc


def test_equivalence_is_proved_not_declared_where_z3_can() -> None:
    """``counter > ue_ctr`` made ``>=`` in Register: the lemma counters_ordered (the UE's
    counter never passes the BM-SC's) makes both comparisons true for a fresh delivery,
    so under the invariant every step is the same: proved equivalent.  A mutant that
    changes a step (the UE's counter not updated, which the checker kills) is not."""
    from mbmssec.proofs.mutate import build, proved_equivalent, sites

    by_id = {s.id: s for s in sites()}
    assert proved_equivalent("baseline", build(by_id["register:compare-flip:1"]))
    assert not proved_equivalent("baseline", build(by_id["register:update-drop:3"]))


@pytest.mark.slow  # 10-16 s: the induction of each of the 7 profiles that run its code
def test_the_mutant_check_reports_a_mutant_proved_equivalent_everywhere() -> None:
    """The same mutant through the mutant check: proved equivalent under every profile
    that runs its code (the baseline and six proposals), so reported equivalent, with
    the proof as its reason, before any search."""
    from mbmssec.proofs.mutate import PROVED_EQUIVALENT, check_mutant

    result = check_mutant("register:compare-flip:1", load_equivalents())
    assert (result.verdict, result.profile, result.killed_by, result.reason) == (
        "equivalent",
        "baseline",
        [],
        PROVED_EQUIVALENT,
    )


@pytest.mark.slow  # 4-8 s: a real mutant check; the full suite runs it
def test_update_rechecks_only_what_is_open(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--update``: from a complete earlier document (here one whose settled verdicts
    are made up, to show they are kept as they are), only the survivor is checked again
    (and found killed); counts and clauses are recomputed; a partial or foreign document
    is refused."""
    from mbmssec.cli import main
    from mbmssec.proofs.mutate import load_equivalents, source_hash

    assert main(["mutate", "--list", "--json"]) == 0
    ids = [m["id"] for m in json.loads(capsys.readouterr().out)]
    # The send guard that a packet carries an MKI (``ops.require(m)``), dropped: it is
    # checked under the baseline alone, which kills it (P3, 3 steps), so the recheck
    # costs one profile's check (a mutant proved equivalent is proved under every
    # profile that runs its code: register:compare-flip:1 takes 7 inductions, the test
    # above).
    open_id = "send:guard-drop:2"
    declared = load_equivalents()

    def entry(i: str) -> dict[str, object]:
        killed_by: list[str]
        if i == open_id:
            verdict, killed_by, reason = "survived", [], ""
        elif i in declared:
            verdict, killed_by, reason = "equivalent", [], declared[i].reason
        else:
            verdict, killed_by, reason = "killed", ["P1"], ""
        return {
            "id": i,
            "function": i.split(":")[0],
            "verdict": verdict,
            "profile": "baseline",
            "killed_by": killed_by,
            "shortest": 3 if killed_by else None,
            "reason": reason,
            "seconds": 1.0,
        }

    doc = {
        "model_source": source_hash(),
        "seconds": 100.0,
        "jobs": 2,
        "counts": {},
        "mutants": [entry(i) for i in ids],
        "clauses": [{"clause": "x", "mutants": 1, "killed": 1, "properties": ["P1"]}],
    }
    path = tmp_path / "m.json"
    path.write_text(json.dumps(doc))
    code = main(["mutate", "--update", str(path), "--jobs", "1", "--quiet"])
    assert code == 0, capsys.readouterr().err
    new = json.loads(path.read_text())
    assert new["rechecked"] == [open_id]
    verdicts = {m["id"]: m["verdict"] for m in new["mutants"]}
    assert verdicts[open_id] == "killed" and len(verdicts) == len(ids)
    rechecked = next(m for m in new["mutants"] if m["id"] == open_id)
    assert rechecked["killed_by"] and rechecked["seconds"] != 1.0
    # every other verdict kept as it was, made-up details included
    assert [m for m in new["mutants"] if m["id"] != open_id] == [
        entry(i) for i in ids if i != open_id
    ]
    assert new["counts"] == {
        "killed": len(ids) - len(declared),
        "equivalent": len(declared),
        "survived": 0,
        "stale": 0,
    }
    assert new["clauses"] and new["seconds"] > 100.0
    # refused: another model source, a partial document
    for bad in ({**doc, "model_source": "x"}, {**doc, "clauses": []}):
        path.write_text(json.dumps(bad))
        assert main(["mutate", "--update", str(path)]) == 2
        assert "--update" in capsys.readouterr().err


# -- mutants of a proposal's own behaviour ------------------------------------------------


def test_proposal_sites_rewrite_the_expression_trees() -> None:
    """The operators on a proposal's guards and updates (``mutate --proposal``): every
    guard dropped and negated, each conjunct of a chain dropped alone, updates of design
    state dropped (history records are not), constants and comparisons flipped."""
    from mbmssec.model import lang
    from mbmssec.model.behaviour import Behaviour, NewAction
    from mbmssec.proofs.check import resolve_proposal
    from mbmssec.proofs.mutate import mutate_behaviour, proposal_sites

    behaviour = resolve_proposal("push_next_tek").behaviour
    assert behaviour is not None
    found = {s.id: s for s in proposal_sites(behaviour)}
    assert len(found) == len(proposal_sites(behaviour))
    assert {s.operator for s in found.values()} == set(OPERATORS) - {"option-flip"}
    conjuncts = [s.text for s in found.values() if s.operator == "conjunct-drop"]
    assert conjuncts == [
        "registered(u, s)",
        "subscribed(u, s)",
        "covered(u)",
        "has_next(s)",
        "not pushed(u, next(s))",
    ]
    dropped = [s.symbol for s in found.values() if s.operator == "update-drop"]
    assert "auth_dlv" not in dropped and "pushed" in dropped  # history is never mutated

    def push(b: Behaviour) -> NewAction:
        return next(a for a in b.actions if a.name == "Push")

    negated = push(mutate_behaviour(behaviour, "Push:guard-negate:2"))
    assert lang.render(negated.guards[1]) == "not (has_next(s) and not pushed(u, next(s)))"
    no_cover = push(mutate_behaviour(behaviour, "Push:conjunct-drop:3"))
    assert lang.render(no_cover.guards[0]) == "registered(u, s) and subscribed(u, s) and true"
    flipped = push(mutate_behaviour(behaviour, "Push:compare-flip:1"))
    assert "ctr(u) + 1 >= ue_ctr(u)" in lang.render_update(flipped.updates[4])
    assert push(behaviour) != negated  # the proposal itself is left as it was


def test_cli_proposal_mutants_list_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    from mbmssec.cli import main

    assert main(["mutate", "--proposal", "ue_clears_keys_out_of_coverage", "--list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == [
        "LoseCoverage:update-drop:1",
        "LoseCoverage:const-flip:1",
    ]
    assert main(["mutate", "--proposal", "kek_common"]) == 2
    assert "sets option values only" in capsys.readouterr().err
    assert main(["mutate", "--proposal", "ue_keeps_one_tek", "--only", "X:y:1"]) == 2
    assert "no such mutant: X:y:1" in capsys.readouterr().err


@pytest.mark.slow
def test_a_proposal_mutant_is_killed_under_the_proposal() -> None:
    """A behaviour proposal through the mutation check: the UE that keeps every TEK when
    it leaves coverage (the deletion's constant flipped) breaks the proposal's own
    property 15 at once, which the proposal's model proves."""
    from mbmssec.proofs.mutate import check_proposal_mutant

    r = check_proposal_mutant("ue_clears_keys_out_of_coverage", "LoseCoverage:const-flip:1")
    assert r.verdict == "killed" and r.killed_by == ["P15"] and r.shortest == 1
    assert r.profile == "ue_clears_keys_out_of_coverage"

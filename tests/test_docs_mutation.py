"""Clause pages list the properties their mutants break (docs/mutants.json)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mbmssec.docgen import page_clauses
from mbmssec.proofs.mutate import source_hash
from mbmssec.spec.loader import Clause, load_spec


@pytest.fixture
def mutants_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "mutants.json"
    monkeypatch.setattr(page_clauses, "MUTANTS_FILE", path)
    page_clauses._mutation_results.cache_clear()
    yield path
    page_clauses._mutation_results.cache_clear()


def _clause(cid: str) -> Clause:
    return load_spec().clauses[cid]


def _write(path: Path, clauses: list[dict[str, object]], source: str | None = None) -> None:
    doc = {"model_source": source or source_hash(), "mutants": [], "clauses": clauses}
    path.write_text(json.dumps(doc))


def test_a_clause_lists_the_properties_its_mutants_break(mutants_file: Path) -> None:
    cid = "6.2.2/AUTH-BEFORE-TEK"
    _write(mutants_file, [{"clause": cid, "mutants": 9, "killed": 7, "properties": ["P1", "P2"]}])
    text = page_clauses._mutation_section(_clause(cid))
    assert "breaks P1, P2 (7 of 9 mutants of its actions are killed" in text


def test_a_clause_no_property_depends_on_is_flagged(mutants_file: Path) -> None:
    cid = "6.2.2/STEP4B"
    _write(mutants_file, [{"clause": cid, "mutants": 3, "killed": 0, "properties": []}])
    assert "**No property depends on it**" in page_clauses._mutation_section(_clause(cid))


def test_stale_or_missing_results_are_said_so(mutants_file: Path) -> None:
    cid = "6.2.2/STEP4B"
    assert "is missing" in page_clauses._mutation_section(_clause(cid))
    page_clauses._mutation_results.cache_clear()
    _write(mutants_file, [], source="0" * 64)
    assert "are stale" in page_clauses._mutation_section(_clause(cid))


def test_the_mutation_page_shows_the_score_and_every_mutant(mutants_file: Path) -> None:
    doc = {
        "model_source": source_hash(),
        "seconds": 61.0,
        "jobs": 2,
        "counts": {"killed": 2, "equivalent": 1, "survived": 1, "stale": 0},
        "mutants": [
            {
                "id": "a:guard-drop:1",
                "verdict": "killed",
                "profile": "baseline",
                "killed_by": ["P1"],
                "shortest": 5,
                "reason": "",
            },
            {
                "id": "b:update-drop:1",
                "verdict": "killed",
                "profile": "replay_none",
                "killed_by": ["counterexample-gone:P8"],
                "shortest": 10,
                "reason": "",
            },
            {
                "id": "c:compare-flip:1",
                "verdict": "equivalent",
                "profile": "baseline",
                "killed_by": [],
                "shortest": None,
                "reason": "proved equivalent",
            },
            {
                "id": "d:const-flip:1",
                "verdict": "survived",
                "profile": "baseline",
                "killed_by": [],
                "shortest": None,
                "reason": "every verdict unchanged",
            },
        ],
        "clauses": [],
    }
    mutants_file.write_text(json.dumps(doc))
    mutants = json.loads(mutants_file.read_text())["mutants"]
    text = page_clauses.mutation_page()
    assert "**4 mutants**: 2 killed, 1 equivalent (25.0 %), 1 survived" in text
    for m in mutants:
        assert f"``{m['id']}``" in text
    assert "counterexample-gone:P8 (10 steps)" in text
    page_clauses._mutation_results.cache_clear()
    mutants_file.unlink()
    assert "Not known" in page_clauses.mutation_page()


# -- the committed catalogue ---------------------------------------------------------------


def test_the_committed_catalogue_is_complete_current_and_has_no_survivor() -> None:
    """docs/mutants.json, the output of a complete ``mbmssec mutate --out
    docs/mutants.json`` (about ten minutes on two cores: too long for the suite, so the
    suite checks its result instead of re-running it).  It must be of the current
    model's actions (an edit of model/actions.py makes it stale until the catalogue is
    run again), cover every mutant the model's source gives, and show no survivor and
    no stale declaration; each equivalent carries its reason (their share is
    tests/test_mutate.py's concern)."""
    from mbmssec.proofs.mutate import sites

    path = page_clauses.MUTANTS_FILE
    assert path.is_file(), "run: mbmssec mutate --out docs/mutants.json"
    doc = json.loads(path.read_text())
    assert doc["model_source"] == source_hash(), (
        "docs/mutants.json is stale: run mbmssec mutate --out docs/mutants.json"
    )
    mutants = doc["mutants"]
    assert sorted(m["id"] for m in mutants) == sorted(s.id for s in sites())
    assert len(mutants) >= 50
    survivors = [m["id"] for m in mutants if m["verdict"] == "survived"]
    assert survivors == []
    assert doc["counts"]["survived"] == 0 and doc["counts"]["stale"] == 0
    equivalent = [m for m in mutants if m["verdict"] == "equivalent"]
    assert all(m["reason"].strip() for m in equivalent)
    killed = [m for m in mutants if m["verdict"] == "killed"]
    assert all(m["killed_by"] for m in killed)
    assert len(killed) + len(equivalent) == len(mutants)

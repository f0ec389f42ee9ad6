"""The documentation build fails, naming what is wrong: a normative clause that loses its
model element, a clause tag that names no clause, stale or incomplete proof results.

These builds need results, but not the proposals' (the checker results shared by
tests/test_docs.py): a baseline-only results folder of their own keeps them off the
worker that computes the shared results, the suite's longest path.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_docs import _copy_docs, _sphinx_check

from mbmssec.commands.check import write_out
from mbmssec.docgen.paths import GENERATED
from mbmssec.docgen.sphinx_ext import generate
from mbmssec.model.actions import ACTIONS
from mbmssec.model.properties import PROPERTIES
from mbmssec.proofs.check import Report, model_hash
from mbmssec.spec.loader import load_spec


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory: pytest.TempPathFactory, baseline_report: Report) -> Path:
    """What ``mbmssec check --universe 2,1,2,1 --out DIR`` writes for the baseline alone."""
    out = tmp_path_factory.mktemp("docs-baseline-results")
    write_out(out, baseline_report, [], model_hash())
    return out


@pytest.mark.slow
def test_removing_a_clause_tag_fails_naming_the_clause(results_dir: Path, tmp_path: Path) -> None:
    spec = load_spec()
    by_props = {c for p in PROPERTIES for c in p.clauses}
    # a normative clause that exactly one action encodes and no property supports
    candidates = [
        (a, c)
        for a in ACTIONS
        for c in a.clauses
        if spec.clauses[c].kind == "normative"
        and c not in by_props
        and sum(c in b.clauses for b in ACTIONS) == 1
    ]
    assert candidates
    victim, cid = candidates[0]
    patched = tuple(
        dataclasses.replace(a, clauses=tuple(x for x in a.clauses if x != cid))
        if a is victim
        else a
        for a in ACTIONS
    )
    src = _copy_docs(tmp_path / "src")
    generate(src, results_dir, actions=patched)
    proc = _sphinx_check(src, results_dir)
    assert proc.returncode != 0
    assert f"clause {cid}: normative, but no model element" in proc.stderr


@pytest.mark.slow
def test_a_bogus_clause_tag_is_a_broken_link(results_dir: Path, tmp_path: Path) -> None:
    patched = tuple(
        dataclasses.replace(a, clauses=(*a.clauses, "9.9/NOPE")) if a.name == "Tick" else a
        for a in ACTIONS
    )
    src = _copy_docs(tmp_path / "src")
    problems = generate(src, results_dir, actions=patched)
    assert any("Tick is tagged with unknown clause '9.9/NOPE'" in p.message for p in problems)
    text = (src / GENERATED / "model" / "actions.rst").read_text()
    assert "9_9_NOPE" not in text  # the object never links to a clause that is not there


@pytest.mark.slow
def test_stale_and_incomplete_results_fail_naming_them(results_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "results"
    shutil.copytree(results_dir, bad)
    data = json.loads((bad / "results.json").read_text())
    data["model_hash"] = "0" * 64  # the model was edited after the checker ran
    props = data["baseline"]["properties"]
    data["baseline"]["properties"] = [p for p in props if p["number"] != 3]
    for p in data["baseline"]["properties"]:
        if p["verdict"] == "refuted":
            p["trace"] = None  # and with it its states and explanation
            p["itf"] = None
            p["explanation"] = None
    (bad / "results.json").write_text(json.dumps(data))
    src = _copy_docs(tmp_path / "src")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mbmssec",
            "docs",
            "--source",
            str(src),
            "--results",
            str(bad),
            "--no-check",
            "--builder",
            "dummy",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 1
    err = proc.stderr
    assert f"{bad / 'results.json'}: stale proof results" in err
    assert "property 3 (P3 MKIs are unique and every packet carries one): no proof result" in err
    assert "proof result PR_BASELINE_7" in err and "no counterexample trace" in err

"""The documentation build fails, naming what is wrong: a normative clause that loses its
model element, a clause tag that names no clause, stale or incomplete proof results.

These builds need results, but not the proposals' (the checker results shared by
tests/test_docs.py): a baseline-only results folder of their own keeps them off the
worker that computes the shared results, the suite's longest path.

Every defect is planted in one copy of the documentation, and one real strict Sphinx
build of it (the flags of ``mbmssec docs``) must fail naming each of them: each test
asserts the message of its own defect, which only that defect produces (a strict build
fails on any one warning).  ``mbmssec docs`` itself is run on stale results over a
small documentation source of its own: the command says the results are stale, builds
anyway with ``--no-check``, and exits 1 when the strict build fails.
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
from mbmssec.docgen.problems import Problem
from mbmssec.docgen.sphinx_ext import generate
from mbmssec.model.actions import ACTIONS
from mbmssec.model.dsl import Action
from mbmssec.model.properties import PROPERTIES
from mbmssec.proofs.check import Report, model_hash
from mbmssec.spec.loader import load_spec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory: pytest.TempPathFactory, baseline_report: Report) -> Path:
    """What ``mbmssec check --universe 2,1,2,1 --out DIR`` writes for the baseline alone."""
    out = tmp_path_factory.mktemp("docs-baseline-results")
    write_out(out, baseline_report, [], model_hash())
    return out


@pytest.fixture(scope="module")
def bad_results(tmp_path_factory: pytest.TempPathFactory, results_dir: Path) -> Path:
    """The baseline's results, stale (the model was edited after the checker ran),
    without property 3's result, and with no trace for the refuted property 7."""
    bad = tmp_path_factory.mktemp("docs-bad-results") / "results"
    shutil.copytree(results_dir, bad)
    data = json.loads((bad / "results.json").read_text())
    data["model_hash"] = "0" * 64
    props = data["baseline"]["properties"]
    data["baseline"]["properties"] = [p for p in props if p["number"] != 3]
    for p in data["baseline"]["properties"]:
        if p["verdict"] == "refuted":
            p["trace"] = None  # and with it its states and explanation
            p["itf"] = None
            p["explanation"] = None
    (bad / "results.json").write_text(json.dumps(data))
    return bad


def _untagged() -> tuple[Action, str]:
    """A normative clause that exactly one action encodes and no property supports, and
    that action."""
    spec = load_spec()
    by_props = {c for p in PROPERTIES for c in p.clauses}
    candidates = [
        (a, c)
        for a in ACTIONS
        for c in a.clauses
        if spec.clauses[c].kind == "normative"
        and c not in by_props
        and sum(c in b.clauses for b in ACTIONS) == 1
    ]
    assert candidates
    return candidates[0]


BOGUS = "9.9/NOPE"


@dataclasses.dataclass
class Broken:
    src: Path
    problems: list[Problem]
    returncode: int
    stderr: str


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory, bad_results: Path) -> Broken:
    """One copy of the documentation with every defect: the clause of :func:`_untagged`
    removed from its action, a bogus clause tag on Tick, and :func:`bad_results`;
    generated, then built strictly by Sphinx."""
    victim, cid = _untagged()
    assert victim.name != "Tick"
    patched = []
    for a in ACTIONS:
        if a is victim:
            a = dataclasses.replace(a, clauses=tuple(x for x in a.clauses if x != cid))
        if a.name == "Tick":
            a = dataclasses.replace(a, clauses=(*a.clauses, BOGUS))
        patched.append(a)
    src = _copy_docs(tmp_path_factory.mktemp("docs-broken") / "src")
    problems = generate(src, bad_results, actions=tuple(patched))
    proc = _sphinx_check(src, bad_results)
    return Broken(src, problems, proc.returncode, proc.stderr)


def test_removing_a_clause_tag_fails_naming_the_clause(broken: Broken) -> None:
    _victim, cid = _untagged()
    assert broken.returncode != 0
    assert f"clause {cid}: normative, but no model element" in broken.stderr


def test_a_bogus_clause_tag_is_a_broken_link(broken: Broken) -> None:
    assert any(
        f"Tick is tagged with unknown clause '{BOGUS}'" in p.message for p in broken.problems
    )
    assert f"Tick is tagged with unknown clause '{BOGUS}'" in broken.stderr
    text = (broken.src / GENERATED / "model" / "actions.rst").read_text()
    assert "9_9_NOPE" not in text  # the object never links to a clause that is not there


def test_stale_and_incomplete_results_fail_naming_them(broken: Broken, bad_results: Path) -> None:
    assert broken.returncode != 0
    err = broken.stderr
    assert f"{bad_results / 'results.json'}: stale proof results" in err
    assert "property 3 (P3 MKIs are unique and every packet carries one): no proof result" in err
    assert "proof result PR_BASELINE_7" in err and "no counterexample trace" in err


def _docs_no_check(src: Path, results: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """``mbmssec docs --no-check`` with the dummy builder, as a process."""
    cmd = ["docs", "--source", str(src), "--results", str(results), "--no-check"]
    return subprocess.run(
        [sys.executable, "-m", "mbmssec", *cmd, "--builder", "dummy", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_the_command_builds_stale_results_with_no_check_and_exits_1(
    bad_results: Path, tmp_path: Path
) -> None:
    """``mbmssec docs --no-check`` on stale results: it says so, builds anyway, and
    exits 1 when the strict build fails (here a small source with a broken reference,
    so that the command's own part is what is checked; the real pages' failures are
    the tests above)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text('project = "t"\nextensions: list[str] = []\nnitpicky = True\n')
    (src / "index.rst").write_text("Index\n=====\n\nSee :ref:`no-such-label`.\n")
    proc = _docs_no_check(src, bad_results, tmp_path / "out")
    assert proc.returncode == 1, proc.stderr
    err = proc.stderr
    assert "the results are stale" in err and "building anyway (--no-check)" in err
    assert "no-such-label" in err and "the strict build failed" in err


def test_a_sphinx_crash_is_exit_2_and_said_so(tmp_path: Path) -> None:
    """A Sphinx crash (an error that stops the build, here a configuration that cannot
    be read) is exit 2 with its own line, not exit 1 (a failed strict build)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text("raise RuntimeError('broken configuration')\n")
    (src / "index.rst").write_text("Title\n=====\n")
    (tmp_path / "results").mkdir()
    proc = _docs_no_check(src, tmp_path / "results", tmp_path / "out")
    assert proc.returncode == 2, proc.stderr
    assert "sphinx-build stopped with status 2" in proc.stderr
    assert "not a warning of the strict build" in proc.stderr
    assert "the strict build failed" not in proc.stderr

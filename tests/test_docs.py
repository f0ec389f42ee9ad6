"""The documentation (docs/, mbmssec.docgen, ``mbmssec docs``): the strict Sphinx build
passes, every clause has a section with a status, every checked proposal page shows its
verdicts, nothing is loaded from the network, headless Chromium draws the message
sequence charts, and the build fails, naming the culprit, on a missing clause tag, on
stale results, on a property without a proof result and on a refutation without a trace.

The proof results are computed once per session for the baseline and a few proposals in
a small bounded-search universe (the full ``mbmssec check --all`` takes minutes); the
tests that need them or the build are in the slow lane.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import CheckerResults

from mbmssec.cli import build_parser, main
from mbmssec.commands.check import write_out
from mbmssec.docgen import needs
from mbmssec.docgen.inputs import STATUSES
from mbmssec.docgen.links import load_junit, load_links
from mbmssec.docgen.page_cli import cli_page, describe_parser
from mbmssec.docgen.paths import GENERATED
from mbmssec.docgen.sphinx_ext import generate
from mbmssec.model.actions import ACTIONS
from mbmssec.model.properties import PROPERTIES
from mbmssec.proofs.check import model_hash, shipped_proposals
from mbmssec.proofs.results import FORMAT_VERSION, ResultsError, load_results
from mbmssec.spec.loader import load_spec

# The checker results and the Sphinx build are session fixtures: one worker builds them.
pytestmark = pytest.mark.xdist_group("checker")

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
#: Proposals checked for these tests: between them they touch every 6.2.3.3 statement
#: that has an open choice, break properties 3, 4 and 9, and fix property 7; the last
#: states behaviour (a changed action and a property of its own).
PROPOSALS = (
    "activate_immediately",
    "mki_optional",
    "unknown_mki_wait",
    "rekey_on_join_and_leave",
    "ue_clears_keys_out_of_coverage",
)
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = DOCS / "_build" / "screenshots"
#: The lane-header fill of proofs/msc.py charts: no other element of the site uses it.
MSC_LANE_FILL = (0xEE, 0xEE, 0xFF)


def _copy_docs(dest: Path) -> Path:
    """The documentation sources in ``dest``, with the README they include beside them."""
    shutil.copytree(DOCS, dest, ignore=shutil.ignore_patterns("_build", "_generated"))
    shutil.copyfile(ROOT / "README.md", dest.parent / "README.md")
    return dest


@pytest.fixture(scope="session")
def results_dir(tmp_path_factory: pytest.TempPathFactory, checker_results: CheckerResults) -> Path:
    """What ``mbmssec check PROPOSALS --universe 2,1,2,1 --out DIR`` writes, written by the
    command's own writer from the shared checker results (same universe and depth;
    tests/test_check.py runs the command itself)."""
    out = tmp_path_factory.mktemp("docs-results")
    by_name = {c.proposal.name: c for c in checker_results.comparisons if c.proposal}
    chosen = [by_name[name] for name in PROPOSALS]
    write_out(out, checker_results.baseline, chosen, model_hash())
    return out


@pytest.fixture(scope="session")
def results(results_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((results_dir / "results.json").read_text())
    return data


@dataclasses.dataclass
class Build:
    html: Path
    seconds: float
    returncode: int
    stderr: str


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory, results_dir: Path) -> Build:
    base = tmp_path_factory.mktemp("docs-build")
    src = _copy_docs(base / "src")
    html = base / "html"
    t0 = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mbmssec",
            "docs",
            "--source",
            str(src),
            "--results",
            str(results_dir),
            "--out",
            str(html),
            "--no-check",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    build = Build(html, time.monotonic() - t0, proc.returncode, proc.stderr)
    print(f"docs build: {build.seconds:.1f} s, status {build.returncode}")
    return build


def _page(build: Build, rel: str) -> str:
    path = build.html / GENERATED / rel
    assert path.is_file(), f"missing page {rel}"
    return path.read_text(encoding="utf-8")


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


# -- the build ------------------------------------------------------------------------------


@pytest.mark.slow
def test_strict_build_passes(built: Build) -> None:
    assert built.returncode == 0, built.stderr
    assert (built.html / "index.html").is_file()


@pytest.mark.slow
def test_every_clause_has_a_section_with_a_status(built: Build, results: dict[str, Any]) -> None:
    spec = load_spec()
    refuted = {p["number"] for p in results["baseline"]["properties"] if p["verdict"] == "refuted"}
    assert refuted, "the baseline refutes property 7"
    for cid, clause in spec.clauses.items():
        html = _page(built, f"clauses/{clause.clause}.html")
        # the section of the statement: from its heading to the next section
        m = re.search(
            r"<h2>" + re.escape(cid) + r"<a class=\"headerlink\"(.*?)(<section|\Z)", html, re.S
        )
        assert m, f"no section for clause {cid}"
        status = re.search(
            r"<strong>Status:</strong>\s*<span class=\"status-[a-z-]+\">"
            r"([^<]+)</span>",
            m.group(1),
        )
        assert status, f"no status in the section of {cid}"
        value = status.group(1)
        assert value in STATUSES, (cid, value)
        if clause.kind == "ffs":
            assert value == "FFS", cid
        elif not clause.modelled:
            assert value == "not modelled", cid
        elif any(cid in p.clauses and p.number in refuted for p in PROPERTIES):
            assert value == "supports a refuted property", cid


@pytest.mark.slow
def test_every_proposal_page_shows_its_verdicts(built: Build, results: dict[str, Any]) -> None:
    checked = {p["proposal"]["name"]: p for p in results["proposals"]}
    assert set(checked) == set(PROPOSALS)
    baseline = {p["number"]: p["verdict"] for p in results["baseline"]["properties"]}
    for proposal in shipped_proposals():
        html = _page(built, f"proposals/{proposal.name}.html")
        if proposal.name not in checked:
            assert "not checked" in _text(html), proposal.name
            continue
        entry = checked[proposal.name]
        verdicts = {p["number"]: p["verdict"] for p in entry["report"]["properties"]}
        table = re.search(r"<table[^>]*mbmssec-verdicts.*?</table>", html, re.S)
        assert table, f"no verdict table on the page of {proposal.name}"
        rows = {}
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table.group(0), re.S)[1:]:
            cells = [_text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            rows[int(cells[0].removeprefix("P"))] = cells
        assert set(rows) == {p.number for p in PROPERTIES}, proposal.name
        for n, cells in rows.items():
            change = (
                "breaks"
                if n in entry["broken"]
                else "fixes"
                if n in entry["fixed"]
                else "no longer proved"
                if n in entry["weakened"]
                else "no change"
            )
            assert cells[1:4] == [baseline[n], verdicts[n], change], (proposal.name, n)


@pytest.mark.slow
def test_a_behaviour_proposal_page_shows_its_behaviour(built: Build) -> None:
    """The page of a proposal that states behaviour shows it in the proposal language,
    and the property it adds with its verdict."""
    text = _text(_page(built, "proposals/ue_clears_keys_out_of_coverage.html"))
    assert "change LoseCoverage" in text
    assert "forall t: TEK. holds(u, t) := false" in text
    assert "P15 no_keys_out_of_coverage" in text and "A UE out of coverage holds no TEK" in text


@pytest.mark.slow
def test_nothing_is_loaded_from_the_network(built: Build) -> None:
    remote = re.compile(r"^\s*(https?:)?//", re.I)
    pages = list(built.html.rglob("*.html"))
    assert len(pages) > 40
    for page in pages:
        html = page.read_text(encoding="utf-8")
        for tag, attr, value in re.findall(
            r"<(script|link|img|iframe|source|embed|object)\b[^>]*?\b(src|href|data)="
            r"[\"']([^\"']*)[\"']",
            html,
            re.I,
        ):
            assert not remote.match(value), f"{page}: <{tag} {attr}={value}>"
        assert not re.search(r"@import\s+(url\()?[\"']?(https?:)?//", html, re.I), page
    for css in built.html.rglob("*.css"):
        text = css.read_text(encoding="utf-8", errors="replace")
        assert not re.search(r"(url\(\s*[\"']?|@import\s+[\"']?)(https?:)?//", text, re.I), css


@pytest.mark.slow
def test_pages_link_model_proofs_and_code(built: Build) -> None:
    page = _page(built, "clauses/6.2.3.3.html")
    html = _text(page)
    # the statement, the encoding action with its source, the property and its verdict,
    # the implementation and tests linked through docs/traceability.toml
    clause = load_spec().clauses["6.2.3.3/UNKNOWN-MKI"]
    assert " ".join(clause.statement.split()) in html
    assert "def receive(" in re.sub(r"<[^>]+>", "", page) and "model/actions.py" in html
    assert "Recovery after an unknown MKI" in html
    assert "SrtpReceiver.unprotect" in html and "test_unknown_mki" in html
    matrix = _text(_page(built, "traceability.html"))
    for cid in load_spec().clauses:
        assert cid in matrix, cid
    review = _text(_page(built, "security_review.html"))
    assert "the recovery plan's 2 steps" in review  # property 9 says its bound
    assert "depth ≤" in review and "2 UEs, 1 service, 2 TEKs, 1 packet" in review
    cli = _text(_page(built, "cli.html"))
    assert "mbmssec docs" in cli and "--no-check" in cli and "mbmssec check" in cli


# -- headless Chromium --------------------------------------------------------------------


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--force-device-scale-factor=1",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.interop
@pytest.mark.parametrize("page", ["clauses/6.2.3.3", "properties/p7"])
def test_chromium_renders_the_message_sequence_chart(
    built: Build, tmp_path: Path, page: str
) -> None:
    import numpy as np
    from PIL import Image

    url = (built.html / GENERATED / f"{page}.html").as_uri()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / f"{page.replace('/', '_')}.png"
    shot.unlink(missing_ok=True)
    # one launch: the DOM after load on stdout, and the screenshot
    run = _chromium(
        ["--dump-dom", f"--screenshot={shot}", "--window-size=1400,4000", url],
        tmp_path / "profile",
    )
    assert run.returncode == 0 and shot.is_file(), run.stderr
    charts = re.findall(r"<div class=\"mbmssec-msc[^\"]*\">\s*<svg\b.*?</svg>", run.stdout, re.S)
    assert charts, f"no inline chart in the DOM of {page}"
    assert all("violates property" in c for c in charts)
    with Image.open(shot) as img:
        pixels = np.asarray(img.convert("RGB"))
        lane = int(np.all(pixels == np.array(MSC_LANE_FILL, dtype=np.uint8), axis=2).sum())
    # each chart has four lane headers of 88 x 20 px inside their border
    assert lane > 4 * 80 * 18, f"{shot}: the chart's lane headers are not visible ({lane} px)"


#: The probe appended to a copy of a page: after layout it records how wide the
#: document is against the window, in an element that ``--dump-dom`` shows.
_WIDTH_PROBE = (
    "<script>window.addEventListener('load', () => {const d = document.createElement('div');"
    "d.id = 'width-probe'; d.dataset.scroll = document.documentElement.scrollWidth;"
    "d.dataset.client = document.documentElement.clientWidth; document.body.appendChild(d);"
    "});</script>"
)


@pytest.mark.slow
@pytest.mark.interop
@pytest.mark.parametrize(
    "page,must_show",
    [
        (f"{GENERATED}/properties/p7.html", "Formal statement"),
        ("glossary.html", "inductive invariant"),
        (f"{GENERATED}/traceability.html", "Traceability"),
        (f"{GENERATED}/properties/lemmas.html", "Used by the proof of"),
    ],
)
def test_pages_fit_1280_pixels_and_are_screenshotted(
    built: Build, tmp_path: Path, page: str, must_show: str
) -> None:
    """Each page shows what it is for and has no horizontal overflow in a 1280-pixel
    window (measured by Chromium after layout); a screenshot of each is kept in
    docs/_build/screenshots for a reader to look at.  The width is measured in a
    900-px-high window, where a page taller than that has its vertical scrollbar (and
    so 15 px less width), and the screenshot is taken 2,400 px high: two launches."""
    source = built.html / page
    assert source.is_file(), f"missing page {page}"
    html = source.read_text(encoding="utf-8")
    assert must_show in _text(html), f"{page} does not show {must_show!r}"
    probe = source.with_name(f"probe-{source.name}")
    probe.write_text(html.replace("</body>", _WIDTH_PROBE + "</body>"), encoding="utf-8")
    dom = _chromium(["--window-size=1280,900", "--dump-dom", probe.as_uri()], tmp_path / "p")
    assert dom.returncode == 0, dom.stderr
    m = re.search(r'id="width-probe" data-scroll="(\d+)" data-client="(\d+)"', dom.stdout)
    assert m, f"the width probe did not run on {page}"
    scroll, client = int(m.group(1)), int(m.group(2))
    assert client > 1000, f"unexpected window width {client}"
    assert scroll <= client, f"{page} overflows a 1280-px window: {scroll} px wide > {client}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / (page.replace("/", "_").removesuffix(".html") + ".png")
    shot.unlink(missing_ok=True)
    run = _chromium(
        [f"--screenshot={shot}", "--window-size=1280,2400", source.as_uri()], tmp_path / "p"
    )
    assert run.returncode == 0 and shot.is_file(), run.stderr


# -- the build fails, naming what is wrong -------------------------------------------------


def _sphinx_check(src: Path, results_dir: Path) -> subprocess.CompletedProcess[str]:
    """A strict build of pages generated beforehand (the dummy builder checks everything
    and writes no HTML)."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-n",
            "-q",
            "-b",
            "dummy",
            "-D",
            "mbmssec_generate=0",
            "-D",
            f"mbmssec_results={results_dir}",
            str(src),
            str(src / "_build" / "dummy"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


# -- command line and generator details ---------------------------------------------------


def test_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    afile = tmp_path / "file"
    afile.write_text("x")
    assert main(["docs", "--results", str(afile)]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["docs", "--source", str(tmp_path)]) == 2
    assert "has no conf.py" in capsys.readouterr().err
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "results.json").write_text(
        json.dumps({"format": FORMAT_VERSION, "model_hash": 3})
    )
    with pytest.raises(ResultsError, match=r"results.json: model_hash: expected str"):
        load_results(tmp_path / "r" / "results.json")


def test_broken_traceability_entries_are_reported(tmp_path: Path) -> None:
    links = tmp_path / "traceability.toml"
    links.write_text(
        '[[impl]]\nobject = "mbmssec.impl.protocols.srtp.NoSuchThing"\nclauses = []\n\n'
        '[[test]]\ntest = "tests/test_srtp.py::test_unknown_mki"\n'
        'clauses = ["6.2.3.3/NOPE"]\n'
    )
    elements, problems = load_links(links, load_spec(), {1})
    messages = [p.message for p in problems]
    assert any(
        "'mbmssec.impl.protocols.srtp.NoSuchThing' names no function or class" in m
        for m in messages
    )
    assert any("unknown clause id '6.2.3.3/NOPE'" in m for m in messages)
    assert [e.name for e in elements if e.kind == "test" and e.origin != "docstring"] == [
        "tests/test_srtp.py::test_unknown_mki"
    ]


def test_need_ids_are_distinct() -> None:
    spec = load_spec()
    for make, names in (
        (needs.clause_need_id, list(spec.clauses)),
        (needs.option_need_id, list(spec.options)),
        (needs.action_need_id, [a.name for a in ACTIONS]),
        (needs.proposal_need_id, [p.name for p in shipped_proposals()]),
    ):
        ids = [make(n) for n in names]
        assert len(set(ids)) == len(ids)
        assert all(re.match(needs.NEEDS_ID_REGEX, i) for i in ids)


@pytest.mark.slow
def test_junit_outcomes_are_shown(results_dir: Path, tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    report.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">'
        '<testcase classname="tests.test_srtp" name="test_unknown_mki" time="0.1"/>'
        '<testcase classname="tests.test_mikey" name="test_counter_replay_protection">'
        '<failure message="boom">trace</failure></testcase>'
        '<testcase classname="tests.test_mikey" name="test_tek_delivery_round_trip[a-1]"/>'
        '<testcase classname="tests.test_mikey" name="test_tek_delivery_round_trip[b-2]">'
        '<skipped message="no"/></testcase>'
        "</testsuite></testsuites>"
    )
    assert load_junit(report) == {
        "tests/test_srtp.py::test_unknown_mki": "passed",
        "tests/test_mikey.py::test_counter_replay_protection": "failed",
        "tests/test_mikey.py::test_tek_delivery_round_trip": "passed",
    }
    src = _copy_docs(tmp_path / "src")
    generate(src, results_dir, junit=report)
    text = (src / GENERATED / "implementation.rst").read_text()

    def status_of(test: str) -> str:
        block = re.search(r"\.\. test:: " + re.escape(test) + r"\n(( {3}:.*\n)+)", text)
        assert block, test
        found = re.search(r":status: (.+)", block.group(1))
        assert found, test
        return found.group(1)

    assert status_of("tests/test_srtp.py::test_unknown_mki") == "passed"
    assert status_of("tests/test_mikey.py::test_counter_replay_protection") == "failed"
    assert status_of("tests/test_srtp.py::test_key_switch_by_mki") == "not run"
    page = (src / GENERATED / "clauses" / "6.2.3.3.rst").read_text()
    assert ":need:`TEST_TEST_SRTP_TEST_UNKNOWN_MKI` (:status-passed:`passed`)" in page


def test_the_generator_does_not_import_the_command_line() -> None:
    """docgen sits below the command line: loading the Sphinx extension and generating
    pages must not pull in mbmssec.cli or mbmssec.commands."""
    code = (
        "import sys, mbmssec.docgen.sphinx_ext, mbmssec.docgen.page_cli\n"
        "print(sorted(m for m in sys.modules if m == 'mbmssec.cli' "
        "or m.startswith('mbmssec.commands')))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_cli_page_renders_the_parser_it_is_given() -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="tool", description="A tool.")
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run it", description="Run the thing.")
    run.add_argument(
        "--depth", type=int, default=7, metavar="N", help="depth (default %(default)s)"
    )
    run.add_argument("--quiet", action="store_true", help="say nothing")
    run.add_argument("target", help="what to run")
    ref = describe_parser(parser, origin="tests.tool")
    assert [c.name for c in ref.commands] == ["run"]
    page = cli_page(ref)
    assert "Generated from the argument parser of ``tool`` (``tests.tool``)" in page
    assert "tool run\n--------" in page
    # the --depth row: names, value, shown default, help with the default filled in
    assert "   * - ``--depth``\n     - N\n     - ``7``\n     - depth (default 7)" in page
    assert "   * - ``--quiet``\n     -  \n     -  \n     - say nothing" in page
    assert "   * - ``target``\n" in page
    # describing the parser leaves its formatter as it was
    assert run.formatter_class is argparse.HelpFormatter
    # the real command line describes every sub-command
    names = {c.name for c in describe_parser(build_parser(rst=True)).commands}
    assert {"check", "docs", "matrix"} <= names

"""Pages generated without a Sphinx build: re-keying load from the simulation, benchmark
results from a run, a counterexample's section from the checker's results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mbmssec.commands.check import write_out
from mbmssec.docgen.inputs import Inputs
from mbmssec.docgen.page_measured import ASSUMED_CAPACITY, bench_page, load_page, measured_capacity
from mbmssec.docgen.page_model import write_property_page
from mbmssec.docgen.rst import esc
from mbmssec.docgen.site import Site
from mbmssec.model.actions import ACTIONS
from mbmssec.model.properties import PROPERTIES
from mbmssec.model.trace import Trace
from mbmssec.proofs.check import Report, model_hash
from mbmssec.proofs.results import load_results
from mbmssec.simulation.load import ALL_STRATEGIES
from mbmssec.spec.loader import load_spec


def test_load_page_without_measurement_uses_the_assumed_capacity(tmp_path: Path) -> None:
    page = load_page(tmp_path)
    assert f"assumed ({ASSUMED_CAPACITY:,.0f} requests/s" in page
    for strategy in ALL_STRATEGIES:
        assert f"``{strategy}``" in page
    # no spreading: every fetching UE asks in the same one-second bin, far above N/W
    lines = page.splitlines()
    row = next(i for i, line in enumerate(lines) if line.strip() == "* - ``none``")
    peak = float(lines[row + 1].strip().lstrip("- ").replace(",", ""))
    from mbmssec.docgen.page_measured import LOAD_SCENARIO as P

    assert peak > 100 * P.ues / P.window
    assert "property-4 violators" in page


def test_load_page_reads_the_measured_capacity(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text(
        json.dumps({"benchmarks": {"bmsc": {"result": {"registrations_per_second": 123.0}}}})
    )
    assert measured_capacity(tmp_path) == 123.0
    assert "measured by ``mbmssec bench`` (123 registrations/s)" in load_page(tmp_path)
    (tmp_path / "results.json").write_text("{not json")
    assert measured_capacity(tmp_path) is None


def test_bench_page_lists_figures_and_copies_plots(tmp_path: Path) -> None:
    src, out = tmp_path / "bench", tmp_path / "out"
    src.mkdir()
    text, copied = bench_page(src, out)
    assert "No benchmark results" in text and copied == []
    (src / "results.json").write_text(
        json.dumps(
            {
                "mode": "quick",
                "machine": {"date": "2026-11-28", "cpu_count": 2},
                "figures": [
                    {
                        "benchmark": "srtp",
                        "figure": "protect",
                        "value": 2.0,
                        "unit": "pkt/s",
                        "reference": "libsrtp",
                        "reference_value": 1.0,
                        "ratio": 2.0,
                    }
                ],
            }
        )
    )
    (src / "srtp.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    text, copied = bench_page(src, out)
    assert "libsrtp (1.0)" in text and "2.000" in text
    assert copied == [out / "srtp.png"] and copied[0].read_bytes().startswith(b"\x89PNG")
    assert ".. image:: bench/srtp.png" in text


@pytest.mark.xdist_group("checker")
def test_the_counterexample_section_shows_why_and_links_the_states(
    baseline_report: Report, tmp_path: Path
) -> None:
    """Property 7's page (generated from what ``check --out`` writes, without a Sphinx
    build): under the chart, the sentence of why, and the trace's states as ITF JSON."""
    results = tmp_path / "results"
    write_out(results, baseline_report, [], model_hash())
    inputs = Inputs(  # what collect() reads, but the code links (parsing every module)
        spec=load_spec(),
        actions=ACTIONS,
        properties=PROPERTIES,
        proposals=[],
        results=load_results(results / "results.json"),
        results_dir=results,
        current_hash=model_hash(),
        elements=[],
    )
    site = Site.create(inputs, tmp_path / "generated")
    write_property_page(site, PROPERTIES[6])
    page = (tmp_path / "generated" / "properties" / "p7.rst").read_text(encoding="utf-8")
    verdict = baseline_report.verdicts[7]
    assert verdict.trace is not None and verdict.explanation is not None
    assert f"**Why:** {esc(verdict.explanation)}" in page
    assert page.index("raw:: html") < page.index("**Why:**")  # under the chart
    assert ":download:`states (ITF JSON) <../msc/baseline-P7.itf.json>`" in page
    states = tmp_path / "generated" / "msc" / "baseline-P7.itf.json"
    assert Trace.from_itf(json.loads(states.read_text())) == verdict.trace

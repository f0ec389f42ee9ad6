"""The build-time pages: re-keying load from the simulation, benchmark results from a run."""

from __future__ import annotations

import json
from pathlib import Path

from mbmssec.docgen.page_measured import ASSUMED_CAPACITY, bench_page, load_page, measured_capacity
from mbmssec.simulation.load import ALL_STRATEGIES


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

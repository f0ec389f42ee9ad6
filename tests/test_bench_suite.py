"""Tests of the benchmark suite (mbmssec.bench.suite) and ``mbmssec bench``.

Most tests replace each benchmark's ``run`` with one returning a hand-written result of
the real shape, so the files, the table's ratios (worked out by hand below) and the
handling of a failing, missing or hanging benchmark are checked in a second or two.
One test runs the real SRTP benchmark in quick mode in its own process, against libsrtp.
"""

from __future__ import annotations

import json
import math
import os
import sys
import textwrap
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mbmssec import cli
from mbmssec.bench import (
    libsrtp,
    load_bench,
    mikey_bench,
    model_bench,
    proof_bench,
    srtp_bench,
    suite,
)
from mbmssec.bench.suite import Benchmark, Outcome

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

SRTP: dict[str, float] = {
    "ours_protect_batch_pps": 200_000.0,
    "ours_unprotect_batch_pps": 150_000.0,
    "ours_protect_single_pps": 50_000.0,
    "ours_unprotect_single_pps": 30_000.0,
    "libsrtp_protect_pps": 100_000.0,
    "libsrtp_unprotect_pps": 120_000.0,
    "protect_ratio": 2.0,
    "unprotect_ratio": 1.25,
    "protect_single_ratio": 0.5,
    "unprotect_single_ratio": 0.25,
    "outputs_identical": 1.0,
    "libsrtp_available": 1.0,
    "packets": 2000.0,
    "repetitions": 3.0,
    "batch_size": 256.0,
    "payload_bytes": 160.0,
}
MODEL = {
    "model_steps_per_second": 10_000,
    "reference_copies_per_second": 1_000_000,
    "ratio_model_to_reference": 0.01,
    "ratio_to_aim_5000": 2.0,
    "steps": 100,
    "enabled_fraction": 0.5,
}
MIKEY = {
    "benchmark": "mikey",
    "quick": True,
    "iterations": 10,
    "reference": "bare",
    "cases": [
        {
            "encryption": "AES_CM_128",
            "keys": 4,
            "message_bytes": 298,
            "verification_bytes": 47,
            "build_parse_verify_per_second": 2_000.0,
            "reference_per_second": 40_000.0,
            "ratio_to_reference": 0.05,
            "verification_build_verify_per_second": 9_000.0,
            "verification_reference_per_second": 45_000.0,
            "verification_ratio_to_reference": 0.2,
        }
    ],
}
LOAD = {
    "benchmark": "load",
    "quick": True,
    "ues": 1_000,
    "window": 100.0,
    "bin_width": 1.0,
    "strategies": {
        "none": {
            "seconds": 0.1,
            "ues_per_second": 10_000.0,
            "requests": 1000,
            "peak_rate": 1_000.0,
            "uniform_limit": 10.0,
            "peak_over_uniform": 100.0,
            "peak_to_mean": 100.0,
        },
        "random_interval": {
            "seconds": 0.1,
            "ues_per_second": 4_000_000.0,
            "requests": 1000,
            "peak_rate": 15.0,
            "uniform_limit": 10.0,
            "peak_over_uniform": 1.5,
            "peak_to_mean": 1.5,
        },
    },
    "reference_per_ue_loop": {"ues": 100, "ues_per_second": 1_000_000.0},
}
POPULATION = {
    "populations": [100, 1000],
    "window": 100.0,
    "bin_width": 1.0,
    "uniform_limit": [1.0, 10.0],
    "peak_rate": {"none": [100.0, 1000.0], "random_interval": [3.0, 15.0]},
}
PROOF = {
    "benchmark": "proofs",
    "baseline_check": {"seconds": 5.0, "target_seconds": 20.0, "ratio_to_target": 0.25},
    "queries": {"count": 5, "solver_calls": 3, "median_ms": 1.5},
    "bmc_vs_depth": {
        "property": 6,
        "depths": [
            {"depth": 0, "seconds": 0.1, "cumulative_seconds": 0.1, "ratio_to_depth_1": 0.5},
            {"depth": 1, "seconds": 0.2, "cumulative_seconds": 0.3, "ratio_to_depth_1": 1.0},
            {"depth": 2, "seconds": 0.8, "cumulative_seconds": 1.1, "ratio_to_depth_1": 4.1},
        ],
    },
}

BMSC = {
    "benchmark": "bmsc",
    "registrations_per_second": 200.0,
    "bin_width": 0.1,
    "registration": {
        "concurrency": 32,
        "registrations_per_second": 200.0,
        "reference_exchanges_per_second": 1_000.0,
        "ratio_to_reference": 0.2,
    },
    "fetch_spreading": {
        "none": {"ues": 100, "period": 1.5, "peak_rate": 800.0, "mean_rate": 100.0, "failures": 0},
        "scheduled_slots": {
            "ues": 100,
            "period": 1.5,
            "peak_rate": 250.0,
            "mean_rate": 125.0,
            "failures": 0,
        },
    },
}

ALL_PLOTS = {
    "srtp_vs_libsrtp.png",
    "load_peak_per_strategy.png",
    "load_peak_vs_population.png",
    "bmc_time_vs_depth.png",
    "model_steps_ratio.png",
    "mikey_vs_reference.png",
    "bmsc_rates.png",
}


def _canned(result: dict[str, Any]) -> Any:
    def run(quick: bool) -> dict[str, Any]:
        assert quick is True  # the command's default mode is quick
        copy: dict[str, Any] = json.loads(json.dumps(result))
        return copy

    return run


@pytest.fixture
def fake_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every existing benchmark returns its hand-written result; no real measurement."""
    monkeypatch.setattr(srtp_bench, "run", _canned(SRTP))
    monkeypatch.setattr(model_bench, "run", _canned(MODEL))
    monkeypatch.setattr(mikey_bench, "run", _canned(MIKEY))
    monkeypatch.setattr(load_bench, "run", _canned(LOAD))
    monkeypatch.setattr(proof_bench, "run", _canned(PROOF))
    monkeypatch.setattr(
        suite, "EXTRAS", {"load": (("peak_against_population", lambda quick: POPULATION),)}
    )
    # The BM-SC benchmark starts servers; a stand-in module keeps these tests offline.
    fake_bmsc = types.ModuleType("mbmssec.bench.bmsc_bench")
    fake_bmsc.run = _canned(BMSC)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mbmssec.bench.bmsc_bench", fake_bmsc)


def _bench(out: Path, *extra: str) -> int:
    return cli.main(["bench", "--in-process", "--out", str(out), *extra])


def _doc(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "results.json").read_text())
    return data


@pytest.mark.usefixtures("fake_runs")
def test_results_files_table_and_plots(tmp_path: Path) -> None:
    out = tmp_path / "res"
    assert _bench(out, "--only", "model", "srtp", "mikey", "load", "bmsc", "proof") == 0
    doc = _doc(out)
    assert doc["mode"] == "quick"
    machine = doc["machine"]
    assert machine["cpu_count"] == os.cpu_count()
    assert machine["python"] == ".".join(map(str, sys.version_info[:3]))
    assert machine["mode"] == "quick" and machine["date"][:2] == "20"
    assert {n: b["status"] for n, b in doc["benchmarks"].items()} == dict.fromkeys(
        ["model", "srtp", "mikey", "load", "bmsc", "proof"], "ok"
    )
    assert doc["benchmarks"]["load"]["result"]["peak_against_population"] == POPULATION
    ratios = {(f["benchmark"], f["figure"]): f["ratio"] for f in doc["figures"]}
    # Hand-worked: 200,000 / 100,000; 30,000 / 120,000; 10,000 / 1,000,000; 10,000 / 5,000;
    # 2,000 / 40,000; 15 / (1,000 / 100); 4e6 / 1e6; 5 / 20; 200 / 1,000;
    # 250 / 125.
    assert ratios[("srtp", "protect, batch API (256/call)")] == pytest.approx(2.0)
    assert ratios[("srtp", "unprotect, one call per packet")] == pytest.approx(0.25)
    assert ratios[("srtp", "SRTP bytes identical to libsrtp's")] is None
    assert ratios[("model", "random-walk steps of the baseline model")] == pytest.approx(0.01)
    assert ratios[("model", "random-walk steps against the aim")] == pytest.approx(2.0)
    assert ratios[("mikey", "TEK delivery build + parse + verify, AES_CM_128, 4 TEKs")] == (
        pytest.approx(0.05)
    )
    assert ratios[("load", "peak request rate, random_interval, N=1,000")] == pytest.approx(1.5)
    assert ratios[("load", "simulation speed, random_interval")] == pytest.approx(4.0)
    assert ratios[("proof", "full baseline check (induction + BMC)")] == pytest.approx(0.25)
    assert ratios[("proof", "BMC, time of depth 2")] == pytest.approx(4.1)  # as reported
    assert ratios[("bmsc", "registrations (challenge + TEK delivery), 32 at a time")] == (
        pytest.approx(0.2)
    )
    assert ratios[("bmsc", "peak request rate at the BM-SC, scheduled_slots, 100 UEs")] == (
        pytest.approx(2.0)
    )

    md = (out / "results.md").read_text()
    assert (
        "| srtp | protect, batch API (256/call) | 200,000 packets/s | libsrtp, one call per "
        "packet via ctypes (same run): 100,000 packets/s | 2 |"
    ) in md
    assert "| load | peak-to-mean, none | 100x | perfectly even load: 1x | 100 |" in md
    assert "| Benchmark | Figure | Value | Reference | Ratio |" in md
    assert {p["file"] for p in doc["plots"]} == ALL_PLOTS
    for name in ALL_PLOTS:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
        assert f"]({name})" in md


@pytest.mark.usefixtures("fake_runs")
def test_a_failing_benchmark_is_reported_and_the_rest_still_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(quick: bool) -> dict[str, Any]:
        raise RuntimeError("socket a|b refused")

    monkeypatch.setattr(srtp_bench, "run", boom)
    monkeypatch.setattr(mikey_bench, "run", lambda quick: [1, 2])
    out = tmp_path / "res"
    assert _bench(out, "--only", "srtp", "mikey", "model") == 1
    doc = _doc(out)
    srtp = doc["benchmarks"]["srtp"]
    assert srtp["status"] == "failed" and srtp["result"] is None
    assert "RuntimeError: socket a|b refused" in srtp["reason"]
    assert doc["benchmarks"]["mikey"]["status"] == "failed"
    assert "returned list, not a dict" in doc["benchmarks"]["mikey"]["reason"]
    assert doc["benchmarks"]["model"]["status"] == "ok"
    assert {p["file"] for p in doc["plots"]} == {"model_steps_ratio.png"}
    md = (out / "results.md").read_text()
    assert "| srtp | failed |" in md and "socket a\\|b refused" in md
    captured = capsys.readouterr()
    assert "[2/3] srtp: failed" in captured.err and "[1/3] model: ok" in captured.err


def test_srtp_disagreeing_with_libsrtp_is_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(srtp_bench, "run", _canned({**SRTP, "outputs_identical": 0.0}))
    out = tmp_path / "res"
    assert _bench(out, "--only", "srtp") == 1
    doc = _doc(out)
    assert doc["benchmarks"]["srtp"]["status"] == "failed"
    assert "different SRTP bytes" in doc["benchmarks"]["srtp"]["reason"]
    assert "| srtp | SRTP bytes identical to libsrtp's | NO |" in (out / "results.md").read_text()


@pytest.mark.usefixtures("fake_runs")
def test_a_missing_benchmark_module_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(suite, "KNOWN", (*suite.KNOWN, ("nosuch", "not written yet")))
    assert "nosuch" in [b.name for b in suite.discover()]
    out = tmp_path / "res"
    assert _bench(out, "--only", "model", "nosuch") == 0
    nosuch = _doc(out)["benchmarks"]["nosuch"]
    assert nosuch["status"] == "skipped"
    assert nosuch["reason"] == "module mbmssec.bench.nosuch_bench not found"


def test_skip_and_broken_import_across_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_fake_bench.py").write_text("def run(quick):\n    return {\n")
    (tmp_path / "dep_fake_bench.py").write_text("import no_such_package_xyz\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    missing = suite.run_benchmark(Benchmark("nosuch", "mbmssec.bench.nosuch_bench"), True)
    assert (missing.status, missing.reason) == (
        "skipped",
        "module mbmssec.bench.nosuch_bench not found",
    )
    broken = suite.run_benchmark(Benchmark("broken", "broken_fake_bench"), True)
    assert broken.status == "failed" and "SyntaxError" in (broken.reason or "")
    dep = suite.run_benchmark(Benchmark("dep", "dep_fake_bench"), True)
    assert dep.status == "skipped" and "no_such_package_xyz" in (dep.reason or "")
    (tmp_path / "fakeproj").mkdir()
    (tmp_path / "fakeproj" / "__init__.py").write_text("")
    (tmp_path / "fakeproj" / "half_bench.py").write_text("import fakeproj.not_written\n")
    half = suite.run_benchmark(Benchmark("half", "fakeproj.half_bench"), True)
    assert half.status == "failed" and "not_written" in (half.reason or "")


def _state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def test_a_hanging_benchmark_is_stopped_with_its_children(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "child.pid"
    (tmp_path / "hang_fake_bench.py").write_text(
        textwrap.dedent(f"""
        import subprocess, time
        def run(quick):
            child = subprocess.Popen(["sleep", "120"])
            open({str(pid_file)!r}, "w").write(str(child.pid))
            time.sleep(120)
            return {{}}
    """)
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    heard: list[str] = []
    start = time.monotonic()
    outcome = suite.run_benchmark(
        Benchmark("hang", "hang_fake_bench"),
        True,
        timeout=2.0,
        progress=heard.append,
        heartbeat=0.5,
    )
    assert time.monotonic() - start < 20
    assert outcome.status == "failed" and outcome.reason == "timed out after 2 s"
    assert any("hang: still running" in m for m in heard)
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _state(child) not in (None, "Z") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _state(child) in (None, "Z")


@pytest.mark.parametrize(
    "argv",
    [
        ["--only", "nosuch"],
        ["--quick", "--full"],
        ["--timeout", "0"],
        ["--only"],
    ],
)
def test_bad_arguments_exit_2(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "res"
    assert cli.main(["bench", "--in-process", "--out", str(out), *argv]) == 2
    assert not (out / "results.json").exists()
    assert capsys.readouterr().err.strip()


def test_out_that_is_a_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    assert cli.main(["bench", "--only", "model", "--out", str(target)]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_list_names_every_benchmark(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "--list"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names[: len(suite.KNOWN)] == [n for n, _ in suite.KNOWN]


@pytest.mark.usefixtures("fake_runs")
def test_stale_plots_of_a_previous_run_are_removed(tmp_path: Path) -> None:
    out = tmp_path / "res"
    out.mkdir()
    (out / "srtp_vs_libsrtp.png").write_bytes(b"old")
    (out / "mine.png").write_bytes(b"keep")
    assert _bench(out, "--only", "model") == 0
    assert not (out / "srtp_vs_libsrtp.png").exists()
    assert (out / "mine.png").read_bytes() == b"keep"
    assert (out / "model_steps_ratio.png").exists()


def test_unreadable_result_is_a_note_not_a_crash() -> None:
    rows, note = suite.figures(Outcome("srtp", "m", "ok", 0.1, {"libsrtp_available": 1.0}))
    assert rows == [] and note is not None and "srtp" in note


def test_bmsc_rejections_fail_the_benchmark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spreading = {
        **BMSC["fetch_spreading"],  # type: ignore[dict-item]
        "multi_key": {
            "ues": 100,
            "period": 1.5,
            "peak_rate": 50.0,
            "mean_rate": 25.0,
            "failures": 3,
        },
    }
    fake_bmsc = types.ModuleType("mbmssec.bench.bmsc_bench")
    fake_bmsc.run = _canned({**BMSC, "fetch_spreading": spreading})  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mbmssec.bench.bmsc_bench", fake_bmsc)
    out = tmp_path / "res"
    assert _bench(out, "--only", "bmsc") == 1
    bmsc = _doc(out)["benchmarks"]["bmsc"]
    assert bmsc["status"] == "failed" and "3 under multi_key" in bmsc["reason"]
    assert (
        "| bmsc | rejected TEK deliveries while re-keying | 3 |" in (out / "results.md").read_text()
    )


def test_unknown_benchmark_gets_generic_rows() -> None:
    result = {
        "registrations_per_second": 500.0,
        "aiohttp_reference_per_second": 2000.0,
        "strategies": {"random_interval": {"peak_ratio": 1.2}},
    }
    rows, note = suite.figures(Outcome("other", "m", "ok", 0.1, result))
    assert note is None
    by_name = {r.figure: r.ratio for r in rows}
    assert by_name["registrations_per_second"] == pytest.approx(0.25)
    assert by_name["strategies / random_interval: peak_ratio"] == pytest.approx(1.2)


def test_jsonable_makes_strict_json() -> None:
    data = {"a": np.int64(3), "b": math.nan, "c": (1.5, np.float32(0.5)), 4: np.arange(2)}
    assert suite.jsonable(data) == {"a": 3, "b": None, "c": [1.5, 0.5], "4": [0, 1]}
    json.dumps(suite.jsonable(data), allow_nan=False)


def test_real_quick_srtp_run_in_its_own_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "res"
    assert cli.main(["bench", "--quick", "--only", "srtp", "--out", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == _doc(out)
    srtp = printed["benchmarks"]["srtp"]
    assert srtp["status"] == "ok" and srtp["result"]["packets"] == 2000
    if libsrtp.available():
        assert srtp["result"]["outputs_identical"] == 1.0
        assert printed["machine"]["libsrtp"].startswith("libsrtp2 2.")
        assert (out / "srtp_vs_libsrtp.png").read_bytes()[:8] == PNG_MAGIC
        row = next(f for f in printed["figures"] if f["figure"].startswith("protect, batch"))
        result = srtp["result"]
        assert row["ratio"] == pytest.approx(
            result["ours_protect_batch_pps"] / result["libsrtp_protect_pps"]
        )

"""Tests of ``mbmssec bench`` through its command line and the files it documents.

Nothing here imports the benchmarks. The suite is driven with ``mbmssec bench`` and read
back from results.json, results.md, the plots, the exit status and ``--list --json``:

* one real quick run of the cheap benchmarks (model, SRTP against libsrtp, MIKEY, load),
  each in its own process, checks the machine, the raw results and that every ratio in
  the table is the value over its reference;
* ``--replay`` of a hand-written results.json checks how each benchmark reads its
  result (the ratios worked out by hand below), its checks and its plots, without
  measuring the slow ones (the live BM-SC, the proofs);
* small benchmark modules written to a temporary directory and added with ``--module``
  stand in for a benchmark that raises, returns no dict, cannot be imported, hangs, or
  has no reading of its own.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from mbmssec import cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MBMSSEC = Path(sys.executable).with_name("mbmssec")

#: The project's benchmarks, in the order they run.
REGISTERED = ["model", "srtp", "mikey", "load", "bmsc", "pg", "proof", "refinement", "tracecheck"]

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
POPULATION = {
    "populations": [100, 1000],
    "window": 100.0,
    "bin_width": 1.0,
    "uniform_limit": [1.0, 10.0],
    "peak_rate": {"none": [100.0, 1000.0], "random_interval": [3.0, 15.0]},
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
    "peak_against_population": POPULATION,
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
BMSC: dict[str, Any] = {
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
MACHINE = {
    "date": "2025-01-02T03:04:05+00:00",
    "mode": "quick",
    "cpu_count": 64,
    "cpus_usable": 8,
    "cpu_model": "Test CPU",
    "python": "3.11.0",
    "libsrtp": "libsrtp2 2.5.0",
    "tshark": "4.0.0",
    "git_commit": "0123456789abcdef",
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


# --- helpers ----------------------------------------------------------------------------


def bench(*argv: str) -> int:
    """``mbmssec bench ARGV`` in this process."""
    return cli.main(["bench", *argv])


def results(out: Path) -> dict[str, Any]:
    """results.json of a run, read strictly (no NaN or infinity)."""

    def reject(constant: str) -> None:
        raise AssertionError(f"results.json holds {constant}")

    data: dict[str, Any] = json.loads((out / "results.json").read_text(), parse_constant=reject)
    return data


def ratios(doc: dict[str, Any]) -> dict[tuple[str, str], float | None]:
    """The table's ratios by (benchmark, figure)."""
    return {(f["benchmark"], f["figure"]): f["ratio"] for f in doc["figures"]}


def benchmark_module(directory: Path, name: str, body: str) -> Path:
    """Write a benchmark module ``<name>.py``; ``body`` defines ``BENCHMARK``."""
    path = directory / f"{name}.py"
    path.write_text("from mbmssec.bench import Benchmark\n\n" + textwrap.dedent(body))
    return path


def returning(directory: Path, name: str, result: str) -> Path:
    """A benchmark module whose measurement returns the Python expression ``result``."""
    return benchmark_module(
        directory,
        name,
        f"""
        def measure(size):
            return {result}

        BENCHMARK = Benchmark({name!r}, "stand-in", measure, quick=1, full=2)
        """,
    )


def recorded(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A results.json of an earlier quick run with these raw results, all ok."""
    return {
        "schema": 1,
        "mode": "quick",
        "seconds": 12.5,
        "machine": MACHINE,
        "benchmarks": {
            name: {
                "module": f"mbmssec.bench.{name}_bench",
                "status": "ok",
                "seconds": 1.0,
                "reason": None,
                "result": result,
            }
            for name, result in runs.items()
        },
        "figures": [],
        "plots": [],
        "notes": [],
    }


def replay(tmp_path: Path, doc: dict[str, Any], *argv: str) -> tuple[int, Path]:
    """``mbmssec bench --replay`` of ``doc``; the exit status and the output directory."""
    source = tmp_path / "recorded.json"
    source.write_text(json.dumps(doc))
    out = tmp_path / "replayed"
    return bench("--replay", str(source), "--out", str(out), *argv), out


# --- listing ----------------------------------------------------------------------------


def test_list_names_every_benchmark_in_run_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench("--list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == REGISTERED
    assert bench("--list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [b["name"] for b in listed] == REGISTERED
    for b in listed:
        assert b["description"] and b["module"] and b["problem"] is None
        assert b["description"] in lines[REGISTERED.index(b["name"])]


def test_list_json_from_the_installed_command_includes_an_added_module(tmp_path: Path) -> None:
    extra = returning(tmp_path, "extra_bench", "{}")
    done = subprocess.run(
        [str(MBMSSEC), "bench", "--list", "--json", "--module", str(extra)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert [b["name"] for b in listed] == [*REGISTERED, "extra_bench"]
    assert listed[-1] == {
        "name": "extra_bench",
        "module": str(extra),
        "description": "stand-in",
        "problem": None,
    }


# --- a real run -------------------------------------------------------------------------


@pytest.mark.slow  # 7-23 s: a real search or benchmark run; the full suite runs it
def test_real_quick_run_of_the_cheap_benchmarks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "res"
    assert bench("--only", "load", "model", "mikey", "srtp", "--out", str(out), "--json") == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    doc = results(out)
    assert printed == doc
    assert doc["mode"] == "quick"  # the default
    machine = doc["machine"]
    assert machine["cpu_count"] == os.cpu_count()
    assert machine["python"] == ".".join(map(str, sys.version_info[:3]))
    assert machine["mode"] == "quick" and machine["date"][:2] == "20"
    runs = doc["benchmarks"]
    assert list(runs) == ["model", "srtp", "mikey", "load"]  # suite order, not --only's
    assert {n: b["status"] for n, b in runs.items()} == dict.fromkeys(runs, "ok")
    assert "[1/4] model: running (quick)" in captured.err and "[4/4] load: ok" in captured.err

    srtp = runs["srtp"]["result"]
    assert srtp["packets"] == 2000
    load = runs["load"]["result"]
    population = load["peak_against_population"]
    assert population["populations"] == [10_000, 100_000, 1_000_000]
    assert population["uniform_limit"] == pytest.approx(
        [n / population["window"] for n in population["populations"]]
    )
    assert set(population["peak_rate"]) == set(load["strategies"])

    md = (out / "results.md").read_text()
    assert {f["benchmark"] for f in doc["figures"]} == set(runs)
    # MIKEY's ratios are the median of per-round ratios (bench/mikey_bench.py), the raw
    # result's; every other figure's is value / reference
    paired = []
    for case in runs["mikey"]["result"]["cases"]:
        rounds = case["round_rates"]
        for measured, reference in (
            ("delivery", "reference"),
            ("verification", "verification_reference"),
        ):
            within = [m / r for m, r in zip(rounds[measured], rounds[reference], strict=True)]
            assert len(within) == case["rounds"] > 10
            paired.append(statistics.median(within))
    assert all(0 < r < 10 for r in paired)
    mikey = [f for f in doc["figures"] if f["benchmark"] == "mikey"]
    assert [f["ratio"] for f in mikey] == pytest.approx(paired)
    for f in doc["figures"]:
        assert f"| {f['benchmark']} | {f['figure']} |" in md
        if f["reference_value"] and f["benchmark"] != "mikey":
            assert f["ratio"] == pytest.approx(f["value"] / f["reference_value"])
    speed = next(f for f in doc["figures"] if f["figure"] == "simulation speed, random_interval")
    assert speed["value"] == pytest.approx(load["strategies"]["random_interval"]["ues_per_second"])

    plots = {p["file"] for p in doc["plots"]}
    expected = {
        "model_steps_ratio.png",
        "mikey_vs_reference.png",
        "load_peak_per_strategy.png",
        "load_peak_vs_population.png",
    }
    if srtp["libsrtp_available"]:
        expected.add("srtp_vs_libsrtp.png")
        assert srtp["outputs_identical"] == 1.0
        assert machine["libsrtp"].startswith("libsrtp2 2.")
        row = next(f for f in doc["figures"] if f["figure"].startswith("protect, batch"))
        assert row["ratio"] == pytest.approx(
            srtp["ours_protect_batch_pps"] / srtp["libsrtp_protect_pps"]
        )
    assert plots == expected
    for name in expected:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
        assert f"]({name})" in md


# --- replaying recorded results ---------------------------------------------------------


def test_replay_reads_every_benchmark_result_by_hand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = recorded(
        {"model": MODEL, "srtp": SRTP, "mikey": MIKEY, "load": LOAD, "bmsc": BMSC, "proof": PROOF}
    )
    code, out = replay(tmp_path, doc)
    assert code == 0
    printed = capsys.readouterr().out
    got = results(out)
    assert got["mode"] == "quick" and got["machine"] == MACHINE and got["seconds"] == 12.5
    assert {n: b["status"] for n, b in got["benchmarks"].items()} == dict.fromkeys(
        ["model", "srtp", "mikey", "load", "bmsc", "proof"], "ok"
    )
    assert got["benchmarks"]["load"]["result"] == LOAD
    r = ratios(got)
    # Hand-worked: 200,000 / 100,000; 30,000 / 120,000; 10,000 / 1,000,000; 10,000 / 5,000;
    # 2,000 / 40,000; 15 / (1,000 / 100); 4e6 / 1e6; 5 / 20; 200 / 1,000; 250 / 125.
    assert r[("srtp", "protect, batch API (256/call)")] == pytest.approx(2.0)
    assert r[("srtp", "unprotect, one call per packet")] == pytest.approx(0.25)
    assert r[("srtp", "SRTP bytes identical to libsrtp's")] is None
    assert r[("model", "random-walk steps of the baseline model")] == pytest.approx(0.01)
    assert r[("model", "random-walk steps against the aim")] == pytest.approx(2.0)
    assert r[("mikey", "TEK delivery build + parse + verify, AES_CM_128, 4 TEKs")] == (
        pytest.approx(0.05)
    )
    assert r[("load", "peak request rate, random_interval, N=1,000")] == pytest.approx(1.5)
    assert r[("load", "simulation speed, random_interval")] == pytest.approx(4.0)
    assert r[("proof", "full baseline check (induction + BMC)")] == pytest.approx(0.25)
    assert r[("proof", "BMC, time of depth 2")] == pytest.approx(4.1)  # as reported
    assert r[("bmsc", "registrations (challenge + TEK delivery), 32 at a time")] == (
        pytest.approx(0.2)
    )
    assert r[("bmsc", "peak request rate at the BM-SC, scheduled_slots, 100 UEs")] == (
        pytest.approx(2.0)
    )

    md = (out / "results.md").read_text()
    assert "Mode **quick**, 2025-01-02T03:04:05+00:00, 12.5 s in all." in md
    assert (
        "Machine: 64 CPUs (8 usable), Test CPU, Python 3.11.0, libsrtp2 2.5.0, tshark 4.0.0, "
        "commit 0123456789ab."
    ) in md
    assert "| srtp | ok | 1.0 s |  |" in md
    row = (
        "| srtp | protect, batch API (256/call) | 200,000 packets/s | libsrtp, one call per "
        "packet via ctypes (same run): 100,000 packets/s | 2 |"
    )
    assert row in md and row in printed
    assert "| load | peak-to-mean, none | 100x | perfectly even load: 1x | 100 |" in md
    assert "| Benchmark | Figure | Value | Reference | Ratio |" in md
    assert {p["file"] for p in got["plots"]} == ALL_PLOTS
    for name in ALL_PLOTS:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
        assert f"]({name})" in md


def test_replay_applies_each_benchmark_check(tmp_path: Path) -> None:
    spreading = {
        **BMSC["fetch_spreading"],
        "multi_key": {
            "ues": 100,
            "period": 1.5,
            "peak_rate": 50.0,
            "mean_rate": 25.0,
            "failures": 3,
        },
    }
    doc = recorded(
        {
            "srtp": {**SRTP, "outputs_identical": 0.0},
            "bmsc": {**BMSC, "fetch_spreading": spreading},
            "model": MODEL,
        }
    )
    doc["benchmarks"]["mikey"] = {
        "module": "mbmssec.bench.mikey_bench",
        "status": "failed",
        "seconds": 0.5,
        "reason": "measuring raised OSError",
        "result": None,
    }
    code, out = replay(tmp_path, doc)
    assert code == 1
    runs = results(out)["benchmarks"]
    assert runs["srtp"]["status"] == "failed"
    assert "different SRTP bytes" in runs["srtp"]["reason"]
    assert runs["bmsc"]["status"] == "failed" and "3 under multi_key" in runs["bmsc"]["reason"]
    assert runs["mikey"] == doc["benchmarks"]["mikey"]  # recorded without a result: as it was
    assert runs["model"]["status"] == "ok"
    md = (out / "results.md").read_text()
    assert "| srtp | SRTP bytes identical to libsrtp's | NO |" in md
    assert "| bmsc | rejected TEK deliveries while re-keying | 3 |" in md


def test_an_unreadable_result_is_a_note_not_a_crash(tmp_path: Path) -> None:
    unreadable = {"libsrtp_available": 1.0, "outputs_identical": 1.0}
    code, out = replay(tmp_path, recorded({"srtp": unreadable, "model": MODEL}))
    assert code == 0
    doc = results(out)
    assert [f["benchmark"] for f in doc["figures"]] == ["model", "model"]
    assert any(n.startswith("result of srtp not readable: KeyError") for n in doc["notes"])
    assert any(n.startswith("plot srtp_vs_libsrtp.png not drawn") for n in doc["notes"])
    assert "Notes:" in (out / "results.md").read_text()


def test_replay_of_some_recorded_benchmarks_and_stale_plots(tmp_path: Path) -> None:
    out = tmp_path / "replayed"
    out.mkdir()
    (out / "srtp_vs_libsrtp.png").write_bytes(b"old")
    (out / "mine.png").write_bytes(b"keep")
    code, _ = replay(tmp_path, recorded({"model": MODEL, "srtp": SRTP}), "--only", "model")
    assert code == 0
    assert list(results(out)["benchmarks"]) == ["model"]
    assert not (out / "srtp_vs_libsrtp.png").exists()
    assert (out / "mine.png").read_bytes() == b"keep"
    assert (out / "model_steps_ratio.png").read_bytes()[:8] == PNG_MAGIC


# --- added modules: failures, generic figures, sizes ------------------------------------


def test_a_failing_benchmark_is_reported_and_the_rest_still_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raising = benchmark_module(
        tmp_path,
        "raising",
        """
        def measure(size):
            raise RuntimeError("socket a|b refused")

        BENCHMARK = Benchmark("raising", "raises", measure, quick=1, full=2)
        """,
    )
    listing = returning(tmp_path, "listing", "[1, 2]")
    generic = returning(
        tmp_path,
        "generic",
        """{
            "registrations_per_second": 500.0,
            "aiohttp_reference_per_second": 2000.0,
            "strategies": {"random_interval": {"peak_ratio": 1.2}},
        }""",
    )
    out = tmp_path / "res"
    modules = ["--module", str(raising), "--module", str(listing), "--module", str(generic)]
    assert bench(*modules, "--only", "raising", "listing", "generic", "--out", str(out)) == 1
    doc = results(out)
    runs = doc["benchmarks"]
    assert runs["raising"]["status"] == "failed" and runs["raising"]["result"] is None
    assert "RuntimeError: socket a|b refused" in runs["raising"]["reason"]
    assert runs["listing"]["status"] == "failed"
    assert "returned list, not a dict" in runs["listing"]["reason"]
    assert runs["generic"]["status"] == "ok"
    r = ratios(doc)
    assert r[("generic", "registrations_per_second")] == pytest.approx(0.25)
    assert r[("generic", "strategies / random_interval: peak_ratio")] == pytest.approx(1.2)
    assert doc["plots"] == []
    md = (out / "results.md").read_text()
    assert "| raising | failed |" in md and "socket a\\|b refused" in md
    captured = capsys.readouterr()
    assert "[1/3] raising: failed" in captured.err and "[3/3] generic: ok" in captured.err
    assert "raising: failed: measuring raised RuntimeError" in captured.out


def test_modules_that_cannot_be_loaded_are_skipped_or_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "broken_bench.py").write_text("def measure(size):\n    return {\n")
    (tmp_path / "needs_dep_bench.py").write_text("import no_such_package_xyz\n")
    (tmp_path / "half_bench.py").write_text("import mbmssec.not_written_xyz\n")
    (tmp_path / "nothing_bench.py").write_text("X = 1\n")
    (tmp_path / "fakeproj").mkdir()
    (tmp_path / "fakeproj" / "__init__.py").write_text("")
    (tmp_path / "fakeproj" / "inner_bench.py").write_text("import fakeproj.not_written\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    modules = [
        str(tmp_path / "broken_bench.py"),
        str(tmp_path / "needs_dep_bench.py"),
        str(tmp_path / "half_bench.py"),
        str(tmp_path / "nothing_bench.py"),
        "fakeproj.inner_bench",
        "nosuch_xyz_bench",
    ]
    names = ["broken", "needs_dep", "half", "nothing", "inner", "nosuch_xyz"]
    argv = [a for m in modules for a in ("--module", m)]
    out = tmp_path / "res"
    assert bench(*argv, "--only", *names, "--out", str(out)) == 1
    runs = results(out)["benchmarks"]
    assert list(runs) == names
    status = {n: (b["status"], b["reason"]) for n, b in runs.items()}
    assert status["broken"][0] == "failed" and "SyntaxError" in status["broken"][1]
    assert status["needs_dep"][0] == "skipped" and "no_such_package_xyz" in status["needs_dep"][1]
    assert status["half"][0] == "failed" and "not_written_xyz" in status["half"][1]
    assert status["nothing"][0] == "failed" and "defines no BENCHMARK" in status["nothing"][1]
    assert status["inner"][0] == "failed" and "not_written" in status["inner"][1]
    assert status["nosuch_xyz"] == ("skipped", "module nosuch_xyz_bench not found")
    capsys.readouterr()

    # Skipped ones alone do not fail the run; the list says why they will not run.
    assert bench(*argv, "--only", "needs_dep", "nosuch_xyz", "--out", str(out)) == 0
    capsys.readouterr()
    assert bench(*argv, "--list") == 0
    listed = capsys.readouterr().out.splitlines()
    line = next(line for line in listed if line.startswith("nosuch_xyz "))
    assert "(skipped: module nosuch_xyz_bench not found)" in line


def _state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def test_a_hanging_benchmark_is_stopped_with_its_children(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pid_file = tmp_path / "child.pid"
    hang = benchmark_module(
        tmp_path,
        "hang",
        f"""
        import subprocess, time

        def measure(size):
            child = subprocess.Popen(["sleep", "120"])
            open({str(pid_file)!r}, "w").write(str(child.pid))
            time.sleep(120)
            return {{}}

        BENCHMARK = Benchmark("hang", "hangs", measure, quick=1, full=2)
        """,
    )
    out = tmp_path / "res"
    start = time.monotonic()
    # 5 s leaves the worker time to import and start its child on a busy machine.
    assert bench("--module", str(hang), "--only", "hang", "--timeout", "5", "--out", str(out)) == 1
    assert time.monotonic() - start < 40
    outcome = results(out)["benchmarks"]["hang"]
    assert outcome["status"] == "failed" and outcome["reason"] == "timed out after 5 s"
    assert "hang: still running" in capsys.readouterr().err
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _state(child) not in (None, "Z") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _state(child) in (None, "Z")


def test_sizes_and_strict_json_in_process(tmp_path: Path) -> None:
    sizes = benchmark_module(
        tmp_path,
        "sizes",
        """
        import math
        import numpy as np

        def measure(size):
            return {
                "size": size,
                "a": np.int64(3),
                "b": math.nan,
                "c": (1.5, np.float32(0.5)),
                4: np.arange(2),
            }

        BENCHMARK = Benchmark("sizes", "echoes its size", measure, quick=1, full=2)
        """,
    )
    out = tmp_path / "res"
    base = ["--module", str(sizes), "--only", "sizes", "--in-process", "--out", str(out)]
    assert bench(*base) == 0
    doc = results(out)
    assert doc["mode"] == "quick"
    assert doc["benchmarks"]["sizes"]["result"] == {
        "size": 1,
        "a": 3,
        "b": None,
        "c": [1.5, 0.5],
        "4": [0, 1],
    }
    assert bench(*base, "--full") == 0
    doc = results(out)
    assert doc["mode"] == "full" and doc["benchmarks"]["sizes"]["result"]["size"] == 2


# --- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["--only", "nosuch"],
        ["--quick", "--full"],
        ["--timeout", "0"],
        ["--only"],
        ["--replay", "recorded.json", "--full"],
        ["--replay", "missing.json"],
        ["--replay", "recorded.json", "--only", "srtp"],
        ["--replay", "not_results.json"],
    ],
)
def test_bad_arguments_exit_2(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "recorded.json").write_text(json.dumps(recorded({"model": MODEL})))
    (tmp_path / "not_results.json").write_text("[1, 2]")
    argv = [str(tmp_path / a) if a.endswith(".json") else a for a in argv]
    out = tmp_path / "res"
    assert bench("--in-process", "--out", str(out), *argv) == 2
    assert not (out / "results.json").exists()
    assert capsys.readouterr().err.strip()


def test_two_benchmarks_of_one_name_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = returning(tmp_path / "a", "twin", "{}")
    two = returning(tmp_path / "b", "twin", "{}")
    assert bench("--module", str(one), "--module", str(two), "--list") == 2
    assert "two benchmarks are named 'twin'" in capsys.readouterr().err
    clash = returning(tmp_path, "srtp", "{}")
    assert bench("--module", str(clash), "--list") == 2


def test_out_that_is_a_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    assert bench("--only", "model", "--out", str(target)) == 2
    assert "not a directory" in capsys.readouterr().err

"""Tests of the re-keying load simulation (mbmssec.simulation.load) and ``mbmssec load``.

The vectorised simulation is checked against oracles that do not share its code: a
plain per-UE Python loop that recomputes every figure from the run's raw random draws,
the exact distribution of the maximum of binomial bin counts for random spreading, the
published SplitMix64 outputs for the instance hash, and hand-derived values for the
scheduled-slot and thundering-herd cases.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mbmssec import cli
from mbmssec.commands import load as load_command
from mbmssec.impl.service.spreading import FetchSpreading
from mbmssec.simulation.load import (
    ALL_STRATEGIES,
    STABLE_STEP,
    STABLE_STEPS,
    Draws,
    LoadError,
    LoadParams,
    Storm,
    build_plan,
    capacity_from_json,
    evaluate,
    instance_of,
    minimal_window,
    parse_storm,
    simulate,
)

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def mix64(z: int) -> int:
    """SplitMix64's output function (Steele, Lea, Flood 2014), in plain Python ints."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def oracle_instance(ue: int, instances: int) -> int:
    return 0 if instances == 1 else mix64((ue + GOLDEN) & M64) % instances


def test_mix64_matches_published_splitmix64_outputs() -> None:
    # First outputs of splitmix64.c seeded with 0 (https://prng.di.unimi.it/splitmix64.c):
    # output n is mix64((n + 1) * golden gamma).
    published = [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F, 0xF88BB8A8724C81EC]
    assert [mix64(((n + 1) * GOLDEN) & M64) for n in range(4)] == published


@pytest.mark.parametrize("instances", [1, 2, 3, 7, 4096])
def test_instance_hash_matches_python_splitmix(instances: int) -> None:
    ues = np.array([0, 1, 2, 12345, 2**31 - 1, 2**40 + 17, 99_999_999], dtype=np.int64)
    expected = [oracle_instance(int(u), instances) for u in ues]
    assert instance_of(ues, instances).tolist() == expected


# ---------------------------------------------------------------------------------------
# The per-UE oracle: every figure recomputed in a plain loop from the raw draws.


def percentile_linear(values: list[float], q: float) -> float:
    xs = sorted(values)
    h = (len(xs) - 1) * q / 100
    lo = math.floor(h)
    if lo + 1 >= len(xs):
        return xs[-1]
    return xs[lo] + (h - lo) * (xs[lo + 1] - xs[lo])


def per_ue_oracle(
    params: LoadParams, strategy: FetchSpreading, draws: Draws | None
) -> dict[str, object]:
    assert draws is not None
    n, k_inst, p, width = params.ues, params.instances, params.loss, params.bin_width
    start = [float(x) for x in draws.start]
    out = [bool(x) for x in draws.out_of_coverage]
    return_u = [float(x) for x in draws.return_u]
    losses = draws.loss
    inst = [oracle_instance(i, k_inst) for i in range(n)]
    sizes = Counter(inst)
    rank: list[int] = []
    seen: Counter[int] = Counter()
    for i in range(n):
        rank.append(seen[inst[i]])
        seen[inst[i]] += 1
    k = params.keys_per_request
    if strategy is FetchSpreading.MULTI_KEY:
        fetching = [start[i] * k < 1.0 for i in range(n)]
    else:
        fetching = [True] * n

    # Attempt time a*W/d + c: d is 1 except for scheduled slots (rank*W/n).
    attempts: list[tuple[int, int, float, float, float, bool]] = []  # ue, inst, a, c, d, fetch
    key: dict[int, tuple[float, float, float]] = {}
    rounds_used: dict[str, int] = {}

    def chain(
        group: str,
        members: list[int],
        first: Callable[[int], tuple[float, float, float]],
        fetch: bool,
        record: bool,
    ) -> None:
        table = losses[group]
        used = 0
        for j, ue in enumerate(members):
            a, c, d = first(ue)
            where = oracle_instance(ue, k_inst)
            for r in range(params.max_retries + 1):
                attempts.append((ue, where, a, c, d, fetch))
                used = max(used, r + 1)
                if p == 0:
                    lost, u = False, 0.0
                else:
                    u = float(table[r][j])
                    lost = u < p
                if not lost:
                    if record:
                        key[ue] = (a, c, d)
                    break
                if r == params.max_retries:
                    break
                c = c + params.backoff * 2.0**r * (0.5 + u / p)
        rounds_used[group] = used if p > 0 else 0

    def window_first(ue: int) -> tuple[float, float, float]:
        if strategy is FetchSpreading.NONE:
            return 0.0, start[ue] * params.clock_jitter, 1.0
        if strategy is FetchSpreading.SCHEDULED_SLOTS:
            return float(rank[ue]), 0.0, float(sizes[inst[ue]])
        if strategy is FetchSpreading.MULTI_KEY:
            return start[ue] * k, 0.0, 1.0
        return start[ue], 0.0, 1.0

    chain("window", [i for i in range(n) if fetching[i] and not out[i]], window_first, True, True)
    chain(
        "return",
        [i for i in range(n) if fetching[i] and out[i]],
        lambda ue: (1.0, return_u[ue] * params.return_span, 1.0),
        True,
        True,
    )
    storm = params.storm
    leave_at = [math.inf] * n
    if storm is not None and storm.size:
        subjects = [int(x) for x in draws.storm_subjects]
        storm_u = [float(x) for x in draws.storm_u]
        when = {s: storm.at + storm_u[j] * storm.spread for j, s in enumerate(subjects)}
        if storm.kind == "join":
            assert subjects == list(range(n, n + storm.size))
        else:
            assert sorted(set(subjects)) == subjects and all(0 <= s < n for s in subjects)
            for s in subjects:
                leave_at[s] = when[s]
        chain("storm", subjects, lambda ue: (0.0, when[ue], 1.0), False, False)
    for group, used in rounds_used.items():
        assert len(losses[group]) == used, group

    w = params.window
    nbins = math.ceil((w + params.period) / width)
    wbins = math.ceil(w / width)
    counts: dict[tuple[int, int], int] = defaultdict(int)
    in_window = 0
    for ue, where, a, c, d, fetch in attempts:
        t = a * w / d + c
        col = min(math.floor(t / width), nbins)
        if fetch and ue < n and t >= leave_at[ue]:
            col = nbins
        if col < nbins:
            counts[(where, col)] += 1
            in_window += t < w
    per_instance_peak = [
        max(counts.get((b, j), 0) for j in range(nbins)) / width for b in range(k_inst)
    ]
    p99 = (
        max(
            percentile_linear([counts.get((b, j), 0) for j in range(wbins)], 99)
            for b in range(k_inst)
        )
        / width
    )
    mean_rate = in_window / (k_inst * w)
    peak = max(per_instance_peak)

    members = holding = unserved = 0
    delays: list[float] = []
    violators: list[int] = []
    for ue in range(n):
        if leave_at[ue] < w:
            continue  # left before activation: not a member the property speaks of
        members += 1
        if not fetching[ue]:
            holding += 1  # a multi-key stock already covers the next period
            continue
        got = key.get(ue)
        key_t = None if got is None else got[0] * w / got[2] + got[1]
        served = key_t is not None and math.floor(key_t / width) < nbins and key_t < leave_at[ue]
        if served and key_t is not None and key_t <= w:
            holding += 1
            continue
        if served and key_t is not None:
            delays.append(key_t - w)
        else:
            unserved += 1
        if not out[ue]:
            violators.append(ue)
    return {
        "fetching_ues": sum(fetching),
        "requests": sum(counts.values()),
        "peak_rate": peak,
        "p99_rate": p99,
        "mean_rate": mean_rate,
        "peak_to_mean": peak / mean_rate if mean_rate else None,
        "per_instance_peak": per_instance_peak,
        "members": members,
        "holding_share": holding / members,
        "late": members - holding,
        "stale_max": max(delays) if delays else None,
        "stale_p99": percentile_linear(delays, 99) if delays else None,
        "unserved": unserved,
        "violators": len(violators),
        "violator_examples": violators[:5],
    }


SCENARIOS = {
    # Loss with few retries (late and unserved UEs), coverage gaps, a join storm, 3 instances.
    "loss-coverage-join": LoadParams(
        ues=3000,
        window=50.0,
        period=200.0,
        bin_width=1.0,
        instances=3,
        loss=0.3,
        max_retries=3,
        backoff=2.0,
        out_of_coverage=0.1,
        return_within=100.0,
        storm=Storm("join", 200, 30.0, 5.0),
        seed=11,
    ),
    # A leave storm straddling activation, half-second bins, 2 instances.
    "leave-storm": LoadParams(
        ues=2000,
        window=40.0,
        period=100.0,
        bin_width=0.5,
        instances=2,
        loss=0.2,
        out_of_coverage=0.05,
        storm=Storm("leave", 300, 20.0, 30.0),
        seed=5,
    ),
    # No loss, a wide clock jitter and a window that is not a whole number of bins.
    "lossless": LoadParams(
        ues=2500,
        window=7.3,
        period=10.0,
        bin_width=1.0,
        clock_jitter=2.5,
        keys_per_request=3,
        seed=2,
    ),
}


@pytest.mark.parametrize("strategy", ALL_STRATEGIES, ids=str)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_vectorised_figures_match_per_ue_loop(scenario: str, strategy: FetchSpreading) -> None:
    params = SCENARIOS[scenario]
    plan = build_plan(params, strategy, keep_draws=True)
    got = evaluate(plan).to_json()
    want = per_ue_oracle(params, strategy, plan.draws)
    for name, value in want.items():
        if isinstance(value, float):
            assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
        else:
            assert got[name] == value, name


def test_oracle_scenarios_exercise_late_unserved_and_violating_ues() -> None:
    # Guards the comparison above against passing on empty figures.
    params = SCENARIOS["loss-coverage-join"]
    result = evaluate(build_plan(params, FetchSpreading.RANDOM_INTERVAL))
    assert result.violators > 0 and result.unserved > 0
    assert result.stale_max is not None and result.late > result.violators
    leave = evaluate(build_plan(SCENARIOS["leave-storm"], FetchSpreading.RANDOM_INTERVAL))
    assert leave.members < SCENARIOS["leave-storm"].ues


# ---------------------------------------------------------------------------------------
# Random spreading against the binomial distribution of requests per bin.


def expected_max_binomial(trials: int, q: float, bins: int) -> float:
    """E[max of `bins` independent Binomial(trials, q)], from the exact binomial CDF.

    P(max <= m) = F(m)**bins; F is summed from the exact pmf computed with math.lgamma
    (no normal approximation) over mean +- 15 sd, outside which the mass is negligible.
    E[max] = sum over m >= 0 of (1 - F(m)**bins); below the summed range each term is 1.
    """
    mean = trials * q
    sd = math.sqrt(trials * q * (1 - q))
    lo = max(0, math.floor(mean - 15 * sd))
    hi = min(trials, math.ceil(mean + 15 * sd))
    log_norm = math.lgamma(trials + 1)
    cdf = 0.0
    expected = float(lo)
    for m in range(lo, hi + 1):
        log_pmf = (
            log_norm
            - math.lgamma(m + 1)
            - math.lgamma(trials - m + 1)
            + m * math.log(q)
            + (trials - m) * math.log1p(-q)
        )
        cdf += math.exp(log_pmf)
        expected += 1.0 - min(cdf, 1.0) ** bins
    return expected


def test_random_interval_at_a_million_ues_matches_binomial_peak_and_mean() -> None:
    n, window, width = 1_000_000, 1000.0, 1.0
    params = LoadParams(ues=n, window=window, period=500.0, bin_width=width, seed=3)
    result = simulate(params, [FetchSpreading.RANDOM_INTERVAL]).results[0]
    assert result.mean_rate == pytest.approx(n / window, rel=0.01)
    bins = round(window / width)
    expected_peak = expected_max_binomial(n, width / window, bins) / width
    assert 1000 < expected_peak < 1200  # about mean + 3.3 sd, as extreme-value theory says
    assert result.peak_rate == pytest.approx(expected_peak, rel=0.05)


# ---------------------------------------------------------------------------------------
# Scheduled slots, the thundering herd, several keys per request.


def test_scheduled_slots_single_instance_is_exactly_even() -> None:
    # UE i at i*W/N: with N*b/W = 1000 every bin holds exactly 1000 requests.
    params = LoadParams(ues=1_000_000, window=1000.0, period=100.0, bin_width=1.0)
    result = evaluate(build_plan(params, FetchSpreading.SCHEDULED_SLOTS))
    assert result.peak_rate == 1000.0
    assert result.p99_rate == 1000.0
    assert result.peak_to_mean is not None and result.peak_to_mean <= 1.05


def test_scheduled_slots_on_four_instances_stay_even() -> None:
    params = LoadParams(ues=1_000_000, window=1000.0, period=100.0, instances=4, seed=4)
    result = evaluate(build_plan(params, FetchSpreading.SCHEDULED_SLOTS))
    assert result.peak_to_mean is not None and result.peak_to_mean <= 1.05
    assert result.holding_share == 1.0 and result.violators == 0


def test_no_spreading_is_a_thundering_herd_in_one_bin() -> None:
    n = 50_000
    params = LoadParams(ues=n, window=600.0, period=600.0, bin_width=1.0, clock_jitter=0.5)
    plan = build_plan(params, FetchSpreading.NONE)
    result = evaluate(plan)
    assert result.peak_rate == n  # every request in [0, 0.5) s, i.e. bin 0
    assert result.p99_rate == 0.0
    assert result.peak_to_mean == pytest.approx(600.0)
    assert minimal_window(plan, n - 1.0) == (None, "unreachable")
    assert minimal_window(plan, float(n)) == (0.0, "independent_of_window")


def test_multi_key_fetches_one_in_k_and_shields_out_of_coverage_ues() -> None:
    n, k, f = 200_000, 4, 0.1
    params = LoadParams(ues=n, keys_per_request=k, out_of_coverage=f, seed=8)
    multi = evaluate(build_plan(params, FetchSpreading.MULTI_KEY))
    rand = evaluate(build_plan(params, FetchSpreading.RANDOM_INTERVAL))
    sd = math.sqrt(n * (1 / k) * (1 - 1 / k))
    assert abs(multi.fetching_ues - n / k) < 5 * sd
    assert multi.mean_rate == pytest.approx(rand.mean_rate / k, rel=0.05)
    # Out-of-coverage UEs miss the key only if it is their turn to fetch.
    assert rand.holding_share == pytest.approx(1 - f, abs=0.005)
    assert multi.holding_share == pytest.approx(1 - f / k, abs=0.005)


def test_loss_with_ample_retries_costs_one_over_one_minus_p_requests() -> None:
    n, p = 100_000, 0.2
    params = LoadParams(ues=n, loss=p, max_retries=30, window=600.0, period=3600.0)
    result = evaluate(build_plan(params, FetchSpreading.RANDOM_INTERVAL))
    expected = n / (1 - p)
    sd = math.sqrt(n * p) / (1 - p)  # geometric attempts: variance p/(1-p)^2 per UE
    assert abs(result.requests - expected) < 6 * sd
    assert result.unserved == 0


# ---------------------------------------------------------------------------------------
# Minimal fetch window for a capacity.


def test_scheduled_minimal_window_closed_form() -> None:
    plan = build_plan(LoadParams(ues=100_000, bin_width=1.0), FetchSpreading.SCHEDULED_SLOTS)
    found, method = minimal_window(plan, 250.0)
    assert method == "closed_form"
    assert found == pytest.approx(400.0)  # 10^5 requests at 250 per 1 s bin
    assert evaluate(plan, 400.0).peak_rate <= 250.0
    assert evaluate(plan, 399.0).peak_rate > 250.0
    # Half-second bins at 333 req/s allow floor(166.5) = 166 requests per bin.
    half = build_plan(LoadParams(ues=100_000, bin_width=0.5), FetchSpreading.SCHEDULED_SLOTS)
    found, _ = minimal_window(half, 333.0)
    assert found is not None and found == pytest.approx(100_000 * 0.5 / 166, rel=1e-12)
    assert evaluate(half, found).peak_rate * 0.5 <= 166
    assert evaluate(half, found * 0.995).peak_rate * 0.5 > 166


def test_random_minimal_window_by_bisection_brackets_the_capacity() -> None:
    n, capacity = 100_000, 150.0
    plan = build_plan(LoadParams(ues=n, seed=9), FetchSpreading.RANDOM_INTERVAL)
    found, method = minimal_window(plan, capacity)
    assert method == "bisection" and found is not None
    assert found > n / capacity  # the peak is at least the mean N/W
    assert evaluate(plan, found).peak_rate <= capacity
    # The promised margin: the peak also stays within capacity over the next 10 %.
    for i in range(1, STABLE_STEPS + 1):
        assert evaluate(plan, found * (1 + STABLE_STEP * i)).peak_rate <= capacity
    assert evaluate(plan, found * 0.95).peak_rate > capacity


def test_a_storm_above_capacity_makes_every_window_fail() -> None:
    params = LoadParams(ues=10_000, storm=Storm("join", 5000, 10.0), seed=1)
    plan = build_plan(params, FetchSpreading.RANDOM_INTERVAL)
    assert minimal_window(plan, 1000.0) == (None, "unreachable")


# ---------------------------------------------------------------------------------------
# Inputs and reproducibility.


def test_same_seed_same_figures_other_seed_other_figures() -> None:
    params = LoadParams(ues=50_000, loss=0.05, out_of_coverage=0.02, seed=7)
    first = simulate(params, capacity=200.0).to_json()
    again = simulate(params, capacity=200.0).to_json()
    assert first == again
    other = simulate(LoadParams(ues=50_000, loss=0.05, out_of_coverage=0.02, seed=8))
    assert other.to_json()["strategies"] != first["strategies"]


@pytest.mark.parametrize(
    ("text", "storm"),
    [
        ("5000@120", Storm("join", 5000, 120.0)),
        ("leave:1e3@1.5e2+30", Storm("leave", 1000, 150.0, 30.0)),
        ("join:10_000@0", Storm("join", 10_000, 0.0)),
    ],
)
def test_parse_storm(text: str, storm: Storm) -> None:
    assert parse_storm(text) == storm


@pytest.mark.parametrize("text", ["", "5000", "@5", "x@5", "5@-1", "5@1+", "fall:5@1", "5.5@1"])
def test_parse_storm_rejects(text: str) -> None:
    with pytest.raises(LoadError):
        parse_storm(text)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ues": 0}, "number of UEs"),
        ({"window": 0.0}, "fetch window"),
        ({"window": math.nan}, "fetch window"),
        ({"loss": 1.0}, "loss probability"),
        ({"out_of_coverage": 1.5}, "out-of-coverage"),
        ({"instances": 0}, "BM-SC instances"),
        ({"bin_width": 1e-6}, "too fine"),
        ({"storm": Storm("leave", 11, 1.0), "ues": 10}, "leave storm"),
    ],
)
def test_params_reject_bad_values(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(LoadError, match=message):
        LoadParams(**changes)


def test_capacity_from_json_finds_nested_key_and_rejects_bad_values() -> None:
    assert capacity_from_json({"registrations_per_second": 1200}) == 1200.0
    assert capacity_from_json({"bmsc": [{"x": 1}, {"registrations_per_second": 3.5}]}) == 3.5
    for bad in (
        {},
        {"registrations_per_second": "fast"},
        {"registrations_per_second": -1},
        {"registrations_per_second": True},
    ):
        with pytest.raises(LoadError):
            capacity_from_json(bad)


# ---------------------------------------------------------------------------------------
# The command line.

SMALL = ["load", "--ues", "20000", "--window", "100", "--period", "200", "--quiet"]


def test_cli_prints_a_row_per_strategy(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([*SMALL, "--capacity", "400", "--loss", "0.05"]) == 0
    out = capsys.readouterr().out
    rows = [line.split()[0] for line in out.splitlines() if line.split()]
    for strategy in ALL_STRATEGIES:
        assert str(strategy) in rows
    assert "peak/s" in out and "min W" in out


def test_cli_json_matches_library(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([*SMALL, "--json", "--seed", "4", "--instances", "2"]) == 0
    data = json.loads(capsys.readouterr().out)
    params = LoadParams(ues=20000, window=100.0, period=200.0, instances=2, seed=4)
    assert data == json.loads(json.dumps(simulate(params).to_json()))


def test_cli_capacity_from_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bmsc.json"
    path.write_text(json.dumps({"bmsc": {"registrations_per_second": 500.0}}))
    assert cli.main([*SMALL, "--json", "--capacity-from", str(path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["capacity"] == 500.0
    slots = data["strategies"]["scheduled_slots"]
    assert slots["min_window_method"] == "closed_form"
    assert slots["min_window"] == pytest.approx(20000 / 500)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--ues", "-5"], "number of UEs"),
        (["--ues", "many"], "--ues"),
        (["--loss", "1.5"], "loss probability"),
        (["--window", "nan"], "--window"),
        (["--storm", "abc"], "storm must look like"),
        (["--capacity", "0"], "capacity"),
        (["--capacity", "5", "--capacity-from", "x.json"], "not allowed with"),
        (["--capacity-from", "/nonexistent/bmsc.json"], "cannot read capacity file"),
        (["--spreading", "sometimes"], "invalid choice"),
    ],
)
def test_cli_bad_arguments_exit_2(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([*SMALL, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_cli_capacity_file_without_key_or_not_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "a.json"
    missing.write_text('{"throughput": 5}')
    assert cli.main([*SMALL, "--capacity-from", str(missing)]) == 2
    assert "no 'registrations_per_second'" in capsys.readouterr().err
    broken = tmp_path / "b.json"
    broken.write_text("{not json")
    assert cli.main([*SMALL, "--capacity-from", str(broken)]) == 2
    assert "is not JSON" in capsys.readouterr().err


def test_cli_plots_write_pngs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "plots"
    assert cli.main([*SMALL, "--plots", str(target), "--capacity", "300"]) == 0
    for name in ("load_over_time.png", "peak_vs_population.png"):
        data = (target / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    afile = tmp_path / "file"
    afile.write_text("")
    assert cli.main([*SMALL, "--plots", str(afile)]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_cli_progress_line_on_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(load_command, "PROGRESS_AFTER", 0.0)
    args = [a for a in SMALL if a != "--quiet"]
    assert cli.main(args) == 0
    captured = capsys.readouterr()
    assert "mbmssec load: none (1/4)" in captured.err
    assert "mbmssec load:" not in captured.out


def test_benchmark_reports_rate_and_peak_ratio(tmp_path: Path) -> None:
    """The load benchmark, run as a user runs it (``mbmssec bench --only load``)."""
    assert cli.main(["bench", "--quick", "--only", "load", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    entry = results["benchmarks"]["load"]
    assert entry["status"] == "ok", entry["reason"]
    report = entry["result"]
    strategies = report["strategies"]
    assert isinstance(strategies, dict)
    for figures in strategies.values():
        assert figures["ues_per_second"] > 0
    assert strategies["random_interval"]["peak_over_uniform"] > 1.0
    assert strategies["none"]["peak_over_uniform"] == pytest.approx(300.0)
    assert report["random_interval_speedup_over_per_ue_loop"] > 0

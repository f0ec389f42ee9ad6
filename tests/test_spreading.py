"""Fetch spreading (TS 33.246 6.2.2 / 6.2.3.2 "congestion"): one implementation per value
of the ``fetch_spreading`` option, used by the live BM-SC and by the population simulation.

The two paths are checked to be the same function: given the same per-UE inputs they
place the fetches at the same times (to the last bit where the arithmetic is the same),
and the simulation's own random draws have the distribution of the BM-SC's.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from mbmssec.impl.service import bmsc, spreading
from mbmssec.impl.service.bmsc import BmscConfig, BmscCore
from mbmssec.impl.service.spreading import FetchSpreading, SpreadingError
from mbmssec.impl.service.store import Store
from mbmssec.simulation import load
from mbmssec.spec.loader import load_spec

N = 400
T0 = 1_800_000_000.0
WINDOW_SHARE = 0.5
PERIOD = 10.0


def test_strategies_are_exactly_the_option_values() -> None:
    assert [s.value for s in FetchSpreading] == list(load_spec().options[spreading.OPTION].values)


def test_bmsc_and_simulation_call_the_same_functions() -> None:
    for user in (bmsc, load):
        assert vars(user)["spreading"] is spreading
        assert vars(user)["FetchSpreading"] is FetchSpreading


class _Bits:
    """A random source that hands out prepared 32-bit draws, then fresh octets."""

    def __init__(self, draws: list[int]) -> None:
        self.draws = list(draws)
        self.rng = np.random.default_rng(99)

    def __call__(self, n: int) -> bytes:
        if n == 4 and self.draws:
            return self.draws.pop(0).to_bytes(4, "big")
        return self.rng.bytes(n)


def _bmsc_offsets(tmp: Path, strategy: str, draws: list[int]) -> tuple[list[float], float]:
    """Fetch offsets (seconds into the window) the live BM-SC core gives N UEs."""
    source = _Bits([])
    profile = load_spec().profile({spreading.OPTION: strategy})
    config = BmscConfig(period=PERIOD, fetch_window=WINDOW_SHARE)
    core = BmscCore(Store(tmp / f"{strategy}.db", durability="normal"), profile, config, source)
    core.add_service("svc", T0)
    names = [f"ue{i:04d}" for i in range(N)]
    for i, name in enumerate(names):
        core.add_subscriber(name, bytes(16), bytes(16))
        core.subscribe(name, "svc", T0 + i * 1e-3)
    svc = core.store.get_service("svc")
    assert svc is not None
    source.draws = list(draws)
    # Asked at a small clock value so that subtracting it back loses no precision.
    now = 64.0
    offsets = [core.fetch_time(svc, name, [], now) - now - config.fetch_delay for name in names]
    return offsets, config.fetch_window * PERIOD


@pytest.mark.parametrize("strategy", list(FetchSpreading))
def test_same_inputs_same_fetch_times(tmp_path: Path, strategy: FetchSpreading) -> None:
    """The BM-SC's placement of one UE and the simulation's vectorised placement of all
    agree for the same draws and slots."""
    draws = [int(x) for x in np.random.default_rng(5).integers(0, 2**32, N)]
    live, window = _bmsc_offsets(tmp_path, strategy, draws)
    u = np.array(draws, dtype=np.float64) / 2**32
    rank = np.arange(N, dtype=np.float64)
    slots = strategy is FetchSpreading.SCHEDULED_SLOTS
    req = load.Requests(
        group="window",
        round=0,
        ue=np.arange(N, dtype=np.int64),
        instance=np.zeros(N, dtype=np.int32),
        a=rank if slots else u,
        c=np.zeros(N),
        fetch=True,
        divisor=np.full(N, float(N)) if slots else None,
        strategy=strategy,
    )
    simulated = req.times(window)
    if strategy is FetchSpreading.NONE:
        expected = [0.0] * N
    elif slots:
        expected = [window * i / N for i in range(N)]
    else:
        expected = [window * d / 2**32 for d in draws]
    assert max(abs(a - b) for a, b in zip(live, expected, strict=True)) < 1e-9
    assert max(abs(a - b) for a, b in zip(simulated, expected, strict=True)) < 1e-9


def _ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic (largest gap between the two ECDFs)."""
    grid = np.sort(np.concatenate([a, b]))
    fa = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    fb = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    return float(np.max(np.abs(fa - fb)))


@pytest.mark.parametrize("strategy", [FetchSpreading.RANDOM_INTERVAL, FetchSpreading.MULTI_KEY])
def test_simulation_draws_have_the_bmsc_distribution(
    tmp_path: Path, strategy: FetchSpreading
) -> None:
    """The simulation draws its own uniforms with numpy; the window fetch times it then
    places have the distribution of the BM-SC's (KS test at the 0.1 % level)."""
    draws = [int(x) for x in np.random.default_rng(11).integers(0, 2**32, N)]
    live, window = _bmsc_offsets(tmp_path, strategy, draws)
    params = load.LoadParams(ues=20_000, window=window, period=PERIOD, keys_per_request=3)
    plan = load.build_plan(params, strategy)
    first = next(r for r in plan.requests if r.group == "window" and r.round == 0)
    simulated = first.times(window)
    d = _ks_statistic(np.array(live), simulated)
    n, m = len(live), len(simulated)
    assert d < 1.949 * math.sqrt((n + m) / (n * m)), d
    # One delivery carries k keys under multi_key: about 1/k of the UEs fetch per window.
    period = spreading.fetch_period(strategy, params.keys_per_request)
    share = len(simulated) / params.ues
    assert abs(share - 1 / period) < 0.02, share


def test_slot_ranks_agree(tmp_path: Path) -> None:
    """Scheduled slots: the BM-SC ranks subscribers by join order, the simulation by UE
    index; both lay N UEs on the N slots of the window, one each."""
    live, window = _bmsc_offsets(tmp_path, FetchSpreading.SCHEDULED_SLOTS, [])
    params = load.LoadParams(ues=N, window=window, period=PERIOD)
    plan = load.build_plan(params, FetchSpreading.SCHEDULED_SLOTS)
    first = next(r for r in plan.requests if r.group == "window" and r.round == 0)
    assert np.allclose(np.sort(first.times(window)), np.sort(np.array(live)), atol=1e-9)


def test_unknown_strategy_and_bad_inputs_are_typed_errors() -> None:
    with pytest.raises(SpreadingError, match="unknown fetch_spreading 'lottery'"):
        spreading.fetch_offset("lottery", 1.0, 0.5, 0.0, 1.0)
    with pytest.raises(SpreadingError, match="keys per delivery"):
        spreading.fetch_period(FetchSpreading.MULTI_KEY, 0)
    with pytest.raises(SpreadingError, match="4 random octets"):
        spreading.uniform_from_bits(b"\x00")

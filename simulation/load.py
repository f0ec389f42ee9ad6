"""Population-scale re-keying load on the BM-SC: how TEK fetches spread over a fetch window.

The proposed change to TS 33.246 (MBMS security; TEK delivery with MIKEY, RFC 3830, and
SRTP with MKI, RFC 3711) has every UE fetch the next Traffic Encryption Key point to point
from the BM-SC before that key is activated. It leaves open how the fetch requests are
spread "without causing congestion" and names four remedies, which the spec option
``fetch_spreading`` selects (:class:`FetchSpreading`): no spreading (every UE fetches at
the fetch time announced with the key), random spreading within an interval, scheduled
slots, and several keys per request; the fourth remedy, several BM-SC entities, is the
``instances`` parameter.

This module answers, for populations of 10^4 .. 10^7 UEs, what each strategy costs: the
peak, 99th-percentile and mean request rate per BM-SC instance, how many UEs hold the
next TEK at activation, how long the late ones run on a stale key, which in-coverage UEs
break the model's activation property (every in-coverage UE holds the new TEK when it is
activated), and the smallest fetch window that keeps the peak under a server capacity.

Everything is vectorised with numpy: one array element per UE or per request attempt,
never one Python object per UE, and retries are simulated round by round.

Time line (seconds): the fetch window opens at 0 (the fetch time announced with the
key), the key is activated at ``W`` (the window), and the simulation horizon is the new
key's period, up to ``W + P``, cut at whole bins. A request attempt's time is
``a * W + c``; the random draws fix ``a`` and ``c``, so one set of draws can be evaluated
for any window (common random numbers), which is what the search for the minimal window
does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import numpy.typing as npt

from mbmssec.errors import MbmssecError
from mbmssec.impl.service import spreading
from mbmssec.impl.service.spreading import FetchSpreading

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
Bools = npt.NDArray[np.bool_]
Progress = Callable[[str], None]

MAX_UES = 100_000_000
MAX_INSTANCES = 4096
MAX_RETRIES = 30
# Bound on instances x time bins, so a tiny bin over a long horizon cannot exhaust memory.
MAX_CELLS = 20_000_000
VIOLATOR_EXAMPLES = 5
# Relative tolerance of the bisection for the minimal fetch window.
WINDOW_TOLERANCE = 1e-3
# After bisection the peak must also stay within capacity on this grid above the window
# (relative steps, number of steps): with random fetch times the peak is not monotone
# in W at the level of one request per bin, and a lone passing window is no answer.
STABLE_STEP = 0.005
STABLE_STEPS = 20
DEFAULT_CAPACITY_KEY = "registrations_per_second"


class LoadError(MbmssecError):
    """Bad parameters or input for the re-keying load simulation."""


ALL_STRATEGIES: tuple[FetchSpreading, ...] = tuple(FetchSpreading)


def _finite(value: float, name: str, *, minimum: float = 0.0, strict: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LoadError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise LoadError(f"{name} must be finite, got {value}")
    if value < minimum or (strict and value == minimum):
        relation = ">" if strict else ">="
        raise LoadError(f"{name} must be {relation} {minimum:g}, got {value:g}")


def _integer(value: int, name: str, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise LoadError(f"{name} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise LoadError(f"{name} must be between {lo:,} and {hi:,}, got {value:,}")


@dataclass(frozen=True)
class Storm:
    """A burst of ``size`` extra requests starting at ``at`` seconds, over ``spread`` seconds.

    ``join``: new UEs register (indices ``N .. N+M-1``); a registration carries the current
    and the next TEK, so joiners add load but never miss the next key. ``leave``: ``size``
    randomly chosen UEs deregister; a leaver stops fetching once it leaves, and one that
    leaves before activation is no longer a member the activation property speaks of.
    """

    kind: str
    size: int
    at: float
    spread: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("join", "leave"):
            raise LoadError(f"storm kind must be 'join' or 'leave', got {self.kind!r}")
        _integer(self.size, "storm size", 0, MAX_UES)
        _finite(self.at, "storm time")
        _finite(self.spread, "storm spread")

    def describe(self) -> str:
        """The storm in the command-line form ``kind:M@t[+d]``."""
        spread = f"+{self.spread:g}" if self.spread else ""
        return f"{self.kind}:{self.size}@{self.at:g}{spread}"


_NUMBER = r"[0-9][0-9_]*(?:\.[0-9]*)?(?:[eE]\+?[0-9]+)?"
_STORM_RE = re.compile(
    rf"^\s*(?:(?P<kind>join|leave):)?(?P<size>{_NUMBER})"
    rf"@(?P<at>{_NUMBER})(?:\+(?P<spread>{_NUMBER}))?\s*$"
)


def parse_count(text: str, name: str = "count") -> int:
    """A non-negative whole number written as ``10000000``, ``10_000_000`` or ``1e7``."""
    cleaned = text.strip().replace("_", "")
    try:
        return int(cleaned)
    except ValueError:
        pass
    try:
        value = float(cleaned)
    except ValueError:
        raise LoadError(f"{name} must be a whole number, got {text!r}") from None
    if not math.isfinite(value) or value != int(value):
        raise LoadError(f"{name} must be a whole number, got {text!r}")
    return int(value)


def parse_storm(text: str) -> Storm:
    """Parse ``[join:|leave:]M@t[+d]``: M requests at t seconds, spread over d seconds."""
    match = _STORM_RE.match(text)
    if match is None:
        raise LoadError(
            f"storm must look like M@t, M@t+d, join:M@t or leave:M@t (e.g. 50000@120), got {text!r}"
        )
    size = parse_count(match["size"], "storm size")
    try:
        at = float(match["at"])
        spread = float(match["spread"]) if match["spread"] else 0.0
    except ValueError:
        raise LoadError(f"storm time in {text!r} is not a number") from None
    return Storm(kind=match["kind"] or "join", size=size, at=at, spread=spread)


@dataclass(frozen=True)
class LoadParams:
    """One re-keying scenario: population, timing, BM-SC deployment and impairments.

    ``window`` W is the fetch window before activation, ``period`` P the TEK period (the
    horizon after activation), ``bin_width`` the time bin rates are measured in.
    ``loss`` is the probability a request (or its answer) is lost; the UE then retries
    after ``backoff * 2**r * U[0.5, 1.5)`` seconds, at most ``max_retries`` times.
    ``out_of_coverage`` is the share of UEs that cannot fetch during the window; they
    return uniformly within ``return_within`` seconds after activation (default P/2) and
    fetch then. ``keys_per_request`` is k for ``multi_key``; ``clock_jitter`` spreads the
    ``none`` herd over [0, jitter) seconds (UE clock offsets).
    """

    ues: int = 100_000
    window: float = 300.0
    period: float = 3600.0
    bin_width: float = 1.0
    instances: int = 1
    loss: float = 0.0
    out_of_coverage: float = 0.0
    return_within: float | None = None
    storm: Storm | None = None
    keys_per_request: int = 4
    clock_jitter: float = 0.1
    backoff: float = 1.0
    max_retries: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        _integer(self.ues, "number of UEs", 1, MAX_UES)
        _finite(self.window, "fetch window", strict=True)
        _finite(self.period, "TEK period", strict=True)
        _finite(self.bin_width, "bin width", strict=True)
        _integer(self.instances, "number of BM-SC instances", 1, MAX_INSTANCES)
        _finite(self.loss, "loss probability")
        if self.loss >= 1.0:
            raise LoadError(f"loss probability must be below 1, got {self.loss:g}")
        _finite(self.out_of_coverage, "out-of-coverage share")
        if self.out_of_coverage > 1.0:
            raise LoadError(
                f"out-of-coverage share must be at most 1, got {self.out_of_coverage:g}"
            )
        if self.return_within is not None:
            _finite(self.return_within, "return-within time")
        _integer(self.keys_per_request, "keys per request", 1, 1_000_000)
        _finite(self.clock_jitter, "clock jitter")
        _finite(self.backoff, "back-off base", strict=True)
        _integer(self.max_retries, "maximum retries", 0, MAX_RETRIES)
        _integer(self.seed, "seed", 0, 2**63 - 1)
        if self.storm is not None and self.storm.kind == "leave" and self.storm.size > self.ues:
            raise LoadError(
                f"a leave storm of {self.storm.size:,} UEs exceeds the population of {self.ues:,}"
            )
        cells = self.instances * horizon_bins(self.window, self.period, self.bin_width)
        if cells > MAX_CELLS:
            raise LoadError(
                f"{self.instances} instance(s) x {cells // self.instances:,} time bins is too "
                f"fine (limit {MAX_CELLS:,} cells): use a wider bin or a shorter period"
            )

    @property
    def return_span(self) -> float:
        """Seconds after activation within which out-of-coverage UEs come back."""
        return self.period / 2 if self.return_within is None else self.return_within

    def to_json(self) -> dict[str, object]:
        """The parameters as plain JSON values."""
        data = asdict(self)
        data["return_within"] = self.return_span
        data["storm"] = None if self.storm is None else asdict(self.storm)
        return data


def horizon_bins(window: float, period: float, bin_width: float) -> int:
    """Bins from the window's start to the end of the new key's period, ``ceil((W+P)/b)``."""
    return max(1, math.ceil((window + period) / bin_width))


def window_bins(window: float, bin_width: float) -> int:
    """Bins that start inside the fetch window, ``ceil(W/b)``."""
    return max(1, math.ceil(window / bin_width))


def capacity_count(capacity: float, bin_width: float) -> int:
    """The most requests one bin may hold for the rate to stay within ``capacity``."""
    # The tiny relative slack keeps e.g. 0.7 req/s x 10 s = 6.999... at 7 requests.
    return math.floor(capacity * bin_width * (1 + 1e-12))


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def instance_of(ues: I64, instances: int) -> I32:
    """The BM-SC instance serving each UE: splitmix64's finaliser of the index, mod K.

    A fixed hash, independent of the seed: which entity serves a UE is a property of the
    deployment, not of one run.
    """
    if instances == 1:
        return np.zeros(len(ues), dtype=np.int32)
    x = ues.astype(np.uint64) + _GOLDEN
    x ^= x >> np.uint64(30)
    x *= _MIX1
    x ^= x >> np.uint64(27)
    x *= _MIX2
    x ^= x >> np.uint64(31)
    return (x % np.uint64(instances)).astype(np.int32)


@dataclass(frozen=True, eq=False)
class Requests:
    """One retry round of one group of requests; attempt ``j`` happens at ``a[j]*W + c[j]``.

    Window fetches carry their ``strategy``: their attempt happens at
    ``fetch_offset(strategy, W, a[j], a[j], divisor[j]) + c[j]``, the BM-SC's own
    placement (:func:`mbmssec.impl.service.spreading.fetch_offset`) with ``a`` as the
    UE's uniform draw, or for scheduled slots its rank among ``divisor`` (its instance's
    size), so a slot that falls on a bin boundary lands exactly on it.

    ``group`` is ``window`` (fetches in the window), ``return`` (out-of-coverage UEs
    fetching on their return) or ``storm``; ``fetch`` is false for storm registrations and
    deregistrations.
    """

    group: str
    round: int
    ue: I64
    instance: I32
    a: F64
    c: F64
    fetch: bool
    divisor: F64 | None = None
    strategy: FetchSpreading | None = None

    def times(self, window: float) -> F64:
        """Each attempt's time for a fetch window of ``window`` seconds."""
        if self.strategy is None:
            return self.a * window + self.c
        count = self.divisor if self.divisor is not None else np.ones_like(self.a)
        offset = spreading.fetch_offset(self.strategy, window, self.a, self.a, count)
        return offset + self.c


@dataclass(frozen=True, eq=False)
class Draws:
    """The random numbers one strategy's run used, for checking the run independently.

    ``start[i]``: UE i's uniform draw for its fetch time (position in the window for
    ``random_interval``, in the k windows for ``multi_key``, clock offset for ``none``;
    unused by ``scheduled_slots``). ``out_of_coverage``, ``return_u``: coverage and return
    time draws. ``storm_subjects``, ``storm_u``: who takes part in the storm, in request
    order, and each one's offset within the storm. ``loss[group][r][j]``: the uniform that
    decides whether the round-r attempt of the group's j-th member (members in ascending UE
    order; storm in request order) is lost (< p); a lost attempt's back-off jitter is the
    same uniform divided by p, which is uniform on [0, 1) given the loss.
    """

    start: F64
    out_of_coverage: Bools
    return_u: F64
    storm_subjects: I64
    storm_u: F64
    loss: Mapping[str, tuple[F64, ...]]


@dataclass(frozen=True, eq=False)
class Plan:
    """A strategy's drawn requests, independent of the window length until evaluated.

    Per UE: ``fetching`` (it needs to fetch in this window; false for ``multi_key`` UEs
    whose stock of keys still covers the next period), ``key_a``/``key_c`` (time of the
    successful fetch, ``key_a*W [/ key_divisor] + key_c``; NaN if every attempt was lost,
    -inf if the key was already held),
    ``in_coverage`` and ``leave_at`` (inf unless the UE leaves in a storm).
    """

    params: LoadParams
    strategy: FetchSpreading
    requests: tuple[Requests, ...]
    fetching: Bools
    key_a: F64
    key_c: F64
    key_divisor: F64 | None
    in_coverage: Bools
    leave_at: F64 | None
    instance_sizes: I64
    draws: Draws | None


@dataclass(frozen=True, eq=False)
class StrategyResult:
    """What one fetch-spreading strategy costs and achieves; rates are requests/s.

    ``peak_rate``: the busiest bin of the busiest instance over the horizon.
    ``p99_rate``: the highest per-instance 99th percentile (linear interpolation) of the
    bins inside the fetch window. ``mean_rate``: requests issued inside the window per
    instance and second. ``peak_to_mean``: peak over mean, 1.0 when perfectly even in time
    and across instances. ``uniform_limit``: N/(K*W), the rate if every UE fetched once,
    perfectly evenly. ``holding_share``: members at activation holding the next TEK.
    ``stale_max``/``stale_p99``: seconds after activation the late UEs got the key;
    ``unserved``: late UEs that got no key within the horizon. ``violators``: in-coverage
    members without the key at activation (the activation property's counterexamples).
    """

    strategy: FetchSpreading
    window: float
    fetching_ues: int
    requests: int
    peak_rate: float
    p99_rate: float
    mean_rate: float
    peak_to_mean: float | None
    uniform_limit: float
    per_instance_peak: tuple[float, ...]
    members: int
    holding_share: float | None
    late: int
    stale_max: float | None
    stale_p99: float | None
    unserved: int
    violators: int
    violator_examples: tuple[int, ...]
    load: F64
    min_window: float | None = None
    min_window_method: str | None = None
    over_capacity: bool | None = None

    @property
    def peak_over_uniform(self) -> float:
        """Peak rate relative to the uniform limit N/(K*W)."""
        return self.peak_rate / self.uniform_limit

    def to_json(self) -> dict[str, object]:
        """The figures as plain JSON values (the per-bin load series left out)."""
        return {
            "strategy": str(self.strategy),
            "window": self.window,
            "fetching_ues": self.fetching_ues,
            "requests": self.requests,
            "peak_rate": self.peak_rate,
            "p99_rate": self.p99_rate,
            "mean_rate": self.mean_rate,
            "peak_to_mean": self.peak_to_mean,
            "uniform_limit": self.uniform_limit,
            "peak_over_uniform": self.peak_over_uniform,
            "per_instance_peak": list(self.per_instance_peak),
            "members": self.members,
            "holding_share": self.holding_share,
            "late": self.late,
            "stale_max": self.stale_max,
            "stale_p99": self.stale_p99,
            "unserved": self.unserved,
            "violators": self.violators,
            "violator_examples": list(self.violator_examples),
            "min_window": self.min_window,
            "min_window_method": self.min_window_method,
            "over_capacity": self.over_capacity,
        }


@dataclass(frozen=True, eq=False)
class LoadReport:
    """The results of every simulated strategy for one scenario."""

    params: LoadParams
    capacity: float | None
    results: tuple[StrategyResult, ...]

    def to_json(self) -> dict[str, object]:
        """The report as plain JSON values."""
        return {
            "params": self.params.to_json(),
            "capacity": self.capacity,
            "strategies": {str(r.strategy): r.to_json() for r in self.results},
        }


@dataclass(frozen=True, eq=False)
class Population:
    """Draws shared by every strategy, so the strategies face the same UEs and storm."""

    instance: I32
    instance_sizes: I64
    out_of_coverage: Bools
    return_u: F64
    storm_subjects: I64
    storm_u: F64


def population(params: LoadParams) -> Population:
    """Instances, coverage and storm of the scenario (the seed's common stream)."""
    n = params.ues
    rng = np.random.default_rng([params.seed, 0])
    instance = instance_of(np.arange(n, dtype=np.int64), params.instances)
    sizes = np.bincount(instance, minlength=params.instances).astype(np.int64)
    if params.out_of_coverage > 0:
        out = rng.random(n) < params.out_of_coverage
        return_u = rng.random(n)
    else:
        out = np.zeros(n, dtype=np.bool_)
        return_u = np.zeros(n)
    storm = params.storm
    if storm is None or storm.size == 0:
        subjects = np.zeros(0, dtype=np.int64)
        storm_u = np.zeros(0)
    else:
        if storm.kind == "join":
            subjects = np.arange(n, n + storm.size, dtype=np.int64)
        else:
            subjects = np.sort(rng.choice(n, size=storm.size, replace=False)).astype(np.int64)
        storm_u = rng.random(storm.size)
    return Population(instance, sizes, out, return_u, subjects, storm_u)


def _slot_rank(instance: I32, sizes: I64) -> F64:
    """Each UE's slot number: its rank among the UEs of its instance (slot time rank*W/n)."""
    n = len(instance)
    if len(sizes) == 1:
        return np.arange(n, dtype=np.float64)
    # Slots are laid out per instance: the scheduler knows which entity serves a UE, so
    # every instance sees an even stream; with one instance UE i gets slot i*W/N.
    order = np.argsort(instance, kind="stable")
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n, dtype=np.int64) - np.repeat(starts, sizes)
    return rank.astype(np.float64)


def _store(target: F64, ue: I64, values: F64) -> None:
    """``target[ue] = values``, as a plain copy when ``ue`` is every index (the usual case)."""
    if len(ue) == len(target):
        target[:] = values  # ue is a sorted subset of range(N), so this means all of it
    else:
        target[ue] = values


def _chain(
    rng: np.random.Generator,
    params: LoadParams,
    group: str,
    ue: I64,
    instance: I32,
    a: F64,
    c: F64,
    *,
    divisor: F64 | None = None,
    strategy: FetchSpreading | None = None,
    fetch: bool,
    out: list[Requests],
    key_a: F64 | None,
    key_c: F64 | None,
) -> tuple[F64, ...]:
    """Simulate one group's attempts round by round; return the loss draws per round.

    With ``key_a``/``key_c`` it also records when each member got its key: every member
    is first given its round-0 time (one bulk copy), then the few lost ones are corrected
    by later rounds, and set to NaN if every attempt was lost.
    """
    p = params.loss
    size = len(ue)
    draws: list[F64] = []
    positions: I64 | None = None
    for r in range(params.max_retries + 1):
        if len(ue) == 0:
            break
        out.append(Requests(group, r, ue, instance, a, c, fetch, divisor, strategy))
        if key_a is not None and key_c is not None and r == 0:
            _store(key_a, ue, a)
            _store(key_c, ue, c)
        if p == 0.0:
            break
        full = rng.random(size)
        draws.append(full)
        u = full if positions is None else full[positions]
        lost = u < p
        if key_a is not None and key_c is not None and r > 0:
            ok = ~lost
            key_a[ue[ok]] = a[ok]
            key_c[ue[ok]] = c[ok]
        if r == params.max_retries or not lost.any():
            if key_a is not None and key_c is not None:
                key_a[ue[lost]] = np.nan
                key_c[ue[lost]] = np.nan
            break
        positions = np.flatnonzero(lost) if positions is None else positions[lost]
        delay = params.backoff * 2.0**r * (0.5 + u[lost] / p)
        ue, instance, a, c = ue[lost], instance[lost], a[lost], c[lost] + delay
        if divisor is not None:
            divisor = divisor[lost]
    return tuple(draws)


def build_plan(
    params: LoadParams,
    strategy: FetchSpreading,
    *,
    pop: Population | None = None,
    keep_draws: bool = False,
) -> Plan:
    """Draw every request attempt of ``strategy`` (seeded by ``params.seed``)."""
    strategy = FetchSpreading(strategy)
    if pop is None:
        pop = population(params)
    n = params.ues
    rng = np.random.default_rng([params.seed, 1 + ALL_STRATEGIES.index(strategy)])
    start = np.zeros(n) if strategy is FetchSpreading.SCHEDULED_SLOTS else rng.random(n)
    # A UE fetches once every `period` windows (several with multi_key, where a request
    # carries several keys): its phase falls uniformly within those windows, and only the
    # UEs whose phase falls in this window fetch now, at that point of it.
    spread = start * spreading.fetch_period(strategy, params.keys_per_request)
    fetching = spread < 1.0
    key_a = np.where(fetching, np.nan, 0.0)
    key_c = np.where(fetching, np.nan, -np.inf)
    in_coverage = ~pop.out_of_coverage
    requests: list[Requests] = []
    loss: dict[str, tuple[F64, ...]] = {}

    idx = np.flatnonzero(fetching & in_coverage).astype(np.int64)
    inst = pop.instance[idx]
    divisor: F64 | None = None
    key_divisor: F64 | None = None
    if strategy is FetchSpreading.NONE:
        a = np.zeros(len(idx))
        c = start[idx] * params.clock_jitter
    elif strategy is FetchSpreading.SCHEDULED_SLOTS:
        a = _slot_rank(pop.instance, pop.instance_sizes)[idx]
        divisor = pop.instance_sizes.astype(np.float64)[inst]
        # Only window fetches carry the divisor; dividing the others' times by 1 is exact.
        key_divisor = np.ones(n)
        key_divisor[idx] = divisor
        c = np.zeros(len(idx))
    else:
        a = spread[idx]
        c = np.zeros(len(idx))
    loss["window"] = _chain(
        rng,
        params,
        "window",
        idx,
        inst,
        a,
        c,
        divisor=divisor,
        strategy=strategy,
        fetch=True,
        out=requests,
        key_a=key_a,
        key_c=key_c,
    )

    idx = np.flatnonzero(fetching & pop.out_of_coverage).astype(np.int64)
    loss["return"] = _chain(
        rng,
        params,
        "return",
        idx,
        pop.instance[idx],
        np.ones(len(idx)),
        pop.return_u[idx] * params.return_span,
        fetch=True,
        out=requests,
        key_a=key_a,
        key_c=key_c,
    )

    leave_at: F64 | None = None
    storm = params.storm
    subjects = pop.storm_subjects
    if storm is not None and len(subjects):
        when = storm.at + pop.storm_u * storm.spread
        if storm.kind == "leave":
            leave_at = np.full(n, np.inf)
            leave_at[subjects] = when
        loss["storm"] = _chain(
            rng,
            params,
            "storm",
            subjects,
            instance_of(subjects, params.instances),
            np.zeros(len(subjects)),
            when,
            fetch=False,
            out=requests,
            key_a=None,
            key_c=None,
        )
    else:
        loss["storm"] = ()

    draws = None
    if keep_draws:
        draws = Draws(start, pop.out_of_coverage, pop.return_u, subjects, pop.storm_u, loss)
    return Plan(
        params=params,
        strategy=strategy,
        requests=tuple(requests),
        fetching=fetching,
        key_a=key_a,
        key_c=key_c,
        key_divisor=key_divisor,
        in_coverage=in_coverage,
        leave_at=leave_at,
        instance_sizes=pop.instance_sizes,
        draws=draws,
    )


class _Scratch:
    """Reusable work arrays for binning, so repeated evaluations do not reallocate."""

    def __init__(self, plan: Plan) -> None:
        size = max((len(req.a) for req in plan.requests), default=0)
        self.times = np.empty(size)
        self.scaled = np.empty(size)
        self.cells = np.empty(size, dtype=np.int64)


def _bin_counts(plan: Plan, window: float, scratch: _Scratch | None = None) -> tuple[I64, int]:
    """Requests per instance and bin (K x bins) for a window, and those inside the window."""
    params = plan.params
    width = params.bin_width
    instances = params.instances
    nbins = horizon_bins(window, params.period, width)
    cols = nbins + 1  # the last column collects attempts past the horizon or after leaving
    total = np.zeros(cols * instances, dtype=np.int64)
    in_window = 0
    if scratch is None:
        scratch = _Scratch(plan)
    for req in plan.requests:
        size = len(req.a)
        t = scratch.times[:size]
        t[:] = req.times(window)
        col_f = np.divide(t, width, out=scratch.scaled[:size])
        np.minimum(col_f, nbins, out=col_f)
        valid: Bools | None = None
        if req.fetch and plan.leave_at is not None:
            valid = t < plan.leave_at[req.ue]
            col_f[~valid] = nbins
        cell = scratch.cells[:size]
        np.copyto(cell, col_f, casting="unsafe")  # truncation is floor: times are >= 0
        if instances > 1:
            np.multiply(cell, instances, out=cell)
            np.add(cell, req.instance, out=cell)
        total += np.bincount(cell, minlength=cols * instances)
        early = t < window
        if valid is not None:
            early &= valid
        in_window += int(np.count_nonzero(early))
    return total.reshape(cols, instances).T[:, :nbins], in_window


def peak_count(plan: Plan, window: float, scratch: _Scratch | None = None) -> int:
    """Requests in the busiest bin of the busiest instance, for a given window."""
    counts, _ = _bin_counts(plan, window, scratch)
    return int(counts.max())


def evaluate(plan: Plan, window: float | None = None) -> StrategyResult:
    """All load and key-freshness figures of a plan for a window (default: the scenario's)."""
    params = plan.params
    w = params.window if window is None else window
    _finite(w, "fetch window", strict=True)
    width = params.bin_width
    counts, in_window = _bin_counts(plan, w)
    nbins = counts.shape[1]
    per_instance = counts.max(axis=1)
    busiest = int(per_instance.argmax())
    wb = min(window_bins(w, width), nbins)
    p99 = np.percentile(counts[:, :wb], 99, axis=1)
    mean_rate = in_window / (params.instances * w)
    peak_rate = float(per_instance.max()) / width

    key_t = plan.key_a * w
    if plan.key_divisor is not None:
        key_t /= plan.key_divisor
    key_t += plan.key_c
    with np.errstate(invalid="ignore"):
        served = np.floor(key_t / width) < nbins
    if plan.leave_at is not None:
        served &= key_t < plan.leave_at
        member = plan.leave_at >= w
    else:
        member = np.ones(params.ues, dtype=np.bool_)
    holds = served & (key_t <= w)
    late = member & ~holds
    late_served = late & served
    delays = key_t[late_served] - w
    violating = np.flatnonzero(late & plan.in_coverage)
    members = int(np.count_nonzero(member))
    return StrategyResult(
        strategy=plan.strategy,
        window=w,
        fetching_ues=int(np.count_nonzero(plan.fetching)),
        requests=int(counts.sum()),
        peak_rate=peak_rate,
        p99_rate=float(p99.max()) / width,
        mean_rate=mean_rate,
        peak_to_mean=peak_rate / mean_rate if mean_rate > 0 else None,
        uniform_limit=params.ues / (params.instances * w),
        per_instance_peak=tuple(float(x) / width for x in per_instance),
        members=members,
        holding_share=(int(np.count_nonzero(holds & member)) / members) if members else None,
        late=int(np.count_nonzero(late)),
        stale_max=float(delays.max()) if len(delays) else None,
        stale_p99=float(np.percentile(delays, 99)) if len(delays) else None,
        unserved=int(np.count_nonzero(late & ~served)),
        violators=len(violating),
        violator_examples=tuple(int(i) for i in violating[:VIOLATOR_EXAMPLES]),
        load=counts[busiest] / width,
    )


def _scheduled_closed_form(plan: Plan, cap: int) -> float | None:
    """Exact minimal window for loss-free, fully covered, storm-free scheduled slots.

    Slots of one instance are W/n apart, so a bin of width b holds at most ceil(b*n/W)
    of them, and the first bin holds exactly that many; the peak stays within ``cap``
    requests per bin iff b*n/W <= cap, i.e. W >= n*b/cap, for the largest instance's n.
    """
    n = int(plan.instance_sizes.max())
    if cap < 1:
        return None
    if n <= cap:
        return 0.0  # every slot may share one bin: any window will do
    window = n * plan.params.bin_width / cap
    # n*b/cap is rounded to a float; should that put a slot a hair before a bin boundary,
    # step up to the next float window the simulation itself accepts.
    scratch = _Scratch(plan)
    for _ in range(64):
        if peak_count(plan, window, scratch) <= cap:
            return window
        window = math.nextafter(window, math.inf)
    raise AssertionError(f"closed-form window {window!r} rejected by the simulation")


def minimal_window(
    plan: Plan, capacity: float, progress: Progress | None = None
) -> tuple[float | None, str]:
    """The smallest fetch window keeping the peak within ``capacity`` requests/s.

    Returns the window (None if no window achieves it) and how it was found:
    ``closed_form`` (scheduled slots without loss, coverage gaps or storm),
    ``independent_of_window`` (``none``: fetch times ignore the window; 0.0 means any
    window is fine), ``bisection`` (on the simulation with this plan's draws, to 0.1 %
    relative), or ``unreachable``. Random fetch times make the peak flicker by a request
    or two as W moves bin boundaries, so a bisection result must also pass at every
    ``W * (1 + STABLE_STEP * i)``, i = 1..STABLE_STEPS (the next 10 %); if one of those
    fails, the search resumes above it.
    """
    _finite(capacity, "capacity", strict=True)
    params = plan.params
    cap = capacity_count(capacity, params.bin_width)
    strategy = plan.strategy
    storm = params.storm
    if strategy is FetchSpreading.NONE:
        if peak_count(plan, params.window) <= cap:
            return 0.0, "independent_of_window"
        return None, "unreachable"
    if (
        strategy is FetchSpreading.SCHEDULED_SLOTS
        and params.loss == 0
        and params.out_of_coverage == 0
        and (storm is None or storm.size == 0)
    ):
        found = _scheduled_closed_form(plan, cap)
        return found, "closed_form" if found is not None else "unreachable"
    if cap < 1:
        return None, "unreachable"

    evaluations = 0
    scratch = _Scratch(plan)

    def passes(w: float) -> bool:
        nonlocal evaluations
        evaluations += 1
        if progress is not None:
            progress(f"{strategy}: minimal window, trying W={w:.6g} s (step {evaluations})")
        return peak_count(plan, w, scratch) <= cap

    def affordable(w: float) -> bool:
        cells = params.instances * horizon_bins(w, params.period, params.bin_width)
        return cells <= MAX_CELLS

    # A window below fetchers/capacity cannot work for the busiest instance, so start
    # there; then double until a window passes and halve until one fails.
    fetchers = int(np.count_nonzero(plan.fetching))
    guess = max(fetchers / (params.instances * capacity), params.bin_width)
    lo, hi = guess, guess
    if passes(guess):
        while True:
            lo = hi / 2
            if lo < params.bin_width * 1e-6:
                return hi, "bisection"
            if not passes(lo):
                break
            hi = lo
    else:
        while True:
            lo = hi
            hi = hi * 2
            if not affordable(hi):
                return None, "unreachable"
            if passes(hi):
                break
    while True:
        while hi - lo > WINDOW_TOLERANCE * hi:
            mid = (lo + hi) / 2
            if passes(mid):
                hi = mid
            else:
                lo = mid
        failing = next(
            (i for i in range(STABLE_STEPS, 0, -1) if not passes(hi * (1 + STABLE_STEP * i))),
            None,
        )
        if failing is None:
            return hi, "bisection"
        lo = hi * (1 + STABLE_STEP * failing)
        hi = lo * (1 + STABLE_STEP)
        while not passes(hi):
            lo, hi = hi, hi * (1 + STABLE_STEP)
            if not affordable(hi):
                return None, "unreachable"


def simulate(
    params: LoadParams,
    strategies: Sequence[FetchSpreading] = ALL_STRATEGIES,
    *,
    capacity: float | None = None,
    progress: Progress | None = None,
) -> LoadReport:
    """Simulate every requested strategy; with a capacity, also find its minimal window."""
    if capacity is not None:
        _finite(capacity, "capacity", strict=True)
    if not strategies:
        raise LoadError("no fetch-spreading strategy selected")
    pop = population(params)
    results: list[StrategyResult] = []
    for number, strategy in enumerate(strategies, 1):
        label = f"{strategy} ({number}/{len(strategies)})"
        if progress is not None:
            progress(f"{label}: drawing requests")
        plan = build_plan(params, strategy, pop=pop)
        if progress is not None:
            progress(f"{label}: counting load")
        result = evaluate(plan)
        if capacity is not None:
            found, method = minimal_window(plan, capacity, progress)
            busiest = round(result.peak_rate * params.bin_width)
            over = busiest > capacity_count(capacity, params.bin_width)
            result = replace(result, min_window=found, min_window_method=method, over_capacity=over)
        results.append(result)
        del plan
    return LoadReport(params=params, capacity=capacity, results=tuple(results))


def peak_against_population(
    params: LoadParams,
    populations: Sequence[int],
    strategies: Sequence[FetchSpreading] = ALL_STRATEGIES,
    progress: Progress | None = None,
) -> dict[FetchSpreading, list[float]]:
    """Peak rate per strategy for each population size, other parameters unchanged."""
    peaks: dict[FetchSpreading, list[float]] = {s: [] for s in strategies}
    for n in populations:
        storm = params.storm
        if storm is not None and storm.kind == "leave" and storm.size > n:
            storm = replace(storm, size=n)  # a smaller population cannot lose more UEs
        scenario = replace(params, ues=n, storm=storm)
        pop = population(scenario)
        for strategy in strategies:
            if progress is not None:
                progress(f"peak against population: N={n:,}, {strategy}")
            plan = build_plan(scenario, strategy, pop=pop)
            peaks[strategy].append(peak_count(plan, scenario.window) / scenario.bin_width)
    return peaks


def capacity_from_json(data: object, key: str = DEFAULT_CAPACITY_KEY) -> float:
    """Find ``key`` in a JSON document (at the top or nested) and return it as a capacity."""
    pending: list[object] = [data]
    while pending:
        item = pending.pop(0)
        if isinstance(item, dict):
            if key in item:
                value = item[key]
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise LoadError(f"capacity {key!r} must be a number, got {value!r}")
                if not math.isfinite(value) or value <= 0:
                    raise LoadError(f"capacity {key!r} must be a positive number, got {value}")
                return float(value)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    raise LoadError(f"no {key!r} in the capacity file")

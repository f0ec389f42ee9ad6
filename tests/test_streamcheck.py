"""The streaming trace checker: each model step it takes on the live state is the full
executable model's step (the supports of :mod:`mbmssec.refinement.streamcheck` miss no
element a quantifier or ``set_all`` reaches), and its bounds are checked, never silently
exceeded.  Its verdicts against the full-state reference checker on a demo log and the
log-mutation catalogue are compared in ``tests/test_tracecheck.py``."""

from __future__ import annotations

import random
from typing import Any

import pytest

from mbmssec.model.concrete import State, Universe, enabled_instances, param_values, step
from mbmssec.model.machine import Model
from mbmssec.refinement.streamcheck import (
    LOGGED_ACTIONS,
    UNSTORED,
    LiveState,
    check_stream,
    run_projected,
)
from mbmssec.refinement.tracecheck import TraceCheckError
from mbmssec.spec.loader import load_spec

UNIVERSE = Universe(ue=2, svc=2, tek=4, pkt=6)


def _live(model: Model, state: State) -> LiveState:
    """The live state holding ``state``'s entries, with its clock and fetch times as they
    are (the supports are checked here, not the timing rule)."""
    live = LiveState(model)
    live.commit({n: dict(t) for n, t in state.tables.items() if n not in ("clock", "fetch_time")})
    live.tables["clock"] = dict(state.tables["clock"])
    live.tables["fetch_time"] = dict(state.tables["fetch_time"])
    live.refresh_getters()
    live.services.extend(range(UNIVERSE.svc))
    return live


def _changes(pre: State, post: State) -> dict[str, dict[tuple[int, ...], Any]]:
    out: dict[str, dict[tuple[int, ...], Any]] = {}
    for name in pre.tables:
        if name in UNSTORED:
            continue
        for args in UNIVERSE.tuples(pre.vocab[name].args):
            if post.get(name, *args) != pre.get(name, *args):
                out.setdefault(name, {})[args] = post.get(name, *args)
    return out


RARE = frozenset({"Subscribe", "Revoke", "LoseCoverage", "RegainCoverage", "DeliveryLost", "Tick"})
"""Actions a walk takes less often (they undo or delay the set-up a key switch needs)."""

KEY_SWITCH: tuple[tuple[str, tuple[Any, ...]], ...] = (
    ("Subscribe", (0, 0)),
    ("Subscribe", (1, 0)),
    ("Authenticate", (0,)),
    ("Generate", (0, 0)),
    ("Activate", (0,)),
    ("Generate", (0, 1)),
    ("Register", (0, 0, 1)),
    ("Activate", (0,)),
    ("Send", (0, 0, True)),
)
"""A start from which a UE holding an older TEK decrypts a packet under a newer one."""


def _states(model: Model, seed: int, steps: int) -> list[State]:
    """Every other state of a random run of the logged actions and ``Tick``, choosing an
    action first and then one of its instances; odd seeds start after
    :data:`KEY_SWITCH` (each of its states is kept too)."""
    rng = random.Random(seed)
    walk = [a for a in model.actions if a.name in LOGGED_ACTIONS or a.name == "Tick"]
    state = model.initial(UNIVERSE)
    out = [state]
    if seed % 2:
        for name, args in KEY_SWITCH:
            nxt = model.step(state, name, args)
            assert nxt is not None, (name, args)
            state = nxt
            out.append(state)
    for i in range(steps):
        moves = [(a, m) for a in walk if (m := list(enabled_instances(a, model.profile, state)))]
        if not moves:
            break
        weights = [1 if a.name in RARE else 4 for a, _ in moves]
        state = rng.choice(rng.choices([m for _, m in moves], weights)[0])[1]
        if i % 2:
            out.append(state)
    return out


@pytest.mark.parametrize(
    "options",
    [{}, {"membership_rekey": "both", "second_service_auth": "authorise_only"}],
    ids=["baseline", "rekey_both"],
)
def test_projected_steps_are_the_models(options: dict[str, str]) -> None:
    """On states of random runs, every instance of every logged action is enabled on the
    live state exactly when the full model enables it, and writes the same entries."""
    model = Model(load_spec().profile(options))
    actions = [a for a in model.actions if a.name in LOGGED_ACTIONS]
    seen: set[str] = set()
    checked = 0
    for seed in range(3):
        for state in _states(model, seed, 60):
            live = _live(model, state)
            for act in actions:
                domains = [param_values(p, UNIVERSE) for p in act.params]
                for args in _product(domains):
                    full = step(act, model.profile, state, args)
                    ours = run_projected(live, act, model.profile, args)
                    assert (full is None) == (ours is None), (act.name, args)
                    checked += 1
                    if full is None or ours is None:
                        continue
                    seen.add(act.name)
                    written = {
                        name: {k: v for k, v in entries.items() if v != state.get(name, *k)}
                        for name, entries in ours.writes.items()
                        if name not in ("clock", "fetch_time")
                    }
                    written = {n: e for n, e in written.items() if e}
                    want = {
                        n: e
                        for n, e in _changes(state, full).items()
                        if n not in ("clock", "fetch_time")
                    }
                    assert written == want, (act.name, args)
    assert seen == {a.name for a in actions}, sorted({a.name for a in actions} - seen)
    assert checked > 1000


def _product(domains: list[Any]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = [()]
    for d in domains:
        out = [(*t, x) for t in out for x in d]
    return out


# -- bounds -------------------------------------------------------------------------------------

SVC = "239.255.0.1"


def _ev(event: str, t: float = 0.0, **kw: Any) -> dict[str, Any]:
    base = {
        "t": t,
        "event": event,
        "service": SVC,
        "ue": None,
        "mki": None,
        "tek": None,
        "ok": True,
        "reason": None,
        "source": "bmsc",
    }
    return {**base, **kw}


def _log(packets: int, between: int = 0) -> list[dict[str, Any]]:
    """UE A fetches MKIs 1 and 2 with ``between`` packets sent between the BM-SC's Deliver
    and A's Register, then ``packets`` more are sent; A receives the first one last."""
    common = {"ue": "A", "mki": 2, "mkis": [1, 2], "counter": 1, "fetch_time": 10.0}
    out = [
        _ev("Start", service=None, reason="bmsc", fetch_grace=0.2),
        _ev("Generate", mki=1),
        _ev("Activate", mki=1),
        _ev("Generate", mki=2),
        _ev("Subscribe", ue="A"),
        _ev("Authenticate", ue="A", t=1.0),
        _ev("Deliver", t=1.0, **common),
    ]
    seq = 0
    for _ in range(between):
        out.append(_ev("Send", t=1.0, mki=1, seq=seq))
        seq += 1
    out.append(_ev("Register", t=1.01, source="ue", **common))
    for _ in range(packets):
        out.append(_ev("Send", t=2.0, mki=1, seq=seq))
        seq += 1
    out.append(_ev("Receive", t=3.0, ue="A", mki=1, seq=0, source="ue"))
    return out


def test_lookahead_bound_is_an_error_never_an_acceptance() -> None:
    profile = load_spec().baseline()
    log = _log(packets=1, between=5)
    assert check_stream(iter(log), profile, lookahead=6).ok
    with pytest.raises(TraceCheckError, match=r"line 7: .* not among the next 5 events"):
        check_stream(iter(log), profile, lookahead=5)


def test_packet_window_bound_is_an_error_never_an_acceptance() -> None:
    profile = load_spec().baseline()
    log = _log(packets=5)
    assert check_stream(iter(log), profile, packet_window=5).ok  # seq 0 is the 5th newest
    with pytest.raises(TraceCheckError, match="left the checker's window of the last 4 packets"):
        check_stream(iter(log), profile, packet_window=4)
    # a packet never sent is still a verdict, not an error
    never = [*log, _ev("Receive", t=3.0, ue="A", mki=1, seq=99, source="ue")]
    verdict = check_stream(iter(never), profile, packet_window=5)
    assert not verdict.ok and verdict.failure is not None
    assert "never sent" in verdict.failure.why


def test_stream_is_read_once_to_its_end() -> None:
    """After a verdict the rest is still read (its event names, a Start event)."""
    profile = load_spec().baseline()
    log = _log(packets=1)
    bad = [*log, _ev("Receive", t=4.0, ue="A", mki=1, seq=0, source="ue")]
    verdict = check_stream(iter(bad), profile)
    assert not verdict.ok and verdict.events == len(bad)
    with pytest.raises(TraceCheckError, match="unknown event name"):
        check_stream(iter([*bad, _ev("Teleport")]), profile)

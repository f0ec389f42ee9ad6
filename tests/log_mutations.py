"""Edits of an event log, derived from the log's own structure (shared by the trace
checking tests).

:func:`bug_edits` gives edits that each make the log describe something the model (or
the log format's pairing of BM-SC and UE events) forbids: a delivery without or after a
failed authentication, a UE installing a replayed older delivery, MKIs the BM-SC never
generated, a packet received under another MKI than it was sent, an activation before
the UEs fetched, a revoked or unknown UE getting keys, duplicated, deleted or reordered
events, and time going backwards.  :func:`benign_edits` gives edits that keep the log a
possible run (reordering independent events, shifting every clock, dropping events with
no model counterpart, cutting the log short).

Every edit is found by looking the log over (which UE was revoked, which TEKs were
activated, which delivery brought which MKI first), never by position in one run, so
both lists are built afresh from any demo log.  Each edit is ``Edit(category, label,
events, touched)``: ``touched`` is the first position (in the edited log) the edit
changed, so a test can check that the verdict is not about an earlier event.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Log = list[dict[str, Any]]

UNKNOWN_IMSI = "001019999999999"


@dataclass(frozen=True)
class Edit:
    category: str
    label: str
    events: Log
    touched: int


def _idx(events: Log, pred: Callable[[dict[str, Any]], bool], after: int = -1) -> list[int]:
    return [i for i, e in enumerate(events) if i > after and pred(e)]


def _is(name: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["event"] == name and all(e.get(k) == v for k, v in fields.items())


def _delete(events: Log, i: int) -> Log:
    return events[:i] + events[i + 1 :]


def _replace(events: Log, i: int, **fields: Any) -> Log:
    return [*events[:i], {**events[i], **fields}, *events[i + 1 :]]


def _move(events: Log, i: int, to: int, **fields: Any) -> tuple[Log, int]:
    """Move event ``i`` to just before position ``to`` (of the original log)."""
    e = {**events[i], **fields}
    rest = _delete(events, i)
    at = to if to < i else to - 1
    return [*rest[:at], e, *rest[at:]], min(i, at)


def _tek(service: str, mki: int) -> str:
    return f"{service}/{mki}"


def _auth_before(events: Log, d: int) -> int | None:
    """The Authenticate of the UE that the Deliver at ``d`` consumed."""
    ue = events[d]["ue"]
    for k in range(d - 1, -1, -1):
        e = events[k]
        if e.get("ue") != ue:
            continue
        if e["event"] == "Authenticate":
            return k
        if e["event"] == "Deliver":
            return None
    return None


def _one_per_trigger(events: Log) -> list[int]:
    """The first Deliver of each trigger (initial, fetch_time, unknown_mki, ...)."""
    seen: dict[str, int] = {}
    for i in _idx(events, _is("Deliver")):
        seen.setdefault(str(events[i].get("trigger")), i)
    return sorted(seen.values())


def _outcome(events: Log, d: int) -> int | None:
    ue, svc = events[d]["ue"], events[d]["service"]
    for k in range(d + 1, len(events)):
        e = events[k]
        if e.get("ue") == ue and e.get("service") == svc and e["event"] == "Register":
            return k
    return None


def _deliver_of(events: Log, r: int) -> int:
    ue, svc = events[r]["ue"], events[r]["service"]
    return next(k for k in range(r - 1, -1, -1) if _is("Deliver", ue=ue, service=svc)(events[k]))


def _registers_by_ue(events: Log) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i in _idx(events, _is("Register", ok=True)):
        out.setdefault(events[i]["ue"], []).append(i)
    return out


def bug_edits(events: Log) -> Iterator[Edit]:
    """Edits that make the log describe a forbidden run (see the module docstring)."""
    bmsc_start = next(e for e in events if e["event"] == "Start" and e.get("source") == "bmsc")
    grace = float(bmsc_start["fetch_grace"])
    demo_start = next(e for e in events if e["event"] == "Start" and e.get("roles"))
    revoked = demo_start["roles"]["revoked"]
    activations = _idx(events, _is("Activate"))
    mkis = sorted({e["mki"] for e in events if e["event"] == "Generate"})
    foreign = max(mkis) + 17

    # -- authentication skipped or failed
    for d in _one_per_trigger(events):
        a = _auth_before(events, d)
        if a is None:
            continue
        trig = events[d].get("trigger")
        yield Edit("auth", f"Authenticate before a {trig} delivery deleted", _delete(events, a), a)
        yield Edit(
            "auth",
            f"Authenticate before a {trig} delivery failed",
            _replace(events, a, ok=False, reason="auth_failed"),
            a,
        )
    d = _one_per_trigger(events)[0]
    a = _auth_before(events, d)
    assert a is not None
    yield Edit(
        "auth",
        "authentication refused (bad response) yet the delivery follows",
        _replace(events, a, event="Rejected", ok=False, reason="bad_response", status=401),
        a,
    )

    # -- rollback: a UE installs a replayed older delivery
    for ue, regs in sorted(_registers_by_ue(events).items()):
        older = next((r for r in regs if events[r]["mkis"] != events[regs[-1]]["mkis"]), None)
        if older is None:
            continue
        old = events[older]
        yield Edit(
            "rollback",
            f"UE {ue} installs its delivery of line {older + 1} again",
            _replace(
                events,
                regs[-1],
                **{k: old.get(k) for k in ("mkis", "mki", "tek", "counter", "fetch_time")},
            ),
            regs[-1],
        )

    # -- foreign MKIs
    d = _idx(events, _is("Deliver"))[-1]
    svc = events[d]["service"]
    yield Edit(
        "foreign_mki",
        "the BM-SC delivers an MKI it never generated",
        _replace(events, d, mkis=[*events[d]["mkis"], foreign]),
        d,
    )
    r = _outcome(events, d)
    if r is not None:
        yield Edit(
            "foreign_mki",
            "a UE installs an MKI the BM-SC never sent",
            _replace(events, r, mkis=[*events[r]["mkis"][:-1], foreign], mki=foreign),
            r,
        )
    s = _idx(events, _is("Send"))[len(_idx(events, _is("Send"))) // 2]
    yield Edit(
        "foreign_mki",
        "a packet sent under an MKI never generated",
        _replace(events, s, mki=foreign, tek=_tek(svc, foreign)),
        s,
    )
    yield Edit(
        "foreign_mki",
        "activation of an MKI never generated",
        _replace(events, activations[-1], mki=foreign, tek=_tek(svc, foreign)),
        activations[-1],
    )

    # -- a Receive under another MKI than its Send
    sent = {(e["service"], e["seq"]): e["mki"] for e in events if e["event"] == "Send"}
    for m in {events[i]["mki"] for i in activations[1:]}:
        rx = _idx(events, _is("Receive", ok=True, mki=m))
        if not rx:
            continue
        other = max(x for x in mkis if x != m and x < m)
        i = rx[0]
        assert sent[(events[i]["service"], events[i]["seq"])] == m
        yield Edit(
            "receive_mki",
            f"a packet sent under MKI {m} decrypted under MKI {other}",
            _replace(events, i, mki=other, tek=_tek(events[i]["service"], other)),
            i,
        )

    # -- early activation
    for act in activations[1:]:
        m = events[act]["mki"]
        carrying = [c for c in _idx(events, _is("Deliver")) if c < act and m in events[c]["mkis"]]
        if not carrying:
            continue
        first = carrying[0]
        moved, at = _move(events, act, first, t=events[first]["t"])
        yield Edit("early_activation", f"MKI {m} activated before any UE fetched it", moved, at)
        # the last UE to fetch it did so on time: within the BM-SC's grace of its fetch time
        for c in reversed(carrying):
            ue = events[c]["ue"]
            prev = [
                k
                for k in _idx(events, _is("Deliver", ue=ue))
                if k < c and events[k].get("fetch_time") is not None
            ]
            if events[c].get("trigger") != "fetch_time" or not prev:
                continue
            due = float(events[prev[-1]]["fetch_time"])
            if float(events[c]["t"]) < due + grace:
                moved, at = _move(events, act, c, t=events[c]["t"])
                yield Edit(
                    "early_activation",
                    f"MKI {m} activated while UE {ue} was within its fetch grace",
                    moved,
                    at,
                )
                break

    # -- a revoked UE decrypting, deliveries to unsubscribed and unknown UEs
    revoke = _idx(events, _is("Revoke", ue=revoked))[0]
    later = {events[i]["mki"] for i in activations if i > revoke}
    refused = [
        i
        for i in _idx(events, _is("Receive", ue=revoked), after=revoke)
        if not events[i]["ok"] and events[i]["mki"] in later
    ]
    yield Edit(
        "revoked",
        "the revoked UE decrypts a packet under a TEK activated after its revocation",
        _replace(events, refused[0], ok=True, reason=None),
        refused[0],
    )
    d = _idx(events, _is("Deliver"), after=revoke)[0]
    a, r = _auth_before(events, d), _outcome(events, d)
    assert a is not None and r is not None
    for who, label, cat in (
        (revoked, "the revoked UE is given keys after its revocation", "revoked"),
        (UNKNOWN_IMSI, "an IMSI never subscribed is given keys", "unsubscribed"),
    ):
        triple = [{**events[k], "ue": who} for k in (a, d, r)]
        yield Edit(cat, label, events[: r + 1] + triple + events[r + 1 :], r + 1)
    ue0 = events[_idx(events, _is("Subscribe"))[0]]["ue"]
    sub = _idx(events, _is("Subscribe", ue=ue0))[0]
    yield Edit("unsubscribed", f"UE {ue0} is served without a Subscribe", _delete(events, sub), sub)

    # -- duplicated events
    dup_of = {
        "Register": _idx(events, _is("Register", ok=True))[-1],
        "Deliver": _idx(events, _is("Deliver"))[-1],
        "Send": _idx(events, _is("Send"))[3],
        "Receive": _idx(events, _is("Receive", ok=True))[-1],
        "Generate": _idx(events, _is("Generate"))[-1],
        "Activate": activations[-1],
        "Subscribe": sub,
        "Revoke": revoke,
    }
    for name, i in dup_of.items():
        # the verdict may rightly name either copy (a Deliver without its own outcome)
        yield Edit("duplicate", f"{name} of line {i + 1} twice", events[: i + 1] + events[i:], i)

    # -- deleted events
    first_rx: dict[tuple[str, int], int] = {}
    for i in _idx(events, _is("Receive", ok=True)):
        first_rx.setdefault((events[i]["ue"], events[i]["mki"]), i)
    regs = [
        r
        for r in _idx(events, _is("Register", ok=True))
        if any(
            (events[r]["ue"], m) in first_rx
            and first_rx[(events[r]["ue"], m)] > r
            and not any(
                m in events[q]["mkis"] for q in _registers_by_ue(events)[events[r]["ue"]] if q < r
            )
            for m in events[r]["mkis"]
        )
    ]
    deletable = {
        "Generate": _idx(events, _is("Generate"))[1],
        "Activate": activations[1],
        "Revoke": revoke,
        "Deliver": _idx(events, _is("Deliver"))[2],
        # a packet some UE decrypted: a refused Receive (a packet the UE did not take)
        # needs no Send, so deleting the Send of a packet only ever refused is no bug
        "Send": next(
            i
            for i in _idx(events, _is("Send"))
            if any(
                e["event"] == "Receive" and e.get("ok") and e["seq"] == events[i]["seq"]
                for e in events[i + 1 :]
            )
        ),
        "LoseCoverage": _idx(events, _is("LoseCoverage"))[0],
        "RegainCoverage": _idx(events, _is("RegainCoverage"))[0],
    }
    if regs:
        deletable["Register"] = regs[len(regs) // 2]
    for name, i in deletable.items():
        # a UE's Register deleted leaves its Deliver without an outcome: blame may go there
        at = _deliver_of(events, i) if name == "Register" else i
        yield Edit("deleted", f"{name} of line {i + 1} deleted", _delete(events, i), at)

    # -- reordered events
    d = _idx(events, _is("Deliver"))[1]
    r = _outcome(events, d)
    assert r is not None
    moved, at = _move(events, r, d)
    yield Edit("reordered", "a UE's Register before the BM-SC's Deliver", moved, at)
    rx10 = _idx(events, _is("Receive", ok=True))[10]
    snd = next(
        i for i in _idx(events, _is("Send")) if events[i]["seq"] == events[rx10]["seq"] and i < rx10
    )
    moved, at = _move(events, rx10, snd)
    yield Edit("reordered", "a Receive before its packet's Send", moved, at)
    act = activations[1]
    gen = next(i for i in _idx(events, _is("Generate")) if events[i]["mki"] == events[act]["mki"])
    moved, at = _move(events, act, gen)
    yield Edit("reordered", "an Activate before the TEK's Generate", moved, at)
    first_d = _idx(events, _is("Deliver", ue=ue0))[0]
    moved, at = _move(events, sub, first_d + 1)
    yield Edit("reordered", "a Subscribe after the UE's first delivery", moved, at)
    s_new = next(
        i for i in _idx(events, _is("Send")) if i > act and events[i]["mki"] == events[act]["mki"]
    )
    moved, at = _move(events, s_new, act)
    yield Edit("reordered", "a packet under the new TEK before its Activate", moved, at)

    # -- time going backwards (per source)
    for name in ("Send", "Receive", "Deliver", "Register", "Activate"):
        cands = _idx(events, _is(name))
        i = cands[len(cands) // 2] if name != "Activate" else activations[-1]
        yield Edit(
            "time",
            f"{name} of line {i + 1} stamped 5 s early",
            _replace(events, i, t=events[i]["t"] - 5.0),
            i,
        )


def _free_text_changed(e: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = dict(e)
    for k in ("message", "url"):
        if k in e:
            out[k] = f"changed {k}"
    if "port" in e:
        out["port"] = 9
    return out


def benign_edits(events: Log) -> Iterator[Edit]:
    """Edits that keep the log a possible run (see the module docstring)."""
    # independent events with equal timestamps, swapped
    subs = _idx(events, _is("Subscribe"))
    pairs = [
        (a, b)
        for a, b in itertools.pairwise(subs)
        if b == a + 1 and events[a]["t"] == events[b]["t"]
    ]
    a, b = pairs[0]
    yield Edit(
        "benign",
        "two Subscribes at the same time swapped",
        [*events[:a], events[b], events[a], *events[b + 1 :]],
        a,
    )
    # receptions by two UEs of the same packet, swapped
    rx = _idx(events, _is("Receive"))
    i = next(
        k
        for k in rx
        if k + 1 < len(events)
        and events[k + 1]["event"] == "Receive"
        and events[k + 1]["ue"] != events[k]["ue"]
        and events[k + 1]["seq"] == events[k]["seq"]
    )
    yield Edit(
        "benign",
        "two UEs' receptions of one packet swapped",
        [*events[:i], events[i + 1], events[i], *events[i + 2 :]],
        i,
    )
    # every clock shifted by an hour
    yield Edit(
        "benign",
        "every timestamp an hour later",
        [
            {**e, "t": e["t"] + 3600.0}
            | ({"fetch_time": e["fetch_time"] + 3600.0} if e.get("fetch_time") is not None else {})
            | ({"planned": e["planned"] + 3600.0} if e.get("planned") is not None else {})
            for e in events
        ],
        0,
    )
    # events with no model counterpart dropped
    yield Edit(
        "benign",
        "Challenge, Resync and Stop events dropped",
        [e for e in events if e["event"] not in ("Challenge", "Resync", "Stop")],
        0,
    )
    # free-text fields changed
    yield Edit(
        "benign",
        "messages, ports and URLs changed",
        [_free_text_changed(e) for e in events],
        0,
    )
    # the log cut short: right after a delivery, before the UE logs it
    d = _idx(events, _is("Deliver"))[-1]
    yield Edit("benign", "log cut after a delivery in flight", events[: d + 1], d)
    # the log cut short in the middle of the stream
    yield Edit("benign", "log cut in the middle", events[: len(events) // 2], 0)

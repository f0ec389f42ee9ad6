"""``mbmssec trace-check``: demo logs are explained; an edited log with a forbidden event is
rejected, naming that event."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mbmssec.impl.service.events import read_events
from mbmssec.model.vocabulary import FETCH_WINDOW
from mbmssec.refinement.tracecheck import causal_order, check_events
from mbmssec.spec.loader import load_spec


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    log = tmp_path_factory.mktemp("tc") / "demo.jsonl"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mbmssec",
            "demo",
            "--ues",
            "4",
            "--duration",
            "2.5",
            "--period",
            "0.5",
            "--json",
            "--log",
            str(log),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    summary = json.loads(proc.stdout)
    assert proc.returncode == 0, summary["checks"]
    return summary, log


def test_demo_runs_trace_check(demo: tuple[dict[str, Any], Path]) -> None:
    summary, _ = demo
    assert summary["checks"]["trace_check"]["ok"]
    assert summary["trace_check"]["ok"] and summary["trace_check"]["explained"] > 100


def test_cli_accepts_demo_log(demo: tuple[dict[str, Any], Path]) -> None:
    _, log = demo
    proc = subprocess.run(
        [sys.executable, "-m", "mbmssec", "trace-check", str(log), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout
    assert json.loads(proc.stdout)["ok"]


def _forbidden_edit(events: list[dict[str, Any]]) -> int:
    """Turn the revoked UE's first refused packet under a TEK activated after its
    revocation into a decryption; returns its index."""
    start = next(e for e in events if e["event"] == "Start" and e.get("roles"))
    revoked = start["roles"]["revoked"]
    revoke_i = next(
        i for i, e in enumerate(events) if e["event"] == "Revoke" and e["ue"] == revoked
    )
    later = {e["mki"] for e in events[revoke_i:] if e["event"] == "Activate"}
    i = next(
        i
        for i, e in enumerate(events)
        if i > revoke_i
        and e["event"] == "Receive"
        and e["ue"] == revoked
        and e["mki"] in later
        and not e["ok"]
    )
    events[i] = {**events[i], "ok": True, "reason": None}
    return i


def test_cli_rejects_revoked_ue_decrypting_after_rekey(
    demo: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    _, log = demo
    events = read_events(log)
    i = _forbidden_edit(events)
    edited = tmp_path / "edited.jsonl"
    edited.write_text("".join(json.dumps(e) + "\n" for e in events))
    proc = subprocess.run(
        [sys.executable, "-m", "mbmssec", "trace-check", str(edited), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    verdict = json.loads(proc.stdout)
    bad = verdict["first_unexplained"]
    assert bad["event"]["event"] == "Receive" and bad["event"]["ue"] == events[i]["ue"]
    assert bad["event"]["seq"] == events[i]["seq"] and bad["event"]["ok"] is True
    assert "forbids" in bad["why"] and bad["candidates"]
    text = subprocess.run(
        [sys.executable, "-m", "mbmssec", "trace-check", str(edited)],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert "FORBIDDEN" in text and f"seq={events[i]['seq']}" in text


def test_strict_timing_and_causal_order_are_exercised(demo: tuple[dict[str, Any], Path]) -> None:
    _, log = demo
    events = read_events(log)
    profile = load_spec().baseline()
    result = check_events(events, profile)
    assert result.ok
    # The demo revokes a UE; the replacement TEK is activated once the last UE is past
    # its fetch time, which the model explains only as a late fetch of that UE.
    if result.late_fetches:
        assert not check_events(events, profile, allow_late_fetch=False).ok
    assert len(causal_order(events)) == len(events)


def test_bad_input_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json}\n{}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "mbmssec", "trace-check", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2


def _nested_fetches(inner: int) -> list[dict[str, Any]]:
    """UE A registers; UE B registers next and then re-fetches ``inner`` times (each at
    its fetch time) before A re-fetches.  B's re-fetches each need a tick of their own,
    all while the clock may not pass A's fetch time."""
    svc = "239.255.0.1"

    def ev(event: str, **kw: Any) -> dict[str, Any]:
        return {
            "event": event,
            "service": svc,
            "ue": None,
            "mki": None,
            "ok": True,
            "reason": None,
            "source": "bmsc",
            **kw,
        }

    def fetch(ue: str, trigger: str) -> list[dict[str, Any]]:
        return [
            ev("Authenticate", ue=ue),
            ev("Deliver", ue=ue, mki=2, mkis=[1, 2], trigger=trigger),
            ev("Register", ue=ue, mki=2, mkis=[1, 2], trigger=trigger, source="ue"),
        ]

    out = [
        ev("Generate", mki=1),
        ev("Activate", mki=1),
        ev("Generate", mki=2),
        ev("Subscribe", ue="A"),
        ev("Subscribe", ue="B"),
        *fetch("A", "initial"),
        *fetch("B", "initial"),
    ]
    for _ in range(inner):
        out += fetch("B", "fetch_time")
    out += fetch("A", "fetch_time")
    return [{"t": float(i), **e} for i, e in enumerate(out)]


def test_refetches_nested_in_a_long_fetch_delay_are_explained() -> None:
    """The model lets the BM-SC set any future fetch time, so any number of re-fetches of
    one UE fit inside another UE's fetch delay (real logs nest several); the timing
    search is exact, so even a search width of 1 cuts nothing."""
    profile = load_spec().baseline()
    for inner in (FETCH_WINDOW, FETCH_WINDOW + 1, 3 * FETCH_WINDOW):
        verdict = check_events(_nested_fetches(inner), profile, width=1)
        assert verdict.ok, verdict.render()
        assert verdict.pruned == 0

"""``mbmssec trace-check``: demo logs are explained; every edit of a demo log that makes it
describe a forbidden run is rejected, naming an event no earlier than the edit; edits
that keep it a possible run are accepted; bad input is exit 2.  The demo's capture of the
BM-SC's SRTP packets (``--pcap``) is explained with its keys, and edits of it (an MKI
changed, a packet dropped or repeated, a packet re-encrypted under a TEK that is not
active) are rejected naming the packet."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from log_mutations import Edit, benign_edits, bug_edits

from mbmssec.cli import main as cli_main
from mbmssec.impl.protocols.pcap import Datagram, Packet, udp_datagrams, write_pcap
from mbmssec.impl.protocols.srtp import MasterKey, SrtpPolicy, SrtpReceiver, SrtpSender
from mbmssec.impl.service.events import iter_events, read_events
from mbmssec.impl.service.store import Store
from mbmssec.model.vocabulary import FETCH_WINDOW
from mbmssec.refinement.tracecheck import (
    MAX_WIDTH,
    TraceCheckError,
    TraceResult,
    causal_order,
    check_events,
    check_events_reference,
)
from mbmssec.refinement.wirecheck import WireCheck, keys_from_store
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
            "--pcap",
            str(log.with_suffix(".pcap")),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    summary = json.loads(proc.stdout)
    assert proc.returncode == 0, summary["checks"]
    return summary, log


def test_demo_runs_trace_check(demo: tuple[dict[str, Any], Path]) -> None:
    summary, log = demo
    assert summary["checks"]["trace_check"]["ok"]
    assert summary["trace_check"]["ok"] and summary["trace_check"]["explained"] > 100
    # strict timing by default, judged against the fetch grace the BM-SC logged
    bmsc = next(e for e in read_events(log) if e["event"] == "Start" and e["source"] == "bmsc")
    assert summary["trace_check"]["timing"] == "strict"
    assert summary["trace_check"]["fetch_grace"] == bmsc["fetch_grace"] > 0
    assert len(causal_order(read_events(log))) == len(read_events(log))


def _revoked_ue_decrypts(events: list[dict[str, Any]]) -> int:
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


def _write(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def test_cli_exit_codes(demo: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    """The command as a process: 1 for a forbidden edit (with the JSON verdict), 2 for a
    log with no Start event (0 for the demo's own log: in-process, below)."""
    _, log = demo
    events = read_events(log)
    i = _revoked_ue_decrypts(events)
    edited = _write(tmp_path / "edited.jsonl", events)
    nostart = _write(tmp_path / "nostart.jsonl", [e for e in events if e["event"] != "Start"])
    codes = {}
    for name, path in (("edited", edited), ("nostart", nostart)):
        proc = subprocess.run(
            [sys.executable, "-m", "mbmssec", "trace-check", str(path), "--json"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        codes[name] = proc.returncode
        if name == "edited":
            bad = json.loads(proc.stdout)["first_unexplained"]
        if name == "nostart":
            assert "no Start event" in proc.stderr
    assert codes == {"edited": 1, "nostart": 2}
    assert bad["line"] == i + 1 and bad["event"]["seq"] == events[i]["seq"]
    assert "forbids" in bad["why"]
    assert {r["imsi"] for r in bad["state"]["ues"]} == {
        e["ue"] for e in events if e["event"] == "Subscribe"
    }


def test_verdict_is_one_line_then_tables(
    demo: tuple[dict[str, Any], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, log = demo
    assert cli_main(["trace-check", str(log)]) == 0
    assert capsys.readouterr().out.startswith("trace-check: OK: ")
    events = read_events(log)
    i = _revoked_ue_decrypts(events)
    assert cli_main(["trace-check", str(_write(tmp_path / "e.jsonl", events))]) == 1
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0].startswith(
        f"trace-check: FORBIDDEN: line {i + 1}: Receive ue={events[i]['ue']}"
    )
    assert f"seq={events[i]['seq']}" in lines[0]
    assert all(len(line) <= MAX_WIDTH for line in lines[1:])  # the tables
    header = next(k for k, line in enumerate(lines) if line.split()[:1] == ["IMSI"])
    assert lines[header + 1].split()[0] == events[i]["ue"]  # the event's UE first
    assert any(line.split()[:1] == ["MKI"] for line in lines)
    assert any(line.split()[:1] == ["seq"] for line in lines)


def test_bad_input_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json}\n{}\n")
    assert cli_main(["trace-check", str(bad)]) == 2
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert cli_main(["trace-check", str(empty)]) == 2
    assert "empty" in capsys.readouterr().err
    with pytest.raises(TraceCheckError, match="no Start event"):
        check_events([_ev("Generate", mki=1)], load_spec().baseline())
    with pytest.raises(TraceCheckError, match="unknown event name"):
        check_events([_start(), _ev("Teleport")], load_spec().baseline())


def _verdict(result: TraceResult) -> tuple[Any, ...]:
    f = result.failure
    return (result.ok, result.explained, None if f is None else (f.line, f.why))


def test_mutation_catalogue(demo: tuple[dict[str, Any], Path]) -> None:
    """Bug edits derived from the demo's log are each rejected (a verdict, never bad
    input) at or after the edit; benign edits are each accepted.  The streaming checker
    (``check_events``, read from a one-shot iterator) gives the full-state reference
    checker's verdict on the log and on every edit: the same event, the same reason."""
    _, log = demo
    events = read_events(log)
    profile = load_spec().baseline()
    bugs, benign = list(bug_edits(events)), list(benign_edits(events))
    verdicts: dict[str, TraceResult] = {}
    differ = []
    for edit in [*bugs, *benign, Edit("", "unedited", events, 0)]:
        ours = verdicts[edit.label] = check_events(iter(edit.events), profile)
        reference = check_events_reference(edit.events, profile)
        if _verdict(ours) != _verdict(reference):
            differ.append((edit.label, _verdict(ours), _verdict(reference)))
    assert differ == []
    assert verdicts["unedited"].ok
    per_category = Counter(b.category for b in bugs)
    assert len(bugs) >= 30 and len(benign) >= 5
    assert set(per_category) == {
        "auth",
        "rollback",
        "foreign_mki",
        "receive_mki",
        "early_activation",
        "revoked",
        "unsubscribed",
        "duplicate",
        "deleted",
        "reordered",
        "time",
    }, per_category
    accepted = []
    for edit in bugs:
        verdict = verdicts[edit.label]  # TraceCheckError would have been exit 2
        if verdict.ok:
            accepted.append(edit.label)
            continue
        assert verdict.failure is not None
        assert verdict.failure.line - 1 >= edit.touched, (edit.label, verdict.render())
    assert accepted == []
    rejected = [e.label for e in benign if not verdicts[e.label].ok]
    assert rejected == []


# -- small hand-written logs ----------------------------------------------------------------

SVC = "239.255.0.1"


def _ev(event: str, **kw: Any) -> dict[str, Any]:
    base = {
        "t": 0.0,
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


def _start(grace: float | None = 0.2, options: dict[str, str] | None = None) -> dict[str, Any]:
    extra: dict[str, Any] = {"profile": dict(load_spec().profile(options or {}))}
    if grace is not None:
        extra["fetch_grace"] = grace
    return _ev("Start", service=None, reason="bmsc", **extra)


def _fetch(
    ue: str, t: float, mkis: list[int], ctr: int, due: float, auth: bool = True
) -> list[dict[str, Any]]:
    out = [_ev("Authenticate", ue=ue, t=t)] if auth else []
    common = {"ue": ue, "mki": mkis[-1], "mkis": mkis, "counter": ctr, "fetch_time": due}
    return [
        *out,
        _ev("Deliver", t=t, **common),
        _ev("Register", t=t + 0.01, source="ue", **common),
    ]


def _late_fetch_log(activate_at: float, grace: float | None = 0.2) -> list[dict[str, Any]]:
    """UE A fetches MKIs 1 and 2 (fetch time 10.0); MKI 2 is activated, MKI 3 generated,
    and MKI 3 activated at ``activate_at`` although A never fetched it."""
    return [
        _start(grace),
        _ev("Generate", mki=1),
        _ev("Activate", mki=1),
        _ev("Generate", mki=2),
        _ev("Subscribe", ue="A"),
        *_fetch("A", 1.0, [1, 2], 1, 10.0),
        _ev("Activate", mki=2, t=5.0),
        _ev("Generate", mki=3, t=5.0),
        _ev("Activate", mki=3, t=activate_at),
    ]


def test_late_fetch_honours_the_fetch_grace() -> None:
    profile = load_spec().baseline()
    within = check_events(_late_fetch_log(10.1), profile)
    assert not within.ok and within.failure is not None
    assert (
        within.failure.line == 11
        and "within the BM-SC's fetch grace of 0.2 s" in within.failure.why
    )
    lenient = check_events(_late_fetch_log(10.1), profile, strict_timing=False)
    assert lenient.ok and [lf.ue for lf in lenient.late_fetches] == ["A"]
    past = check_events(_late_fetch_log(10.3), profile)
    assert past.ok and past.to_json()["late_fetches"][0]["late_by"] == pytest.approx(0.3)
    assert "late fetch: UE A" in past.render()
    unlogged = check_events(_late_fetch_log(10.3, grace=None), profile)
    assert not unlogged.ok and unlogged.failure is not None
    assert "no Start event logs the BM-SC's fetch grace" in unlogged.failure.why
    assert check_events(_late_fetch_log(10.3, grace=None), profile, strict_timing=False).ok


def _two_fetches(second_auth: bool, **options: str) -> list[dict[str, Any]]:
    return [
        _start(options=options),
        _ev("Generate", mki=1),
        _ev("Activate", mki=1),
        _ev("Generate", mki=2),
        _ev("Subscribe", ue="A"),
        *_fetch("A", 1.0, [1, 2], 1, 2.0),
        *_fetch("A", 2.0, [1, 2], 2, 3.0, auth=second_auth),
    ]


def test_reused_authentication_only_where_the_profile_allows_it() -> None:
    reuse = load_spec().profile({"second_service_auth": "authorise_only"})
    verdict = check_events(_two_fetches(False, second_service_auth="authorise_only"), reuse)
    assert verdict.ok and verdict.reused_auth == [8]
    assert "1 deliveries reused an earlier authentication" in verdict.render()
    strict = check_events(_two_fetches(False), load_spec().baseline())
    assert not strict.ok and strict.failure is not None and strict.failure.line == 9
    assert "no successful Authenticate" in strict.failure.why
    assert check_events(_two_fetches(True), load_spec().baseline()).reused_auth == []


def test_declared_profile_is_compared_with_the_checked_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _write(tmp_path / "p.jsonl", _two_fetches(True, activation="immediate"))
    assert cli_main(["trace-check", str(log)]) == 1
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("trace-check: FORBIDDEN: line 1: Start")
    assert "activation=immediate (checked: after_fetch_window)" in first
    assert cli_main(["trace-check", str(log), "-o", "activation=immediate"]) == 0


def test_register_must_match_a_delivery() -> None:
    profile = load_spec().baseline()
    events = _two_fetches(True)
    assert check_events(events, profile).ok
    unpaired = [*events, {**events[-1], "t": 3.0}]
    verdict = check_events(unpaired, profile)
    assert not verdict.ok and verdict.failure is not None and verdict.failure.line == 12
    assert "no Deliver to this UE and service" in verdict.failure.why
    late_ft = [*events[:-1], {**events[-1], "fetch_time": 3.5}]
    verdict = check_events(late_ft, profile)
    assert not verdict.ok and verdict.failure is not None
    assert "fetch_time 3.5 (Deliver: 3.0)" in verdict.failure.why


def _answer_lost_then_refetch(retry: dict[str, Any] | None) -> list[dict[str, Any]]:
    """UE A fetches once; the BM-SC delivers again, but that answer never reaches A (the
    worker was killed after committing it); A logs ``retry`` (or nothing) and fetches anew."""
    lost = [
        _ev("Authenticate", ue="A", t=2.0),
        _ev("Deliver", t=2.0, ue="A", mki=2, mkis=[1, 2], counter=2, fetch_time=3.0),
    ]
    if retry is not None:
        lost.append(_ev("Retry", t=2.1, ue="A", source="ue", ok=False, **retry))
    return [
        _start(),
        _ev("Generate", mki=1),
        _ev("Activate", mki=1),
        _ev("Generate", mki=2),
        _ev("Subscribe", ue="A"),
        *_fetch("A", 1.0, [1, 2], 1, 2.0),
        *lost,
        *_fetch("A", 2.5, [1, 2], 3, 3.5),
    ]


def test_a_registration_answered_but_never_received_is_the_ues_retry() -> None:
    """A UE that logs that its registration request got no answer (``Retry``, reason
    ``unreachable``, request ``register``) has said what became of a delivery made in
    answer to it: nothing installed.  Any other record, or none, leaves the BM-SC's next
    delivery without an outcome for the previous one: refused, nothing is made up."""
    profile = load_spec().baseline()
    unanswered = {"reason": "unreachable", "request": "register", "attempt": 1, "delay": 0.1}
    assert check_events(_answer_lost_then_refetch(unanswered), profile).ok
    for retry in (
        None,
        {**unanswered, "request": "verification"},  # the MIKEY response, not the request
        {**unanswered, "reason": "server_error", "status": 503},  # an answer did arrive
    ):
        verdict = check_events(_answer_lost_then_refetch(retry), profile)
        assert not verdict.ok and verdict.failure is not None, retry
        assert "the UE logged no outcome of this delivery" in verdict.failure.why
        assert verdict.failure.line == 10


def _nested_fetches(inner: int) -> list[dict[str, Any]]:
    """UE A registers; UE B registers next and then re-fetches ``inner`` times (each at
    its fetch time) before A re-fetches.  B's re-fetches each need a tick of their own,
    all while the clock may not pass A's fetch time."""
    ctr = {"A": 0, "B": 0}

    def fetch(ue: str) -> list[dict[str, Any]]:
        ctr[ue] += 1
        return _fetch(ue, 0.0, [1, 2], ctr[ue], 1.0)

    out = [
        _start(),
        _ev("Generate", mki=1),
        _ev("Activate", mki=1),
        _ev("Generate", mki=2),
        _ev("Subscribe", ue="A"),
        _ev("Subscribe", ue="B"),
        *fetch("A"),
        *fetch("B"),
    ]
    for _ in range(inner):
        out += fetch("B")
    out += fetch("A")
    return [
        {**e, "t": float(i)} | ({"source": "ue"} if e["event"] == "Register" else {})
        for i, e in enumerate(out)
    ]


def test_refetches_nested_in_a_long_fetch_delay_are_explained() -> None:
    """The model lets the BM-SC set any future fetch time, so any number of re-fetches of
    one UE fit inside another UE's fetch delay (real logs nest several); the timing
    search is exact, so even a search width of 1 cuts nothing."""
    profile = load_spec().baseline()
    for inner in (FETCH_WINDOW, FETCH_WINDOW + 1, 3 * FETCH_WINDOW):
        verdict = check_events(_nested_fetches(inner), profile, width=1)
        assert verdict.ok, verdict.render()
        assert verdict.pruned == 0


# -- the BM-SC's SRTP packets on the wire (--pcap) ---------------------------------------------


def _udp_frames(pcap: Path) -> int:
    """The capture's UDP frames, counted from the bytes (Ethernet, IPv4 protocol 17)."""
    data = pcap.read_bytes()
    offset, count = 24, 0
    while offset < len(data):
        caplen = int.from_bytes(data[offset + 8 : offset + 12], "little")
        frame = data[offset + 16 : offset + 16 + caplen]
        count += frame[12:14] == b"\x08\x00" and frame[14 + 9] == 17
        offset += 16 + caplen
    return count


def _wire_check(
    log: Path, pcap: Path, keys: Any = None
) -> TraceResult:  # keys: a KeySource or None
    profile = load_spec().profile({})
    return check_events(iter_events(log), profile, wire=WireCheck(pcap, profile, keys=keys))


def test_streamer_packets_explained_with_their_keys(demo: tuple[dict[str, Any], Path]) -> None:
    summary, log = demo
    pcap = Path(summary["pcap"])
    result = _wire_check(log, pcap, keys_from_store(summary["db"]))
    assert result.ok, result.render()
    wire = result.wire
    assert wire is not None
    sends = [e for e in read_events(log) if e["event"] == "Send"]
    assert wire["sends_on_wire"] + wire["sends_outside_capture"] == len(sends)
    assert wire["sends_on_wire"] > len(sends) // 2
    udp = _udp_frames(pcap)
    assert udp > 0 and wire["packets_matched"] == wire["keys_checked"] == udp
    assert "authenticated and decrypted under their TEK's key" in result.render()


@pytest.fixture(scope="module")
def wire_edits(
    demo: tuple[dict[str, Any], Path],
) -> tuple[list[Datagram], dict[int, tuple[bytes, bytes]], dict[int, dict[str, Any]], int]:
    """The demo's SRTP packets, its TEK keys by MKI, its Send events by sequence number,
    and the position of a packet in the middle (whose TEK has a successor generated)."""
    summary, log = demo
    packets = list(udp_datagrams(summary["pcap"]))
    store = Store(summary["db"])
    try:
        keys = {t.mki: (t.key, t.salt) for t in store.teks(summary["service"])}
    finally:
        store.close()
    sends = {e["seq"]: e for e in read_events(log) if e["event"] == "Send"}
    mid = len(packets) // 2
    while sends[int.from_bytes(packets[mid].payload[2:4], "big")]["mki"] + 1 not in keys:
        mid -= 1
    return packets, keys, sends, mid


def _run_edit(log: Path, tmp_path: Path, packets: list[Datagram]) -> TraceResult:
    pcap = tmp_path / "edited.pcap"
    write_pcap(pcap, [Packet(d.timestamp, d.src_port, d.dst_port, d.payload) for d in packets])
    return _wire_check(log, pcap)


def _reprotect(d: Datagram, send: dict[str, Any], keys: Any, key_mki: int, wire_mki: int) -> bytes:
    """The packet decrypted under its own TEK and protected again under TEK ``key_mki``'s
    key, carrying MKI ``wire_mki``, at the same index."""
    ssrc, roc = int.from_bytes(d.payload[8:12], "big"), send["index"] >> 16
    own = MasterKey(send["mki"].to_bytes(4, "big"), *keys[send["mki"]])
    rx = SrtpReceiver(SrtpPolicy(), [own])
    rx.set_roc(ssrc, roc)
    rtp = rx.unprotect(d.payload)
    tx = SrtpSender(SrtpPolicy(), [MasterKey(wire_mki.to_bytes(4, "big"), *keys[key_mki])])
    tx.switch_to(wire_mki.to_bytes(4, "big"))
    tx.set_roc(ssrc, roc)
    return tx.protect(rtp)


def test_streamer_capture_edits_rejected(
    demo: tuple[dict[str, Any], Path],
    wire_edits: tuple[list[Datagram], dict[int, tuple[bytes, bytes]], dict[int, Any], int],
    tmp_path: Path,
) -> None:
    """Each edit names the edited packet (frame numbers of the rewritten capture count
    its packets from 1); the unedited rewrite is explained."""
    _, log = demo
    packets, keys, sends, mid = wire_edits
    d = packets[mid]
    seq = int.from_bytes(d.payload[2:4], "big")
    send = sends[seq]
    active, other = send["mki"], send["mki"] + 1
    frame = mid + 1

    assert _run_edit(log, tmp_path, packets).ok

    def rejected(edited: list[Datagram]) -> str:
        result = _run_edit(log, tmp_path, edited)
        assert not result.ok and result.failure is not None
        return result.failure.why

    def replaced(payload: bytes) -> list[Datagram]:
        return [*packets[:mid], d._replace(payload=payload), *packets[mid + 1 :]]

    changed = d.payload[:-14] + other.to_bytes(4, "big") + d.payload[-10:]
    why = rejected(replaced(changed))
    assert f"frame {frame} (seq {seq}, MKI {other}" in why and "not active" in why

    why = rejected([*packets[:mid], *packets[mid + 1 :]])  # dropped
    assert f"seq {seq}" in why and (
        "no packet of it reached the UE's port" in why or "missing from the wire" in why
    )

    why = rejected([*packets[: mid + 1], d, *packets[mid + 1 :]])  # repeated
    assert f"frame {frame + 1} (seq {seq}, MKI {active}" in why and f"frame {frame}:" in why

    why = rejected(replaced(_reprotect(d, send, keys, other, other)))
    assert f"frame {frame} (seq {seq}, MKI {other}" in why and "not active" in why

    # the active TEK's MKI on a packet protected under another TEK's key: only the key
    # check sees it (without keys the capture is explained)
    wrong_key = replaced(_reprotect(d, send, keys, other, active))
    pcap = tmp_path / "wrong_key.pcap"
    write_pcap(pcap, [Packet(x.timestamp, x.src_port, x.dst_port, x.payload) for x in wrong_key])
    assert _wire_check(log, pcap).ok
    result = _wire_check(log, pcap, lambda service, mki: keys.get(mki))
    assert not result.ok and result.failure is not None
    assert f"frame {frame} (seq {seq}, MKI {active}" in result.failure.why
    assert f"does not authenticate under the key of MKI {active}" in result.failure.why


def test_trace_check_pcap_cli(
    demo: tuple[dict[str, Any], Path],
    wire_edits: tuple[list[Datagram], dict[int, tuple[bytes, bytes]], dict[int, Any], int],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--pcap`` and ``--db`` on the command line: 0, 1 with the packet named in the JSON
    verdict, 2 for a file that is not a capture and for ``--db`` without ``--pcap``."""
    summary, log = demo
    packets, _, _, mid = wire_edits
    args = ["trace-check", str(log), "--pcap", summary["pcap"], "--db", summary["db"]]
    assert cli_main(args) == 0
    assert "SRTP packets matched" in capsys.readouterr().out
    edited = tmp_path / "dup.pcap"
    write_pcap(
        edited,
        [Packet(x.timestamp, x.src_port, x.dst_port, x.payload) for x in packets[: mid + 1]]
        + [Packet(x.timestamp, x.src_port, x.dst_port, x.payload) for x in packets[mid:]],
    )
    assert cli_main(["trace-check", str(log), "--pcap", str(edited), "--json"]) == 1
    verdict = json.loads(capsys.readouterr().out)
    assert f"frame {mid + 2} " in verdict["first_unexplained"]["why"]
    assert verdict["first_unexplained"]["event"]["event"] == "Send"
    not_pcap = tmp_path / "log.pcap"
    not_pcap.write_bytes(log.read_bytes()[:4096])
    assert cli_main(["trace-check", str(log), "--pcap", str(not_pcap)]) == 2
    assert "is not that of a libpcap capture" in capsys.readouterr().err
    assert cli_main(["trace-check", str(log), "--db", summary["db"]]) == 2
    assert "--db" in capsys.readouterr().err

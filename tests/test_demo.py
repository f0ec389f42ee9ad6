"""``mbmssec demo``: the acceptance properties, asserted from its event log and pcap.

The demo's own checks are not trusted here: the event log is read back and the three
properties of the acceptance criteria are evaluated by code written in this file.  The
pcap file is handed to tshark (an independent dissector): it must find the Digest AKA
challenges naming AKAv1-MD5, the MIKEY messages in the HTTP bodies and the RTP/SRTP
stream, and the MKIs carried in the captured SRTP packets must be exactly the TEKs the
log says were active.  The streamer's packets in the pcap are also checked against the
model (``trace-check --pcap``): each matched with its ``Send``, carrying the MKI of the
model's active TEK, and authenticating under that TEK's key in the BM-SC's database.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mbmssec.cli import main as cli_main
from mbmssec.commands.demo import DemoOptions, run_demo
from mbmssec.impl.service.events import MODEL_EVENTS, OTHER_EVENTS, iter_events, read_events
from mbmssec.refinement.tracecheck import check_events
from mbmssec.refinement.wirecheck import WireCheck, keys_from_store
from mbmssec.spec.loader import load_spec

pytestmark = pytest.mark.slow


def _run_cli_demo(tmp_path: Path, *args: str) -> tuple[int, dict[str, Any], Path, Path]:
    log, pcap = tmp_path / "demo.jsonl", tmp_path / "demo.pcap"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mbmssec",
            "demo",
            "--json",
            "--log",
            str(log),
            "--pcap",
            str(pcap),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, json.loads(proc.stdout), log, pcap


@pytest.fixture(scope="module")
def demo20(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any], Path, Path]:
    return _run_cli_demo(tmp_path_factory.mktemp("demo20"), "--ues", "20")


def test_demo_exit_status_and_json(demo20: tuple[int, dict[str, Any], Path, Path]) -> None:
    code, summary, _, _ = demo20
    assert code == 0, summary["checks"]
    assert summary["ok"] and summary["ues"] == 20 and len(summary["ue_summary"]) == 20
    assert all(c["ok"] for c in summary["checks"].values())
    rows = {r["ue"]: r for r in summary["ue_summary"]}
    assert rows[summary["roles"]["revoked"]]["state"] == "refused"
    assert set(summary["http_statuses"]) <= {"200", "401", "403"}


def test_event_log_format(demo20: tuple[int, dict[str, Any], Path, Path]) -> None:
    _, _, log, _ = demo20
    events = read_events(log, allow_partial_tail=False)  # validates the required keys
    names = {e["event"] for e in events}
    assert names <= MODEL_EVENTS | OTHER_EVENTS
    assert {
        "Subscribe",
        "Revoke",
        "Authenticate",
        "Register",
        "Generate",
        "Activate",
        "Send",
        "Receive",
        "LoseCoverage",
        "RegainCoverage",
        "Deliver",
        "Resync",
    } <= names
    for e in events:
        if e["event"] == "Register" and e["ok"]:
            assert e["mkis"] and e["mki"] == e["mkis"][-1]
        if e["mki"] is not None and e["service"] is not None:
            assert e["tek"] == f"{e['service']}/{e['mki']}"


def _acceptance(events: list[dict[str, Any]]) -> dict[str, bool]:
    """The acceptance properties, evaluated independently of the demo's own code."""
    start = next(e for e in events if e["event"] == "Start" and e.get("source") == "demo")
    revoked, offline = start["roles"]["revoked"], start["roles"]["coverage"]
    end = events[-1]["t"]
    acts = [(e["t"], e["mki"]) for e in events if e["event"] == "Activate"]
    revoke_t = next(e["t"] for e in events if e["event"] == "Revoke")
    lost = next(e["t"] for e in events if e["event"] == "LoseCoverage")
    back = next(e["t"] for e in events if e["event"] == "RegainCoverage")
    ues = {e["ue"] for e in events if e["event"] == "Subscribe"}
    decrypted: dict[str, set[int]] = {}
    for e in events:
        if e["event"] == "Receive" and e["ok"]:
            decrypted.setdefault(e["ue"], set()).add(e["mki"])
    rekeys = [(t, m) for t, m in acts[1:] if t < end - 0.3]
    every = all(
        m in decrypted.get(ue, set())
        for t, m in rekeys
        for ue in ues
        if not (ue == revoked and t > revoke_t) and not (ue == offline and lost <= t <= back)
    )
    after_revoke = {m for t, m in acts if t > revoke_t}
    locked_out = bool(after_revoke) and not (after_revoke & decrypted.get(revoked, set()))
    mine = [e for e in events if e["ue"] == offline and e["t"] > back]
    i_unknown = next(
        i for i, e in enumerate(mine) if e["event"] == "Receive" and e["reason"] == "unknown_mki"
    )
    i_reg = next(
        i for i, e in enumerate(mine) if e["event"] == "Register" and e["trigger"] == "unknown_mki"
    )
    i_ok = next(i for i, e in enumerate(mine) if i > i_reg and e["event"] == "Receive" and e["ok"])
    return {
        "two_rekeys": len(rekeys) >= 2,
        "every_authorised_ue": every,
        "revoked_locked_out": locked_out,
        "unknown_mki_recovery": i_unknown < i_reg < i_ok,
        "offline_missed_a_rekey": any(lost < t < back for t, _ in acts),
    }


def test_acceptance_from_the_log(demo20: tuple[int, dict[str, Any], Path, Path]) -> None:
    _, _, log, _ = demo20
    assert _acceptance(read_events(log)) == dict.fromkeys(
        (
            "two_rekeys",
            "every_authorised_ue",
            "revoked_locked_out",
            "unknown_mki_recovery",
            "offline_missed_a_rekey",
        ),
        True,
    )


def test_streamer_packets_checked_against_the_model(
    demo20: tuple[int, dict[str, Any], Path, Path],
) -> None:
    """Every SRTP packet the BM-SC's streamer sent in the demo is explained: its Send, the
    model's active TEK's MKI, and its key (from the BM-SC's store, never in the log)."""
    _, summary, log, pcap = demo20
    profile = load_spec().profile({})
    wire = WireCheck(pcap, profile, keys=keys_from_store(summary["db"]))
    result = check_events(iter_events(log), profile, wire=wire)
    assert result.ok, result.render()
    assert result.wire is not None
    counts = dict(result.wire)
    events = read_events(log)
    sends = sum(e["event"] == "Send" for e in events)
    ues = sum(e["event"] == "Subscribe" for e in events)
    assert counts["sends_on_wire"] + counts["sends_outside_capture"] == sends
    assert counts["ports"] == ues == 20
    # once every UE has registered, each Send reaches all 20 ports
    assert counts["packets_matched"] > 15 * counts["sends_on_wire"]
    assert counts["keys_checked"] == counts["packets_matched"] == counts["udp_datagrams"]


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_pcap_dissected_by_tshark(demo20: tuple[int, dict[str, Any], Path, Path]) -> None:
    _, _, log, pcap = demo20

    def fields(display: str, *names: str, heuristic: bool = False) -> list[list[str]]:
        cmd = ["tshark", "-r", str(pcap), "-Y", display, "-T", "fields"]
        if heuristic:
            cmd += ["--enable-heuristic", "rtp_udp"]
        for name in names:
            cmd += ["-e", name]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)
        return [line.split("\t") for line in out.stdout.splitlines() if line]

    challenges = fields('http.www_authenticate contains "AKAv1-MD5"', "http.response.code")
    assert challenges and all(row[0] == "401" for row in challenges)
    assert fields("mikey.type == 0", "mikey.type")  # pre-shared-key I_MESSAGEs
    rtp = fields("rtp", "rtp.ssrc", "rtp.seq", "udp.payload", heuristic=True)
    assert len({row[0] for row in rtp}) == 1 and len(rtp) > 1000
    # The MKI of each captured SRTP packet (4 octets before the 10-octet tag) is the MKI
    # the log says the BM-SC sent that sequence number under.
    sent = {e["seq"]: e["mki"] for e in read_events(log) if e["event"] == "Send"}
    mkis = {int(row[1]): int(row[2][-28:-20], 16) for row in rtp}
    assert mkis and all(sent[seq] == mki for seq, mki in mkis.items())
    activated = {e["mki"] for e in read_events(log) if e["event"] == "Activate"}
    assert set(mkis.values()) <= activated


def test_revoked_ue_not_locked_out_without_leave_rekey(tmp_path: Path) -> None:
    profile = load_spec().profile({"membership_rekey": "never"})
    options = DemoOptions(ues=4, duration=3.0, period=0.5, log=tmp_path / "never.jsonl")
    summary = asyncio.run(run_demo(options, profile))
    assert not summary["ok"]
    assert not summary["checks"]["revoked_locked_out"]["ok"]
    assert summary["checks"]["coverage_recovery"]["ok"]
    assert not _acceptance(read_events(tmp_path / "never.jsonl"))["revoked_locked_out"]


def test_demo_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["demo", "--ues", "2"]) == 2
    assert "--ues must be" in capsys.readouterr().err
    assert cli_main(["demo", "--option", "activation=after_acks"]) == 2
    assert "requires mikey_response" in capsys.readouterr().err

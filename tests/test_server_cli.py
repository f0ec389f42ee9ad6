"""``mbmssec serve``, ``mbmssec ue`` and ``mbmssec bmsc-admin`` from the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_server_crash import Serve, free_port

from mbmssec.cli import main as cli_main
from mbmssec.impl.service.events import read_events

pytestmark = pytest.mark.slow

K = "465b5ce8b199b49faa5f0a2ee238a6bc"
OPC = "cd63cb71954a9f4e48a5994e37a02baf"
UE = "001010000000001"
S = "239.255.0.1"


def _secrets(path: Path, k: str = K, opc: str = OPC, mode: int = 0o600) -> str:
    """A secrets file for ``--secrets`` (K and OPc in TOML) with the given mode."""
    path.write_text(f'k = "{k}"\nopc = "{opc}"\n')
    path.chmod(mode)
    return str(path)


def _cmdline(pid: int) -> str:
    """What every local user sees of a process's command line (``ps``), once the
    process runs the program (just after the fork it may still be empty)."""
    deadline = time.monotonic() + 10
    while True:
        seen = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        if "mbmssec" in seen or time.monotonic() > deadline:
            return seen
        time.sleep(0.01)


def _admin(capsys: pytest.CaptureFixture[str], db: Path, *args: str) -> tuple[int, str, str]:
    code = cli_main(["bmsc-admin", "--db", str(db), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_admin_on_the_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "b.db"
    assert _admin(capsys, db, "add-subscriber", UE, "--secrets", _secrets(tmp_path / "k"))[0] == 0
    code, out, _ = _admin(capsys, db, "add-service", S, "--period", "0.5")
    assert code == 0 and [e["event"] for e in json.loads(out)] == [
        "Generate",
        "Activate",
        "Generate",
    ]
    code, out, _ = _admin(capsys, db, "subscribe", UE, S)
    assert code == 0 and json.loads(out)[0]["event"] == "Subscribe"
    code, out, _ = _admin(capsys, db, "show")
    state = json.loads(out)
    assert state["subscriptions"] == [{"ue": UE, "service": S, "subscribed": True}]
    assert _admin(capsys, db, "revoke", UE, S)[0] == 0
    bad = _secrets(tmp_path / "bad", k="zz")
    code, _, err = _admin(capsys, db, "add-subscriber", "x", "--secrets", bad)
    assert code == 2 and f"k in {bad} must be hex" in err
    code, _, err = _admin(capsys, db, "subscribe", "00199", S)
    assert code == 2 and "unknown subscriber 00199" in err
    code, _, err = _admin(capsys, db, "--option", "activation=immediate", "show")
    assert code == 2 and "different profile" in err
    # Every change reached the BM-SC's event log (the one serve appends to by default),
    # marked as bmsc-admin's; the refused ones left nothing there.
    logged = read_events(tmp_path / "b.db.events.jsonl")
    assert [e["event"] for e in logged] == [
        "Provision",
        "Generate",
        "Activate",
        "Generate",
        "Subscribe",
        "Revoke",
    ]
    assert {e["source"] for e in logged} == {"admin"}
    assert K not in (tmp_path / "b.db.events.jsonl").read_text()


def test_secrets_never_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """K and OPc come from a 0600 TOML file or standard input; a file others may read,
    or one that is not the expected TOML, is refused (exit 2) without showing a key."""
    db = tmp_path / "b.db"
    keys = _secrets(tmp_path / "keys")
    for flag in ("--k", "--opc"):  # the old flags are gone
        admin = ["bmsc-admin", "--db", str(db), "add-subscriber", UE, "--secrets", keys]
        assert cli_main([*admin, flag, K]) == 2
        assert f"unrecognized arguments: {flag}" in capsys.readouterr().err
        ue = ["ue", "--url", "http://127.0.0.1:9", "--ue", UE, "--service", S]
        assert cli_main([*ue, "--secrets", keys, flag, K]) == 2
        assert f"unrecognized arguments: {flag}" in capsys.readouterr().err
    exposed = _secrets(tmp_path / "exposed", mode=0o640)
    cases = [
        (exposed, f"chmod 600 {exposed}"),
        (_secrets(tmp_path / "short", opc=OPC[:-2]), "must be 16 octets"),
        (_secrets(tmp_path / "nohex", k="g" * 32), "must be hex"),
        (str(tmp_path / "absent"), "cannot read"),
    ]
    (tmp_path / "toml").write_text(f"k = {K}\n")
    (tmp_path / "toml").chmod(0o600)
    cases.append((str(tmp_path / "toml"), "is not TOML"))
    (tmp_path / "extra").write_text(f'k = "{K}"\nopc = "{OPC}"\nsqn = 5\n')
    (tmp_path / "extra").chmod(0o600)
    cases.append((str(tmp_path / "extra"), "unknown key(s) sqn"))
    for path, fragment in cases:
        code, _, err = _admin(capsys, db, "add-subscriber", UE, "--secrets", path)
        assert code == 2 and fragment in err, (path, err)
        assert K not in err and OPC not in err and K[:8] not in err
        ue = ["ue", "--url", "http://127.0.0.1:9", "--ue", UE, "--service", S]
        assert cli_main([*ue, "--secrets", path, "--duration", "0.1"]) == 2
        assert fragment in capsys.readouterr().err
    assert not db.exists() or not json.loads(_admin(capsys, db, "show")[1])["subscribers"]
    # Standard input.
    monkeypatch.setattr("sys.stdin", _Stdin(f'k = "{K}"\nopc = "{OPC}"\n'.encode()))
    assert _admin(capsys, db, "add-subscriber", UE, "--secrets", "-")[0] == 0
    assert json.loads(_admin(capsys, db, "show")[1])["subscribers"][0]["ue"] == UE


class _Stdin:
    """Standard input holding ``data`` (what ``--secrets -`` reads)."""

    def __init__(self, data: bytes) -> None:
        import io

        self.buffer = io.BytesIO(data)


def test_serve_refuses_a_database_others_can_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "b.db"
    assert _admin(capsys, db, "add-subscriber", UE, "--secrets", _secrets(tmp_path / "k"))[0] == 0
    assert db.stat().st_mode & 0o777 == 0o600
    db.chmod(0o644)
    for command in (["serve", "--db", str(db)], ["bmsc-admin", "--db", str(db), "show"]):
        assert cli_main(command) == 2
        err = capsys.readouterr().err
        assert f"{db} (mode 0644): readable by group or others" in err
        assert f"chmod 600 {db}" in err
    assert not (tmp_path / "b.db.admin-token").exists()  # nothing started
    db.chmod(0o600)
    wal = tmp_path / "b.db-wal"
    wal.write_bytes(b"")
    wal.chmod(0o604)
    assert cli_main(["serve", "--db", str(db)]) == 2
    assert f"chmod 600 {wal}" in capsys.readouterr().err


def test_serve_refuses_a_non_loopback_host(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["serve", "--db", str(tmp_path / "b.db"), "--host", "0.0.0.0"]) == 2
    assert "loopback" in capsys.readouterr().err
    assert cli_main(["serve", "--db", str(tmp_path / "b.db"), "--fetch-window", "1.5"]) == 2
    assert "fetch_window" in capsys.readouterr().err


# The processes run the two options the BM-SC implements with extra parts: a common KEK,
# and TEK delivery over HTTPS with the CA that serve creates at its first start.
OPTIONS = ("--option", "kek_scope=common", "--option", "tek_protection=tls")


def test_serve_and_ue_processes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Under the umask 000, every file made without care would be world-readable; the
    # BM-SC's (database, -wal, -shm, event log, admin token, TLS material) must not be.
    previous = os.umask(0)
    try:
        _serve_and_ue(tmp_path, capsys)
    finally:
        os.umask(previous)


def _serve_and_ue(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "b.db"
    keys = _secrets(tmp_path / "ue.toml")
    assert _admin(capsys, db, *OPTIONS, "add-subscriber", UE, "--secrets", keys)[0] == 0
    assert _admin(capsys, db, *OPTIONS, "add-service", S, "--period", "0.5")[0] == 0
    server = Serve(db, free_port(), tmp_path / "bmsc.jsonl", "--period", "0.5", *OPTIONS)
    ca = server.ready["ca"]
    assert server.url.startswith("https://") and ca == str(tmp_path / "b.db.tls" / "ca.pem")
    assert (Path(ca).parent / "server.key").stat().st_mode & 0o777 == 0o600
    admin = ["bmsc-admin", "--url", server.ready["admin_url"]]
    token = ["--token-file", server.ready["admin_token_file"]]
    assert server.ready["admin_token_file"] == str(tmp_path / "b.db.admin-token")
    try:
        code = cli_main([*admin, "show"])
        assert code == 2 and "needs --token-file" in capsys.readouterr().err
        code = cli_main([*admin, *token, "show"])
        assert code == 2 and "needs --ca" in capsys.readouterr().err
        # Subscribe through the running BM-SC's admin listener.
        code = cli_main([*admin, *token, "--ca", ca, "subscribe", UE, S])
        assert code == 0 and json.loads(capsys.readouterr().out)["ok"]
        # K and OPc reach the UE process on its standard input, never in its argv.
        ue = subprocess.Popen(
            [
                *(sys.executable, "-m", "mbmssec", "ue", "--url", server.url, "--ue", UE),
                *("--secrets", "-", "--service", S, "--duration", "2.5", "--json"),
                *("--log", str(tmp_path / "ue.jsonl"), "--ca", ca, *OPTIONS),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert ue.stdin is not None
        ue.stdin.write(Path(keys).read_text())
        ue.stdin.flush()
        seen = _cmdline(ue.pid)
        assert "ue --url" in seen and K not in seen and OPC not in seen
        out, err = ue.communicate(timeout=60)  # closes its standard input
        assert ue.returncode == 0, err
        row = json.loads(out)[0]
        assert row["registrations"] >= 3 and row["decrypted"] > 50
        code = cli_main([*admin, *token, "--ca", ca, "show"])
        state = json.loads(capsys.readouterr().out)
        assert code == 0 and state["registrations"][0]["ue"] == UE
        # Every file and folder the BM-SC made is its owner's only, -wal and -shm included.
        made = sorted(p for p in tmp_path.rglob("*") if p.name != "ue.toml")
        names = {p.name for p in made}
        assert {"b.db", "b.db-wal", "b.db-shm", "bmsc.jsonl", "b.db.admin-token"} <= names
        assert {"ca.pem", "server.key", "server.pem", "ue.jsonl"} <= names
        loose = [f"{p} {p.stat().st_mode & 0o777:o}" for p in made if p.stat().st_mode & 0o077]
        assert loose == []
    finally:
        assert server.stop() == 0
    for text in (out, err, (tmp_path / "bmsc.jsonl").read_text()):
        assert K not in text and OPC not in text
    wrong = subprocess.run(
        [
            *(sys.executable, "-m", "mbmssec", "ue", "--url", "http://192.0.2.1:1"),
            *("--ue", UE, "--secrets", keys, "--service", S, "--duration", "0.1"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert wrong.returncode == 2 and "loopback only" in wrong.stderr


def test_trace_check_of_the_servers_own_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The server's log is complete: changes made with ``bmsc-admin --db`` before and
    while it runs, and through its admin listener, are all in it, so ``trace-check``
    explains the whole log of a UE's run, across a restart of the BM-SC."""
    db, log = tmp_path / "b.db", tmp_path / "b.db.events.jsonl"
    ue2 = "001010000000002"
    keys = _secrets(tmp_path / "ue.toml")
    for name in (UE, ue2):
        assert _admin(capsys, db, "add-subscriber", name, "--secrets", keys)[0] == 0
    assert _admin(capsys, db, "add-service", S, "--period", "0.5")[0] == 0
    assert _admin(capsys, db, "subscribe", UE, S)[0] == 0
    port = free_port()
    # The UE process starts with the BM-SC (each takes seconds to start); it retries until
    # the BM-SC listens, and runs until it is stopped by its PID.
    ue = subprocess.Popen(
        [
            *(sys.executable, "-m", "mbmssec", "ue", "--url", f"http://127.0.0.1:{port}"),
            *("--ue", UE, "--secrets", keys, "--service", S, "--log", str(log)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = Serve(db, port, log, "--period", "0.5")
    second: Serve | None = None

    def registered(after: int) -> bool:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            events = read_events(log)
            if any(e["event"] == "Register" and e["ok"] for e in events[after:]):
                return True
            time.sleep(0.05)
        return False

    try:
        seen = _cmdline(ue.pid)
        assert f"--secrets {keys}" in seen and K not in seen and OPC not in seen
        assert registered(0)
        assert _admin(capsys, db, "subscribe", ue2, S)[0] == 0  # on the database, live
        token = ["--token-file", server.ready["admin_token_file"]]
        code = cli_main(
            ["bmsc-admin", "--url", server.ready["admin_url"], *token, "revoke", ue2, S]
        )
        assert code == 0, capsys.readouterr().err
        assert _admin(capsys, db, "add-service", "239.255.0.2", "--period", "0.5")[0] == 0
        time.sleep(0.3)
        assert server.stop() == 0
        second = Serve(db, port, log, "--period", "0.5")
        assert registered(len(read_events(log)))
    finally:
        if ue.poll() is None:
            os.kill(ue.pid, signal.SIGTERM)
        ue.wait(15)
        server.stop()
        if second is not None:
            assert second.stop() == 0
    events = read_events(log)
    names = [(e["event"], e.get("source")) for e in events]
    assert names.count(("Start", "bmsc")) == names.count(("Stop", "bmsc")) == 2
    for change in ("Provision", "Subscribe", "Generate", "Activate"):
        assert (change, "admin") in names, change
    assert ("Revoke", "bmsc") in names and ("Register", "ue") in names
    capsys.readouterr()
    assert cli_main(["trace-check", str(log)]) == 0, capsys.readouterr().out

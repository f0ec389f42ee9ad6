"""Secret files appear whole: racing creators agree on one content, nothing is left over."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from mbmssec.impl.net.server import ensure_admin_token
from mbmssec.impl.service.files import PRIVATE_MODE, create_private


def test_racing_workers_read_the_one_token_written(tmp_path: Path) -> None:
    """Fleet workers started together with one ``--admin-token-file``: whichever creates
    it, every one reads the same full token (none sees the file before its content)."""
    racers, rounds = 6, 150
    for round_ in range(rounds):
        path = tmp_path / f"token-{round_}"
        barrier = threading.Barrier(racers)
        tokens: list[str] = []
        errors: list[BaseException] = []

        def start(
            path: Path = path,
            barrier: threading.Barrier = barrier,
            tokens: list[str] = tokens,
            errors: list[BaseException] = errors,
        ) -> None:
            barrier.wait()
            try:
                tokens.append(ensure_admin_token(path))
            except Exception as exc:  # a thread's exception would otherwise be lost and the
                # test pass: each one is kept and asserted absent below
                errors.append(exc)

        threads = [threading.Thread(target=start) for _ in range(racers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [], f"round {round_}: {errors[0]}"
        assert len(set(tokens)) == 1 and len(tokens) == racers
        assert path.read_text().strip() == tokens[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"token-{i}" for i in range(rounds))


def test_create_private_is_exclusive_and_private(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    create_private(path, b"first")
    assert os.stat(path).st_mode & 0o777 == PRIVATE_MODE
    with pytest.raises(FileExistsError):
        create_private(path, b"second")
    assert path.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["secret"]  # no temporary left behind

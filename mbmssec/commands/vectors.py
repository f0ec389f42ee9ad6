"""``mbmssec vectors``: write the test vectors of the MBMS key management profile.

``mbmssec vectors --out DIR [--seed S] [--json]`` writes the files built by
:func:`mbmssec.impl.protocols.vectors.generate` (MIKEY TEK delivery, SRTP/SRTCP with MKI, Digest
AKA, a capture of the MIKEY messages and a README; format in docs/vectors.md) into
DIR, creating it if needed, and prints what it wrote. The same seed always gives
byte-identical files. Files of other names in DIR are left alone; each file is written
to a temporary name first and then renamed, so a failed run leaves no half-written
vector file behind.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives import hashes

from mbmssec.impl.protocols import vectors
from mbmssec.impl.protocols.vectors import VectorFile, VectorsError


def _seed(text: str) -> int:
    try:
        return vectors.parse_seed(text)
    except VectorsError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _directory(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path names no directory")
    return Path(text)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``vectors`` sub-command."""
    parser = subparsers.add_parser(
        "vectors",
        help="write MIKEY, SRTP/SRTCP and Digest AKA test vectors for other implementations",
        description=(
            "Write test vectors of the MBMS key management profile into DIR: "
            f"{vectors.MIKEY_FILE}, {vectors.SRTP_FILE}, {vectors.DIGEST_FILE}, "
            f"{vectors.PCAP_FILE} (MIKEY on UDP port {vectors.MIKEY_PORT}) and "
            f"{vectors.README_FILE}. The format is documented in docs/vectors.md. "
            "Output is a deterministic function of the seed."
        ),
    )
    parser.add_argument(
        "--out",
        type=_directory,
        required=True,
        metavar="DIR",
        help="directory to write into (created if missing)",
    )
    parser.add_argument(
        "--seed",
        type=_seed,
        default=0,
        metavar="S",
        help="integer seed 0..2^64-1, decimal or 0x-hex (default 0)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run)


def _prepare(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise VectorsError(f"--out {out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VectorsError(f"--out {out}: cannot create directory: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise VectorsError(f"--out {out}: directory is not writable")


def write_files(out: Path, files: Sequence[VectorFile]) -> list[Path]:
    """Write ``files`` into the directory ``out`` (created if missing); return the paths.

    Raises :class:`VectorsError` with the path and the system's reason if ``out`` is
    not a usable directory or a file cannot be written.
    """
    _prepare(out)
    written = []
    for f in files:
        path = out / f.name
        temporary = out / f".{f.name}.tmp"
        try:
            temporary.write_bytes(f.data)
            os.replace(temporary, path)
        except OSError as exc:
            with contextlib.suppress(OSError):  # the original error is the one to report
                temporary.unlink(missing_ok=True)
            raise VectorsError(f"cannot write {path}: {exc.strerror or exc}") from None
        written.append(path)
    return written


def summary(out: Path, seed: int, files: Sequence[VectorFile]) -> dict[str, object]:
    """The JSON summary ``--json`` prints: directory, seed, version and each file."""

    def sha256(data: bytes) -> str:
        h = hashes.Hash(hashes.SHA256())
        h.update(data)
        return h.finalize().hex()

    return {
        "out": str(out),
        "seed": seed,
        "generator_version": vectors.GENERATOR_VERSION,
        "documentation": vectors.DOCUMENTATION,
        "files": [
            {
                "name": f.name,
                "path": str(out / f.name),
                "bytes": len(f.data),
                "items": f.items,
                "sha256": sha256(f.data),
                "summary": f.summary,
            }
            for f in files
        ],
    }


def run(args: argparse.Namespace) -> int:
    """Handler of ``mbmssec vectors``: 0 on success, 2 on bad input (via VectorsError)."""
    out: Path = args.out
    seed: int = args.seed
    files = vectors.generate(seed)
    write_files(out, files)
    if args.json:
        print(json.dumps(summary(out, seed, files), indent=2))
        return 0
    print(
        f"mbmssec vectors {vectors.GENERATOR_VERSION}, seed {seed}: wrote {len(files)} files "
        f"to {out} (format: {vectors.DOCUMENTATION})"
    )
    width = max(len(f.name) for f in files)
    for f in files:
        print(f"  {f.name:<{width}}  {len(f.data):>7,} bytes  {f.summary}")
    return 0

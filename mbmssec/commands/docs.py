"""``mbmssec docs [--out DIR] [--results DIR] [--no-check] [--junit FILE]``: build the docs.

Makes sure the proof results are those of the current model (runs ``mbmssec check --all
--out RESULTS`` when ``RESULTS/results.json`` is missing or was computed for another
model hash), generates the pages from ``spec/``, ``model/`` and the results
(:mod:`mbmssec.docgen.sphinx_ext`), and builds them with ``sphinx-build -W --keep-going -n
-b html``.  Exit status: 0 built, 1 the strict build failed (the warnings name the clause,
property or stale result), 2 bad input (no docs folder, an output or results folder that
cannot be written, checked before any work) or a Sphinx error that is not a warning.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mbmssec.docgen.links import load_junit
from mbmssec.docgen.paths import DOCS_DIR
from mbmssec.docgen.results import results_state
from mbmssec.errors import UsageError
from mbmssec.outdir import check_writable
from mbmssec.proofs.results import RESULTS_FILE


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "docs",
        help="generate and build the documentation (Sphinx, strict)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="HTML output folder (default docs/_build/html)",
    )
    p.add_argument(
        "--results",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder of the checker's results.json (default "
        "docs/_build/results); filled by `mbmssec check --all` when missing "
        "or stale",
    )
    p.add_argument(
        "--no-check",
        action="store_true",
        help="never run the checker: build from the results as they are (stale "
        "or missing results then fail the build)",
    )
    p.add_argument(
        "--junit",
        type=Path,
        default=None,
        metavar="FILE",
        help="JUnit XML report of a test run (pytest --junitxml FILE): show each "
        "linked test's outcome",
    )
    p.add_argument(
        "--source",
        type=Path,
        default=None,
        metavar="DIR",
        help="documentation sources (default: the docs folder of the checkout)",
    )
    p.add_argument(
        "--builder",
        default="html",
        choices=("html", "dummy"),
        help="Sphinx builder (dummy: check everything, write nothing)",
    )
    p.set_defaults(func=run)


def _refresh_results(results: Path) -> None:
    """Run ``mbmssec check --all --out results`` in this process, its progress streamed
    to stderr (its report is not shown; its exit status 1 only says that some shipped
    proposal breaks a property)."""
    from mbmssec.cli import main as cli_main

    print(
        f"mbmssec docs: running `mbmssec check --all --out {results}` (about two minutes)",
        file=sys.stderr,
        flush=True,
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli_main(["check", "--all", "--out", str(results)])
    if status not in (0, 1):
        sys.stderr.write(out.getvalue())
        raise UsageError(f"`mbmssec check --all --out {results}` failed with status {status}")


def run(args: argparse.Namespace) -> int:
    source: Path = (args.source or DOCS_DIR).resolve()
    if not (source / "conf.py").is_file():
        raise UsageError(
            f"--source: {source} has no conf.py (the documentation sources "
            "are the docs/ folder of a checkout)"
        )
    out: Path = (args.out or DOCS_DIR / "_build" / args.builder).resolve()
    results: Path = (args.results or DOCS_DIR / "_build" / "results").resolve()
    if results.exists() and not results.is_dir():
        raise UsageError(f"--results: {results} is not a folder")
    check_writable(out)
    junit: Path | None = args.junit.resolve() if args.junit else None
    if junit is not None:
        load_junit(junit)  # a DocsError (exit 2) names the file if it is no report
    state = results_state(results)
    if not state.fresh:
        if args.no_check:
            print(
                f"mbmssec docs: the results are {state.status} ({state.reason}); building "
                "anyway (--no-check), the build will fail",
                file=sys.stderr,
            )
        else:
            print(f"mbmssec docs: the results are {state.status} ({state.reason})", file=sys.stderr)
            check_writable(results, "--results")
            _refresh_results(results)
    cmd = [
        sys.executable,
        "-m",
        "sphinx",
        "-W",
        "--keep-going",
        "-n",
        "-q",
        "-b",
        args.builder,
        "-d",
        str(out.parent / f".doctrees-{out.name}"),
        "-D",
        f"mbmssec_results={results}",
        *(["-D", f"mbmssec_junit={junit}"] if junit is not None else []),
        str(source),
        str(out),
    ]
    t0 = time.monotonic()
    env = dict(os.environ)
    env.pop("MBMSSEC_RESULTS", None)
    proc = subprocess.run(cmd, env=env, check=False)
    seconds = time.monotonic() - t0
    if proc.returncode not in (0, 1):
        print(
            f"mbmssec docs: sphinx-build stopped with status {proc.returncode} after "
            f"{seconds:.1f} s: an error, not a warning of the strict build (its message is "
            "above)",
            file=sys.stderr,
        )
        return 2
    if proc.returncode != 0:
        print(
            f"mbmssec docs: the strict build failed after {seconds:.1f} s (the warnings "
            "above name the clause, property or result)",
            file=sys.stderr,
        )
        return 1
    index = out / "index.html" if args.builder == "html" else out
    print(f"mbmssec docs: built {index} in {seconds:.1f} s from {results / RESULTS_FILE}")
    return 0

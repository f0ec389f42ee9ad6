"""Whether the checker's stored results can document the current model.

The results document itself is :mod:`mbmssec.proofs.results`; this module only decides,
for ``mbmssec docs``, whether the checker must run again before the build.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mbmssec.proofs.check import model_hash
from mbmssec.proofs.results import RESULTS_FILE, ResultsError, load_results

Status = Literal["fresh", "stale", "missing", "unreadable"]


@dataclass(frozen=True)
class ResultsState:
    """The state of a results folder, and a sentence saying why."""

    status: Status
    """``fresh`` (usable), ``stale`` (computed for another model hash), ``missing`` (no
    results file) or ``unreadable`` (not a results document of this format version)."""
    reason: str

    @property
    def fresh(self) -> bool:
        """Can the documentation be built from these results as they are?"""
        return self.status == "fresh"


def results_state(directory: Path) -> ResultsState:
    """The state of the results in a ``mbmssec check --out`` folder."""
    path = directory / RESULTS_FILE
    if not path.exists():
        return ResultsState("missing", f"{path}: no such file")
    try:
        results = load_results(path)
    except ResultsError as exc:
        return ResultsState("unreadable", str(exc))
    current = model_hash()
    if results.model_hash != current:
        return ResultsState(
            "stale",
            f"{path}: stale, computed for model hash {results.model_hash[:16]}, but the "
            f"sources now hash to {current[:16]}",
        )
    return ResultsState("fresh", f"{path}: computed for the current model")

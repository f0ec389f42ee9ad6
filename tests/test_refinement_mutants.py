"""The implementation-mutant catalogue: every planted bug is caught by random lockstep search.

Each mutant of :data:`refinement_variants.MUTANTS` (a broken BM-SC or UE core, or a patched
function the cores call; the shipped code is not edited) is searched by the same Hypothesis
state machine as the lockstep refinement tests, under one profile (and, for one mutant, a
longer fetch grace of the BM-SC), derandomised (the same examples on every run, whatever
ran before in the same process), without shrinking, stopping at the first divergence.
The catch must come from the random search: no scripted scenario counts.
:data:`EXAMPLES_NEEDED` records how many examples each search took when the catalogue was
last measured; a search that needs more than :data:`BUDGET` fails.  The unmutated
implementation passes the same state machine (tests/test_refinement.py, and
:func:`test_unmutated_implementation_passes_every_searched_configuration` for a
configuration the lockstep tests do not run), so a catch is the mutant's doing.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

from mbmssec.refinement.abstraction import Divergence

sys.path.insert(0, str(Path(__file__).parent))

from refinement_variants import MUTANTS
from test_refinement import PROFILES, STEPS, machine_for, same_draws_in_any_process

pytestmark = pytest.mark.slow

BUDGET = 60
"""Examples a mutant's search may take (each of up to test_refinement.STEPS steps)."""

EXAMPLES_NEEDED: dict[str, int] = {
    "activation_ignores_fetch_grace": 11,
    "activation_timeout_after_fetch_window": 11,
    "bmsc_accepts_replayed_nonce_count": 8,
    "bmsc_accepts_wrong_res": 8,
    "bmsc_activates_early": 11,
    "bmsc_skips_authorisation": 6,
    "mki_reused_after_restart": 4,
    "mki_reused_within_delivery": 4,
    "replacement_tek_reuses_withdrawn_key": 4,
    "revocation_keeps_next_tek": 4,
    "srtp_ignores_mki": 6,
    "ue_accepts_older_counter": 4,
    "ue_accepts_replayed_mikey": 4,
    "ue_ignores_fetch_time": 4,
    "ue_installs_wrong_salt": 4,
    "ue_keeps_older_keys_on_switch": 6,
    "ue_misreads_fetch_time": 4,
}
"""Examples each search needed when measured (PYTHONHASHSEED=0, derandomised; Hypothesis
counts the examples it generates, a few more than ``max_examples`` allows when it stops)."""

FACTORIES = frozenset({"bmsc_factory", "ue_factory", "restart_factory"})
"""The Lockstep arguments that substitute a broken core; the others configure the run."""


SEARCH = settings(
    max_examples=BUDGET,
    stateful_step_count=STEPS,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
    phases=[Phase.generate],
    report_multiple_bugs=False,
    print_blob=False,
)
"""The settings of every search here."""


def search(name: str) -> tuple[int, str | None]:
    """Run the lockstep search against one mutant: (examples run, the divergence or None)."""
    mutant = MUTANTS[name]
    profile = dict(PROFILES)[mutant.profile]
    reached: Counter[str] = Counter()
    machine = machine_for(profile, reached, **mutant.variant)
    machine.TestCase.settings = SEARCH
    try:
        with same_draws_in_any_process():
            machine.TestCase().runTest()
    except Divergence as exc:
        return reached["examples"], str(exc).splitlines()[0]
    return reached["examples"], None


def test_catalogue_size() -> None:
    assert len(MUTANTS) >= 12
    assert set(EXAMPLES_NEEDED) == set(MUTANTS)


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_is_caught_by_random_search(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for module, attr, replacement in MUTANTS[name].patches:
        monkeypatch.setattr(module, attr, replacement)
    examples, divergence = search(name)
    print(f"{name}: caught after {examples} examples: {divergence}")
    assert divergence is not None, f"{name} survived {examples} examples of lockstep search"


def test_unmutated_implementation_passes_every_searched_configuration() -> None:
    """A mutant searched under a configuration the lockstep tests do not run (a longer
    fetch grace) is caught only if the shipped cores pass the same search."""
    configs = {
        (m.profile, tuple(sorted((k, v) for k, v in m.variant.items() if k not in FACTORIES)))
        for m in MUTANTS.values()
    }
    extra = sorted(c for c in configs if c[1])
    assert extra, "no mutant is searched under a configuration of its own: nothing to check"
    for profile_name, config in extra:
        machine = machine_for(dict(PROFILES)[profile_name], None, **dict(config))
        machine.TestCase.settings = SEARCH
        with same_draws_in_any_process():
            machine.TestCase().runTest()

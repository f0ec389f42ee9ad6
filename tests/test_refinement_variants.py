"""Every broken implementation variant is caught by lockstep refinement.

Each variant runs a short scripted scenario through :class:`Lockstep` (real Digest AKA,
MIKEY and SRTP); the variant is caught when the model cannot follow a step or the
abstraction of the concrete state differs from the model's.  The same scenario on the
unbroken implementation must pass, so a catch is the variant's doing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mbmssec.model.concrete import Universe
from mbmssec.refinement.abstraction import Divergence, Lockstep
from mbmssec.spec.loader import load_spec

sys.path.insert(0, str(Path(__file__).parent))

from refinement_variants import VARIANTS

UNI = Universe(ue=3, svc=1, tek=7, pkt=6)


def _skip_auth(ls: Lockstep) -> None:
    ls.subscribe(0)
    ls.register(0)
    ls.revoke(0)
    ls.register(0)  # the revoked UE asks again


def _replay(ls: Lockstep) -> None:
    ls.subscribe(0)
    ls.register(0)
    ls.advance(1.0)  # up to the UE's fetch time
    ls.register(0)
    ls.replay(0)  # the first delivery again


def _ignore_mki(ls: Lockstep) -> None:
    ls.subscribe(0)
    ls.register(0)
    ls.advance(1.0)  # the next TEK (which the UE holds) is activated
    ls.send()
    ls.receive(0, 0)


def _early(ls: Lockstep) -> None:
    ls.subscribe(0)
    ls.subscribe(1)
    ls.register(0)
    ls.register(1)
    ls.revoke(1)  # re-key on leave: a replacement next TEK UE0 does not have yet
    ls.advance(1.0)


def _restart(ls: Lockstep) -> None:
    ls.subscribe(0)
    ls.register(0)
    ls.restart()


SCENARIOS: dict[str, Callable[[Lockstep], None]] = {
    "bmsc_skips_authorisation": _skip_auth,
    "ue_accepts_replayed_mikey": _replay,
    "srtp_ignores_mki": _ignore_mki,
    "bmsc_activates_early": _early,
    "mki_reused_after_restart": _restart,
}


def run(variant: dict[str, Any], scenario: Callable[[Lockstep], None]) -> None:
    scenario(Lockstep(load_spec().baseline(), UNI, seed=1, **variant))


def test_every_variant_has_a_scenario() -> None:
    assert set(SCENARIOS) == set(VARIANTS)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_scenario_passes_on_the_implementation(name: str) -> None:
    run({}, SCENARIOS[name])


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_is_caught(name: str) -> None:
    with pytest.raises(Divergence):
        run(VARIANTS[name], SCENARIOS[name])
